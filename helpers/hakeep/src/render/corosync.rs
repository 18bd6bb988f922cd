//! corosync.conf from the cluster model's `quorum:` section: the same file on every node.

use serde::Serialize;

use crate::config::{two_node_quorum, Cluster, TieBreaker};

#[derive(Debug, Serialize)]
pub struct CorosyncView {
    cluster: String,
    token: u32,
    links: Vec<usize>,
    nodes: Vec<NodeView>,
    two_node: bool,
    qdevice: Option<QdeviceView>,
}

#[derive(Debug, Serialize)]
struct NodeView {
    name: String,
    nodeid: u32,
    addresses: Vec<String>,
}

#[derive(Debug, Serialize)]
struct QdeviceView {
    host: String,
    port: u16,
    algorithm: &'static str,
    tie_breaker: String,
}

impl CorosyncView {
    /// `None` when the cluster has no `quorum:` section.
    pub fn new(cluster: &Cluster) -> Option<Self> {
        let quorum = cluster.quorum.as_ref()?;
        let nodes = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeView {
                name: node.name.clone(),
                nodeid: cluster.corosync_nodeid(&node.name).unwrap_or(0),
                addresses: quorum
                    .links
                    .iter()
                    .filter_map(|link| link.get(i).map(|a| a.to_string()))
                    .collect(),
            })
            .collect();
        let qdevice = quorum.qdevice.as_ref().map(|q| QdeviceView {
            host: q.host.clone(),
            port: q.port,
            algorithm: q.algorithm.as_str(),
            tie_breaker: match &q.tie_breaker {
                TieBreaker::Lowest => "lowest".into(),
                TieBreaker::Highest => "highest".into(),
                // qnetd names the favoured node by its corosync node id.
                TieBreaker::Node(name) => cluster
                    .corosync_nodeid(name)
                    .map_or_else(|| "lowest".into(), |id| id.to_string()),
            },
        });
        Some(CorosyncView {
            cluster: cluster.name.clone(),
            token: quorum.token_ms,
            links: (0..quorum.links.len()).collect(),
            nodes,
            two_node: two_node_quorum(cluster),
            qdevice,
        })
    }
}
