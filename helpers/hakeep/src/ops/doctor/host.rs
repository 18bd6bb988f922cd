//! The node itself: its protected units not enabled at boot (`units-disabled`), its clock
//! (`clock`), the directories the agent writes (`runtime-dirs`); and [`SystemHost`], the
//! real [`Host`].

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, StatVfsMountFlags};
use rustix::io::Errno;

use super::{Check, Doctor, Finding, Host, Status};
use crate::config::Service;
use crate::exec::Cmd;

/// Longest `systemctl is-enabled` or `timedatectl` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;
/// Below this much free space a directory's filesystem is "low" (or below a quarter of
/// a small filesystem, such as a /run tmpfs of a few dozen MiB).
const LOW_BYTES: u64 = 50 * MIB;
/// ... or below this share of the filesystem (1/20: 5 %).
const LOW_SHARE: u64 = 20;

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

/// Free space and files of a directory's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Space {
    free: u64,
    size: u64,
    files_free: u64,
    files: u64,
    read_only: bool,
}

impl Space {
    fn status(&self) -> Status {
        if self.read_only || self.free == 0 || (self.files > 0 && self.files_free == 0) {
            Status::Fail
        } else if self.free * LOW_SHARE < self.size || self.free < LOW_BYTES.min(self.size / 4) {
            Status::Warn
        } else {
            Status::Ok
        }
    }

    fn describe(&self) -> String {
        if self.read_only {
            return "on a read-only filesystem".into();
        }
        if self.files > 0 && self.files_free == 0 {
            return "on a filesystem with no free inode".into();
        }
        format!(
            "{} of {} MiB free",
            self.free / MIB,
            self.size.div_ceil(MIB)
        )
    }
}

/// Opens `dir` (no symlink followed), creates and removes a file of a random name in it
/// (O_EXCL|O_NOFOLLOW, 0600: nothing planted is written through or removed), and reads
/// its filesystem's free space.
fn probe(dir: &Path) -> Result<Space, String> {
    let show = dir.display();
    let fd: OwnedFd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {show}: {e}"))?;
    let st = rustix::fs::fstatvfs(&fd).map_err(|e| format!("cannot statvfs {show}: {e}"))?;
    let space = Space {
        free: st.f_bavail.saturating_mul(st.f_frsize),
        size: st.f_blocks.saturating_mul(st.f_frsize),
        files_free: st.f_favail,
        files: st.f_files,
        read_only: st.f_flag.contains(StatVfsMountFlags::RDONLY),
    };
    if space.read_only {
        return Ok(space);
    }
    let name = crate::checks::random_name().map_err(|e| format!("choosing a probe name: {e}"))?;
    let written = rustix::fs::openat(
        &fd,
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .and_then(|f| rustix::io::write(&f, b"hakeep doctor\n").map(|_| ()));
    let removed = rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::empty());
    match written.and(removed.or_else(|e| if e == Errno::NOENT { Ok(()) } else { Err(e) })) {
        Ok(()) => Ok(space),
        Err(Errno::ROFS) => Ok(Space {
            read_only: true,
            ..space
        }),
        Err(Errno::NOSPC) | Err(Errno::DQUOT) => Ok(Space { free: 0, ..space }),
        Err(e) => Err(format!("cannot write in {show}: {e}")),
    }
}

fn dir_finding(dir: &Path, what: &str) -> Finding {
    let show = dir.display();
    // What the directory holds is said when something is wrong with it.
    let at = |status, message: String, fix: Option<String>| Finding {
        message: if status == Status::Ok {
            format!("{show} {message}")
        } else {
            format!("{show} ({what}) {message}")
        },
        status,
        fix,
    };
    let judge = |space: Space, said: &dyn Fn(String) -> String| {
        let status = space.status();
        let fix = match status {
            Status::Ok => None,
            _ if space.read_only => Some(format!("remount the filesystem of {show} read-write")),
            _ => Some(format!(
                "free space on the filesystem of {show} (df -h {show})"
            )),
        };
        at(status, said(space.describe()), fix)
    };
    let refused =
        format!("chown root:root {show}; chmod go-w {show}; systemctl restart hakeep-agent");
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The agent makes it: the nearest directory above must take it.
            let Some(above) = dir.ancestors().skip(1).find(|a| a.is_dir()) else {
                return at(
                    Status::Fail,
                    "is missing, and so is /".into(),
                    Some("check the node's filesystems".into()),
                );
            };
            match probe(above) {
                Ok(space) => judge(space, &|free| {
                    format!(
                        "is missing (the agent makes it; {} is writable, {free})",
                        above.display()
                    )
                }),
                Err(e) => at(
                    Status::Fail,
                    format!("is missing and cannot be made: {e}"),
                    Some(format!(
                        "make {above} writable for root",
                        above = above.display()
                    )),
                ),
            }
        }
        Err(e) => at(
            Status::Fail,
            format!("cannot be inspected: {e}"),
            Some(format!("ls -ld {show}: make it a directory of root's")),
        ),
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => at(
            Status::Fail,
            "is not a directory (or is a symlink): the agent refuses it".into(),
            Some(format!("rm {show}; systemctl restart hakeep-agent")),
        ),
        Ok(m) if m.mode() & 0o022 != 0 => at(
            Status::Fail,
            format!(
                "is writable by group or others (mode {:04o}): the agent refuses it",
                m.mode() & 0o7777
            ),
            Some(refused),
        ),
        Ok(m) if m.uid() != rustix::process::geteuid().as_raw() => at(
            Status::Fail,
            format!("is owned by uid {}: the agent refuses it", m.uid()),
            Some(refused),
        ),
        Ok(_) => match probe(dir) {
            Ok(space) => judge(space, &|free| format!("is writable, {free}")),
            Err(e) => at(
                Status::Fail,
                e,
                Some(format!("make {show} writable for root")),
            ),
        },
    }
}

pub(super) fn runtime_dirs(d: &Doctor) -> Check {
    const ID: &str = "runtime-dirs";
    let p = d.paths;
    let mut dirs = vec![(p.run_dir.as_path(), "state.json, the FIFO, track files")];
    if let Some(log) = p.actions_log.parent() {
        dirs.push((log, "actions.log"));
    }
    if let Some(lib) = p.holds_dir.parent() {
        dirs.push((lib, "holds, maintenance flags"));
    }
    let findings = dirs
        .into_iter()
        .map(|(dir, what)| dir_finding(dir, what))
        .collect();
    super::combine(ID, findings, "")
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

    #[test]
    fn low_space_warns_and_none_fails() {
        let space = |free: u64, size: u64| Space {
            free,
            size,
            files_free: 10,
            files: 100,
            read_only: false,
        };
        assert_eq!(space(10 << 30, 100 << 30).status(), Status::Ok);
        assert_eq!(
            space(4 << 30, 100 << 30).status(),
            Status::Warn,
            "under 5 %"
        );
        assert_eq!(
            space(45 * MIB, 500 * MIB).status(),
            Status::Warn,
            "under 50 MiB"
        );
        assert_eq!(
            space(30 * MIB, 32 * MIB).status(),
            Status::Ok,
            "a small tmpfs"
        );
        assert_eq!(space(0, 32 * MIB).status(), Status::Fail);
        let no_inode = Space {
            files_free: 0,
            ..space(10 << 30, 100 << 30)
        };
        assert_eq!(no_inode.status(), Status::Fail);
        let ro = Space {
            read_only: true,
            ..space(10 << 30, 100 << 30)
        };
        assert_eq!(ro.status(), Status::Fail);
    }

    #[test]
    fn the_runtime_dirs_must_be_root_s_and_writable() {
        use std::os::unix::fs::PermissionsExt;
        let lab = Fixture::new();
        let c = lab.run().check("runtime-dirs");
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("is writable"), "{c:?}");
        // Nothing left behind by the probes.
        let left: Vec<_> = std::fs::read_dir(&lab.paths.run_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".hakeep-check-")
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");

        // Missing, but the directory above takes it.
        let log = lab.paths.actions_log.parent().unwrap().to_path_buf();
        std::fs::remove_dir_all(&log).unwrap();
        let c = lab.run().check("runtime-dirs");
        assert!(
            c.status == Status::Ok && c.message.contains("is missing (the agent makes it;"),
            "{c:?}"
        );

        // Writable by others: the agent refuses it.
        let run = lab.paths.run_dir.clone();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        let c = lab.run().check("runtime-dirs");
        assert!(
            c.status == Status::Fail && c.message.contains("writable by group or others"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("chmod go-w"));
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();

        // A symlink is not followed.
        std::os::unix::fs::symlink(lab.dir.path(), &log).unwrap();
        let c = lab.run().check("runtime-dirs");
        assert!(
            c.status == Status::Fail && c.message.contains("symlink"),
            "{c:?}"
        );
    }
}
