//! Watching an active group: its volumes (still ours, or fenced by a peer?), its services
//! and its opt-in checks (fall/rise, so one blip is not a failover). A failure restarts
//! the services through reconcile's safe order, within a restart budget; beyond it, or
//! when fenced, the group faults.
//!
//! What costs what: a systemd unit's state comes from systemd's signals (no process), so
//! units are looked at on every wake; a resource script's `status` runs on its own
//! `interval`; volumes are asked every VOLUME_INTERVAL (iSCSI and NVMesh ask the storage);
//! checks run on their own `interval`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::checks;
use crate::config::{AgentSettings, AlertEvent, Check, Group, Service};
use crate::drivers::{Kind, Observed, Resource};
use crate::runtime::holds::HoldKind;

use super::super::lock::GroupLock;
use super::super::reconcile::{restart_services, Outcome};
use super::Worker;

/// How often an active group's volumes are asked whether they are still this node's.
const VOLUME_INTERVAL: Duration = Duration::from_secs(2);

/// One configured check and its recent history.
pub struct Monitored {
    pub check: Check,
    failures: u32,
    successes: u32,
    pub failing: bool,
    next_due: Instant,
    pub last_error: Option<String>,
}

impl Monitored {
    pub fn new(check: Check) -> Self {
        let first = Instant::now() + Duration::from_secs(u64::from(check.interval_secs));
        Monitored {
            check,
            failures: 0,
            successes: 0,
            failing: false,
            next_due: first,
            last_error: None,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.check.interval_secs))
    }

    /// Forgets history, e.g. after a restart or a new take.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.successes = 0;
        self.failing = false;
        self.last_error = None;
        self.next_due = Instant::now() + self.interval();
    }

    /// Records one result; returns true when the check just crossed into failing.
    pub fn record(&mut self, result: Result<(), String>) -> bool {
        self.next_due = Instant::now() + self.interval();
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.failing && self.successes >= self.check.rise {
                    self.failing = false;
                    self.last_error = None;
                }
                false
            }
            Err(error) => {
                self.successes = 0;
                self.failures += 1;
                self.last_error = Some(error);
                let crossed = !self.failing && self.failures >= self.check.fall;
                if crossed {
                    self.failing = true;
                }
                crossed
            }
        }
    }

    pub fn describe(&self) -> String {
        checks::describe(&self.check.kind)
    }
}

/// A service of the group and when it is looked at next (`None`: on every wake).
struct WatchedService {
    index: usize,
    poll: Option<Duration>,
    next_due: Instant,
}

pub struct Watch {
    services: Vec<WatchedService>,
    volumes: Vec<usize>,
    next_volume_check: Instant,
    pub checks: Vec<Monitored>,
    restarts: VecDeque<Instant>,
    restart_limit: u32,
    restart_window: Duration,
}

impl Watch {
    pub fn new(group: &Group, resources: &[Box<dyn Resource>], settings: &AgentSettings) -> Self {
        let mut scripts = group.services.iter().map(|s| match s {
            Service::Script { interval_secs, .. } => {
                Some(Duration::from_secs(u64::from(*interval_secs)))
            }
            Service::Unit(_) => None,
        });
        let services = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind() == Kind::Service)
            .map(|(index, _)| WatchedService {
                index,
                poll: scripts.next().flatten(),
                next_due: Instant::now(),
            })
            .collect();
        Watch {
            services,
            volumes: resources
                .iter()
                .enumerate()
                .filter(|(_, r)| r.kind() == Kind::Volume)
                .map(|(i, _)| i)
                .collect(),
            next_volume_check: Instant::now(),
            checks: group.checks.iter().cloned().map(Monitored::new).collect(),
            restarts: VecDeque::new(),
            restart_limit: settings.restart_limit,
            restart_window: Duration::from_secs(u64::from(settings.restart_window_secs)),
        }
    }

    /// After a take or a restart: history starts again.
    pub fn reset(&mut self) {
        self.checks.iter_mut().for_each(Monitored::reset);
        let now = Instant::now();
        for s in &mut self.services {
            s.next_due = now + s.poll.unwrap_or_default();
        }
        self.next_volume_check = now + VOLUME_INTERVAL;
    }

    pub fn forget_restarts(&mut self) {
        self.restarts.clear();
    }

    /// When something polled is due next (units and mounts need no wake: their changes
    /// arrive as events).
    pub fn next_due(&self) -> Option<Instant> {
        let polled = self
            .services
            .iter()
            .filter(|s| s.poll.is_some())
            .map(|s| s.next_due);
        let volumes = (!self.volumes.is_empty()).then_some(self.next_volume_check);
        let checks = self.checks.iter().map(|c| c.next_due);
        polled.chain(volumes).chain(checks).min()
    }

    fn restart_allowed(&mut self) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| t.elapsed() > self.restart_window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 >= self.restart_limit {
            return false;
        }
        self.restarts.push_back(Instant::now());
        true
    }
}

impl Worker {
    /// Looks at an active group once. Returns true when it faulted and must be released.
    pub(super) fn watch_once(&mut self) -> bool {
        if self.env.paths.in_maintenance(&self.group.name) {
            return false;
        }
        let now = Instant::now();
        if let Some(reason) = self.fenced(now) {
            let length = Duration::from_secs(u64::from(self.settings.fenced_hold_down_secs));
            self.raise_hold(HoldKind::Fence, format!("fenced: {reason}"), length);
            return true;
        }
        let mut failed = self.dead_services(now);
        let addresses = self.env.addresses.clone();
        let runner = self.env.runner.clone();
        for check in self.watch.checks.iter_mut().filter(|c| now >= c.next_due) {
            let timeout = Duration::from_secs(u64::from(check.check.timeout_secs));
            let lookup: &dyn checks::AddressLookup = addresses.as_ref();
            let result = checks::probe(runner.as_ref(), &check.check.kind, timeout, Some(lookup));
            if check.record(result) {
                failed.push(format!(
                    "check {} failed {} times: {}",
                    check.describe(),
                    check.check.fall,
                    check.last_error.clone().unwrap_or_default()
                ));
            }
        }
        if failed.is_empty() {
            return false;
        }
        let reason = failed.join("; ");
        if !self.watch.restart_allowed() {
            self.raise_fault(format!(
                "{reason}; {} restarts in {} s used up",
                self.settings.restart_limit, self.settings.restart_window_secs
            ));
            return true;
        }
        log::warn!(
            "group {}: {reason}; restarting its services",
            self.group.name
        );
        match self.restart() {
            Ok(()) => false,
            Err(error) => {
                self.raise_fault(format!("{reason}; the restart failed: {error}"));
                true
            }
        }
    }

    /// A volume the active group lost was taken by a peer (fencing): this node must step
    /// down, never take it back, or two masters would fence each other in turn.
    fn fenced(&mut self, now: Instant) -> Option<String> {
        if self.watch.volumes.is_empty() || now < self.watch.next_volume_check {
            return None;
        }
        self.watch.next_volume_check = now + VOLUME_INTERVAL;
        let ctx = self.ctx();
        let lost: Vec<String> = self
            .watch
            .volumes
            .iter()
            .filter(|&&i| matches!(self.resources[i].observe(&ctx), Ok(Observed::Inactive)))
            .map(|&i| format!("{} was taken over by another node", self.resources[i].id()))
            .collect();
        (!lost.is_empty()).then(|| lost.join("; "))
    }

    fn dead_services(&mut self, now: Instant) -> Vec<String> {
        let ctx = self.ctx();
        let mut dead = Vec::new();
        let mut looked = Vec::new();
        for (k, s) in self.watch.services.iter().enumerate() {
            if s.poll.is_some() && now < s.next_due {
                continue;
            }
            looked.push(k);
            let r = &self.resources[s.index];
            if matches!(r.observe_now(&ctx), Ok(Observed::Inactive)) {
                dead.push(format!("{} is not running", r.id()));
            }
        }
        for k in looked {
            let s = &mut self.watch.services[k];
            s.next_due = now + s.poll.unwrap_or_default();
        }
        dead
    }

    /// Restarts the group's services in the safe order, under the group's lock.
    fn restart(&mut self) -> Result<(), String> {
        let _lock = GroupLock::acquire(&self.env.paths.lock_file(&self.group.name))
            .map_err(|e| format!("{e:#}"))?;
        let group = self.group.name.clone();
        let records = self.env.records.clone();
        let (outcome, _) = restart_services(&self.ctx(), &self.resources, &mut |s| {
            records.log_step(&group, s)
        });
        self.watch.reset();
        let result = match outcome {
            Outcome::Done | Outcome::AlreadyThere => Ok(()),
            other => Err(other.text()),
        };
        let (text, detail) = match &result {
            Ok(()) => ("ok", "the group's services were restarted".to_string()),
            Err(e) => (
                "error",
                format!("restarting the group's services failed: {e}"),
            ),
        };
        self.event(AlertEvent::Restart, text, detail);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CheckKind;

    fn check(fall: u32, rise: u32) -> Check {
        Check {
            kind: CheckKind::Command(vec!["/bin/check".into()]),
            interval_secs: 1,
            timeout_secs: 1,
            fall,
            rise,
        }
    }

    #[test]
    fn fails_after_fall_and_recovers_after_rise() {
        let mut m = Monitored::new(check(3, 2));
        let down = || Err("down".to_string());
        assert!(!m.record(down()));
        assert!(!m.record(down()));
        assert!(m.record(down()), "third failure crosses fall=3");
        assert!(m.failing);
        assert!(!m.record(down()), "crossing is reported once");
        m.record(Ok(()));
        assert!(m.failing, "one success is not rise=2");
        m.record(Ok(()));
        assert!(!m.failing);
    }
}
