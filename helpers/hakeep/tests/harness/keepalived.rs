//! keepalived in a node: started in the foreground with its log in the lab directory,
//! crashed like a kill -9 of the whole daemon, powered off with the link, stopped the
//! orderly way; its state from its log; the baseline's notify-script log.

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use rustix::process::Signal;

use super::process::{all_pids, gone_or_zombie, ppid, run_wait, signal, text, wait_until};
use super::{Lab, GROUP, IFACE};

pub const KEEPALIVED_PID: &str = "/run/keepalived.pid";
/// Pid file of keepalived's VRRP child (`--vrrp_pid`).
pub const KEEPALIVED_VRRP_PID: &str = "/run/keepalived_vrrp.pid";

/// Baseline labs ([`LabBuilder::baseline`](super::LabBuilder::baseline)): the notify script
/// inside each node (root's, in the node's private /run, so keepalived's script security
/// accepts it) and its log.
pub const BASELINE_SCRIPT: &str = "/run/hakeep-baseline/notify";
#[allow(dead_code, reason = "only benches/failover.rs uses it")]
pub const BASELINE_LOG: &str = "/var/log/hakeep-baseline.log";

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

impl Lab {
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
}
