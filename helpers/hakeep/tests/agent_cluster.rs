//! Tier 2 (docs/design.md §8): `hakeep agent` on real parts, no Ansible, no mocks. Real
//! keepalived and the real agent per node in network namespaces on a private bridge, a
//! loop device (ext4) as shared storage, a resource-script HTTP service, a client netns
//! that talks to the floating IP. See tests/harness/mod.rs for the lab.
//!
//! Needs root (skipped loudly without it; a failure under CI). Labs share names and are
//! serialized by the harness's lock. `HAKEEP_MEASURE=1` adds the failover measurement.
//!
//!     cargo test --test integration agent_cluster:: -- --nocapture
//!     HAKEEP_MEASURE=1 cargo test --test integration agent_cluster::measure -- --nocapture

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::harness::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Whether some actions.log line of `node` matches.
fn has_action(lab: &Lab, node: &str, action: &str, result: &str) -> bool {
    parse_actions(&lab.actions_log(node))
        .iter()
        .any(|a| a.group == GROUP && a.action == action && a.result == result)
}

/// Checks `check` repeatedly for `period`: a state that must hold, not just be reached.
fn holds_for(period: Duration, mut check: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    loop {
        check().with_context(|| format!("after {:.1?} of {period:?}", start.elapsed()))?;
        if start.elapsed() >= period {
            return Ok(());
        }
        sleep(Duration::from_millis(500));
    }
}

// ---------------------------------------------------------------------------------------
// The harness itself, with keepalived only (passes without the agent)

/// The lab's parts work without the agent: rendered configs elect n1 and move the VIP
/// when keepalived crashes; private /run and /tmp per node; the loop device is the same
/// device in both nodes and a mount in one node is invisible elsewhere; link down/up.
#[test]
fn harness_keepalived_moves_the_vip_between_node_namespaces() {
    scenario("harness", Lab::builder().without_agent(), |lab| {
        lab.wait("n1 alone has the VIP", secs(15), |l| {
            l.has_vip("n1") && !l.has_vip("n2")
        })?;

        // Private /run and /tmp per node; keepalived's JSON dump lands in the node's /tmp.
        lab.write_node_file("n1", "/run/hakeep-test-probe", "n1")?;
        ensure!(!lab.node_file_exists("n2", "/run/hakeep-test-probe"));
        ensure!(!std::path::Path::new("/run/hakeep-test-probe").exists());
        let signum = run_ok(&["keepalived", "--signum=JSON"])?;
        let pid = lab
            .read_node_file("n1", KEEPALIVED_PID)
            .context("n1 keepalived pid")?;
        run_ok(&["kill", "-s", signum.trim(), pid.trim()])?;
        lab.wait("n1's keepalived dumps JSON into n1's /tmp", secs(10), |l| {
            l.read_node_file("n1", "/tmp/keepalived.json")
                .is_some_and(|j| j.contains("\"iname\":\"web\""))
        })?;
        ensure!(!lab.node_file_exists("n2", "/tmp/keepalived.json"));

        // Shared storage: the same /dev/loopN everywhere, mounts private to a node.
        let dev = lab.loop_dev.clone().context("loop device")?;
        let out = lab.exec("n1", &["mount", "-t", "ext4", &dev, MOUNTPOINT])?;
        ensure!(out.status.success(), "mount in n1: {out:?}");
        ensure!(lab.has_mount("n1") && !lab.has_mount("n2"));
        let host = std::fs::read_to_string("/proc/self/mountinfo")?;
        ensure!(
            !host.contains(MOUNTPOINT),
            "the node's mount leaks into the host"
        );
        let index = lab
            .read_node_file("n1", &format!("{MOUNTPOINT}/www/index.html"))
            .unwrap_or_default();
        ensure!(index.contains(CONTENT), "fixture content: {index:?}");
        ensure!(lab.exec("n1", &["umount", MOUNTPOINT])?.status.success());
        ensure!(lab
            .exec("n2", &["mount", "-t", "ext4", &dev, MOUNTPOINT])?
            .status
            .success());
        ensure!(lab.has_mount("n2") && !lab.has_mount("n1"));
        ensure!(lab.exec("n2", &["umount", MOUNTPOINT])?.status.success());

        // The client reaches the nodes over the bridge.
        let ping = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.client_ns))
            .args(["--", "ping", "-c", "1", "-W", "2", VIP])
            .stdout(Stdio::null())
            .status()?;
        ensure!(ping.success(), "the client cannot ping the VIP");

        // A crash of n1's keepalived: n2 takes the VIP; n1 keeps its copy (nobody removes
        // it: that is the agent's job when keepalived is dead).
        lab.crash_keepalived("n1")?;
        let took = lab.wait("n2 has the VIP", secs(15), |l| l.has_vip("n2"))?;
        eprintln!("[harness] VIP on n2 {took:.1?} after n1's keepalived crashed");
        ensure!(
            lab.has_vip("n1"),
            "n1 lost the VIP with no one to remove it"
        );

        // n1's keepalived restarts: it drops its VIPs and stays BACKUP (nopreempt).
        lab.start_keepalived("n1")?;
        lab.wait("n1 is BACKUP without the VIP", secs(15), |l| {
            l.keepalived_state("n1").as_deref() == Some("BACKUP") && !l.has_vip("n1")
        })?;
        ensure!(lab.has_vip("n2"));

        // n2's link down: n1 becomes MASTER; link up: the split resolves to one holder.
        lab.set_link("n2", false)?;
        lab.wait("n1 takes the VIP while n2 is cut off", secs(15), |l| {
            l.has_vip("n1")
        })?;
        lab.set_link("n2", true)?;
        lab.wait("exactly one node has the VIP", secs(15), |l| {
            l.has_vip("n1") != l.has_vip("n2")
        })?;
        holds_for(secs(3), || {
            ensure!(lab.has_vip("n1") != lab.has_vip("n2"), "{}", lab.summary());
            Ok(())
        })
    });
}

/// A killed earlier run left a netns with a process holding a mounted loop device in its
/// private mount namespace, a bridge, a veth and files: the cleanup removes them all.
#[test]
fn harness_removes_leftovers_of_a_killed_run() {
    if !require_root("harness_removes_leftovers_of_a_killed_run") {
        return;
    }
    let guard = lock();
    // No process has this pid (above any pid_max), so its owner is dead.
    let id = format!("{PREFIX}9999999");
    let dir = format!("{ROOT_DIR}/9999999");
    let (ns, br, veth) = (format!("{id}-n1"), format!("{id}-br"), format!("{id}-1"));
    let build = || -> Result<std::process::Child> {
        std::fs::create_dir_all(&dir)?;
        let image = format!("{dir}/disk.img");
        std::fs::File::create(&image)?.set_len(16 << 20)?;
        run_ok(&["mkfs.ext4", "-q", "-F", &image])?;
        let dev = run_ok(&["losetup", "--find", "--show", &image])?;
        run_ok(&["ip", "netns", "add", &ns])?;
        run_ok(&["ip", "link", "add", &br, "type", "bridge"])?;
        run_ok(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", IFACE, "netns", &ns,
        ])?;
        run_ok(&["ip", "link", "set", &veth, "master", &br, "up"])?;
        let holder = Command::new("ip")
            .args(["netns", "exec", &ns, "unshare", "--mount", "--propagation"])
            .args(["private", "--", "/bin/sh"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/node-holder.sh"
            ))
            .args(["n1", MOUNTPOINT])
            .stdin(Stdio::null())
            .spawn()?;
        let pid = holder.id();
        wait_until(
            "the leftover holder is ready",
            secs(10),
            Duration::from_millis(20),
            || std::path::Path::new(&format!("/proc/{pid}/root/run/hakeep-test-ready")).exists(),
        )?;
        let mounted = Command::new("nsenter")
            .args(["--target", &pid.to_string(), "--mount", "--"])
            .args(["mount", "-t", "ext4", dev.trim(), MOUNTPOINT])
            .status()?;
        ensure!(mounted.success(), "mounting the leftover loop device");
        Ok(holder)
    };
    let mut holder = match build() {
        Ok(h) => h,
        Err(e) => {
            let _ = cleanup_leftovers(&guard);
            panic!("building fake leftovers: {e:#}");
        }
    };
    let result = cleanup_leftovers(&guard);
    let _ = holder.wait(); // killed by the cleanup; reap it
    result.expect("cleanup of leftovers");
    let netns = run_ok(&["ip", "netns", "list"]).unwrap();
    assert!(!netns.contains(&ns), "netns left: {netns}");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{br}")).exists());
    assert!(!std::path::Path::new(&format!("/sys/class/net/{veth}")).exists());
    let loops = run_ok(&["losetup", "--list"]).unwrap();
    assert!(!loops.contains(&dir), "loop device left: {loops}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
}

// ---------------------------------------------------------------------------------------
// Scenarios with the agent

/// Scenario 1: election: exactly one node is active — the shared device mounted there only,
/// the VIP there only, the service answering through the VIP — and it stays that way.
#[test]
fn election_makes_exactly_one_node_active() {
    scenario("election", Lab::builder().simultaneous(), |lab| {
        let active = lab.wait_one_active(CONVERGE)?;
        eprintln!("[election] {active} is active");
        holds_for(secs(4), || lab.check_only_active(&active))
    });
}

/// Scenario 2: failover: the master's keepalived dies (kill -9) and its link goes down; the
/// peer becomes active. When the old master's link is back, it holds nothing.
#[test]
fn failover_to_the_peer_and_the_old_master_returns_empty() {
    scenario("failover", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let start = Instant::now();
        lab.crash_keepalived("n1")?;
        lab.set_link("n1", false)?;
        lab.wait("n2 is active and serves through the VIP", CONVERGE, |l| {
            l.is_active("n2") && l.serving_node().as_deref() == Some("n2")
        })?;
        eprintln!(
            "[failover] n2 serves {:.1?} after the crash",
            start.elapsed()
        );
        lab.set_link("n1", true)?;
        lab.wait("n1 (link back) holds no mount and no VIP", CONVERGE, |l| {
            !l.has_mount("n1") && !l.has_vip("n1")
        })?;
        holds_for(secs(5), || {
            ensure!(
                !lab.has_mount("n1"),
                "the old master mounts the device again"
            );
            ensure!(!lab.has_vip("n1"), "the old master has the VIP again");
            lab.check_only_active("n2")
        })
    });
}

/// Scenario 3: failed start: the service can't start on the preferred node; it rolls back,
/// goes FAULT through the track file, the peer serves, and after the hold-down the
/// preferred node stays out (BACKUP, nothing mounted) instead of ping-ponging.
#[test]
fn failed_start_rolls_back_faults_and_the_peer_serves() {
    let lab = Lab::builder().node_file("n1", FAIL_START_MARKER, "set by the test\n");
    scenario("failed_start", lab, |lab| {
        lab.wait_only_active("n2", CONVERGE)?;
        let log = lab.actions_log("n1");
        ensure!(
            has_action(lab, "n1", "take", "error"),
            "n1's actions.log shows no failed take step:\n{log}"
        );
        ensure!(
            parse_actions(&log).iter().any(|a| a.action == "rollback"),
            "n1's actions.log shows no rollback:\n{log}"
        );
        ensure!(
            lab.keepalived_output("n1").contains("Entering FAULT STATE"),
            "n1's keepalived never entered FAULT"
        );
        ensure!(!lab.has_mount("n1"), "n1 kept the mount after rolling back");
        lab.wait(
            "n1 leaves FAULT after the hold-down (track file back to 0)",
            secs(HOLD_DOWN + 20),
            |l| {
                l.keepalived_state("n1").as_deref() == Some("BACKUP")
                    && l.track_file("n1").is_some_and(|t| t.trim() == "0")
            },
        )?;
        holds_for(secs(3), || lab.check_only_active("n2"))
    });
}

/// Scenario 4: busy mountpoint: a process sits in the mountpoint of the active node; a
/// release (its keepalived dies, so the agent goes standby) still completes: the holder is
/// killed, the mount is gone, and the peer takes over.
#[test]
fn release_with_a_busy_mountpoint_kills_the_holder_and_unmounts() {
    scenario("busy_mountpoint", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let sleeper = lab.spawn_in(
            "n1",
            "sleeper in the mountpoint",
            &["/bin/sh", "-c", "cd /srv/hakeep-test && exec sleep 600"],
        )?;
        let cwd = format!("/proc/{sleeper}/cwd");
        lab.wait("the sleeper's cwd is the mountpoint", secs(10), |l| {
            l.exec("n1", &["readlink", &cwd])
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == MOUNTPOINT)
        })?;
        lab.crash_keepalived("n1")?;
        let took = lab.wait("n1 unmounts and the sleeper is killed", CONVERGE, |l| {
            !l.has_mount("n1") && gone_or_zombie(sleeper)
        })?;
        eprintln!("[busy_mountpoint] released {took:.1?} after the crash");
        ensure!(lab.spawned_exited(sleeper), "the sleeper still runs");
        ensure!(
            has_action(lab, "n1", "release", "ok"),
            "n1's actions.log shows no successful release step:\n{}",
            lab.actions_log("n1")
        );
        lab.wait_only_active("n2", CONVERGE)?;
        Ok(())
    });
}

/// Scenario 5a: the agent on the standby is killed; its node becomes MASTER without it
/// (nothing is taken); the restarted agent converges: mounted, VIP, HTTP.
#[test]
fn agent_killed_on_the_standby_converges_after_restart() {
    scenario("agent_crash_standby", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        lab.kill_agent("n2")?;
        lab.crash_keepalived("n1")?;
        lab.wait("n2's keepalived is MASTER with the VIP", CONVERGE, |l| {
            l.keepalived_state("n2").as_deref() == Some("MASTER") && l.has_vip("n2")
        })?;
        sleep(secs(1));
        ensure!(!lab.has_mount("n2"), "n2 mounted while its agent was dead?");
        lab.start_agent("n2")?;
        let took = lab.wait_only_active("n2", CONVERGE)?;
        eprintln!("[agent_crash_standby] converged {took:.1?} after the restart");
        Ok(())
    });
}

/// Scenario 5c: an agent restart on the active node moves nothing: the same server process
/// keeps serving, the mount stays, and the agent logs no step.
#[test]
fn agent_restart_on_the_active_node_moves_nothing() {
    scenario("agent_restart_active", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let server = |lab: &Lab| -> Option<u32> {
            lab.processes("n1")
                .into_iter()
                .find(|(_, c)| c.contains("http.server"))
                .map(|(p, _)| p)
        };
        let before = server(lab).context("no http.server on n1")?;
        let steps_before = parse_actions(&lab.actions_log("n1")).len();
        lab.kill_agent("n1")?;
        lab.start_agent("n1")?;
        // Past the agent's first resync and its first full JSON dump.
        holds_for(secs(8), || {
            lab.check_only_active("n1")?;
            ensure!(
                server(lab) == Some(before),
                "the server process changed: {before} -> {:?}",
                server(lab)
            );
            Ok(())
        })?;
        let steps_after = parse_actions(&lab.actions_log("n1")).len();
        ensure!(
            steps_after == steps_before,
            "the restarted agent ran {} step(s):\n{}",
            steps_after - steps_before,
            lab.actions_log("n1")
        );
        Ok(())
    });
}

/// Scenario 5b: the agent is killed in the middle of a takeover (filesystem mounted,
/// service start under way); the restarted agent converges, with one server running.
#[test]
fn agent_killed_mid_takeover_converges_after_restart() {
    let lab = Lab::builder().node_file("n2", SLOW_START_MARKER, "6\n");
    scenario("agent_crash_mid_takeover", lab, |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        lab.crash_keepalived("n1")?;
        lab.wait("n2's service start has begun", CONVERGE, |l| {
            l.node_file_exists("n2", START_BEGAN_MARKER)
        })?;
        ensure!(lab.has_mount("n2"), "n2 starts its service before mounting");
        lab.kill_agent("n2")?;
        lab.remove_node_file("n2", SLOW_START_MARKER)?;
        lab.start_agent("n2")?;
        let took = lab.wait_only_active("n2", CONVERGE)?;
        eprintln!("[agent_crash_mid_takeover] converged {took:.1?} after the restart");
        // The killed agent's start script finishes on its own (and finds the server up).
        lab.wait("no service start is left on n2", secs(20), |l| {
            !l.processes("n2")
                .iter()
                .any(|(_, c)| c.contains("http-service start"))
        })?;
        let servers: Vec<_> = lab
            .processes("n2")
            .into_iter()
            .filter(|(_, c)| c.contains("http.server"))
            .collect();
        ensure!(servers.len() == 1, "servers on n2: {servers:?}");
        lab.check_only_active("n2")
    });
}

/// Scenario 6: garbage on the notify FIFO (random bytes, a 1 MiB line, unknown instances
/// and states, invalid UTF-8, NULs) changes nothing: both agents keep running, no step is
/// taken, the service keeps answering.
#[test]
fn garbage_on_the_notify_fifo_changes_nothing() {
    scenario("garbage_fifo", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let steps_before: Vec<usize> = ["n1", "n2"]
            .iter()
            .map(|n| parse_actions(&lab.actions_log(n)).len())
            .collect();
        let mut chunks: Vec<Vec<u8>> = vec![
            b"INSTANCE \"nope\" MASTER 1\n".to_vec(),
            b"INSTANCE \"nope\" BACKUP 100\nGROUP \"nope\" FAULT\n".to_vec(),
            b"INSTANCE \"web\" EXPLODED 200\n".to_vec(),
            b"INSTANCE \"web\" MASTER not-a-number\n".to_vec(),
            b"INSTANCE web\nINSTANCE\n\"\n\"\"\"\n\n\n   \n\r\n".to_vec(),
            b"\xff\xfe\xfd INSTANCE \"web\" \xc3\x28 MASTER 200\n".to_vec(),
            b"INSTANCE \"w\xffeb\" MASTER 200\n".to_vec(),
            b"INSTANCE \"web\"\0MASTER 200\n\0\0\0\n".to_vec(),
            [
                b"INSTANCE \"".as_slice(),
                &[b'x'; 1 << 20],
                b"\" MASTER 1\n",
            ]
            .concat(),
        ];
        // Random bytes (a fixed xorshift, reproducible), newlines sprinkled in.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let random: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        chunks.push(random);
        chunks.push(b"\n".to_vec());
        for node in ["n1", "n2"] {
            for chunk in &chunks {
                lab.write_fifo(node, chunk)?;
            }
        }
        sleep(secs(2 * RESYNC_INTERVAL + 2));
        for node in ["n1", "n2"] {
            ensure!(lab.agent_running(node), "{node}'s agent died on garbage");
        }
        holds_for(secs(3), || lab.check_only_active("n1"))?;
        let steps_after: Vec<usize> = ["n1", "n2"]
            .iter()
            .map(|n| parse_actions(&lab.actions_log(n)).len())
            .collect();
        ensure!(
            steps_before == steps_after,
            "garbage made the agents act: steps before {steps_before:?}, after {steps_after:?}"
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------
// Scenario 7: measurement (opt-in)

fn median(sorted: &[u64]) -> u64 {
    if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2
    }
}

fn print_table(title: &str, rows: &BTreeMap<String, Vec<u64>>) {
    eprintln!("\n{title}");
    eprintln!(
        "| {:<48} | {:>5} | {:>10} | {:>10} |",
        "what", "n", "median ms", "max ms"
    );
    eprintln!("|{:-<50}|{:->7}|{:->12}|{:->12}|", "", "", "", "");
    for (what, values) in rows {
        let mut v = values.clone();
        v.sort_unstable();
        eprintln!(
            "| {:<48} | {:>5} | {:>10} | {:>10} |",
            what,
            v.len(),
            median(&v),
            v.last().copied().unwrap_or(0)
        );
    }
}

/// 10 failovers, alternating which node's keepalived is crashed (and restarted after),
/// then the per-step durations of actions.log: median and max. No timing assertions.
#[test]
fn measure_failover_steps() {
    if std::env::var("HAKEEP_MEASURE").as_deref() != Ok("1") {
        eprintln!("measure_failover_steps: skipped (opt-in: HAKEEP_MEASURE=1)");
        return;
    }
    scenario("measure", Lab::builder(), |lab| {
        const ROUNDS: usize = 10;
        let fine = Duration::from_millis(50);
        let mut active = lab.wait_one_active(CONVERGE)?;
        let mut wall: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for round in 1..=ROUNDS {
            let victim = active.clone();
            let peer = lab.peer_of(&victim);
            let start = Instant::now();
            lab.crash_keepalived(&victim)?;
            wait_until(&format!("{peer} has the VIP"), CONVERGE, fine, || {
                lab.has_vip(&peer)
            })?;
            let vip = start.elapsed();
            wait_until(&format!("{peer} mounted"), CONVERGE, fine, || {
                lab.has_mount(&peer)
            })?;
            let mounted = start.elapsed();
            wait_until(&format!("{peer} serves"), CONVERGE, fine, || {
                lab.serving_node().as_deref() == Some(peer.as_str())
            })?;
            let served = start.elapsed();
            lab.wait_only_active(&peer, CONVERGE)?;
            let alone = start.elapsed();
            eprintln!(
                "[measure] round {round}: {victim} -> {peer}: VIP {vip:.2?}, \
                 mounted {mounted:.2?}, HTTP {served:.2?}, {victim} clean {alone:.2?}"
            );
            for (what, d) in [
                ("crash -> VIP on peer", vip),
                ("crash -> mounted on peer", mounted),
                ("crash -> HTTP via VIP from peer", served),
                ("crash -> old master clean", alone),
            ] {
                wall.entry(what.to_string())
                    .or_default()
                    .push(d.as_millis() as u64);
            }
            lab.start_keepalived(&victim)?;
            lab.wait(&format!("{victim} rejoins as BACKUP"), CONVERGE, |l| {
                l.keepalived_state(&victim).as_deref() == Some("BACKUP")
            })?;
            lab.check_only_active(&peer)?;
            active = peer;
        }
        let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut errors = 0;
        let bin = format!("{}/bin/", lab.dir.display());
        for node in lab.node_names() {
            for a in parse_actions(&lab.actions_log(&node)) {
                if a.result != "ok" {
                    errors += 1;
                }
                if let Some(ms) = a.duration_ms {
                    let step = a.step.replace(&bin, "");
                    steps
                        .entry(format!("{} {step} ({})", a.action, a.result))
                        .or_default()
                        .push(ms);
                }
            }
        }
        print_table(
            &format!("failover wall times seen by the test, {ROUNDS} rounds (poll 50 ms)"),
            &wall,
        );
        print_table(
            "agent steps from actions.log (both nodes; duration_ms)",
            &steps,
        );
        eprintln!("steps with result other than ok: {errors}\n");
        ensure!(
            !steps.is_empty(),
            "actions.log has no steps with duration_ms"
        );
        Ok(())
    });
}
