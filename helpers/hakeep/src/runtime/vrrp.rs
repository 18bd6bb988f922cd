//! The state of a VRRP instance, as keepalived reports it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    Master,
    Backup,
    Fault,
    Stop,
    /// Not reported yet (agent start without keepalived, or keepalived's INIT).
    Unknown,
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
            VrrpState::Fault => "FAULT",
            VrrpState::Stop => "STOP",
            VrrpState::Unknown => "UNKNOWN",
        })
    }
}
