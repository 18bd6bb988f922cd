//! What the agent tells its observers (the metrics, the alert programs): events such as a
//! take or a fault, each step of a transition, each group's published picture, and
//! whether keepalived runs. Observers are called from the workers' threads and must
//! return at once: anything slow (a program, a scrape) happens on their own threads.

use std::time::SystemTime;

use crate::config::AlertEvent;
use crate::runtime::state::{GroupState, Step};

/// One event of a group (or of the node, when `group` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: AlertEvent,
    pub group: Option<String>,
    /// `ok` or `error` for takes, releases and restarts; `up`/`down` for keepalived.
    pub result: String,
    /// One line for people: what happened and why.
    pub detail: String,
    pub at: SystemTime,
}

impl Event {
    pub fn new(kind: AlertEvent, group: Option<&str>, result: &str, detail: String) -> Self {
        Event {
            kind,
            group: group.map(str::to_string),
            result: result.to_string(),
            detail,
            at: SystemTime::now(),
        }
    }
}

/// What the published picture of a group does not say but metrics want: when its hold
/// ends, and each configured check with whether it passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLive {
    pub hold_until: Option<SystemTime>,
    /// (check, passing); empty while the group is not active here (checks run only then).
    pub checks: Vec<(String, bool)>,
}

pub trait Observer: Send + Sync {
    fn event(&self, _event: &Event) {}
    fn step(&self, _group: &str, _step: &Step) {}
    fn group(&self, _name: &str, _state: &GroupState, _live: &GroupLive) {}
    fn keepalived(&self, _running: bool) {}
}
