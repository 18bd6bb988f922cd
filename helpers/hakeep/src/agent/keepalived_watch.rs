//! Is keepalived's notify FIFO working? keepalived says nothing when it cannot: with
//! `enable_script_security` and no `keepalived_script` user it logs "Failed to set default
//! user for vrrp_ fifo" once and never writes an event, while it goes on adding and
//! removing the floating IPs. So the agent compares what the FIFO said with keepalived's
//! JSON dump, and asks for a dump (beyond the periodic one) when there is reason to:
//!
//! - keepalived (re)started during the agent's life (a new pid): at the next resyncs, and
//!   it must have said something on the FIFO by then;
//! - a group's floating IP is on this node while the agent does not believe MASTER, or
//!   the other way round;
//! - an earlier dump disagreed with the FIFO (a second dump confirms it).
//!
//! A confirmed disagreement is a node-level problem in state.json and in the journal;
//! while it lasts, the agent follows the dump at every resync. The first FIFO event after
//! it ends the problem.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::runtime::VrrpState;

/// state.json's node problems that this watch owns start with this.
pub const PROBLEM_KEY: &str = crate::runtime::state::FIFO_SILENT_PROBLEM;

/// The resyncs after a keepalived start that get a dump. keepalived reports every
/// instance (INIT to BACKUP or FAULT) within a second of its start, so a start followed
/// by a whole resync interval of silence is conclusive.
const DUMPS_AFTER_START: u32 = 3;

#[derive(Debug, Default)]
pub struct KeepalivedWatch {
    /// The pid seen at the previous resync; `None` before the first one.
    last_pid: Option<Option<i32>>,
    /// Since when a new keepalived may have run (the resync before the one that saw its
    /// pid), and when the FIFO last said anything.
    started: Option<Instant>,
    last_event: Option<Instant>,
    /// When the previous resync looked.
    last_resync: Option<Instant>,
    dumps_after_start: u32,
    /// The last state the FIFO gave each instance.
    fifo: HashMap<String, VrrpState>,
    /// A disagreement seen in the last dump, to confirm with the next.
    suspect: Option<String>,
    /// The problem as reported, while it lasts.
    silent: Option<String>,
    /// Whether the first dump has been taken as the baseline: an agent that starts beside
    /// a running keepalived hears no event until the next change.
    baseline: bool,
}

/// What the resync should do about the problem in state.json.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    Raise(String),
    Clear,
}

impl KeepalivedWatch {
    /// An event came through the FIFO: it works.
    pub fn fifo_event(&mut self, instance: &str, state: VrrpState) -> Verdict {
        self.fifo.insert(instance.to_string(), state);
        self.last_event = Some(Instant::now());
        self.suspect = None;
        if self.silent.take().is_some() {
            Verdict::Clear
        } else {
            Verdict::Unchanged
        }
    }

    /// At each resync: whether to ask keepalived for a dump now. `pid` is keepalived's
    /// running pid, `disagree` whether the node's addresses contradict what the agent
    /// believes of some group.
    pub fn wants_dump(&mut self, pid: Option<i32>, disagree: bool) -> bool {
        let restarted = match self.last_pid {
            Some(last) => pid.is_some() && pid != last,
            None => false,
        };
        self.last_pid = Some(pid);
        let now = Instant::now();
        let previous = self.last_resync.replace(now);
        if pid.is_none() {
            self.started = None;
            return false;
        }
        if restarted {
            // The new keepalived may have started (and spoken) any time since the
            // previous resync, which did not see it yet.
            self.started = Some(previous.unwrap_or(now));
            self.dumps_after_start = 0;
        }
        let after_start = self.started.is_some() && self.dumps_after_start < DUMPS_AFTER_START;
        if after_start {
            self.dumps_after_start += 1;
        }
        after_start || disagree || self.suspect.is_some() || self.silent.is_some()
    }

    /// Compares a dump with what the FIFO said. `fifo_path` and `pid` are for the message.
    pub fn compare(
        &mut self,
        dump: &HashMap<String, VrrpState>,
        fifo_path: &str,
        pid: Option<i32>,
        resync: Duration,
    ) -> Verdict {
        let known =
            |s: &VrrpState| matches!(s, VrrpState::Master | VrrpState::Backup | VrrpState::Fault);
        if !self.baseline {
            self.baseline = true;
            for (name, state) in dump {
                self.fifo.entry(name.clone()).or_insert(*state);
            }
        }
        let mut names: Vec<&String> = dump.keys().collect();
        names.sort();
        let mismatch = names.into_iter().find_map(|name| {
            let said = self.fifo.get(name.as_str());
            let now = dump[name.as_str()];
            (known(&now) && said != Some(&now)).then(|| {
                format!(
                    "keepalived's JSON dump says instance {name} is {now}, but its last event on \
                     the FIFO said {}",
                    said.map_or("nothing".to_string(), |s| s.to_string())
                )
            })
        });
        let quiet_since_start = self.started.is_some_and(|at| {
            let heard = self.last_event.is_some_and(|e| e >= at);
            !heard && at.elapsed() >= resync
        }) && dump.values().any(known);
        let evidence = match (mismatch, quiet_since_start) {
            (Some(m), _) if self.suspect.is_some() || self.silent.is_some() => Some(m),
            (Some(m), false) => {
                // Maybe an event is on its way: confirm at the next resync.
                self.suspect = Some(m);
                return Verdict::Unchanged;
            }
            (Some(m), true) => Some(m),
            (None, true) => Some(format!(
                "keepalived (pid {}) started {} s ago and has sent no event on the FIFO",
                pid.map_or("?".into(), |p| p.to_string()),
                self.started.map_or(0, |at| at.elapsed().as_secs())
            )),
            (None, false) => None,
        };
        self.suspect = None;
        let Some(evidence) = evidence else {
            return Verdict::Unchanged;
        };
        if self.silent.is_some() {
            return Verdict::Unchanged;
        }
        let text = format!(
            "{PROBLEM_KEY}: {evidence}. keepalived writes no events to {fifo_path} when it \
             cannot run its FIFO as the script user: look for \"Failed to set default user \
             for vrrp_ fifo\" in `journalctl -u keepalived` (the keepalived_script user must \
             exist), then restart keepalived. Until then the agent follows keepalived's JSON \
             dump at every resync"
        );
        self.silent = Some(text.clone());
        Verdict::Raise(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Duration = Duration::from_millis(0);

    fn dump(pairs: &[(&str, VrrpState)]) -> HashMap<String, VrrpState> {
        pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn the_first_dump_is_the_baseline() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(Some(10), false);
        let d = dump(&[("web", VrrpState::Master)]);
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
        assert!(!w.wants_dump(Some(10), false), "nothing to confirm");
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
    }

    #[test]
    fn a_working_fifo_raises_nothing() {
        let mut w = KeepalivedWatch::default();
        assert!(
            !w.wants_dump(Some(10), false),
            "no reason at the first look"
        );
        w.fifo_event("web", VrrpState::Backup);
        let d = dump(&[("web", VrrpState::Backup)]);
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
        assert!(!w.wants_dump(Some(10), false));
    }

    #[test]
    fn a_disagreement_is_confirmed_by_a_second_dump_and_ended_by_an_event() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(Some(10), false);
        w.fifo_event("web", VrrpState::Backup);
        assert!(w.wants_dump(Some(10), true), "the addresses disagree");
        let d = dump(&[("web", VrrpState::Master)]);
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
        assert!(
            w.wants_dump(Some(10), false),
            "a suspicion asks for a second dump"
        );
        let Verdict::Raise(text) = w.compare(&d, "/f", Some(10), R) else {
            panic!("a confirmed disagreement is raised");
        };
        assert!(text.contains("instance web is MASTER") && text.contains("keepalived_script"));
        assert!(
            w.wants_dump(Some(10), false),
            "while silent, every resync dumps"
        );
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
        assert_eq!(w.fifo_event("web", VrrpState::Master), Verdict::Clear);
        assert!(!w.wants_dump(Some(10), false));
    }

    #[test]
    fn an_event_in_flight_is_not_a_silent_fifo() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(Some(10), false);
        w.fifo_event("web", VrrpState::Backup);
        let d = dump(&[("web", VrrpState::Master)]);
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
        assert_eq!(w.fifo_event("web", VrrpState::Master), Verdict::Unchanged);
        assert_eq!(w.compare(&d, "/f", Some(10), R), Verdict::Unchanged);
    }

    #[test]
    fn a_restarted_keepalived_that_says_nothing_is_raised() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(Some(10), false);
        w.fifo_event("web", VrrpState::Backup);
        w.wants_dump(Some(10), false);
        assert!(w.wants_dump(Some(11), false), "a new pid asks for a dump");
        let d = dump(&[("web", VrrpState::Backup)]);
        // The state happens to match the old event; the silence since the start tells.
        assert!(matches!(
            w.compare(&d, "/f", Some(11), R),
            Verdict::Raise(t) if t.contains("has sent no event")
        ));
    }

    /// keepalived starts and reports BACKUP between two resyncs: the resync that first
    /// sees its pid comes after the event, which still counts (a CI run caught this).
    #[test]
    fn an_event_before_the_pid_was_seen_counts() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(None, false);
        w.fifo_event("web", VrrpState::Backup);
        assert!(w.wants_dump(Some(11), false));
        let d = dump(&[("web", VrrpState::Backup)]);
        assert_eq!(w.compare(&d, "/f", Some(11), R), Verdict::Unchanged);
        assert!(w.wants_dump(Some(11), false));
        assert_eq!(w.compare(&d, "/f", Some(11), R), Verdict::Unchanged);
    }

    #[test]
    fn keepalived_stopped_asks_for_nothing() {
        let mut w = KeepalivedWatch::default();
        w.wants_dump(Some(10), false);
        assert!(!w.wants_dump(None, true));
    }
}
