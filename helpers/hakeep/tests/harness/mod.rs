//! Tier-2 test harness (docs/design.md §8): the real `hakeep agent` and real keepalived in
//! network namespaces on a bridge of their own, real floating IPs, a loop device as the
//! shared storage, a resource-script service, and a client namespace that talks to the VIP.
//!
//! Layout of a lab (`ID` is `hkt-<pid of the test process>`):
//!
//! ```text
//!  host: bridge ID-br (no address, no route out)
//!    ├─ veth ID-1 ── eth1 in netns ID-n1   10.213.0.11/24   node n1 (preferred)
//!    ├─ veth ID-2 ── eth1 in netns ID-n2   10.213.0.12/24   node n2
//!    └─ veth ID-c ── eth1 in netns ID-cl   10.213.0.50/24   client (curl)
//!  VIP 10.213.0.100/24, group `web`: volume none, /dev/loopN (ext4) on /srv/hakeep-test,
//!  service = tests/fixtures/http-service.sh (python3 http.server on :8080)
//! ```
//!
//! Each node is a long-lived holder process (tests/fixtures/node-holder.sh) in the node's
//! netns and a private mount namespace with its own tmpfs on /run, /tmp, /var/log, /srv
//! and /var/lib/hakeep (maintenance flags); keepalived, the agent and every helper command
//! join it with `nsenter`. Node files are read and written through `/proc/HOLDER/root/...`,
//! which resolves in the node's mount namespace.
//!
//! With [`LabBuilder::ssh`], every node also runs a real sshd on its address (keys made
//! for the lab, see [`SshFiles`]) and cluster.yml gets an `ssh:` section, so the operator
//! commands reach the peers as in production. [`Lab::hakeep`] runs `hakeep -c CLUSTER ...`
//! inside a node; [`Lab::observer`] reads mounts and VIPs from /proc without forking, for
//! samplers.
//!
//! Variants for the benchmark (benches/failover.rs): [`LabBuilder::vrrp`] sets
//! `advert_int` and `vrrp_version`; [`LabBuilder::light_groups`] replaces `web` with N light
//! groups `g01`..`gNN` (VIP 10.213.0.(100+i), vrid 100+i, a bind mount of the node's
//! /srv/hkt-data/gNN on /srv/hkt-mnt/gNN, and tests/fixtures/light-service.sh, a busybox
//! httpd on port 9000+i); [`LabBuilder::baseline`] runs no agent and gives keepalived the
//! same rendered VRRP instance plus the classic notify scripts
//! (tests/fixtures/baseline-notify.sh: mount and start on MASTER, stop and unmount otherwise).
//!
//! Files of a lab live under `/var/tmp/hakeep-tests/<pid>/` (not /tmp: the nodes have a
//! private /tmp, and they must see the config, the scripts and the binary).
//!
//! Cleanup: [`Lab::finish`] (and `Drop`, as a fallback) kills every process in the lab's
//! namespaces, deletes the namespaces, bridge and veths, detaches the loop device and
//! removes the files, then checks that nothing is left. Every lab start first removes
//! leftovers of earlier runs that were killed: every netns, link and loop device named
//! (or backed by a file) with the `hkt-` prefix whose owning test process is gone. The
//! owner's pid is part of each name so that two test processes running at once (two
//! developers on one machine) never tear down each other's labs.
//!
//! Labs are serialized within a process by a global lock held for a lab's lifetime.
//!
//! This file has the lab itself ([`Lab`], [`LabBuilder`], start, teardown, diagnostics) and
//! the scenario runner; the rest, by job:
//!
//! - `process`: running programs with a time limit, waits, processes and namespaces in /proc;
//! - `cleanup`: leftovers of killed runs, and removing a lab's names, devices and files;
//! - `network`: the bridge, the netns and veths, addresses, links;
//! - `node`: a node's holder process and namespaces, its files, commands run inside it;
//! - `config`: cluster.yml and the rendered keepalived.conf of every node;
//! - `keepalived`: starting, crashing, powering off and stopping keepalived, its state;
//! - `agent`: `hakeep agent` and the operator commands in a node, the notify FIFO;
//! - `ssh`: the lab's keys and a real sshd per node;
//! - `observation`: mounts, VIPs, services, the agent's files, who is active, [`Observer`],
//!   [`parse_actions`].

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod agent;
mod cleanup;
mod config;
mod keepalived;
mod network;
mod node;
mod observation;
mod process;
mod ssh;

// The surface that tests/ and benches/failover.rs use besides this file's items; the
// modules' other `pub` items are paths and types of the lab that only the harness names.
pub use cleanup::cleanup_leftovers;
pub use config::{HOLD_DOWN, RESYNC_INTERVAL, SSH_CONNECT_TIMEOUT};
pub use keepalived::KEEPALIVED_PID;
pub use observation::{epoch_ms, parse_actions, Observer};
pub use process::{gone_or_zombie, run, run_ok, wait_until};
#[allow(unused_imports, reason = "only benches/failover.rs uses them")]
pub use {
    config::{light_group, light_port, light_vip, LIGHT_MNT},
    keepalived::BASELINE_LOG,
    observation::fib_trie_has_local,
};

use agent::{ACTIONS_LOG, STATE_JSON};
use cleanup::purge;
use config::MAX_LIGHT_GROUPS;
use process::{pids_in_namespaces, tail};
use ssh::SshFiles;

/// Every netns and host link of the harness starts with this, followed by the owner's pid.
pub const PREFIX: &str = "hkt-";
/// Fixed home of the harness's files: `<ROOT_DIR>/<pid>/`.
pub const ROOT_DIR: &str = "/var/tmp/hakeep-tests";
/// The node-side interface name in every node netns (cluster.yml `interface`).
pub const IFACE: &str = "eth1";
pub const VIP: &str = "10.213.0.100";
pub const CLIENT_ADDR: &str = "10.213.0.50";
pub const GROUP: &str = "web";
pub const VRID: u32 = 42;
/// Must stay under /srv (node-holder.sh mounts a private tmpfs there) and match
/// http-service.sh's DOCROOT.
pub const MOUNTPOINT: &str = "/srv/hakeep-test";
pub const HTTP_PORT: u16 = 8080;
/// The content of www/index.html on the shared filesystem.
pub const CONTENT: &str = "hakeep-test-content";
/// http-service.sh refuses to start while this exists in the node's /run.
pub const FAIL_START_MARKER: &str = "/run/hakeep-test-fail-start";
/// http-service.sh refuses to stop while this exists in the node's /run.
pub const FAIL_STOP_MARKER: &str = "/run/hakeep-test-fail-stop";
/// http-service.sh start sleeps this file's number of seconds first.
pub const SLOW_START_MARKER: &str = "/run/hakeep-test-slow-start";
/// http-service.sh start writes this when it begins.
pub const START_BEGAN_MARKER: &str = "/run/hakeep-test-start-began";
pub const HTTP_LOG: &str = "/var/log/hakeep-test-http.log";
/// With [`LabBuilder::metrics`]: the agents' metrics port (on each node's address) and
/// their textfile (in the node's private /run).
pub const METRICS_PORT: u16 = 9840;
pub const METRICS_TEXTFILE: &str = "/run/hakeep-test.prom";

/// How long a whole failover (detection ~3.3 s with advert_int 1, then the take) may take
/// before a wait gives up; generous, this is a bound, not a timing assertion.
pub const CONVERGE: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(200);
const CMD_TIMEOUT: Duration = Duration::from_secs(30);
const IMAGE_SIZE: u64 = 64 << 20;

static SERIAL: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The lock that serializes labs (and leftover cleanup) within this test process.
pub fn lock() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the harness can run here. Root is needed; without it the tests are skipped
/// loudly, except under CI, where that is a failure.
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: the tier-2 agent tests need root (netns, loop devices), and CI is set");
    }
    // Straight to stderr, past the test harness's output capture: a skip must be seen.
    let bang = "!".repeat(76);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bang}\n!! SKIPPED {test}: not root. The tier-2 agent tests need root\n\
         !! (network namespaces, a bridge, loop devices). Run them as root.\n{bang}"
    );
    false
}

/// Starts a lab, runs `body` on it, prints the lab's logs if it fails (or always, with
/// HAKEEP_TEST_LOGS=1), tears the lab down and checks that nothing is left; panics on any
/// failure.
pub fn scenario(name: &str, builder: LabBuilder, body: impl FnOnce(&mut Lab) -> Result<()>) {
    if !require_root(name) {
        return;
    }
    let started = Instant::now();
    eprintln!("[{name}] starting the lab");
    let mut lab = match builder.start() {
        Ok(lab) => lab,
        Err(e) => panic!("{name}: the lab did not start: {e:#}"),
    };
    eprintln!(
        "[{name}] lab {} up after {:.1?} ({:.1?} waiting for the lab lock)",
        lab.id,
        started.elapsed(),
        started.elapsed().saturating_sub(lab.age())
    );
    let result = body(&mut lab);
    if result.is_err() || std::env::var_os("HAKEEP_TEST_LOGS").is_some() {
        eprintln!("{}", lab.diagnostics());
    }
    let cleanup = lab.finish();
    eprintln!("[{name}] done after {:.1?}", started.elapsed());
    if let Err(e) = result {
        panic!("{name}: {e:#}");
    }
    if let Err(e) = cleanup {
        panic!("{name}: {e:#}");
    }
}

pub struct Node {
    pub name: String,
    pub netns: String,
    pub host_veth: String,
    pub address: String,
    dir: PathBuf,
    holder: Option<Child>,
    holder_pid: u32,
    keepalived: Option<Child>,
    keepalived_log_offset: u64,
    agent: Option<Child>,
    sshd: Option<Child>,
}

impl Node {
    fn keepalived_log(&self) -> PathBuf {
        self.dir.join("keepalived.log")
    }
    fn agent_log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }
    fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
}

/// A node of cluster.yml that the lab does not start (nothing answers on its address).
#[derive(Debug, Clone)]
pub struct ExtraNode {
    pub name: String,
    pub address: String,
}

/// Options of a lab. By default: two nodes with agents; node n1's keepalived starts
/// first and the lab waits until it has become MASTER before starting n2's, so n1 is the
/// deterministic first master (and the first to try a take).
pub struct LabBuilder {
    agent: bool,
    staggered: bool,
    node_files: Vec<(String, String, String)>,
    agent_env: Vec<(String, String, String)>,
    hold_down: u64,
    checks: Option<String>,
    metrics: bool,
    alerts: bool,
    ssh: bool,
    extra_nodes: Vec<ExtraNode>,
    advert_int: String,
    vrrp_version: u8,
    light_groups: usize,
    baseline: bool,
}

impl LabBuilder {
    /// keepalived only, no `hakeep agent` (to test the harness itself).
    pub fn without_agent(mut self) -> Self {
        self.agent = false;
        self
    }

    /// Start every node's keepalived at once instead of n1 first.
    pub fn simultaneous(mut self) -> Self {
        self.staggered = false;
        self
    }

    /// Writes a file into a node's namespaces (e.g. a fixture marker in its /run) before
    /// its agent and keepalived start.
    pub fn node_file(mut self, node: &str, path: &str, content: &str) -> Self {
        self.node_files
            .push((node.to_string(), path.to_string(), content.to_string()));
        self
    }

    /// An environment variable for a node's agent (every start of it), e.g. a debug
    /// build's fault injection.
    pub fn agent_env(mut self, node: &str, key: &str, value: &str) -> Self {
        self.agent_env
            .push((node.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// cluster.yml `agent.hold_down` (seconds; default [`HOLD_DOWN`]).
    pub fn hold_down(mut self, secs: u64) -> Self {
        self.hold_down = secs;
        self
    }

    /// The group's `checks:`, as a YAML flow sequence, e.g. `[{ tcp: "10.213.0.100:8080" }]`.
    pub fn checks(mut self, yaml_flow: &str) -> Self {
        self.checks = Some(yaml_flow.to_string());
        self
    }

    /// cluster.yml `metrics:`: every agent serves its metrics on its node's address, port
    /// [`METRICS_PORT`], and keeps [`METRICS_TEXTFILE`] in its node.
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// cluster.yml `alerts:`: a program for every event ([`ALERT_PROGRAM`], which does
    /// nothing), so that the agent runs its alert machinery.
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn alerts(mut self) -> Self {
        self.alerts = true;
        self
    }

    /// Runs a real sshd (Debian's /usr/sbin/sshd) in every node on its address, port 22,
    /// with keys made for the lab ([`SshFiles`]), and writes cluster.yml's `ssh:` section
    /// so that `hakeep status --all-nodes`, `takeover` and `switchover` reach the peers.
    pub fn ssh(mut self) -> Self {
        self.ssh = true;
        self
    }

    /// A node in cluster.yml `nodes:` that is in no group and is never started: its
    /// address on the lab's subnet answers nothing (unreachable).
    pub fn extra_node(mut self, name: &str, address: &str) -> Self {
        self.extra_nodes.push(ExtraNode {
            name: name.to_string(),
            address: address.to_string(),
        });
        self
    }

    /// cluster.yml `keepalived.advert_int` (as written, e.g. "1", "0.2") and
    /// `vrrp_version` (default "1" and 2).
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn vrrp(mut self, advert_int: &str, vrrp_version: u8) -> Self {
        self.advert_int = advert_int.to_string();
        self.vrrp_version = vrrp_version;
        self
    }

    /// Instead of the `web` group (loop device, python http.server), `n` light groups
    /// `g01`.. (see the module docs); no loop device is made. 1 to [`MAX_LIGHT_GROUPS`].
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn light_groups(mut self, n: usize) -> Self {
        self.light_groups = n;
        self
    }

    /// The benchmark's baseline: no `hakeep agent`; each node's keepalived.conf is the one
    /// hakeep renders (same VRRP instance: priorities, nopreempt, advert_int, unicast,
    /// VIP, track file) without the notify FIFO, with `script_user root` and the classic
    /// notify_master/backup/fault/stop lines running
    /// [`BASELINE_SCRIPT`](keepalived::BASELINE_SCRIPT). Only with the `web` group.
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn baseline(mut self) -> Self {
        self.baseline = true;
        self.agent = false;
        self
    }

    pub fn start(self) -> Result<Lab> {
        Lab::start(self)
    }
}

pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    pub bridge: String,
    pub client_ns: String,
    client_veth: String,
    pub nodes: Vec<Node>,
    pub loop_dev: Option<String>,
    pub config: PathBuf,
    hakeep: PathBuf,
    pub service_script: PathBuf,
    holder_mnt_ns: HashSet<u64>,
    extras: Vec<(String, Child)>,
    agent_enabled: bool,
    /// (node, key, value) of [`LabBuilder::agent_env`].
    agent_env: Vec<(String, String, String)>,
    hold_down: u64,
    checks: Option<String>,
    metrics: bool,
    alerts: bool,
    pub ssh: Option<SshFiles>,
    pub extra_nodes: Vec<ExtraNode>,
    pub advert_int: String,
    pub vrrp_version: u8,
    /// 0: the `web` group; else the number of light groups.
    pub light_groups: usize,
    pub baseline: bool,
    started: Instant,
    finished: bool,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder {
            agent: true,
            staggered: true,
            node_files: Vec::new(),
            agent_env: Vec::new(),
            hold_down: HOLD_DOWN,
            checks: None,
            metrics: false,
            alerts: false,
            ssh: false,
            extra_nodes: Vec::new(),
            advert_int: "1".to_string(),
            vrrp_version: 2,
            light_groups: 0,
            baseline: false,
        }
    }

    fn start(opts: LabBuilder) -> Result<Lab> {
        let guard = lock();
        let started = Instant::now();
        for tool in ["ip", "nsenter", "unshare", "losetup", "mkfs.ext4", "curl"] {
            run(&[tool, "--version"]).with_context(|| format!("{tool} is needed"))?;
        }
        run(&["keepalived", "--version"])
            .context("keepalived is needed (scripts/install-deps.sh)")?;
        if opts.light_groups > MAX_LIGHT_GROUPS || (opts.baseline && opts.light_groups > 0) {
            bail!("a lab has at most {MAX_LIGHT_GROUPS} light groups, and a baseline lab none");
        }
        if opts.light_groups > 0 && !Path::new("/usr/bin/busybox").exists() {
            bail!("/usr/bin/busybox is needed by tests/fixtures/light-service.sh");
        }
        if !Path::new("/usr/bin/python3").exists() {
            bail!("/usr/bin/python3 is needed by tests/fixtures/http-service.sh");
        }
        // Leftovers that resist removal don't share this lab's names: warn and go on.
        if let Err(e) = cleanup_leftovers(&guard) {
            eprintln!("warning: leftovers of an earlier run remain: {e:#}");
        }

        let pid = std::process::id();
        let id = format!("{PREFIX}{pid}");
        let dir = Path::new(ROOT_DIR).join(pid.to_string());
        let nodes = (1..=2)
            .map(|i| Node {
                name: format!("n{i}"),
                netns: format!("{id}-n{i}"),
                host_veth: format!("{id}-{i}"),
                address: format!("10.213.0.{}", 10 + i),
                dir: dir.join(format!("n{i}")),
                holder: None,
                holder_pid: 0,
                keepalived: None,
                keepalived_log_offset: 0,
                agent: None,
                sshd: None,
            })
            .collect();
        let mut lab = Lab {
            bridge: format!("{id}-br"),
            client_ns: format!("{id}-cl"),
            client_veth: format!("{id}-c"),
            config: dir.join("cluster.yml"),
            hakeep: dir.join("bin/hakeep"),
            service_script: dir.join("bin/http-service"),
            id,
            dir,
            nodes,
            loop_dev: None,
            holder_mnt_ns: HashSet::new(),
            extras: Vec::new(),
            agent_enabled: opts.agent,
            agent_env: opts.agent_env.clone(),
            hold_down: opts.hold_down,
            checks: opts.checks.clone(),
            metrics: opts.metrics,
            alerts: opts.alerts,
            ssh: None,
            extra_nodes: opts.extra_nodes.clone(),
            advert_int: opts.advert_int.clone(),
            vrrp_version: opts.vrrp_version,
            light_groups: opts.light_groups,
            baseline: opts.baseline,
            started,
            finished: false,
            _serial: guard,
        };
        if let Err(e) = lab.build(&opts) {
            eprintln!("{}", lab.diagnostics());
            return Err(e); // Drop tears down what was built
        }
        Ok(lab)
    }

    fn build(&mut self, opts: &LabBuilder) -> Result<()> {
        self.make_files()?;
        if opts.ssh {
            self.make_ssh_keys()?;
        }
        if self.light_groups == 0 {
            self.make_disk()?;
        }
        self.make_network()?;
        for i in 0..self.nodes.len() {
            self.start_holder(i)?;
        }
        for name in self.node_names() {
            self.prepare_node(&name)?;
        }
        if opts.ssh {
            for name in self.node_names() {
                self.start_sshd(&name)?;
            }
        }
        for (node, path, content) in &opts.node_files {
            self.write_node_file(node, path, content)?;
        }
        self.write_config()?;
        let names = self.node_names();
        for name in &names {
            if self.agent_enabled {
                self.start_agent(name)?;
            } else {
                // keepalived needs the directory of its notify FIFO and track files.
                fs::create_dir_all(self.node_path(name, "/run/hakeep/track"))?;
            }
        }
        for name in &names {
            self.start_keepalived(name)?;
            if opts.staggered && name == &names[0] {
                let n = name.clone();
                // Has entered MASTER (it may have left it already, e.g. a failed take).
                let entered: Vec<String> = self
                    .group_names()
                    .iter()
                    .map(|g| format!("({g}) Entering MASTER STATE"))
                    .collect();
                self.wait(
                    &format!("{n}'s keepalived has become MASTER (staggered start)"),
                    Duration::from_secs(15),
                    |lab| {
                        let out = lab.keepalived_output(&n);
                        entered.iter().all(|e| out.contains(e.as_str()))
                    },
                )?;
            }
        }
        Ok(())
    }

    fn make_files(&mut self) -> Result<()> {
        fs::create_dir_all(self.dir.join("bin"))?;
        for node in &self.nodes {
            fs::create_dir_all(&node.dir)?;
        }
        // Copies, not the originals: the nodes must see them (a target dir under /tmp
        // would be hidden by the node's private /tmp), and the script must be executable.
        fs::copy(env!("CARGO_BIN_EXE_hakeep"), &self.hakeep).context("copying hakeep")?;
        fs::copy(fixtures().join("http-service.sh"), &self.service_script)?;
        fs::copy(
            fixtures().join("node-holder.sh"),
            self.dir.join("bin/node-holder"),
        )?;
        for f in [&self.hakeep, &self.service_script] {
            fs::set_permissions(f, fs::Permissions::from_mode(0o755))?;
        }
        if self.light_groups > 0 {
            let light = self.dir.join("bin/light-service");
            fs::copy(fixtures().join("light-service.sh"), &light)?;
            fs::set_permissions(&light, fs::Permissions::from_mode(0o755))?;
            for i in 1..=self.light_groups {
                std::os::unix::fs::symlink("light-service", self.light_script(i))?;
            }
        }
        Ok(())
    }

    fn make_disk(&mut self) -> Result<()> {
        let image = self.dir.join("disk.img");
        let content = self.dir.join("disk-content");
        fs::create_dir_all(content.join("www"))?;
        fs::write(content.join("www/index.html"), format!("{CONTENT}\n"))?;
        fs::File::create(&image)?.set_len(IMAGE_SIZE)?;
        let (image_s, content_s) = (image.display().to_string(), content.display().to_string());
        run_ok(&[
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "hakeep-test",
            "-d",
            &content_s,
            &image_s,
        ])?;
        let dev = run_ok(&["losetup", "--find", "--show", &image_s])?;
        self.loop_dev = Some(dev.trim().to_string());
        Ok(())
    }

    /// Time since the lab started (after it got the lab lock).
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn idx(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name} in the lab"))
    }

    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[self.idx(name)]
    }

    /// The other node of a two-node lab.
    pub fn peer_of(&self, name: &str) -> String {
        self.nodes
            .iter()
            .find(|n| n.name != name)
            .map(|n| n.name.clone())
            .expect("a peer")
    }

    /// Writes a file into the lab's directory (seen by every node) and returns its path.
    pub fn write_lab_file(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        fs::write(&path, content)?;
        Ok(path)
    }

    /// Everything worth reading when a scenario fails: per node the logs of keepalived and
    /// the agent, actions.log, state.json, addresses, mounts, processes.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n################ lab {} diagnostics (lab time {:.1?}) ################",
            self.id,
            self.started.elapsed()
        );
        let _ = writeln!(
            s,
            "loop device: {:?}, config: {}",
            self.loop_dev,
            self.config.display()
        );
        for n in &self.nodes {
            let name = &n.name;
            let _ = writeln!(
                s,
                "\n======== node {name} (netns {}, holder pid {}) ========",
                n.netns, n.holder_pid
            );
            if n.holder_pid == 0 {
                let _ = writeln!(s, "(no holder)");
                continue;
            }
            let _ = writeln!(
                s,
                "keepalived state {:?}, mounted {}, vip {}, track file {:?}",
                self.keepalived_state(name),
                self.has_mount(name),
                self.has_vip(name),
                self.track_file(name)
            );
            let _ = writeln!(s, "--- addresses\n{}", self.addresses(name).trim_end());
            let info = self.mountinfo(name);
            let mounts: Vec<&str> = info
                .lines()
                .filter(|l| l.contains(" /srv") || l.contains("/dev/loop"))
                .collect();
            let _ = writeln!(s, "--- mounts under /srv\n{}", mounts.join("\n"));
            let _ = writeln!(s, "--- processes");
            for (pid, cmd) in self.processes(name) {
                let _ = writeln!(s, "{pid} {cmd}");
            }
            let _ = writeln!(
                s,
                "--- {STATE_JSON}\n{}",
                self.state_json(name).unwrap_or_default().trim_end()
            );
            let _ = writeln!(
                s,
                "--- {ACTIONS_LOG}\n{}",
                tail(&self.actions_log(name), 80).trim_end()
            );
            let _ = writeln!(
                s,
                "--- {HTTP_LOG}\n{}",
                tail(&self.read_node_file(name, HTTP_LOG).unwrap_or_default(), 15).trim_end()
            );
            let _ = writeln!(
                s,
                "--- keepalived log\n{}",
                tail(
                    &fs::read_to_string(n.keepalived_log()).unwrap_or_default(),
                    60
                )
                .trim_end()
            );
            let _ = writeln!(
                s,
                "--- agent log\n{}",
                tail(&fs::read_to_string(n.agent_log()).unwrap_or_default(), 150).trim_end()
            );
            let flags: Vec<String> =
                fs::read_dir(self.node_path(name, "/var/lib/hakeep/maintenance"))
                    .map(|d| {
                        d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                            .collect()
                    })
                    .unwrap_or_default();
            let _ = writeln!(s, "--- maintenance flags: {flags:?}");
            if n.sshd_log().exists() {
                let _ = writeln!(
                    s,
                    "--- sshd log\n{}",
                    tail(&fs::read_to_string(n.sshd_log()).unwrap_or_default(), 30).trim_end()
                );
            }
        }
        let _ = writeln!(
            s,
            "\n--- client neighbours\n{}",
            run_ok(&["ip", "-n", &self.client_ns, "neigh", "show"])
                .unwrap_or_default()
                .trim_end()
        );
        let _ = writeln!(
            s,
            "################ end of lab {} diagnostics ################",
            self.id
        );
        s
    }

    fn teardown(&mut self) -> Result<()> {
        let me = std::process::id();
        let result = purge(&|owner| owner == Some(me), &self.holder_mnt_ns);
        // Reap our children (all were in the lab's namespaces, so they are dead now).
        let mut children: Vec<Child> = self.extras.drain(..).map(|(_, c)| c).collect();
        for n in &mut self.nodes {
            children.extend(n.sshd.take());
            children.extend(n.agent.take());
            children.extend(n.keepalived.take());
            children.extend(n.holder.take());
        }
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        result?;
        let left = pids_in_namespaces(&self.holder_mnt_ns);
        if !left.is_empty() {
            bail!("processes left in the nodes' mount namespaces: {left:?}");
        }
        Ok(())
    }

    /// Tears the lab down and checks that nothing of it is left on the machine.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        self.teardown().context("tearing the lab down")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        if let Err(e) = self.teardown() {
            eprintln!("lab {}: {e:#}", self.id);
        }
    }
}

// Tests of the harness's own pure parts. Their imports are inside them: benches/failover.rs
// also compiles this module under `--cfg test` (clippy --all-targets), without the tests.
#[cfg(test)]
mod unit {
    #[test]
    fn fib_trie_local_addresses() {
        use super::observation::fib_trie_has_local;
        let trie = "Local:\n  +-- 0.0.0.0/1 2 0 2\n     +-- 10.213.0.0/24 2 0 1\n\
                    \x20       |-- 10.213.0.0\n           /24 link UNICAST\n\
                    \x20       |-- 10.213.0.100\n           /32 host LOCAL\n\
                    \x20       |-- 10.213.0.255\n           /32 link BROADCAST\n";
        assert!(fib_trie_has_local(trie, "10.213.0.100"));
        assert!(!fib_trie_has_local(trie, "10.213.0.0"));
        assert!(!fib_trie_has_local(trie, "10.213.0.255"));
        assert!(!fib_trie_has_local(trie, "10.213.0.10"));
    }

    #[test]
    fn cargo_test_binaries_are_recognised() {
        use super::cleanup::is_cargo_test_binary;
        use std::path::Path;
        assert!(is_cargo_test_binary(Path::new(
            "/work/target/release/deps/bench_failover-c04a16ab53371219"
        )));
        assert!(!is_cargo_test_binary(Path::new("/usr/bin/sleep")));
        assert!(!is_cargo_test_binary(Path::new(
            "/x/deps/libfoo-c04a16ab.rlib"
        )));
    }

    #[test]
    fn owner_pids_come_from_names() {
        use super::cleanup::{owner_of_file, owner_of_name};
        assert_eq!(owner_of_name("hkt-1234-n1"), Some(1234));
        assert_eq!(owner_of_name("hkt-1234-br"), Some(1234));
        assert_eq!(owner_of_name("hkt-x-br"), None);
        assert_eq!(
            owner_of_file("/var/tmp/hakeep-tests/77/disk.img"),
            Some(Some(77))
        );
        assert_eq!(owner_of_file("/tmp/smoke/disk.img"), None);
    }
}
