//! `quorum:`, `watchdog:` and each group's `fencing:`: what keeps a group from being
//! served on both sides of a partition (docs/fencing.md).

use std::collections::HashMap;
use std::net::IpAddr;

use marked_yaml::Node;

use super::diagnostic::quoted;
use super::model::*;
use super::parse::{checked_string, named_entries, scalar_text};
use super::reader::{pos_of, FieldPath, Reader};
use super::syntax;

/// knet carries at most 8 links.
const MAX_LINKS: usize = 8;
/// corosync-qnetd's default port.
const QNETD_PORT: u16 = 5403;
const DEFAULT_TOKEN_MS: u32 = 3000;

/// The links as read: each a map of node name to its address there, in file order.
pub type RawLinks = Vec<Vec<(String, IpAddr, FieldPath)>>;

pub fn quorum(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<(QuorumSettings, RawLinks)> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["links", "qdevice", "token", "release_timeout"]);
    let mut raw_links = Vec::new();
    if let Some(n) = map.get_node("links") {
        let p = path.key("links");
        if let Some(seq) = r.sequence(n, &p) {
            if seq.is_empty() || seq.len() > MAX_LINKS {
                r.error(
                    pos_of(n.span()),
                    &p,
                    format!(
                        "lists {} links; corosync's knet takes 1 to {MAX_LINKS}",
                        seq.len()
                    ),
                );
            }
            for (i, item) in seq.iter().enumerate() {
                raw_links.push(link(r, item, &p.index(i)));
            }
        }
    }
    let qdevice = map
        .get_node("qdevice")
        .and_then(|n| qdevice(r, n, &path.key("qdevice")));
    let token_ms = match map.get_node("token") {
        Some(n) => r.integer(n, &path.key("token"), 500, 60_000)? as u32,
        None => DEFAULT_TOKEN_MS,
    };
    let release_timeout_secs = match map.get_node("release_timeout") {
        Some(n) => r.integer(n, &path.key("release_timeout"), 5, 3600)? as u32,
        None => DEFAULT_RELEASE_TIMEOUT_SECS,
    };
    Some((
        QuorumSettings {
            links: Vec::new(),
            qdevice,
            token_ms,
            release_timeout_secs,
        },
        raw_links,
    ))
}

/// A link: each node's address on it (names that are not nodes are reported later).
fn link(r: &mut Reader, node: &Node, path: &FieldPath) -> Vec<(String, IpAddr, FieldPath)> {
    named_entries(r, node, path, |r, name, value, p| {
        checked_string(r, value, p, syntax::ip_address).map(|address| (name, address, p.clone()))
    })
}

fn qdevice(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Qdevice> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["host", "port", "algorithm", "tie_breaker"]);
    let host = r
        .required(map, path, "host")
        .and_then(|n| checked_string(r, n, &path.key("host"), host_name).map(|()| scalar_text(n)));
    let port = match map.get_node("port") {
        Some(n) => r.integer(n, &path.key("port"), 1, 65535)? as u16,
        None => QNETD_PORT,
    };
    let algorithm = match map.get_node("algorithm") {
        Some(n) => {
            let p = path.key("algorithm");
            let text = r.string(n, &p)?;
            match text.as_str() {
                "ffsplit" => QdeviceAlgorithm::Ffsplit,
                "lms" => QdeviceAlgorithm::Lms,
                _ => {
                    r.error(
                        pos_of(n.span()),
                        &p,
                        format!("{} is not ffsplit or lms", quoted(&text)),
                    );
                    return None;
                }
            }
        }
        None => QdeviceAlgorithm::Ffsplit,
    };
    let tie_breaker = match map.get_node("tie_breaker") {
        Some(n) => {
            let text = r.string(n, &path.key("tie_breaker"))?;
            match text.as_str() {
                "lowest" => TieBreaker::Lowest,
                "highest" => TieBreaker::Highest,
                _ => TieBreaker::Node(text),
            }
        }
        None => TieBreaker::Lowest,
    };
    Some(Qdevice {
        host: host?,
        port,
        algorithm,
        tie_breaker,
    })
}

/// An IP address or a DNS name (letters, digits, `-` and `.`).
fn host_name(value: &str) -> Result<(), String> {
    if syntax::ip_address(value).is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if value.len() <= 253 && value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("is neither an IP address nor a host name".into())
    }
}

pub fn watchdog(r: &mut Reader, node: &Node, path: &FieldPath) -> WatchdogSettings {
    let mut settings = WatchdogSettings::default();
    let Some(map) = r.mapping(node, path) else {
        return settings;
    };
    r.reject_unknown_keys(map, path, &["device", "timeout"]);
    if let Some(n) = map.get_node("device") {
        let p = path.key("device");
        if let Some(device) = checked_string(r, n, &p, syntax::absolute_path) {
            if device.starts_with("/dev/") {
                settings.device = device;
            } else {
                r.error(
                    pos_of(n.span()),
                    &p,
                    format!("{} is not a device under /dev", device.display()),
                );
            }
        }
    }
    if let Some(n) = map.get_node("timeout") {
        if let Some(secs) = r.integer(n, &path.key("timeout"), 2, 300) {
            settings.timeout_secs = secs as u32;
        }
    }
    settings
}

/// A group's `fencing:` as written.
pub fn fencing(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Fencing> {
    let text = r.string(node, path)?;
    match text.as_str() {
        "storage" => Some(Fencing::Storage),
        "watchdog" => Some(Fencing::Watchdog),
        "none" => Some(Fencing::None),
        _ => {
            r.error(
                pos_of(node.span()),
                path,
                format!("{} is not storage, watchdog or none", quoted(&text)),
            );
            None
        }
    }
}

/// The fencing a group gets when its file says nothing.
pub fn default_fencing(volumes: &[Volume], quorum: bool) -> Fencing {
    if volumes.iter().any(Volume::fences) {
        Fencing::Storage
    } else if quorum {
        Fencing::Watchdog
    } else {
        Fencing::None
    }
}

/// Puts each link's addresses in `nodes:` order once the nodes are known, reporting
/// missing and unknown nodes; no `links:` means one link of the nodes' own addresses.
pub fn resolve_links(
    r: &mut Reader,
    quorum: &mut QuorumSettings,
    raw: &RawLinks,
    nodes: &[super::model::Node],
) {
    if raw.is_empty() {
        quorum.links = vec![nodes.iter().map(|n| n.address).collect()];
        return;
    }
    let mut seen: HashMap<IpAddr, String> = HashMap::new();
    for (i, entries) in raw.iter().enumerate() {
        let link_path = format!("quorum.links[{i}]");
        for (name, address, p) in entries {
            if !nodes.iter().any(|n| &n.name == name) {
                let pos = r.position(p.as_str());
                r.error(pos, p, format!("{name:?} is not a node of `nodes:`"));
            }
            if let Some(first) = seen.insert(*address, name.clone()) {
                let pos = r.position(p.as_str());
                r.error(
                    pos,
                    p,
                    format!("{address} is already {first:?}'s address on a link"),
                );
            }
        }
        let mut addresses = Vec::new();
        for node in nodes {
            match entries.iter().find(|(name, _, _)| name == &node.name) {
                Some((_, address, _)) => addresses.push(*address),
                None => {
                    let pos = r.position(&link_path);
                    r.error(
                        pos,
                        &FieldPath::root().key("quorum").key("links").index(i),
                        format!(
                            "has no address for node {:?}: every link joins every node",
                            node.name
                        ),
                    );
                }
            }
        }
        quorum.links.push(addresses);
    }
}

/// Rules across quorum, fencing and the groups.
pub fn validate(
    r: &mut Reader,
    cluster: &Cluster,
    report: &mut dyn FnMut(&mut Reader, &str, String),
) {
    for group in &cluster.groups {
        let path = format!("groups.{}.fencing", group.name);
        match group.fencing {
            Fencing::Storage if !group.volumes.iter().any(Volume::fences) => report(
                r,
                &path,
                format!(
                    "group {:?} has no volume that can fence (iscsi, nvmesh): storage fencing \
                     would protect nothing; use watchdog (with quorum:) or none",
                    group.name
                ),
            ),
            Fencing::Watchdog if cluster.quorum.is_none() => report(
                r,
                &path,
                "watchdog fencing needs `quorum:`: a node must know it lost its peers to \
                 release in time"
                    .into(),
            ),
            Fencing::Watchdog if two_node_quorum(cluster) => report(
                r,
                &path,
                format!(
                    "group {:?} is fenced by the watchdog, but a two-node cluster without \
                     quorum.qdevice keeps quorum on both sides of a partition (two_node); add \
                     quorum.qdevice (corosync-qnetd on a third machine) or set `fencing: none` \
                     to accept serving twice",
                    group.name
                ),
            ),
            _ => {}
        }
    }
    let Some(quorum) = &cluster.quorum else {
        return;
    };
    if let Some(qdevice) = &quorum.qdevice {
        if let Ok(address) = qdevice.host.parse::<IpAddr>() {
            let on_node = cluster
                .nodes
                .iter()
                .find(|n| n.address == address)
                .or_else(|| {
                    cluster
                        .nodes
                        .iter()
                        .enumerate()
                        .find(|(i, _)| quorum.links.iter().any(|l| l.get(*i) == Some(&address)))
                        .map(|(_, n)| n)
                });
            if let Some(node) = on_node {
                report(
                    r,
                    "quorum.qdevice.host",
                    format!(
                        "{address} is node {:?}: the arbitrator must be a third machine, or it \
                         fails with the node it runs on",
                        node.name
                    ),
                );
            }
        }
        if let TieBreaker::Node(name) = &qdevice.tie_breaker {
            if cluster.node(name).is_none() {
                report(
                    r,
                    "quorum.qdevice.tie_breaker",
                    format!(
                        "{} is not lowest, highest or a node of `nodes:`",
                        quoted(name)
                    ),
                );
            }
        }
    }
}

/// Two nodes and no arbitrator: corosync's two_node mode, quorate on both sides of a split.
pub fn two_node_quorum(cluster: &Cluster) -> bool {
    cluster
        .quorum
        .as_ref()
        .is_some_and(|q| q.qdevice.is_none() && cluster.nodes.len() == 2)
}
