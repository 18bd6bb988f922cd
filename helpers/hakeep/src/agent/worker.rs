//! One thread per group: turns the latest VRRP state into the group's resources being
//! active here or not, watches them while active, and feeds failures back to keepalived.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{AgentSettings, Cluster, Group};
use crate::drivers::{self, Context, Observed, Resource, Timeouts};
use crate::exec::Runner;
use crate::fsutil::write_atomic;
use crate::keepalived::notify::VrrpState;

use super::control::{ControlReply, ControlRequest};
use super::ips::{self, NodeIp};
use super::lock::GroupLock;
use super::mailbox::{Input, Mailbox};
use super::monitor::Monitored;
use super::paths::Paths;
use super::reconcile::{converge, Desired, Outcome};
use super::records::{self, Fault, GroupState, IpStatus, Records, ResourceStatus, Transition};

/// A fault keeps the node out for at least this long, so keepalived surely sees it.
const MIN_HOLD_DOWN: Duration = Duration::from_secs(2);

pub struct Worker {
    group: Group,
    cluster: String,
    node: String,
    resources: Vec<Box<dyn Resource>>,
    services: Vec<usize>,
    volumes: Vec<usize>,
    ips: Vec<NodeIp>,
    checks: Vec<Monitored>,
    settings: AgentSettings,
    timeouts: Timeouts,
    runner: Arc<dyn Runner>,
    paths: Paths,
    records: Arc<Records>,
    fault: Option<(Fault, Instant)>,
    restarts: VecDeque<Instant>,
    last_transition: Option<Transition>,
    active_confirmed: bool,
}

impl Worker {
    pub fn new(
        cluster: &Cluster,
        group: &Group,
        node: &str,
        runner: Arc<dyn Runner>,
        paths: Paths,
        records: Arc<Records>,
    ) -> Self {
        let me = cluster.node(node).cloned();
        let resources = drivers::resources_of(cluster, group);
        let services = indexes_of(&resources, &["service:", "script:"]);
        let volumes = indexes_of(&resources, &["volume:"]);
        let settings = cluster.agent.clone();
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        Worker {
            cluster: cluster.name.clone(),
            node: node.to_string(),
            resources,
            services,
            volumes,
            ips: match &me {
                Some(me) => group.ips.iter().map(|ip| NodeIp::new(ip, me)).collect(),
                None => Vec::new(),
            },
            checks: group.checks.iter().cloned().map(Monitored::new).collect(),
            timeouts: Timeouts {
                command: secs(settings.command_timeout_secs),
                service: secs(settings.service_timeout_secs),
                umount_grace: secs(settings.umount_grace_secs),
                device_wait: secs(settings.command_timeout_secs),
            },
            settings,
            group: group.clone(),
            runner,
            paths,
            records,
            fault: None,
            restarts: VecDeque::new(),
            last_transition: None,
            active_confirmed: false,
        }
    }

    /// Runs until the process ends.
    pub fn run(mut self, mailbox: Arc<Mailbox>) {
        self.resume_hold_down();
        // Act only on a real input: before the first resync the state is unknown, and
        // acting on "unknown" would release a group an agent restart must leave alone.
        let mut seen = 0;
        let mut last_converge = Instant::now();
        loop {
            let input = mailbox.wait(seen, self.next_wake());
            let new_input = input.seq != seen;
            seen = input.seq;
            for request in mailbox.take_requests() {
                let reply = self.operator(&request.request, &input);
                let _ = request.reply.send(reply);
            }
            let resync_due = last_converge.elapsed()
                >= Duration::from_secs(u64::from(self.settings.resync_interval_secs));
            // A watched failure is handled (restart or fault) before any converge, so a
            // resync never restarts a crashed service behind the restart budget's back.
            let faulted = self.active_confirmed && self.watch();
            if faulted || new_input || resync_due || self.hold_down_expired() {
                last_converge = Instant::now();
                let mut input = input.clone();
                if faulted {
                    input.trigger = "fault".into();
                }
                self.converge_to(&input);
            }
        }
    }

    /// An operator's release or takeover, done by this worker so it never races itself.
    fn operator(&mut self, request: &ControlRequest, input: &Input) -> ControlReply {
        if self.paths.in_maintenance(&self.group.name) {
            return ControlReply::error(format!(
                "group {} is in maintenance here: the agent does not act; turn maintenance off first",
                self.group.name
            ));
        }
        match request {
            ControlRequest::Release { hold_secs, .. } => self.operator_release(input, *hold_secs),
            ControlRequest::Takeover { .. } => {
                if self.fault.is_some() {
                    self.clear_fault();
                } else {
                    self.write_track(false);
                }
                let mut input = input.clone();
                input.trigger = "operator takeover".into();
                self.converge_to(&input);
                ControlReply {
                    ok: true,
                    message: format!(
                        "this node may hold group {} now (VRRP: {})",
                        self.group.name, input.vrrp
                    ),
                    release_started_ms: None,
                    release_duration_ms: None,
                }
            }
        }
    }

    /// Releases while this node still holds the group, and only then steps down, so the
    /// peer attaches storage that was cleanly unmounted (DESIGN.md §2).
    fn operator_release(&mut self, input: &Input, hold_secs: Option<u32>) -> ControlReply {
        let hold =
            Duration::from_secs(u64::from(hold_secs.unwrap_or(self.settings.hold_down_secs)))
                .max(MIN_HOLD_DOWN);
        let now = SystemTime::now();
        self.fault = Some((
            Fault {
                reason: "released by the operator".into(),
                by_operator: true,
                since: records::timestamp(now),
                hold_down_until: records::timestamp(now + hold),
            },
            Instant::now() + hold,
        ));
        self.active_confirmed = false;
        let started_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let clock = Instant::now();
        let mut release_input = input.clone();
        release_input.trigger = "operator release".into();
        self.converge_to(&release_input);
        let ctx = self.ctx();
        let left: Vec<String> = self
            .resources
            .iter()
            .filter(|r| {
                !matches!(
                    r.observe(&ctx),
                    Ok(Observed::Inactive | Observed::NotApplicable)
                )
            })
            .map(|r| r.id())
            .collect();
        if !left.is_empty() {
            // Half released and still MASTER: serve again rather than leave it broken.
            self.fault = None;
            self.converge_to(input);
            return ControlReply::error(format!(
                "release of group {} did not complete ({} still active); this node keeps the group",
                self.group.name,
                left.join(", ")
            ));
        }
        self.write_track(true);
        log::info!(
            "group {}: released by the operator; stepping down for {} s",
            self.group.name,
            hold.as_secs()
        );
        ControlReply {
            ok: true,
            message: format!(
                "group {} released; this node steps down for {} s",
                self.group.name,
                hold.as_secs()
            ),
            release_started_ms: Some(started_ms),
            release_duration_ms: Some(clock.elapsed().as_millis() as u64),
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            runner: self.runner.as_ref(),
            cluster: &self.cluster,
            node: &self.node,
            timeouts: &self.timeouts,
        }
    }

    fn desired(&self, input: &Input) -> Desired {
        if self.fault.is_none() && input.keepalived_running && input.vrrp == VrrpState::Master {
            Desired::Active
        } else {
            Desired::Standby
        }
    }

    fn converge_to(&mut self, input: &Input) {
        if self.hold_down_expired() {
            self.clear_fault();
        }
        let desired = self.desired(input);
        if self.paths.in_maintenance(&self.group.name) {
            self.publish(input, desired, true, Vec::new());
            return;
        }
        if input.keepalived_running && input.vrrp == VrrpState::Unknown && self.fault.is_none() {
            // keepalived runs but has not told us this instance's state: wait for it.
            self.publish(
                input,
                desired,
                false,
                vec!["waiting for keepalived to report this instance's state".into()],
            );
            return;
        }
        let lock = match GroupLock::acquire(&self.paths.lock_file(&self.group.name)) {
            Ok(l) => l,
            Err(e) => {
                log::error!("group {}: {e:#}; not acting", self.group.name);
                return;
            }
        };
        let started = SystemTime::now();
        let clock = Instant::now();
        let group = self.group.name.clone();
        let records = self.records.clone();
        let (outcome, steps) = converge(&self.ctx(), &self.resources, desired, &mut |s| {
            records.log_step(&group, s)
        });
        drop(lock);
        let mut problems = Vec::new();
        match &outcome {
            Outcome::AlreadyThere => {}
            Outcome::Done => log::info!(
                "group {group}: now {} ({})",
                desired.as_str(),
                input.trigger
            ),
            Outcome::TakeFailed { resource, error } => {
                self.raise_fault(format!("take failed at {resource}: {error}"));
            }
            Outcome::ReleaseFailed { resource, error } => {
                problems.push(format!(
                    "release failed at {resource}: {error}; retrying at the next resync"
                ));
                log::error!("group {group}: release failed at {resource}: {error}");
            }
        }
        if !steps.is_empty() {
            self.last_transition = Some(Transition {
                to: desired.as_str().into(),
                trigger: input.trigger.clone(),
                started: records::timestamp(started),
                duration_ms: clock.elapsed().as_millis() as u64,
                result: outcome_text(&outcome),
                steps,
            });
        }
        self.active_confirmed =
            desired == Desired::Active && matches!(outcome, Outcome::Done | Outcome::AlreadyThere);
        if self.active_confirmed && outcome == Outcome::Done {
            self.checks.iter_mut().for_each(Monitored::reset);
        }
        if desired == Desired::Standby && !input.keepalived_running {
            self.remove_stale_ips(&mut problems);
        }
        self.publish(input, desired, false, problems);
    }

    /// Watches an active group: its services, then its opt-in checks. Returns true when
    /// the group faulted and must be released.
    fn watch(&mut self) -> bool {
        if self.paths.in_maintenance(&self.group.name) {
            return false;
        }
        let ctx = self.ctx();
        // A volume an active group lost was taken by a peer (fencing): this node must
        // step down, never take it back, or two masters would fence each other in turn.
        let fenced: Vec<String> = self
            .volumes
            .iter()
            .filter(|&&i| matches!(self.resources[i].observe(&ctx), Ok(Observed::Inactive)))
            .map(|&i| format!("{} was taken over by another node", self.resources[i].id()))
            .collect();
        if !fenced.is_empty() {
            let hold = self.settings.fenced_hold_down_secs;
            self.raise_fault_for(format!("fenced: {}", fenced.join("; ")), hold);
            return true;
        }
        let dead: Vec<usize> = self
            .services
            .iter()
            .copied()
            .filter(|&i| matches!(self.resources[i].observe(&ctx), Ok(Observed::Inactive)))
            .collect();
        let now = Instant::now();
        let mut failed: Vec<String> = dead
            .iter()
            .map(|&i| format!("{} is not running", self.resources[i].id()))
            .collect();
        for check in self.checks.iter_mut().filter(|c| c.due(now)) {
            if check.run(self.runner.as_ref()) {
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
        if !self.restart_allowed() {
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
        if self.restart_services() {
            return false;
        }
        self.raise_fault(format!("{reason}; the restart failed"));
        true
    }

    fn restart_allowed(&mut self) -> bool {
        let window = Duration::from_secs(u64::from(self.settings.restart_window_secs));
        while self.restarts.front().is_some_and(|t| t.elapsed() > window) {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 >= self.settings.restart_limit {
            return false;
        }
        self.restarts.push_back(Instant::now());
        true
    }

    /// Stops and starts the group's services (mounts and volumes stay); true when all started.
    fn restart_services(&mut self) -> bool {
        let Ok(_lock) = GroupLock::acquire(&self.paths.lock_file(&self.group.name)) else {
            return false;
        };
        let ctx = self.ctx();
        for &i in self.services.iter().rev() {
            let r = &self.resources[i];
            if let Err(e) = r.release(&ctx) {
                log::error!(
                    "group {}: stopping {} for a restart: {e}",
                    self.group.name,
                    r.id()
                );
            }
        }
        let mut ok = true;
        for &i in &self.services {
            let step = timed_restart(self.resources[i].as_ref(), &ctx);
            self.records.log_step(&self.group.name, &step);
            ok &= step.ok;
        }
        self.checks.iter_mut().for_each(Monitored::reset);
        ok
    }

    /// Marks the node unfit for a hold-down; the next converge releases what it holds.
    fn raise_fault(&mut self, reason: String) {
        self.raise_fault_for(reason, self.settings.hold_down_secs);
    }

    fn raise_fault_for(&mut self, reason: String, hold_secs: u32) {
        let hold = Duration::from_secs(u64::from(hold_secs)).max(MIN_HOLD_DOWN);
        log::error!(
            "group {}: FAULT: {reason}; stepping down for {} s",
            self.group.name,
            hold.as_secs()
        );
        self.write_track(true);
        let now = SystemTime::now();
        self.fault = Some((
            Fault {
                reason,
                by_operator: false,
                since: records::timestamp(now),
                hold_down_until: records::timestamp(now + hold),
            },
            Instant::now() + hold,
        ));
        self.active_confirmed = false;
    }

    fn hold_down_expired(&self) -> bool {
        self.fault
            .as_ref()
            .is_some_and(|(_, until)| Instant::now() >= *until)
    }

    fn clear_fault(&mut self) {
        log::info!("group {}: hold-down over; eligible again", self.group.name);
        self.fault = None;
        self.restarts.clear();
        self.write_track(false);
    }

    /// After an agent restart: a fault written less than a hold-down ago still holds.
    fn resume_hold_down(&mut self) {
        let path = self.paths.track_file(&self.group.name);
        let faulted = std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == "1");
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(Duration::MAX);
        let hold = Duration::from_secs(u64::from(self.settings.hold_down_secs)).max(MIN_HOLD_DOWN);
        if faulted && age < hold {
            let left = hold - age;
            let now = SystemTime::now();
            self.fault = Some((
                Fault {
                    reason: "fault from before the agent restarted".into(),
                    by_operator: false,
                    since: records::timestamp(now - age),
                    hold_down_until: records::timestamp(now + left),
                },
                Instant::now() + left,
            ));
        } else {
            self.write_track(false);
        }
    }

    fn write_track(&self, fault: bool) {
        let path = self.paths.track_file(&self.group.name);
        let value: &[u8] = if fault { b"1\n" } else { b"0\n" };
        if let Err(e) = write_atomic(&path, value, 0o644) {
            log::error!(
                "group {}: cannot write {}: {e}",
                self.group.name,
                path.display()
            );
        }
    }

    fn remove_stale_ips(&self, problems: &mut Vec<String>) {
        for ip in &self.ips {
            if ips::is_present(self.runner.as_ref(), ip, self.timeouts.command).unwrap_or(false) {
                log::warn!(
                    "group {}: keepalived is not running but left {} on {}; removing it",
                    self.group.name,
                    ip.cidr(),
                    ip.interface
                );
                if let Err(e) = ips::remove(self.runner.as_ref(), ip, self.timeouts.command) {
                    problems.push(format!(
                        "cannot remove stale floating IP {}: {e}",
                        ip.cidr()
                    ));
                }
            }
        }
    }

    fn next_wake(&self) -> Duration {
        let resync = Duration::from_secs(u64::from(self.settings.resync_interval_secs));
        let mut wake = Instant::now() + resync;
        if self.active_confirmed {
            // Services are watched every second; opt-in checks on their own interval.
            wake = wake.min(Instant::now() + Duration::from_secs(1));
            if let Some(due) = self.checks.iter().map(Monitored::next_due).min() {
                wake = wake.min(due);
            }
        }
        if let Some((_, until)) = &self.fault {
            wake = wake.min(*until);
        }
        wake.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10))
    }

    fn publish(
        &self,
        input: &Input,
        desired: Desired,
        maintenance: bool,
        mut problems: Vec<String>,
    ) {
        let ctx = self.ctx();
        let resources: Vec<ResourceStatus> = self
            .resources
            .iter()
            .map(|r| match r.observe(&ctx) {
                Ok(o) => ResourceStatus {
                    id: r.id(),
                    observed: match o {
                        Observed::Active => "active",
                        Observed::Inactive => "inactive",
                        Observed::NotApplicable => "n/a",
                    }
                    .into(),
                    error: None,
                },
                Err(e) => ResourceStatus {
                    id: r.id(),
                    observed: "unknown".into(),
                    error: Some(e.to_string()),
                },
            })
            .collect();
        let floating_ips: Vec<IpStatus> = self
            .ips
            .iter()
            .map(|ip| IpStatus {
                address: ip.cidr(),
                present: ips::is_present(self.runner.as_ref(), ip, self.timeouts.command)
                    .unwrap_or(false),
            })
            .collect();
        let active = resources.iter().filter(|r| r.observed == "active").count();
        let applicable = resources.iter().filter(|r| r.observed != "n/a").count();
        let actual = if applicable > 0 && active == applicable {
            "active"
        } else if active == 0 {
            "standby"
        } else {
            "partial"
        };
        if desired == Desired::Standby {
            for ip in floating_ips.iter().filter(|ip| ip.present) {
                problems.push(format!(
                    "floating IP {} is present on a standby node",
                    ip.address
                ));
            }
        }
        for check in self.checks.iter().filter(|c| c.failing) {
            problems.push(format!(
                "check {} failing: {}",
                check.describe(),
                check.last_error.clone().unwrap_or_default()
            ));
        }
        self.records.set_group(
            &self.group.name,
            GroupState {
                vrrp_state: if input.keepalived_running {
                    input.vrrp
                } else {
                    VrrpState::Stop
                },
                desired: desired.as_str().into(),
                actual: actual.into(),
                maintenance,
                fault: self.fault.as_ref().map(|(f, _)| f.clone()),
                resources,
                floating_ips,
                problems,
                last_transition: self.last_transition.clone(),
            },
        );
    }
}

/// Positions of the resources whose id starts with one of `kinds` (`service:`, ...).
fn indexes_of(resources: &[Box<dyn Resource>], kinds: &[&str]) -> Vec<usize> {
    resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let id = r.id();
            kinds.iter().any(|k| id.starts_with(k))
        })
        .map(|(i, _)| i)
        .collect()
}

fn timed_restart(resource: &dyn Resource, ctx: &Context) -> records::Step {
    let started = SystemTime::now();
    let clock = Instant::now();
    let result = resource.take(ctx);
    records::Step {
        action: "restart".into(),
        resource: resource.id(),
        started: records::timestamp(started),
        duration_ms: clock.elapsed().as_millis() as u64,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::AlreadyThere => "unchanged".into(),
        Outcome::Done => "ok".into(),
        Outcome::TakeFailed { resource, error } => format!("take failed at {resource}: {error}"),
        Outcome::ReleaseFailed { resource, error } => {
            format!("release failed at {resource}: {error}")
        }
    }
}
