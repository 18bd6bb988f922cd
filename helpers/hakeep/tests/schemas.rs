//! `status --json` and `check --json` against docs/status.schema.json and
//! docs/check.schema.json: documents with every optional field, made from hakeep's own
//! types (so a field the schema does not know fails here), and the real binary's output.
//! Needs python3-jsonschema ([`json_schema`](crate::json_schema)); without it the tests
//! are skipped with a notice, except under CI, where that is a failure. No root needed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use hakeep::ops::check::{CheckReport, CheckResult, ResultKind, Role};
use hakeep::ops::cluster_status::{self, ClusterStatus};
use hakeep::ops::status::{GroupStatus, NodeStatus};
use hakeep::runtime::holds::HoldKind;
use hakeep::runtime::state::{
    Fault, GroupState, IpStatus, LinkState, QdeviceState, QuorumState, ResourceStatus, Step,
    Transition,
};
use hakeep::runtime::VrrpState;

use crate::json_schema::{ensure_rejected, ensure_valid, schema, unavailable};

/// False (with a notice) when the validator cannot run here; under CI, a failure.
fn validator_runs(test: &str) -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: the schema validator cannot run in CI: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
    false
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// A group with every optional part set: a fence hold, FAILED, a resource error, a
/// problem, a transition with a failed step.
fn group_with_everything(name: &str) -> GroupStatus {
    GroupStatus {
        name: name.into(),
        ok: false,
        state: GroupState {
            vrrp_state: VrrpState::Fault,
            desired: "standby".into(),
            actual: "partial".into(),
            maintenance: true,
            fault: Some(Fault {
                reason: "nfs1 took the volume's reservation".into(),
                by_operator: false,
                kind: HoldKind::Fence,
                since: "2026-12-03T17:41:50.020Z".into(),
                hold_down_until: "2026-12-03T17:51:50.020Z".into(),
            }),
            failed: Some("release failed at mount:/srv/nfs: target is busy".into()),
            resources: vec![
                ResourceStatus {
                    id: "mount:/srv/nfs".into(),
                    observed: "unknown".into(),
                    error: Some("target is busy".into()),
                },
                ResourceStatus {
                    id: "volume:none".into(),
                    observed: "n/a".into(),
                    error: None,
                },
            ],
            floating_ips: vec![IpStatus {
                address: "192.168.56.100/24".into(),
                present: true,
            }],
            problems: vec!["floating IP 192.168.56.100/24 is present on a standby node".into()],
            last_transition: Some(Transition {
                to: "standby".into(),
                trigger: "keepalived event FAULT".into(),
                started: "2026-12-03T17:41:49.700Z".into(),
                duration_ms: 320,
                result: "release failed at mount:/srv/nfs: target is busy".into(),
                steps: vec![Step {
                    action: "release".into(),
                    resource: "mount:/srv/nfs".into(),
                    started: "2026-12-03T17:41:50.000Z".into(),
                    duration_ms: 20,
                    ok: false,
                    error: Some("umount: target is busy".into()),
                }],
            }),
            fencing: Some("watchdog".into()),
            fence_wait: Some(
                "until 2026-12-03T17:42:30.000Z: s2 left the membership while holding it".into(),
            ),
        },
    }
}

fn node_with_everything(name: &str) -> NodeStatus {
    let mut released = group_with_everything("db");
    released.ok = true;
    released.state.failed = None;
    released.state.last_transition = None;
    released.state.fault = Some(Fault {
        reason: "operator release".into(),
        by_operator: true,
        kind: HoldKind::Operator,
        since: "2026-12-03T17:40:00.000Z".into(),
        hold_down_until: "2026-12-03T17:44:00.000Z".into(),
    });
    NodeStatus {
        schema: hakeep::ops::status::SCHEMA,
        node: name.into(),
        cluster: "lab".into(),
        keepalived_running: true,
        agent_running: false,
        error: Some("the agent (pid 812) that wrote /run/hakeep/state.json is not running".into()),
        maintenance: true,
        problems: vec!["keepalived's notify FIFO is silent".into()],
        quorum: Some(QuorumState {
            quorate: false,
            connected: true,
            since: "2026-12-03T17:41:49.000Z".into(),
            detail: "this node's partition (s1) lacks the votes for quorum".into(),
            members: vec!["s1".into()],
            quorum_votes: Some(2),
            expected_votes: Some(3),
            qdevice: Some(QdeviceState {
                registered: true,
                alive: true,
                cast_vote: false,
                votes: 1,
            }),
            links: vec![LinkState {
                peer: "s2".into(),
                link: 0,
                connected: false,
            }],
        }),
        groups: vec![group_with_everything("nfs"), released],
    }
}

#[test]
fn status_documents_with_every_field_match_the_schema() {
    if !validator_runs("status_documents_with_every_field_match_the_schema") {
        return;
    }
    let node = node_with_everything("nfs1");
    let nodes = vec![node.clone(), node_with_everything("nfs2")];
    let members = ["nfs1".to_string(), "nfs2".to_string()];
    let cluster = ClusterStatus {
        schema: hakeep::ops::status::SCHEMA,
        cluster: "lab".into(),
        groups: vec![
            cluster_status::placement("nfs", &members, &nodes),
            cluster_status::placement("db", &members, &nodes),
        ],
        nodes,
    };
    assert!(cluster.groups.iter().any(|g| g.alarm.is_some()));
    let schema = schema("status.schema.json");
    ensure_valid(
        &schema,
        &[("node", &json(&node)), ("--all-nodes", &json(&cluster))],
    )
    .unwrap();
    // The validator rejects what the schema forbids.
    let mut extra = json(&node);
    extra["groups"][0]["fault"]["surprise"] = Value::from(1);
    let mut kind = json(&node);
    kind["groups"][0]["fault"]["kind"] = Value::from("maybe");
    ensure_rejected(&schema, &[("extra key", &extra), ("bad kind", &kind)]).unwrap();
}

#[test]
fn check_documents_of_both_roles_and_kinds_match_the_schema() {
    if !validator_runs("check_documents_of_both_roles_and_kinds_match_the_schema") {
        return;
    }
    let result = |role, kind, check: &str, ok| CheckResult {
        group: "nfs".into(),
        role,
        kind,
        check: check.into(),
        ok,
        detail: if ok {
            "active"
        } else {
            "inactive but the group is active here"
        }
        .into(),
    };
    let report = CheckReport::new(
        "lab",
        "nfs1",
        vec![
            result(Role::Active, ResultKind::Resource, "mount:/srv/nfs", true),
            result(
                Role::Active,
                ResultKind::Check,
                "tcp 192.168.56.100:2049",
                false,
            ),
            result(
                Role::Standby,
                ResultKind::Resource,
                "service:nfs-server.service",
                true,
            ),
        ],
    );
    assert!(!report.ok);
    let empty = CheckReport::new("lab", "nfs1", Vec::new());
    let schema = schema("check.schema.json");
    ensure_valid(
        &schema,
        &[("report", &json(&report)), ("no groups", &json(&empty))],
    )
    .unwrap();
    let mut array = json(&report)["results"].clone();
    array[0]["role"] = Value::from("primary");
    let mut old = json(&report);
    old["schema"] = Value::from(0);
    ensure_rejected(&schema, &[("a bare array", &array), ("schema 0", &old)]).unwrap();
}

/// The real binary, on this host as node n1 of a small cluster (documentation addresses:
/// nothing is sent anywhere) whose group has a bind mount, a floating IP and two resource
/// scripts (one stopped, one in an unknown state), none of them on this host: no agent
/// runs here, so `status` says why (exit 2), and `check` judges the group as standby,
/// looking only at this host (exit 1: the unknown script).
#[test]
fn real_status_and_check_output_match_the_schemas() {
    if !validator_runs("real_status_and_check_output_match_the_schemas") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, status_exit: u8| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\n[ \"$1\" = status ] && exit {status_exit}\nexit 1\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    };
    let stopped = script("stopped.sh", 3);
    let confused = script("confused.sh", 5);
    let data = dir.path().join("data");
    let mnt = dir.path().join("mnt");
    let config = dir.path().join("cluster.yml");
    std::fs::write(
        &config,
        format!(
            "cluster: schema-test\n\
             nodes:\n  n1: {{ address: 192.0.2.11, interface: lo }}\n  \
             n2: {{ address: 192.0.2.12, interface: lo }}\n\
             groups:\n  app:\n    vrid: 50\n    nodes: [n1, n2]\n    volumes: [none]\n    \
             filesystems:\n      - {{ bind: {data}, mountpoint: {mnt} }}\n    \
             ips:\n      - {{ address: 192.0.2.50/24 }}\n    \
             services:\n      - {{ script: {stopped} }}\n      - {{ script: {confused} }}\n",
            data = data.display(),
            mnt = mnt.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hakeep"))
            .arg("-c")
            .arg(&config)
            .args(args)
            .env_remove("HAKEEP_CONFIG")
            .env_remove("HAKEEP_NODE")
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}; stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), doc)
    };
    let (code, status) = run(&["status", "--json", "--node", "n1"]);
    assert_eq!(code, Some(2), "{status}");
    assert!(status["error"].is_string(), "{status}");
    let (code, check) = run(&["check", "--json", "--node", "n1"]);
    assert_eq!(code, Some(1), "{check}");
    let results = check["results"].as_array().expect("results");
    assert!(
        check["schema"] == 1
            && check["node"] == "n1"
            && check["ok"] == false
            && results.iter().any(|r| r["ok"] == true)
            && results
                .iter()
                .any(|r| r["ok"] == false && r["check"] == format!("script:{confused}"))
            && results
                .iter()
                .all(|r| r["role"] == "standby" && r["kind"] == "resource"),
        "{check}"
    );
    ensure_valid(&schema("status.schema.json"), &[("status --json", &status)]).unwrap();
    ensure_valid(&schema("check.schema.json"), &[("check --json", &check)]).unwrap();
}
