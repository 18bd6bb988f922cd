//! The node itself: its protected units not enabled at boot (`units-disabled`), its clock
//! (`clock`); and [`SystemHost`], the real [`Host`].

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Check, Doctor, Finding, Host, Status};
use crate::config::Service;
use crate::exec::Cmd;

/// Longest `systemctl is-enabled` or `timedatectl` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The real node: NSS for users, /proc for processes, the system clock.
pub struct SystemHost;

impl Host for SystemHost {
    fn user_exists(&self, name: &str) -> Result<bool, String> {
        crate::keepalived::check::user_exists(name)
    }

    fn hakeep_started(&self, pid: u32) -> Option<SystemTime> {
        let proc = Path::new("/proc").join(pid.to_string());
        let comm = std::fs::read_to_string(proc.join("comm")).ok()?;
        if comm.trim() != "hakeep" {
            return None;
        }
        let stat = std::fs::read_to_string(proc.join("stat")).ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        start_time(&stat, &boot, rustix::param::clock_ticks_per_second())
    }

    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// When a process started, from its /proc/PID/stat (field 22, clock ticks since boot)
/// and /proc/stat's `btime` (boot, seconds since the epoch).
fn start_time(stat: &str, proc_stat: &str, ticks_per_second: u64) -> Option<SystemTime> {
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let since_boot = Duration::from_millis(ticks.saturating_mul(1000) / ticks_per_second.max(1));
    Some(UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
}

/// What `systemctl is-enabled UNIT` says, judged.
fn unit_finding(d: &Doctor, unit: &str) -> Finding {
    let cmd = Cmd::new(["systemctl", "is-enabled", unit], COMMAND_TIMEOUT);
    let said = |status, what: String, fix: Option<String>| Finding {
        status,
        message: format!("{unit} {what}"),
        fix,
    };
    let out = match d.runner.run(&cmd) {
        Ok(out) => out,
        Err(e) => {
            return said(
                Status::Warn,
                format!("cannot be asked about: {e}"),
                Some("run systemctl is-enabled on the node: is systemd running?".into()),
            )
        }
    };
    let state = out.stdout.lines().next().unwrap_or("").trim();
    match state {
        "disabled" | "static" | "indirect" | "linked" | "linked-runtime" | "transient" => {
            said(Status::Ok, state.into(), None)
        }
        "enabled" => said(
            Status::Fail,
            "is enabled: systemd starts it at boot, outside hakeep".into(),
            Some(format!("systemctl disable {unit}")),
        ),
        "enabled-runtime" => said(
            Status::Fail,
            "is enabled until the next boot (enabled-runtime): systemd may start it outside hakeep"
                .into(),
            Some(format!("systemctl disable --runtime {unit}")),
        ),
        "masked" | "masked-runtime" => said(
            Status::Fail,
            format!("is {state}: hakeep cannot start it"),
            Some(format!(
                "systemctl unmask{} {unit}",
                if state == "masked-runtime" {
                    " --runtime"
                } else {
                    ""
                }
            )),
        ),
        "generated" => said(
            Status::Warn,
            "is generated (an /etc/init.d script or fstab?): its generator may start it at boot"
                .into(),
            Some(format!(
                "make sure nothing but hakeep starts {unit} (update-rc.d {} disable for an \
                 init script)",
                unit.trim_end_matches(".service")
            )),
        ),
        "alias" => said(
            Status::Warn,
            "is an alias: what counts is the unit it names".into(),
            Some(format!(
                "systemctl is-enabled $(systemctl show -P Id {unit}); name that unit in the \
                 cluster file"
            )),
        ),
        _ if state == "not-found"
            || out.stderr.contains("No such file or directory")
            || out.stderr.contains("not found") =>
        {
            said(
                Status::Fail,
                "is not installed: hakeep cannot start it".into(),
                Some(format!(
                    "install the package that provides {unit} (the hakeep role installs what \
                     `hakeep plan` lists)"
                )),
            )
        }
        _ => said(
            Status::Warn,
            format!(
                "cannot be asked about: systemctl is-enabled said {:?}",
                if state.is_empty() {
                    out.stderr.trim()
                } else {
                    state
                }
            ),
            Some("run systemctl is-enabled on the node: is systemd running?".into()),
        ),
    }
}

pub(super) fn units_disabled(d: &Doctor) -> Check {
    const ID: &str = "units-disabled";
    let mut units: Vec<&str> = Vec::new();
    for g in d.cluster.groups_of(d.node) {
        for s in &g.services {
            if let Service::Unit(u) = s {
                if !units.contains(&u.as_str()) {
                    units.push(u);
                }
            }
        }
    }
    let findings: Vec<Finding> = units.iter().map(|u| unit_finding(d, u)).collect();
    let mut check = super::combine(
        ID,
        findings,
        "no group of this node protects a systemd unit",
    );
    if check.status == Status::Ok && !units.is_empty() {
        check.message = format!(
            "not enabled at boot (hakeep starts them): {}",
            check.message
        );
    }
    check
}

pub(super) fn clock(d: &Doctor) -> Check {
    const ID: &str = "clock";
    let why = "switchover's outage and the holds' end times are read from the nodes' clocks";
    let cmd = Cmd::new(
        ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
        COMMAND_TIMEOUT,
    );
    let unknown = |detail: String| {
        Check::warn(
            ID,
            format!("cannot tell whether the clock is synchronised: {detail}"),
            "check time synchronisation by hand (timedatectl status; chronyc tracking)",
        )
    };
    match d.runner.run_ok(&cmd) {
        Ok(out) => match out.stdout.trim() {
            "yes" => Check::ok(ID, "the clock is synchronised (NTP)"),
            "no" => Check::warn(
                ID,
                format!("the clock is not synchronised: {why}"),
                "enable an NTP client: timedatectl set-ntp true (systemd-timesyncd), or chrony",
            ),
            other => unknown(format!("timedatectl said {other:?}")),
        },
        Err(e) => unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::exec::{ExecError, Output};

    #[test]
    fn process_start_times_come_from_proc() {
        let stat = "42 (hake ep) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 250 1000 10";
        let at = start_time(stat, "cpu 1 2\nbtime 1800000000\n", 100).unwrap();
        assert_eq!(at, UNIX_EPOCH + Duration::from_millis(1_800_000_002_500));
        assert_eq!(start_time("42 (x) S", "btime 1\n", 100), None);
        // The real one: this process started after boot and not in the future.
        let me = std::process::id();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let boot = std::fs::read_to_string("/proc/stat").unwrap();
        let started = start_time(&stat, &boot, rustix::param::clock_ticks_per_second()).unwrap();
        assert!(started <= SystemTime::now() + Duration::from_secs(2));
    }

    fn answers(lab: &Fixture, unit: &'static str, stdout: &'static str, code: i32) {
        lab.runner.respond(move |c| {
            (c.argv == ["systemctl", "is-enabled", unit]).then(|| {
                Ok(Output {
                    code: Some(code),
                    stdout: stdout.into(),
                    stderr: if stdout.is_empty() {
                        format!(
                            "Failed to get unit file state for {unit}: No such file or directory"
                        )
                    } else {
                        String::new()
                    },
                })
            })
        });
    }

    #[test]
    fn a_protected_unit_enabled_at_boot_fails() {
        let lab = Fixture::new();
        answers(&lab, "nfs-server.service", "disabled\n", 1);
        let c = lab.run().check("units-disabled");
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("nfs-server.service disabled"), "{c:?}");
        assert!(lab
            .runner
            .calls()
            .contains(&"systemctl is-enabled nfs-server.service".to_string()));

        answers(&lab, "nfs-server.service", "enabled\n", 0);
        let c = lab.run().check("units-disabled");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some("systemctl disable nfs-server.service")
        );

        answers(&lab, "nfs-server.service", "masked\n", 1);
        let c = lab.run().check("units-disabled");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("systemctl unmask nfs-server.service")
        );

        answers(&lab, "nfs-server.service", "", 1);
        let c = lab.run().check("units-disabled");
        assert!(
            c.status == Status::Fail && c.message.contains("not installed"),
            "{c:?}"
        );

        answers(&lab, "nfs-server.service", "generated\n", 0);
        assert_eq!(lab.run().check("units-disabled").status, Status::Warn);
        answers(&lab, "nfs-server.service", "static\n", 0);
        assert_eq!(lab.run().check("units-disabled").status, Status::Ok);
    }

    #[test]
    fn without_systemd_the_units_cannot_be_told() {
        let lab = Fixture::new();
        lab.runner.respond(|c| {
            (c.program() == "systemctl").then(|| {
                Ok(Output {
                    code: Some(1),
                    stdout: String::new(),
                    stderr: "System has not been booted with systemd as init system (PID 1). \
                             Can't operate.\nFailed to connect to bus: Host is down"
                        .into(),
                })
            })
        });
        let c = lab.run().check("units-disabled");
        assert!(
            c.status == Status::Warn && c.message.contains("cannot be asked"),
            "{c:?}"
        );
        let no_units = Fixture::single();
        let c = no_units.run().check("units-disabled");
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Ok, "no group of this node protects a systemd unit")
        );
        assert!(no_units
            .runner
            .calls()
            .iter()
            .all(|c| !c.starts_with("systemctl")));
    }

    #[test]
    fn an_unsynchronised_or_unknown_clock_warns() {
        let lab = Fixture::new();
        let says = |stdout: &'static str, code: i32| {
            lab.runner.respond(move |c| {
                (c.program() == "timedatectl").then(|| Ok(Output::ok(code, stdout)))
            });
        };
        says("yes\n", 0);
        assert_eq!(lab.run().check("clock").status, Status::Ok);
        assert!(lab
            .runner
            .calls()
            .contains(&"timedatectl show -p NTPSynchronized --value".to_string()));
        says("no\n", 0);
        let c = lab.run().check("clock");
        assert!(c.status == Status::Warn && c.fix.unwrap().contains("set-ntp"));
        says("", 1);
        assert_eq!(lab.run().check("clock").status, Status::Warn);
        lab.runner.respond(|c| {
            (c.program() == "timedatectl").then(|| {
                Err(ExecError::Spawn {
                    program: "timedatectl".into(),
                    reason: "No such file or directory".into(),
                })
            })
        });
        let c = lab.run().check("clock");
        assert!(
            c.status == Status::Warn && c.message.contains("cannot tell"),
            "{c:?}"
        );
    }

    /// Against a real systemd: scripts/systemd-tests.sh runs the `real_` tests in a
    /// throwaway container with systemd as PID 1 (`systemctl is-enabled` as it answers).
    #[test]
    #[ignore]
    fn real_units_enabled_at_boot_fail() {
        use crate::exec::{Runner, SystemRunner};
        let unit = "hkt-doctor.service";
        // A vendor unit, as packages install them (masking one in /etc is refused).
        let file = format!("/usr/lib/systemd/system/{unit}");
        let sh = |argv: &[&str]| {
            SystemRunner
                .run_ok(&Cmd::new(argv.iter().copied(), Duration::from_secs(30)))
                .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        };
        std::fs::write(
            &file,
            "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        sh(&["systemctl", "daemon-reload"]);
        let lab = Fixture::with(
            "cluster: solo\nnodes:\n  s1: { address: 192.0.2.1, interface: eth0 }\n\
             groups:\n  g:\n    vrid: 7\n    nodes: [s1]\n    volumes: [none]\n    \
             ips: [{ address: 192.0.2.100/24 }]\n    services: [hkt-doctor.service]\n",
            "s1",
        );
        let check = |what: &str| {
            let c = units_disabled(&Doctor {
                runner: &SystemRunner,
                ..lab.doctor()
            });
            eprintln!("{what}: {c:?}");
            c
        };
        sh(&["systemctl", "enable", unit]);
        let c = check("enabled");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.fix.as_deref(),
            Some("systemctl disable hkt-doctor.service")
        );
        sh(&["systemctl", "disable", unit]);
        let c = check("disabled");
        assert!(
            c.status == Status::Ok && c.message.contains("hkt-doctor.service disabled"),
            "{c:?}"
        );
        sh(&["systemctl", "mask", unit]);
        let c = check("masked");
        assert_eq!(
            c.fix.as_deref(),
            Some("systemctl unmask hkt-doctor.service")
        );
        sh(&["systemctl", "unmask", unit]);
        std::fs::write(&file, "[Service]\nExecStart=/bin/sleep infinity\n").unwrap();
        sh(&["systemctl", "daemon-reload"]);
        assert_eq!(check("static").status, Status::Ok);
        std::fs::remove_file(&file).unwrap();
        sh(&["systemctl", "daemon-reload"]);
        let c = check("missing");
        assert!(
            c.status == Status::Fail && c.message.contains("not installed"),
            "{c:?}"
        );

        let c = clock(&Doctor {
            runner: &SystemRunner,
            ..lab.doctor()
        });
        eprintln!("clock: {c:?}");
        assert!(
            c.status != Status::Fail && !c.message.contains("cannot tell"),
            "{c:?}"
        );
    }
}
