//! What the nodes hold and do: mounts, VIPs, the service, HTTP through the VIP, the agent's
//! files (actions.log, state.json, the track file), who is active and waits for it; the
//! fork-free [`Observer`] for samplers; actions.log parsed ([`parse_actions`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use super::agent::{ACTIONS_LOG, STATE_JSON};
use super::process::{run_ok, run_with_timeout, text, wait_until};
use super::{Lab, CONTENT, GROUP, HTTP_PORT, METRICS_PORT, MOUNTPOINT, POLL, VIP};

/// Whether a mountinfo text has the group's mount: anything on MOUNTPOINT (or under it), or
/// the shared device anywhere.
fn mountinfo_has_group_mount(mountinfo: &str, dev: &str) -> bool {
    mountinfo.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mountpoint = fields.get(4).copied().unwrap_or("");
        let source = line
            .split(" - ")
            .nth(1)
            .and_then(|rest| rest.split(' ').nth(1))
            .unwrap_or("");
        mountpoint == MOUNTPOINT
            || mountpoint.starts_with(&format!("{MOUNTPOINT}/"))
            || (!dev.is_empty() && source == dev)
    })
}

/// Milliseconds since the epoch of `2026-11-22T02:20:58.342Z` (the agent's timestamps).
pub fn epoch_ms(stamp: &str) -> Option<u64> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis).ok()
}

/// Whether a /proc/net/fib_trie text has `addr` as a local address (`|-- ADDR` followed by
/// `/32 host LOCAL`): the kernel's own table of the namespace's IPv4 addresses (on links
/// that are up), read without forking `ip`.
pub fn fib_trie_has_local(fib_trie: &str, addr: &str) -> bool {
    let mut lines = fib_trie.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().strip_prefix("|-- ") == Some(addr) {
            while let Some(next) = lines.peek() {
                let t = next.trim_start();
                if !t.starts_with('/') {
                    break;
                }
                if t.starts_with("/32 host LOCAL") {
                    return true;
                }
                lines.next();
            }
        }
    }
    false
}

/// See [`Lab::observer`].
#[derive(Debug, Clone)]
pub struct Observer {
    nodes: Vec<(String, u32)>,
    loop_dev: String,
}

impl Observer {
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.clone()).collect()
    }

    fn pid(&self, name: &str) -> u32 {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no node {name} in the lab"))
    }

    /// A copy in which node `name` is read from node `source`'s namespaces (a sampler's
    /// control: two names, one node, so whatever it holds is "held twice").
    pub fn aliased(&self, name: &str, source: &str) -> Observer {
        let pid = self.pid(source);
        let mut copy = self.clone();
        for (n, p) in &mut copy.nodes {
            if n == name {
                *p = pid;
            }
        }
        copy
    }

    /// The group's device or mountpoint is mounted in the node (its /proc/HOLDER/mountinfo).
    pub fn has_mount(&self, name: &str) -> bool {
        let info =
            fs::read_to_string(format!("/proc/{}/mountinfo", self.pid(name))).unwrap_or_default();
        mountinfo_has_group_mount(&info, &self.loop_dev)
    }

    /// The VIP is a local address of the node (its /proc/HOLDER/net/fib_trie).
    pub fn has_vip(&self, name: &str) -> bool {
        let trie = fs::read_to_string(format!("/proc/{}/net/fib_trie", self.pid(name)))
            .unwrap_or_default();
        fib_trie_has_local(&trie, VIP)
    }
}

/// One line of actions.log: `TIMESTAMP group=G action=A step=S result=R duration_ms=N ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub group: String,
    pub action: String,
    pub step: String,
    pub result: String,
    pub duration_ms: Option<u64>,
}

pub fn parse_actions(log: &str) -> Vec<Action> {
    log.lines()
        .filter_map(|line| {
            let fields: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .collect();
            Some(Action {
                group: fields.get("group")?.to_string(),
                action: fields.get("action")?.to_string(),
                step: fields.get("step")?.to_string(),
                result: fields.get("result").copied().unwrap_or("").to_string(),
                duration_ms: fields.get("duration_ms").and_then(|d| d.parse().ok()),
            })
        })
        .collect()
}

impl Lab {
    pub fn mountinfo(&self, name: &str) -> String {
        fs::read_to_string(format!("/proc/{}/mountinfo", self.holder_pid(name))).unwrap_or_default()
    }

    /// Whether the shared device (or anything) is mounted on the group's mountpoint in
    /// that node.
    pub fn has_mount(&self, name: &str) -> bool {
        mountinfo_has_group_mount(
            &self.mountinfo(name),
            self.loop_dev.as_deref().unwrap_or(""),
        )
    }

    pub fn addresses(&self, name: &str) -> String {
        run_ok(&["ip", "-n", &self.node(name).netns, "-o", "addr", "show"]).unwrap_or_default()
    }

    pub fn has_vip(&self, name: &str) -> bool {
        let needle = format!(" {VIP}/");
        self.addresses(name).contains(&needle)
    }

    /// The fixture service's own `status` in that node.
    pub fn service_running(&self, name: &str) -> bool {
        let script = self.service_script.display().to_string();
        self.exec(name, &[&script, "status"])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// HTTP GET through the VIP from the client netns.
    pub fn http_get(&self, path: &str) -> Result<String> {
        let url = format!("http://{VIP}:{HTTP_PORT}/{}", path.trim_start_matches('/'));
        let out = run_with_timeout(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.client_ns))
                .args(["--", "curl", "-sS", "--fail", "--max-time", "2", &url]),
            Duration::from_secs(10),
        )?;
        if !out.status.success() {
            bail!("GET {url}: {}", text(&out.stderr).trim());
        }
        Ok(text(&out.stdout))
    }

    /// A scrape of `name`'s metrics endpoint, from the client netns over the lab's bridge.
    pub fn scrape(&self, name: &str) -> Result<String> {
        let url = format!("http://{}:{METRICS_PORT}/metrics", self.node(name).address);
        let out = run_with_timeout(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.client_ns))
                .args(["--", "curl", "-sS", "--fail", "--max-time", "2", &url]),
            Duration::from_secs(10),
        )?;
        if !out.status.success() {
            bail!("GET {url}: {}", text(&out.stderr).trim());
        }
        Ok(text(&out.stdout))
    }

    /// Which node the service behind the VIP says it runs on (the start script writes its
    /// node's name to node.txt), if it answers and serves the fixture content.
    pub fn serving_node(&self) -> Option<String> {
        let index = self.http_get("index.html").ok()?;
        if !index.contains(CONTENT) {
            return None;
        }
        Some(self.http_get("node.txt").ok()?.trim().to_string())
    }

    pub fn actions_log(&self, name: &str) -> String {
        self.read_node_file(name, ACTIONS_LOG).unwrap_or_default()
    }

    pub fn state_json(&self, name: &str) -> Option<String> {
        self.read_node_file(name, STATE_JSON)
    }

    pub fn track_file(&self, name: &str) -> Option<String> {
        self.read_node_file(name, &format!("/run/hakeep/track/{GROUP}"))
    }

    /// Whether the node holds the group: mounted and the VIP; `holds_nothing` is the
    /// opposite claim for every part (mount, VIP, service).
    pub fn is_active(&self, name: &str) -> bool {
        self.has_mount(name) && self.has_vip(name)
    }

    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn holds_nothing(&self, name: &str) -> bool {
        !self.has_mount(name) && !self.has_vip(name) && !self.service_running(name)
    }

    /// `name` serves alone: mounted there, the VIP there, the service answering through
    /// the VIP from `name`; every other node has no mount, no VIP, no service.
    pub fn check_only_active(&self, name: &str) -> Result<()> {
        let mut wrong = Vec::new();
        if !self.has_mount(name) {
            wrong.push(format!("{name} has no mount on {MOUNTPOINT}"));
        }
        if !self.has_vip(name) {
            wrong.push(format!("{name} lacks the VIP"));
        }
        match self.serving_node() {
            Some(s) if s == name => {}
            other => wrong.push(format!("HTTP through the VIP is served by {other:?}")),
        }
        for other in self.node_names().into_iter().filter(|n| n != name) {
            if self.has_mount(&other) {
                wrong.push(format!("{other} has {MOUNTPOINT} mounted"));
            }
            if self.has_vip(&other) {
                wrong.push(format!("{other} has the VIP"));
            }
            if self.service_running(&other) {
                wrong.push(format!("{other} runs the service"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            bail!("{name} is not the only active node: {}", wrong.join("; "))
        }
    }

    /// Waits until `name` is the only active node (see [`Lab::check_only_active`]).
    pub fn wait_only_active(&self, name: &str, timeout: Duration) -> Result<Duration> {
        self.wait(&format!("{name} alone is active"), timeout, |lab| {
            lab.check_only_active(name).is_ok()
        })
        .map_err(|e| match self.check_only_active(name) {
            Err(why) => e.context(why.to_string()),
            Ok(()) => e,
        })
    }

    /// Waits until exactly one node is active; returns its name.
    pub fn wait_one_active(&self, timeout: Duration) -> Result<String> {
        let mut found = None;
        self.wait("exactly one node is active", timeout, |lab| {
            found = lab
                .node_names()
                .into_iter()
                .find(|n| lab.check_only_active(n).is_ok());
            found.is_some()
        })?;
        Ok(found.expect("found"))
    }

    /// [`wait_until`] with the lab's state summary in the error.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut predicate: impl FnMut(&Lab) -> bool,
    ) -> Result<Duration> {
        wait_until(what, timeout, POLL, || predicate(self))
            .map_err(|e| e.context(format!("lab state: {}", self.summary())))
    }

    /// One line per node: keepalived state, mount, VIP, service; and who serves HTTP.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let name = &n.name;
            let _ = write!(
                s,
                "[{name}: keepalived {} mounted={} vip={} service={} track={}] ",
                self.keepalived_state(name).unwrap_or_else(|| "-".into()),
                self.has_mount(name),
                self.has_vip(name),
                self.service_running(name),
                self.track_file(name)
                    .map(|t| t.trim().to_string())
                    .unwrap_or_else(|| "-".into()),
            );
        }
        let _ = write!(s, "[HTTP via VIP: {:?}]", self.serving_node());
        s
    }

    /// A cheap, thread-safe view of the nodes' mounts and VIPs that reads /proc/HOLDER/...
    /// directly (no nsenter, no `ip`), for sampling every few milliseconds.
    pub fn observer(&self) -> Observer {
        Observer {
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.holder_pid))
                .collect(),
            loop_dev: self.loop_dev.clone().unwrap_or_default(),
        }
    }
}
