//! What the agent leaves for people and tools: actions.log (one line per step) and
//! state.json (the current picture, replaced atomically).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::keepalived::notify::VrrpState;

/// One step of a transition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    /// `take`, `release`, `rollback` or `verify`.
    pub action: String,
    pub resource: String,
    pub started: String,
    pub duration_ms: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The last time a group changed state on this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Transition {
    pub to: String,
    pub trigger: String,
    pub started: String,
    pub duration_ms: u64,
    pub result: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceStatus {
    pub id: String,
    /// `active`, `inactive`, `n/a` or `unknown`.
    pub observed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IpStatus {
    pub address: String,
    pub present: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fault {
    pub reason: String,
    /// A release the operator asked for, not a failure.
    #[serde(default)]
    pub by_operator: bool,
    pub since: String,
    pub hold_down_until: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupState {
    pub vrrp_state: VrrpState,
    /// `active` or `standby`.
    pub desired: String,
    /// `active`, `standby` or `partial`.
    pub actual: String,
    pub maintenance: bool,
    pub fault: Option<Fault>,
    pub resources: Vec<ResourceStatus>,
    pub floating_ips: Vec<IpStatus>,
    pub problems: Vec<String>,
    pub last_transition: Option<Transition>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub schema: u32,
    pub node: String,
    pub cluster: String,
    pub pid: u32,
    pub updated: String,
    pub keepalived_running: bool,
    pub groups: BTreeMap<String, GroupState>,
}

/// Shared by the group workers; every update rewrites state.json.
pub struct Records {
    state: Mutex<AgentState>,
    state_path: PathBuf,
    log_path: PathBuf,
}

impl Records {
    pub fn new(cluster: &str, node: &str, state_path: &Path, log_path: &Path) -> Self {
        Records {
            state: Mutex::new(AgentState {
                schema: 1,
                node: node.to_string(),
                cluster: cluster.to_string(),
                pid: std::process::id(),
                updated: timestamp(SystemTime::now()),
                keepalived_running: false,
                groups: BTreeMap::new(),
            }),
            state_path: state_path.to_path_buf(),
            log_path: log_path.to_path_buf(),
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
        if step.ok {
            log::info!("{}", line.trim_end());
        } else {
            log::error!("{}", line.trim_end());
        }
        self.append(&line);
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

    pub fn set_group(&self, name: &str, group: GroupState) {
        self.update(|s| {
            s.groups.insert(name.to_string(), group);
        });
    }

    pub fn set_keepalived_running(&self, running: bool) {
        self.update(|s| s.keepalived_running = running);
    }

    fn update(&self, change: impl FnOnce(&mut AgentState)) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let before = serde_json::to_value(&*state).ok();
        change(&mut state);
        if serde_json::to_value(&*state).ok() == before {
            return;
        }
        state.updated = timestamp(SystemTime::now());
        match serde_json::to_vec_pretty(&*state) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&self.state_path, &bytes, 0o644) {
                    log::warn!("cannot write {}: {e}", self.state_path.display());
                }
            }
            Err(e) => log::warn!("cannot serialise the state: {e}"),
        }
    }
}

/// RFC 3339 UTC with milliseconds, without a date crate.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_219_200_123);
        assert_eq!(timestamp(t), "2026-11-21T00:00:00.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
