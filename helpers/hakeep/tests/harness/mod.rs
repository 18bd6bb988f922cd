//! Tier-2 test harness (DESIGN.md §8): the real `hakeep agent` and real keepalived in
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
//! Variants for the benchmark (tests/bench_failover.rs): [`LabBuilder::vrrp`] sets
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

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};

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
/// http-service.sh start sleeps this file's number of seconds first.
pub const SLOW_START_MARKER: &str = "/run/hakeep-test-slow-start";
/// http-service.sh start writes this when it begins.
pub const START_BEGAN_MARKER: &str = "/run/hakeep-test-start-began";
/// The agent's files, inside a node (contract of `hakeep agent`).
pub const FIFO: &str = "/run/hakeep/vrrp.fifo";
pub const STATE_JSON: &str = "/run/hakeep/state.json";
pub const ACTIONS_LOG: &str = "/var/log/hakeep/actions.log";
pub const KEEPALIVED_PID: &str = "/run/keepalived.pid";
/// Pid file of keepalived's VRRP child (`--vrrp_pid`).
pub const KEEPALIVED_VRRP_PID: &str = "/run/keepalived_vrrp.pid";
pub const HTTP_LOG: &str = "/var/log/hakeep-test-http.log";

/// Agent timing in the test cluster.yml (seconds).
pub const HOLD_DOWN: u64 = 5;
/// cluster.yml `ssh.connect_timeout` of labs with SSH (seconds): an unreachable node
/// costs a status this long.
pub const SSH_CONNECT_TIMEOUT: u64 = 2;
/// Where Debian's openssh-server puts sshd (it must be started by its absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";
/// sshd's pid file inside a node.
pub const SSHD_PID: &str = "/run/sshd.pid";
pub const RESYNC_INTERVAL: u64 = 2;
pub const UMOUNT_GRACE: u64 = 2;
const SERVICE_TIMEOUT: u64 = 20;

/// Baseline labs ([`LabBuilder::baseline`]): the notify script inside each node (root's,
/// in the node's private /run, so keepalived's script security accepts it) and its log.
pub const BASELINE_SCRIPT: &str = "/run/hakeep-baseline/notify";
#[allow(dead_code, reason = "only benches/failover.rs uses it")]
pub const BASELINE_LOG: &str = "/var/log/hakeep-baseline.log";
/// Light groups ([`LabBuilder::light_groups`]): bind sources and mountpoints in each node.
pub const LIGHT_DATA: &str = "/srv/hkt-data";
pub const LIGHT_MNT: &str = "/srv/hkt-mnt";
/// The most light groups a lab can have (VIPs .101-.164, vrids 101-164, ports 9001-9064).
pub const MAX_LIGHT_GROUPS: usize = 64;

/// Name of light group `i` (1-based): `g01`.
pub fn light_group(i: usize) -> String {
    format!("g{i:02}")
}

/// Floating IP of light group `i`.
pub fn light_vip(i: usize) -> String {
    format!("10.213.0.{}", 100 + i)
}

/// TCP port of light group `i`'s busybox httpd.
#[allow(dead_code, reason = "only benches/failover.rs uses it")]
pub fn light_port(i: usize) -> u16 {
    9000 + i as u16
}

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

// ---------------------------------------------------------------------------------------
// Running programs, waiting

/// Runs a command with a time limit, capturing its output. A grandchild that keeps the
/// output pipes open (a daemon) can't hang the caller: reading stops soon after the
/// command itself exits.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {desc}"))?;
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, mut pipe) in [
        (
            true,
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        (
            false,
            Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
        ),
    ] {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((is_out, buf));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{desc} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let read_deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        let left = read_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, b)) => stdout = b,
            Ok((false, b)) => stderr = b,
            Err(_) => break,
        }
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Waits (bounded) for a started child and collects its output.
#[allow(dead_code, reason = "only Lab::power_off uses it")]
fn run_wait(mut child: Child, timeout: Duration) -> Result<Output> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("a command did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs argv; Ok(output) whatever the exit code.
pub fn run(argv: &[&str]) -> Result<Output> {
    run_with_timeout(Command::new(argv[0]).args(&argv[1..]), CMD_TIMEOUT)
}

/// Runs argv; an error (with its stderr) unless it exits 0. Returns stdout.
pub fn run_ok(argv: &[&str]) -> Result<String> {
    let out = run(argv)?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            text(&out.stderr).trim()
        );
    }
    Ok(text(&out.stdout))
}

/// Polls `predicate` every `poll` until it holds; an error naming `what` after `timeout`.
/// Returns how long it took.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut predicate: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if predicate() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        thread::sleep(poll);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        let _ = writeln!(out, "[... {skip} earlier lines]");
    }
    for l in &all[skip..] {
        let _ = writeln!(out, "{l}");
    }
    out
}

// ---------------------------------------------------------------------------------------
// Processes and namespaces

fn ns_inode(path: impl AsRef<Path>) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Process state letter from /proc/PID/stat; None when the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Whether a process has exited (a zombie has: it holds no files, mounts or namespaces).
pub fn gone_or_zombie(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn signal(pid: u32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process(p, sig);
    }
}

/// Pids (not ours) whose network or mount namespace is one of `inodes`.
fn pids_in_namespaces(inodes: &HashSet<u64>) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && !gone_or_zombie(pid))
        .filter(|pid| {
            ["net", "mnt"].iter().any(|kind| {
                ns_inode(format!("/proc/{pid}/ns/{kind}")).is_some_and(|i| inodes.contains(&i))
            })
        })
        .collect()
}

/// SIGKILLs every process in those namespaces, in rounds (one may fork while we look),
/// and waits until they have exited.
fn kill_all_in(inodes: &HashSet<u64>) -> Result<()> {
    if inodes.is_empty() {
        return Ok(());
    }
    let mut killed = Vec::new();
    for _ in 0..10 {
        let pids = pids_in_namespaces(inodes);
        if pids.is_empty() {
            break;
        }
        for &pid in &pids {
            signal(pid, Signal::KILL);
        }
        killed.extend(pids);
        thread::sleep(Duration::from_millis(50));
    }
    wait_until(
        "every killed lab process has exited",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || killed.iter().all(|&p| gone_or_zombie(p)),
    )?;
    let left = pids_in_namespaces(inodes);
    if !left.is_empty() {
        bail!("processes survive in the lab's namespaces: {left:?}");
    }
    Ok(())
}

/// The binaries built on this harness: the integration tests (tests/main.rs) and the
/// failover benchmark (benches/failover.rs); cargo names them `<target>-<hash>`.
const HARNESS_USERS: &[&str] = &["integration", "failover"];

/// The pid a harness name belongs to: `hkt-<pid>-...`.
fn owner_of_name(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

fn comm_stem(pid: &str) -> Option<String> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim().split('-').next().unwrap_or("").to_string())
}

/// Whether `owner` is another live test process of this kind (its labs are not leftovers).
/// Our own pid counts as dead: labs are serialized, so anything of ours that exists when
/// a lab starts was left behind by an earlier lab.
fn owner_alive(owner: Option<u32>) -> bool {
    let Some(pid) = owner else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    // Any live test binary that uses this harness owns its labs (cargo names them
    // `<test>-<hash>`).
    if comm_stem(&pid.to_string()).is_some_and(|theirs| HARNESS_USERS.contains(&theirs.as_str())) {
        return true;
    }
    // So does a live cargo test binary this list does not know (a newer test target, or
    // another checkout's): `.../deps/<name>-<16 hex digits>`.
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| is_cargo_test_binary(&exe))
}

fn is_cargo_test_binary(exe: &Path) -> bool {
    let in_deps = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|d| d == "deps");
    let hashed = exe
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('-'))
        .is_some_and(|(name, hash)| {
            !name.is_empty() && hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit())
        });
    in_deps && hashed
}

fn list_netns() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn list_links() -> Vec<String> {
    fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// (device, backing file) of every loop device.
fn list_loops() -> Vec<(String, String)> {
    let Ok(out) = run_ok(&[
        "losetup",
        "--list",
        "--noheadings",
        "--raw",
        "--output",
        "NAME,BACK-FILE",
    ]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| {
            let (name, file) = l.split_once(' ')?;
            Some((name.to_string(), file.trim().to_string()))
        })
        .collect()
}

/// The owner pid of a file under ROOT_DIR/<pid>/.
fn owner_of_file(path: &str) -> Option<Option<u32>> {
    let rest = path.strip_prefix(ROOT_DIR)?.strip_prefix('/')?;
    Some(rest.split('/').next()?.parse().ok())
}

/// What the harness left (or would leave) on the machine for owners `target` selects.
#[derive(Debug, Default)]
struct Leftovers {
    netns: Vec<String>,
    links: Vec<String>,
    loops: Vec<(String, String)>,
    dirs: Vec<PathBuf>,
}

impl Leftovers {
    fn find(target: &dyn Fn(Option<u32>) -> bool) -> Leftovers {
        let ours = |name: &String| name.starts_with(PREFIX) && target(owner_of_name(name));
        let dirs = fs::read_dir(ROOT_DIR)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| target(e.file_name().to_str().and_then(|n| n.parse().ok())))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        Leftovers {
            netns: list_netns().into_iter().filter(ours).collect(),
            links: list_links().into_iter().filter(ours).collect(),
            loops: list_loops()
                .into_iter()
                .filter(|(_, file)| owner_of_file(file).is_some_and(target))
                .collect(),
            dirs,
        }
    }

    fn is_empty(&self) -> bool {
        self.netns.is_empty() && self.links.is_empty() && self.loops.is_empty()
    }
}

/// Removes everything of the owners `target` selects: kills the processes in their
/// namespaces (which ends their mount namespaces and so their mounts), deletes netns and
/// links, detaches loop devices, removes files. `extra_ns` adds namespace inodes to kill
/// in (a lab's holders' mount namespaces).
fn purge(target: &dyn Fn(Option<u32>) -> bool, extra_ns: &HashSet<u64>) -> Result<()> {
    let found = Leftovers::find(target);
    let mut inodes: HashSet<u64> = extra_ns.clone();
    for ns in &found.netns {
        if let Some(i) = ns_inode(format!("/run/netns/{ns}")) {
            inodes.insert(i);
        }
    }
    let mut problems = Vec::new();
    if let Err(e) = kill_all_in(&inodes) {
        problems.push(format!("{e:#}"));
    }
    for ns in &found.netns {
        if let Err(e) = run_ok(&["ip", "netns", "delete", ns]) {
            problems.push(format!("{e:#}"));
        }
    }
    // Host ends of veths vanish with their netns; what remains (bridges, orphans) goes now.
    thread::sleep(Duration::from_millis(100));
    for link in &found.links {
        if Path::new("/sys/class/net").join(link).exists() {
            let _ = run(&["ip", "link", "delete", link]);
        }
    }
    for (dev, _) in &found.loops {
        let _ = run(&["losetup", "--detach", dev]);
    }
    let settled = wait_until(
        "the harness's netns, links and loop devices are gone",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || Leftovers::find(target).is_empty(),
    );
    if settled.is_err() {
        problems.push(format!("still present: {:?}", Leftovers::find(target)));
    }
    for dir in &found.dirs {
        if let Err(e) = fs::remove_dir_all(dir) {
            if e.kind() != ErrorKind::NotFound {
                problems.push(format!("removing {}: {e}", dir.display()));
            }
        }
    }
    let _ = fs::remove_dir(ROOT_DIR); // only when empty
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("cleanup incomplete: {}", problems.join("; "))
    }
}

/// The lock that serializes labs (and leftover cleanup) within this test process.
pub fn lock() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes what killed earlier runs left behind (owners no longer alive, and this
/// process's own earlier labs). Other live test processes' labs are left alone. Needs
/// the lab lock: without it, this process's running lab would count as a leftover.
pub fn cleanup_leftovers(_lock: &MutexGuard<'static, ()>) -> Result<()> {
    purge(&|owner| !owner_alive(owner), &HashSet::new())
}

// ---------------------------------------------------------------------------------------
// Root check and the scenario runner

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

// ---------------------------------------------------------------------------------------
// The lab

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

/// The SSH material of a lab with [`LabBuilder::ssh`]: a host key per node, one client key
/// for root (authorized through `AuthorizedKeysFile` pointing here, never root's own
/// files), and the known_hosts file made from the host keys. All under `<lab>/ssh/`.
#[derive(Debug, Clone)]
pub struct SshFiles {
    pub dir: PathBuf,
    /// The client's private key (cluster.yml `ssh.identity_file`).
    pub identity_file: PathBuf,
    /// `ADDRESS KEYTYPE KEY` per started node (cluster.yml `ssh.known_hosts`).
    pub known_hosts: PathBuf,
    pub authorized_keys: PathBuf,
    /// Node name → its host's private key (the public one is next to it, `.pub`).
    pub host_keys: BTreeMap<String, PathBuf>,
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
    hold_down: u64,
    checks: Option<String>,
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
    /// notify_master/backup/fault/stop lines running [`BASELINE_SCRIPT`]. Only with the
    /// `web` group.
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
    hold_down: u64,
    checks: Option<String>,
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
            hold_down: HOLD_DOWN,
            checks: None,
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
            hold_down: opts.hold_down,
            checks: opts.checks.clone(),
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

    /// The resource script of light group `i` (a symlink to light-service.sh).
    pub fn light_script(&self, i: usize) -> PathBuf {
        self.dir.join(format!("bin/svc-{}", light_group(i)))
    }

    /// Per node, before keepalived and the agent start: the light groups' bind sources
    /// (with an index.html), the baseline's notify script in the node's /run.
    fn prepare_node(&self, name: &str) -> Result<()> {
        for i in 1..=self.light_groups {
            let data = self.node_path(name, &format!("{LIGHT_DATA}/{}", light_group(i)));
            fs::create_dir_all(&data)?;
            fs::write(
                data.join("index.html"),
                format!("{} on {name}\n", light_group(i)),
            )?;
        }
        if self.baseline {
            let script = self.node_path(name, BASELINE_SCRIPT);
            let dir = script.parent().context("baseline script dir")?;
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
            fs::copy(fixtures().join("baseline-notify.sh"), &script)?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
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

    fn make_network(&mut self) -> Result<()> {
        let br = self.bridge.clone();
        run_ok(&[
            "ip",
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        no_ipv6(&br);
        run_ok(&["ip", "link", "set", &br, "up"])?;
        let mut ends: Vec<(String, String, String)> = self
            .nodes
            .iter()
            .map(|n| (n.netns.clone(), n.host_veth.clone(), n.address.clone()))
            .collect();
        ends.push((
            self.client_ns.clone(),
            self.client_veth.clone(),
            CLIENT_ADDR.to_string(),
        ));
        for (ns, veth, addr) in ends {
            run_ok(&["ip", "netns", "add", &ns])?;
            run_ok(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", IFACE, "netns", &ns,
            ])?;
            no_ipv6(&veth);
            run_ok(&["ip", "link", "set", &veth, "master", &br, "up"])?;
            run_ok(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run_ok(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                IFACE,
            ])?;
            run_ok(&["ip", "-n", &ns, "link", "set", IFACE, "up"])?;
        }
        // The rules: no host address on the bridge, no default route anywhere.
        let host = run_ok(&["ip", "-o", "addr", "show", "dev", &br])?;
        if !host.trim().is_empty() {
            bail!("the bridge {br} has a host address: {host}");
        }
        Ok(())
    }

    fn start_holder(&mut self, i: usize) -> Result<()> {
        let script = self.dir.join("bin/node-holder");
        let node = &mut self.nodes[i];
        let log = fs::File::create(node.dir.join("holder.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.netns])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .arg("/bin/sh")
            .arg(&script)
            .args([&node.name, MOUNTPOINT])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a node holder")?;
        // ip netns exec, unshare and sh all exec: the child's pid is the holder's.
        node.holder_pid = child.id();
        node.holder = Some(child);
        let (name, pid) = (node.name.clone(), node.holder_pid);
        let ready = format!("/proc/{pid}/root/run/hakeep-test-ready");
        wait_until(
            &format!("node {name}'s holder has its private mounts"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Path::new(&ready).exists(),
        )
        .with_context(|| {
            format!(
                "holder log: {}",
                fs::read_to_string(self.nodes[i].dir.join("holder.log")).unwrap_or_default()
            )
        })?;
        let mnt = ns_inode(format!("/proc/{pid}/ns/mnt")).context("holder's mount ns")?;
        if Some(mnt) == ns_inode("/proc/self/ns/mnt") {
            bail!("node {name}'s holder shares the test's mount namespace");
        }
        self.holder_mnt_ns.insert(mnt);
        Ok(())
    }

    /// The test cluster.yml (DESIGN.md §4), the same file for every node.
    pub fn cluster_yml(&self) -> String {
        let mut nodes = String::new();
        let all = self
            .nodes
            .iter()
            .map(|n| (&n.name, &n.address))
            .chain(self.extra_nodes.iter().map(|n| (&n.name, &n.address)));
        for (name, address) in all {
            let _ = writeln!(
                nodes,
                "  {name}: {{ address: {address}, interface: {IFACE} }}"
            );
        }
        let ssh = match &self.ssh {
            None => String::new(),
            Some(f) => format!(
                "ssh:\n  user: root\n  port: 22\n  identity_file: {}\n  known_hosts: {}\n  \
                 connect_timeout: {SSH_CONNECT_TIMEOUT}\n  hakeep: {}\n",
                f.identity_file.display(),
                f.known_hosts.display(),
                self.hakeep.display()
            ),
        };
        let checks = match &self.checks {
            None => String::new(),
            Some(c) => format!("    checks: {c}\n"),
        };
        let order = self.node_names().join(", ");
        let groups = if self.light_groups == 0 {
            format!(
                "  {GROUP}:\n    vrid: {VRID}\n    nodes: [{order}]\n    preempt: false\n    \
                 volumes: [none]\n    filesystems:\n      \
                 - {{ device: {dev}, mountpoint: {MOUNTPOINT}, fstype: ext4 }}\n    \
                 ips:\n      - {{ address: {VIP}/24 }}\n    \
                 services:\n      - {{ script: {script}, timeout: {SERVICE_TIMEOUT}, interval: 1 }}\n\
                 {checks}",
                dev = self.loop_dev.as_deref().unwrap_or("/dev/null"),
                script = self.service_script.display(),
            )
        } else {
            let mut g = String::new();
            for i in 1..=self.light_groups {
                let name = light_group(i);
                let _ = write!(
                    g,
                    "  {name}:\n    vrid: {vrid}\n    nodes: [{order}]\n    preempt: false\n    \
                     volumes: [none]\n    filesystems:\n      \
                     - {{ bind: {LIGHT_DATA}/{name}, mountpoint: {LIGHT_MNT}/{name} }}\n    \
                     ips:\n      - {{ address: {vip}/24 }}\n    \
                     services:\n      - {{ script: {script}, timeout: {SERVICE_TIMEOUT} }}\n\
                     {checks}",
                    vrid = 100 + i,
                    vip = light_vip(i),
                    script = self.light_script(i).display(),
                );
            }
            g
        };
        format!(
            "# tier-2 test cluster written by tests/harness (lab {id})\n\
             cluster: hkt\n\
             keepalived:\n  advert_int: {advert_int}\n  vrrp_version: {vrrp_version}\n  \
             unicast: true\n\
             agent:\n  hold_down: {hold_down}\n  resync_interval: {RESYNC_INTERVAL}\n  \
             umount_grace: {UMOUNT_GRACE}\n  service_timeout: {SERVICE_TIMEOUT}\n  \
             command_timeout: 20\n\
             {ssh}\
             nodes:\n{nodes}\
             groups:\n{groups}",
            id = self.id,
            advert_int = self.advert_int,
            vrrp_version = self.vrrp_version,
            hold_down = self.hold_down,
        )
    }

    /// The group names of the lab: `web`, or the light groups.
    pub fn group_names(&self) -> Vec<String> {
        if self.light_groups == 0 {
            vec![GROUP.to_string()]
        } else {
            (1..=self.light_groups).map(light_group).collect()
        }
    }

    /// A baseline node's keepalived.conf from hakeep's rendering: the same instance, no
    /// notify FIFO, scripts run as root, the classic notify lines.
    fn baseline_conf(&self, rendered: &str) -> Result<String> {
        let args = format!(
            "{} {MOUNTPOINT} {}",
            self.loop_dev
                .as_deref()
                .context("a baseline lab needs the loop device")?,
            self.service_script.display()
        );
        let mut out = String::new();
        let mut instances = 0;
        for line in rendered.lines() {
            let t = line.trim();
            if t.starts_with("vrrp_notify_fifo ") {
                continue;
            }
            if t == "script_user keepalived_script" {
                let _ = writeln!(out, "    script_user root");
                continue;
            }
            let _ = writeln!(out, "{line}");
            if t.starts_with("vrrp_instance ") {
                instances += 1;
                let _ = writeln!(
                    out,
                    "    # baseline (tests/harness): the classic notify scripts, no hakeep agent"
                );
                for event in ["master", "backup", "fault", "stop"] {
                    let _ = writeln!(
                        out,
                        "    notify_{event} \"{BASELINE_SCRIPT} {event} {args}\""
                    );
                }
            }
        }
        if instances != 1 || !out.contains("script_user root") {
            bail!("unexpected rendered keepalived.conf for the baseline:\n{rendered}");
        }
        Ok(out)
    }

    fn write_config(&mut self) -> Result<()> {
        fs::write(&self.config, self.cluster_yml())?;
        let config = self.config.display().to_string();
        let hakeep = env!("CARGO_BIN_EXE_hakeep");
        run_ok(&[hakeep, "validate", "-c", &config]).context("hakeep validate")?;
        for node in &self.nodes {
            let conf = run_ok(&[
                hakeep,
                "render",
                "keepalived",
                "--node",
                &node.name,
                "-c",
                &config,
            ])
            .context("hakeep render keepalived")?;
            let conf = if self.baseline {
                self.baseline_conf(&conf)?
            } else {
                conf
            };
            fs::write(node.dir.join("keepalived.conf"), conf)?;
        }
        Ok(())
    }

    // -- addressing nodes --------------------------------------------------------------

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

    pub fn holder_pid(&self, name: &str) -> u32 {
        self.node(name).holder_pid
    }

    /// A path inside a node's mount namespace, reachable from the host.
    pub fn node_path(&self, name: &str, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        PathBuf::from(format!("/proc/{}/root", self.holder_pid(name))).join(rel)
    }

    pub fn read_node_file(&self, name: &str, path: &str) -> Option<String> {
        fs::read(self.node_path(name, path)).ok().map(|b| text(&b))
    }

    pub fn write_node_file(&self, name: &str, path: &str, content: &str) -> Result<()> {
        let p = self.node_path(name, path);
        fs::write(&p, content).with_context(|| format!("{name}: writing {path}"))
    }

    pub fn remove_node_file(&self, name: &str, path: &str) -> Result<()> {
        match fs::remove_file(self.node_path(name, path)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("{name}: removing {path}"))
            }
            _ => Ok(()),
        }
    }

    pub fn node_file_exists(&self, name: &str, path: &str) -> bool {
        self.node_path(name, path).exists()
    }

    fn nsenter(&self, name: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.holder_pid(name).to_string())
            .args(["--mount", "--net", "--"]);
        cmd
    }

    /// Runs argv inside a node (its mount and network namespaces).
    pub fn exec(&self, name: &str, argv: &[&str]) -> Result<Output> {
        run_with_timeout(self.nsenter(name).args(argv), CMD_TIMEOUT)
    }

    /// Starts a long-running process inside a node; the lab kills it at teardown.
    /// Returns its pid (nsenter execs, so the pid is the program's).
    pub fn spawn_in(&mut self, name: &str, label: &str, argv: &[&str]) -> Result<u32> {
        let child = self
            .nsenter(name)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{name}: starting {label}"))?;
        let pid = child.id();
        self.extras.push((format!("{name}:{label}"), child));
        Ok(pid)
    }

    /// Whether a process started with [`Lab::spawn_in`] has exited (and reaps it).
    pub fn spawned_exited(&mut self, pid: u32) -> bool {
        match self.extras.iter_mut().find(|(_, c)| c.id() == pid) {
            Some((_, child)) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    // -- observing a node ---------------------------------------------------------------

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

    /// Processes in a node's network namespace: (pid, command line).
    pub fn processes(&self, name: &str) -> Vec<(u32, String)> {
        let Some(ino) = ns_inode(format!("/run/netns/{}", self.node(name).netns)) else {
            return Vec::new();
        };
        let set = HashSet::from([ino]);
        pids_in_namespaces(&set)
            .into_iter()
            .map(|p| (p, cmdline(p)))
            .collect()
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

    /// keepalived's output since its latest start.
    pub fn keepalived_output(&self, name: &str) -> String {
        let node = self.node(name);
        let all = fs::read(node.keepalived_log()).unwrap_or_default();
        let from = (node.keepalived_log_offset as usize).min(all.len());
        text(&all[from..])
    }

    /// The last state keepalived's current run entered for the group (MASTER, BACKUP,
    /// FAULT), from its log.
    pub fn keepalived_state(&self, name: &str) -> Option<String> {
        self.keepalived_group_state(name, GROUP)
    }

    /// [`Lab::keepalived_state`] of any group.
    pub fn keepalived_group_state(&self, name: &str, group: &str) -> Option<String> {
        let marker = format!("({group}) Entering ");
        self.keepalived_output(name).lines().rev().find_map(|l| {
            let rest = &l[l.find(&marker)? + marker.len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
    }

    pub fn keepalived_running(&mut self, name: &str) -> bool {
        let i = self.idx(name);
        matches!(
            self.nodes[i].keepalived.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    pub fn agent_running(&mut self, name: &str) -> bool {
        let i = self.idx(name);
        matches!(
            self.nodes[i].agent.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    pub fn agent_pid(&self, name: &str) -> Option<u32> {
        self.node(name).agent.as_ref().map(|c| c.id())
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

    // -- acting on a node ---------------------------------------------------------------

    fn open_log(path: &Path, what: &str, since: Duration) -> Result<(fs::File, u64)> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let offset = f.metadata()?.len();
        writeln!(f, "===== {what} started at lab time {since:.1?} =====")?;
        Ok((f, offset))
    }

    /// Starts keepalived in the node, in the foreground, logging to the lab dir.
    pub fn start_keepalived(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        if self.keepalived_running(name) {
            bail!("{name}: keepalived is already running");
        }
        // A crashed keepalived leaves its pid files. Its SIGKILLed VRRP child is reparented
        // to PID 1, and an init that reaps late keeps it a zombie for seconds: keepalived
        // would take it for a running daemon ("daemon is already running") and exit. A
        // reboot would have emptied /run: remove pid files whose process is gone.
        for file in [KEEPALIVED_PID, KEEPALIVED_VRRP_PID] {
            let stale = self
                .read_node_file(name, file)
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(gone_or_zombie);
            if stale {
                self.remove_node_file(name, file)?;
            }
        }
        let node = &self.nodes[i];
        let conf = node.dir.join("keepalived.conf");
        let (log, offset) =
            Self::open_log(&node.keepalived_log(), "keepalived", self.started.elapsed())?;
        let child = self
            .nsenter(name)
            .args([
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--vrrp",
                "--no-syslog",
            ])
            .arg(format!("--pid={KEEPALIVED_PID}"))
            .arg(format!("--vrrp_pid={KEEPALIVED_VRRP_PID}"))
            .arg(format!("--use-file={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{name}: starting keepalived"))?;
        let pid = child.id();
        self.nodes[i].keepalived = Some(child);
        self.nodes[i].keepalived_log_offset = offset;
        self.wait(
            &format!("{name}'s keepalived writes its pid file"),
            Duration::from_secs(10),
            |lab| {
                lab.read_node_file(name, KEEPALIVED_PID)
                    .is_some_and(|p| p.trim() == pid.to_string())
            },
        )?;
        Ok(())
    }

    /// Crashes keepalived like a kill -9 of the whole daemon. Killing only its parent is
    /// not a crash: the VRRP child then gets SIGTERM (parent-death signal), sends priority
    /// 0 and removes the VIPs. So: stop the parent (no respawn), SIGKILL its children,
    /// SIGKILL it, reap it. The VIPs stay where they were, as after a real crash. Returns
    /// the time of the children's SIGKILL (the VRRP process sends no advert after it).
    pub fn crash_keepalived(&mut self, name: &str) -> Result<SystemTime> {
        let i = self.idx(name);
        let Some(mut child) = self.nodes[i].keepalived.take() else {
            bail!("{name}: keepalived is not running");
        };
        let parent = child.id();
        let children = kill_vrrp_children(parent);
        let killed = SystemTime::now();
        signal(parent, Signal::KILL);
        child.wait()?; // no zombie: the agent must see the pid gone
        wait_until(
            &format!("{name}'s keepalived processes are gone"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || children.iter().all(|&c| gone_or_zombie(c)),
        )?;
        Ok(killed)
    }

    /// A power loss as the peer and the client see it, for measurements: keepalived is
    /// crashed as in [`Lab::crash_keepalived`] and, within about a millisecond of its VRRP
    /// process's SIGKILL, the node's link goes down (an `ip -batch` started beforehand gets
    /// the command, so no fork lies in between); then the agent (if any) is SIGKILLed too,
    /// so it neither releases nor competes for the CPUs with the peer's takeover. What the
    /// node held stays as it was. Returns (time of the SIGKILL, time the link was down).
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn power_off(&mut self, name: &str) -> Result<(SystemTime, SystemTime)> {
        let i = self.idx(name);
        let netns = self.nodes[i].netns.clone();
        let Some(mut keepalived) = self.nodes[i].keepalived.take() else {
            bail!("{name}: keepalived is not running");
        };
        let parent = keepalived.id();
        let mut ip = Command::new("ip")
            .args(["-n", &netns, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ip -batch")?;
        let children = kill_vrrp_children(parent);
        let killed = SystemTime::now();
        let mut stdin = ip.stdin.take().context("ip -batch stdin")?;
        let written = stdin.write_all(format!("link set {IFACE} down\n").as_bytes());
        drop(stdin);
        let out = run_wait(ip, Duration::from_secs(10));
        let link_down = SystemTime::now();
        signal(parent, Signal::KILL);
        keepalived.wait()?;
        written.context("writing to ip -batch")?;
        let out = out?;
        if !out.status.success() {
            bail!("{name}: ip link set down: {}", text(&out.stderr).trim());
        }
        if let Some(mut agent) = self.nodes[i].agent.take() {
            agent.kill()?;
            agent.wait()?;
        }
        wait_until(
            &format!("{name}'s keepalived processes are gone"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || children.iter().all(|&c| gone_or_zombie(c)),
        )?;
        Ok((killed, link_down))
    }

    /// Stops keepalived the orderly way (SIGTERM, as `systemctl stop keepalived` does): it
    /// sends priority-0 adverts, drops its VIPs and runs the notify_stop scripts. Waits
    /// (bounded) until it has exited and reaps it. Returns the time of the SIGTERM.
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn stop_keepalived(&mut self, name: &str) -> Result<SystemTime> {
        let i = self.idx(name);
        let Some(mut child) = self.nodes[i].keepalived.take() else {
            bail!("{name}: keepalived is not running");
        };
        let at = SystemTime::now();
        signal(child.id(), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(at);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name}: keepalived did not stop within 20 s of SIGTERM (killed)");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The baseline notify script's log in a node ([`BASELINE_LOG`]).
    #[allow(dead_code, reason = "only benches/failover.rs uses it")]
    pub fn baseline_log(&self, name: &str) -> String {
        self.read_node_file(name, BASELINE_LOG).unwrap_or_default()
    }

    /// Starts `hakeep agent` in the node. On a first start, waits until it has created the
    /// notify FIFO; on a restart (the FIFO is there), until it has run for a moment.
    pub fn start_agent(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        if self.agent_running(name) {
            bail!("{name}: the agent is already running");
        }
        let fifo_existed = self.node_path(name, FIFO).exists();
        let node = &self.nodes[i];
        let (log, _) = Self::open_log(&node.agent_log(), "hakeep agent", self.started.elapsed())?;
        let child = self
            .nsenter(name)
            .arg(&self.hakeep)
            .args(["agent", "-c"])
            .arg(&self.config)
            .args(["--node", name])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{name}: starting hakeep agent"))?;
        self.nodes[i].agent = Some(child);
        if fifo_existed {
            thread::sleep(Duration::from_millis(500));
        } else {
            let fifo = self.node_path(name, FIFO);
            let _ = wait_until(
                &format!("{name}'s agent creates {FIFO}"),
                Duration::from_secs(15),
                Duration::from_millis(50),
                || {
                    fs::metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo())
                        || !matches!(
                            self.nodes[i].agent.as_mut().map(|c| c.try_wait()),
                            Some(Ok(None))
                        )
                },
            );
        }
        if !self.agent_running(name) {
            let log = fs::read_to_string(self.nodes[i].agent_log()).unwrap_or_default();
            bail!("{name}: hakeep agent exited at start:\n{}", tail(&log, 40));
        }
        if !fifo_existed
            && !fs::metadata(self.node_path(name, FIFO)).is_ok_and(|m| m.file_type().is_fifo())
        {
            bail!("{name}: hakeep agent did not create {FIFO} within 15 s");
        }
        Ok(())
    }

    /// kill -9 the agent (only the agent: what it started keeps running), and reap it.
    pub fn kill_agent(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        let Some(mut child) = self.nodes[i].agent.take() else {
            bail!("{name}: no agent to kill");
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    // -- SSH ------------------------------------------------------------------------------

    /// Makes the lab's keys: a client key, a host key per node, authorized_keys and
    /// known_hosts (`ADDRESS KEYTYPE KEY`, from the host keys' .pub files).
    fn make_ssh_keys(&mut self) -> Result<()> {
        run(&[SSHD, "-V"]).with_context(|| {
            format!("{SSHD} is needed (openssh-server; scripts/install-deps.sh)")
        })?;
        let dir = self.dir.join("ssh");
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let keygen = |path: &Path, comment: &str| -> Result<()> {
            let p = path.display().to_string();
            run_ok(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                comment,
                "-f",
                &p,
            ])
            .context("ssh-keygen (openssh-client) is needed")?;
            Ok(())
        };
        let identity_file = dir.join("id_ed25519");
        keygen(&identity_file, &format!("{}-client", self.id))?;
        let authorized_keys = dir.join("authorized_keys");
        fs::copy(identity_file.with_extension("pub"), &authorized_keys)?;
        let mut host_keys = BTreeMap::new();
        let mut known = String::new();
        for n in &self.nodes {
            let key = dir.join(format!("host_{}_ed25519", n.name));
            keygen(&key, &format!("{}-{}", self.id, n.name))?;
            let _ = writeln!(known, "{} {}", n.address, public_key(&key)?);
            host_keys.insert(n.name.clone(), key);
        }
        let known_hosts = dir.join("known_hosts");
        fs::write(&known_hosts, known)?;
        self.ssh = Some(SshFiles {
            dir,
            identity_file,
            known_hosts,
            authorized_keys,
            host_keys,
        });
        Ok(())
    }

    /// Makes a fresh ed25519 key pair under the lab's ssh dir and returns its public key as
    /// `KEYTYPE KEY` (e.g. a wrong host key for a known_hosts that must not match).
    pub fn new_public_key(&self, label: &str) -> Result<String> {
        let files = self.ssh.as_ref().context("the lab has no SSH")?;
        let key = files.dir.join(format!("extra_{label}_ed25519"));
        let p = key.display().to_string();
        run_ok(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", &p])?;
        public_key(&key)
    }

    /// Starts sshd in a node, listening on the node's address (port 22), and waits until
    /// it listens.
    pub fn start_sshd(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        let files = self.ssh.clone().context("the lab has no SSH")?;
        let node = &self.nodes[i];
        let config = node.dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "# sshd of lab {id}, node {name} (tests/harness)\n\
                 ListenAddress {addr}\nPort 22\nAddressFamily inet\n\
                 HostKey {hostkey}\nPidFile {SSHD_PID}\n\
                 AuthorizedKeysFile {auth}\n\
                 # The key lives under /var/tmp (world-writable): StrictModes would refuse it.\n\
                 StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nX11Forwarding no\nAllowTcpForwarding no\n\
                 PrintMotd no\nLogLevel VERBOSE\n",
                id = self.id,
                addr = node.address,
                hostkey = files.host_keys[name].display(),
                auth = files.authorized_keys.display(),
            ),
        )?;
        // Privilege separation directory, in the node's private /run.
        let privsep = self.node_path(name, "/run/sshd");
        fs::create_dir_all(&privsep)?;
        fs::set_permissions(&privsep, fs::Permissions::from_mode(0o755))?;
        let node = &self.nodes[i];
        let (log, _) = Self::open_log(&node.sshd_log(), "sshd", self.started.elapsed())?;
        let child = self
            .nsenter(name)
            .args([SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{name}: starting sshd"))?;
        let holder = self.nodes[i].holder_pid;
        let sshd = self.nodes[i].sshd.insert(child);
        let listening = wait_until(
            &format!("{name}'s sshd listens on port 22"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || listens_on(holder, 22) || !matches!(sshd.try_wait(), Ok(None)),
        );
        if listening.is_err() || !self.listens_on(name, 22) {
            let log = fs::read_to_string(self.nodes[i].sshd_log()).unwrap_or_default();
            bail!("{name}: sshd does not listen:\n{}", tail(&log, 20));
        }
        Ok(())
    }

    /// sshd's log of a node (all its runs).
    pub fn sshd_output(&self, name: &str) -> String {
        fs::read_to_string(self.node(name).sshd_log()).unwrap_or_default()
    }

    /// Whether something in the node listens on a TCP (IPv4) port, from /proc/HOLDER/net/tcp.
    pub fn listens_on(&self, name: &str, port: u16) -> bool {
        listens_on(self.holder_pid(name), port)
    }

    // -- operator commands ----------------------------------------------------------------

    /// Runs `hakeep -c CONFIG ARGS...` inside a node (the lab's cluster.yml), as an operator
    /// on that node would. Ok(output) whatever the exit code.
    pub fn hakeep(&self, name: &str, args: &[&str]) -> Result<Output> {
        self.hakeep_with(name, &self.config, args, Duration::from_secs(180))
    }

    /// [`Lab::hakeep`] with another cluster file and time limit.
    pub fn hakeep_with(
        &self,
        name: &str,
        config: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output> {
        let mut cmd = self.nsenter(name);
        cmd.arg(&self.hakeep)
            .arg("-c")
            .arg(config)
            .args(args)
            // Deterministic: the configured key, never a developer's ssh-agent; no colours.
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("HAKEEP_NODE")
            .env_remove("HAKEEP_CONFIG")
            .env("NO_COLOR", "1");
        run_with_timeout(&mut cmd, timeout)
    }

    /// Writes a file into the lab's directory (seen by every node) and returns its path.
    pub fn write_lab_file(&self, name: &str, content: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        fs::write(&path, content)?;
        Ok(path)
    }

    // -- fast observation (no fork), for samplers ---------------------------------------------

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

    /// Sets the node's link (its eth1) down or up.
    pub fn set_link(&self, name: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        run_ok(&[
            "ip",
            "-n",
            &self.node(name).netns,
            "link",
            "set",
            IFACE,
            state,
        ])?;
        Ok(())
    }

    /// Writes bytes into a node's notify FIFO, as keepalived would (never blocks for long).
    pub fn write_fifo(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.node_path(name, FIFO);
        let meta = fs::metadata(&path).with_context(|| format!("{name}: {FIFO}"))?;
        if !meta.file_type().is_fifo() {
            bail!("{name}: {FIFO} is not a FIFO");
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .with_context(|| format!("{name}: opening {FIFO} (no reader?)"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rest = bytes;
        while !rest.is_empty() {
            match f.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        bail!(
                            "{name}: {FIFO} stays full: nobody reads it ({} bytes unwritten)",
                            rest.len()
                        );
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).with_context(|| format!("{name}: writing {FIFO}")),
            }
        }
        Ok(())
    }

    // -- diagnostics and teardown ----------------------------------------------------------

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

/// Stops keepalived's parent (so it cannot restart them) and SIGKILLs its children, the
/// VRRP and checker processes; returns their pids. The caller kills the parent after.
fn kill_vrrp_children(parent: u32) -> Vec<u32> {
    signal(parent, Signal::STOP);
    let children: Vec<u32> = all_pids()
        .into_iter()
        .filter(|&p| ppid(p) == Some(parent))
        .collect();
    for &c in &children {
        signal(c, Signal::KILL);
    }
    children
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

/// Whether something in the network namespace of `pid` listens on a TCP (IPv4) port.
fn listens_on(pid: u32, port: u16) -> bool {
    let tcp = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let local = format!(":{port:04X}");
    tcp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
    })
}

/// The `KEYTYPE KEY` of a key pair's .pub file (comment dropped).
fn public_key(private: &Path) -> Result<String> {
    let text = fs::read_to_string(private.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", private.display()))?;
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    if words.len() != 2 {
        bail!("{}.pub is not a public key: {text:?}", private.display());
    }
    Ok(words.join(" "))
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

fn no_ipv6(link: &str) {
    // Keeps link-local addresses off the host side: the host has no address on the lab.
    let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6"), "1");
}

// ---------------------------------------------------------------------------------------
// actions.log

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

// ---------------------------------------------------------------------------------------
// Tests of the harness's own pure parts

// The imports are inside the tests: benches/failover.rs also compiles this module under
// `--cfg test` (clippy --all-targets), without the tests.
#[cfg(test)]
mod unit {
    #[test]
    fn fib_trie_local_addresses() {
        use super::*;
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
        use super::*;
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
        use super::*;
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
