//! The fail-safe when this node cannot bring a group to a safe state the normal way
//! (docs/agent.md, "When a release fails"). The rule: a node that does not fully serve a
//! group must not keep its floating IPs, or clients would reach a node with half a group.
//!
//! - A hold (fault, fence, operator) is told to keepalived through the track file (1 =
//!   FAULT). While the hold lasts, the file must say 1; if it cannot be written (a full
//!   /run), keepalived is stopped instead: SIGTERM to its main process, so it removes its
//!   addresses and tells the peers with priority 0; SIGKILL if it does not go, and then
//!   the agent removes the addresses itself. Every group of the node steps down with it:
//!   a node that cannot write its track files cannot hold any group safely.
//! - A release that fails leaves the group FAILED in status and is retried at every
//!   resync; if this node still has the group's floating IPs, it steps down as above.

use std::time::{Duration, Instant};

use crate::config::AlertEvent;
use crate::keepalived::state as keepalived_state;
use crate::runtime::VrrpState;

use super::super::mailbox::Input;
use super::Worker;

/// How long keepalived gets to stop on SIGTERM (it removes its addresses, sends the
/// priority-0 adverts, runs notify_stop) before it is killed.
const KEEPALIVED_STOP_WAIT: Duration = Duration::from_secs(10);

/// Why a group is FAILED here; each kind ends its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A release step failed; ends when a converge to standby succeeds.
    Release(String),
    /// The track file could not say FAULT, so keepalived was stopped; ends once keepalived
    /// runs again and the track file says what the hold wants.
    KeepalivedStopped(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Release(t) | Failure::KeepalivedStopped(t) => t,
        }
    }
}

impl Worker {
    /// Steps this node down from the group: the track file says FAULT, or, when it cannot
    /// be written, keepalived is stopped.
    pub(super) fn step_down(&mut self, why: &str) {
        if let Err(e) = self.write_track(true) {
            self.stop_keepalived_instead(format!(
                "{why}, but the track file could not say FAULT ({e})"
            ));
        }
    }

    /// While a hold lasts, the track file must say FAULT: a write lost earlier (or the
    /// file changed by hand) is repaired here, and if it cannot be, keepalived stops.
    pub(super) fn keep_track_file_in_line(&mut self, input: &Input) {
        if !input.keepalived_running {
            return;
        }
        // A watchdog-fenced group's hold steps down only once its release is complete.
        let want_fault =
            (self.hold.is_some() && self.step_down_after_release.is_none()) || self.quorum_lost;
        let says_fault = std::fs::read_to_string(self.env.paths.track_file(&self.group.name))
            .is_ok_and(|t| t.trim() == "1");
        if want_fault && !says_fault {
            self.step_down("the group is held here but its track file does not say FAULT");
        }
        if let Some(Failure::KeepalivedStopped(_)) = &self.failed {
            // keepalived was started again (by the operator): the track file must work now.
            match self.write_track(want_fault) {
                Ok(()) => {
                    log::warn!(
                        "group {}: keepalived runs again and the track file is writable: no longer FAILED",
                        self.group.name
                    );
                    self.failed = None;
                }
                Err(e) => self.stop_keepalived_instead(format!(
                    "keepalived was started again, but the track file still cannot be written ({e})"
                )),
            }
        }
    }

    /// A release step failed: FAILED in status, retried at every resync, and the floating
    /// IPs leave this node if they are still here.
    pub(super) fn release_failed(&mut self, input: &Input, why: String) {
        let has_ips = self
            .ips
            .iter()
            .any(|ip| self.env.addresses.has(&ip.interface, ip.address));
        let self_fence = self.group.fencing == crate::config::Fencing::Watchdog
            && !self.quorum_lost
            && self.env.watchdog.is_some();
        let what = if self_fence {
            if self.hold.is_none() {
                let length =
                    std::time::Duration::from_secs(u64::from(self.settings.hold_down_secs));
                self.hold_without_step_down(
                    crate::runtime::holds::HoldKind::Fault,
                    why.clone(),
                    length,
                );
                self.step_down_after_release = Some(format!("fault hold: {why}"));
            }
            "this node keeps the floating IPs (the peers must not take over while it may \
             still serve)"
        } else if input.keepalived_running && (has_ips || input.vrrp == VrrpState::Master) {
            if self.hold.is_none() {
                self.raise_fault(why.clone());
            } else {
                self.step_down(&why);
            }
            "this node steps down so that its floating IPs go to a peer"
        } else if has_ips {
            "keepalived is not running; the agent removes the floating IPs itself"
        } else {
            "the floating IPs are not on this node"
        };
        log::error!(
            "group {}: FAILED: {why}; {what}; retrying the release at every resync",
            self.group.name
        );
        let escalation = if self.group.fencing == crate::config::Fencing::Watchdog {
            format!(
                "; the watchdog resets this node if it still fails {} s after the first failure",
                self.release_timeout.as_secs()
            )
        } else {
            String::new()
        };
        if !matches!(self.failed, Some(Failure::KeepalivedStopped(_))) {
            let text = format!("{why}; {what}; retrying the release at every resync{escalation}");
            if self.failed.is_none() {
                self.event(AlertEvent::Failed, "error", text.clone());
            }
            self.failed = Some(Failure::Release(text));
        }
    }

    /// The release worked (or nothing was left to release): a release failure is over.
    pub(super) fn release_succeeded(&mut self) {
        if let Some(Failure::Release(_)) = &self.failed {
            log::warn!(
                "group {}: the release completed: no longer FAILED",
                self.group.name
            );
            self.failed = None;
        }
    }

    /// keepalived cannot be told to drop this node's floating IPs: stop it.
    fn stop_keepalived_instead(&mut self, cause: String) {
        let paths = keepalived_state::Paths::default();
        let what = match keepalived_state::running_pid(&paths) {
            None => "keepalived is not running; the agent removes the floating IPs itself".into(),
            Some(pid) => {
                log::error!(
                    "group {}: {cause}: stopping keepalived (pid {pid}) so that no floating IP \
                     stays on this node",
                    self.group.name
                );
                match stop_process(pid) {
                    Ok(how) => format!(
                        "keepalived (pid {pid}) was {how}: every group of this node steps down; \
                         fix the cause, then start keepalived again"
                    ),
                    Err(e) => format!("keepalived (pid {pid}) could not be stopped: {e}"),
                }
            }
        };
        let mut problems = Vec::new();
        self.remove_stale_ips(&mut problems);
        let mut text = format!("{cause}; {what}");
        for p in problems {
            text.push_str("; ");
            text.push_str(&p);
        }
        log::error!("group {}: FAILED: {text}", self.group.name);
        if !matches!(self.failed, Some(Failure::KeepalivedStopped(_))) {
            self.event(AlertEvent::Failed, "error", text.clone());
        }
        self.failed = Some(Failure::KeepalivedStopped(text));
    }
}

/// SIGTERM, and SIGKILL when the process is still there after KEEPALIVED_STOP_WAIT.
/// Returns how it ended.
fn stop_process(pid: i32) -> Result<&'static str, String> {
    use rustix::process::{kill_process, Pid, Signal};
    let target = Pid::from_raw(pid).ok_or("not a pid")?;
    kill_process(target, Signal::TERM).map_err(|e| format!("SIGTERM: {e}"))?;
    if wait_gone(pid, KEEPALIVED_STOP_WAIT) {
        return Ok("stopped (SIGTERM)");
    }
    kill_process(target, Signal::KILL).map_err(|e| format!("SIGKILL: {e}"))?;
    if wait_gone(pid, Duration::from_secs(2)) {
        Ok("killed (SIGKILL: it did not stop on SIGTERM)")
    } else {
        Err("it survived SIGKILL".into())
    }
}

/// Whether `pid` exits (or is a zombie) within `limit`.
fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let gone = match stat {
            Err(_) => true,
            // The state is the first field after the command's closing parenthesis.
            Ok(s) => s
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
