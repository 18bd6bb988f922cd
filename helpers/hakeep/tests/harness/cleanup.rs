//! What killed runs leave behind: every netns, link and loop device named (or backed by a
//! file) with the harness's prefix and an owner pid, and the owners' directories under
//! ROOT_DIR. [`cleanup_leftovers`] removes those whose owner is gone; a lab's teardown
//! removes its own the same way ([`purge`]). A live owner (another test or bench process
//! on the machine) keeps its labs.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Result};

use super::process::{kill_all_in, ns_inode, run, run_ok, wait_until};
use super::{PREFIX, ROOT_DIR};

/// The binaries built on this harness: the integration tests (tests/main.rs) and the
/// failover benchmark (benches/failover.rs); cargo names them `<target>-<hash>`.
const HARNESS_USERS: &[&str] = &["integration", "failover"];

/// The pid a harness name belongs to: `hkt-<pid>-...`.
pub(super) fn owner_of_name(name: &str) -> Option<u32> {
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

pub(super) fn is_cargo_test_binary(exe: &Path) -> bool {
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
pub(super) fn owner_of_file(path: &str) -> Option<Option<u32>> {
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
pub(super) fn purge(target: &dyn Fn(Option<u32>) -> bool, extra_ns: &HashSet<u64>) -> Result<()> {
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

/// Removes what killed earlier runs left behind (owners no longer alive, and this
/// process's own earlier labs). Other live test processes' labs are left alone. Needs
/// the lab lock: without it, this process's running lab would count as a leftover.
pub fn cleanup_leftovers(_lock: &MutexGuard<'static, ()>) -> Result<()> {
    purge(&|owner| !owner_alive(owner), &HashSet::new())
}
