//! Keeps a group's worker alive. A panic in it (a bug) must not leave the group
//! unmanaged and unreported: it is caught, logged with the group and the message,
//! reported in state.json (FAULT while the worker is down, then a problem for a while),
//! and a fresh worker starts after a back-off that doubles with each panic in a row, so a
//! panic loop does not spin. The fresh worker knows nothing of the old one's memory: it
//! resumes holds from their records and compares with what the node actually holds, as
//! after an agent restart.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::records::Records;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// A worker that ran this long before it panicked starts the back-off over.
    pub stable: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable: Duration::from_secs(600),
        }
    }
}

/// Runs `worker(attempt)` (attempt 0 first, then 1, 2, ... after panics) until it
/// returns normally.
pub fn supervise(group: &str, records: &Records, backoff: Backoff, mut worker: impl FnMut(u32)) {
    let mut delay = backoff.first;
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| worker(attempt))) else {
            return;
        };
        if started.elapsed() >= backoff.stable {
            delay = backoff.first;
        }
        let message = panic_message(payload.as_ref());
        log::error!(
            "group {group}: its worker panicked: {message}; restarting it in {:.1} s",
            delay.as_secs_f32()
        );
        records.worker_panicked(group, &message, delay);
        std::thread::sleep(delay);
        delay = (delay * 2).min(backoff.max);
        attempt += 1;
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::state;

    /// Two panics, then a worker that returns: each panic is reported in state.json
    /// (FAULT, and the problem), the restarts wait the doubling back-off, and the
    /// supervisor ends when the worker does.
    #[test]
    fn a_panicking_worker_is_reported_and_restarted_with_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state.json");
        let records = Records::new("c", "n1", &state_path, &dir.path().join("actions.log"));
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(150),
            stable: Duration::from_secs(60),
        };
        let mut starts = Vec::new();
        let mut seen_fault = Vec::new();
        let began = Instant::now();
        supervise("web", &records, backoff, |attempt| {
            starts.push((attempt, began.elapsed()));
            if attempt > 0 {
                let s = state::read(&state_path).unwrap();
                seen_fault.push(s.groups["web"].fault.clone().unwrap().reason);
            }
            if attempt < 2 {
                panic!("boom {attempt}");
            }
        });
        assert_eq!(starts.len(), 3);
        assert!(starts[1].1 >= Duration::from_millis(100), "{starts:?}");
        assert!(
            starts[2].1 - starts[1].1 >= Duration::from_millis(150),
            "{starts:?}"
        );
        assert!(seen_fault[0].contains("panicked: boom 0"), "{seen_fault:?}");
        assert!(seen_fault[1].contains("panicked: boom 1"), "{seen_fault:?}");
        let s = state::read(&state_path).unwrap();
        assert!(
            s.groups["web"]
                .problems
                .iter()
                .any(|p| p.contains("boom 1")),
            "{:?}",
            s.groups["web"].problems
        );
    }
}
