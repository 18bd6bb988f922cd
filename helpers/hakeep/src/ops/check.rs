//! `hakeep check`: the checks once, for scripts and monitoring. For a group active here:
//! its services, mounts and opt-in checks. For a group on standby here: nothing of it
//! may be active.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checks;
use crate::config::{Cluster, Group};
use crate::drivers::{self, Context, Observed, Timeouts, Units, HOST_MOUNTS};
use crate::exec::Runner;

/// Version of `check --json` (docs/check.schema.json); bumped only on incompatible changes.
pub const SCHEMA: u32 = 1;

/// `hakeep check --json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckReport {
    pub schema: u32,
    pub cluster: String,
    pub node: String,
    /// Every result is ok (the exit code is 0).
    pub ok: bool,
    pub results: Vec<CheckResult>,
}

impl CheckReport {
    pub fn new(cluster: &str, node: &str, results: Vec<CheckResult>) -> CheckReport {
        CheckReport {
            schema: SCHEMA,
            cluster: cluster.to_string(),
            node: node.to_string(),
            ok: results.iter().all(|r| r.ok),
            results,
        }
    }
}

/// What the group should be on this node: what its checks are judged against.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Active,
    Standby,
}

/// A resource of the group as observed, or one of its opt-in checks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    Resource,
    Check,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    pub group: String,
    pub role: Role,
    pub kind: ResultKind,
    /// The resource's id (`mount:/srv/nfs`) or the check (`tcp 192.168.56.100:2049`).
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// Runs the checks of `group` given whether it should be active on this node; `units`
/// answers for its systemd units.
pub fn group(
    runner: &dyn Runner,
    units: &dyn Units,
    cluster: &Cluster,
    node: &str,
    group: &Group,
    active: bool,
) -> Vec<CheckResult> {
    let timeouts = Timeouts::default();
    let ctx = Context {
        runner,
        units,
        mounts: &HOST_MOUNTS,
        cluster: &cluster.name,
        node,
        timeouts: &timeouts,
    };
    let role = if active { Role::Active } else { Role::Standby };
    let mut results = Vec::new();
    for resource in drivers::resources_of(cluster, group) {
        let observed = resource.observe(&ctx).map_err(|e| e.to_string());
        let (ok, detail) = judge(&observed, active);
        if matches!(observed, Ok(Observed::NotApplicable)) {
            continue;
        }
        results.push(CheckResult {
            group: group.name.clone(),
            role,
            kind: ResultKind::Resource,
            check: resource.id(),
            ok,
            detail,
        });
    }
    if active {
        for check in &group.checks {
            let timeout = Duration::from_secs(u64::from(check.timeout_secs));
            let outcome = checks::probe(runner, &check.kind, timeout, None);
            results.push(CheckResult {
                group: group.name.clone(),
                role,
                kind: ResultKind::Check,
                check: checks::describe(&check.kind),
                ok: outcome.is_ok(),
                detail: outcome.err().unwrap_or_else(|| "passed".into()),
            });
        }
    }
    results
}

/// Whether a resource observed so is as it should be on a node where its group is active
/// (or on standby), and the result's detail: `active`, `inactive but the group is
/// active here`, `active on a standby node`, or the error.
fn judge(observed: &Result<Observed, String>, active: bool) -> (bool, String) {
    let word = |o: &Observed| match o {
        Observed::Active => "active",
        Observed::Inactive => "inactive",
        Observed::NotApplicable => "n/a",
    };
    match (observed, active) {
        (Ok(Observed::NotApplicable), _) => (true, "n/a".into()),
        (Ok(o @ Observed::Active), true) | (Ok(o @ Observed::Inactive), false) => {
            (true, word(o).into())
        }
        (Ok(o), true) => (false, format!("{} but the group is active here", word(o))),
        (Ok(o), false) => (false, format!("{} on a standby node", word(o))),
        (Err(e), _) => (false, e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_judged_against_the_groups_role() {
        assert_eq!(judge(&Ok(Observed::Active), true), (true, "active".into()));
        assert_eq!(
            judge(&Ok(Observed::Inactive), false),
            (true, "inactive".into())
        );
        assert_eq!(
            judge(&Ok(Observed::Inactive), true),
            (false, "inactive but the group is active here".into())
        );
        assert_eq!(
            judge(&Ok(Observed::Active), false),
            (false, "active on a standby node".into())
        );
        assert_eq!(
            judge(&Err("exit 5".into()), false),
            (false, "exit 5".into())
        );
    }
}
