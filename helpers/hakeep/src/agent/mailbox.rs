//! Hands the latest VRRP state to a group's worker: only the newest input matters, so a
//! slow step never builds up a queue of stale events.

use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

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
            }),
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }
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
