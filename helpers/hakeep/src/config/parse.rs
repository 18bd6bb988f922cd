//! Builds the typed model from the marked YAML tree. Every shape and value problem is
//! recorded; entries that fail are left out so that the rest can still be checked.

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::Node;

use super::diagnostic::quoted;
use super::model::*;
use super::monitoring;
use super::quorum;
use super::reader::{pos_of, FieldPath, Reader};
use super::syntax;

const DEFAULT_SCRIPT_TIMEOUT_SECS: u32 = 90;

/// Reads the whole document; missing or broken parts are reported and defaulted.
pub fn cluster(r: &mut Reader, root: &Node) -> Cluster {
    let path = FieldPath::root();
    let mut cluster = Cluster {
        name: String::new(),
        keepalived: KeepalivedSettings::default(),
        agent: AgentSettings::default(),
        ssh: SshSettings::default(),
        metrics: None,
        alerts: Vec::new(),
        quorum: None,
        watchdog: WatchdogSettings::default(),
        nodes: Vec::new(),
        groups: Vec::new(),
    };
    let Some(map) = r.mapping(root, &path) else {
        return cluster;
    };
    r.reject_unknown_keys(
        map,
        &path,
        &[
            "cluster",
            "keepalived",
            "agent",
            "ssh",
            "metrics",
            "alerts",
            "quorum",
            "watchdog",
            "nodes",
            "groups",
        ],
    );
    if let Some(node) = r.required(map, &path, "cluster") {
        cluster.name = checked_string(r, node, &path.key("cluster"), syntax::name)
            .map(|()| scalar_text(node))
            .unwrap_or_default();
    }
    if let Some(node) = map.get_node("keepalived") {
        cluster.keepalived = keepalived(r, node, &path.key("keepalived"));
    }
    if let Some(node) = map.get_node("agent") {
        cluster.agent = agent(r, node, &path.key("agent"));
    }
    if let Some(node) = map.get_node("ssh") {
        cluster.ssh = ssh(r, node, &path.key("ssh"));
    }
    if let Some(node) = map.get_node("metrics") {
        cluster.metrics = monitoring::metrics(r, node, &path.key("metrics"));
    }
    cluster.alerts = list(r, map, &path, "alerts", monitoring::alert);
    let quorum = map
        .get_node("quorum")
        .and_then(|n| quorum::quorum(r, n, &path.key("quorum")));
    if let Some(node) = map.get_node("watchdog") {
        cluster.watchdog = quorum::watchdog(r, node, &path.key("watchdog"));
    }
    if let Some(node) = r.required(map, &path, "nodes") {
        cluster.nodes = named_entries(r, node, &path.key("nodes"), node_entry);
    }
    let quorum_on = map.get_node("quorum").is_some();
    if let Some(node) = r.required(map, &path, "groups") {
        cluster.groups = named_entries(r, node, &path.key("groups"), |r, name, n, p| {
            group(r, name, n, p, quorum_on)
        });
    }
    if let Some((mut settings, raw_links)) = quorum {
        quorum::resolve_links(r, &mut settings, &raw_links, &cluster.nodes);
        cluster.quorum = Some(settings);
    }
    cluster
}

fn keepalived(r: &mut Reader, node: &Node, path: &FieldPath) -> KeepalivedSettings {
    let mut settings = KeepalivedSettings::default();
    let Some(map) = r.mapping(node, path) else {
        return settings;
    };
    r.reject_unknown_keys(
        map,
        path,
        &["advert_int", "vrrp_version", "unicast", "auth_pass"],
    );
    if let Some(n) = map.get_node("vrrp_version") {
        let p = path.key("vrrp_version");
        if let Some(v) = r.integer(n, &p, 2, 3) {
            settings.vrrp_version = v as u8;
        }
    }
    if let Some(n) = map.get_node("advert_int") {
        let p = path.key("advert_int");
        if let Some(ms) = checked_string(r, n, &p, syntax::advert_int_ms) {
            settings.advert_int_ms = ms;
            let problem = match settings.vrrp_version {
                2 if ms % 1000 != 0 => {
                    Some("is fractional; sub-second adverts need vrrp_version: 3")
                }
                3 if ms > 40_950 => Some("is above VRRPv3's maximum of 40.95 seconds"),
                _ => None,
            };
            if let Some(problem) = problem {
                r.error(
                    pos_of(n.span()),
                    &p,
                    format!("{} {problem}", quoted(&scalar_text(n))),
                );
            }
        }
    }
    if let Some(n) = map.get_node("unicast") {
        settings.unicast = r.boolean(n, &path.key("unicast")).unwrap_or(true);
    }
    if let Some(n) = map.get_node("auth_pass") {
        settings.auth_pass = checked_string(r, n, &path.key("auth_pass"), syntax::auth_pass)
            .map(|()| scalar_text(n));
    }
    settings
}

fn agent(r: &mut Reader, node: &Node, path: &FieldPath) -> AgentSettings {
    let mut settings = AgentSettings::default();
    let Some(map) = r.mapping(node, path) else {
        return settings;
    };
    let fields: [(&str, &mut u32, u64, u64); 8] = [
        ("hold_down", &mut settings.hold_down_secs, 0, 86_400),
        (
            "fenced_hold_down",
            &mut settings.fenced_hold_down_secs,
            0,
            86_400,
        ),
        (
            "resync_interval",
            &mut settings.resync_interval_secs,
            1,
            3600,
        ),
        ("restart_limit", &mut settings.restart_limit, 0, 100),
        (
            "restart_window",
            &mut settings.restart_window_secs,
            1,
            86_400,
        ),
        (
            "service_timeout",
            &mut settings.service_timeout_secs,
            1,
            3600,
        ),
        (
            "command_timeout",
            &mut settings.command_timeout_secs,
            1,
            3600,
        ),
        ("umount_grace", &mut settings.umount_grace_secs, 0, 600),
    ];
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    r.reject_unknown_keys(map, path, &names);
    for (key, slot, min, max) in fields {
        if let Some(n) = map.get_node(key) {
            if let Some(v) = r.integer(n, &path.key(key), min, max) {
                *slot = v as u32;
            }
        }
    }
    settings
}

fn ssh(r: &mut Reader, node: &Node, path: &FieldPath) -> SshSettings {
    let mut settings = SshSettings::default();
    let Some(map) = r.mapping(node, path) else {
        return settings;
    };
    r.reject_unknown_keys(
        map,
        path,
        &[
            "user",
            "port",
            "identity_file",
            "known_hosts",
            "connect_timeout",
            "hakeep",
        ],
    );
    if let Some(n) = map.get_node("user") {
        let p = path.key("user");
        if let Some(user) = checked_string(r, n, &p, syntax::name).map(|()| scalar_text(n)) {
            settings.user = user;
        }
    }
    if let Some(n) = map.get_node("port") {
        if let Some(port) = r.integer(n, &path.key("port"), 1, 65535) {
            settings.port = port as u16;
        }
    }
    if let Some(n) = map.get_node("connect_timeout") {
        if let Some(secs) = r.integer(n, &path.key("connect_timeout"), 1, 300) {
            settings.connect_timeout_secs = secs as u32;
        }
    }
    for (key, slot) in [
        ("identity_file", &mut settings.identity_file),
        ("known_hosts", &mut settings.known_hosts),
        ("hakeep", &mut settings.hakeep),
    ] {
        if let Some(n) = map.get_node(key) {
            if let Some(p) = checked_string(r, n, &path.key(key), syntax::absolute_path) {
                *slot = p;
            }
        }
    }
    settings
}

fn node_entry(r: &mut Reader, name: String, node: &Node, path: &FieldPath) -> Option<Node_> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["address", "interface"]);
    let address = r
        .required(map, path, "address")
        .and_then(|n| checked_string(r, n, &path.key("address"), syntax::ip_address));
    let interface = r.required(map, path, "interface").and_then(|n| {
        checked_string(r, n, &path.key("interface"), syntax::interface).map(|()| scalar_text(n))
    });
    Some(Node_ {
        name,
        address: address?,
        interface: interface?,
    })
}

type Node_ = super::model::Node;

fn group(
    r: &mut Reader,
    name: String,
    node: &Node,
    path: &FieldPath,
    quorum_on: bool,
) -> Option<Group> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(
        map,
        path,
        &[
            "vrid",
            "nodes",
            "preempt",
            "volumes",
            "filesystems",
            "ips",
            "services",
            "checks",
            "fencing",
        ],
    );
    let vrid = r
        .required(map, path, "vrid")
        .and_then(|n| r.integer(n, &path.key("vrid"), 1, 255));
    let nodes = r
        .required(map, path, "nodes")
        .map(|n| group_nodes(r, n, &path.key("nodes")))
        .unwrap_or_default();
    let preempt = map
        .get_node("preempt")
        .and_then(|n| preempt(r, n, &path.key("preempt")))
        .unwrap_or(Preempt::Never);
    let volumes = list(r, map, path, "volumes", volume);
    let filesystems = list(r, map, path, "filesystems", filesystem);
    let ips = list(r, map, path, "ips", floating_ip);
    let services = list(r, map, path, "services", service);
    let checks = list(r, map, path, "checks", check);
    let fencing = map
        .get_node("fencing")
        .and_then(|n| quorum::fencing(r, n, &path.key("fencing")))
        .unwrap_or_else(|| quorum::default_fencing(&volumes, quorum_on));
    // A bad vrid is already reported; keep the group so its other fields are checked too.
    Some(Group {
        name,
        vrid: vrid.unwrap_or(0) as u8,
        nodes,
        preempt,
        volumes,
        filesystems,
        ips,
        services,
        checks,
        fencing,
    })
}

fn group_nodes(r: &mut Reader, node: &Node, path: &FieldPath) -> Vec<String> {
    let Some(seq) = r.sequence(node, path) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let p = path.index(i);
        let Some(name) = r.string(item, &p) else {
            continue;
        };
        if names.contains(&name) {
            r.error(
                pos_of(item.span()),
                &p,
                format!("node {name:?} is listed twice"),
            );
            continue;
        }
        names.push(name);
    }
    if seq.is_empty() {
        r.error(pos_of(node.span()), path, "a group needs at least one node");
    } else if names.len() > MAX_NODES_PER_GROUP {
        r.error(
            pos_of(node.span()),
            path,
            format!(
                "lists {} nodes; at most {MAX_NODES_PER_GROUP} fit the priority scheme",
                names.len()
            ),
        );
    }
    names
}

fn preempt(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Preempt> {
    let scalar = r.scalar(node, path)?;
    if let Some(flag) = scalar.as_bool() {
        return Some(if flag {
            Preempt::Immediately
        } else {
            Preempt::Never
        });
    }
    match scalar.as_str().parse::<u16>() {
        Ok(seconds) if seconds <= 1000 => Some(Preempt::AfterSeconds(seconds)),
        _ => {
            r.error(
                pos_of(scalar.span()),
                path,
                format!(
                    "{:?} is not true, false or a delay in seconds (0 to 1000)",
                    scalar.as_str()
                ),
            );
            None
        }
    }
}

fn volume(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Volume> {
    if let Node::Scalar(s) = node {
        if s.as_str() == "none" {
            return Some(Volume::None);
        }
    }
    let (kind, body, p) = single_kind(r, node, path, &["iscsi", "nvmesh", "none"])?;
    match kind {
        "none" => Some(Volume::None),
        "iscsi" => {
            let map = r.mapping(body, &p)?;
            r.reject_unknown_keys(map, &p, &["portal", "target", "lun"]);
            let portal = r.required(map, &p, "portal").and_then(|n| {
                checked_string(r, n, &p.key("portal"), |v| {
                    syntax::socket_address(v, Some(3260))
                })
                .map(|(addr, port)| match addr {
                    std::net::IpAddr::V4(a) => format!("{a}:{port}"),
                    std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
                })
            });
            let target = r.required(map, &p, "target").and_then(|n| {
                checked_string(r, n, &p.key("target"), syntax::iscsi_name).map(|()| scalar_text(n))
            });
            let lun = match map.get_node("lun") {
                Some(n) => r.integer(n, &p.key("lun"), 0, 16383).map(|v| v as u16),
                None => Some(0),
            };
            Some(Volume::Iscsi(IscsiVolume {
                portal: portal?,
                target: target?,
                lun: lun?,
            }))
        }
        _ => {
            let map = r.mapping(body, &p)?;
            r.reject_unknown_keys(map, &p, &["volume"]);
            let volume = r.required(map, &p, "volume").and_then(|n| {
                checked_string(r, n, &p.key("volume"), syntax::nvmesh_volume)
                    .map(|()| scalar_text(n))
            })?;
            Some(Volume::Nvmesh(NvmeshVolume { volume }))
        }
    }
}

fn filesystem(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Filesystem> {
    let map = r.mapping(node, path)?;
    let mountpoint = r
        .required(map, path, "mountpoint")
        .and_then(|n| checked_string(r, n, &path.key("mountpoint"), syntax::mountpoint));
    if let Some(source) = map.get_node("bind") {
        r.reject_unknown_keys(map, path, &["bind", "mountpoint"]);
        let source = checked_string(r, source, &path.key("bind"), syntax::bind_source);
        return Some(Filesystem::Bind {
            source: source?,
            mountpoint: mountpoint?,
        });
    }
    r.reject_unknown_keys(
        map,
        path,
        &["device", "mountpoint", "fstype", "options", "bind"],
    );
    let device = r
        .required(map, path, "device")
        .and_then(|n| checked_string(r, n, &path.key("device"), syntax::absolute_path));
    let fstype = r.required(map, path, "fstype").and_then(|n| {
        checked_string(r, n, &path.key("fstype"), syntax::fstype).map(|()| scalar_text(n))
    });
    let options = match map.get_node("options") {
        Some(n) => mount_options(r, n, &path.key("options"))?,
        None => Vec::new(),
    };
    Some(Filesystem::Device {
        device: device?,
        mountpoint: mountpoint?,
        fstype: fstype?,
        options,
    })
}

fn mount_options(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
    let items: Vec<(String, FieldPath, &Node)> = match node {
        Node::Sequence(seq) => seq
            .iter()
            .enumerate()
            .filter_map(|(i, n)| r.string(n, &path.index(i)).map(|s| (s, path.index(i), n)))
            .collect(),
        _ => {
            let text = r.string(node, path)?;
            text.split(',')
                .map(|s| (s.to_string(), path.clone(), node))
                .collect()
        }
    };
    let mut ok = true;
    let mut options = Vec::new();
    for (option, p, n) in items {
        match syntax::mount_option(&option) {
            Ok(()) => options.push(option),
            Err(why) => {
                ok = false;
                r.error(pos_of(n.span()), &p, format!("{} {why}", quoted(&option)));
            }
        }
    }
    ok.then_some(options)
}

fn floating_ip(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<FloatingIp> {
    if let Node::Scalar(_) = node {
        let (address, prefix) = checked_string(r, node, path, syntax::ip_prefix)?;
        return Some(FloatingIp {
            address,
            prefix,
            interface: None,
        });
    }
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["address", "interface"]);
    let address = r
        .required(map, path, "address")
        .and_then(|n| checked_string(r, n, &path.key("address"), syntax::ip_prefix));
    let interface = match map.get_node("interface") {
        Some(n) => Some(
            checked_string(r, n, &path.key("interface"), syntax::interface)
                .map(|()| scalar_text(n))?,
        ),
        None => None,
    };
    let (address, prefix) = address?;
    Some(FloatingIp {
        address,
        prefix,
        interface,
    })
}

fn service(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Service> {
    if let Node::Scalar(_) = node {
        return checked_string(r, node, path, syntax::unit_name).map(Service::Unit);
    }
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["script", "timeout", "interval"]);
    let script = r
        .required(map, path, "script")
        .and_then(|n| checked_string(r, n, &path.key("script"), syntax::absolute_path));
    let timeout_secs = match map.get_node("timeout") {
        Some(n) => r
            .integer(n, &path.key("timeout"), 1, 3600)
            .map(|v| v as u32)?,
        None => DEFAULT_SCRIPT_TIMEOUT_SECS,
    };
    let interval_secs = match map.get_node("interval") {
        Some(n) => r
            .integer(n, &path.key("interval"), 1, 3600)
            .map(|v| v as u32)?,
        None => DEFAULT_SCRIPT_INTERVAL_SECS,
    };
    Some(Service::Script {
        path: script?,
        timeout_secs,
        interval_secs,
    })
}

/// A resource script's `status` runs this often while its group is active here.
const DEFAULT_SCRIPT_INTERVAL_SECS: u32 = 10;

const CHECK_KINDS: &[&str] = &["ping", "tcp", "mount", "ip", "command"];
const CHECK_TUNING: &[&str] = &["interval", "timeout", "fall", "rise"];

fn check(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Check> {
    let map = r.mapping(node, path)?;
    let allowed: Vec<&str> = CHECK_KINDS.iter().chain(CHECK_TUNING).copied().collect();
    r.reject_unknown_keys(map, path, &allowed);
    let kinds: Vec<&MarkedScalarNode> = map
        .keys()
        .filter(|k| CHECK_KINDS.contains(&k.as_str()))
        .collect();
    if kinds.len() != 1 {
        r.error(
            pos_of(map.span()),
            path,
            format!("a check names exactly one of: {}", CHECK_KINDS.join(", ")),
        );
        return None;
    }
    let kind_name = kinds[0].as_str();
    let body = map.get_node(kind_name)?;
    let p = path.key(kind_name);
    let kind = match kind_name {
        "ping" => CheckKind::Ping(checked_string(r, body, &p, syntax::ip_address)?),
        "ip" => CheckKind::Ip(checked_string(r, body, &p, syntax::ip_address)?),
        "mount" => CheckKind::Mount(checked_string(r, body, &p, syntax::mountpoint)?),
        "tcp" => {
            let (host, port) = checked_string(r, body, &p, |v| syntax::socket_address(v, None))?;
            CheckKind::Tcp { host, port }
        }
        _ => CheckKind::Command(command(r, body, &p)?),
    };
    let mut tune = |key: &str, max: u64, default: u32| match map.get_node(key) {
        Some(n) => r.integer(n, &path.key(key), 1, max).map(|v| v as u32),
        None => Some(default),
    };
    Some(Check {
        kind,
        interval_secs: tune("interval", 3600, 5)?,
        timeout_secs: tune("timeout", 600, 5)?,
        fall: tune("fall", 100, 3)?,
        rise: tune("rise", 100, 2)?,
    })
}

fn command(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
    let seq = r.sequence(node, path)?;
    if seq.is_empty() {
        r.error(
            pos_of(node.span()),
            path,
            "a command needs at least the program's path",
        );
        return None;
    }
    let mut argv = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let p = path.index(i);
        let arg = if i == 0 {
            checked_string(r, item, &p, syntax::absolute_path).map(|_| scalar_text(item))
        } else {
            checked_string(r, item, &p, syntax::command_argument).map(|()| scalar_text(item))
        };
        argv.push(arg);
    }
    argv.into_iter().collect()
}

/// A mapping of named entries (`nodes:`, `groups:`, a quorum link), each name checked.
pub(super) fn named_entries<T>(
    r: &mut Reader,
    node: &Node,
    path: &FieldPath,
    mut entry: impl FnMut(&mut Reader, String, &Node, &FieldPath) -> Option<T>,
) -> Vec<T> {
    let Some(map) = r.mapping(node, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in map.iter() {
        let p = path.key(key.as_str());
        r.remember_at(&p, pos_of(key.span()));
        if let Err(why) = syntax::name(key.as_str()) {
            r.error(
                pos_of(key.span()),
                &p,
                format!("name {:?} {why}", key.as_str()),
            );
            continue;
        }
        if let Some(item) = entry(r, key.as_str().to_string(), value, &p) {
            out.push(item);
        }
    }
    out
}

/// An optional list field of a mapping; bad items are reported and left out.
pub(super) fn list<T>(
    r: &mut Reader,
    map: &MarkedMappingNode,
    path: &FieldPath,
    key: &str,
    mut item: impl FnMut(&mut Reader, &Node, &FieldPath) -> Option<T>,
) -> Vec<T> {
    let p = path.key(key);
    let Some(node) = map.get_node(key) else {
        return Vec::new();
    };
    let Some(seq) = r.sequence(node, &p) else {
        return Vec::new();
    };
    seq.iter()
        .enumerate()
        .filter_map(|(i, n)| item(r, n, &p.index(i)))
        .collect()
}

/// A mapping with exactly one key out of `kinds`: returns that key, its value and path.
fn single_kind<'n>(
    r: &mut Reader,
    node: &'n Node,
    path: &FieldPath,
    kinds: &[&'static str],
) -> Option<(&'static str, &'n Node, FieldPath)> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, kinds);
    let present: Vec<&'static str> = kinds
        .iter()
        .copied()
        .filter(|k| map.get_node(k).is_some())
        .collect();
    if present.len() != 1 {
        r.error(
            pos_of(map.span()),
            path,
            format!("expected exactly one of: {}", kinds.join(", ")),
        );
        return None;
    }
    let kind = present[0];
    Some((kind, map.get_node(kind)?, path.key(kind)))
}

/// A string value run through a syntax rule; the rule's complaint names the value.
pub(super) fn checked_string<T>(
    r: &mut Reader,
    node: &Node,
    path: &FieldPath,
    rule: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let text = r.string(node, path)?;
    match rule(&text) {
        Ok(value) => Some(value),
        Err(why) => {
            r.error(
                pos_of(node.span()),
                path,
                format!("{} {why}", quoted(&text)),
            );
            None
        }
    }
}

pub(super) fn scalar_text(node: &Node) -> String {
    node.as_scalar()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}
