//! Where the agent keeps its runtime files. Fixed in production; tests may relocate.

use std::path::PathBuf;

use crate::render::{FIFO_PATH, TRACK_DIR};

#[derive(Debug, Clone)]
pub struct Paths {
    pub run_dir: PathBuf,
    pub fifo: PathBuf,
    pub track_dir: PathBuf,
    pub lock_dir: PathBuf,
    pub state_json: PathBuf,
    pub control_socket: PathBuf,
    pub actions_log: PathBuf,
    /// Maintenance flags survive a reboot: `ALL`, or one file per group.
    pub maintenance_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            run_dir: PathBuf::from("/run/hakeep"),
            fifo: PathBuf::from(FIFO_PATH),
            track_dir: PathBuf::from(TRACK_DIR),
            lock_dir: PathBuf::from("/run/hakeep/lock"),
            state_json: PathBuf::from("/run/hakeep/state.json"),
            control_socket: PathBuf::from("/run/hakeep/control.sock"),
            actions_log: PathBuf::from("/var/log/hakeep/actions.log"),
            maintenance_dir: PathBuf::from("/var/lib/hakeep/maintenance"),
        }
    }
}

impl Paths {
    pub fn track_file(&self, group: &str) -> PathBuf {
        self.track_dir.join(group)
    }

    pub fn lock_file(&self, group: &str) -> PathBuf {
        self.lock_dir.join(format!("{group}.lock"))
    }

    /// True when the whole node or this group is in maintenance.
    pub fn in_maintenance(&self, group: &str) -> bool {
        self.maintenance_dir.join("ALL").exists() || self.maintenance_dir.join(group).exists()
    }
}
