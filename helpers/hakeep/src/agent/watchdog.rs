//! Self-fencing by the node's watchdog device (docs/fencing.md): while this node holds a
//! `fencing: watchdog` group the device is armed, and the agent pets it only while the
//! node is quorate (or still within `quorum.release_timeout` of losing quorum, to release),
//! every worker is alive, and no release of such a group has been failing for longer than
//! that. Otherwise the device resets the node: a node that cannot stop serving is stopped.
//! With no such group held, the device is closed with the magic character (disarmed).
//!
//! An agent that dies or is frozen stops petting too, and a device closed without the
//! magic character keeps counting: a restarted agent must open it within the timeout,
//! which it does at start (before its workers' first pass).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{Cluster, WatchdogSettings};
use crate::exec::{Cmd, Runner};

/// Why a watchdog-fenced group keeps the device armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// The group is (being) taken or held here.
    Holding,
    /// Its release has failed since then; retried until the release timeout.
    ReleaseFailing(Instant),
}

pub struct Watchdog {
    settings: WatchdogSettings,
    release_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    device: Option<File>,
    claims: HashMap<String, Claim>,
    /// When quorum was lost (or, at start, when the agent began not knowing it).
    quorum_lost_at: Option<Instant>,
    /// Why petting stopped (logged once per reason).
    not_petting: Option<String>,
}

impl Watchdog {
    /// `None` unless a group of `node` is fenced by the watchdog.
    pub fn for_node(cluster: &Cluster, node: &str) -> Option<Self> {
        if !cluster.watchdog_fenced_on(node) {
            return None;
        }
        Some(Watchdog {
            settings: cluster.watchdog.clone(),
            release_timeout: cluster.release_timeout(),
            state: Mutex::new(State {
                device: None,
                claims: HashMap::new(),
                quorum_lost_at: Some(Instant::now()),
                not_petting: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// At agent start: a group may still be held from before the restart, and a device
    /// the old agent left armed counts on. Open it now; the first pass decides.
    pub fn start(&self, runner: &dyn Runner) -> Result<(), String> {
        let mut state = self.state();
        self.arm(&mut state, runner)
    }

    /// Before `group` is taken: the device must be armed, or the take must not happen.
    pub fn claim(&self, group: &str, runner: &dyn Runner) -> Result<(), String> {
        let mut state = self.state();
        self.arm(&mut state, runner)?;
        state
            .claims
            .entry(group.to_string())
            .or_insert(Claim::Holding);
        Ok(())
    }

    /// A release of `group` failed; the first failure's time is kept.
    pub fn release_failing(&self, group: &str) {
        let mut state = self.state();
        let claim = state
            .claims
            .entry(group.to_string())
            .or_insert(Claim::Holding);
        if *claim == Claim::Holding {
            *claim = Claim::ReleaseFailing(Instant::now());
        }
    }

    /// `group` is released here (or never was held).
    pub fn released(&self, group: &str) {
        self.state().claims.remove(group);
    }

    /// Whether quorum lets this node serve, as the quorum follower last said.
    pub fn quorum(&self, quorate: bool) {
        let mut state = self.state();
        match (quorate, state.quorum_lost_at) {
            (true, _) => state.quorum_lost_at = None,
            (false, None) => state.quorum_lost_at = Some(Instant::now()),
            (false, Some(_)) => {}
        }
    }

    /// Called by the main loop: pets, disarms or lets the device run out. `hung` names a
    /// worker that has not beaten within its budget. Returns when to call again.
    pub fn tick(&self, hung: Option<&str>, first_pass_done: bool) -> Duration {
        let mut state = self.state();
        if state.device.is_none() {
            return self.pet_interval();
        }
        if state.claims.is_empty() && first_pass_done {
            disarm(&mut state, &self.settings.device);
            return self.pet_interval();
        }
        match self.reason_not_to_pet(&state, hung) {
            None => {
                if let Some(why) = state.not_petting.take() {
                    log::warn!("watchdog: petting again ({why} is over)");
                }
                if let Some(device) = state.device.as_mut() {
                    if let Err(e) = device.write_all(b"\0").and_then(|()| device.flush()) {
                        log::error!(
                            "watchdog: cannot pet {}: {e}",
                            self.settings.device.display()
                        );
                    }
                }
            }
            Some(why) => {
                if state.not_petting.as_deref() != Some(why.as_str()) {
                    log::error!(
                        "watchdog: NOT petting {}: {why}; the node resets within {} s",
                        self.settings.device.display(),
                        self.settings.timeout_secs
                    );
                    state.not_petting = Some(why);
                }
            }
        }
        self.pet_interval()
    }

    fn reason_not_to_pet(&self, state: &State, hung: Option<&str>) -> Option<String> {
        if let Some(group) = hung {
            return Some(format!("group {group}'s worker is hung"));
        }
        if let Some(lost) = state.quorum_lost_at {
            if lost.elapsed() >= self.release_timeout {
                let held: Vec<&str> = state.claims.keys().map(String::as_str).collect();
                return Some(format!(
                    "no quorum for {} s and {} still held here",
                    lost.elapsed().as_secs(),
                    held.join(", ")
                ));
            }
        }
        state.claims.iter().find_map(|(group, claim)| match claim {
            Claim::ReleaseFailing(since) if since.elapsed() >= self.release_timeout => {
                Some(format!(
                    "the release of group {group} has failed for {} s",
                    since.elapsed().as_secs()
                ))
            }
            _ => None,
        })
    }

    /// Three pets per timeout: one late wake-up does not reset the node.
    fn pet_interval(&self) -> Duration {
        (Duration::from_secs(u64::from(self.settings.timeout_secs)) / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    fn arm(&self, state: &mut State, runner: &dyn Runner) -> Result<(), String> {
        if state.device.is_some() {
            return Ok(());
        }
        let path = &self.settings.device;
        set_timeout(runner, path, self.settings.timeout_secs)?;
        let device = open_device(path)?;
        log::warn!(
            "watchdog: {} armed ({} s): this node resets unless the agent keeps it petted",
            path.display(),
            self.settings.timeout_secs
        );
        state.device = Some(device);
        Ok(())
    }
}

/// Writes the magic character and closes the device: the kernel stops the countdown
/// (unless the driver was built with nowayout, which keeps it running: a node with such a
/// device must keep an agent that pets it).
fn disarm(state: &mut State, path: &Path) {
    if let Some(mut device) = state.device.take() {
        match device.write_all(b"V").and_then(|()| device.flush()) {
            Ok(()) => log::info!(
                "watchdog: {} disarmed: no watchdog-fenced group is held here",
                path.display()
            ),
            Err(e) => log::error!("watchdog: cannot disarm {}: {e}", path.display()),
        }
    }
}

/// The device itself: a character device, opened without following a symlink.
fn open_device(path: &Path) -> Result<File, String> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::FileTypeExt;
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {}: {e}", path.display()))?;
    let file = File::from(fd);
    let kind = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .file_type();
    if !kind.is_char_device() {
        return Err(format!("{} is not a character device", path.display()));
    }
    Ok(file)
}

/// The device's timeout as sysfs has it, set with wdctl when it differs.
fn set_timeout(runner: &dyn Runner, path: &Path, secs: u32) -> Result<(), String> {
    let name = match path.file_name().and_then(|n| n.to_str()) {
        Some("watchdog") | None => "watchdog0".to_string(),
        Some(n) => n.to_string(),
    };
    let sysfs = PathBuf::from("/sys/class/watchdog")
        .join(&name)
        .join("timeout");
    if std::fs::read_to_string(&sysfs).is_ok_and(|t| t.trim() == secs.to_string()) {
        return Ok(());
    }
    let cmd = Cmd::new(
        [
            "wdctl".to_string(),
            "--settimeout".into(),
            secs.to_string(),
            path.display().to_string(),
        ],
        Duration::from_secs(10),
    );
    match runner.run(&cmd) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(format!(
            "wdctl could not set {}'s timeout to {secs} s: {}",
            path.display(),
            out.stderr.trim()
        )),
        Err(e) => Err(format!("setting {}'s timeout: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dog(release_secs: u64) -> Watchdog {
        Watchdog {
            settings: WatchdogSettings::default(),
            release_timeout: Duration::from_secs(release_secs),
            state: Mutex::new(State {
                device: None,
                claims: HashMap::new(),
                quorum_lost_at: None,
                not_petting: None,
            }),
        }
    }

    fn why(dog: &Watchdog, hung: Option<&str>) -> Option<String> {
        dog.reason_not_to_pet(&dog.state(), hung)
    }

    #[test]
    fn a_quorate_node_with_healthy_workers_pets() {
        let d = dog(30);
        d.state().claims.insert("web".into(), Claim::Holding);
        d.quorum(true);
        assert_eq!(why(&d, None), None);
    }

    #[test]
    fn a_hung_worker_stops_the_petting() {
        let d = dog(30);
        d.quorum(true);
        assert_eq!(why(&d, Some("web")).unwrap(), "group web's worker is hung");
    }

    #[test]
    fn quorum_loss_gives_the_release_timeout_then_stops_the_petting() {
        let d = dog(30);
        d.state().claims.insert("web".into(), Claim::Holding);
        d.quorum(false);
        assert_eq!(why(&d, None), None, "within the release timeout");
        let d = dog(0);
        d.state().claims.insert("web".into(), Claim::Holding);
        d.quorum(false);
        assert!(why(&d, None).unwrap().contains("web still held here"));
        // Quorum back: the countdown is over.
        d.quorum(true);
        assert_eq!(why(&d, None), None);
    }

    #[test]
    fn a_release_that_keeps_failing_stops_the_petting() {
        let d = dog(30);
        d.quorum(true);
        d.release_failing("db");
        assert_eq!(why(&d, None), None, "retried within the release timeout");
        let d = dog(0);
        d.quorum(true);
        d.release_failing("db");
        assert!(why(&d, None)
            .unwrap()
            .contains("the release of group db has failed"));
        d.released("db");
        assert_eq!(why(&d, None), None);
    }

    #[test]
    fn the_first_failure_time_is_kept() {
        let d = dog(30);
        d.release_failing("db");
        let first = d.state().claims["db"];
        std::thread::sleep(Duration::from_millis(5));
        d.release_failing("db");
        assert_eq!(d.state().claims["db"], first);
    }

    #[test]
    fn a_regular_file_is_no_watchdog() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("watchdog");
        std::fs::write(&file, "").unwrap();
        assert!(open_device(&file)
            .unwrap_err()
            .contains("not a character device"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(open_device(&link).is_err(), "a symlink is not followed");
        assert!(open_device(Path::new("/dev/null")).is_ok());
    }
}
