//! What the agent leaves for people and tools: actions.log (one line per step) and
//! state.json (the current picture, replaced atomically).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::fsutil::write_atomic;
use crate::runtime::state::{timestamp, AgentState, GroupState, Step, SCHEMA};
use crate::runtime::VrrpState;

/// Shared by the group workers; an update that changes the picture rewrites state.json.
pub struct Records {
    state: Mutex<AgentState>,
    state_path: PathBuf,
    log_path: PathBuf,
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

    pub fn set_group(&self, name: &str, group: GroupState) {
        self.update(|s| {
            if s.groups.get(name) == Some(&group) {
                return false;
            }
            s.groups.insert(name.to_string(), group);
            true
        });
    }

    pub fn set_keepalived_running(&self, running: bool) {
        self.update(|s| {
            let changed = s.keepalived_running != running;
            s.keepalived_running = running;
            changed
        });
    }

    /// Applies `change`; rewrites state.json only when it says it changed something, so
    /// an idle agent's resyncs cost a comparison, not a serialisation and a write.
    fn update(&self, change: impl FnOnce(&mut AgentState) -> bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !change(&mut state) {
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
