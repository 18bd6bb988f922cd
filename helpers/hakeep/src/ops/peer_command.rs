//! The forced command of the peers' SSH keys. Each node's key is authorized on its peers
//! only as `command="hakeep -c CLUSTER_YML peer-command"` (roles/hakeep, peers.yml), so a
//! stolen or misused key runs nothing but the two requests the operator commands send
//! (ops::remote): a node's status, and the release of a group. sshd puts what the client
//! asked for in SSH_ORIGINAL_COMMAND; it is checked word by word against those forms,
//! the names against the cluster file, and only then run (by argv, never a shell).

use std::path::Path;

use crate::config::Cluster;

/// The longest request the client sends (a few names and flags); anything longer is refused.
const MAX_REQUEST: usize = 4096;

/// The argv (after `hakeep -c CLUSTER_YML`) that `original` asks for, or why it is refused.
///
/// `original` must read `HAKEEP -c CONFIG ARGS...` with CONFIG the cluster file this forced
/// command names (the client's binary path is its own business; the one that runs is this
/// binary) and ARGS one of:
///
/// - `status --json --node=NODE` (status --all-nodes)
/// - `release GROUP --json --node=NODE` (takeover, switchover: the holder releases)
/// - `takeover GROUP --prepare --json --node=NODE [--force]` (switchover's first step)
/// - `takeover GROUP --json --no-remote --wait=SECS --node=NODE [--force]` (its last)
///
/// with NODE a node and GROUP a group of `cluster`.
pub fn allowed_args(
    original: &str,
    config: &Path,
    cluster: &Cluster,
) -> Result<Vec<String>, String> {
    if original.len() > MAX_REQUEST {
        return Err(format!(
            "a request of {} bytes (at most {MAX_REQUEST})",
            original.len()
        ));
    }
    let words: Vec<&str> = original.split_ascii_whitespace().collect();
    let [_binary, "-c", asked_config, rest @ ..] = words.as_slice() else {
        return Err("not a hakeep peer request (HAKEEP -c CONFIG ...)".into());
    };
    if Path::new(asked_config) != config {
        return Err(format!(
            "the cluster file {asked_config:?} is not this node's ({})",
            config.display()
        ));
    }
    let node = |arg: &str| -> Result<String, String> {
        let name = arg
            .strip_prefix("--node=")
            .ok_or_else(|| format!("{arg:?} is not --node=NODE"))?;
        cluster
            .node(name)
            .map(|_| name.to_string())
            .ok_or_else(|| format!("{name:?} is not a node of the cluster"))
    };
    let known_group = |name: &str| -> Result<String, String> {
        cluster
            .group(name)
            .map(|_| name.to_string())
            .ok_or_else(|| format!("{name:?} is not a group of the cluster"))
    };
    match rest {
        ["status", "--json", n] => Ok(vec![
            "status".into(),
            "--json".into(),
            format!("--node={}", node(n)?),
        ]),
        ["release", group, "--json", n] => Ok(vec![
            "release".into(),
            known_group(group)?,
            "--json".into(),
            format!("--node={}", node(n)?),
        ]),
        ["takeover", group, "--prepare", "--json", n, force @ ..] => {
            let mut args = vec![
                "takeover".into(),
                known_group(group)?,
                "--prepare".into(),
                "--json".into(),
                format!("--node={}", node(n)?),
            ];
            args.extend(force_flag(force)?);
            Ok(args)
        }
        ["takeover", group, "--json", "--no-remote", w, n, force @ ..] => {
            let mut args = vec![
                "takeover".into(),
                known_group(group)?,
                "--json".into(),
                "--no-remote".into(),
                format!("--wait={}", wait_secs(w)?),
                format!("--node={}", node(n)?),
            ];
            args.extend(force_flag(force)?);
            Ok(args)
        }
        _ => Err(format!(
            "only status, release and switchover's takeover requests are allowed, not {:?}",
            rest.join(" ")
        )),
    }
}

/// `--wait=SECS` of a switchover's takeover: a whole number of seconds up to a day.
fn wait_secs(arg: &str) -> Result<u64, String> {
    arg.strip_prefix("--wait=")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|secs| *secs <= 86_400)
        .ok_or_else(|| format!("{arg:?} is not --wait=SECS (at most 86400)"))
}

/// Nothing, or `--force` (switchover --force), after a takeover request.
fn force_flag(rest: &[&str]) -> Result<Option<String>, String> {
    match rest {
        [] => Ok(None),
        ["--force"] => Ok(Some("--force".into())),
        _ => Err(format!(
            "unexpected {:?} after a takeover request",
            rest.join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        crate::config::from_str(
            "cluster.yml",
            include_str!("../../../../examples/nfs-active-passive.yml"),
        )
        .expect("the test cluster file is valid")
    }

    const CONFIG: &str = "/etc/hakeep/cluster.yml";

    fn ask(original: &str) -> Result<Vec<String>, String> {
        allowed_args(original, Path::new(CONFIG), &cluster())
    }

    #[test]
    fn the_operator_commands_requests_pass_as_argv() {
        let c = cluster();
        let node = c.nodes[0].name.clone();
        let group = c.groups[0].name.clone();
        assert_eq!(
            ask(&format!(
                "/usr/bin/hakeep -c {CONFIG} status --json --node={node}"
            ))
            .unwrap(),
            ["status", "--json", &format!("--node={node}")]
        );
        assert_eq!(
            ask(&format!(
                "/opt/x/hakeep -c {CONFIG} release {group} --json --node={node}"
            ))
            .unwrap(),
            ["release", &group, "--json", &format!("--node={node}")]
        );
        assert_eq!(
            ask(&format!(
                "hakeep -c {CONFIG} takeover {group} --prepare --json --node={node} --force"
            ))
            .unwrap(),
            [
                "takeover",
                &group,
                "--prepare",
                "--json",
                &format!("--node={node}"),
                "--force"
            ]
        );
        assert_eq!(
            ask(&format!(
                "hakeep -c {CONFIG} takeover {group} --json --no-remote --wait=120 --node={node}"
            ))
            .unwrap(),
            [
                "takeover",
                &group,
                "--json",
                "--no-remote",
                "--wait=120",
                &format!("--node={node}")
            ]
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let c = cluster();
        let node = c.nodes[0].name.clone();
        let group = c.groups[0].name.clone();
        for bad in [
            String::new(),
            "id".into(),
            "sh -c id".into(),
            format!("hakeep -c /tmp/evil.yml status --json --node={node}"),
            format!("hakeep -c {CONFIG} takeover {group} --json --node={node}"),
            format!(
                "hakeep -c {CONFIG} takeover {group} --json --no-remote --wait=x --node={node}"
            ),
            format!("hakeep -c {CONFIG} takeover {group} --prepare --json --node={node} --verbose"),
            format!("hakeep -c {CONFIG} release --all --json --node={node}"),
            format!("hakeep -c {CONFIG} release nosuchgroup --json --node={node}"),
            format!("hakeep -c {CONFIG} status --json --node=nosuchnode"),
            format!("hakeep -c {CONFIG} status --json --node={node} --verbose"),
            format!("hakeep -c {CONFIG} status --json --node={node};id"),
            format!("hakeep -c {CONFIG} maintenance on"),
            format!("hakeep -c {CONFIG} status {}", "x".repeat(5000)),
        ] {
            assert!(ask(&bad).is_err(), "{bad:?} was allowed");
        }
    }
}
