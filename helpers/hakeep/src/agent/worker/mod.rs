//! One thread per group: turns the latest VRRP state into the group's resources being
//! active here or not. The jobs around that loop live in their own files: holds (faults,
//! fences, operator step-downs, and the track file keepalived reads), watch (services and
//! checks of an active group, with the restart budget), publish (state.json), operator
//! (release, takeover and prepare requests from the control socket), fail_safe (what
//! happens when a release or a step-down fails).

#[cfg(debug_assertions)]
mod debug_hooks;
mod fail_safe;
mod fencing;
mod holds;
mod operator;
mod publish;
mod quorum;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{AgentSettings, AlertEvent, Cluster, Group};
use crate::drivers::procfs::MountSource;
use crate::drivers::{self, Context, Resource, Timeouts, Units};
use crate::exec::Runner;
use crate::observe::AddressView;
use crate::runtime::state::{timestamp, Transition};
use crate::runtime::{Paths, VrrpState};

use super::events::Event;
use super::ips::NodeIp;
use super::lock::GroupLock;
use super::mailbox::{Input, Mailbox, QuorumGate};
use super::reconcile::{converge, Desired, Outcome};
use super::records::Records;

use fail_safe::Failure;
use holds::Hold;
use watch::Watch;

/// What every worker of the agent shares: how to run programs and reach systemd, the
/// node's observed mounts and addresses, the runtime paths and the records.
pub struct Env {
    pub runner: Arc<dyn Runner>,
    pub units: Arc<dyn Units>,
    pub mounts: Arc<dyn MountSource>,
    pub addresses: Arc<dyn AddressView>,
    pub paths: Paths,
    pub records: Arc<Records>,
    /// The node's watchdog, when a group here is fenced by it.
    pub watchdog: Option<Arc<super::watchdog::Watchdog>>,
    /// The cluster and the file it came from: a watchdog-fenced take asks the group's
    /// other nodes (over the peers' SSH) whether they still serve it.
    pub cluster: Arc<Cluster>,
    pub config: std::path::PathBuf,
}

pub struct Worker {
    group: Group,
    cluster: String,
    node: String,
    resources: Vec<Box<dyn Resource>>,
    ips: Vec<NodeIp>,
    watch: Watch,
    hold: Option<Hold>,
    settings: AgentSettings,
    timeouts: Timeouts,
    env: Arc<Env>,
    last_transition: Option<Transition>,
    active_confirmed: bool,
    failed: Option<Failure>,
    /// The track file says FAULT because the node lost quorum.
    quorum_lost: bool,
    /// A watchdog-fenced group's step-down that waits for its release to complete (why).
    step_down_after_release: Option<String>,
    /// While a watchdog-fenced take waits for a peer that left the membership.
    fence_wait: Option<fencing::FenceWait>,
    /// How long such a wait lasts from the peer's leaving.
    fence_wait_length: Duration,
    /// How long a failing release of a watchdog-fenced group is retried before the
    /// watchdog resets the node (quorum.release_timeout).
    release_timeout: Duration,
    /// The worker's mailbox, for its heartbeats (set when it runs).
    mailbox: Option<Arc<Mailbox>>,
}

impl Worker {
    pub fn new(cluster: &Cluster, group: &Group, node: &str, env: Arc<Env>) -> Self {
        let me = cluster.node(node).cloned();
        let resources = drivers::resources_of(cluster, group);
        let settings = cluster.agent.clone();
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        Worker {
            cluster: cluster.name.clone(),
            node: node.to_string(),
            watch: Watch::new(group, &resources, &settings),
            resources,
            ips: match &me {
                Some(me) => group.ips.iter().map(|ip| NodeIp::new(ip, me)).collect(),
                None => Vec::new(),
            },
            timeouts: Timeouts {
                command: secs(settings.command_timeout_secs),
                service: secs(settings.service_timeout_secs),
                umount_grace: secs(settings.umount_grace_secs),
                device_wait: secs(settings.command_timeout_secs),
            },
            settings,
            group: group.clone(),
            env,
            hold: None,
            last_transition: None,
            active_confirmed: false,
            failed: None,
            quorum_lost: false,
            step_down_after_release: None,
            fence_wait: None,
            fence_wait_length: cluster.fence_wait(),
            release_timeout: cluster.release_timeout(),
            mailbox: None,
        }
    }

    /// Runs until the process ends.
    pub fn run(mut self, mailbox: Arc<Mailbox>) {
        self.mailbox = Some(mailbox.clone());
        mailbox.beat();
        self.resume_hold();
        // Act only on a real input: before the first resync the state is unknown, and
        // acting on "unknown" would release a group an agent restart must leave alone.
        let mut seen = 0;
        let mut last_converge = Instant::now();
        loop {
            let input = mailbox.wait(seen, self.next_wake());
            mailbox.beat();
            for request in mailbox.take_requests() {
                let reply = self.operator(&request.request, &input, &mailbox);
                let _ = request.reply.send(reply);
            }
            // What arrived while a request ran counts as new too.
            let input = mailbox.latest();
            let new_input = input.seq != seen;
            seen = input.seq;
            if !input.known || input.quorum == QuorumGate::Pending {
                // Nothing is known of keepalived (or of quorum) yet: never act on defaults.
                continue;
            }
            let resync_due = last_converge.elapsed() >= self.resync_interval();
            // A watched failure is handled (restart or fault) before any converge, so a
            // resync never restarts a crashed service behind the restart budget's back.
            let faulted = self.active_confirmed && self.watch_once();
            let wait_over = self
                .fence_wait
                .as_ref()
                .is_some_and(|w| Instant::now() >= w.until);
            if faulted || new_input || resync_due || wait_over || self.hold_expired() {
                last_converge = Instant::now();
                let mut input = input.clone();
                if faulted {
                    input.trigger = "fault".into();
                }
                self.converge_to(&input);
            }
            mailbox.first_pass_done();
            mailbox.beat();
        }
    }

    fn resync_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.resync_interval_secs))
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            runner: self.env.runner.as_ref(),
            units: self.env.units.as_ref(),
            mounts: self.env.mounts.as_ref(),
            cluster: &self.cluster,
            node: &self.node,
            timeouts: &self.timeouts,
        }
    }

    fn desired(&self, input: &Input) -> Desired {
        if self.hold.is_none()
            && input.quorum.allows_serving()
            && input.keepalived_running
            && input.vrrp == VrrpState::Master
        {
            Desired::Active
        } else {
            Desired::Standby
        }
    }

    fn converge_to(&mut self, input: &Input) {
        if self.hold_expired() {
            self.clear_hold("hold-down over; eligible again");
        }
        self.follow_quorum(input);
        let desired = self.desired(input);
        let desired = self.fence_take(input, desired);
        if self.env.paths.in_maintenance(&self.group.name) {
            self.publish(input, desired, true, Vec::new());
            return;
        }
        if input.keepalived_running && input.vrrp == VrrpState::Unknown && self.hold.is_none() {
            // keepalived runs but has not told us this instance's state: wait for it.
            self.publish(
                input,
                desired,
                false,
                vec!["waiting for keepalived to report this instance's state".into()],
            );
            return;
        }
        let lock = match GroupLock::acquire(&self.env.paths.lock_file(&self.group.name)) {
            Ok(l) => l,
            Err(e) => {
                log::error!("group {}: {e:#}; not acting", self.group.name);
                return;
            }
        };
        let started = SystemTime::now();
        let clock = Instant::now();
        let group = self.group.name.clone();
        let records = self.env.records.clone();
        let beats = self.mailbox.clone();
        let (outcome, steps) = converge(&self.ctx(), &self.resources, desired, &mut |s| {
            records.log_step(&group, s);
            if let Some(mailbox) = &beats {
                mailbox.beat();
            }
            #[cfg(debug_assertions)]
            debug_hooks::panic_once_after_take(&group, s);
        });
        drop(lock);
        let mut problems = Vec::new();
        let took = clock.elapsed();
        match &outcome {
            Outcome::AlreadyThere => {}
            Outcome::Done => {
                log::info!(
                    HAKEEP_GROUP = group.as_str();
                    "group {group}: now {} ({})",
                    desired.as_str(),
                    input.trigger
                );
                let kind = match desired {
                    Desired::Active => AlertEvent::Take,
                    Desired::Standby => AlertEvent::Release,
                };
                let detail = format!(
                    "now {} on {} in {} ms ({})",
                    desired.as_str(),
                    self.node,
                    took.as_millis(),
                    input.trigger
                );
                self.event(kind, "ok", detail);
            }
            Outcome::TakeFailed { resource, error } => {
                let why = format!("take failed at {resource}: {error}");
                self.event(AlertEvent::Take, "error", why.clone());
                self.raise_fault(why);
            }
            Outcome::ReleaseFailed { resource, error } => {
                let why = format!("release failed at {resource}: {error}");
                // Retried at every resync: said once, when the group becomes FAILED.
                if self.failed.is_none() {
                    self.event(AlertEvent::Release, "error", why.clone());
                }
                self.release_failed(input, why);
            }
        }
        if desired == Desired::Standby && matches!(outcome, Outcome::Done | Outcome::AlreadyThere) {
            self.release_succeeded();
        }
        self.fence_after(desired, &outcome);
        if desired == Desired::Standby && matches!(outcome, Outcome::Done | Outcome::AlreadyThere) {
            if let Some(why) = self.step_down_after_release.take() {
                self.step_down(&why);
            }
        }
        self.keep_track_file_in_line(input);
        if !steps.is_empty() {
            self.last_transition = Some(Transition {
                to: desired.as_str().into(),
                trigger: input.trigger.clone(),
                started: timestamp(started),
                duration_ms: clock.elapsed().as_millis() as u64,
                result: outcome.text(),
                steps,
            });
        }
        self.active_confirmed =
            desired == Desired::Active && matches!(outcome, Outcome::Done | Outcome::AlreadyThere);
        if self.active_confirmed && outcome == Outcome::Done {
            self.watch.reset();
        }
        if desired == Desired::Standby && !input.keepalived_running {
            self.remove_stale_ips(&mut problems);
        }
        self.publish(input, desired, false, problems);
    }

    /// Tells the records' observers (metrics, alert programs) of an event of this group.
    fn event(&self, kind: AlertEvent, result: &str, detail: String) {
        self.env
            .records
            .event(Event::new(kind, Some(&self.group.name), result, detail));
    }

    fn next_wake(&self) -> Duration {
        let mut wake = Instant::now() + self.resync_interval();
        if self.active_confirmed {
            if let Some(due) = self.watch.next_due() {
                wake = wake.min(due);
            }
        }
        if let Some(hold) = &self.hold {
            wake = wake.min(hold.until);
        }
        if let Some(wait) = &self.fence_wait {
            wake = wake.min(wait.until);
        }
        wake.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10))
    }
}
