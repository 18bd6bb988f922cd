//! What the agent leaves for people and tools: actions.log (one line per step) and
//! state.json (the current picture, replaced atomically).

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::fsutil::write_atomic;
use crate::runtime::holds::HoldKind;
use crate::runtime::state::{timestamp, AgentState, Fault, GroupState, QuorumState, Step, SCHEMA};
use crate::runtime::VrrpState;

use super::events::{Event, GroupLive, Observer};

/// How long a group's problems still say that its worker panicked (and was restarted):
/// a panic is a bug someone should see, even when the group serves again.
pub const PANIC_REPORTED_FOR: Duration = Duration::from_secs(600);

/// How a group's problems start that report a panic of its worker.
pub const PANIC_NOTE: &str = "the group's worker panicked and was restarted";

/// Shared by the group workers; an update that changes the picture rewrites state.json.
pub struct Records {
    state: Mutex<AgentState>,
    /// Per group, the latest panic of its worker: when, and its message.
    panics: Mutex<HashMap<String, (SystemTime, String)>>,
    state_path: PathBuf,
    log_path: PathBuf,
    /// The last write of state.json failed (a full /run): the next update writes it
    /// again even if nothing changed.
    unwritten: AtomicBool,
    /// Told of every event, step and picture (metrics, alerts).
    observers: Vec<Arc<dyn Observer>>,
    /// Whether keepalived ran at the last resync (`None` before the first one).
    keepalived_seen: Mutex<Option<bool>>,
}

impl Records {
    pub fn new(cluster: &str, node: &str, state_path: &Path, log_path: &Path) -> Self {
        Records {
            state: Mutex::new(AgentState {
                schema: SCHEMA,
                node: node.to_string(),
                cluster: cluster.to_string(),
                pid: std::process::id(),
                updated: timestamp(SystemTime::now()),
                keepalived_running: false,
                problems: Vec::new(),
                quorum: None,
                groups: BTreeMap::new(),
            }),
            panics: Mutex::new(HashMap::new()),
            state_path: state_path.to_path_buf(),
            log_path: log_path.to_path_buf(),
            unwritten: AtomicBool::new(false),
            observers: Vec::new(),
            keepalived_seen: Mutex::new(None),
        }
    }

    /// Adds observers; done before the records are shared.
    pub fn with_observers(mut self, observers: Vec<Arc<dyn Observer>>) -> Self {
        self.observers.extend(observers);
        self
    }

    /// Tells the observers of an event, and the log.
    pub fn event(&self, event: Event) {
        log::info!(
            HAKEEP_EVENT = event.kind.as_str(),
            HAKEEP_GROUP = event.group.as_deref().unwrap_or(""),
            HAKEEP_RESULT = event.result.as_str();
            "event {} {}{}: {}",
            event.kind.as_str(),
            event.result,
            event.group.as_deref().map(|g| format!(" group {g}")).unwrap_or_default(),
            event.detail
        );
        for observer in &self.observers {
            observer.event(&event);
        }
    }

    /// Appends one line per step to actions.log (and to the journal).
    pub fn log_step(&self, group: &str, step: &Step) {
        let line = format!(
            "{} group={group} action={} step={} result={} duration_ms={}{}\n",
            step.started,
            step.action,
            step.resource,
            if step.ok { "ok" } else { "error" },
            step.duration_ms,
            step.error
                .as_ref()
                .map(|e| format!(" error={e:?}"))
                .unwrap_or_default()
        );
        let level = if step.ok {
            log::Level::Info
        } else {
            log::Level::Error
        };
        log::log!(
            level,
            HAKEEP_GROUP = group,
            HAKEEP_ACTION = step.action.as_str(),
            HAKEEP_STEP = step.resource.as_str(),
            HAKEEP_RESULT = if step.ok { "ok" } else { "error" },
            HAKEEP_DURATION_MS = step.duration_ms;
            "{}",
            line.trim_end()
        );
        self.append(&line);
        for observer in &self.observers {
            observer.step(group, step);
        }
    }

    fn append(&self, line: &str) {
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            log::warn!("cannot append to {}: {e}", self.log_path.display());
        }
    }

    /// Records a VRRP state change as keepalived reported it, with the agent's clock.
    pub fn log_event(&self, group: &str, state: VrrpState, priority: Option<u8>) {
        let line = format!(
            "{} group={group} event={state} priority={} source=keepalived\n",
            timestamp(SystemTime::now()),
            priority
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into())
        );
        self.append(&line);
    }

    /// Records a floating IP of the group appearing or disappearing, as netlink told it.
    /// A removal keepalived did not make (its VIP deleted by hand) is worth knowing even
    /// after keepalived has put the address back.
    pub fn log_address(&self, group: &str, address: &str, interface: &str, added: bool) {
        let event = if added {
            "address-added"
        } else {
            "address-removed"
        };
        let line = format!(
            "{} group={group} event={event} address={address} interface={interface} source=netlink\n",
            timestamp(SystemTime::now()),
        );
        self.append(&line);
    }

    pub fn set_group(&self, name: &str, mut group: GroupState, live: &GroupLive) {
        if let Some(note) = self.panic_note(name) {
            group.problems.push(note);
        }
        for observer in &self.observers {
            observer.group(name, &group, live);
        }
        self.update(|s| {
            if s.groups.get(name) == Some(&group) {
                return false;
            }
            s.groups.insert(name.to_string(), group);
            true
        });
    }

    /// A group's worker panicked and restarts in `restart_in`: until then the group is
    /// FAULT (nothing manages it), and for PANIC_REPORTED_FOR its problems say so.
    pub fn worker_panicked(&self, name: &str, message: &str, restart_in: Duration) {
        let now = SystemTime::now();
        self.panics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), (now, message.to_string()));
        let note = self.panic_note(name);
        let mut picture = None;
        self.update(|s| {
            let group = s
                .groups
                .entry(name.to_string())
                .or_insert_with(|| GroupState {
                    vrrp_state: VrrpState::Unknown,
                    desired: "unknown".into(),
                    actual: "unknown".into(),
                    maintenance: false,
                    fault: None,
                    failed: None,
                    resources: Vec::new(),
                    floating_ips: Vec::new(),
                    problems: Vec::new(),
                    last_transition: None,
                    fencing: None,
                    fence_wait: None,
                });
            group.fault = Some(Fault {
                reason: format!("the group's worker panicked: {message}; restarting it"),
                by_operator: false,
                kind: HoldKind::Fault,
                since: timestamp(now),
                hold_down_until: timestamp(now + restart_in),
            });
            group.problems.retain(|p| !p.starts_with(PANIC_NOTE));
            group.problems.extend(note);
            picture = Some(group.clone());
            true
        });
        // The metrics too: no worker will publish the group until the fresh one runs.
        if let Some(group) = picture {
            let live = GroupLive {
                hold_until: Some(now + restart_in),
                checks: Vec::new(),
            };
            for observer in &self.observers {
                observer.group(name, &group, &live);
            }
        }
    }

    fn panic_note(&self, name: &str) -> Option<String> {
        let panics = self.panics.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, message) = panics.get(name)?;
        let age = SystemTime::now().duration_since(*at).unwrap_or_default();
        (age < PANIC_REPORTED_FOR)
            .then(|| format!("{PANIC_NOTE} at {} ({message})", timestamp(*at)))
    }

    pub fn set_keepalived_running(&self, running: bool) {
        self.update(|s| {
            let changed = s.keepalived_running != running;
            s.keepalived_running = running;
            changed
        });
        // The first answer after the agent starts is no event: keepalived did not change.
        let before = self
            .keepalived_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(running);
        let changed = before.is_some_and(|b| b != running);
        for observer in &self.observers {
            observer.keepalived(running);
        }
        if changed {
            let (result, detail) = if running {
                ("up", "keepalived runs")
            } else {
                (
                    "down",
                    "keepalived is not running: no group can be served here",
                )
            };
            self.event(Event::new(
                crate::config::AlertEvent::Keepalived,
                None,
                result,
                detail.into(),
            ));
        }
    }

    /// Sets (or with `None` clears) the node-level problem that starts with `key`.
    pub fn set_node_problem(&self, key: &str, problem: Option<String>) {
        self.update(|s| {
            let before = s.problems.clone();
            s.problems.retain(|p| !p.starts_with(key));
            s.problems.extend(problem);
            s.problems != before
        });
    }

    /// The node's quorum as last read from corosync.
    pub fn set_quorum(&self, quorum: QuorumState) {
        self.update(|s| {
            let changed = s.quorum.as_ref() != Some(&quorum);
            s.quorum = Some(quorum);
            changed
        });
    }

    /// One line for systemd's STATUS=: keepalived, and each group's state here.
    pub fn summary(&self) -> String {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut parts = vec![if state.keepalived_running {
            "keepalived runs".to_string()
        } else {
            "keepalived is not running".to_string()
        }];
        for (name, g) in &state.groups {
            let mut part = format!("{name} {} {}", g.vrrp_state, g.actual);
            if g.failed.is_some() {
                part.push_str(" FAILED");
            } else if g.fault.is_some() {
                part.push_str(" held");
            } else if g.maintenance {
                part.push_str(" maintenance");
            }
            parts.push(part);
        }
        if !state.problems.is_empty() {
            parts.push(format!("{} node problem(s)", state.problems.len()));
        }
        parts.join("; ")
    }

    /// Applies `change`; rewrites state.json only when it says it changed something, so
    /// an idle agent's resyncs cost a comparison, not a serialisation and a write.
    fn update(&self, change: impl FnOnce(&mut AgentState) -> bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !change(&mut state) && !self.unwritten.load(Ordering::Relaxed) {
            return;
        }
        state.updated = timestamp(SystemTime::now());
        match serde_json::to_vec_pretty(&*state) {
            Ok(bytes) => {
                let written = write_atomic(&self.state_path, &bytes, 0o644);
                if let Err(e) = &written {
                    if !self.unwritten.load(Ordering::Relaxed) {
                        log::warn!("cannot write {}: {e}", self.state_path.display());
                    }
                }
                self.unwritten.store(written.is_err(), Ordering::Relaxed);
            }
            Err(e) => log::warn!("cannot serialise the state: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, GroupState, GroupLive)>>);

    impl Observer for Seen {
        fn group(&self, name: &str, state: &GroupState, live: &GroupLive) {
            let mut seen = self.0.lock().unwrap();
            seen.push((name.to_string(), state.clone(), live.clone()));
        }
    }

    #[test]
    fn observers_see_a_panicked_worker_s_group_as_faulted() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Seen::default());
        let records = Records::new(
            "c",
            "n",
            &dir.path().join("state.json"),
            &dir.path().join("actions.log"),
        )
        .with_observers(vec![seen.clone()]);
        records.worker_panicked("web", "boom", Duration::from_secs(4));
        let seen = seen.0.lock().unwrap();
        let (name, state, live) = seen.last().expect("the observer was told");
        assert_eq!(name, "web");
        assert_eq!(state.fault.as_ref().map(|f| f.kind), Some(HoldKind::Fault));
        assert!(state.problems[0].starts_with(PANIC_NOTE), "{state:?}");
        assert!(live.hold_until.is_some());
    }
}
