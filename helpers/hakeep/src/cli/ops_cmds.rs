//! status, release, takeover, switchover, maintenance, check.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use super::exit;
use super::node_identity;
use crate::config::{self, Cluster};
use crate::exec::SystemRunner;
use crate::ops::status::{self, Verdict};
use crate::ops::view::{self, View};
use crate::ops::{check as checks, cluster_status, maintenance as flags, moves};
use crate::runtime::control::ControlReply;
use crate::runtime::Paths;

fn load(config: &Path) -> anyhow::Result<Cluster> {
    config::load(config).map_err(|e| anyhow::anyhow!("{e}"))
}

/// This node's name, which the cluster must list (else exit 2, naming where it came from).
fn this_node(cluster: &Cluster, flag: Option<String>) -> anyhow::Result<String> {
    Ok(node_identity::resolve(flag).and_then(|id| id.in_cluster(cluster))?)
}

fn code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::AsIntended => exit::OK,
        Verdict::SomethingWrong => exit::PROBLEM,
        Verdict::CannotTell => exit::CANNOT_TELL,
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn status(
    config: &Path,
    node: Option<String>,
    json: bool,
    all_nodes: bool,
    wide: bool,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let me = this_node(&cluster, node)?;
    let paths = Paths::default();
    if all_nodes {
        let s = cluster_status::gather(&cluster, config, &me, &paths);
        if json {
            print_json(&s)?;
        } else {
            print!("{}", view::cluster::render(&s, &View::for_stdout(wide)));
        }
        return Ok(code(s.verdict()));
    }
    let s = status::local(&paths, &cluster.name, &me);
    if json {
        print_json(&s)?;
    } else {
        print!("{}", view::node::render(&s, &View::for_stdout(wide)));
    }
    Ok(code(s.verdict()))
}

fn report(reply: &ControlReply, json: bool) -> anyhow::Result<i32> {
    if json {
        print_json(reply)?;
    } else if reply.ok {
        println!("{}", reply.message);
    } else {
        eprintln!("hakeep: {}", reply.message);
    }
    Ok(if reply.ok { exit::OK } else { exit::PROBLEM })
}

pub fn release(
    config: &Path,
    node: Option<String>,
    group: Option<String>,
    all: bool,
    hold: Option<u32>,
    json: bool,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let me = this_node(&cluster, node)?;
    let paths = Paths::default();
    let groups: Vec<String> = match group {
        Some(g) => vec![g],
        None if all => {
            let s = status::local(&paths, &cluster.name, &me);
            s.active_groups().map(|g| g.name.clone()).collect()
        }
        None => bail!("name a group or --all"),
    };
    let mut worst = exit::OK;
    for g in groups {
        let reply = moves::release_local(&paths, &g, hold)?;
        worst = worst.max(report(&reply, json)?);
    }
    Ok(worst)
}

/// How `hakeep takeover` goes about it.
pub struct TakeoverMode {
    /// Do not ask other nodes to release.
    pub no_remote: bool,
    /// Only get ready (end the hold, wait for BACKUP).
    pub prepare: bool,
    /// End a fence hold too.
    pub force: bool,
}

pub fn takeover(
    config: &Path,
    node: Option<String>,
    group: &str,
    mode: TakeoverMode,
    wait: u64,
    json: bool,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let me = this_node(&cluster, node)?;
    let paths = Paths::default();
    let site = moves::Site {
        cluster: &cluster,
        config,
        me: &me,
        paths: &paths,
    };
    let wait = Duration::from_secs(wait);
    // Ready first (hold ended, keepalived BACKUP here), so the holder's step-down moves
    // the group here at once.
    let ready = moves::prepare_local(&paths, group, mode.force)?;
    if mode.prepare || !ready.ok {
        return report(&ready, json);
    }
    if !mode.no_remote {
        let (active_on, unknown) = moves::holders(&site, group);
        for holder in active_on.iter().filter(|h| **h != me) {
            if !json {
                println!("asking {holder} to release {group} first");
            }
            let reply = moves::remote_control(
                &site,
                holder,
                &["release", group, "--json", &format!("--node={holder}")],
                wait + Duration::from_secs(30),
            )?;
            if !reply.ok {
                eprintln!(
                    "hakeep: {holder} could not release {group}: {}",
                    reply.message
                );
                return Ok(exit::PROBLEM);
            }
        }
        for node in unknown.iter().filter(|n| **n != me) {
            eprintln!("hakeep: warning: {node} cannot be asked; storage fencing protects the data if it still holds {group}");
        }
    }
    let reply = moves::takeover_local(&site, group, wait, mode.force)?;
    report(&reply, json)
}

struct Bar(indicatif::ProgressBar);

impl moves::Progress for Bar {
    fn step(&self, message: &str) {
        self.0.inc(1);
        self.0.set_message(message.to_string());
    }
}

pub fn switchover(
    config: &Path,
    node: Option<String>,
    group: &str,
    to: &str,
    wait: u64,
    force: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let me = this_node(&cluster, node)?;
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(5);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("[{pos}/{len}] {elapsed:>4} {msg}")
        {
            bar.set_style(style);
        }
        bar
    };
    let paths = Paths::default();
    let site = moves::Site {
        cluster: &cluster,
        config,
        me: &me,
        paths: &paths,
    };
    let report = moves::switchover(
        &site,
        group,
        to,
        Duration::from_secs(wait),
        force,
        &Bar(bar.clone()),
    )?;
    bar.finish_and_clear();
    if json {
        print_json(&report)?;
    } else {
        println!("{}", report.message);
        if let Some(ms) = report.outage_ms {
            println!(
                "outage: {ms} ms (from {} starting its release to the service answering on {})",
                report.from.as_deref().unwrap_or("?"),
                report.to
            );
        }
    }
    Ok(if report.ok { exit::OK } else { exit::PROBLEM })
}

pub fn maintenance(
    config: &Path,
    node: Option<String>,
    mode: &str,
    group: Option<&str>,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    this_node(&cluster, node)?;
    if let Some(g) = group {
        if cluster.group(g).is_none() {
            eprintln!("hakeep: no group {g:?} in {}", config.display());
            return Ok(exit::PROBLEM);
        }
    }
    let on = mode == "on";
    let changed = flags::set(&Paths::default(), group, on)?;
    let what = group
        .map(|g| format!("group {g}"))
        .unwrap_or_else(|| "all groups".into());
    println!(
        "maintenance {} for {what}{}: {}",
        if on { "on" } else { "off" },
        if changed { "" } else { " (already)" },
        if on {
            "the agent records but does not act; keepalived is left alone"
        } else {
            "the agent acts again at its next resync"
        }
    );
    Ok(exit::OK)
}

pub fn check(
    config: &Path,
    node: Option<String>,
    group: Option<&str>,
    json: bool,
) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let me = this_node(&cluster, node)?;
    let s = status::local(&Paths::default(), &cluster.name, &me);
    let mut results = Vec::new();
    let chosen: Vec<_> = cluster
        .groups_of(&me)
        .filter(|g| group.is_none_or(|want| want == g.name))
        .collect();
    let units: Vec<String> = chosen
        .iter()
        .flat_map(|g| &g.services)
        .filter_map(|s| match s {
            crate::config::Service::Unit(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    // Units are read from systemd over D-Bus, as the agent does.
    let systemd = if units.is_empty() {
        None
    } else {
        match crate::observe::systemd::Systemd::connect(&units, |_| {}) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("hakeep: cannot reach systemd to read the units' states: {e}");
                None
            }
        }
    };
    let no_systemd = crate::drivers::NoSystemd("systemd could not be reached");
    let unit_view: &dyn crate::drivers::Units = match &systemd {
        Some(s) => s.as_ref(),
        None => &no_systemd,
    };
    for g in chosen {
        let active = s
            .groups
            .iter()
            .any(|st| st.name == g.name && st.state.desired == "active");
        results.extend(checks::group(
            &SystemRunner,
            unit_view,
            &cluster,
            &me,
            g,
            active,
        ));
    }
    if let Some(want) = group {
        if cluster.group(want).is_none() {
            eprintln!("hakeep: no group {want:?} in {}", config.display());
            return Ok(exit::CANNOT_TELL);
        }
    }
    let report = checks::CheckReport::new(&cluster.name, &me, results);
    if json {
        print_json(&report)?;
    } else {
        for r in &report.results {
            println!(
                "{} {} {}: {}",
                if r.ok { "ok  " } else { "FAIL" },
                r.group,
                r.check,
                r.detail
            );
        }
    }
    Ok(if report.ok { exit::OK } else { exit::PROBLEM })
}

pub fn plan(config: &Path, node: Option<String>, json: bool) -> anyhow::Result<i32> {
    let cluster = load(config)?;
    let id = node_identity::resolve(node)?;
    let source = id.source.to_string();
    let me = id.in_cluster(&cluster)?;
    let plan = crate::ops::plan::of(&cluster, &me, &source);
    if json {
        print_json(&plan)?;
    } else {
        print!("{}", crate::ops::plan::render(&plan));
    }
    Ok(exit::OK)
}

/// `doctor`: can this node do its job? Exit 2 (nothing printed on stdout) when the cluster
/// file cannot be read or this host is not one of its nodes.
pub fn doctor(
    config: &Path,
    node: Option<String>,
    json: bool,
    keepalived_conf: &Path,
) -> anyhow::Result<i32> {
    use crate::ops::doctor;
    let cluster = load(config)?;
    let id = node_identity::resolve(node)?;
    let source = id.source.clone();
    let me = id.in_cluster(&cluster)?;
    // The agent's unit has neither --node nor HAKEEP_NODE: does it find the same name?
    let unit_node = matches!(
        source,
        node_identity::Source::Flag | node_identity::Source::Env
    )
    .then(|| {
        node_identity::resolve_from(
            None,
            None,
            Path::new(node_identity::NODE_FILE),
            super::short_hostname,
        )
        .map(|id| (id.name, id.source.to_string()))
        .map_err(|e| e.to_string())
    });
    let source = source.to_string();
    let paths = Paths::default();
    let report = doctor::Doctor {
        cluster: &cluster,
        config,
        node: &me,
        node_source: &source,
        unit_node,
        paths: &paths,
        keepalived_conf,
        runner: &SystemRunner,
        host: &doctor::SystemHost,
        peers: &doctor::SshPeers,
    }
    .run();
    if json {
        print_json(&report)?;
    } else {
        print!(
            "{}",
            doctor::render(&report, crate::ops::view::line::colour_wanted())
        );
    }
    Ok(report.exit_code())
}

/// `peer-command`: the forced command of a peer's key. Refuses (exit 1, reason on stderr)
/// whatever is not one of the requests ops::remote sends; runs the rest as this binary
/// with an explicit argv, so no shell ever parses what the client sent.
pub fn peer_command(config: &Path) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;

    let Some(original) = std::env::var_os("SSH_ORIGINAL_COMMAND") else {
        eprintln!("hakeep: this key only runs hakeep's peer requests (status, release)");
        return Ok(exit::PROBLEM);
    };
    let cluster = load(config)?;
    let args =
        match crate::ops::peer_command::allowed_args(&original.to_string_lossy(), config, &cluster)
        {
            Ok(args) => args,
            Err(why) => {
                eprintln!("hakeep: refused: {why}");
                return Ok(exit::PROBLEM);
            }
        };
    let me = std::env::current_exe()?;
    let err = std::process::Command::new(&me)
        .arg("-c")
        .arg(config)
        .args(&args)
        .env_remove("HAKEEP_CONFIG")
        .env_remove("HAKEEP_NODE")
        .env_remove("SSH_ORIGINAL_COMMAND")
        .exec();
    bail!("running {}: {err}", me.display())
}
