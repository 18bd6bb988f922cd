//! Hands the latest VRRP state to a group's worker: only the newest input matters, so a
//! slow step never builds up a queue of stale events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::control::{ControlReply, ControlRequest};
use crate::runtime::VrrpState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub vrrp: VrrpState,
    pub keepalived_running: bool,
    /// What caused the latest change, for the records.
    pub trigger: String,
    /// Bumped on every post; the worker acts when it sees a new one.
    pub seq: u64,
    /// Whether keepalived's state (or its absence) has been established at all: a nudge
    /// from systemd or the kernel before the agent's first resync must not make the
    /// worker act on the defaults (keepalived "not running" would release the group).
    pub known: bool,
    /// Whether quorum lets this node serve.
    pub quorum: QuorumGate,
    /// Nodes out of this node's corosync membership, and since when (the agent's start
    /// for those it never saw): a watchdog-fenced group waits for them before a take.
    pub absent: Vec<(String, Instant)>,
}

/// What quorum allows this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumGate {
    /// The cluster has no `quorum:`: keepalived alone decides.
    NotConfigured,
    /// The agent has not heard from corosync yet: the worker waits (an agent restart
    /// must not release a group before it knows).
    Pending,
    Quorate,
    /// Not quorate (or corosync unreachable), and why: the node holds no group.
    Lost(String),
}

impl QuorumGate {
    pub fn allows_serving(&self) -> bool {
        matches!(self, QuorumGate::NotConfigured | QuorumGate::Quorate)
    }
}

/// An operator's request for this group, with where to send the answer.
pub struct Request {
    pub request: ControlRequest,
    pub reply: Sender<ControlReply>,
}

pub struct Mailbox {
    input: Mutex<Input>,
    requests: Mutex<Vec<Request>>,
    changed: Condvar,
    /// When the worker last showed it is alive (ms on the agent's monotonic clock).
    beat_ms: AtomicU64,
    /// Whether the worker has handled its first known input (the agent's readiness).
    first_pass: AtomicBool,
}

/// The agent's monotonic clock for heartbeats.
fn clock_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Mailbox {
    pub fn new() -> Self {
        Mailbox {
            input: Mutex::new(Input {
                vrrp: VrrpState::Unknown,
                keepalived_running: false,
                trigger: "agent start".into(),
                seq: 0,
                known: false,
                quorum: QuorumGate::NotConfigured,
                absent: Vec::new(),
            }),
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            beat_ms: AtomicU64::new(clock_ms()),
            first_pass: AtomicBool::new(false),
        }
    }

    /// The worker is alive: it woke, or finished a step.
    pub fn beat(&self) {
        self.beat_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// How long since the worker's last beat.
    pub fn since_beat(&self) -> Duration {
        Duration::from_millis(clock_ms().saturating_sub(self.beat_ms.load(Ordering::Relaxed)))
    }

    /// The worker has acted on (or looked at) its first known input.
    pub fn first_pass_done(&self) {
        self.first_pass.store(true, Ordering::Relaxed);
    }

    pub fn had_first_pass(&self) -> bool {
        self.first_pass.load(Ordering::Relaxed)
    }

    /// The input, also after a panic elsewhere while it was held: a worker restarted
    /// after a panic must still hear every post.
    fn input(&self) -> MutexGuard<'_, Input> {
        self.input.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn post(&self, vrrp: Option<VrrpState>, keepalived_running: bool, trigger: &str) {
        let mut input = self.input();
        if let Some(state) = vrrp {
            input.vrrp = state;
        }
        input.keepalived_running = keepalived_running;
        input.trigger = trigger.to_string();
        input.seq += 1;
        input.known = true;
        self.changed.notify_all();
    }

    /// Quorum changed (or its first reading arrived); wakes the worker when it matters.
    pub fn set_quorum(&self, gate: QuorumGate, absent: Vec<(String, Instant)>, trigger: &str) {
        let mut input = self.input();
        if input.quorum == gate && input.absent == absent {
            return;
        }
        input.quorum = gate;
        input.absent = absent;
        input.trigger = trigger.to_string();
        input.seq += 1;
        self.changed.notify_all();
    }

    /// Wakes the worker because something it watches changed (a unit, a mount, an
    /// address); what keepalived said stays as it was.
    pub fn nudge(&self, trigger: &str) {
        let mut input = self.input();
        input.trigger = trigger.to_string();
        input.seq += 1;
        self.changed.notify_all();
    }

    /// Queues an operator request and wakes the worker.
    pub fn request(&self, request: Request) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        self.input().seq += 1;
        self.changed.notify_all();
    }

    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The latest input, without waiting.
    pub fn latest(&self) -> Input {
        self.input().clone()
    }

    /// Waits up to `timeout` for an input newer than `seen`; returns the latest either way.
    pub fn wait(&self, seen: u64, timeout: Duration) -> Input {
        let guard = self.input();
        match self
            .changed
            .wait_timeout_while(guard, timeout, |i| i.seq == seen)
        {
            Ok((input, _)) => input.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}
