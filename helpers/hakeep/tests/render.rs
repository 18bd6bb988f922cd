//! keepalived.conf rendering: golden snapshots for every example and node, and every
//! snapshot accepted by keepalived itself without a message (docs/design.md §7).

use std::path::{Path, PathBuf};
use std::process::Command;

use hakeep::config;
use hakeep::render;

const EXAMPLES: &[&str] = &[
    "nfs-active-passive",
    "active-active",
    "three-node",
    "vrrp3-fast",
    "ipv6",
    "quorum-watchdog",
];

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{name}.yml"))
}

/// (snapshot name, rendered text) for every node of every example.
fn rendered() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in EXAMPLES {
        let cluster = config::load(&example(name)).unwrap_or_else(|e| panic!("{e}"));
        for node in &cluster.nodes {
            let text = render::keepalived_conf(&cluster, &node.name).unwrap();
            out.push((format!("{name}__{}", node.name), text));
        }
    }
    out
}

#[test]
fn snapshots() {
    for (name, text) in rendered() {
        insta::assert_snapshot!(name, text);
    }
}

/// corosync.conf of every example with `quorum:`; the others have none to render.
#[test]
fn corosync_snapshots() {
    let mut rendered = 0;
    for name in EXAMPLES {
        let cluster = config::load(&example(name)).unwrap_or_else(|e| panic!("{e}"));
        match render::corosync_conf(&cluster) {
            Ok(text) => {
                insta::assert_snapshot!(format!("{name}__corosync"), text);
                rendered += 1;
            }
            Err(render::RenderError::NoQuorum(_)) => assert!(cluster.quorum.is_none()),
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert!(rendered >= 1, "no example has quorum:");
}

#[test]
fn output_is_byte_identical_for_identical_input() {
    assert_eq!(rendered(), rendered());
}

#[test]
fn unknown_node_is_an_error() {
    let cluster = config::load(&example("nfs-active-passive")).unwrap();
    let err = render::keepalived_conf(&cluster, "nfs9").unwrap_err();
    assert_eq!(
        err.to_string(),
        "node \"nfs9\" is not in cluster \"lab\" (nodes: nfs1, nfs2)"
    );
}

#[test]
fn mixed_families_split_between_vip_blocks() {
    let cluster = config::load(&example("ipv6")).unwrap();
    let text = render::keepalived_conf(&cluster, "n1").unwrap();
    let vips = text.split("virtual_ipaddress {").nth(1).unwrap();
    let (vips, excluded) = vips.split_once("virtual_ipaddress_excluded {").unwrap();
    assert!(vips.contains("2001:db8::100/64 dev eth1"), "{text}");
    assert!(excluded.contains("198.51.100.100/24 dev eth1"), "{text}");
}

/// Runs the real `keepalived -t` through hakeep's own check on every snapshot.
#[test]
fn keepalived_accepts_every_rendered_config() {
    if !can_run_keepalived_check() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (name, text) in rendered() {
        let file = dir.path().join(format!("{name}.conf"));
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hakeep"))
            .arg("keepalived-check")
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A check that cannot run is a failure in CI; elsewhere it is skipped with a notice.
fn can_run_keepalived_check() -> bool {
    let root = rustix::process::geteuid().is_root();
    let keepalived = Command::new("keepalived").arg("--version").output().is_ok();
    if root && keepalived {
        return true;
    }
    let why = format!("needs root ({root}) and keepalived installed ({keepalived})");
    assert!(
        std::env::var_os("CI").is_none(),
        "keepalived check cannot run in CI: {why}"
    );
    eprintln!("SKIPPED keepalived_accepts_every_rendered_config: {why}");
    false
}
