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

/// The longest dump read (an instance is a few hundred bytes).
const MAX_DUMP: u64 = 4 << 20;
/// File times come from a coarse clock: a dump written just after the signal may carry a
/// time a few milliseconds before it.
const CLOCK_SLACK: Duration = Duration::from_millis(50);

/// Asks keepalived for a JSON dump and returns each instance's state.
/// `None` when keepalived is not running or did not answer in time.
///
/// The dump is read where keepalived wrote it: `/proc/PID/root` + `json_dump`, so with
/// keepalived in a private /tmp (the keepalived role sets PrivateTmp) no other user can
/// even reach the file. Wherever it lives, it is believed only when it is a regular file
/// (not followed through a symlink), owned by root, with one link, written after the
/// signal was sent: a file any other account planted, or an old dump, is never read.
pub fn dump_states(
    runner: &dyn Runner,
    paths: &Paths,
    timeout: Duration,
) -> Option<HashMap<String, VrrpState>> {
    let pid = running_pid(paths)?;
    let signum = json_signal(runner)?;
    let dump = dump_path(paths, pid);
    let signal =
        <rustix::process::Signal as rustix_libc_wrappers::process::SignalExt>::from_raw(signum)?;
    let target = rustix::process::Pid::from_raw(pid)?;
    let sent = SystemTime::now();
    rustix::process::kill_process(target, signal).ok()?;
    let started = Instant::now();
    let mut refused: Option<String> = None;
    while started.elapsed() < timeout {
        match read_fresh(&dump, sent) {
            Ok(Some(text)) => {
                if let Some(states) = parse_dump(&text) {
                    return Some(states);
                }
            }
            Ok(None) => {}
            Err(why) => {
                if refused.as_deref() != Some(why.as_str()) {
                    log::warn!("not reading {}: {why}", dump.display());
                    refused = Some(why);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// keepalived's dump as keepalived's own mount namespace has it.
pub fn dump_path(paths: &Paths, pid: i32) -> PathBuf {
    let inside = paths
        .json_dump
        .strip_prefix("/")
        .unwrap_or(&paths.json_dump);
    paths
        .proc_root
        .join(pid.to_string())
        .join("root")
        .join(inside)
}

/// The dump's text if it is trustworthy and written after `sent`; `Ok(None)` while it is
/// missing or older; `Err` when something is there that must not be believed.
fn read_fresh(path: &Path, sent: SystemTime) -> Result<Option<String>, String> {
    use rustix::fs::{fstat, open, FileType, Mode, OFlags};
    use std::io::Read;
    let fd = match open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err("it is a symlink".into()),
        Err(e) => return Err(format!("opening it: {e}")),
    };
    let st = fstat(&fd).map_err(|e| format!("fstat: {e}"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("it is not a regular file".into());
    }
    if st.st_uid != 0 {
        return Err(format!("it is owned by uid {}, not root", st.st_uid));
    }
    if st.st_nlink != 1 {
        return Err(format!("it has {} links", st.st_nlink));
    }
    let written =
        std::time::UNIX_EPOCH + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    if written + CLOCK_SLACK < sent {
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_DUMP)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading it: {e}"))?;
    Ok(Some(text))
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

    /// What a local account could leave where the dump is read is never believed.
    #[test]
    fn only_a_fresh_root_owned_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keepalived.json");
        let before = SystemTime::now() - Duration::from_secs(60);
        std::fs::write(&path, "[]").unwrap();
        assert_eq!(read_fresh(&path, before).unwrap().as_deref(), Some("[]"));
        // Older than the signal: not an answer (yet).
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(read_fresh(&path, later).unwrap(), None);
        // A second link (a hard link planted elsewhere) is refused.
        std::fs::hard_link(&path, dir.path().join("other")).unwrap();
        assert!(read_fresh(&path, before).unwrap_err().contains("links"));
        std::fs::remove_file(dir.path().join("other")).unwrap();
        // A symlink is refused, whatever it points at.
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read_fresh(&link, before).unwrap_err().contains("symlink"));
        // Owned by another account (tests run as root: give it away).
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            assert!(read_fresh(&path, before).unwrap_err().contains("uid 65534"));
        }
        assert_eq!(
            read_fresh(&dir.path().join("missing"), before).unwrap(),
            None
        );
    }

    #[test]
    fn the_dump_is_read_in_keepalived_s_own_root() {
        let paths = Paths::default();
        assert_eq!(
            dump_path(&paths, 812),
            PathBuf::from("/proc/812/root/tmp/keepalived.json")
        );
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
