//! The data the keepalived template sees: everything decided here, nothing in the template.

use serde::Serialize;

use crate::config::{Cluster, FloatingIp, Group, Node, Preempt};
use crate::keepalived::check::SCRIPT_USER;
use crate::runtime::Paths;

#[derive(Debug, Serialize)]
pub struct KeepalivedView {
    cluster: String,
    node: String,
    router_id: String,
    script_user: &'static str,
    fifo: String,
    advert_int: String,
    vrrp_version: u8,
    auth_pass: Option<String>,
    instances: Vec<InstanceView>,
}

#[derive(Debug, Serialize)]
struct InstanceView {
    name: String,
    track_name: String,
    track_file: String,
    interface: String,
    vrid: u8,
    priority: u8,
    preempt: &'static str,
    preempt_delay: Option<u16>,
    unicast_src_ip: Option<String>,
    unicast_peers: Vec<String>,
    vips: Vec<String>,
    vips_excluded: Vec<String>,
}

impl KeepalivedView {
    /// `None` when `node` is not part of the cluster. The notify FIFO and the track files
    /// are where `paths` has them (the defaults on a node; tests relocate them).
    pub fn new(cluster: &Cluster, node: &str, paths: &Paths) -> Option<Self> {
        let me = cluster.node(node)?;
        let settings = &cluster.keepalived;
        Some(KeepalivedView {
            cluster: cluster.name.clone(),
            node: me.name.clone(),
            router_id: format!("{}-{}", cluster.name, me.name),
            script_user: SCRIPT_USER,
            fifo: paths.fifo.display().to_string(),
            advert_int: seconds(settings.advert_int_ms),
            vrrp_version: settings.vrrp_version,
            auth_pass: settings.auth_pass.clone(),
            instances: cluster
                .groups_of(node)
                .map(|g| InstanceView::new(cluster, g, me, paths))
                .collect(),
        })
    }
}

impl InstanceView {
    fn new(cluster: &Cluster, group: &Group, me: &Node, paths: &Paths) -> Self {
        // A group of one node has no peer to unicast to; keepalived warns about an empty list.
        let unicast = cluster.keepalived.unicast && group.nodes.len() > 1;
        // keepalived takes the instance's family from the unicast addresses, else the first VIP.
        let ipv4_instance = if unicast {
            me.address.is_ipv4()
        } else {
            group.ips.first().is_none_or(|ip| ip.address.is_ipv4())
        };
        let (vips, vips_excluded): (Vec<&FloatingIp>, Vec<&FloatingIp>) = group
            .ips
            .iter()
            .partition(|ip| ip.address.is_ipv4() == ipv4_instance);
        let render_ip = |ip: &&FloatingIp| {
            let dev = ip.interface.as_deref().unwrap_or(&me.interface);
            format!("{}/{} dev {dev}", ip.address, ip.prefix)
        };
        let peers = group
            .nodes
            .iter()
            .filter(|n| **n != me.name)
            .filter_map(|n| cluster.node(n))
            .map(|n| n.address.to_string())
            .collect();
        InstanceView {
            name: group.name.clone(),
            track_name: format!("hakeep_{}", group.name),
            track_file: paths.track_file(&group.name).display().to_string(),
            interface: me.interface.clone(),
            vrid: group.vrid,
            priority: group.priority_of(&me.name).unwrap_or(1),
            preempt: match group.preempt {
                Preempt::Never => "never",
                Preempt::Immediately => "immediately",
                Preempt::AfterSeconds(_) => "delayed",
            },
            preempt_delay: match group.preempt {
                Preempt::AfterSeconds(s) if s > 0 => Some(s),
                _ => None,
            },
            unicast_src_ip: unicast.then(|| me.address.to_string()),
            unicast_peers: if unicast { peers } else { Vec::new() },
            vips: vips.iter().map(render_ip).collect(),
            vips_excluded: vips_excluded.iter().map(render_ip).collect(),
        }
    }
}

/// Milliseconds as keepalived's decimal seconds: 1000 → "1", 200 → "0.2", 50 → "0.05".
fn seconds(ms: u32) -> String {
    let whole = ms / 1000;
    let centis = (ms % 1000) / 10;
    match centis {
        0 => whole.to_string(),
        c if c % 10 == 0 => format!("{whole}.{}", c / 10),
        c => format!("{whole}.{c:02}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_are_written_as_keepalived_reads_them() {
        assert_eq!(super::seconds(1000), "1");
        assert_eq!(super::seconds(200), "0.2");
        assert_eq!(super::seconds(50), "0.05");
        assert_eq!(super::seconds(1250), "1.25");
    }
}
