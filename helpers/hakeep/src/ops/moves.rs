//! Planned moves: release, takeover and switchover. The releasing node always releases
//! first, while it still holds the group, and only then steps down (docs/design.md §2).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::{CheckKind, Cluster};
use crate::runtime::control::{self, ControlReply, ControlRequest};
use crate::runtime::Paths;

use super::cluster_status;
use super::remote;
use super::status;

/// Where an operator command runs: the cluster, its file, this node, the agent's paths.
pub struct Site<'a> {
    pub cluster: &'a Cluster,
    pub config: &'a Path,
    pub me: &'a str,
    pub paths: &'a Paths,
}

/// Asks this node's agent to release `group`.
pub fn release_local(
    paths: &Paths,
    group: &str,
    hold_secs: Option<u32>,
) -> anyhow::Result<ControlReply> {
    control::send(
        &paths.control_socket,
        &ControlRequest::Release {
            group: group.to_string(),
            hold_secs,
        },
    )
}

/// Ends this node's hold on `group` (a fence hold only with `force`) and waits until
/// keepalived here reports BACKUP for it: ready to take over.
pub fn prepare_local(paths: &Paths, group: &str, force: bool) -> anyhow::Result<ControlReply> {
    control::send(
        &paths.control_socket,
        &ControlRequest::Prepare {
            group: group.to_string(),
            force,
        },
    )
}

/// Ends this node's hold on `group` and waits until it is active here.
pub fn takeover_local(
    site: &Site,
    group: &str,
    wait: Duration,
    force: bool,
) -> anyhow::Result<ControlReply> {
    let (paths, cluster, me) = (site.paths, site.cluster, site.me);
    let reply = control::send(
        &paths.control_socket,
        &ControlRequest::Takeover {
            group: group.to_string(),
            force,
        },
    )?;
    if !reply.ok {
        return Ok(reply);
    }
    let deadline = Instant::now() + wait;
    loop {
        let s = status::local(paths, &cluster.name, me);
        if let Some(g) = s.groups.iter().find(|g| g.name == group) {
            if g.state.actual == "active" && g.state.desired == "active" {
                return Ok(ControlReply {
                    ok: true,
                    message: format!("group {group} is active on {me}"),
                    release_started_ms: None,
                    release_duration_ms: None,
                });
            }
        }
        if Instant::now() >= deadline {
            return Ok(ControlReply::error(format!(
                "group {group} is not active on {me} after {} s; see `hakeep status`",
                wait.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `hakeep release|takeover ... --json` on a peer and reads its reply.
pub fn remote_control(
    site: &Site,
    node: &str,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<ControlReply> {
    let (cluster, config) = (site.cluster, site.config);
    let peer = cluster
        .node(node)
        .with_context(|| format!("{node} is not in the cluster file"))?;
    let out = remote::hakeep(&cluster.ssh, peer, config, args, timeout)?;
    serde_json::from_str(out.stdout.trim()).with_context(|| {
        format!(
            "{node} answered (exit {}): {} {}",
            out.exit,
            out.stdout.trim(),
            out.stderr.trim()
        )
    })
}

/// The other member nodes that hold `group` now, as far as they can be asked.
pub fn holders(site: &Site, group: &str) -> (Vec<String>, Vec<String>) {
    let (cluster, config, me, paths) = (site.cluster, site.config, site.me, site.paths);
    let Some(g) = cluster.group(group) else {
        return (Vec::new(), Vec::new());
    };
    let statuses: Vec<_> = g
        .nodes
        .iter()
        .map(|n| cluster_status::node_status(cluster, config, me, n, paths))
        .collect();
    let placement = cluster_status::placement(group, &g.nodes, &statuses);
    (placement.active_on, placement.unknown_on)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchoverReport {
    pub group: String,
    pub from: Option<String>,
    pub to: String,
    pub ok: bool,
    pub message: String,
    /// From the old holder starting its release to the service answering on the target.
    pub outage_ms: Option<u64>,
    pub release_ms: Option<u64>,
}

/// One step of a switchover, for progress display.
pub trait Progress {
    fn step(&self, message: &str);
}

/// Moves `group` to `to`. The target gets ready first (its hold ended, keepalived there
/// confirmed BACKUP), so what happened to it before (its own step-down a moment ago)
/// does not delay the move; then the holder releases and steps down; then the target
/// takes over and its service must answer.
pub fn switchover(
    site: &Site,
    group: &str,
    to: &str,
    wait: Duration,
    force: bool,
    progress: &dyn Progress,
) -> anyhow::Result<SwitchoverReport> {
    let (cluster, me, paths) = (site.cluster, site.me, site.paths);
    let g = cluster
        .group(group)
        .with_context(|| format!("no group {group:?} in the cluster file"))?;
    if !g.nodes.iter().any(|n| n == to) {
        bail!(
            "{to} is not a node of group {group} (nodes: {})",
            g.nodes.join(", ")
        );
    }
    progress.step(&format!("finding where {group} is active"));
    let (active_on, unknown) = holders(site, group);
    let report =
        |from: Option<String>, ok, message: String, outage_ms, release_ms| SwitchoverReport {
            group: group.into(),
            from,
            to: to.into(),
            ok,
            message,
            outage_ms,
            release_ms,
        };
    if active_on.len() > 1 {
        bail!(
            "group {group} is active on {}: resolve that first",
            active_on.join(" and ")
        );
    }
    let from = active_on.first().cloned();
    if from.as_deref() == Some(to) {
        return Ok(report(
            from,
            true,
            format!("group {group} is already active on {to}"),
            None,
            None,
        ));
    }
    if from.is_none() && !unknown.is_empty() {
        bail!(
            "group {group} is active on no reachable node and {} cannot be asked",
            unknown.join(", ")
        );
    }
    let wait_arg = format!("--wait={}", wait.as_secs());
    let timeout = wait + Duration::from_secs(30);
    let force_arg = force.then_some("--force");
    progress.step(&format!(
        "getting {to} ready: its hold ended, keepalived there BACKUP for {group}"
    ));
    let ready = if to == me {
        prepare_local(paths, group, force)?
    } else {
        let node_arg = format!("--node={to}");
        let mut args = vec!["takeover", group, "--prepare", "--json", node_arg.as_str()];
        args.extend(force_arg);
        remote_control(site, to, &args, timeout)?
    };
    if !ready.ok {
        return Ok(report(
            from,
            false,
            format!("{to} is not ready to take {group} over: {}", ready.message),
            None,
            None,
        ));
    }
    let mut release_started_ms = None;
    let mut release_ms = None;
    if let Some(holder) = &from {
        progress.step(&format!(
            "releasing {group} on {holder} (services, mounts, storage), then stepping down"
        ));
        let reply = if holder == me {
            release_local(paths, group, None)?
        } else {
            remote_control(
                site,
                holder,
                &["release", group, "--json", &format!("--node={holder}")],
                timeout,
            )?
        };
        if !reply.ok {
            return Ok(report(
                from.clone(),
                false,
                format!("release on {holder} failed: {}", reply.message),
                None,
                None,
            ));
        }
        release_started_ms = reply.release_started_ms;
        release_ms = reply.release_duration_ms;
    }
    progress.step(&format!(
        "taking {group} over on {to} and waiting until it is healthy"
    ));
    let reply = if to == me {
        takeover_local(site, group, wait, force)?
    } else {
        let node_arg = format!("--node={to}");
        let mut args = vec![
            "takeover",
            group,
            "--json",
            "--no-remote",
            wait_arg.as_str(),
            node_arg.as_str(),
        ];
        args.extend(force_arg);
        remote_control(site, to, &args, timeout)?
    };
    if !reply.ok {
        return Ok(report(
            from,
            false,
            format!("takeover on {to} failed: {}", reply.message),
            None,
            release_ms,
        ));
    }
    progress.step(&format!("waiting for {group}'s service to answer"));
    if let Err(e) = wait_for_service(g, wait) {
        let message =
            format!("group {group} is active on {to} but its service does not answer: {e}");
        return Ok(report(from, false, message, None, release_ms));
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let outage_ms = release_started_ms.map(|start| now_ms.saturating_sub(start));
    Ok(report(
        from,
        true,
        format!("group {group} moved to {to}"),
        outage_ms,
        release_ms,
    ))
}

/// Waits until the group's first tcp check connects (when it has one).
fn wait_for_service(group: &crate::config::Group, wait: Duration) -> Result<(), String> {
    let Some(target) = group.checks.iter().find_map(|c| match c.kind {
        CheckKind::Tcp { host, port } => Some(std::net::SocketAddr::new(host, port)),
        _ => None,
    }) else {
        return Ok(());
    };
    let deadline = Instant::now() + wait;
    loop {
        match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(format!("{target}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
