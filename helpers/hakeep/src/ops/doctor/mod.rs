//! `hakeep doctor`: can this node do its job? Each check has a stable id, a status (ok,
//! warn, fail), a one-line message and, when not ok, a fix. The JSON form is a contract
//! (docs/cli.md, docs/doctor.schema.json): the checks are always the same ids in the same
//! order, one entry each.
//!
//! Every check that does I/O goes through [`Host`], [`Peers`] or the exec [`Runner`], or
//! reads files under the paths it is given, so the decisions are unit-tested:
//!
//! - `keepalived`: script-user, keepalived-conf, notify-fifo;
//! - `peers`: peer-ssh;
//! - `host`: units-disabled, clock (and the real [`SystemHost`]);
//! - `dirs`: runtime-dirs;
//! - `holds`: holds and maintenance flags.

mod dirs;
mod holds;
mod host;
mod keepalived;
mod peers;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{Cluster, Node, SshSettings};
use crate::exec::Runner;
use crate::ops::remote::{KnownEntry, SessionError};
use crate::ops::view::line::{paint, Tone};
use crate::runtime::Paths;

pub use host::SystemHost;
pub use peers::SshPeers;

/// Version of the JSON report; bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

/// Where keepalived reads its configuration (the keepalived role writes it there).
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// The check ids, in report order (docs/cli.md lists what each checks and its fix).
pub const IDS: [&str; 9] = [
    "node-name",
    "script-user",
    "keepalived-conf",
    "notify-fifo",
    "peer-ssh",
    "units-disabled",
    "clock",
    "runtime-dirs",
    "holds",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about it; absent when the check is ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(id: &'static str, message: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// One finding of a check that looks at several things (peers, units, directories,
/// groups): the check is as bad as its worst finding, says all of them and the fixes of
/// those that are not ok.
struct Finding {
    status: Status,
    message: String,
    fix: Option<String>,
}

fn combine(id: &'static str, findings: Vec<Finding>, all_ok: impl Into<String>) -> Check {
    let Some(worst) = findings.iter().map(|f| f.status).max() else {
        return Check::ok(id, all_ok);
    };
    let message = findings
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut fixes: Vec<&str> = Vec::new();
    for fix in findings.iter().filter_map(|f| f.fix.as_deref()) {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    Check {
        id,
        status: worst,
        message,
        fix: (worst != Status::Ok && !fixes.is_empty()).then(|| fixes.join("; ")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub node: String,
    /// Where the node name came from (`--node`, HAKEEP_NODE, /etc/hakeep/node, the hostname).
    pub node_source: String,
    pub cluster: String,
    pub checks: Vec<Check>,
    pub summary: Summary,
}

impl Report {
    /// 0 when nothing failed (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.summary.fail > 0 {
            crate::cli::exit::PROBLEM
        } else {
            crate::cli::exit::OK
        }
    }
}

/// The node, its processes and its users, for the checks.
pub trait Host: Sync {
    /// Whether the user exists (NSS).
    fn user_exists(&self, name: &str) -> Result<bool, String>;
    /// When process `pid` started, if it runs and is hakeep.
    fn hakeep_started(&self, pid: u32) -> Option<SystemTime>;
    fn now(&self) -> SystemTime;
}

/// The other nodes over SSH, as the operator commands reach them.
pub trait Peers: Sync {
    /// What known_hosts says of the node, without connecting.
    fn known_entry(&self, ssh: &SshSettings, node: &Node) -> Result<KnownEntry, String>;
    /// Connects, checks the host key and logs in; runs nothing.
    fn probe(&self, ssh: &SshSettings, node: &Node) -> Result<(), SessionError>;
}

/// The name the agent's unit would use (it runs without --node and HAKEEP_NODE), when
/// this command got its name from either: (name, where from), or why there is none.
pub type UnitNode = Result<(String, String), String>;

/// What the checks look at.
pub struct Doctor<'a> {
    pub cluster: &'a Cluster,
    /// The cluster file (named in fixes when it is not the default).
    pub config: &'a Path,
    pub node: &'a str,
    pub node_source: &'a str,
    pub unit_node: Option<UnitNode>,
    pub paths: &'a Paths,
    pub keepalived_conf: &'a Path,
    pub runner: &'a dyn Runner,
    pub host: &'a dyn Host,
    pub peers: &'a dyn Peers,
}

impl Doctor<'_> {
    pub fn run(&self) -> Report {
        let conf = read_capped(self.keepalived_conf, keepalived::MAX_CONF_BYTES, false);
        // The peers answer slowest (a connect timeout each): asked meanwhile.
        let checks = std::thread::scope(|s| {
            let peer_ssh = s.spawn(|| peers::peer_ssh(self));
            let mut checks = vec![
                self.node_name(),
                keepalived::script_user(self),
                keepalived::conf(self, &conf),
                keepalived::notify_fifo(self, &conf),
            ];
            let rest = [
                host::units_disabled(self),
                host::clock(self),
                dirs::runtime_dirs(self),
                holds::holds(self),
            ];
            checks.push(peer_ssh.join().unwrap_or_else(|_| {
                Check::fail("peer-ssh", "the check panicked (a bug)", "report it")
            }));
            checks.extend(rest);
            checks
        });
        let checks: Vec<Check> = checks
            .into_iter()
            .map(|c| Check {
                message: one_line(&c.message),
                fix: c.fix.as_deref().map(one_line),
                ..c
            })
            .collect();
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        Report {
            schema: SCHEMA,
            node: self.node.to_string(),
            node_source: self.node_source.to_string(),
            cluster: self.cluster.name.clone(),
            summary: Summary {
                ok: count(Status::Ok),
                warn: count(Status::Warn),
                fail: count(Status::Fail),
            },
            checks,
        }
    }

    /// `-c FILE ` for a fix's hakeep command line, when the cluster file is not the default.
    fn config_arg(&self) -> String {
        if self.config == Path::new(crate::config::DEFAULT_PATH) {
            String::new()
        } else {
            format!("-c {} ", self.config.display())
        }
    }

    fn node_name(&self) -> Check {
        const ID: &str = "node-name";
        let base = format!(
            "{} (from {}) is a node of cluster {}",
            self.node, self.node_source, self.cluster.name
        );
        let fix = format!(
            "write {} to {} (root's, mode 0644), as the hakeep role does",
            self.node,
            crate::cli::node_identity::NODE_FILE
        );
        match &self.unit_node {
            None => Check::ok(ID, base),
            Some(Ok((name, _))) if name == self.node => {
                Check::ok(ID, format!("{base}; the agent's unit finds the same name"))
            }
            Some(Ok((name, from))) => Check::warn(
                ID,
                format!(
                    "{base}, but the agent's unit (no --node, no HAKEEP_NODE) would be {name:?} \
                     (from {from})"
                ),
                fix,
            ),
            Some(Err(why)) => Check::warn(
                ID,
                format!(
                    "{base}, but the agent's unit (no --node, no HAKEEP_NODE) would fail: {why}"
                ),
                fix,
            ),
        }
    }
}

/// Messages and fixes are one line each, whatever a program's stderr held.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The report for a person: one line per check (status, id, message), `  fix: ...` under
/// those that are not ok, then the counts.
pub fn render(report: &Report, colour: bool) -> String {
    let mut out = format!(
        "node {} (from {}), cluster {}\n",
        report.node, report.node_source, report.cluster
    );
    let width = IDS.iter().map(|id| id.len()).max().unwrap_or(0);
    for c in &report.checks {
        let (label, tone) = match c.status {
            Status::Ok => ("ok  ", Tone::Good),
            Status::Warn => ("WARN", Tone::Warn),
            Status::Fail => ("FAIL", Tone::Bad),
        };
        out.push_str(&format!(
            "{}  {:width$}  {}\n",
            paint(label, tone, colour),
            c.id,
            c.message
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    let s = &report.summary;
    out.push_str(&format!(
        "{} ok, {} warning(s), {} problem(s)\n",
        s.ok, s.warn, s.fail
    ));
    out
}

/// A file's text (and what it is), at most `max` bytes; `Ok(None)` when it does not exist. With
/// `nofollow`, a symlink at the path is refused (root reads what only root should write).
fn read_capped(
    path: &Path,
    max: u64,
    nofollow: bool,
) -> Result<Option<(String, std::fs::Metadata)>, String> {
    let flags = if nofollow {
        rustix::fs::OFlags::NOFOLLOW.bits() as i32
    } else {
        0
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(Some((text, meta)))
}

#[cfg(test)]
mod tests;
