//! `holds`: groups this node stays out of for a while (hold records), and groups the agent
//! does not act on (maintenance flags). Both are warnings: they are meant, but they keep
//! the node from doing its whole job until they end.

use super::{Check, Doctor, Finding, Status};
use crate::runtime::holds::{self, HoldKind};
use crate::runtime::state::timestamp;

/// Longest reason quoted from a hold record.
const MAX_REASON: usize = 200;

pub(super) fn holds(d: &Doctor) -> Check {
    const ID: &str = "holds";
    let c = d.config_arg();
    let now = d.host.now();
    let warn = |message: String, fix: String| Finding {
        status: Status::Warn,
        message,
        fix: Some(fix),
    };
    let mut findings = Vec::new();
    if d.paths.maintenance_flag(None).exists() {
        findings.push(warn(
            "every group is in maintenance: the agent records but does not act".into(),
            format!("hakeep {c}maintenance off, once the work is done"),
        ));
    }
    for g in d.cluster.groups_of(d.node) {
        let name = &g.name;
        if d.paths.maintenance_flag(Some(name)).exists() {
            findings.push(warn(
                format!("{name}: in maintenance: the agent records but does not act"),
                format!("hakeep {c}maintenance off --group {name}, once the work is done"),
            ));
        }
        let file = d.paths.hold_file(name);
        match holds::read(&file) {
            Ok(Some(hold)) if !hold.remaining(now).is_zero() => {
                let until = timestamp(now + hold.remaining(now));
                let reason: String = hold.reason.chars().take(MAX_REASON).collect();
                let fix = match hold.kind {
                    HoldKind::Fence => format!(
                        "wait until {until}; `hakeep {c}takeover {name} --force` only once you \
                         know the node that took the storage no longer serves {name}"
                    ),
                    HoldKind::Fault => format!(
                        "fix the fault, then wait until {until} or end it with `hakeep \
                         {c}takeover {name}`"
                    ),
                    HoldKind::Operator => {
                        format!("wait until {until}, or end it with `hakeep {c}takeover {name}`")
                    }
                };
                findings.push(warn(
                    format!(
                        "{name}: {} hold until {until} ({reason})",
                        hold.kind.as_str()
                    ),
                    fix,
                ));
            }
            Ok(_) => {}
            Err(e) => findings.push(warn(
                format!(
                    "{name}: unreadable hold record ({e}): a restarted agent holds the group as \
                     fenced"
                ),
                format!(
                    "look at {}; remove it if this node may serve {name} again",
                    file.display()
                ),
            )),
        }
    }
    super::combine(
        ID,
        findings,
        "no group of this node is held or in maintenance",
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::runtime::holds::HoldRecord;
    use std::time::Duration;

    #[test]
    fn no_hold_and_no_flag_is_ok() {
        let lab = Fixture::new();
        let c = lab.run().check("holds");
        assert_eq!(
            (c.status, c.message.as_str()),
            (
                Status::Ok,
                "no group of this node is held or in maintenance"
            )
        );
    }

    #[test]
    fn holds_warn_with_kind_reason_end_and_fix() {
        let lab = Fixture::new();
        let now = lab.host.now;
        let hold = HoldRecord::new(
            HoldKind::Fence,
            "nfs2 took the volume".into(),
            now - Duration::from_secs(100),
            Duration::from_secs(600),
        );
        holds::write(&lab.paths.hold_file("nfs"), &hold).unwrap();
        let c = lab.run().check("holds");
        assert_eq!(c.status, Status::Warn);
        let until = timestamp(now + Duration::from_secs(500));
        assert_eq!(
            c.message,
            format!("nfs: fence hold until {until} (nfs2 took the volume)")
        );
        assert!(c.fix.unwrap().contains("takeover nfs --force"));

        let hold = HoldRecord::new(
            HoldKind::Operator,
            "released".into(),
            now,
            Duration::from_secs(60),
        );
        holds::write(&lab.paths.hold_file("nfs"), &hold).unwrap();
        let fix = lab.run().check("holds").fix.unwrap();
        assert!(
            fix.contains("takeover nfs`") && !fix.contains("--force"),
            "{fix}"
        );

        // An ended hold is no hold.
        let hold = HoldRecord::new(
            HoldKind::Fault,
            "old".into(),
            now - Duration::from_secs(120),
            Duration::from_secs(60),
        );
        holds::write(&lab.paths.hold_file("nfs"), &hold).unwrap();
        assert_eq!(lab.run().check("holds").status, Status::Ok);

        std::fs::write(lab.paths.hold_file("nfs"), "{").unwrap();
        let c = lab.run().check("holds");
        assert!(
            c.status == Status::Warn && c.message.contains("unreadable"),
            "{c:?}"
        );
    }

    #[test]
    fn maintenance_flags_warn_with_the_command_that_ends_them() {
        let lab = Fixture::new();
        crate::ops::maintenance::set(&lab.paths, Some("nfs"), true).unwrap();
        let c = lab.run().check("holds");
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.message,
            "nfs: in maintenance: the agent records but does not act"
        );
        assert!(
            c.fix.unwrap().contains("maintenance off --group nfs"),
            "fix"
        );
        crate::ops::maintenance::set(&lab.paths, None, true).unwrap();
        let c = lab.run().check("holds");
        assert!(
            c.message.starts_with("every group is in maintenance"),
            "{c:?}"
        );
    }
}
