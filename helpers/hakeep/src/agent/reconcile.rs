//! Converging one group: compare what should be with what is, run the missing steps in
//! the safe order (docs/design.md §2), roll back a failed take.

use std::time::{Instant, SystemTime};

use crate::drivers::{Context, Kind, Observed, Resource};
use crate::runtime::state::{timestamp, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Active,
    Standby,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Active => "active",
            Desired::Standby => "standby",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing needed doing.
    AlreadyThere,
    Done,
    /// A take step or the verification failed; everything was released again.
    TakeFailed {
        resource: String,
        error: String,
    },
    /// A release step failed; later steps were not attempted (no detach under a mount).
    ReleaseFailed {
        resource: String,
        error: String,
    },
}

impl Outcome {
    pub fn text(&self) -> String {
        match self {
            Outcome::AlreadyThere => "unchanged".into(),
            Outcome::Done => "ok".into(),
            Outcome::TakeFailed { resource, error } => {
                format!("take failed at {resource}: {error}")
            }
            Outcome::ReleaseFailed { resource, error } => {
                format!("release failed at {resource}: {error}")
            }
        }
    }
}

/// The names steps are recorded under.
#[derive(Clone, Copy)]
struct Actions {
    take: &'static str,
    release: &'static str,
}

const CONVERGE: Actions = Actions {
    take: "take",
    release: "release",
};

/// Brings `resources` (in take order) to `desired`, reporting each step as it ends.
pub fn converge(
    ctx: &Context,
    resources: &[Box<dyn Resource>],
    desired: Desired,
    on_step: &mut dyn FnMut(&Step),
) -> (Outcome, Vec<Step>) {
    let all: Vec<&dyn Resource> = resources.iter().map(|r| r.as_ref()).collect();
    converge_as(ctx, &all, desired, CONVERGE, on_step)
}

/// Restarts a group's services in the safe order: every service stopped in reverse, then
/// started in order (mounts and volumes stay). A failed stop stops the restart there; a
/// failed start rolls back the services this restart started.
pub fn restart_services(
    ctx: &Context,
    resources: &[Box<dyn Resource>],
    on_step: &mut dyn FnMut(&Step),
) -> (Outcome, Vec<Step>) {
    let services: Vec<&dyn Resource> = resources
        .iter()
        .filter(|r| r.kind() == Kind::Service)
        .map(|r| r.as_ref())
        .collect();
    let actions = Actions {
        take: "restart-start",
        release: "restart-stop",
    };
    let (outcome, mut steps) = converge_as(ctx, &services, Desired::Standby, actions, on_step);
    if matches!(outcome, Outcome::ReleaseFailed { .. }) {
        return (outcome, steps);
    }
    let (outcome, started) = converge_as(ctx, &services, Desired::Active, actions, on_step);
    steps.extend(started);
    (outcome, steps)
}

fn converge_as(
    ctx: &Context,
    resources: &[&dyn Resource],
    desired: Desired,
    actions: Actions,
    on_step: &mut dyn FnMut(&Step),
) -> (Outcome, Vec<Step>) {
    let mut steps = Vec::new();
    let mut record = |step: Step, steps: &mut Vec<Step>| {
        on_step(&step);
        steps.push(step);
    };
    match desired {
        Desired::Active => {
            // What this converge took: a failed take rolls back exactly that.
            let mut taken = Vec::new();
            for (i, resource) in resources.iter().enumerate() {
                if matches!(
                    resource.observe(ctx),
                    Ok(Observed::Active | Observed::NotApplicable)
                ) {
                    continue;
                }
                let step = timed(actions.take, *resource, || resource.take(ctx));
                let failed = step.error.clone();
                record(step, &mut steps);
                if let Some(error) = failed {
                    // The failed resource may be half taken (logged in, not reserved).
                    taken.push(i);
                    rollback(ctx, resources, &taken, &mut |s| record(s, &mut steps));
                    return (
                        Outcome::TakeFailed {
                            resource: resource.id(),
                            error,
                        },
                        steps,
                    );
                }
                taken.push(i);
            }
            // A unit can start and die a moment later: look again before calling it done.
            for resource in resources {
                match resource.observe(ctx) {
                    Ok(Observed::Active | Observed::NotApplicable) => {}
                    other => {
                        let error = match other {
                            Err(e) => e.to_string(),
                            _ => "not active right after its take".to_string(),
                        };
                        let step = failed_step("verify", *resource, &error);
                        record(step, &mut steps);
                        rollback(ctx, resources, &taken, &mut |s| record(s, &mut steps));
                        return (
                            Outcome::TakeFailed {
                                resource: resource.id(),
                                error,
                            },
                            steps,
                        );
                    }
                }
            }
        }
        Desired::Standby => {
            for resource in resources.iter().rev() {
                if !still_held(*resource, ctx) {
                    continue;
                }
                let step = timed(actions.release, *resource, || resource.release(ctx));
                let failed = step.error.clone();
                record(step, &mut steps);
                if let Some(error) = failed {
                    return (
                        Outcome::ReleaseFailed {
                            resource: resource.id(),
                            error,
                        },
                        steps,
                    );
                }
            }
        }
    }
    let outcome = if steps.is_empty() {
        Outcome::AlreadyThere
    } else {
        Outcome::Done
    };
    (outcome, steps)
}

/// Whether `resource` is still held here: anything but a clean "inactive" or "not
/// applicable" (an observation that fails counts as held: it is never released blind).
pub fn still_held(resource: &dyn Resource, ctx: &Context) -> bool {
    !matches!(
        resource.observe(ctx),
        Ok(Observed::Inactive | Observed::NotApplicable)
    )
}

/// Rolls back what a failed converge took (`taken`, positions in take order), in reverse.
/// Never releases a resource while one above it is active (a mount over a volume that
/// was there before this converge), and stops at the first release that fails: storage
/// is never released under something still held. What is left is released in the safe
/// order by the standby converge that follows the fault.
fn rollback(
    ctx: &Context,
    resources: &[&dyn Resource],
    taken: &[usize],
    record: &mut dyn FnMut(Step),
) {
    let mut order = taken.to_vec();
    order.sort_unstable_by(|a, b| b.cmp(a));
    order.dedup();
    for i in order {
        let resource = resources[i];
        if !still_held(resource, ctx) {
            continue;
        }
        if let Some(above) = resources[i + 1..].iter().find(|r| still_held(**r, ctx)) {
            record(failed_step(
                "rollback",
                resource,
                &format!("not released: {} above it is still held", above.id()),
            ));
            return;
        }
        let step = timed("rollback", resource, || resource.release(ctx));
        let failed = !step.ok;
        record(step);
        if failed {
            return;
        }
    }
}

fn timed(
    action: &'static str,
    resource: &dyn Resource,
    f: impl FnOnce() -> Result<(), crate::drivers::DriverError>,
) -> Step {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let result = f();
    Step {
        action: action.to_string(),
        resource: resource.id(),
        started: timestamp(started_at),
        duration_ms: clock.elapsed().as_millis() as u64,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    }
}

fn failed_step(action: &'static str, resource: &dyn Resource, error: &str) -> Step {
    Step {
        action: action.to_string(),
        resource: resource.id(),
        started: timestamp(SystemTime::now()),
        duration_ms: 0,
        ok: false,
        error: Some(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::drivers::{DriverError, Timeouts};
    use crate::exec::RecordingRunner;

    /// A resource whose state lives in memory and whose calls are written to a shared journal.
    struct Fake {
        id: &'static str,
        active: Mutex<bool>,
        fail_take: bool,
        fail_release: bool,
        dies_after_take: bool,
        observe_fails: bool,
        journal: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn new(id: &'static str, journal: &Arc<Mutex<Vec<String>>>) -> Self {
            Fake {
                id,
                active: Mutex::new(false),
                fail_take: false,
                fail_release: false,
                dies_after_take: false,
                observe_fails: false,
                journal: journal.clone(),
            }
        }
    }

    impl Resource for Fake {
        fn id(&self) -> String {
            self.id.to_string()
        }
        fn kind(&self) -> Kind {
            match self.id {
                "volume" => Kind::Volume,
                "mount" => Kind::Filesystem,
                _ => Kind::Service,
            }
        }
        fn observe(&self, _: &Context) -> Result<Observed, DriverError> {
            if self.observe_fails {
                return Err(DriverError::Failed("PR-IN failed".into()));
            }
            Ok(if *self.active.lock().unwrap() {
                Observed::Active
            } else {
                Observed::Inactive
            })
        }
        fn take(&self, _: &Context) -> Result<(), DriverError> {
            self.journal
                .lock()
                .unwrap()
                .push(format!("take {}", self.id));
            if self.fail_take {
                return Err(DriverError::Failed("no".into()));
            }
            *self.active.lock().unwrap() = !self.dies_after_take;
            Ok(())
        }
        fn release(&self, _: &Context) -> Result<(), DriverError> {
            self.journal
                .lock()
                .unwrap()
                .push(format!("release {}", self.id));
            if self.fail_release {
                return Err(DriverError::Failed("busy".into()));
            }
            *self.active.lock().unwrap() = false;
            Ok(())
        }
    }

    fn run(resources: &[Box<dyn Resource>], desired: Desired) -> (Outcome, Vec<Step>) {
        let runner = RecordingRunner::new();
        let timeouts = Timeouts::default();
        converge(
            &Context::plain(&runner, &timeouts),
            resources,
            desired,
            &mut |_| {},
        )
    }

    fn three(journal: &Arc<Mutex<Vec<String>>>) -> Vec<Fake> {
        vec![
            Fake::new("volume", journal),
            Fake::new("mount", journal),
            Fake::new("service", journal),
        ]
    }

    /// The three, all active (a group that holds everything).
    fn three_active(journal: &Arc<Mutex<Vec<String>>>) -> Vec<Fake> {
        let fakes = three(journal);
        for f in &fakes {
            *f.active.lock().unwrap() = true;
        }
        fakes
    }

    fn restart(resources: &[Box<dyn Resource>]) -> (Outcome, Vec<Step>) {
        let runner = RecordingRunner::new();
        let timeouts = Timeouts::default();
        restart_services(&Context::plain(&runner, &timeouts), resources, &mut |_| {})
    }

    fn boxed(fakes: Vec<Fake>) -> Vec<Box<dyn Resource>> {
        fakes
            .into_iter()
            .map(|f| Box::new(f) as Box<dyn Resource>)
            .collect()
    }

    #[test]
    fn take_runs_in_order_and_release_in_reverse() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let resources = boxed(three(&journal));
        assert_eq!(run(&resources, Desired::Active).0, Outcome::Done);
        assert_eq!(run(&resources, Desired::Standby).0, Outcome::Done);
        assert_eq!(
            *journal.lock().unwrap(),
            [
                "take volume",
                "take mount",
                "take service",
                "release service",
                "release mount",
                "release volume"
            ]
        );
    }

    #[test]
    fn converging_twice_does_nothing_the_second_time() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let resources = boxed(three(&journal));
        run(&resources, Desired::Active);
        let (outcome, steps) = run(&resources, Desired::Active);
        assert_eq!(outcome, Outcome::AlreadyThere);
        assert!(steps.is_empty());
        assert_eq!(run(&resources, Desired::Standby).0, Outcome::Done);
        assert_eq!(run(&resources, Desired::Standby).0, Outcome::AlreadyThere);
    }

    #[test]
    fn only_missing_steps_run() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let fakes = three(&journal);
        *fakes[0].active.lock().unwrap() = true;
        let resources = boxed(fakes);
        run(&resources, Desired::Active);
        assert_eq!(*journal.lock().unwrap(), ["take mount", "take service"]);
    }

    #[test]
    fn failed_take_rolls_back_what_was_taken() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three(&journal);
        fakes[2].fail_take = true;
        let resources = boxed(fakes);
        let (outcome, steps) = run(&resources, Desired::Active);
        assert_eq!(
            outcome,
            Outcome::TakeFailed {
                resource: "service".into(),
                error: "no".into()
            }
        );
        assert_eq!(
            *journal.lock().unwrap(),
            [
                "take volume",
                "take mount",
                "take service",
                "release mount",
                "release volume"
            ]
        );
        let actions: Vec<&str> = steps.iter().map(|s| s.action.as_str()).collect();
        assert_eq!(actions, ["take", "take", "take", "rollback", "rollback"]);
        assert!(!steps[2].ok && steps[2].error.as_deref() == Some("no"));
    }

    #[test]
    fn a_service_that_dies_right_after_start_fails_verification() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three(&journal);
        fakes[2].dies_after_take = true;
        let resources = boxed(fakes);
        let (outcome, steps) = run(&resources, Desired::Active);
        assert!(
            matches!(outcome, Outcome::TakeFailed { ref resource, .. } if resource == "service")
        );
        assert_eq!(steps.iter().filter(|s| s.action == "verify").count(), 1);
        assert_eq!(journal.lock().unwrap().last().unwrap(), "release volume");
    }

    #[test]
    fn failed_release_stops_before_detaching_storage() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three_active(&journal);
        fakes[1].fail_release = true;
        let resources = boxed(fakes);
        let (outcome, _) = run(&resources, Desired::Standby);
        assert!(
            matches!(outcome, Outcome::ReleaseFailed { ref resource, .. } if resource == "mount")
        );
        assert_eq!(
            *journal.lock().unwrap(),
            ["release service", "release mount"]
        );
    }

    #[test]
    fn a_restart_stops_services_in_reverse_then_starts_them_leaving_storage_alone() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three_active(&journal);
        fakes.push(Fake::new("service2", &journal));
        *fakes[3].active.lock().unwrap() = true;
        let resources = boxed(fakes);
        let (outcome, steps) = restart(&resources);
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(
            *journal.lock().unwrap(),
            [
                "release service2",
                "release service",
                "take service",
                "take service2"
            ]
        );
        let actions: Vec<&str> = steps.iter().map(|s| s.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "restart-stop",
                "restart-stop",
                "restart-start",
                "restart-start"
            ]
        );
    }

    #[test]
    fn a_restart_whose_stop_fails_starts_nothing() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three_active(&journal);
        fakes[2].fail_release = true;
        let resources = boxed(fakes);
        let (outcome, _) = restart(&resources);
        assert!(matches!(outcome, Outcome::ReleaseFailed { .. }));
        assert_eq!(*journal.lock().unwrap(), ["release service"]);
    }

    /// An active group re-converged: its volume's observation errors, its take fails. The
    /// rollback must not release the volume under the mount and service still active.
    #[test]
    fn a_failed_take_never_releases_under_what_was_already_held() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three_active(&journal);
        fakes[0].observe_fails = true;
        fakes[0].fail_take = true;
        let resources = boxed(fakes);
        let (outcome, steps) = run(&resources, Desired::Active);
        assert!(
            matches!(outcome, Outcome::TakeFailed { ref resource, .. } if resource == "volume")
        );
        assert_eq!(
            *journal.lock().unwrap(),
            ["take volume"],
            "nothing was released"
        );
        let rollback = steps.iter().find(|s| s.action == "rollback").unwrap();
        assert!(
            !rollback.ok
                && rollback
                    .error
                    .as_deref()
                    .unwrap()
                    .contains("mount above it"),
            "{rollback:?}"
        );
    }

    /// A rollback stops at the first release that fails: what lies below stays.
    #[test]
    fn a_rollback_stops_at_the_first_failed_release() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut fakes = three(&journal);
        fakes[1].fail_release = true;
        fakes[2].fail_take = true;
        let resources = boxed(fakes);
        run(&resources, Desired::Active);
        assert_eq!(
            *journal.lock().unwrap(),
            ["take volume", "take mount", "take service", "release mount"],
            "the volume is never released under the mount that failed to go"
        );
    }
}
