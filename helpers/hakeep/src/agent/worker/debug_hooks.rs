//! Debug builds only (never in a release build): faults the tier-2 tests inject into a
//! worker to prove the supervision around it (agent/supervise.rs).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::state::Step;

/// `HAKEEP_DEBUG_PANIC_ONCE=GROUP`: that group's worker panics once, right after its
/// first successful take step (mid-transition: part of the group taken, under its lock).
pub const PANIC_ONCE: &str = "HAKEEP_DEBUG_PANIC_ONCE";

static FIRED: AtomicBool = AtomicBool::new(false);

pub fn panic_once_after_take(group: &str, step: &Step) {
    if step.action != "take" || !step.ok {
        return;
    }
    if std::env::var(PANIC_ONCE).ok().as_deref() != Some(group) {
        return;
    }
    if FIRED.swap(true, Ordering::SeqCst) {
        return;
    }
    panic!(
        "{PANIC_ONCE}: group {group} panics after taking {}",
        step.resource
    );
}
