//! Requests from the control socket, done by the group's own worker so they never race
//! it: release (release first, then step down), takeover (end this node's hold), and
//! prepare (end the hold and wait until keepalived here is BACKUP, so a switchover does
//! not depend on what happened to this node before).

use std::time::{Duration, Instant, SystemTime};

use crate::runtime::control::{ControlReply, ControlRequest};
use crate::runtime::holds::HoldKind;
use crate::runtime::state::epoch_ms;
use crate::runtime::VrrpState;

use super::super::mailbox::{Input, Mailbox};
use super::super::reconcile::still_held;
use super::Worker;

/// Longest a prepare waits for keepalived to report this node's instance as BACKUP.
const PREPARE_WAIT: Duration = Duration::from_secs(15);

impl Worker {
    pub(super) fn operator(
        &mut self,
        request: &ControlRequest,
        input: &Input,
        mailbox: &Mailbox,
    ) -> ControlReply {
        if self.env.paths.in_maintenance(&self.group.name) {
            return ControlReply::error(format!(
                "group {} is in maintenance here: the agent does not act; turn maintenance off first",
                self.group.name
            ));
        }
        match request {
            ControlRequest::Release { hold_secs, .. } => self.operator_release(input, *hold_secs),
            ControlRequest::Takeover { force, .. } => {
                if let Some(refusal) = self.refuse_fenced(*force) {
                    return refusal;
                }
                self.clear_hold("hold ended by the operator (takeover)");
                let mut input = input.clone();
                input.trigger = "operator takeover".into();
                self.converge_to(&input);
                ControlReply::ok(format!(
                    "this node may hold group {} now (VRRP: {})",
                    self.group.name, input.vrrp
                ))
            }
            ControlRequest::Prepare { force, .. } => self.prepare(*force, mailbox),
        }
    }

    /// A fenced node does not take the group back unless the operator insists: the peer
    /// that fenced it may still be serving.
    fn refuse_fenced(&self, force: bool) -> Option<ControlReply> {
        let hold = self.hold.as_ref()?;
        if hold.record.kind != HoldKind::Fence || force {
            return None;
        }
        Some(ControlReply::error(format!(
            "{} was fenced from group {} ({}), {} s of its hold are left; another node may \
             still serve it. Check `hakeep status --all-nodes`, then repeat with --force",
            self.node,
            self.group.name,
            hold.record.reason,
            hold.remaining().as_secs()
        )))
    }

    /// Ends this node's hold, then waits until keepalived says BACKUP (or MASTER) for the
    /// group: from its events, not a sleep.
    fn prepare(&mut self, force: bool, mailbox: &Mailbox) -> ControlReply {
        if let Some(refusal) = self.refuse_fenced(force) {
            return refusal;
        }
        if self.hold.is_some() {
            self.clear_hold("hold ended by the operator (preparing a takeover)");
        } else {
            // A failure shows below: keepalived then stays FAULT and never says BACKUP.
            let _ = self.write_track(false);
        }
        let deadline = Instant::now() + PREPARE_WAIT;
        let mut input = mailbox.latest();
        loop {
            if input.keepalived_running
                && matches!(input.vrrp, VrrpState::Backup | VrrpState::Master)
            {
                return ControlReply::ok(format!(
                    "{} is ready to take group {} (VRRP: {})",
                    self.node, self.group.name, input.vrrp
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ControlReply::error(format!(
                    "keepalived on {} did not report group {} as BACKUP within {} s (it is {}{}); \
                     nothing was moved",
                    self.node,
                    self.group.name,
                    PREPARE_WAIT.as_secs(),
                    input.vrrp,
                    if input.keepalived_running {
                        ""
                    } else {
                        ", keepalived not running"
                    }
                ));
            }
            input = mailbox.wait(input.seq, left);
        }
    }

    /// Releases while this node still holds the group, and only then steps down, so the
    /// peer attaches storage that was cleanly unmounted (docs/design.md, safe order).
    fn operator_release(&mut self, input: &Input, hold_secs: Option<u32>) -> ControlReply {
        let length =
            Duration::from_secs(u64::from(hold_secs.unwrap_or(self.settings.hold_down_secs)));
        let started_ms = epoch_ms(SystemTime::now());
        let clock = Instant::now();
        self.hold_without_step_down(
            HoldKind::Operator,
            "released by the operator".into(),
            length,
        );
        let mut release_input = input.clone();
        release_input.trigger = "operator release".into();
        self.converge_to(&release_input);
        let ctx = self.ctx();
        let left: Vec<String> = self
            .resources
            .iter()
            .filter(|r| still_held(r.as_ref(), &ctx))
            .map(|r| r.id())
            .collect();
        if !left.is_empty() {
            // Half released and still MASTER: serve again rather than leave it broken.
            self.clear_hold("release did not complete; serving again");
            self.converge_to(input);
            return ControlReply::error(format!(
                "release of group {} did not complete ({} still active); this node keeps the group",
                self.group.name,
                left.join(", ")
            ));
        }
        self.step_down("released by the operator");
        let length = self.hold.as_ref().map_or(length, |h| h.remaining());
        log::info!(
            "group {}: released by the operator; stepping down for {} s",
            self.group.name,
            length.as_secs()
        );
        ControlReply {
            release_started_ms: Some(started_ms),
            release_duration_ms: Some(clock.elapsed().as_millis() as u64),
            ..ControlReply::ok(format!(
                "group {} released; this node steps down for {} s",
                self.group.name,
                length.as_secs()
            ))
        }
    }
}
