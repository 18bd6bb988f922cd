//! What systemd hears from the agent (Type=notify): READY=1 once the FIFO, the control
//! socket and every worker's first pass are done, so keepalived (ordered after the agent)
//! never writes into a FIFO nobody reads; WATCHDOG=1 from the main loop, only while every
//! worker shows it is alive; STATUS= with one line on the groups. Outside systemd
//! (NOTIFY_SOCKET unset) all of it does nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::config::Cluster;

use super::mailbox::Mailbox;

/// The longest the agent waits for its workers' first pass before it says READY anyway
/// (and why): a start that never ends would have systemd kill and restart it in a loop.
pub const FIRST_PASS_WAIT: Duration = Duration::from_secs(60);

/// A worker that has not beaten for this long beyond the longest a step may take is
/// taken for hung: the agent stops petting the watchdog and systemd restarts it.
const BEAT_MARGIN: Duration = Duration::from_secs(30);

pub struct Readiness {
    mailboxes: Arc<HashMap<String, Arc<Mailbox>>>,
    /// systemd's WatchdogSec, when set for this process.
    watchdog: Option<Duration>,
    next_pet: Instant,
    /// How long a worker may go without a beat.
    beat_budget: Duration,
    status: String,
    /// The worker last reported hung (said once per episode).
    hung: Option<String>,
}

impl Readiness {
    pub fn new(cluster: &Cluster, mailboxes: Arc<HashMap<String, Arc<Mailbox>>>) -> Self {
        let watchdog = sd_notify::watchdog_enabled();
        Readiness {
            mailboxes,
            watchdog,
            next_pet: Instant::now(),
            beat_budget: beat_budget(cluster),
            status: String::new(),
            hung: None,
        }
    }

    /// Waits (bounded) for every worker's first pass, then tells systemd the agent is ready.
    pub fn ready(&mut self, summary: &str) {
        let deadline = Instant::now() + FIRST_PASS_WAIT;
        while Instant::now() < deadline && !self.mailboxes.values().all(|m| m.had_first_pass()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let waiting: Vec<&str> = self
            .mailboxes
            .iter()
            .filter(|(_, m)| !m.had_first_pass())
            .map(|(name, _)| name.as_str())
            .collect();
        if !waiting.is_empty() {
            log::warn!(
                "ready without the first pass of group(s) {} after {} s",
                waiting.join(", "),
                FIRST_PASS_WAIT.as_secs()
            );
        }
        self.status = summary.to_string();
        notify(&[NotifyState::Ready, NotifyState::Status(summary)]);
    }

    /// How long the main loop may sleep before it must pet the watchdog.
    pub fn next_pet_in(&self) -> Option<Duration> {
        self.watchdog
            .map(|_| self.next_pet.saturating_duration_since(Instant::now()))
    }

    /// Pets the watchdog when due and every worker is alive; updates STATUS= on a change.
    pub fn tick(&mut self, summary: &str) {
        if summary != self.status {
            self.status = summary.to_string();
            notify(&[NotifyState::Status(summary)]);
        }
        let Some(interval) = self.watchdog else {
            return;
        };
        if Instant::now() < self.next_pet {
            return;
        }
        // Three pets per interval: one late wake-up does not cost a restart.
        self.next_pet = Instant::now() + (interval / 3).max(Duration::from_millis(100));
        match self.hung_worker() {
            None => {
                if let Some(group) = self.hung.take() {
                    log::warn!("group {group}'s worker is alive again");
                }
                notify(&[NotifyState::Watchdog]);
            }
            Some((group, silent)) => {
                if self.hung.as_deref() != Some(group.as_str()) {
                    log::error!(
                        HAKEEP_GROUP = group.as_str();
                        "group {group}'s worker has not shown it is alive for {} s (more than \
                         {} s): no longer petting systemd's watchdog, which restarts the agent",
                        silent.as_secs(),
                        self.beat_budget.as_secs()
                    );
                    self.hung = Some(group);
                }
            }
        }
    }

    /// A worker that has not beaten within its budget, and for how long.
    pub fn hung_worker(&self) -> Option<(String, Duration)> {
        self.mailboxes
            .iter()
            .map(|(name, m)| (name.clone(), m.since_beat()))
            .find(|(_, silent)| *silent > self.beat_budget)
    }
}

/// How long a worker may go without a beat: it beats on every wake (at least every
/// resync) and after every step, and one step runs at most a few of its programs, each
/// bounded by its timeout.
pub fn beat_budget(cluster: &Cluster) -> Duration {
    let a = &cluster.agent;
    let scripts = cluster.groups.iter().flat_map(|g| {
        let services = g.services.iter().filter_map(|s| match s {
            crate::config::Service::Script { timeout_secs, .. } => Some(*timeout_secs),
            crate::config::Service::Unit(_) => None,
        });
        let checks = g.checks.iter().map(|c| c.timeout_secs);
        services.chain(checks).collect::<Vec<_>>()
    });
    let longest = scripts
        .chain([a.service_timeout_secs, a.command_timeout_secs])
        .max()
        .unwrap_or(0);
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    secs(a.resync_interval_secs) * 2 + secs(longest) * 2 + secs(a.umount_grace_secs) + BEAT_MARGIN
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("telling systemd: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_beat_budget_covers_the_longest_step() {
        let cluster = crate::config::from_str(
            "cluster.yml",
            include_str!("../../../../examples/nfs-active-passive.yml"),
        )
        .unwrap();
        let budget = beat_budget(&cluster);
        let service = Duration::from_secs(u64::from(cluster.agent.service_timeout_secs));
        assert!(budget > service * 2, "{budget:?}");
    }

    #[test]
    fn a_silent_worker_is_found() {
        let cluster = crate::config::from_str(
            "cluster.yml",
            include_str!("../../../../examples/nfs-active-passive.yml"),
        )
        .unwrap();
        let mailboxes: HashMap<String, Arc<Mailbox>> =
            [("nfs".to_string(), Arc::new(Mailbox::new()))].into();
        let mut r = Readiness::new(&cluster, Arc::new(mailboxes));
        assert!(r.hung_worker().is_none());
        r.beat_budget = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(r.hung_worker().map(|(g, _)| g), Some("nfs".into()));
    }
}
