//! The types of state.json, the agent's picture of the node that `hakeep status` reads.
//! Field names are the stable contract (docs/cli.md, docs/status.schema.json).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::holds::HoldKind;
use super::vrrp::VrrpState;

/// Version of state.json; bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

/// How the node problem starts that says keepalived writes nothing to the notify FIFO
/// (the agent raises it, `hakeep doctor` looks for it).
pub const FIFO_SILENT_PROBLEM: &str = "keepalived's notify FIFO is silent";

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

/// Why a node stays out of a group for a while (the state.json field is `fault`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fault {
    pub reason: String,
    /// A release the operator asked for, not a failure.
    #[serde(default)]
    pub by_operator: bool,
    /// `fault`, `fence` or `operator` (HoldKind).
    #[serde(default)]
    pub kind: HoldKind,
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
    /// Set while this node could not bring the group to a safe state by itself (a release
    /// that failed, a step-down keepalived could not be told of): what failed and what the
    /// agent did instead. `hakeep status` says FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    pub resources: Vec<ResourceStatus>,
    pub floating_ips: Vec<IpStatus>,
    pub problems: Vec<String>,
    pub last_transition: Option<Transition>,
    /// `storage`, `watchdog` or `none` (the group's resolved `fencing:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing: Option<String>,
    /// While this node waits before taking the group from a peer it cannot see: until
    /// when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_wait: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub schema: u32,
    pub node: String,
    pub cluster: String,
    pub pid: u32,
    pub updated: String,
    pub keepalived_running: bool,
    /// What is wrong with the node rather than a group (keepalived's notify FIFO silent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The node's quorum as corosync reports it; absent without `quorum:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumState>,
    pub groups: BTreeMap<String, GroupState>,
}

/// What corosync says of this node's quorum (votequorum, and knet's links).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct QuorumState {
    pub quorate: bool,
    /// Whether the agent reaches corosync at all; without it the node is not quorate.
    pub connected: bool,
    /// When `quorate` last changed (or the agent first learnt it).
    pub since: String,
    /// Why the node is not quorate, or what is odd ("" when all is well).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The nodes in this node's membership, by name.
    pub members: Vec<String>,
    /// Votes needed for quorum, and the expected total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_votes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_votes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdevice: Option<QdeviceState>,
    /// knet's view of each link to each peer.
    #[serde(default)]
    pub links: Vec<LinkState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct QdeviceState {
    /// corosync-qdevice has registered with votequorum on this node.
    pub registered: bool,
    /// It is alive (polls votequorum in time).
    pub alive: bool,
    /// It casts its vote for this node's partition (qnetd chose it).
    pub cast_vote: bool,
    pub votes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkState {
    pub peer: String,
    pub link: u32,
    pub connected: bool,
}

/// Reads state.json.
pub fn read(path: &Path) -> Result<AgentState, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Milliseconds since the epoch (0 before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
