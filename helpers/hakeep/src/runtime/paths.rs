//! Where the runtime files of a node live. Fixed in production; tests relocate them.

use std::path::PathBuf;

/// Where keepalived writes state changes for the agent (rendered into keepalived.conf).
pub const FIFO_PATH: &str = "/run/hakeep/vrrp.fifo";
/// One file per group; the agent writes 1 to put the instance in FAULT (keepalived's
/// `track_file`, rendered into keepalived.conf).
pub const TRACK_DIR: &str = "/run/hakeep/track";

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
    /// Holds (fault, fence, operator) with their end time: they survive agent restarts
    /// and reboots, so a fenced node stays out for as long as it was told.
    pub holds_dir: PathBuf,
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
            holds_dir: PathBuf::from("/var/lib/hakeep/holds"),
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

    pub fn hold_file(&self, group: &str) -> PathBuf {
        self.holds_dir.join(format!("{group}.json"))
    }

    /// The maintenance flag of a group, or of the whole node (`None`).
    pub fn maintenance_flag(&self, group: Option<&str>) -> PathBuf {
        self.maintenance_dir.join(group.unwrap_or("ALL"))
    }

    /// True when the whole node or this group is in maintenance.
    pub fn in_maintenance(&self, group: &str) -> bool {
        self.maintenance_flag(None).exists() || self.maintenance_flag(Some(group)).exists()
    }
}
