//! Filesystems and bind mounts. State comes from mountinfo, never from `mount` output.
//! A busy unmount ends the holders (TERM, a grace, KILL) rather than unmounting lazily:
//! a lazy unmount leaves writers on a device that the peer is about to take.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use super::procfs::{self, MountEntry};
use super::{wait_until, Context, DriverError, Kind, Observed, Resource};
use crate::config::Filesystem;
use crate::exec::Cmd;

const POLL: Duration = Duration::from_millis(100);
/// umount attempts after the holders are gone (the kernel drops references just after
/// the processes exit).
const UMOUNT_RETRIES: usize = 3;

pub struct Mount {
    fs: Filesystem,
    /// Another proc directory to read mounts and processes from (tests); else the
    /// context's mount table and /proc.
    proc: Option<PathBuf>,
}

impl Mount {
    pub fn new(fs: Filesystem) -> Self {
        Mount { fs, proc: None }
    }

    /// Reads mounts and processes from another proc directory (tests).
    pub fn with_proc(mut self, proc: impl Into<PathBuf>) -> Self {
        self.proc = Some(proc.into());
        self
    }

    fn proc(&self) -> &Path {
        self.proc.as_deref().unwrap_or(Path::new("/proc"))
    }

    fn mountpoint(&self) -> &Path {
        self.fs.mountpoint()
    }

    /// The `mount` command line that takes this filesystem.
    pub fn mount_argv(&self) -> Vec<String> {
        match &self.fs {
            Filesystem::Device {
                device,
                mountpoint,
                fstype,
                options,
            } => {
                let mut argv = vec!["mount".to_string(), "-t".into(), fstype.clone()];
                if !options.is_empty() {
                    argv.push("-o".into());
                    argv.push(options.join(","));
                }
                argv.push(device.display().to_string());
                argv.push(mountpoint.display().to_string());
                argv
            }
            Filesystem::Bind { source, mountpoint } => vec![
                "mount".into(),
                "--bind".into(),
                source.display().to_string(),
                mountpoint.display().to_string(),
            ],
        }
    }

    fn doing(&self) -> String {
        match &self.fs {
            Filesystem::Device {
                device, mountpoint, ..
            } => format!("mounting {} on {}", device.display(), mountpoint.display()),
            Filesystem::Bind { source, mountpoint } => format!(
                "bind-mounting {} on {}",
                source.display(),
                mountpoint.display()
            ),
        }
    }

    /// The mount table: the context's (kept current by the kernel's wakeups), or with
    /// `fresh`, read now (after our own mount or unmount).
    fn mounts(&self, ctx: &Context, fresh: bool) -> Result<Arc<Vec<MountEntry>>, DriverError> {
        let read = match &self.proc {
            Some(proc) => procfs::read_mountinfo(proc).map(Arc::new),
            None if fresh => ctx.mounts.refresh(),
            None => ctx.mounts.entries(),
        };
        read.map_err(|e| DriverError::Failed(format!("reading the mount table: {e}")))
    }

    /// Whether `entry` (mounted at our mountpoint) is what we would have mounted.
    fn is_ours(&self, entries: &[MountEntry], entry: &MountEntry) -> bool {
        match &self.fs {
            Filesystem::Device { device, .. } => same_device(entry, device),
            Filesystem::Bind { source, mountpoint } => {
                let shows = |src: &Path| {
                    procfs::bind_origin(entries, src, mountpoint)
                        .is_some_and(|(dev, root)| dev == entry.dev && root == entry.root)
                };
                // The path as written first: resolving it touches the filesystem.
                shows(source) || fs::canonicalize(source).is_ok_and(|s| shows(&s))
            }
        }
    }

    /// Holders of the mountpoint we may signal: never ourselves, never init.
    fn holders(&self) -> Vec<u32> {
        let own = std::process::id();
        procfs::holders(self.proc(), self.mountpoint())
            .into_iter()
            .filter(|pid| *pid != own && *pid != 1)
            .collect()
    }

    fn umount(&self, ctx: &Context) -> Result<(), DriverError> {
        let cmd = Cmd::new(
            [
                "umount".to_string(),
                self.mountpoint().display().to_string(),
            ],
            ctx.timeouts.command,
        );
        ctx.runner.run_ok(&cmd)?;
        Ok(())
    }

    /// TERM, wait up to the grace, KILL, wait again (processes in D state may not die).
    fn end_holders(&self, ctx: &Context, holders: &[u32]) {
        let mp = self.mountpoint().display();
        log::warn!("{mp} is busy: sending TERM to pids {holders:?}");
        signal(holders, Signal::TERM);
        let grace = ctx.timeouts.umount_grace;
        if wait_until(grace, POLL, || self.holders().is_empty()) {
            return;
        }
        let left = self.holders();
        log::warn!("{mp} still busy after {grace:?}: sending KILL to pids {left:?}");
        signal(&left, Signal::KILL);
        wait_until(grace, POLL, || self.holders().is_empty());
    }
}

fn signal(pids: &[u32], sig: Signal) {
    for pid in pids {
        if let Some(pid) = i32::try_from(*pid).ok().and_then(Pid::from_raw) {
            // ESRCH (already gone) is fine; anything else shows in the umount error.
            let _ = kill_process(pid, sig);
        }
    }
}

/// Whether the mount's source is `device`: same name, same target of symlinks
/// (/dev/disk/by-path/...), or the same block device number.
fn same_device(entry: &MountEntry, device: &Path) -> bool {
    if Path::new(&entry.source) == device {
        return true;
    }
    if entry.source.starts_with('/') {
        if let (Ok(a), Ok(b)) = (fs::canonicalize(device), fs::canonicalize(&entry.source)) {
            if a == b {
                return true;
            }
        }
    }
    fs::metadata(device).is_ok_and(|m| {
        m.file_type().is_block_device()
            && (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())) == entry.dev
    })
}

impl Resource for Mount {
    fn id(&self) -> String {
        format!("mount:{}", self.mountpoint().display())
    }

    fn kind(&self) -> Kind {
        Kind::Filesystem
    }

    fn observe(&self, ctx: &Context) -> Result<Observed, DriverError> {
        let entries = self.mounts(ctx, false)?;
        Ok(match procfs::mount_at(&entries, self.mountpoint()) {
            Some(_) => Observed::Active,
            None => Observed::Inactive,
        })
    }

    fn take(&self, ctx: &Context) -> Result<(), DriverError> {
        let mp = self.mountpoint();
        let entries = self.mounts(ctx, true)?;
        if let Some(entry) = procfs::mount_at(&entries, mp) {
            if self.is_ours(&entries, entry) {
                return Ok(());
            }
            return Err(DriverError::Failed(format!(
                "{}: {} ({} {}) is already mounted there; not stacking another mount",
                self.doing(),
                entry.source,
                entry.fstype,
                entry.root.display()
            )));
        }
        fs::create_dir_all(mp).map_err(|e| {
            DriverError::Failed(format!("{}: creating the mountpoint: {e}", self.doing()))
        })?;
        let mounted = match &self.fs {
            // A bind mount has no options to interpret: one syscall, no program (tests
            // with a fake /proc record the `mount --bind` command instead).
            Filesystem::Bind { source, mountpoint } if self.proc.is_none() => {
                open_bind_source(&entries, source)
                    .and_then(|fd| {
                        // The opened source itself is bound, not a path that could change.
                        let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
                        rustix::mount::mount_bind(by_fd.as_str(), mountpoint.as_path())
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|e| DriverError::Failed(format!("{}: {e}", self.doing())))
            }
            _ => ctx
                .runner
                .run_ok(&Cmd::new(self.mount_argv(), ctx.timeouts.command))
                .map(|_| ())
                .map_err(|e| DriverError::from(e).context(self.doing())),
        };
        // Whatever happened, the table the next observe reads must show it.
        let _ = self.mounts(ctx, true);
        mounted
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        let mp = self.mountpoint();
        let doing = format!("unmounting {}", mp.display());
        if procfs::mount_at(&self.mounts(ctx, true)?, mp).is_none() {
            return Ok(());
        }
        let first = match self.umount(ctx) {
            Ok(()) => {
                let _ = self.mounts(ctx, true);
                return Ok(());
            }
            Err(e) => e,
        };
        let entries = self.mounts(ctx, true)?;
        if procfs::mount_at(&entries, mp).is_none() {
            return Ok(());
        }
        // Whatever umount said, holders would keep it busy: end them, then retry.
        let holders = self.holders();
        if holders.is_empty() {
            return Err(first.context(with_submounts(&doing, &entries, mp)));
        }
        self.end_holders(ctx, &holders);
        let mut last = first;
        for attempt in 0..UMOUNT_RETRIES {
            if attempt > 0 {
                std::thread::sleep(POLL);
            }
            match self.umount(ctx) {
                Ok(()) => {
                    let _ = self.mounts(ctx, true);
                    return Ok(());
                }
                Err(e) => last = e,
            }
            if procfs::mount_at(&self.mounts(ctx, true)?, mp).is_none() {
                return Ok(());
            }
        }
        let left = self.holders();
        let mut what = with_submounts(&doing, &self.mounts(ctx, true).unwrap_or_default(), mp);
        what.push_str(&format!(" (signalled pids {holders:?}"));
        if !left.is_empty() {
            what.push_str(&format!(", still holding: {left:?}"));
        }
        what.push(')');
        Err(last.context(what))
    }
}

/// Opens a bind mount's source without following any symlink inside the filesystem that
/// holds it (and without leaving that filesystem): the source usually lies in a tree that
/// others can write (an NFS export, a service's data), and a symlink planted there must
/// not make root bind-mount some other place. The filesystem's own mountpoint is taken
/// from the kernel's mount table.
fn open_bind_source(entries: &[MountEntry], source: &Path) -> Result<rustix::fd::OwnedFd, String> {
    use rustix::fs::{open, openat2, Mode, OFlags, ResolveFlags};
    let base = procfs::containing_mount(entries, source, None)
        .map(|e| e.mount_point.clone())
        .unwrap_or_else(|| PathBuf::from("/"));
    let rest = source.strip_prefix(&base).unwrap_or(source);
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let dir = open(&base, flags | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| format!("opening {}: {e}", base.display()))?;
    if rest.as_os_str().is_empty() {
        return Ok(dir);
    }
    let resolve = ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV;
    openat2(&dir, rest, flags, Mode::empty(), resolve).map_err(|e| match e {
        rustix::io::Errno::LOOP => format!(
            "{} has a symlink in it (below {}); refusing to follow it",
            source.display(),
            base.display()
        ),
        rustix::io::Errno::XDEV => format!(
            "{} crosses into another filesystem below {}",
            source.display(),
            base.display()
        ),
        e => format!("opening {}: {e}", source.display()),
    })
}

fn with_submounts(doing: &str, entries: &[MountEntry], mp: &Path) -> String {
    let below = procfs::mounts_below(entries, mp);
    if below.is_empty() {
        return doing.to_string();
    }
    let list: Vec<String> = below
        .iter()
        .map(|e| e.mount_point.display().to_string())
        .collect();
    format!("{doing} (mounted below it: {})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Timeouts;
    use crate::exec::{ExecError, Output, RecordingRunner};
    use std::os::unix::fs::symlink;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn device(mp: &Path) -> Filesystem {
        Filesystem::Device {
            device: "/dev/sdb".into(),
            mountpoint: mp.to_path_buf(),
            fstype: "xfs".into(),
            options: vec!["noatime".into(), "nodev".into()],
        }
    }

    /// A fake /proc whose mountinfo is `mountinfo`.
    fn fake_proc(mountinfo: &str) -> tempfile::TempDir {
        let proc = tempfile::tempdir().unwrap();
        fs::create_dir_all(proc.path().join("self")).unwrap();
        fs::write(proc.path().join("self/mountinfo"), mountinfo).unwrap();
        proc
    }

    fn ctx<'a>(runner: &'a RecordingRunner, timeouts: &'a Timeouts) -> Context<'a> {
        Context::plain(runner, timeouts)
    }

    #[test]
    fn mount_argv_for_device_and_bind() {
        let dev = Mount::new(device(Path::new("/srv/nfs")));
        assert_eq!(
            dev.mount_argv().join(" "),
            "mount -t xfs -o noatime,nodev /dev/sdb /srv/nfs"
        );
        let plain = Mount::new(Filesystem::Device {
            device: "/dev/sdb".into(),
            mountpoint: "/srv/nfs".into(),
            fstype: "ext4".into(),
            options: vec![],
        });
        assert_eq!(
            plain.mount_argv().join(" "),
            "mount -t ext4 /dev/sdb /srv/nfs"
        );
        let bind = Mount::new(Filesystem::Bind {
            source: "/srv/nfs/.state/nfs".into(),
            mountpoint: "/var/lib/nfs".into(),
        });
        assert_eq!(
            bind.mount_argv().join(" "),
            "mount --bind /srv/nfs/.state/nfs /var/lib/nfs"
        );
        assert_eq!(bind.id(), "mount:/var/lib/nfs");
    }

    #[test]
    fn take_creates_the_mountpoint_and_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let mp = tmp.path().join("srv/nfs");
        let proc = fake_proc("27 1 254:0 / / rw - ext4 /dev/vda1 rw\n");
        let mount = Mount::new(device(&mp)).with_proc(proc.path());
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let c = ctx(&runner, &timeouts);
        assert_eq!(mount.observe(&c).unwrap(), Observed::Inactive);
        mount.take(&c).unwrap();
        assert!(mp.is_dir());
        assert_eq!(
            runner.calls(),
            vec![format!(
                "mount -t xfs -o noatime,nodev /dev/sdb {}",
                mp.display()
            )]
        );
    }

    #[test]
    fn take_when_mounted_does_nothing() {
        let proc = fake_proc("98 27 8:16 / /srv/nfs rw - xfs /dev/sdb rw\n");
        let mount = Mount::new(device(Path::new("/srv/nfs"))).with_proc(proc.path());
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let c = ctx(&runner, &timeouts);
        assert_eq!(mount.observe(&c).unwrap(), Observed::Active);
        mount.take(&c).unwrap();
        assert!(runner.calls().is_empty());
    }

    #[test]
    fn take_refuses_to_stack_on_another_device() {
        let proc = fake_proc("98 27 8:32 / /srv/nfs rw - xfs /dev/sdc rw\n");
        let mount = Mount::new(device(Path::new("/srv/nfs"))).with_proc(proc.path());
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let err = mount
            .take(&ctx(&runner, &timeouts))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/sdc"), "{err}");
        assert!(runner.calls().is_empty());
    }

    #[test]
    fn bind_take_recognises_its_own_bind_mount() {
        let proc = fake_proc(
            "27 1 254:0 / / rw - ext4 /dev/vda1 rw\n\
             98 27 8:16 / /srv/nfs rw - xfs /dev/sdb rw\n\
             99 27 8:16 /.state/nfs /var/lib/nfs rw - xfs /dev/sdb rw\n",
        );
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let ours = Mount::new(Filesystem::Bind {
            source: "/srv/nfs/.state/nfs".into(),
            mountpoint: "/var/lib/nfs".into(),
        })
        .with_proc(proc.path());
        ours.take(&ctx(&runner, &timeouts)).unwrap();
        let other = Mount::new(Filesystem::Bind {
            source: "/srv/nfs/elsewhere".into(),
            mountpoint: "/var/lib/nfs".into(),
        })
        .with_proc(proc.path());
        assert!(other.take(&ctx(&runner, &timeouts)).is_err());
        assert!(runner.calls().is_empty());
    }

    #[test]
    fn release_when_not_mounted_does_nothing() {
        let proc = fake_proc("27 1 254:0 / / rw - ext4 /dev/vda1 rw\n");
        let mount = Mount::new(device(Path::new("/srv/nfs"))).with_proc(proc.path());
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        mount.release(&ctx(&runner, &timeouts)).unwrap();
        assert!(runner.calls().is_empty());
    }

    #[test]
    fn release_failure_without_holders_carries_stderr() {
        let proc = fake_proc("98 27 8:16 / /srv/nfs rw - xfs /dev/sdb rw\n");
        let mount = Mount::new(device(Path::new("/srv/nfs"))).with_proc(proc.path());
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        runner.respond(|c| {
            (c.program() == "umount").then(|| {
                Ok(Output {
                    code: Some(32),
                    stdout: String::new(),
                    stderr: "umount: /srv/nfs: target is busy.".into(),
                })
            })
        });
        let err = mount.release(&ctx(&runner, &timeouts)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unmounting /srv/nfs: umount exited 32: umount: /srv/nfs: target is busy."
        );
        assert_eq!(runner.calls(), vec!["umount /srv/nfs"]);
    }

    /// A busy unmount signals the holder (a child of this test, listed in a fake /proc
    /// with its cwd on the mountpoint) and retries.
    #[test]
    fn busy_release_terminates_holders_then_retries() {
        let proc = fake_proc("98 27 8:16 / /srv/nfs rw - xfs /dev/sdb rw\n");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid_dir = proc.path().join(child.id().to_string());
        fs::create_dir_all(&pid_dir).unwrap();
        symlink("/srv/nfs/work", pid_dir.join("cwd")).unwrap();

        let mount = Mount::new(device(Path::new("/srv/nfs"))).with_proc(proc.path());
        let runner = RecordingRunner::new();
        let tries = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&tries);
        runner.respond(move |c| {
            (c.program() == "umount" && seen.fetch_add(1, Ordering::SeqCst) == 0).then(|| {
                Err(ExecError::Failed {
                    program: "umount".into(),
                    code: Some(32),
                    stderr: "target is busy".into(),
                })
            })
        });
        let timeouts = Timeouts {
            umount_grace: Duration::from_millis(200),
            ..Timeouts::default()
        };
        mount.release(&ctx(&runner, &timeouts)).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(15));
        assert_eq!(runner.calls(), vec!["umount /srv/nfs", "umount /srv/nfs"]);
    }

    /// A symlink planted inside the bind source's filesystem is not followed.
    #[test]
    fn a_bind_source_is_opened_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("srv/nfs");
        fs::create_dir_all(export.join(".state/nfs")).unwrap();
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        symlink(tmp.path().join("etc"), export.join(".state/evil")).unwrap();
        let table = procfs::parse_mountinfo(&format!(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 7:0 / {} rw - ext4 /dev/loop0 rw\n",
            export.display()
        ));
        assert!(open_bind_source(&table, &export.join(".state/nfs")).is_ok());
        let err = open_bind_source(&table, &export.join(".state/evil")).unwrap_err();
        assert!(err.contains("symlink"), "{err}");
        let err = open_bind_source(&table, &export.join(".state/evil/x")).unwrap_err();
        assert!(err.contains("symlink") || err.contains("No such"), "{err}");
    }
}
