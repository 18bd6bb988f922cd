//! What the records tell the metrics: each call sets a few atomics and returns (the
//! workers call it).

use std::collections::BTreeSet;

use crate::config::AlertEvent;
use crate::ops::status::group_ok;
use crate::runtime::state::{GroupState, Step};
use crate::runtime::VrrpState;

use super::super::events::{Event, GroupLive, Observer};
use super::families::{group_labels, state_labels, CheckLabels, StepLabels, STATES};
use super::{lock, Metrics};

/// keepalived's name of a state; `None` for one it has not reported (INIT is not told
/// apart from "not reported yet": both are `Unknown`, and every state series is 0).
fn state_name(state: VrrpState) -> Option<&'static str> {
    match state {
        VrrpState::Master => Some("MASTER"),
        VrrpState::Backup => Some("BACKUP"),
        VrrpState::Fault => Some("FAULT"),
        VrrpState::Stop => Some("STOP"),
        VrrpState::Unknown => None,
    }
}

fn flag(on: bool) -> i64 {
    i64::from(on)
}

impl Observer for Metrics {
    fn event(&self, event: &Event) {
        let Some(group) = &event.group else {
            return;
        };
        let f = &self.families;
        let counter = match (event.kind, event.result.as_str()) {
            (AlertEvent::Take, "ok") => &f.takeovers,
            (AlertEvent::Release, "ok") => &f.releases,
            (AlertEvent::Fault, _) => &f.faults,
            (AlertEvent::Restart, _) => &f.restarts,
            (AlertEvent::Fence, _) => &f.fences,
            _ => return,
        };
        counter.get_or_create(&group_labels(group)).inc();
        self.changed();
    }

    fn step(&self, group: &str, step: &Step) {
        let labels = StepLabels {
            group: group.to_string(),
            action: step.action.clone(),
            step: step.resource.clone(),
        };
        self.families
            .step_duration
            .get_or_create(&labels)
            .observe(step.duration_ms as f64 / 1000.0);
        self.changed();
    }

    fn group(&self, name: &str, state: &GroupState, live: &GroupLive) {
        let f = &self.families;
        let g = group_labels(name);
        let current = state_name(state.vrrp_state);
        for s in STATES {
            f.vrrp_state
                .get_or_create(&state_labels(name, s))
                .set(flag(current == Some(s)));
        }
        let active = state.desired == "active" && state.actual == "active";
        f.active.get_or_create(&g).set(flag(active));
        f.healthy.get_or_create(&g).set(flag(group_ok(state)));
        f.failed.get_or_create(&g).set(flag(state.failed.is_some()));
        f.maintenance.get_or_create(&g).set(flag(state.maintenance));
        lock(&self.holds).insert(name.to_string(), live.hold_until);
        self.set_checks(name, &live.checks);
        self.changed();
    }

    fn keepalived(&self, running: bool) {
        self.families.keepalived_up.set(flag(running));
        self.changed();
    }
}

impl Metrics {
    /// A group's checks run only while it is active here: a check not in `checks` loses
    /// its series (a stale "up" from the last time the group was here would mislead).
    fn set_checks(&self, group: &str, checks: &[(String, bool)]) {
        let labels = |check: &str| CheckLabels {
            group: group.to_string(),
            check: check.to_string(),
        };
        let mut known = lock(&self.checks);
        let now: BTreeSet<String> = checks.iter().map(|(c, _)| c.clone()).collect();
        let before = known.insert(group.to_string(), now.clone());
        for gone in before.unwrap_or_default().difference(&now) {
            self.families.check_up.remove(&labels(gone));
        }
        for (check, passing) in checks {
            self.families
                .check_up
                .get_or_create(&labels(check))
                .set(flag(*passing));
        }
    }
}
