//! The status views on fixed statuses: snapshots at a terminal's width and in full, and
//! the promises of the layout (no line wider than the width, nothing of an error lost).

use jiff::tz::TimeZone;
use serde_json::json;

use super::times::Clock;
use super::{cluster, node, text, View};
use crate::ops::cluster_status::{self, ClusterStatus};
use crate::ops::status::NodeStatus;

fn view(width: Option<usize>) -> View {
    View {
        colour: false,
        width,
        clock: Clock {
            now: "2026-12-03T17:42:22.500Z".parse().unwrap(),
            zone: TimeZone::UTC,
        },
    }
}

fn status(value: serde_json::Value) -> NodeStatus {
    serde_json::from_value(value).expect("a NodeStatus")
}

/// nfs1 serving nfs, backup for web: everything as intended.
fn healthy() -> NodeStatus {
    status(json!({
        "schema": 1, "node": "nfs1", "cluster": "lab",
        "keepalived_running": true, "agent_running": true, "maintenance": false,
        "groups": [
            {
                "name": "nfs", "ok": true, "vrrp_state": "MASTER",
                "desired": "active", "actual": "active", "maintenance": false, "fault": null,
                "resources": [
                    { "id": "volume:iscsi:iqn.2026-11.org.example:nfs:1", "observed": "active" },
                    { "id": "mount:/srv/nfs", "observed": "active" },
                    { "id": "mount:/var/lib/nfs", "observed": "active" },
                    { "id": "service:nfs-server.service", "observed": "active" }
                ],
                "floating_ips": [ { "address": "192.168.56.100/24", "present": true } ],
                "problems": [],
                "last_transition": {
                    "to": "active", "trigger": "keepalived event MASTER",
                    "started": "2026-12-03T17:40:02.113Z", "duration_ms": 412, "result": "ok",
                    "steps": [
                        { "action": "take", "resource": "volume:iscsi:iqn.2026-11.org.example:nfs:1",
                          "started": "2026-12-03T17:40:02.113Z", "duration_ms": 180, "ok": true },
                        { "action": "take", "resource": "mount:/srv/nfs",
                          "started": "2026-12-03T17:40:02.293Z", "duration_ms": 35, "ok": true },
                        { "action": "take", "resource": "mount:/var/lib/nfs",
                          "started": "2026-12-03T17:40:02.328Z", "duration_ms": 4, "ok": true },
                        { "action": "take", "resource": "service:nfs-server.service",
                          "started": "2026-12-03T17:40:02.332Z", "duration_ms": 190, "ok": true }
                    ]
                }
            },
            {
                "name": "web", "ok": true, "vrrp_state": "BACKUP",
                "desired": "standby", "actual": "standby", "maintenance": false, "fault": null,
                "resources": [
                    { "id": "volume:none", "observed": "n/a" },
                    { "id": "script:/usr/local/lib/hakeep/web.sh", "observed": "inactive" }
                ],
                "floating_ips": [ { "address": "192.168.56.101/24", "present": false } ],
                "problems": [],
                "last_transition": null
            }
        ]
    }))
}

/// nfs2 in trouble: a failed release, a fault hold, an operator release, a fence, a
/// resource error, problems of the node and of a group.
fn troubled() -> NodeStatus {
    status(json!({
        "schema": 1, "node": "nfs2", "cluster": "lab",
        "keepalived_running": true, "agent_running": true, "maintenance": false,
        "problems": [
            "keepalived's notify FIFO is silent: no event for 30 s although keepalived runs (is the keepalived_script user missing? docs/agent.md)"
        ],
        "groups": [
            {
                "name": "nfs", "ok": false, "vrrp_state": "FAULT",
                "desired": "standby", "actual": "partial", "maintenance": false,
                "failed": "release failed at mount:/srv/nfs: umount: /srv/nfs: target is busy; the track file says FAULT and the release is retried at every resync",
                "fault": {
                    "reason": "release of mount:/srv/nfs failed", "by_operator": false, "kind": "fault",
                    "since": "2026-12-03T17:41:50.020Z", "hold_down_until": "2026-12-03T17:42:50.020Z"
                },
                "resources": [
                    { "id": "volume:iscsi:iqn.2026-11.org.example:nfs:1", "observed": "active" },
                    { "id": "mount:/srv/nfs", "observed": "unknown",
                      "error": "umount /srv/nfs: target is busy (held by nfsd[812], rpc.mountd[790]; see fuser -vm /srv/nfs)" },
                    { "id": "service:nfs-server.service", "observed": "inactive" }
                ],
                "floating_ips": [ { "address": "192.168.56.100/24", "present": true } ],
                "problems": [ "floating IP 192.168.56.100/24 is present although the group is on standby here" ],
                "last_transition": {
                    "to": "standby", "trigger": "keepalived event FAULT",
                    "started": "2026-12-03T17:41:49.700Z", "duration_ms": 320,
                    "result": "release failed at mount:/srv/nfs: target is busy",
                    "steps": [
                        { "action": "release", "resource": "service:nfs-server.service",
                          "started": "2026-12-03T17:41:49.700Z", "duration_ms": 300, "ok": true },
                        { "action": "release", "resource": "mount:/srv/nfs",
                          "started": "2026-12-03T17:41:50.000Z", "duration_ms": 20, "ok": false,
                          "error": "umount: /srv/nfs: target is busy" }
                    ]
                }
            },
            {
                "name": "db", "ok": true, "vrrp_state": "FAULT",
                "desired": "standby", "actual": "standby", "maintenance": false,
                "fault": {
                    "reason": "operator release", "by_operator": true, "kind": "operator",
                    "since": "2026-12-03T17:40:00.000Z", "hold_down_until": "2026-12-03T17:44:02.900Z"
                },
                "resources": [ { "id": "service:mariadb.service", "observed": "inactive" } ],
                "floating_ips": [ { "address": "192.168.56.102/24", "present": false } ],
                "problems": [], "last_transition": null
            },
            {
                "name": "iscsi-backup-volume", "ok": false, "vrrp_state": "FAULT",
                "desired": "standby", "actual": "standby", "maintenance": true,
                "fault": {
                    "reason": "nfs1 took the volume's reservation", "by_operator": false, "kind": "fence",
                    "since": "2026-12-01T09:00:00.000Z", "hold_down_until": "2026-12-03T18:00:00.000Z"
                },
                "resources": [ { "id": "volume:iscsi:iqn.2026-11.org.example.storage.backup-array-01:archive:12", "observed": "inactive" } ],
                "floating_ips": [],
                "problems": [], "last_transition": null
            }
        ]
    }))
}

fn unreachable(name: &str) -> NodeStatus {
    status(json!({
        "schema": 1, "node": name, "cluster": "lab",
        "keepalived_running": false, "agent_running": false, "maintenance": false,
        "error": "unreachable: connecting to 192.168.56.13:22: Connection timed out after 5 s",
        "groups": []
    }))
}

fn cluster_of(nodes: Vec<NodeStatus>) -> ClusterStatus {
    let members: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
    let groups = ["nfs", "web"]
        .iter()
        .map(|g| cluster_status::placement(g, &members, &nodes))
        .collect();
    ClusterStatus {
        schema: 1,
        cluster: "lab".into(),
        nodes,
        groups,
    }
}

/// edge2 cut off: not quorate, its proxy released; and a take waiting out a fence wait.
fn partitioned() -> NodeStatus {
    status(json!({
        "schema": 1, "node": "lb2", "cluster": "edge",
        "keepalived_running": true, "agent_running": true, "maintenance": false,
        "quorum": {
            "quorate": false, "connected": true, "since": "2026-12-03T17:42:10.000Z",
            "detail": "this node's partition (lb2) lacks the votes for quorum",
            "members": ["lb2"], "quorum_votes": 2, "expected_votes": 3,
            "qdevice": { "registered": true, "alive": true, "cast_vote": false, "votes": 1 },
            "links": [
                { "peer": "lb1", "link": 0, "connected": false },
                { "peer": "lb1", "link": 1, "connected": false }
            ]
        },
        "groups": [
            {
                "name": "proxy", "ok": false, "vrrp_state": "FAULT",
                "desired": "standby", "actual": "standby", "maintenance": false, "fault": null,
                "resources": [ { "id": "service:haproxy.service", "observed": "inactive" } ],
                "floating_ips": [ { "address": "192.0.2.100/24", "present": false } ],
                "problems": ["no quorum: this node's partition (lb2) lacks the votes for quorum; this node holds no group"],
                "last_transition": null,
                "fencing": "watchdog"
            },
            {
                "name": "api", "ok": false, "vrrp_state": "MASTER",
                "desired": "standby", "actual": "standby", "maintenance": false, "fault": null,
                "resources": [ { "id": "service:api.service", "observed": "inactive" } ],
                "floating_ips": [ { "address": "192.0.2.101/24", "present": true } ],
                "problems": [],
                "last_transition": null,
                "fencing": "watchdog",
                "fence_wait": "until 2026-12-03T17:42:52.000Z: lb1 left the corosync membership 12 s ago and may still serve the group; it releases within its release timeout or its watchdog resets it (42 s in all)"
            }
        ]
    }))
}

#[test]
fn partitioned_node_at_80_columns() {
    let out = node::render(&partitioned(), &view(Some(80)));
    assert!(out.contains("quorum: NOT QUORATE"), "{out}");
    assert!(out.contains("fence wait: "), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn healthy_node_at_80_columns() {
    insta::assert_snapshot!(node::render(&healthy(), &view(Some(80))));
}

#[test]
fn healthy_node_in_full() {
    insta::assert_snapshot!(node::render(&healthy(), &view(None)));
}

#[test]
fn troubled_node_at_80_columns() {
    insta::assert_snapshot!(node::render(&troubled(), &view(Some(80))));
}

#[test]
fn troubled_node_at_60_columns() {
    insta::assert_snapshot!(node::render(&troubled(), &view(Some(60))));
}

#[test]
fn troubled_node_in_full() {
    insta::assert_snapshot!(node::render(&troubled(), &view(None)));
}

#[test]
fn all_nodes_at_100_columns() {
    let mut nfs2 = healthy();
    nfs2.node = "nfs2".into();
    for g in &mut nfs2.groups {
        g.state.vrrp_state = crate::runtime::VrrpState::Backup;
        g.state.desired = "standby".into();
        g.state.actual = "standby".into();
        g.state.last_transition = None;
        for r in &mut g.state.resources {
            if r.observed == "active" {
                r.observed = "inactive".into();
            }
        }
        for ip in &mut g.state.floating_ips {
            ip.present = false;
        }
    }
    let status = cluster_of(vec![healthy(), nfs2, unreachable("nfs3")]);
    insta::assert_snapshot!(cluster::render(&status, &view(Some(100))));
}

/// Everything a view prints, at `width`, with colour codes taken out.
fn all_outputs(width: Option<usize>, colour: bool) -> Vec<String> {
    let mut v = view(width);
    v.colour = colour;
    let cluster = cluster_of(vec![healthy(), troubled(), unreachable("nfs3")]);
    [
        node::render(&healthy(), &v),
        node::render(&troubled(), &v),
        node::render(&partitioned(), &v),
        node::render(&unreachable("nfs3"), &v),
        cluster::render(&cluster, &v),
    ]
    .into_iter()
    .map(|s| strip_colour(&s))
    .collect()
}

fn strip_colour(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find('m').map_or(after.len(), |m| m + 1);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn no_line_is_wider_than_the_width() {
    for width in (super::width::MIN..=140).step_by(3) {
        for colour in [false, true] {
            for output in all_outputs(Some(width), colour) {
                for line in output.lines() {
                    assert!(
                        text::columns(line) <= width,
                        "{} columns at width {width}: {line:?}",
                        text::columns(line)
                    );
                }
            }
        }
    }
}

#[test]
fn wrapping_loses_no_word_of_an_error_or_a_problem() {
    let t = troubled();
    let g = &t.groups[0].state;
    let texts = [
        t.problems[0].as_str(),
        g.failed.as_deref().unwrap(),
        g.problems[0].as_str(),
        g.resources[1].error.as_deref().unwrap(),
    ];
    for width in [40, 60, 80] {
        let words: Vec<String> = node::render(&t, &view(Some(width)))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let joined = words.join(" ");
        for t in texts {
            let t: Vec<&str> = t.split_whitespace().collect();
            assert!(
                joined.contains(&t.join(" ")),
                "width {width}: {t:?} not in\n{joined}"
            );
        }
    }
}

#[test]
fn in_full_every_item_is_one_line() {
    let out = node::render(&troubled(), &view(None));
    let g = &troubled().groups[0].state;
    for whole in [
        format!("  FAILED: {}", g.failed.as_deref().unwrap()),
        format!("  problem: {}", g.problems[0]),
    ] {
        assert!(
            out.lines().any(|l| l == whole),
            "{whole:?} not a line of\n{out}"
        );
    }
}

#[test]
fn times_carry_their_zone() {
    let mut v = view(None);
    v.clock.zone = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
    let out = node::render(&healthy(), &v);
    assert!(
        out.contains("2026-12-03 18:40:02 CET (2 min 20 s ago)"),
        "{out}"
    );
    let out = node::render(&troubled(), &v);
    assert!(
        out.contains("until 2026-12-03 18:44:02 CET (in 1 min 40 s)"),
        "{out}"
    );
}

#[test]
fn control_characters_in_an_error_do_not_reach_the_terminal() {
    let mut t = troubled();
    t.groups[0].state.resources[1].error = Some("line one\nline two\x1b[2J".into());
    let out = node::render(&t, &view(None));
    assert!(
        !out.contains('\x1b') && out.contains("line one line two [2J"),
        "{out}"
    );
}

#[test]
fn a_node_without_state_says_why() {
    insta::assert_snapshot!(node::render(&unreachable("nfs3"), &view(Some(80))));
}

#[test]
fn markers_say_what_a_group_is() {
    use super::group::markers;
    use super::line::Tone;
    let mut g = healthy().groups[0].clone();
    assert_eq!(markers(&g), ("OK".into(), Tone::Good));
    g.state.maintenance = true;
    assert_eq!(markers(&g), ("MAINTENANCE".into(), Tone::Warn));
    // In maintenance with the service down: not as intended, and it says so.
    g.ok = false;
    g.state.actual = "partial".into();
    assert_eq!(markers(&g), ("MAINTENANCE NOT OK".into(), Tone::Bad));
    g.state.maintenance = false;
    assert_eq!(markers(&g), ("NOT OK".into(), Tone::Bad));
    // A hold or FAILED already says it.
    let t = troubled();
    let names: Vec<String> = t.groups.iter().map(|g| markers(g).0).collect();
    assert_eq!(names, ["FAILED FAULT", "RELEASED", "MAINTENANCE FENCED"]);
}

#[test]
fn a_long_resource_id_is_cut_only_when_its_line_has_no_room() {
    let mut s = healthy();
    let id = "script:/var/tmp/hakeep-tests/11221/bin/http-service";
    s.groups[0].state.resources[3].id = id.into();
    // 2 + 51 + 2 + 6 columns.
    let fits = node::render(&s, &view(Some(61)));
    assert!(
        fits.lines().any(|l| l == format!("  {id}  active")),
        "{fits}"
    );
    let cut = node::render(&s, &view(Some(50)));
    assert!(
        cut.lines()
            .any(|l| l.starts_with("  script:/var/tmp/") && l.ends_with("…  active")),
        "{cut}"
    );
}
