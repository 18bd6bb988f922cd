//! `hakeep status`: this node's picture, from the agent's state.json plus liveness of
//! keepalived and the agent. The JSON form is the stable contract (docs/cli.md).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::keepalived::state as keepalived_state;
use crate::runtime::state::{self as agent_state, GroupState, QuorumState};
use crate::runtime::Paths;

/// Version of the JSON below; bumped only on incompatible changes.
pub const SCHEMA: u32 = agent_state::SCHEMA;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub schema: u32,
    pub node: String,
    pub cluster: String,
    pub keepalived_running: bool,
    pub agent_running: bool,
    /// Set when the status could not be read at all (no agent state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The whole node is in maintenance (per-group flags are in each group).
    pub maintenance: bool,
    /// What is wrong with the node rather than a group (from the agent's state.json).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// corosync's quorum on this node; absent without `quorum:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumState>,
    pub groups: Vec<GroupStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    /// True when this group is as intended here: desired = actual, no failure, no problem.
    pub ok: bool,
    #[serde(flatten)]
    pub state: GroupState,
}

/// What the exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    AsIntended,
    SomethingWrong,
    CannotTell,
}

impl NodeStatus {
    pub fn verdict(&self) -> Verdict {
        if self.error.is_some() || !self.agent_running {
            return Verdict::CannotTell;
        }
        if !self.keepalived_running
            || !self.problems.is_empty()
            || self.quorum.as_ref().is_some_and(|q| !q.quorate)
            || self.groups.iter().any(|g| !g.ok)
        {
            return Verdict::SomethingWrong;
        }
        Verdict::AsIntended
    }

    /// Groups this node actively holds.
    pub fn active_groups(&self) -> impl Iterator<Item = &GroupStatus> {
        self.groups.iter().filter(|g| g.state.actual != "standby")
    }
}

/// Reads this node's status.
pub fn local(paths: &Paths, cluster: &str, node: &str) -> NodeStatus {
    let keepalived_running =
        keepalived_state::running_pid(&keepalived_state::Paths::default()).is_some();
    let maintenance = paths.maintenance_dir.join("ALL").exists();
    let mut status = NodeStatus {
        schema: SCHEMA,
        node: node.to_string(),
        cluster: cluster.to_string(),
        keepalived_running,
        agent_running: false,
        error: None,
        maintenance,
        problems: Vec::new(),
        quorum: None,
        groups: Vec::new(),
    };
    let state = match agent_state::read(&paths.state_json) {
        Ok(s) => s,
        Err(e) => {
            status.error = Some(format!(
                "cannot read {}: {e} (is the agent running?)",
                paths.state_json.display()
            ));
            return status;
        }
    };
    status.agent_running = process_is(state.pid, "hakeep");
    if !status.agent_running {
        status.error = Some(format!(
            "the agent (pid {}) that wrote {} is not running",
            state.pid,
            paths.state_json.display()
        ));
    }
    status.problems = state.problems;
    status.quorum = state.quorum;
    status.groups = state
        .groups
        .into_iter()
        .map(|(name, state)| GroupStatus {
            ok: group_ok(&state),
            name,
            state,
        })
        .collect();
    status
}

/// Whether a group is as intended here (its `ok`; also `hakeep_group_healthy`).
pub fn group_ok(state: &GroupState) -> bool {
    let failed = state.fault.as_ref().is_some_and(|f| !f.by_operator);
    state.desired == state.actual && !failed && state.failed.is_none() && state.problems.is_empty()
}

fn process_is(pid: u32, comm: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm"))
        .is_ok_and(|c| c.trim() == comm)
}
