//! Reading keepalived's state without its events: is it running, and what does its
//! SIGJSON dump say each instance is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::exec::{Cmd, Runner};

use super::notify::VrrpState;

/// Where keepalived looks things up; tests point these elsewhere.
#[derive(Debug, Clone)]
pub struct Paths {
    pub pid_file: PathBuf,
    pub json_dump: PathBuf,
    pub proc_root: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            pid_file: PathBuf::from("/run/keepalived.pid"),
            json_dump: PathBuf::from("/tmp/keepalived.json"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// The pid of keepalived's main process, when it runs.
pub fn running_pid(paths: &Paths) -> Option<i32> {
    let text = std::fs::read_to_string(&paths.pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    if pid <= 1 {
        return None;
    }
    let comm = std::fs::read_to_string(paths.proc_root.join(pid.to_string()).join("comm")).ok()?;
    (comm.trim() == "keepalived").then_some(pid)
}

/// Asks keepalived for a JSON dump and returns each instance's state.
/// `None` when keepalived is not running or did not answer in time.
pub fn dump_states(
    runner: &dyn Runner,
    paths: &Paths,
    timeout: Duration,
) -> Option<HashMap<String, VrrpState>> {
    let pid = running_pid(paths)?;
    let signum = json_signal(runner)?;
    let before = modified(&paths.json_dump);
    let signal =
        <rustix::process::Signal as rustix_libc_wrappers::process::SignalExt>::from_raw(signum)?;
    let target = rustix::process::Pid::from_raw(pid)?;
    rustix::process::kill_process(target, signal).ok()?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        let now = modified(&paths.json_dump);
        if now.is_some() && now != before {
            // keepalived writes the file in one go, but give it a moment to finish.
            std::thread::sleep(Duration::from_millis(5));
            if let Ok(text) = std::fs::read_to_string(&paths.json_dump) {
                if let Some(states) = parse_dump(&text) {
                    return Some(states);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// keepalived's JSON signal number (it varies by build), asked once per process.
fn json_signal(runner: &dyn Runner) -> Option<i32> {
    static SIGNUM: std::sync::OnceLock<Option<i32>> = std::sync::OnceLock::new();
    *SIGNUM.get_or_init(|| {
        let out = runner
            .run_ok(&Cmd::new(
                ["keepalived", "--signum=JSON"],
                Duration::from_secs(5),
            ))
            .ok()?;
        out.stdout.trim().parse().ok()
    })
}

/// Parses a dump: `[{"data": {"iname": "nfs", "state": 2, ...}, ...}, ...]`.
pub fn parse_dump(text: &str) -> Option<HashMap<String, VrrpState>> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut states = HashMap::new();
    for entry in value.as_array()? {
        let data = entry.get("data")?;
        let name = data.get("iname")?.as_str()?;
        let state = match data.get("state")?.as_u64()? {
            1 => VrrpState::Backup,
            2 => VrrpState::Master,
            3 => VrrpState::Fault,
            _ => VrrpState::Unknown,
        };
        states.insert(name.to_string(), state);
    }
    Some(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dump() {
        let text = r#"[{"data":{"iname":"nfs","state":2,"effective_priority":200}},
                       {"data":{"iname":"web","state":1}},{"data":{"iname":"db","state":3}}]"#;
        let states = parse_dump(text).unwrap();
        assert_eq!(states["nfs"], VrrpState::Master);
        assert_eq!(states["web"], VrrpState::Backup);
        assert_eq!(states["db"], VrrpState::Fault);
        assert!(parse_dump("{not json").is_none());
    }

    #[test]
    fn not_running_without_a_live_keepalived() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            pid_file: dir.path().join("keepalived.pid"),
            ..Paths::default()
        };
        assert_eq!(running_pid(&paths), None);
        std::fs::write(&paths.pid_file, std::process::id().to_string()).unwrap();
        assert_eq!(running_pid(&paths), None, "our own pid is not keepalived");
    }
}
