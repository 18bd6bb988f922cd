//! Rules that span fields: references, uniqueness, and what keepalived needs of an
//! instance. Positions come from the reader, so every error still names a line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::model::*;
use super::reader::Reader;

pub fn cluster(r: &mut Reader, cluster: &Cluster) {
    node_addresses(r, cluster);
    vrids(r, cluster);
    floating_ips(r, cluster);
    mountpoints(r, cluster);
    for group in &cluster.groups {
        group_nodes(r, cluster, group);
        instance_family(r, cluster, group);
    }
    super::quorum::validate(r, cluster, &mut report);
    if cluster.keepalived.vrrp_version == 3 && cluster.keepalived.auth_pass.is_some() {
        report(
            r,
            "keepalived.auth_pass",
            "VRRPv3 has no authentication; remove auth_pass or use vrrp_version: 2".into(),
        );
    }
}

/// Reports at `path` unless the reader already found a problem there.
fn report(r: &mut Reader, path: &str, message: String) {
    if r.has_error_under(path) {
        return;
    }
    let pos = r.position(path);
    r.diagnostics.push(super::diagnostic::Diagnostic {
        pos,
        path: path.to_string(),
        message,
    });
}

/// An address a node cannot be reached at from its peers, or `None`.
fn unusable_node_address(address: IpAddr) -> Option<&'static str> {
    if address.is_unspecified() {
        return Some("is the unspecified address; give the node's own address");
    }
    if address.is_loopback() {
        return Some("is a loopback address: the peers cannot reach the node there");
    }
    if address.is_multicast() {
        return Some("is a multicast address, not a node's address");
    }
    match address {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("is the broadcast address, not a node's"),
        _ => None,
    }
}

/// A floating IP that is its subnet's network or broadcast address, or `None`.
fn network_or_broadcast(ip: &FloatingIp) -> Option<&'static str> {
    let IpAddr::V4(v4) = ip.address else {
        return None;
    };
    if ip.prefix >= 31 || ip.prefix == 0 {
        return None;
    }
    let host_bits = u32::MAX >> ip.prefix;
    let bits = u32::from(v4);
    if bits & host_bits == 0 {
        Some("network")
    } else if bits & host_bits == host_bits {
        Some("broadcast")
    } else {
        None
    }
}

fn node_addresses(r: &mut Reader, cluster: &Cluster) {
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for node in &cluster.nodes {
        if let Some(why) = unusable_node_address(node.address) {
            report(
                r,
                &format!("nodes.{}.address", node.name),
                format!("{} {why}", node.address),
            );
        }
        if let Some(first) = seen.insert(node.address, &node.name) {
            seen.insert(node.address, first);
            report(
                r,
                &format!("nodes.{}.address", node.name),
                format!("{} is already the address of node {first:?}", node.address),
            );
        }
    }
}

fn vrids(r: &mut Reader, cluster: &Cluster) {
    let mut seen: HashMap<u8, &str> = HashMap::new();
    for group in &cluster.groups {
        if let Some(first) = seen.get(&group.vrid) {
            report(
                r,
                &format!("groups.{}.vrid", group.name),
                format!("vrid {} is already used by group {first:?}", group.vrid),
            );
        } else {
            seen.insert(group.vrid, &group.name);
        }
    }
}

fn floating_ips(r: &mut Reader, cluster: &Cluster) {
    let node_addresses: HashMap<IpAddr, &str> = cluster
        .nodes
        .iter()
        .map(|n| (n.address, n.name.as_str()))
        .collect();
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for group in &cluster.groups {
        let ips_path = format!("groups.{}.ips", group.name);
        if group.ips.is_empty() {
            report(
                r,
                &ips_path,
                "a group needs at least one floating IP: keepalived refuses a VRRP instance without one".into(),
            );
        }
        for (i, ip) in group.ips.iter().enumerate() {
            let path = format!("{ips_path}[{i}].address");
            if let Some(which) = network_or_broadcast(ip) {
                report(
                    r,
                    &path,
                    format!(
                        "{}/{} is the {which} address of its subnet, not a host's: pick another address or prefix",
                        ip.address, ip.prefix
                    ),
                );
            } else if ip.address.is_unspecified()
                || ip.address.is_loopback()
                || ip.address.is_multicast()
            {
                report(
                    r,
                    &path,
                    format!(
                        "{} cannot be a floating IP (unspecified, loopback or multicast)",
                        ip.address
                    ),
                );
            } else if let Some(node) = node_addresses.get(&ip.address) {
                report(
                    r,
                    &path,
                    format!(
                        "{} is the fixed address of node {node:?}, not a floating IP",
                        ip.address
                    ),
                );
            } else if let Some(first) = seen.get(&ip.address) {
                report(
                    r,
                    &path,
                    format!("{} is already a floating IP of group {first:?}", ip.address),
                );
            } else {
                seen.insert(ip.address, &group.name);
            }
        }
    }
}

/// Two groups that could be active on one node must not mount on the same place.
fn mountpoints(r: &mut Reader, cluster: &Cluster) {
    let mut seen: HashMap<&PathBuf, &str> = HashMap::new();
    for group in &cluster.groups {
        for (i, fs) in group.filesystems.iter().enumerate() {
            if let Some(first) = seen.get(fs.mountpoint()) {
                let whose = if *first == group.name {
                    "this group".to_string()
                } else {
                    format!("group {first:?}")
                };
                report(
                    r,
                    &format!("groups.{}.filesystems[{i}].mountpoint", group.name),
                    format!(
                        "{} is already mounted by {whose}",
                        fs.mountpoint().display()
                    ),
                );
            } else {
                seen.insert(fs.mountpoint(), &group.name);
            }
        }
    }
    nesting(r, cluster);
}

/// A mountpoint under another one is mounted after it, in the same group: a group's
/// filesystems are mounted in file order, and another group's would be hidden by (or
/// hide) this one's whenever both are active on one node.
fn nesting(r: &mut Reader, cluster: &Cluster) {
    let all: Vec<(&Group, usize, &PathBuf)> = cluster
        .groups
        .iter()
        .flat_map(|g| {
            g.filesystems
                .iter()
                .enumerate()
                .map(move |(i, fs)| (g, i, fs.mountpoint()))
        })
        .collect();
    for &(group, i, inner) in &all {
        for &(other, j, outer) in &all {
            if inner == outer || !inner.starts_with(outer) {
                continue;
            }
            let path = format!("groups.{}.filesystems[{i}].mountpoint", group.name);
            if other.name != group.name {
                report(
                    r,
                    &path,
                    format!(
                        "{} is under {}, a mountpoint of group {:?}: one group's filesystems must not nest in another's",
                        inner.display(),
                        outer.display(),
                        other.name
                    ),
                );
            } else if j > i {
                report(
                    r,
                    &path,
                    format!(
                        "{} is under {}, which this group mounts later (filesystems[{j}]): list {} first",
                        inner.display(),
                        outer.display(),
                        outer.display()
                    ),
                );
            }
        }
    }
}

fn group_nodes(r: &mut Reader, cluster: &Cluster, group: &Group) {
    for (i, name) in group.nodes.iter().enumerate() {
        if cluster.node(name).is_none() && !r.has_error_under(&format!("nodes.{name}")) {
            let known: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
            report(
                r,
                &format!("groups.{}.nodes[{i}]", group.name),
                format!("unknown node {name:?}; nodes: {}", known.join(", ")),
            );
        }
    }
}

/// keepalived takes an instance's address family from its unicast addresses (or, with
/// multicast, its first VIP); `virtual_ipaddress` must hold at least one of that family.
fn instance_family(r: &mut Reader, cluster: &Cluster, group: &Group) {
    let settings = &cluster.keepalived;
    let members: Vec<&Node> = group.nodes.iter().filter_map(|n| cluster.node(n)).collect();
    let family = if settings.unicast {
        let v4 = members.iter().filter(|n| n.address.is_ipv4()).count();
        if v4 != 0 && v4 != members.len() {
            report(
                r,
                &format!("groups.{}.nodes", group.name),
                "unicast VRRP needs every node of a group to have an address of the same family"
                    .into(),
            );
            return;
        }
        match members.first() {
            Some(n) => n.address.is_ipv4(),
            None => return,
        }
    } else {
        match group.ips.first() {
            Some(ip) => ip.address.is_ipv4(),
            None => return,
        }
    };
    let family_name = if family { "IPv4" } else { "IPv6" };
    if !group.ips.is_empty() && !group.ips.iter().any(|ip| ip.address.is_ipv4() == family) {
        report(
            r,
            &format!("groups.{}.ips", group.name),
            format!("the VRRP instance is {family_name} (its nodes' addresses): it needs at least one {family_name} floating IP"),
        );
    }
    if !family && settings.vrrp_version == 2 {
        report(
            r,
            &format!("groups.{}.ips", group.name),
            "VRRPv2 carries IPv4 only; an IPv6 instance needs keepalived.vrrp_version: 3".into(),
        );
    }
}
