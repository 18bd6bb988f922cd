//! Holds: a node that faulted, was fenced or stepped down for the operator stays out of
//! the group until the hold ends. keepalived sees the track file (1 = FAULT); the hold
//! record beside it (runtime::holds, under /var/lib) keeps the kind, the reason and the
//! end time, so an agent restart resumes exactly the hold it had.

use std::time::{Duration, Instant, SystemTime};

use crate::config::AlertEvent;
use crate::fsutil::write_atomic;
use crate::runtime::holds::{self, HoldKind, HoldRecord};
use crate::runtime::state::{timestamp, Fault};

use super::Worker;

/// A fault keeps the node out for at least this long, so keepalived surely sees it.
pub const MIN_HOLD: Duration = Duration::from_secs(2);

pub struct Hold {
    pub record: HoldRecord,
    /// The end on the monotonic clock (the record's end is wall-clock time).
    pub until: Instant,
}

impl Hold {
    pub fn fault(&self) -> Fault {
        let ms = |ms: u64| std::time::UNIX_EPOCH + Duration::from_millis(ms);
        Fault {
            reason: self.record.reason.clone(),
            by_operator: self.record.kind == HoldKind::Operator,
            kind: self.record.kind,
            since: timestamp(ms(self.record.since_ms)),
            hold_down_until: timestamp(ms(self.record.until_ms)),
        }
    }

    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

impl Worker {
    /// A failure: step down for the ordinary hold-down.
    pub(super) fn raise_fault(&mut self, reason: String) {
        let length = Duration::from_secs(u64::from(self.settings.hold_down_secs));
        self.raise_hold(HoldKind::Fault, reason, length);
    }

    /// Marks the node unfit for `length` and steps down (track file 1): keepalived goes
    /// to FAULT and the next converge releases what this node holds.
    pub(super) fn raise_hold(&mut self, kind: HoldKind, reason: String, length: Duration) {
        let why = format!("{} hold: {reason}", kind.as_str());
        let event = match kind {
            HoldKind::Fault => Some(AlertEvent::Fault),
            HoldKind::Fence => Some(AlertEvent::Fence),
            HoldKind::Operator => None,
        };
        if let Some(event) = event {
            let detail = format!(
                "{reason}; stepping down for {} s",
                length.max(MIN_HOLD).as_secs()
            );
            self.event(event, "error", detail);
        }
        let was_active = self.active_confirmed;
        self.hold_without_step_down(kind, reason, length);
        if self.group.fencing == crate::config::Fencing::Watchdog && was_active {
            // Watchdog fencing: this node keeps the floating IPs (and so the peers stay
            // BACKUP) until its release is complete; a release that never completes ends
            // in the watchdog's reset, and only then may a peer take over.
            self.step_down_after_release = Some(why);
        } else {
            self.step_down(&why);
        }
    }

    /// Records the hold but leaves keepalived as it is: a planned release runs while this
    /// node still holds the group and steps down only afterwards (operator.rs).
    pub(super) fn hold_without_step_down(
        &mut self,
        kind: HoldKind,
        reason: String,
        length: Duration,
    ) {
        let length = length.max(MIN_HOLD);
        let record = HoldRecord::new(kind, reason, SystemTime::now(), length);
        if kind == HoldKind::Operator {
            log::info!(
                "group {}: {}; holding for {} s",
                self.group.name,
                record.reason,
                length.as_secs()
            );
        } else {
            log::error!(
                "group {}: {}: {}; stepping down for {} s",
                self.group.name,
                kind.as_str().to_uppercase(),
                record.reason,
                length.as_secs()
            );
        }
        // The record before the track file: if the node dies between the two writes, a
        // restarted agent still finds the hold (and writes the track file from it).
        if let Err(e) = holds::write(&self.env.paths.hold_file(&self.group.name), &record) {
            log::error!("group {}: cannot record the hold: {e}", self.group.name);
        }
        self.hold = Some(Hold {
            record,
            until: Instant::now() + length,
        });
        self.active_confirmed = false;
    }

    pub(super) fn hold_expired(&self) -> bool {
        self.hold
            .as_ref()
            .is_some_and(|h| Instant::now() >= h.until)
    }

    pub(super) fn clear_hold(&mut self, why: &str) {
        if self.hold.take().is_some() {
            log::info!("group {}: {why}", self.group.name);
        }
        self.watch.forget_restarts();
        if let Err(e) = holds::clear(&self.env.paths.hold_file(&self.group.name)) {
            log::error!(
                "group {}: cannot remove the hold record: {e}",
                self.group.name
            );
        }
        // A track file stuck at 1 keeps the node out of the group: safe, and logged.
        let _ = self.write_track(false);
    }

    /// After an agent restart (or a reboot): the recorded hold goes on to its original
    /// end. A track file of 1 without a record (written by an older agent) holds for
    /// the ordinary hold-down from the file's time.
    pub(super) fn resume_hold(&mut self) {
        let path = self.env.paths.hold_file(&self.group.name);
        let now = SystemTime::now();
        let record = match holds::read(&path) {
            Ok(record) => record,
            Err(e) => {
                // A record we cannot read is a hold we cannot size: the longest one.
                log::error!("group {}: {e}; holding as fenced", self.group.name);
                let length = Duration::from_secs(u64::from(self.settings.fenced_hold_down_secs));
                Some(HoldRecord::new(
                    HoldKind::Fence,
                    format!("unreadable hold record: {e}"),
                    now,
                    length,
                ))
            }
        }
        .or_else(|| self.legacy_track_hold(now));
        match record {
            Some(record) if record.remaining(now) > Duration::ZERO => {
                let left = record.remaining(now);
                log::info!(
                    "group {}: resuming the {} hold ({}) for {} s more",
                    self.group.name,
                    record.kind.as_str(),
                    record.reason,
                    left.as_secs()
                );
                let why = format!("resumed {} hold: {}", record.kind.as_str(), record.reason);
                self.hold = Some(Hold {
                    record,
                    until: Instant::now() + left,
                });
                self.step_down(&why);
            }
            _ => self.clear_hold("no hold to resume"),
        }
    }

    fn legacy_track_hold(&self, now: SystemTime) -> Option<HoldRecord> {
        let path = self.env.paths.track_file(&self.group.name);
        let faulted = std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == "1");
        let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        if !faulted {
            return None;
        }
        let length = Duration::from_secs(u64::from(self.settings.hold_down_secs)).max(MIN_HOLD);
        let mut record = HoldRecord::new(
            HoldKind::Fault,
            "fault from before the agent restarted".into(),
            written.min(now),
            length,
        );
        record.reason.push_str(" (no hold record)");
        Some(record)
    }

    /// Writes the track file keepalived reads: 1 puts this node's instance in FAULT.
    /// A failure is logged and returned: to step down, use `step_down` (fail_safe.rs).
    pub(super) fn write_track(&self, fault: bool) -> Result<(), String> {
        let path = self.env.paths.track_file(&self.group.name);
        let value: &[u8] = if fault { b"1\n" } else { b"0\n" };
        write_atomic(&path, value, 0o644).map(|_| ()).map_err(|e| {
            let e = format!("cannot write {}: {e}", path.display());
            log::error!("group {}: {e}", self.group.name);
            e
        })
    }
}
