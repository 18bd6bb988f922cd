//! The real `hakeep` binary: exit codes and output of validate and render.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn hakeep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hakeep"))
        .args(args)
        .env_remove("HAKEEP_CONFIG")
        .env_remove("HAKEEP_NODE")
        .output()
        .expect("run hakeep")
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/nfs-active-passive.yml")
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_exits_0_for_a_valid_file() {
    let out = hakeep(&["validate", "-c", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid: cluster lab, 2 nodes, 1 groups"));
}

#[test]
fn validate_exits_1_with_every_error_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yml");
    let bad = std::fs::read_to_string(example())
        .unwrap()
        .replace("vrid: 51", "vrid: 900")
        .replace("mountpoint: /srv/nfs,", "mountpoint: srv/nfs,");
    std::fs::write(&file, bad).unwrap();
    let out = hakeep(&["validate", "-c", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let path = file.display();
    assert!(
        err.contains(&format!("{path}:13:11: groups.nfs.vrid: \"900\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{path}:19:"))
            && err.contains("groups.nfs.filesystems[0].mountpoint"),
        "{err}"
    );
    assert!(err.contains("2 error(s); nothing was changed"), "{err}");
}

#[test]
fn validate_exits_2_when_the_file_cannot_be_read() {
    let out = hakeep(&["validate", "-c", "/nonexistent/cluster.yml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/cluster.yml: cannot read"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(hakeep(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(hakeep(&["render", "keepalived"]).status.code(), Some(2));
}

#[test]
fn render_to_stdout() {
    let out = hakeep(&["render", "keepalived", "--node", "nfs2", "-c", &example()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let conf = text(&out.stdout);
    assert!(conf.contains("priority 190"), "{conf}");
    assert!(conf.contains("unicast_src_ip 192.168.56.12"), "{conf}");
}

#[test]
fn render_unknown_node_exits_1() {
    let out = hakeep(&["render", "keepalived", "--node", "nfs9", "-c", &example()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("node \"nfs9\" is not in cluster \"lab\""));
}

#[test]
fn render_output_is_atomic_and_reports_changes() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keepalived.conf");
    let target_str = target.to_str().unwrap();
    let args = [
        "render",
        "keepalived",
        "--node",
        "nfs1",
        "-c",
        &example(),
        "--output",
        target_str,
    ];
    let first = hakeep(&args);
    assert_eq!(
        text(&first.stdout).trim(),
        format!("changed: {target_str}"),
        "{}",
        text(&first.stderr)
    );
    let second = hakeep(&args);
    assert_eq!(
        text(&second.stdout).trim(),
        format!("unchanged: {target_str}")
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp files left"
    );
}

#[test]
fn invalid_config_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("keepalived.conf");
    std::fs::write(&target, "old").unwrap();
    let bad = dir.path().join("cluster.yml");
    std::fs::write(&bad, "cluster: lab\nnodes: {}\ngroups: {}\nbogus: 1\n").unwrap();
    let out = hakeep(&[
        "render",
        "keepalived",
        "--node",
        "nfs1",
        "-c",
        bad.to_str().unwrap(),
        "--output",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
}

/// The agent runs what cluster.yml names as root: it refuses a cluster file (or a
/// resource script) that someone other than root could have written, and says which and
/// why; `validate` only warns, since it also checks files not installed yet.
#[test]
fn the_agent_refuses_files_others_could_write() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (file ownership)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("cluster.yml");
    std::fs::copy(example(), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let path = file.display().to_string();

    let out = hakeep(&["-c", &path, "agent", "--node", "nfs1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains(&path)
            && err.contains("writable by group or others")
            && err.contains("not starting"),
        "{err}"
    );

    let out = hakeep(&["-c", &path, "validate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stderr).contains("warning:"), "{out:?}");
}

/// Every command that acts as a node, on a host that is not one of the cluster's nodes.
const NODE_COMMANDS: &[&[&str]] = &[
    &["agent"],
    &["status"],
    &["status", "--all-nodes"],
    &["check"],
    &["doctor"],
    &["doctor", "--json"],
    &["release", "nfs"],
    &["takeover", "nfs", "--wait", "1"],
    &["switchover", "nfs", "--to", "nfs2", "--wait", "1"],
    &["maintenance", "on"],
    &["plan", "--json"],
];

/// The example, copied where only root can write (the agent refuses other files).
fn private_example() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yml");
    std::fs::copy(example(), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    (dir, file.display().to_string())
}

fn assert_unknown_node(out: &Output, args: &[&str], name: &str, source: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(&format!("node \"{name}\" (from {source})"))
            && err.contains("its nodes: nfs1, nfs2"),
        "{args:?}: {err}"
    );
    assert!(text(&out.stdout).is_empty(), "{args:?} printed something");
}

#[test]
fn every_node_command_exits_2_naming_an_unknown_node_from_the_flag() {
    let (_dir, config) = private_example();
    for args in NODE_COMMANDS {
        let mut argv = vec!["-c", config.as_str()];
        argv.extend_from_slice(args);
        argv.push("--node=web01");
        let out = hakeep(&argv);
        assert_unknown_node(&out, args, "web01", "--node");
    }
}

#[test]
fn every_node_command_exits_2_naming_an_unknown_node_from_the_environment() {
    let (_dir, config) = private_example();
    for args in NODE_COMMANDS {
        let out = Command::new(env!("CARGO_BIN_EXE_hakeep"))
            .args(["-c", config.as_str()])
            .args(*args)
            .env("HAKEEP_NODE", "web02")
            .output()
            .unwrap();
        assert_unknown_node(&out, args, "web02", "HAKEEP_NODE");
    }
}

#[test]
fn without_a_name_the_short_hostname_is_used_and_named() {
    // Meaningless on a machine that is a node of the example or has a node file.
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    if Path::new("/etc/hakeep/node").exists() || ["nfs1", "nfs2"].contains(&host.as_str()) {
        return;
    }
    let (_dir, config) = private_example();
    let out = hakeep(&["-c", &config, "status"]);
    assert_unknown_node(&out, &["status"], &host, "the short hostname");
}

/// A node of one: `doctor` without peers to reach (the example's addresses are not the
/// machine's to connect to), its keepalived.conf rendered, then changed by hand.
#[test]
fn doctor_names_a_stale_keepalived_conf_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.yml");
    std::fs::write(
        &config,
        "cluster: solo\nnodes:\n  s1: { address: 192.0.2.1, interface: eth0 }\n\
         groups:\n  g:\n    vrid: 7\n    nodes: [s1]\n    volumes: [none]\n    \
         ips: [{ address: 192.0.2.100/24 }]\n",
    )
    .unwrap();
    let conf = dir.path().join("keepalived.conf");
    let (config, conf_s) = (config.to_str().unwrap(), conf.to_str().unwrap());
    let render = hakeep(&[
        "-c",
        config,
        "render",
        "keepalived",
        "--node",
        "s1",
        "--output",
        conf_s,
    ]);
    assert_eq!(render.status.code(), Some(0), "{render:?}");
    let doctor = || {
        let out = hakeep(&[
            "-c",
            config,
            "doctor",
            "--json",
            "--node",
            "s1",
            "--keepalived-conf",
            conf_s,
        ]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
        (out.status.code(), json)
    };
    let check = |json: &serde_json::Value, id: &str| {
        json["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no check {id}: {json}"))
    };
    let (_, json) = doctor();
    let ids: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, hakeep::ops::doctor::IDS);
    assert_eq!(
        (
            json["schema"].as_u64(),
            json["node"].as_str(),
            json["node_source"].as_str()
        ),
        (Some(1), Some("s1"), Some("--node"))
    );
    let c = check(&json, "keepalived-conf");
    assert_eq!(c["status"], "ok", "{c}");
    assert!(c.get("fix").is_none(), "{c}");
    assert_eq!(
        check(&json, "peer-ssh")["message"],
        "no other node in the cluster"
    );

    let installed = std::fs::read_to_string(&conf).unwrap();
    let line = installed
        .lines()
        .position(|l| l.contains("priority 200"))
        .unwrap()
        + 1;
    std::fs::write(&conf, installed.replace("priority 200", "priority 100")).unwrap();
    let (code, json) = doctor();
    assert_eq!(code, Some(1), "{json}");
    let c = check(&json, "keepalived-conf");
    assert_eq!(c["status"], "fail", "{c}");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("is stale")
            && message.contains(&format!("installed line {line}, rendered line {line}")),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .is_some_and(|f| f.contains("render keepalived --node s1 --output")),
        "{c}"
    );

    std::fs::remove_file(&conf).unwrap();
    let out = hakeep(&[
        "-c",
        config,
        "doctor",
        "--node",
        "s1",
        "--keepalived-conf",
        conf_s,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let human = text(&out.stdout);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("FAIL  keepalived-conf  ") && l.ends_with("is missing")),
        "{human}"
    );
}

#[test]
fn doctor_exits_2_when_the_cluster_file_cannot_be_read() {
    let out = hakeep(&["-c", "/nonexistent/cluster.yml", "doctor", "--node", "s1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn version_names_the_commit() {
    let out = hakeep(&["version"]);
    let line = text(&out.stdout);
    assert!(
        line.starts_with(&format!("hakeep {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert_eq!(text(&hakeep(&["--version"]).stdout), line);
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = hakeep(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("switchover") && script.contains("maintenance"),
            "{shell}"
        );
    }
}

/// `status` fitted to COLUMNS (even into a pipe), whole with --wide or without COLUMNS.
#[test]
fn status_fits_columns_unless_wide() {
    let (_dir, config) = private_example();
    let status = |columns: Option<&str>, wide: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hakeep"));
        cmd.args(["-c", &config, "status", "--node", "nfs1"])
            .env_remove("HAKEEP_CONFIG")
            .env_remove("HAKEEP_NODE")
            .env_remove("COLUMNS");
        if wide {
            cmd.arg("--wide");
        }
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        let out = cmd.output().unwrap();
        assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
        text(&out.stdout)
    };
    let longest = |s: &str| s.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let narrow = status(Some("30"), false);
    assert!(longest(&narrow) <= 30, "{narrow}");
    let whole = status(None, false);
    assert!(longest(&whole) > 30, "{whole}");
    assert!(
        narrow.lines().count() > whole.lines().count(),
        "{narrow}\n{whole}"
    );
    assert_eq!(status(Some("30"), true), whole);
    // The same words, only broken into lines.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(words(&narrow), words(&whole));
}
