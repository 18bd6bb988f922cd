//! cluster.yml validation: each bad input is rejected with the right line, column and field.

use hakeep::config;

/// A valid two-node cluster; each case changes one thing.
const BASE: &str = r#"cluster: lab
keepalived:
  advert_int: 1
  vrrp_version: 2
  unicast: true
  auth_pass: "secret"
nodes:
  nfs1: { address: 192.168.56.11, interface: eth1 }
  nfs2: { address: 192.168.56.12, interface: eth1 }
groups:
  nfs:
    vrid: 51
    nodes: [nfs1, nfs2]
    preempt: false
    volumes:
      - iscsi: { portal: "192.168.56.10:3260", target: "iqn.2026-11.org.example:nfs", lun: 1 }
    filesystems:
      - { device: /dev/sdb, mountpoint: /srv/nfs, fstype: xfs }
      - { bind: /srv/nfs/.state/nfs, mountpoint: /var/lib/nfs }
    ips:
      - { address: 192.168.56.100/24, interface: eth1 }
    services: [nfs-server.service]
    checks:
      - { ping: 192.168.56.1 }
"#;

fn with(from: &str, to: &str) -> String {
    assert!(
        BASE.contains(from),
        "test bug: {from:?} is not in the base config"
    );
    BASE.replacen(from, to, 1)
}

/// Errors as `line:col: path: message`, without the file name.
fn errors(text: &str) -> Vec<String> {
    match config::from_str("cluster.yml", text) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn base_config_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn every_documented_example_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            seen += 1;
            if let Err(e) = config::load(&path) {
                panic!("{} should be valid:\n{e}", path.display());
            }
        }
    }
    assert!(
        seen >= 5,
        "expected the five documented examples, found {seen}"
    );
}

#[test]
fn metrics_and_alerts_parse() {
    let text = format!(
        "{BASE}metrics:\n  listen: \"node:9840\"\n  textfile: /var/lib/prometheus/node-exporter/hakeep.prom\n\
         alerts:\n  - program: /usr/lib/hakeep/alerts/webhook\n    args: [\"http://127.0.0.1:9099/hook\"]\n    \
         events: [take, fault]\n    timeout: 10\n  - program: /usr/lib/hakeep/alerts/email\n"
    );
    let cluster = config::from_str("cluster.yml", &text).unwrap();
    let metrics = cluster.metrics.unwrap();
    let node = &cluster.nodes[0];
    assert_eq!(
        metrics.listen.unwrap().for_node(node).to_string(),
        "192.168.56.11:9840"
    );
    assert!(metrics.textfile.unwrap().ends_with("hakeep.prom"));
    assert_eq!(cluster.alerts.len(), 2);
    assert_eq!(
        cluster.alerts[0].events,
        [config::AlertEvent::Take, config::AlertEvent::Fault]
    );
    assert_eq!(cluster.alerts[0].args, ["http://127.0.0.1:9099/hook"]);
    assert_eq!(cluster.alerts[0].timeout_secs, 10);
    assert_eq!(
        cluster.alerts[1].events,
        config::AlertEvent::ALL,
        "all events by default"
    );
    assert_eq!(cluster.alerts[1].timeout_secs, 30);
}

#[test]
fn bad_inputs_name_line_column_and_field() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("typo in a key", with("    preempt: false", "    prempt: false"), "14:5: groups.nfs.prempt: unknown field (did you mean \"preempt\"?)"),
        ("unknown top-level key", format!("{BASE}extra: 1\n"), "25:1: extra: unknown field"),
        ("duplicate vrid", format!("{BASE}  web:\n    vrid: 51\n    nodes: [nfs2]\n    ips: [192.168.56.101/24]\n"), "26:11: groups.web.vrid: vrid 51 is already used by group \"nfs\""),
        ("duplicate VIP", format!("{BASE}  web:\n    vrid: 52\n    nodes: [nfs2]\n    ips: [192.168.56.100/24]\n"), "28:11: groups.web.ips[0].address: 192.168.56.100 is already a floating IP of group \"nfs\""),
        ("unknown node", with("nodes: [nfs1, nfs2]", "nodes: [nfs1, nfs3]"), "13:19: groups.nfs.nodes[1]: unknown node \"nfs3\""),
        ("invalid IP prefix", with("192.168.56.100/24", "10.0.0.300/24"), "21:20: groups.nfs.ips[0].address: \"10.0.0.300/24\" is not an IP prefix"),
        ("prefix too long", with("192.168.56.100/24", "192.168.56.100/33"), "21:20: groups.nfs.ips[0].address: \"192.168.56.100/33\" has prefix length 33"),
        ("relative mountpoint", with("mountpoint: /srv/nfs,", "mountpoint: srv/nfs,"), "18:41: groups.nfs.filesystems[0].mountpoint: \"srv/nfs\" must be an absolute path"),
        ("shell metacharacters in a unit", with("[nfs-server.service]", "[\"nfs; rm -rf /\"]"), "22:16: groups.nfs.services[0]: \"nfs; rm -rf /\" is not a valid systemd unit name"),
        ("shell metacharacters in a path", with("device: /dev/sdb", "device: \"/dev/sdb$(reboot)\""), "18:19: groups.nfs.filesystems[0].device: \"/dev/sdb$(reboot)\" contains '$'"),
        ("fractional advert_int with VRRPv2", with("advert_int: 1", "advert_int: 0.5"), "3:15: keepalived.advert_int: \"0.5\" is fractional; sub-second adverts need vrrp_version: 3"),
        ("node missing its address", with("nfs2: { address: 192.168.56.12, interface: eth1 }", "nfs2: { interface: eth1 }"), "9:3: nodes.nfs2.address: missing required field"),
        ("group without floating IP", with("    ips:\n      - { address: 192.168.56.100/24, interface: eth1 }\n", ""), "11:3: groups.nfs.ips: a group needs at least one floating IP"),
        ("auth_pass too long", with("auth_pass: \"secret\"", "auth_pass: \"secret123\""), "6:14: keepalived.auth_pass: \"secret123\" is 9 characters long; keepalived uses at most 8"),
        ("vrid out of range", with("vrid: 51", "vrid: 256"), "12:11: groups.nfs.vrid: \"256\" is not a whole number from 1 to 255"),
        ("vrid zero", with("vrid: 51", "vrid: 0"), "12:11: groups.nfs.vrid: \"0\" is not a whole number from 1 to 255"),
        ("upper-case group name", with("  nfs:\n", "  NFS:\n"), "11:3: groups.NFS: name \"NFS\" must be 1-32 characters of a-z, 0-9 and '-'"),
        ("bad cluster name", with("cluster: lab", "cluster: my_lab"), "1:10: cluster: \"my_lab\" must be 1-32 characters"),
        ("interface name too long", with("nfs1: { address: 192.168.56.11, interface: eth1 }", "nfs1: { address: 192.168.56.11, interface: averyveryverylongname }"), "8:46: nodes.nfs1.interface: \"averyveryverylongname\" is not a valid interface name"),
        ("group with no nodes", with("nodes: [nfs1, nfs2]", "nodes: []"), "13:12: groups.nfs.nodes: a group needs at least one node"),
        ("node listed twice", with("nodes: [nfs1, nfs2]", "nodes: [nfs1, nfs1]"), "13:19: groups.nfs.nodes[1]: node \"nfs1\" is listed twice"),
        ("VRRP version 4", with("vrrp_version: 2", "vrrp_version: 4"), "4:17: keepalived.vrrp_version: \"4\" is not a whole number from 2 to 3"),
        ("auth with VRRPv3", with("vrrp_version: 2", "vrrp_version: 3"), "6:14: keepalived.auth_pass: VRRPv3 has no authentication"),
        ("IPv6 group on VRRPv2 over IPv6 nodes", with("nfs1: { address: 192.168.56.11,", "nfs1: { address: \"fd00::11\",").replace("nfs2: { address: 192.168.56.12,", "nfs2: { address: \"fd00::12\","), "20:5: groups.nfs.ips: the VRRP instance is IPv6"),
        ("duplicate mountpoint", with("mountpoint: /var/lib/nfs", "mountpoint: /srv/nfs"), "19:50: groups.nfs.filesystems[1].mountpoint: /srv/nfs is already mounted by this group"),
        ("not an iSCSI name", with("iqn.2026-11.org.example:nfs", "nfs-target"), "16:56: groups.nfs.volumes[0].iscsi.target: \"nfs-target\" is not an iSCSI name"),
        ("check with two kinds", with("{ ping: 192.168.56.1 }", "{ ping: 192.168.56.1, tcp: \"192.168.56.1:22\" }"), "24:9: groups.nfs.checks[0]: a check names exactly one of"),
        ("wrong type for nodes", with("nodes: [nfs1, nfs2]", "nodes: nfs1"), "13:12: groups.nfs.nodes: expected a list, found a single value"),
        ("not a boolean", with("unicast: true", "unicast: yes"), "5:12: keepalived.unicast: \"yes\" is not true or false"),
        ("floating IP equal to a node address", with("192.168.56.100/24", "192.168.56.12/24"), "21:20: groups.nfs.ips[0].address: 192.168.56.12 is the fixed address of node \"nfs2\""),
        ("duplicate key", with("    vrid: 51\n", "    vrid: 51\n    vrid: 52\n"), "13:5: groups.nfs.vrid: duplicate key (first defined on line 12)"),
        ("mountpoint /etc", with("mountpoint: /srv/nfs,", "mountpoint: /etc,"), "@\"/etc\" is /etc, which the node itself needs"),
        ("mountpoint under /run/hakeep", with("mountpoint: /srv/nfs,", "mountpoint: /run/hakeep/x,"), "@is under /run/hakeep"),
        ("mountpoint /proc/x", with("mountpoint: /srv/nfs,", "mountpoint: /proc/x,"), "@is under /proc"),
        ("mountpoint /srv itself", with("mountpoint: /srv/nfs,", "mountpoint: /srv,"), "@is /srv itself; mount below it"),
        ("bind source /", with("bind: /srv/nfs/.state/nfs", "bind: /"), "@groups.nfs.filesystems[1].bind: \"/\" must not be the root directory"),
        ("mountpoint longer than PATH_MAX", with("mountpoint: /srv/nfs,", &format!("mountpoint: /srv/{},", ["a"; 2100].join("/"))), "@bytes long; the kernel takes paths of at most 4095"),
        ("path component longer than NAME_MAX", with("mountpoint: /srv/nfs,", &format!("mountpoint: /srv/{},", "a".repeat(256))), "@has a component of 256 bytes"),
        ("mountpoints in the wrong order", with("      - { device: /dev/sdb, mountpoint: /srv/nfs, fstype: xfs }\n      - { bind: /srv/nfs/.state/nfs, mountpoint: /var/lib/nfs }\n", "      - { bind: /srv/nfs/.state/nfs, mountpoint: /srv/nfs/state }\n      - { device: /dev/sdb, mountpoint: /srv/nfs, fstype: xfs }\n"), "@groups.nfs.filesystems[0].mountpoint: /srv/nfs/state is under /srv/nfs, which this group mounts later (filesystems[1])"),
        ("mountpoint in another group's", format!("{BASE}  web:\n    vrid: 52\n    nodes: [nfs2]\n    ips: [192.168.56.101/24]\n    filesystems: [{{ device: /dev/sdc, mountpoint: /srv/nfs/web, fstype: ext4 }}]\n"), "@groups.web.filesystems[0].mountpoint: /srv/nfs/web is under /srv/nfs, a mountpoint of group \"nfs\""),
        ("node address on loopback", with("nfs1: { address: 192.168.56.11,", "nfs1: { address: 127.0.0.1,"), "@nodes.nfs1.address: 127.0.0.1 is a loopback address"),
        ("node address unspecified", with("nfs1: { address: 192.168.56.11,", "nfs1: { address: 0.0.0.0,"), "@nodes.nfs1.address: 0.0.0.0 is the unspecified address"),
        ("node address multicast", with("nfs1: { address: 192.168.56.11,", "nfs1: { address: 224.0.0.18,"), "@nodes.nfs1.address: 224.0.0.18 is a multicast address"),
        ("VIP is the network address", with("192.168.56.100/24", "192.168.56.0/24"), "21:20: groups.nfs.ips[0].address: 192.168.56.0/24 is the network address of its subnet"),
        ("VIP is the broadcast address", with("192.168.56.100/24", "192.168.56.255/24"), "21:20: groups.nfs.ips[0].address: 192.168.56.255/24 is the broadcast address of its subnet"),
        ("YAML syntax error", with("nodes: [nfs1, nfs2]", "nodes: [nfs1, nfs2"), "YAML syntax error"),
        ("relative resource script", with("[nfs-server.service]", "[{ script: bin/start }]"), "22:26: groups.nfs.services[0].script: \"bin/start\" must be an absolute path"),
        ("mount unit as service", with("[nfs-server.service]", "[srv-nfs.mount]"), "22:16: groups.nfs.services[0]: \"srv-nfs.mount\" is a .mount unit"),
        ("metrics without listen or textfile", format!("{BASE}metrics: {{}}\n"), "@metrics: metrics needs `listen`"),
        ("metrics listen not an address", format!("{BASE}metrics:\n  listen: localhost:9840\n"), "26:11: metrics.listen: \"localhost:9840\" is not ADDRESS:PORT"),
        ("metrics listen node without port", format!("{BASE}metrics:\n  listen: \"node:\"\n"), "26:11: metrics.listen: \"node:\" is not node:PORT"),
        ("metrics textfile not .prom", format!("{BASE}metrics:\n  textfile: /var/lib/node_exporter/hakeep.txt\n"), "26:13: metrics.textfile: \"/var/lib/node_exporter/hakeep.txt\" must end in .prom"),
        ("metrics unknown field", format!("{BASE}metrics:\n  port: 9840\n"), "26:3: metrics.port: unknown field"),
        ("alert with a relative program", format!("{BASE}alerts:\n  - program: bin/mail\n"), "26:14: alerts[0].program: \"bin/mail\" must be an absolute path"),
        ("alert without program", format!("{BASE}alerts:\n  - events: [take]\n"), "@alerts[0].program: missing required field"),
        ("alert with an unknown event", format!("{BASE}alerts:\n  - program: /usr/lib/hakeep/alerts/email\n    events: [take, failover]\n"), "27:20: alerts[0].events[1]: \"failover\" is not an event; events are: take, release"),
        ("alert with no event", format!("{BASE}alerts:\n  - program: /usr/lib/hakeep/alerts/email\n    events: []\n"), "@alerts[0].events: lists no event"),
        ("alert timeout out of range", format!("{BASE}alerts:\n  - program: /usr/lib/hakeep/alerts/email\n    timeout: 0\n"), "27:14: alerts[0].timeout: \"0\" is not a whole number from 1 to 600"),
        ("alert argument with a newline", format!("{BASE}alerts:\n  - program: /usr/lib/hakeep/alerts/email\n    args: [\"a\\nb\"]\n"), "@alerts[0].args[0]: \"a\\nb\" contains a control character"),
        ("alert program with shell metacharacters", format!("{BASE}alerts:\n  - program: \"/bin/mail;reboot\"\n"), "@alerts[0].program: \"/bin/mail;reboot\" contains ';'"),
        ("watchdog fencing without quorum", format!("{BASE}    fencing: watchdog\n"), "@groups.nfs.fencing: watchdog fencing needs `quorum:`"),
        ("storage fencing without a fencing volume", format!("{BASE}  web:\n    vrid: 52\n    nodes: [nfs2]\n    ips: [192.168.56.101/24]\n    fencing: storage\n"), "@groups.web.fencing: group \"web\" has no volume that can fence"),
        ("fencing not a mode", format!("{BASE}    fencing: sbd\n"), "25:14: groups.nfs.fencing: \"sbd\" is not storage, watchdog or none"),
        ("watchdog fencing in two_node quorum", format!("{BASE}    fencing: watchdog\nquorum: {{}}\n"), "@groups.nfs.fencing: group \"nfs\" is fenced by the watchdog, but a two-node cluster without quorum.qdevice"),
        ("default watchdog fencing in two_node quorum", format!("{BASE}  web:\n    vrid: 52\n    nodes: [nfs2]\n    ips: [192.168.56.101/24]\nquorum: {{}}\n"), "@groups.web.fencing: group \"web\" is fenced by the watchdog"),
        ("quorum link without a node", format!("{BASE}quorum:\n  links:\n    - {{ nfs1: 192.168.57.11 }}\n"), "@quorum.links[0]: has no address for node \"nfs2\""),
        ("quorum link with an unknown node", format!("{BASE}quorum:\n  links:\n    - {{ nfs1: 192.168.57.11, nfs2: 192.168.57.12, nfs3: 192.168.57.13 }}\n"), "@quorum.links[0].nfs3: \"nfs3\" is not a node of `nodes:`"),
        ("quorum link address twice", format!("{BASE}quorum:\n  links:\n    - {{ nfs1: 192.168.57.11, nfs2: 192.168.57.11 }}\n"), "@quorum.links[0].nfs2: 192.168.57.11 is already \"nfs1\"'s address"),
        ("quorum link not an address", format!("{BASE}quorum:\n  links:\n    - {{ nfs1: 192.168.57.11, nfs2: nfs2.example }}\n"), "@quorum.links[0].nfs2: \"nfs2.example\""),
        ("nine quorum links", format!("{BASE}quorum:\n  links: [{}]\n", ["{ nfs1: 192.168.57.11, nfs2: 192.168.57.12 }"; 9].join(", ")), "@quorum.links: lists 9 links; corosync's knet takes 1 to 8"),
        ("qdevice on a node", format!("{BASE}quorum:\n  qdevice: {{ host: 192.168.56.11 }}\n"), "@quorum.qdevice.host: 192.168.56.11 is node \"nfs1\": the arbitrator must be a third machine"),
        ("qdevice algorithm", format!("{BASE}quorum:\n  qdevice: {{ host: 192.168.56.10, algorithm: 2nodelms }}\n"), "@quorum.qdevice.algorithm: \"2nodelms\" is not ffsplit or lms"),
        ("qdevice tie breaker not a node", format!("{BASE}quorum:\n  qdevice: {{ host: 192.168.56.10, tie_breaker: nfs9 }}\n"), "@quorum.qdevice.tie_breaker: \"nfs9\" is not lowest, highest or a node"),
        ("qdevice host not a name", format!("{BASE}quorum:\n  qdevice: {{ host: \"qnetd host\" }}\n"), "@quorum.qdevice.host: \"qnetd host\" is neither an IP address nor a host name"),
        ("quorum release timeout", format!("{BASE}quorum:\n  release_timeout: 1\n"), "26:20: quorum.release_timeout: \"1\" is not a whole number from 5 to 3600"),
        ("quorum unknown field", format!("{BASE}quorum:\n  expected_votes: 3\n"), "26:3: quorum.expected_votes: unknown field"),
        ("watchdog device outside /dev", format!("{BASE}watchdog:\n  device: /tmp/wd\n"), "26:11: watchdog.device: /tmp/wd is not a device under /dev"),
        ("watchdog timeout", format!("{BASE}watchdog:\n  timeout: 1\n"), "26:12: watchdog.timeout: \"1\" is not a whole number from 2 to 300"),
    ];
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let found = errors(text);
        // "@text": anywhere in an error (the column of a long value matters little).
        let matches = |e: &String| match expected.strip_prefix('@') {
            Some(part) => e.contains(part),
            None => e.starts_with(expected) || (!expected.contains(": ") && e.contains(expected)),
        };
        if !found.iter().any(matches) {
            failures.push(format!(
                "{what}: expected an error starting {expected:?}, got {found:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `quorum:`, `watchdog:` and the fencing each group gets when its file says nothing.
#[test]
fn quorum_and_fencing_defaults() {
    let text = format!(
        "{BASE}  web:\n    vrid: 52\n    nodes: [nfs2, nfs1]\n    ips: [192.168.56.101/24]\n\
         quorum:\n  links:\n    - {{ nfs2: 10.0.0.12, nfs1: 10.0.0.11 }}\n    - {{ nfs1: 10.1.0.11, nfs2: 10.1.0.12 }}\n\
         \x20 qdevice: {{ host: qnetd.example, tie_breaker: nfs2 }}\n  token: 1000\n\
         watchdog: {{ timeout: 20 }}\n"
    );
    let cluster = config::from_str("cluster.yml", &text).unwrap_or_else(|e| panic!("{e}"));
    let quorum = cluster.quorum.as_ref().expect("quorum");
    // In `nodes:` order, whatever the order in the file.
    let links: Vec<Vec<String>> = quorum
        .links
        .iter()
        .map(|l| l.iter().map(|a| a.to_string()).collect())
        .collect();
    assert_eq!(
        links,
        [["10.0.0.11", "10.0.0.12"], ["10.1.0.11", "10.1.0.12"]]
    );
    let qdevice = quorum.qdevice.as_ref().expect("qdevice");
    assert_eq!(qdevice.host, "qnetd.example");
    assert_eq!(qdevice.port, 5403);
    assert_eq!(qdevice.tie_breaker, config::TieBreaker::Node("nfs2".into()));
    assert_eq!(quorum.token_ms, 1000);
    assert_eq!(quorum.release_timeout_secs, 30);
    assert_eq!(cluster.watchdog.timeout_secs, 20);
    assert_eq!(
        cluster.watchdog.device,
        std::path::Path::new("/dev/watchdog")
    );
    let fencing = |g: &str| cluster.group(g).unwrap().fencing;
    assert_eq!(fencing("nfs"), config::Fencing::Storage);
    assert_eq!(fencing("web"), config::Fencing::Watchdog);
    assert_eq!(cluster.corosync_nodeid("nfs2"), Some(2));
    // qdevice's vote timeout + release_timeout + watchdog timeout + 2 s.
    assert_eq!(cluster.fence_wait().as_secs(), 10 + 30 + 20 + 2);

    let without = config::from_str(
        "cluster.yml",
        &format!("{BASE}  web:\n    vrid: 52\n    nodes: [nfs2]\n    ips: [192.168.56.101/24]\n"),
    )
    .unwrap();
    assert!(without.quorum.is_none());
    assert_eq!(without.group("web").unwrap().fencing, config::Fencing::None);
    assert_eq!(
        without.group("nfs").unwrap().fencing,
        config::Fencing::Storage
    );
}

/// A byte order mark at the start is allowed (YAML allows it; some editors write one).
#[test]
fn a_byte_order_mark_is_accepted() {
    assert_eq!(errors(&format!("\u{feff}{BASE}")), Vec::<String>::new());
}

/// A megabyte of value is not echoed whole: every message is cut.
#[test]
fn long_values_are_cut_in_messages() {
    let unit = format!("[\"{}\"]", "x;".repeat(50_000));
    let found = errors(&with("[nfs-server.service]", &unit));
    assert!(!found.is_empty(), "the bad unit name is an error");
    for e in &found {
        assert!(e.chars().count() < 400, "not cut: {} characters", e.len());
        assert!(e.contains("more characters)"), "no note of the cut: {e}");
    }
}

/// Nesting that would overflow the parser's stack is refused before parsing.
#[test]
fn deep_nesting_is_refused_with_its_line() {
    let text = format!("{BASE}extra:\n  {} x\n", "- ".repeat(100_000));
    let found = errors(&text);
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("26:1: nesting deeper than 64 levels")),
        "{found:?}"
    );
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let text = with("vrid: 51", "vrid: 0")
        .replace("advert_int: 1", "advert_int: 0.5")
        .replace("nodes: [nfs1, nfs2]", "nodes: [nfs1, nfs9]");
    let found = errors(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with("3:15: keepalived.advert_int"),
        "{found:#?}"
    );
    assert!(found[1].starts_with("12:11: groups.nfs.vrid"), "{found:#?}");
    assert!(
        found[2].starts_with("13:19: groups.nfs.nodes[1]"),
        "{found:#?}"
    );
}

#[test]
fn messages_carry_the_file_name() {
    let err =
        config::from_str("/etc/hakeep/cluster.yml", &with("vrid: 51", "vrid: 300")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/etc/hakeep/cluster.yml:12:11: groups.nfs.vrid: "),
        "{err}"
    );
}

#[test]
fn priorities_follow_the_preference_order() {
    let cluster = config::from_str("x", BASE).unwrap();
    let group = cluster.group("nfs").unwrap();
    assert_eq!(group.priority_of("nfs1"), Some(200));
    assert_eq!(group.priority_of("nfs2"), Some(190));
    assert_eq!(group.priority_of("nfs9"), None);
}

#[test]
fn agent_and_ssh_sections_are_read() {
    let text = BASE.replace(
        "nodes:\n",
        "agent: { hold_down: 10, resync_interval: 2 }\nssh: { user: admin, port: 2222, known_hosts: /etc/hakeep/known_hosts }\nnodes:\n",
    );
    let cluster = config::from_str("x", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cluster.agent.hold_down_secs, 10);
    assert_eq!(cluster.agent.resync_interval_secs, 2);
    assert_eq!(cluster.agent.restart_limit, 3, "defaults stay");
    assert_eq!(cluster.ssh.user, "admin");
    assert_eq!(cluster.ssh.port, 2222);
    assert_eq!(
        cluster.ssh.known_hosts,
        std::path::PathBuf::from("/etc/hakeep/known_hosts")
    );
    let bad = BASE.replace("nodes:\n", "ssh: { port: 0, identity: /x }\nnodes:\n");
    let found = errors(&bad);
    assert!(
        found.iter().any(|e| e.starts_with("7:14: ssh.port")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("7:17: ssh.identity: unknown field")),
        "{found:#?}"
    );
}

#[test]
fn unit_names_without_suffix_become_services() {
    let cluster = config::from_str("x", &with("[nfs-server.service]", "[nfs-server]")).unwrap();
    assert_eq!(
        cluster.group("nfs").unwrap().services,
        vec![config::Service::Unit("nfs-server.service".into())]
    );
}
