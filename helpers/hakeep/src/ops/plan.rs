//! `hakeep plan`: what a node needs from its deployment, derived from the model, so the
//! Ansible roles never re-derive it in Jinja (docs/cli.md has the JSON schema).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{CheckKind, Cluster, Filesystem, Group, Service, Volume};

/// Bumped when a field changes meaning or goes; new fields do not bump it.
pub const SCHEMA: u32 = 1;

/// Debian packages hakeep's own code runs on every node (`ip`: floating IP cleanup).
const BASE_PACKAGES: &[&str] = &["iproute2"];

#[derive(Debug, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub cluster: String,
    pub node: String,
    /// Where the node name came from (`--node`, HAKEEP_NODE, /etc/hakeep/node, the hostname).
    pub node_source: String,
    /// The node's groups, in file order.
    pub groups: Vec<GroupPlan>,
    /// Every systemd unit of the node's groups (canonical names), first seen first.
    pub units: Vec<String>,
    /// Every resource script of the node's groups.
    pub scripts: Vec<String>,
    /// `none`, `iscsi`, `nvmesh`: the volume kinds of the node's groups.
    pub volume_kinds: Vec<String>,
    /// `ping`, `tcp`, `mount`, `ip`, `command`: the check kinds of the node's groups.
    pub check_kinds: Vec<String>,
    /// Every mountpoint of the node's groups.
    pub mountpoints: Vec<String>,
    /// The iSCSI LUNs of the node's groups (the initiator role prepares their logins).
    pub iscsi_luns: Vec<IscsiLun>,
    /// Debian packages hakeep's drivers and checks need on this node.
    pub packages: Vec<String>,
    /// Every floating IP address of the cluster (without prefix): a peer's SSH connection
    /// may leave from one.
    pub floating_addresses: Vec<String>,
    /// Set when the cluster has `quorum:`: the corosync role configures corosync (and
    /// corosync-qdevice when `qdevice` names the qnetd host).
    pub quorum: Option<QuorumPlan>,
    /// Whether a group of this node is fenced by the watchdog (the node needs one).
    pub watchdog: bool,
    /// The watchdog device of `watchdog:`.
    pub watchdog_device: String,
}

#[derive(Debug, Serialize)]
pub struct QuorumPlan {
    pub qdevice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiLun {
    /// host:port.
    pub portal: String,
    pub target: String,
    pub lun: u16,
}

#[derive(Debug, Serialize)]
pub struct GroupPlan {
    pub name: String,
    pub vrid: u8,
    /// The group's nodes in preference order (the first is preferred).
    pub nodes: Vec<String>,
    pub priority: u8,
    pub units: Vec<String>,
    pub scripts: Vec<String>,
    pub volume_kinds: Vec<String>,
    pub mountpoints: Vec<String>,
    pub floating_ips: Vec<String>,
}

/// Unique values in first-seen order.
fn unique(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

pub fn volume_kind(volume: &Volume) -> &'static str {
    match volume {
        Volume::None => "none",
        Volume::Iscsi(_) => "iscsi",
        Volume::Nvmesh(_) => "nvmesh",
    }
}

pub fn check_kind(kind: &CheckKind) -> &'static str {
    match kind {
        CheckKind::Ping(_) => "ping",
        CheckKind::Tcp { .. } => "tcp",
        CheckKind::Mount(_) => "mount",
        CheckKind::Ip(_) => "ip",
        CheckKind::Command(_) => "command",
    }
}

/// Debian packages whose programs a volume kind's driver runs. NVMesh's client comes from
/// its vendor, so the plan names none for it.
fn volume_packages(kind: &str) -> &'static [&'static str] {
    match kind {
        "iscsi" => &["open-iscsi", "sg3-utils"],
        _ => &[],
    }
}

/// Debian packages whose programs a check kind runs.
fn check_packages(kind: &str) -> &'static [&'static str] {
    match kind {
        "ping" => &["iputils-ping"],
        _ => &[],
    }
}

/// Debian packages an alert program shipped with hakeep runs (the e-mail program needs an
/// MTA, which is the operator's choice: docs/operations.md).
fn alert_packages(program: &std::path::Path) -> &'static [&'static str] {
    if program == std::path::Path::new("/usr/lib/hakeep/alerts/webhook") {
        &["curl"]
    } else {
        &[]
    }
}

fn units(group: &Group) -> impl Iterator<Item = String> + '_ {
    group.services.iter().filter_map(|s| match s {
        Service::Unit(u) => Some(u.clone()),
        Service::Script { .. } => None,
    })
}

fn scripts(group: &Group) -> impl Iterator<Item = String> + '_ {
    group.services.iter().filter_map(|s| match s {
        Service::Script { path, .. } => Some(path.display().to_string()),
        Service::Unit(_) => None,
    })
}

fn mountpoints(group: &Group) -> impl Iterator<Item = String> + '_ {
    group
        .filesystems
        .iter()
        .map(|f: &Filesystem| f.mountpoint().display().to_string())
}

fn group_plan(group: &Group, node: &str) -> GroupPlan {
    GroupPlan {
        name: group.name.clone(),
        vrid: group.vrid,
        nodes: group.nodes.clone(),
        priority: group.priority_of(node).unwrap_or_default(),
        units: unique(units(group)),
        scripts: unique(scripts(group)),
        volume_kinds: unique(group.volumes.iter().map(|v| volume_kind(v).to_string())),
        mountpoints: unique(mountpoints(group)),
        floating_ips: group
            .ips
            .iter()
            .map(|ip| format!("{}/{}", ip.address, ip.prefix))
            .collect(),
    }
}

/// The plan of `node`, which must be a node of `cluster`.
pub fn of(cluster: &Cluster, node: &str, node_source: &str) -> Plan {
    let groups: Vec<&Group> = cluster.groups_of(node).collect();
    let volume_kinds = unique(
        groups
            .iter()
            .flat_map(|g| &g.volumes)
            .map(|v| volume_kind(v).to_string()),
    );
    let check_kinds = unique(
        groups
            .iter()
            .flat_map(|g| &g.checks)
            .map(|c| check_kind(&c.kind).to_string()),
    );
    let mut iscsi_luns: Vec<IscsiLun> = Vec::new();
    for volume in groups.iter().flat_map(|g| &g.volumes) {
        if let Volume::Iscsi(v) = volume {
            let lun = IscsiLun {
                portal: v.portal.clone(),
                target: v.target.clone(),
                lun: v.lun,
            };
            if !iscsi_luns.contains(&lun) {
                iscsi_luns.push(lun);
            }
        }
    }
    let packages = unique(
        BASE_PACKAGES
            .iter()
            .chain(volume_kinds.iter().flat_map(|k| volume_packages(k)))
            .chain(check_kinds.iter().flat_map(|k| check_packages(k)))
            .chain(
                cluster
                    .alerts
                    .iter()
                    .flat_map(|a| alert_packages(&a.program)),
            )
            .chain(quorum_packages(cluster))
            .map(|p| p.to_string()),
    );
    Plan {
        schema: SCHEMA,
        cluster: cluster.name.clone(),
        node: node.to_string(),
        node_source: node_source.to_string(),
        units: unique(groups.iter().flat_map(|g| units(g))),
        scripts: unique(groups.iter().flat_map(|g| scripts(g))),
        mountpoints: unique(groups.iter().flat_map(|g| mountpoints(g))),
        groups: groups.iter().map(|g| group_plan(g, node)).collect(),
        volume_kinds,
        check_kinds,
        iscsi_luns,
        packages,
        floating_addresses: unique(
            cluster
                .groups
                .iter()
                .flat_map(|g| &g.ips)
                .map(|ip| ip.address.to_string()),
        ),
        quorum: cluster.quorum.as_ref().map(|q| QuorumPlan {
            qdevice: q.qdevice.as_ref().map(|d| d.host.clone()),
        }),
        watchdog: cluster.watchdog_fenced_on(node),
        watchdog_device: cluster.watchdog.device.display().to_string(),
    }
}

/// corosync, and its qdevice when an arbitrator is configured.
fn quorum_packages(cluster: &Cluster) -> impl Iterator<Item = &'static &'static str> {
    let quorum: &[&str] = match &cluster.quorum {
        None => &[],
        Some(q) if q.qdevice.is_some() => &["corosync", "corosync-qdevice"],
        Some(_) => &["corosync"],
    };
    quorum.iter()
}

/// The plan for people: one line per group, then what the node needs.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "node {} of cluster {} (name from {})\n",
        plan.node, plan.cluster, plan.node_source
    );
    for g in &plan.groups {
        let _ = writeln!(
            out,
            "  group {} (vrid {}, priority {}): units [{}], scripts [{}], volumes [{}], mounts [{}], ips [{}]",
            g.name,
            g.vrid,
            g.priority,
            g.units.join(", "),
            g.scripts.join(", "),
            g.volume_kinds.join(", "),
            g.mountpoints.join(", "),
            g.floating_ips.join(", ")
        );
    }
    let _ = writeln!(out, "packages: {}", plan.packages.join(" "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = r#"
cluster: demo
nodes:
  a: { address: 10.0.0.1, interface: eth0 }
  b: { address: 10.0.0.2, interface: eth0 }
  c: { address: 10.0.0.3, interface: eth0 }
groups:
  db:
    vrid: 10
    nodes: [a, b]
    volumes:
      - iscsi: { portal: "10.0.0.9:3260", target: "iqn.2026-01.org.example:db", lun: 0 }
    filesystems:
      - { device: /dev/disk/by-label/db, mountpoint: /srv/db, fstype: ext4 }
    ips: [10.0.0.100/24]
    services: [mariadb, { script: /usr/local/lib/hakeep/db-extra, timeout: 10 }]
    checks:
      - ping: 10.0.0.254
      - tcp: "10.0.0.100:3306"
  web:
    vrid: 11
    nodes: [b, a]
    ips: [10.0.0.101/24]
    services: [nginx.service, mariadb.service]
  other:
    vrid: 12
    nodes: [c]
    ips: [10.0.0.102/24]
    services: [other]
"#;

    fn plan(node: &str) -> Plan {
        let cluster = crate::config::from_str("cluster.yml", CLUSTER).unwrap();
        of(&cluster, node, "--node")
    }

    #[test]
    fn a_node_gets_its_groups_units_and_packages() {
        let p = plan("a");
        let names: Vec<_> = p.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        assert_eq!(p.units, ["mariadb.service", "nginx.service"]);
        assert_eq!(p.scripts, ["/usr/local/lib/hakeep/db-extra"]);
        assert_eq!(p.volume_kinds, ["iscsi"]);
        assert_eq!(p.check_kinds, ["ping", "tcp"]);
        assert_eq!(p.mountpoints, ["/srv/db"]);
        assert_eq!(
            p.iscsi_luns,
            [IscsiLun {
                portal: "10.0.0.9:3260".into(),
                target: "iqn.2026-01.org.example:db".into(),
                lun: 0
            }]
        );
        assert_eq!(
            p.packages,
            ["iproute2", "open-iscsi", "sg3-utils", "iputils-ping"]
        );
        assert_eq!(p.groups[0].priority, 200);
        assert_eq!(p.groups[1].priority, 190);
        assert_eq!(p.groups[1].nodes, ["b", "a"]);
        assert!(p.groups[1].volume_kinds.is_empty());
        assert_eq!(
            p.floating_addresses,
            ["10.0.0.100", "10.0.0.101", "10.0.0.102"]
        );
    }

    #[test]
    fn a_node_without_iscsi_or_ping_needs_only_the_base() {
        let p = plan("c");
        assert_eq!(p.units, ["other.service"]);
        assert_eq!(p.packages, ["iproute2"]);
        assert!(p.mountpoints.is_empty());
    }

    #[test]
    fn the_webhook_alert_brings_curl() {
        let text = format!(
            "{CLUSTER}alerts:\n  - program: /usr/lib/hakeep/alerts/webhook\n    args: [http://x]\n\
             \x20 - program: /usr/lib/hakeep/alerts/email\n    args: [root@localhost]\n"
        );
        let cluster = crate::config::from_str("cluster.yml", &text).unwrap();
        assert_eq!(of(&cluster, "c", "--node").packages, ["iproute2", "curl"]);
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let v = serde_json::to_value(plan("b")).unwrap();
        for field in [
            "schema",
            "cluster",
            "node",
            "node_source",
            "groups",
            "units",
            "scripts",
            "volume_kinds",
            "check_kinds",
            "mountpoints",
            "iscsi_luns",
            "packages",
            "floating_addresses",
        ] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        assert_eq!(v["schema"], SCHEMA);
        assert!(render(&plan("b")).contains("group web (vrid 11, priority 200)"));
    }
}
