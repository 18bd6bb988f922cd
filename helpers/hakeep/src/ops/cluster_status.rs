//! `hakeep status --all-nodes`: every node's status (this one locally, the others over
//! SSH) and, per group, where it is active — with an alarm when that is not one node.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Cluster;
use crate::runtime::Paths;

use super::remote;
use super::status::{self, NodeStatus, Verdict};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    pub schema: u32,
    pub cluster: String,
    pub nodes: Vec<NodeStatus>,
    pub groups: Vec<GroupPlacement>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupPlacement {
    pub name: String,
    /// Nodes where the group is active or partly active.
    pub active_on: Vec<String>,
    /// Member nodes whose status could not be read.
    pub unknown_on: Vec<String>,
    /// `none`, `double-active`, or absent when fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
}

impl ClusterStatus {
    pub fn verdict(&self) -> Verdict {
        if self.groups.iter().any(|g| g.alarm.is_some()) {
            return Verdict::SomethingWrong;
        }
        let verdicts: Vec<Verdict> = self.nodes.iter().map(NodeStatus::verdict).collect();
        if verdicts.contains(&Verdict::SomethingWrong) {
            Verdict::SomethingWrong
        } else if verdicts.contains(&Verdict::CannotTell) {
            Verdict::CannotTell
        } else {
            Verdict::AsIntended
        }
    }
}

/// One node's status, over SSH unless it is this node.
pub fn node_status(
    cluster: &Cluster,
    config: &Path,
    me: &str,
    node: &str,
    paths: &Paths,
) -> NodeStatus {
    if node == me {
        return status::local(paths, &cluster.name, me);
    }
    let unreachable = |error: String| NodeStatus {
        quorum: None,
        schema: status::SCHEMA,
        node: node.to_string(),
        cluster: cluster.name.clone(),
        keepalived_running: false,
        agent_running: false,
        error: Some(error),
        maintenance: false,
        problems: Vec::new(),
        groups: Vec::new(),
    };
    let Some(peer) = cluster.node(node) else {
        return unreachable(format!("{node} is not in the cluster file"));
    };
    let timeout = Duration::from_secs(u64::from(cluster.ssh.connect_timeout_secs) + 10);
    let node_arg = format!("--node={node}");
    match remote::hakeep(
        &cluster.ssh,
        peer,
        config,
        &["status", "--json", &node_arg],
        timeout,
    ) {
        Err(e) => unreachable(format!("unreachable: {e:#}")),
        Ok(out) => match serde_json::from_str::<NodeStatus>(&out.stdout) {
            Ok(s) => s,
            Err(e) => unreachable(format!(
                "unreadable status (exit {}): {e}; stderr: {}",
                out.exit,
                out.stderr.trim()
            )),
        },
    }
}

pub fn gather(cluster: &Cluster, config: &Path, me: &str, paths: &Paths) -> ClusterStatus {
    let nodes: Vec<NodeStatus> = std::thread::scope(|scope| {
        let handles: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| scope.spawn(|| node_status(cluster, config, me, &n.name, paths)))
            .collect();
        handles
            .into_iter()
            .zip(&cluster.nodes)
            .map(|(h, n)| {
                h.join().unwrap_or_else(|_| NodeStatus {
                    quorum: None,
                    schema: status::SCHEMA,
                    node: n.name.clone(),
                    cluster: cluster.name.clone(),
                    keepalived_running: false,
                    agent_running: false,
                    error: Some("status collection panicked".into()),
                    maintenance: false,
                    problems: Vec::new(),
                    groups: Vec::new(),
                })
            })
            .collect()
    });
    let groups = cluster
        .groups
        .iter()
        .map(|g| placement(&g.name, &g.nodes, &nodes))
        .collect();
    ClusterStatus {
        schema: status::SCHEMA,
        cluster: cluster.name.clone(),
        nodes,
        groups,
    }
}

/// Where a group is active, from the members' statuses.
pub fn placement(group: &str, members: &[String], nodes: &[NodeStatus]) -> GroupPlacement {
    let mut active_on = Vec::new();
    let mut unknown_on = Vec::new();
    for member in members {
        match nodes.iter().find(|n| &n.node == member) {
            Some(n) if n.error.is_none() => {
                if n.groups
                    .iter()
                    .any(|s| s.name == group && s.state.actual != "standby")
                {
                    active_on.push(member.clone());
                }
            }
            _ => unknown_on.push(member.clone()),
        }
    }
    let alarm = match active_on.len() {
        0 if unknown_on.is_empty() => Some("none: active on no node".to_string()),
        0 => Some(format!(
            "none seen: active on no reachable node ({} unknown)",
            unknown_on.join(", ")
        )),
        1 => None,
        _ => Some(format!(
            "double-active: active on {}",
            active_on.join(" and ")
        )),
    };
    GroupPlacement {
        name: group.to_string(),
        active_on,
        unknown_on,
        alarm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::notify::VrrpState;
    use crate::runtime::state::GroupState;

    fn node(name: &str, active: &[&str], error: bool) -> NodeStatus {
        NodeStatus {
            quorum: None,
            schema: 1,
            node: name.into(),
            cluster: "c".into(),
            keepalived_running: true,
            agent_running: true,
            error: error.then(|| "unreachable".into()),
            maintenance: false,
            problems: Vec::new(),
            groups: ["a", "b"]
                .iter()
                .map(|g| status::GroupStatus {
                    name: g.to_string(),
                    ok: true,
                    state: GroupState {
                        vrrp_state: VrrpState::Backup,
                        desired: "standby".into(),
                        actual: if active.contains(g) {
                            "active"
                        } else {
                            "standby"
                        }
                        .into(),
                        maintenance: false,
                        fault: None,
                        failed: None,
                        resources: Vec::new(),
                        floating_ips: Vec::new(),
                        problems: Vec::new(),
                        last_transition: None,
                        fencing: None,
                        fence_wait: None,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn alarms_for_double_active_and_none() {
        let members = vec!["n1".to_string(), "n2".to_string()];
        let nodes = vec![node("n1", &["a", "b"], false), node("n2", &["a"], false)];
        assert!(placement("a", &members, &nodes)
            .alarm
            .unwrap()
            .starts_with("double-active"));
        assert_eq!(placement("b", &members, &nodes).alarm, None);
        let nodes = vec![node("n1", &[], false), node("n2", &[], true)];
        let p = placement("a", &members, &nodes);
        assert_eq!(p.unknown_on, vec!["n2"]);
        assert!(p.alarm.unwrap().starts_with("none seen"));
    }
}
