//! Running programs and handling processes: a command with a time limit whose daemons
//! cannot hang the caller, bounded waits, and processes and namespaces as /proc shows them
//! (states, parents, command lines, signals, killing everything in a set of namespaces).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, Pid, Signal};

use super::CMD_TIMEOUT;

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
pub(super) fn run_wait(mut child: Child, timeout: Duration) -> Result<Output> {
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

pub(super) fn text(bytes: &[u8]) -> String {
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

pub(super) fn tail(text: &str, lines: usize) -> String {
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

pub(super) fn ns_inode(path: impl AsRef<Path>) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

pub(super) fn all_pids() -> Vec<u32> {
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

pub(super) fn ppid(pid: u32) -> Option<u32> {
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

pub(super) fn signal(pid: u32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = kill_process(p, sig);
    }
}

/// Pids (not ours) whose network or mount namespace is one of `inodes`.
pub(super) fn pids_in_namespaces(inodes: &HashSet<u64>) -> Vec<u32> {
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
pub(super) fn kill_all_in(inodes: &HashSet<u64>) -> Result<()> {
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
