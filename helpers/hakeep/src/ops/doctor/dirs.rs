//! `runtime-dirs`: the directories the agent writes (/run/hakeep, /var/log/hakeep,
//! /var/lib/hakeep) are root's alone, take a file, and have room.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatVfsMountFlags};
use rustix::io::Errno;

use super::{Check, Doctor, Finding, Status};

const MIB: u64 = 1 << 20;
/// Below this much free space a directory's filesystem is "low" (or below a quarter of
/// a small filesystem, such as a /run tmpfs of a few dozen MiB).
const LOW_BYTES: u64 = 50 * MIB;
/// ... or below this share of the filesystem (1/20: 5 %).
const LOW_SHARE: u64 = 20;

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
