//! Tier 2 (docs/design.md §8), the operator commands on real parts: `hakeep status` (local and
//! `--all-nodes` over real sshd), `release`, `takeover`, `switchover`, `maintenance` and
//! `check`, each run inside a node's namespaces as an operator on that node would run it,
//! against the real agent and real keepalived of the tier-2 lab (tests/harness/mod.rs).
//!
//! Needs root (skipped loudly without it; a failure under CI), Debian's openssh-server
//! (sshd) and openssh-client (ssh-keygen), and python3-jsonschema for the schema tests
//! (scripts/install-deps.sh installs them). Labs are serialized by the harness's lock.
//!
//!     cargo test --test integration operator:: -- --nocapture

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::harness::*;
use crate::json_schema;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

// ---------------------------------------------------------------------------------------
// Running hakeep in a node

/// What one `hakeep` run gave: exit code, stdout, stderr.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "stdout is not JSON (exit {}): {:?}; stderr: {}",
                self.code,
                self.stdout,
                self.stderr.trim()
            )
        })
    }

    fn describe(&self) -> String {
        format!(
            "exit {}; stdout: {}; stderr: {}",
            self.code,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// `hakeep -c CLUSTER ARGS...` inside `node`.
fn hk(lab: &Lab, node: &str, args: &[&str]) -> Result<Ran> {
    Ok(Ran::from(lab.hakeep(node, args)?))
}

/// `hakeep status --json --node NODE` inside `node`: (exit code, JSON).
fn status(lab: &Lab, node: &str) -> Result<(i32, Value)> {
    let ran = hk(lab, node, &["status", "--json", "--node", node])?;
    Ok((ran.code, ran.json()?))
}

/// The group's entry of a node status.
fn group_of(status: &Value) -> Result<&Value> {
    status["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == GROUP))
        .with_context(|| format!("no group {GROUP} in {status}"))
}

/// A node of an `--all-nodes` status.
fn node_of<'a>(cluster: &'a Value, name: &str) -> Result<&'a Value> {
    cluster["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == name))
        .with_context(|| format!("no node {name} in {cluster}"))
}

/// The group's placement of an `--all-nodes` status.
fn placement_of(cluster: &Value) -> Result<&Value> {
    cluster["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == GROUP))
        .with_context(|| format!("no group {GROUP} in {cluster}"))
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `node` is a healthy backup for the group: VRRP BACKUP, no fault (the
/// hold-down of an earlier release is over), standby, `status` exit 0.
fn wait_eligible(lab: &Lab, node: &str, timeout: Duration) -> Result<Duration> {
    let mut last = String::new();
    wait_until(
        &format!("{node} is an eligible backup (status: BACKUP, no fault, exit 0)"),
        timeout,
        ms(100),
        || match status(lab, node) {
            Ok((code, s)) => {
                let ok = group_of(&s).is_ok_and(|g| {
                    g["vrrp_state"] == "BACKUP" && g["fault"].is_null() && g["actual"] == "standby"
                });
                last = format!("exit {code}: {s}");
                ok && code == 0
            }
            Err(e) => {
                last = format!("{e:#}");
                false
            }
        },
    )
    .with_context(|| format!("last status of {node}: {last}"))
}

/// (timestamp ms, action, step) of actions.log lines of the group.
fn timed_actions(lab: &Lab, node: &str) -> Vec<(u64, String, String)> {
    lab.actions_log(node)
        .lines()
        .filter(|l| l.contains(&format!("group={GROUP} ")))
        .filter_map(|l| {
            let stamp = l.split_whitespace().next()?;
            let a = parse_actions(l).into_iter().next()?;
            Some((epoch_ms(stamp)?, a.action, a.step))
        })
        .collect()
}

/// Checks `check` repeatedly for `period`: a state that must hold, not just be reached.
fn holds_for(period: Duration, mut check: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    loop {
        check().with_context(|| format!("after {:.1?} of {period:?}", start.elapsed()))?;
        if start.elapsed() >= period {
            return Ok(());
        }
        sleep(ms(250));
    }
}

// ---------------------------------------------------------------------------------------
// JSON Schema validation (Debian's python3-jsonschema, tests/json_schema.rs)

/// Every document must validate against docs/status.schema.json.
fn ensure_valid(docs: &[(&str, &Value)]) -> Result<()> {
    json_schema::ensure_valid(&json_schema::schema("status.schema.json"), docs)
}

/// Every document must validate against docs/check.schema.json.
fn ensure_valid_check(docs: &[(&str, &Value)]) -> Result<()> {
    json_schema::ensure_valid(&json_schema::schema("check.schema.json"), docs)
}

// ---------------------------------------------------------------------------------------
// 1. Switchover back and forth

/// One sample of the double-active sampler: per node, mounted and VIP.
#[derive(Debug, Default)]
struct SamplerReport {
    samples: u64,
    missed_ticks: u64,
    elapsed: Duration,
    max_gap: Duration,
    max_read: Duration,
    double_mount: Vec<String>,
    double_vip: Vec<String>,
    /// How often the node holding the mount / the VIP changed (incl. to and from none).
    mount_changes: u64,
    vip_changes: u64,
}

const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Every 50 ms (on a fixed grid; a tick the sampler misses is counted, not caught up),
/// reads node A, then node B, then node A again, straight from /proc/HOLDER (no fork). A
/// sample is double-active when B has the mount (or the VIP) and A has it at either read
/// around it: the three reads take microseconds, and a real move takes far longer than
/// that, so this errs on the side of reporting.
fn sample(obs: &Observer, stop: &AtomicBool) -> SamplerReport {
    let nodes = obs.node_names();
    let (a, b) = (nodes[0].as_str(), nodes[1].as_str());
    let mut r = SamplerReport::default();
    let start = Instant::now();
    let mut next = start;
    let mut last: Option<Instant> = None;
    let mut holder_mount: Option<(bool, bool)> = None;
    let mut holder_vip: Option<(bool, bool)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            sleep(next - now);
        }
        let t = Instant::now();
        let (a1m, a1v) = (obs.has_mount(a), obs.has_vip(a));
        let (bm, bv) = (obs.has_mount(b), obs.has_vip(b));
        let (a2m, a2v) = (obs.has_mount(a), obs.has_vip(a));
        let read = t.elapsed();
        r.max_read = r.max_read.max(read);
        if let Some(l) = last {
            r.max_gap = r.max_gap.max(t - l);
        }
        last = Some(t);
        r.samples += 1;
        let at = t - start;
        if bm && (a1m || a2m) {
            r.double_mount
                .push(format!("at {at:.3?}: {a} {a1m}/{a2m}, {b} {bm}"));
        }
        if bv && (a1v || a2v) {
            r.double_vip
                .push(format!("at {at:.3?}: {a} {a1v}/{a2v}, {b} {bv}"));
        }
        let m = (a1m && a2m, bm);
        if holder_mount.is_some_and(|h| h != m) {
            r.mount_changes += 1;
        }
        holder_mount = Some(m);
        let v = (a1v && a2v, bv);
        if holder_vip.is_some_and(|h| h != v) {
            r.vip_changes += 1;
        }
        holder_vip = Some(v);
        next += SAMPLE_EVERY;
        while next <= Instant::now() {
            next += SAMPLE_EVERY;
            r.missed_ticks += 1;
        }
    }
    r.elapsed = start.elapsed();
    r
}

/// One HTTP probe through the VIP from the client netns.
#[derive(Debug, Clone)]
struct Probe {
    at: Instant,
    /// The node named by node.txt, when the answer was a 200 with a node name.
    node: Option<String>,
}

const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_WORKERS: usize = 10;

/// `GET /node.txt` (HTTP/1.0) to VIP:8080; the node name in the body.
fn http_node(timeout: Duration) -> Result<String> {
    let addr = SocketAddr::new(VIP.parse()?, HTTP_PORT);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET /node.txt HTTP/1.0\r\nHost: {VIP}\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    let status = head.lines().next().unwrap_or("");
    ensure!(
        status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200"),
        "HTTP status {status:?}"
    );
    let node = body.trim();
    ensure!(
        !node.is_empty() && node.len() < 32,
        "unexpected body {body:?}"
    );
    Ok(node.to_string())
}

/// Starts a probe every 50 ms from the client netns (a pool of threads that each joined
/// the client's network namespace, so a probe that waits for a timeout never delays the
/// next one) until `stop`.
fn probe(client_ns: &str, stop: &AtomicBool) -> Result<Vec<Probe>> {
    let results = Mutex::new(Vec::new());
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let ns_path = format!("/run/netns/{client_ns}");
    thread::scope(|s| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..PROBE_WORKERS {
            let (rx, results, ns_path) = (&rx, &results, &ns_path);
            workers.push(s.spawn(move || -> Result<()> {
                let ns = std::fs::File::open(ns_path)?;
                // Only this thread moves: network namespaces are per thread.
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .context("setns into the client netns")?;
                loop {
                    let next = rx.lock().unwrap().recv();
                    if next.is_err() {
                        return Ok(());
                    }
                    let at = Instant::now();
                    let node = http_node(PROBE_TIMEOUT).ok();
                    results.lock().unwrap().push(Probe { at, node });
                }
            }));
        }
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let _ = tx.send(());
            next += PROBE_EVERY;
            let now = Instant::now();
            if next > now {
                sleep(next - now);
            } else {
                next = now;
            }
        }
        drop(tx);
        for w in workers {
            w.join().expect("probe worker panicked")?;
        }
        Ok(())
    })?;
    let mut v = results.into_inner().unwrap();
    v.sort_by_key(|p| p.at);
    Ok(v)
}

/// The client-side outage of a move in `[from, until)`: from the last successful probe
/// before the first failed one to the first successful probe after the last failed one,
/// and which node answered then. None when no probe failed in the window.
fn probe_outage(
    probes: &[Probe],
    from: Instant,
    until: Instant,
) -> Option<(Duration, Option<String>)> {
    let failed: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.at >= from && p.at < until && p.node.is_none())
        .collect();
    let (first, last) = (failed.first()?, failed.last()?);
    let before = probes
        .iter()
        .rev()
        .find(|p| p.at < first.at && p.node.is_some())?;
    let after = probes.iter().find(|p| p.at > last.at && p.node.is_some())?;
    Some((after.at - before.at, after.node.clone()))
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

#[derive(Debug)]
struct Move {
    n: usize,
    from: String,
    to: String,
    runner: String,
    started: Instant,
    took: Duration,
    outage_ms: u64,
    release_ms: u64,
}

/// Scenario 1: `switchover web --to X --json`, 10 times back and forth, run alternately on
/// n1 and n2 so that every path is used (release through the local socket or over SSH,
/// takeover locally or over SSH). Throughout, a sampler checks every 50 ms that the shared
/// device is never mounted on both nodes and the VIP never on both; an HTTP probe through
/// the VIP every 50 ms from the client measures each outage independently of the command.
#[test]
fn switchover_back_and_forth_ten_times_never_double_active() {
    let checks = format!("[{{ tcp: \"{VIP}:{HTTP_PORT}\", interval: 1 }}]");
    let builder = Lab::builder().ssh().hold_down(3).checks(&checks);
    scenario("switchover", builder, |lab| {
        const MOVES: usize = 10;
        lab.wait_only_active("n1", CONVERGE)?;
        wait_eligible(lab, "n2", CONVERGE)?;

        // The fast observer agrees with `ip` and mountinfo as the harness reads them.
        let obs = lab.observer();
        for n in ["n1", "n2"] {
            ensure!(
                obs.has_vip(n) == lab.has_vip(n),
                "fib_trie and ip disagree on {n}"
            );
            ensure!(obs.has_mount(n) == lab.has_mount(n));
        }
        // What a fork of `ip -n` costs, for the record (the sampler does not fork).
        let t = Instant::now();
        for _ in 0..10 {
            lab.has_vip("n1");
        }
        let ip_cost = t.elapsed() / 10;
        let t = Instant::now();
        for _ in 0..100 {
            obs.has_vip("n1");
            obs.has_mount("n1");
        }
        let fast_cost = t.elapsed() / 100;
        eprintln!(
            "[switchover] one VIP read: `ip -n NS -o addr` {ip_cost:.2?}; \
             fib_trie + mountinfo {fast_cost:.2?}"
        );

        // Control: the sampler does flag a double holder (n2 read from n1's namespaces).
        let control_stop = AtomicBool::new(false);
        let aliased = obs.aliased("n2", "n1");
        let control = thread::scope(|s| {
            let h = s.spawn(|| sample(&aliased, &control_stop));
            sleep(ms(300));
            control_stop.store(true, Ordering::Relaxed);
            h.join().expect("control sampler panicked")
        });
        ensure!(
            control.samples >= 3
                && control.double_mount.len() as u64 == control.samples
                && control.double_vip.len() as u64 == control.samples,
            "the sampler does not flag a node that holds it twice: {control:?}"
        );

        let stop = AtomicBool::new(false);
        let client_ns = lab.client_ns.clone();
        let lab: &Lab = lab;
        let (moves, sampler, probes) = thread::scope(|s| -> Result<_> {
            let sampler = s.spawn(|| sample(&obs, &stop));
            let prober = s.spawn(|| probe(&client_ns, &stop));
            // The service answers through the VIP before the first move.
            let seen = wait_until("the first probes answer", secs(10), ms(50), || {
                prober.is_finished() || lab.serving_node().is_some()
            });
            sleep(ms(500));
            let moved = seen.and_then(|_| switch_back_and_forth(lab, MOVES));
            sleep(secs(1)); // probes after the last move
            stop.store(true, Ordering::Relaxed);
            let sampler = sampler.join().expect("sampler panicked");
            let probes = prober.join().expect("prober panicked")?;
            Ok((moved, sampler, probes))
        })?;
        // A move that failed still gets the sampler's verdict in its error.
        let moves = moves.with_context(|| {
            format!(
                "sampler until then: {} samples, double-active mount {:?}, VIP {:?}",
                sampler.samples, sampler.double_mount, sampler.double_vip
            )
        })?;

        // The client's view of each move.
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for (i, m) in moves.iter().enumerate() {
            let until = moves
                .get(i + 1)
                .map(|n| n.started)
                .unwrap_or_else(|| m.started + m.took + secs(1));
            match probe_outage(&probes, m.started, until) {
                None => problems.push(format!(
                    "move {}: the client probe saw no outage at all (not measured?)",
                    m.n
                )),
                Some((d, node)) => {
                    if node.as_deref() != Some(m.to.as_str()) {
                        problems.push(format!(
                            "move {}: after the outage the client was served by {node:?}, not {}",
                            m.n, m.to
                        ));
                    }
                    rows.push((m, d.as_millis() as u64));
                }
            }
        }
        eprintln!(
            "\n[switchover] {MOVES} moves (preempt: false, hold_down 3 s, tcp check on the VIP)"
        );
        eprintln!(
            "| move | from | to | run on | release via | takeover via | command ms | \
             outage_ms (report) | release_ms (report) | client outage ms |"
        );
        eprintln!("|---|---|---|---|---|---|---|---|---|---|");
        for (m, client) in &rows {
            let via = |node: &str| {
                if node == m.runner {
                    "local socket"
                } else {
                    "ssh"
                }
            };
            eprintln!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                m.n,
                m.from,
                m.to,
                m.runner,
                via(&m.from),
                via(&m.to),
                m.took.as_millis(),
                m.outage_ms,
                m.release_ms,
                client
            );
        }
        let col = |f: &dyn Fn(&Move, u64) -> u64| -> Vec<u64> {
            rows.iter().map(|(m, c)| f(m, *c)).collect()
        };
        let reported = col(&|m, _| m.outage_ms);
        let release = col(&|m, _| m.release_ms);
        let client = col(&|_, c| c);
        let commands = col(&|m, _| m.took.as_millis() as u64);
        eprintln!("\n| measure ({} moves) | median ms | max ms |", rows.len());
        eprintln!("|---|---|---|");
        for (what, v) in [
            ("outage_ms reported by switchover", &reported),
            ("release_ms reported by switchover", &release),
            ("outage seen by the client (HTTP every 50 ms)", &client),
            ("switchover command wall time", &commands),
        ] {
            eprintln!(
                "| {what} | {} | {} |",
                median(v),
                v.iter().max().copied().unwrap_or(0)
            );
        }
        let expected = (sampler.elapsed.as_millis() / SAMPLE_EVERY.as_millis()) as u64;
        eprintln!(
            "\n[switchover] sampler: {} samples in {:.1?} (expected ~{expected} at 50 ms), \
             {} ticks missed, largest gap {:.1?}, slowest read {:.2?}; holder changes seen: \
             mount {}, VIP {}; double-active samples: mount {}, VIP {}",
            sampler.samples,
            sampler.elapsed,
            sampler.missed_ticks,
            sampler.max_gap,
            sampler.max_read,
            sampler.mount_changes,
            sampler.vip_changes,
            sampler.double_mount.len(),
            sampler.double_vip.len()
        );
        eprintln!(
            "[switchover] client probes: {} sent, {} answered",
            probes.len(),
            probes.iter().filter(|p| p.node.is_some()).count()
        );

        ensure!(
            sampler.double_mount.is_empty(),
            "the shared device was mounted on both nodes: {:?}",
            sampler.double_mount
        );
        ensure!(
            sampler.double_vip.is_empty(),
            "the VIP was on both nodes: {:?}",
            sampler.double_vip
        );
        ensure!(
            sampler.samples * 10 >= expected * 9 && sampler.samples <= expected + 2,
            "{} samples in {:.1?} is not one every 50 ms (~{expected})",
            sampler.samples,
            sampler.elapsed
        );
        ensure!(
            sampler.max_gap < ms(250),
            "the sampler paused {:.1?}",
            sampler.max_gap
        );
        // Each move takes the mount and the VIP away from one node (to none) and gives it to
        // the other: two changes per move, so the sampler did see every move.
        ensure!(
            sampler.mount_changes >= 2 * MOVES as u64 && sampler.vip_changes >= 2 * MOVES as u64,
            "the sampler saw too few moves: mount {} VIP {} holder changes",
            sampler.mount_changes,
            sampler.vip_changes
        );
        let expected_probes =
            expected * SAMPLE_EVERY.as_millis() as u64 / PROBE_EVERY.as_millis() as u64;
        ensure!(
            probes.len() as u64 * 10 >= expected_probes * 8,
            "{} client probes, expected ~{expected_probes}",
            probes.len()
        );
        // The two measures describe the same outage: the command's runs from the holder's
        // release start (before the service stops) to a TCP connect on the target after
        // polling; the client's from its last answer to its first, at 50 ms resolution.
        // Loose bounds (a loaded machine polls late), but a different thing measured
        // would break them.
        for (m, client) in &rows {
            if *client > m.outage_ms + 200 || m.outage_ms > client + 1500 {
                problems.push(format!(
                    "move {}: outage_ms {} and the client's {client} ms disagree",
                    m.n, m.outage_ms
                ));
            }
        }
        ensure!(problems.is_empty(), "{}", problems.join("\n"));
        Ok(())
    });
}

/// The moves of scenario 1; returns what each reported.
fn switch_back_and_forth(lab: &Lab, moves: usize) -> Result<Vec<Move>> {
    // n1, n1, n2, n2, ...: with the group alternating n1 → n2 → n1, the command runs on
    // the holder (local release, takeover over SSH) and on the target (release over SSH,
    // local takeover), on both nodes.
    let runners = ["n1", "n1", "n2", "n2"];
    let mut from = "n1".to_string();
    let mut done = Vec::new();
    for n in 1..=moves {
        let to = lab.peer_of(&from);
        let runner = runners[(n - 1) % runners.len()];
        // The target's hold from its own earlier release must be over, or nobody would
        // be eligible once the holder steps down.
        let waited = wait_eligible(lab, &to, secs(30))?;
        let started = Instant::now();
        let ran = hk(
            lab,
            runner,
            &[
                "switchover",
                GROUP,
                "--to",
                &to,
                "--json",
                "--wait",
                "60",
                "--node",
                runner,
            ],
        )?;
        let took = started.elapsed();
        let what = format!("move {n} ({from} -> {to}, run on {runner})");
        let report = ran.json().with_context(|| what.clone())?;
        ensure!(ran.code == 0, "{what}: {}", ran.describe());
        ensure!(
            report["ok"] == true
                && report["group"] == GROUP
                && report["from"] == from.as_str()
                && report["to"] == to.as_str(),
            "{what}: report {report}"
        );
        let message = report["message"].as_str().unwrap_or("");
        ensure!(
            message.contains("moved to"),
            "{what}: the service did not answer on the target: {report}"
        );
        let outage_ms = report["outage_ms"]
            .as_u64()
            .with_context(|| format!("{what}: no outage_ms in {report}"))?;
        let release_ms = report["release_ms"]
            .as_u64()
            .with_context(|| format!("{what}: no release_ms in {report}"))?;
        ensure!(
            outage_ms > 0 && outage_ms <= took.as_millis() as u64 + 50,
            "{what}: outage_ms {outage_ms} but the command took {took:.1?}"
        );
        lab.wait_only_active(&to, secs(10))
            .with_context(|| what.clone())?;
        let obs = lab.observer();
        ensure!(
            obs.has_vip(&to) && obs.has_mount(&to) && !obs.has_vip(&from) && !obs.has_mount(&from),
            "{what}: the fast observer disagrees: {}",
            lab.summary()
        );
        eprintln!(
            "[switchover] {what}: {took:.2?}, outage {outage_ms} ms, release {release_ms} ms \
             (waited {waited:.1?} for {to} to be eligible)"
        );
        done.push(Move {
            n,
            from: from.clone(),
            to: to.clone(),
            runner: runner.to_string(),
            started,
            took,
            outage_ms,
            release_ms,
        });
        from = to;
    }
    Ok(done)
}

// ---------------------------------------------------------------------------------------
// 2. Release, takeover, maintenance, check

/// Scenario 2: `release` on the master releases it (service stopped, unmounted, track
/// file 1) before the peer takes it, and status shows the operator's hold; `takeover` on the
/// original node has the peer release over SSH and brings the group back; `maintenance`
/// stops the agent from acting (a service stopped by hand stays stopped, `release` is
/// refused) until it is off again, when the agent restarts the service; `check` agrees.
#[test]
fn release_takeover_and_maintenance_do_what_they_say() {
    scenario(
        "release_takeover_maintenance",
        Lab::builder().ssh(),
        |lab| {
            lab.wait_only_active("n1", CONVERGE)?;
            wait_eligible(lab, "n2", CONVERGE)?;
            let ran = hk(lab, "n1", &["check", GROUP, "--json", "--node", "n1"])?;
            ensure!(
                ran.code == 0,
                "check on the healthy master: {}",
                ran.describe()
            );
            let healthy_check = ran.json()?;
            ensure!(
                healthy_check["ok"] == true
                    && healthy_check["results"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|r| r["role"] == "active")),
                "check --json on the healthy master: {healthy_check}"
            );
            let ran = hk(lab, "n2", &["check", "--json", "--node", "n2"])?;
            let backup_check = ran.json()?;
            ensure!(
                ran.code == 0
                    && backup_check["results"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["role"] == "standby")),
                "check --json on the healthy backup: {}",
                ran.describe()
            );
            let ran = hk(lab, "n2", &["check", "--node", "n2"])?;
            ensure!(
                ran.code == 0,
                "check on the healthy backup: {}",
                ran.describe()
            );
            ensure!(
                hk(lab, "n1", &["check", "nope", "--node", "n1"])?.code == 2,
                "check of an unknown group must exit 2"
            );

            // release, with a hold longer than the test needs: only takeover ends it.
            let ran = hk(lab, "n1", &["release", GROUP, "--hold", "120", "--json"])?;
            ensure!(ran.code == 0, "release: {}", ran.describe());
            let reply = ran.json()?;
            ensure!(reply["ok"] == true, "release: {reply}");
            // Released before the reply: nothing of it runs here any more, and it stepped down.
            ensure!(!lab.has_mount("n1"), "n1 still mounted after release");
            ensure!(
                !lab.service_running("n1"),
                "n1's service runs after release"
            );
            ensure!(
                lab.track_file("n1").is_some_and(|t| t.trim() == "1"),
                "n1's track file: {:?}",
                lab.track_file("n1")
            );
            let started = reply["release_started_ms"]
                .as_u64()
                .context("release_started_ms")?;
            let duration = reply["release_duration_ms"]
                .as_u64()
                .context("release_duration_ms")?;
            let took = lab.wait_only_active("n2", CONVERGE)?;
            eprintln!("[release] n2 serves {took:.1?} after n1's release returned");
            // The safe order: n1 stopped the service before unmounting, and n2 began taking only
            // after n1's release had ended.
            let n1_release: Vec<_> = timed_actions(lab, "n1")
                .into_iter()
                .filter(|(t, a, _)| a == "release" && *t >= started)
                .collect();
            let pos = |prefix: &str| {
                n1_release
                    .iter()
                    .position(|(_, _, s)| s.starts_with(prefix))
            };
            ensure!(
                matches!((pos("script:"), pos("mount:")), (Some(s), Some(m)) if s < m),
                "n1's release steps are not service, then mount: {n1_release:?}"
            );
            let n2_take = timed_actions(lab, "n2")
                .into_iter()
                .find(|(t, a, _)| a == "take" && *t + 1000 >= started)
                .context("n2 logged no take step")?;
            ensure!(
            n2_take.0 + 1 >= started + duration,
            "n2 began taking ({n2_take:?}) before n1's release ended ({started} + {duration} ms)"
        );
            let (code, s) = status(lab, "n1")?;
            let g = group_of(&s)?;
            ensure!(
                g["fault"]["by_operator"] == true
                    && g["desired"] == "standby"
                    && g["actual"] == "standby",
                "n1's status after release: {g}"
            );
            ensure!(
                code == 0,
                "a release by the operator is as intended (exit 0), got {code}: {s}"
            );
            ensure!(g["fault"]["kind"] == "operator", "the hold's kind: {g}");
            ensure_valid(&[("n1 released by the operator", &s)])?;
            let until = g["fault"]["hold_down_until"].as_str().and_then(epoch_ms);
            let since = g["fault"]["since"].as_str().and_then(epoch_ms);
            ensure!(
                matches!((since, until), (Some(a), Some(b)) if b.abs_diff(a + 120_000) < 2_000),
                "--hold 120 is not in the fault: {g}"
            );
            let human = hk(lab, "n1", &["status", "--node", "n1"])?;
            ensure!(
                human.stdout.contains("RELEASED"),
                "human status of n1: {}",
                human.stdout
            );
            // The hold lasts: keepalived is FAULT through the track file, nothing comes back.
            holds_for(secs(3), || {
                ensure!(lab.keepalived_state("n1").as_deref() == Some("FAULT"));
                lab.check_only_active("n2")
            })?;

            // takeover on n1: n2 (reachable over SSH) releases first, n1's hold ends.
            let t = Instant::now();
            let ran = hk(
                lab,
                "n1",
                &["takeover", GROUP, "--wait", "60", "--node", "n1"],
            )?;
            ensure!(ran.code == 0, "takeover: {}", ran.describe());
            ensure!(
                ran.stdout.contains("asking n2 to release"),
                "takeover did not ask n2: {}",
                ran.describe()
            );
            lab.wait_only_active("n1", CONVERGE)?;
            eprintln!(
                "[takeover] n1 serves again {:.1?} after takeover began",
                t.elapsed()
            );
            let (_, s2) = status(lab, "n2")?;
            let g2 = group_of(&s2)?;
            ensure!(
                g2["fault"]["by_operator"] == true
                    && g2["last_transition"]["trigger"] == "operator release",
                "n2 did not release by the operator's request: {g2}"
            );
            let (code, s1) = status(lab, "n1")?;
            let g1 = group_of(&s1)?;
            ensure!(
                code == 0 && g1["fault"].is_null() && g1["actual"] == "active",
                "n1 after takeover (exit {code}): {g1}"
            );

            // maintenance on the active node: the agent stops acting.
            let ran = hk(lab, "n1", &["maintenance", "on"])?;
            ensure!(ran.code == 0, "maintenance on: {}", ran.describe());
            ensure!(lab.node_file_exists("n1", "/var/lib/hakeep/maintenance/ALL"));
            ensure!(
                !lab.node_file_exists("n2", "/var/lib/hakeep/maintenance/ALL"),
                "the flag leaked to n2"
            );
            ensure!(
                !Path::new("/var/lib/hakeep/maintenance/ALL").exists(),
                "the flag leaked to the host"
            );
            let restarts_before = count_actions(lab, "n1", "restart-start");
            let script = lab.service_script.display().to_string();
            let out = lab.exec("n1", &[&script, "stop"])?;
            ensure!(
                out.status.success(),
                "stopping the service by hand: {out:?}"
            );
            // > 2 watch intervals (1 s) and > 2 resyncs (2 s): the agent leaves it stopped.
            holds_for(secs(2 * RESYNC_INTERVAL + 1), || {
                ensure!(
                    !lab.service_running("n1"),
                    "the agent restarted the service"
                );
                ensure!(
                    lab.is_active("n1") && !lab.has_mount("n2") && !lab.has_vip("n2"),
                    "maintenance moved the group: {}",
                    lab.summary()
                );
                Ok(())
            })?;
            ensure!(count_actions(lab, "n1", "restart-start") == restarts_before);
            let (code, s) = status(lab, "n1")?;
            let g = group_of(&s)?;
            ensure!(
                s["maintenance"] == true && g["maintenance"] == true && g["actual"] == "partial",
                "status in maintenance: {s}"
            );
            ensure!(code == 1, "status exit with the service down: {code}");
            let human = hk(lab, "n1", &["status", "--node", "n1"])?;
            ensure!(
                human.stdout.contains("MAINTENANCE"),
                "human status: {}",
                human.stdout
            );
            let ran = hk(lab, "n1", &["check", GROUP, "--json", "--node", "n1"])?;
            let failing_check = ran.json()?;
            let failed: Vec<String> = failing_check["results"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| r["ok"] == false)
                        .map(|r| r["check"].as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default();
            ensure!(
                ran.code == 1
                    && failing_check["ok"] == false
                    && failed.iter().any(|c| c.starts_with("script:")),
                "check with the service down: {}",
                ran.describe()
            );
            ensure_valid_check(&[
                ("check on the healthy master", &healthy_check),
                ("check on the healthy backup", &backup_check),
                ("check with the service down", &failing_check),
            ])?;
            let ran = hk(lab, "n1", &["release", GROUP])?;
            ensure!(
                ran.code == 1 && ran.stderr.contains("maintenance"),
                "release in maintenance: {}",
                ran.describe()
            );
            ensure!(lab.is_active("n1"), "the refused release changed something");

            // maintenance off: the agent acts again and restarts the service.
            let ran = hk(lab, "n1", &["maintenance", "off"])?;
            ensure!(ran.code == 0, "maintenance off: {}", ran.describe());
            let took = lab.wait_only_active("n1", secs(20))?;
            eprintln!("[maintenance] service back {took:.1?} after maintenance off");
            ensure!(
                count_actions(lab, "n1", "restart-start") > restarts_before,
                "no restart step in n1's actions.log"
            );
            wait_until(
                "n1's status is as intended again",
                secs(10),
                ms(200),
                || status(lab, "n1").is_ok_and(|(c, _)| c == 0),
            )?;

            // Per-group maintenance: shown on the group only; an unknown group is refused.
            let ran = hk(lab, "n1", &["maintenance", "on", "--group", GROUP])?;
            ensure!(ran.code == 0, "{}", ran.describe());
            ensure!(lab.node_file_exists("n1", &format!("/var/lib/hakeep/maintenance/{GROUP}")));
            let s = lab.wait("n1's state shows the group in maintenance", secs(10), |l| {
                status(l, "n1")
                    .is_ok_and(|(_, s)| group_of(&s).is_ok_and(|g| g["maintenance"] == true))
            });
            s?;
            let (_, s) = status(lab, "n1")?;
            ensure!(
                s["maintenance"] == false,
                "node-wide maintenance shown: {s}"
            );
            ensure!(hk(lab, "n1", &["release", GROUP])?.code == 1);
            ensure!(hk(lab, "n1", &["maintenance", "off", "--group", GROUP])?.code == 0);
            ensure!(hk(lab, "n1", &["maintenance", "on", "--group", "nope"])?.code == 1);
            lab.check_only_active("n1")
        },
    );
}

fn count_actions(lab: &Lab, node: &str, action: &str) -> usize {
    parse_actions(&lab.actions_log(node))
        .iter()
        .filter(|a| a.group == GROUP && a.action == action)
        .count()
}

// ---------------------------------------------------------------------------------------
// 3. status --json against the schema; exit codes

/// Scenario 3: `status --json` (this node and `--all-nodes`) validates against
/// docs/status.schema.json in every state the test drives: healthy (exit 0), a service
/// broken while in maintenance (desired ≠ actual, exit 1), the agent killed (exit 2).
#[test]
fn status_json_matches_the_schema_and_exit_codes_mean_what_docs_say() {
    scenario("status_schema", Lab::builder().ssh(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        wait_eligible(lab, "n2", CONVERGE)?;
        // HTTP answers through the VIP before the agent's take has ended (the start script
        // is still confirming): wait, bounded, until both agents say so too.
        let mut healthy = None;
        let waited = wait_until("both nodes' status exits 0", CONVERGE, ms(100), || {
            match (status(lab, "n1"), status(lab, "n2")) {
                (Ok((0, h1)), Ok((0, h2))) => {
                    healthy = Some((h1, h2));
                    true
                }
                _ => false,
            }
        });
        let (healthy1, healthy2) = match (waited, healthy) {
            (Ok(_), Some(h)) => h,
            (e, _) => {
                let (c1, s1) = status(lab, "n1")?;
                let (c2, s2) = status(lab, "n2")?;
                bail!("healthy: exit {c1} and {c2} ({e:?}): n1 {s1}; n2 {s2}");
            }
        };
        // The documents carry the parts the schema describes (not just empty lists).
        let g1 = group_of(&healthy1)?;
        ensure!(
            g1["ok"] == true
                && g1["vrrp_state"] == "MASTER"
                && g1["actual"] == "active"
                && g1["resources"].as_array().is_some_and(|r| r.len() >= 3)
                && g1["floating_ips"][0]["present"] == true
                && g1["last_transition"]["steps"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
            "n1's healthy status: {g1}"
        );
        let g2 = group_of(&healthy2)?;
        ensure!(
            g2["ok"] == true
                && g2["vrrp_state"] == "BACKUP"
                && g2["floating_ips"][0]["present"] == false,
            "n2's healthy status: {g2}"
        );
        human_status_has_its_layout(lab)?;
        let all = hk(
            lab,
            "n1",
            &["status", "--json", "--all-nodes", "--node", "n1"],
        )?;
        let healthy_all = all.json()?;
        ensure!(all.code == 0, "--all-nodes healthy: {}", all.describe());
        let p = placement_of(&healthy_all)?;
        ensure!(
            names(&p["active_on"]) == ["n1"] && p.get("alarm").is_none(),
            "placement: {p}"
        );
        for n in ["n1", "n2"] {
            let node = node_of(&healthy_all, n)?;
            ensure!(
                node.get("error").is_none() && node["agent_running"] == true,
                "{n} in --all-nodes: {node}"
            );
        }
        // The validator itself rejects what the schema forbids (it does check).
        let mut broken = healthy1.clone();
        broken["surprise"] = Value::from(1);
        let mut broken_group = healthy1.clone();
        broken_group["groups"][0]["vrrp_state"] = Value::from("PRIMARY");
        json_schema::ensure_rejected(
            &json_schema::schema("status.schema.json"),
            &[("extra key", &broken), ("bad state", &broken_group)],
        )?;

        // Exit 1: maintenance on, the service broken by hand; desired active ≠ actual.
        ensure!(hk(lab, "n1", &["maintenance", "on"])?.code == 0);
        let script = lab.service_script.display().to_string();
        ensure!(lab.exec("n1", &[&script, "stop"])?.status.success());
        let mut wrong = Value::Null;
        lab.wait(
            "n1's status exits 1 (service down in maintenance)",
            secs(15),
            |l| {
                status(l, "n1").is_ok_and(|(c, s)| {
                    wrong = s;
                    c == 1
                })
            },
        )?;
        let g = group_of(&wrong)?;
        ensure!(
            g["desired"] == "active" && g["actual"] != "active" && g["ok"] == false,
            "{g}"
        );

        // Exit 2: the agent is dead (its state file stays behind).
        lab.kill_agent("n1")?;
        let (code, dead) = status(lab, "n1")?;
        ensure!(
            code == 2 && dead["agent_running"] == false && dead["error"].is_string(),
            "status with the agent killed (exit {code}): {dead}"
        );
        let human = hk(lab, "n1", &["status", "--node", "n1"])?;
        ensure!(human.code == 2, "human status exit: {}", human.describe());
        // Seen from n2, n1 is "cannot tell", so the group is active on no node it can see.
        let all = hk(
            lab,
            "n2",
            &["status", "--json", "--all-nodes", "--node", "n2"],
        )?;
        let dead_all = all.json()?;
        let p = placement_of(&dead_all)?;
        ensure!(
            names(&p["unknown_on"]) == ["n1"] && p["alarm"].is_string() && all.code == 1,
            "--all-nodes from n2 with n1's agent dead: {}",
            all.describe()
        );

        ensure_valid(&[
            ("n1 healthy", &healthy1),
            ("n2 healthy", &healthy2),
            ("--all-nodes healthy", &healthy_all),
            ("n1 broken in maintenance", &wrong),
            ("n1 agent dead", &dead),
            ("--all-nodes with n1's agent dead", &dead_all),
        ])
    });
}

/// n1's human status, healthy: a line per group, under it an indented line per resource
/// and floating IP, the last transition in a named zone; with COLUMNS=60, no line wider
/// and nothing of it lost.
fn human_status_has_its_layout(lab: &Lab) -> Result<()> {
    let human = hk(lab, "n1", &["status", "--node", "n1"])?;
    let lines: Vec<&str> = human.stdout.lines().collect();
    let show = || format!("exit {}:\n{}", human.code, human.stdout);
    ensure!(human.code == 0, "human status of n1: {}", show());
    ensure!(
        lines.iter().any(|l| l.starts_with(&format!("{GROUP} "))
            && l.contains("MASTER")
            && l.contains(" OK ")),
        "no group line: {}",
        show()
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("  ip:{VIP}/24 ")) && l.ends_with(" present")),
        "no floating IP line: {}",
        show()
    );
    let resources = lines
        .iter()
        .filter(|l| {
            (l.starts_with("  mount:") || l.starts_with("  script:") || l.starts_with("  volume:"))
                && (l.ends_with(" active") || l.ends_with(" n/a"))
        })
        .count();
    ensure!(resources >= 3, "not a line per resource: {}", show());
    ensure!(
        lines.iter().any(|l| {
            l.starts_with("  last transition: 20")
                && l.contains(" ago) to active")
                && l.split_whitespace().nth(4).is_some_and(|z| {
                    z.chars()
                        .all(|c| c.is_ascii_uppercase() || "+-0123456789".contains(c))
                })
        }),
        "no last transition with a named zone: {}",
        show()
    );
    let narrow = Ran::from(lab.hakeep_columns("n1", 60, &["status", "--node", "n1"])?);
    ensure!(
        narrow.code == 0 && narrow.stdout.lines().all(|l| l.chars().count() <= 60),
        "COLUMNS=60: {}",
        narrow.describe()
    );
    // The transition's line wrapped, its words all there (its time: the first five).
    let words = |s: &str, n: usize| s.split_whitespace().take(n).collect::<Vec<_>>().join(" ");
    let narrow_words = words(&narrow.stdout, usize::MAX);
    ensure!(
        lines
            .iter()
            .filter(|l| l.starts_with("  last transition: "))
            .all(|l| narrow_words.contains(&words(l, 5))),
        "COLUMNS=60 lost the transition: {}",
        narrow.stdout
    );
    eprintln!("[status] n1, COLUMNS=60:\n{}", narrow.stdout.trim_end());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. --all-nodes over real sshd, an unreachable node, a wrong host key

/// Scenario 4: `status --all-nodes` over real sshd in each node, with a third node `n3` in
/// cluster.yml that is in no group and never started: n3 is shown unreachable while the
/// group is active on exactly one node. Exit code: 2. docs/cli.md: "Exit 1 on any alarm
/// or node problem, 2 when only 'cannot tell' remains" — an unreachable node's state
/// cannot be read (the same "cannot tell" as `status` on a node whose agent is down), and
/// n3 being in no group, there is no alarm; so 2. A known_hosts with a wrong key for n2
/// makes n2 unreachable with HOST KEY MISMATCH (the connection is refused, not trusted).
#[test]
fn all_nodes_over_ssh_shows_an_unreachable_node_and_refuses_a_wrong_host_key() {
    let builder = Lab::builder().ssh().extra_node("n3", "10.213.0.13");
    scenario("all_nodes", builder, |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        wait_eligible(lab, "n2", CONVERGE)?;
        for runner in ["n1", "n2"] {
            let t = Instant::now();
            let ran = hk(
                lab,
                runner,
                &["status", "--json", "--all-nodes", "--node", runner],
            )?;
            let took = t.elapsed();
            let s = ran.json()?;
            let what = format!("--all-nodes on {runner} ({took:.1?})");
            ensure!(ran.code == 2, "{what}: exit {}: {s}", ran.code);
            for n in ["n1", "n2"] {
                let node = node_of(&s, n)?;
                ensure!(
                    node.get("error").is_none()
                        && node["agent_running"] == true
                        && node["keepalived_running"] == true
                        && group_of(node).is_ok(),
                    "{what}: {n}: {node}"
                );
            }
            let n3 = node_of(&s, "n3")?;
            ensure!(
                n3["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("unreachable")),
                "{what}: n3: {n3}"
            );
            let p = placement_of(&s)?;
            ensure!(
                names(&p["active_on"]) == ["n1"]
                    && names(&p["unknown_on"]).is_empty()
                    && p.get("alarm").is_none(),
                "{what}: placement {p}"
            );
            ensure!(
                took < secs(SSH_CONNECT_TIMEOUT + 8),
                "{what}: too slow for a {SSH_CONNECT_TIMEOUT} s connect timeout"
            );
            eprintln!("[all_nodes] {what}: n3 {}", n3["error"]);
            if runner == "n1" {
                ensure_valid(&[("--all-nodes with n3 unreachable", &s)])?;
            }
        }
        // The peers were really asked over SSH: their sshd logged the client key's logins.
        for n in ["n1", "n2"] {
            ensure!(
                lab.sshd_output(n).contains("Accepted publickey for root"),
                "{n}'s sshd logged no login:\n{}",
                lab.sshd_output(n)
            );
        }
        // That key is authorized as roles/hakeep does it, for the peer requests only: a
        // shell command with it is refused by the forced command (`hakeep peer-command`).
        let files = lab.ssh.clone().context("ssh files")?;
        let shell = lab.exec(
            "n1",
            &[
                "ssh",
                "-i",
                &files.identity_file.display().to_string(),
                "-o",
                "BatchMode=yes",
                "-o",
                &format!("UserKnownHostsFile={}", files.known_hosts.display()),
                &format!("root@{}", lab.node("n2").address),
                "id",
            ],
        )?;
        let (out, err) = (
            String::from_utf8_lossy(&shell.stdout),
            String::from_utf8_lossy(&shell.stderr),
        );
        ensure!(
            shell.status.code() == Some(1) && err.contains("refused") && !out.contains("uid="),
            "ssh n2 id with the peer key: {:?}: {out} {err}",
            shell.status
        );
        eprintln!("[all_nodes] ssh n2 id: {}", err.trim());
        let human = hk(lab, "n1", &["status", "--all-nodes", "--node", "n1"])?;
        let n3_line = human
            .stdout
            .lines()
            .find(|l| l.starts_with("n3 "))
            .unwrap_or("");
        ensure!(
            human.code == 2 && n3_line.contains("unreachable"),
            "human --all-nodes: {}",
            human.describe()
        );
        // Then each node as `status` shows it there: n1 and n2 with their groups, n3 why not.
        for (section, group_line) in [
            ("node n1 (cluster hkt)", "MASTER"),
            ("node n2 (cluster hkt)", "BACKUP"),
        ] {
            let after: Vec<&str> = human
                .stdout
                .lines()
                .skip_while(|l| !l.starts_with(section))
                .take_while(|l| !l.is_empty())
                .collect();
            ensure!(
                after
                    .iter()
                    .any(|l| l.starts_with(&format!("{GROUP} ")) && l.contains(group_line))
                    && after
                        .iter()
                        .any(|l| l.starts_with(&format!("  ip:{VIP}/24 "))),
                "no section {section:?} with its group and floating IP: {}",
                human.stdout
            );
        }
        ensure!(
            human
                .stdout
                .lines()
                .any(|l| l.starts_with("node n3: unreachable")),
            "no section for n3: {}",
            human.stdout
        );
        eprintln!("[all_nodes] human output:\n{}", human.stdout.trim_end());

        // A wrong host key for n2: refused, shown as such.
        let known = std::fs::read_to_string(&files.known_hosts)?;
        let n2_addr = lab.node("n2").address.clone();
        let wrong = lab.new_public_key("not-n2")?;
        let bad_known: String = known
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{n2_addr} ")) {
                    format!("{n2_addr} {wrong}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        ensure!(
            bad_known != known,
            "n2 is not in {}",
            files.known_hosts.display()
        );
        let bad_path = lab.write_lab_file("known_hosts.wrong-n2", &bad_known)?;
        let yml = lab.cluster_yml().replace(
            &format!("known_hosts: {}", files.known_hosts.display()),
            &format!("known_hosts: {}", bad_path.display()),
        );
        ensure!(yml.contains(&bad_path.display().to_string()));
        let bad_config = lab.write_lab_file("cluster.wrong-n2-key.yml", &yml)?;
        let logins = |l: &Lab| {
            l.sshd_output("n2")
                .matches("Accepted publickey for root")
                .count()
        };
        let logins_before = logins(lab);
        let ran = Ran::from(lab.hakeep_with(
            "n1",
            &bad_config,
            &["status", "--json", "--all-nodes", "--node", "n1"],
            secs(60),
        )?);
        let s = ran.json()?;
        let n2 = node_of(&s, "n2")?;
        ensure!(
            n2["error"]
                .as_str()
                .is_some_and(|e| e.contains("HOST KEY MISMATCH"))
                && n2["groups"].as_array().is_some_and(|g| g.is_empty()),
            "n2 with a wrong host key: {n2}"
        );
        let p = placement_of(&s)?;
        ensure!(
            names(&p["active_on"]) == ["n1"] && names(&p["unknown_on"]) == ["n2"],
            "placement with n2 unknown: {p}"
        );
        ensure!(
            ran.code == 2,
            "exit with n2 and n3 unknown: {}",
            ran.describe()
        );
        // Refused before authenticating: n2's sshd saw no login from that run.
        sleep(ms(200));
        ensure!(
            logins(lab) == logins_before,
            "n2's sshd accepted a login although the host key did not match"
        );
        eprintln!("[all_nodes] wrong key for n2: {}", n2["error"]);
        Ok(())
    });
}
