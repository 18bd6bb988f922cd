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
