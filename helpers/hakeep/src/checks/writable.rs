//! The `mount` check: the mountpoint is mounted and a file can be written and removed at
//! its top. Run as root on a filesystem others may write to, so nothing there is trusted:
//! the directory is opened without following a symlink and must be a mount's root, the
//! probe file gets a random name and is created exclusively (O_EXCL|O_NOFOLLOW, 0600)
//! relative to that directory, and removed through it. A hung filesystem must not hang
//! the worker: the probe runs in a thread the check waits for at most its timeout, and
//! while one is stuck no other starts on that mountpoint (threads don't pile up).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};

/// Mountpoints whose probe has not come back yet.
static STUCK: Stuck = Stuck::new();

/// Checks that `path` is a mountpoint that takes a write, within `timeout`.
pub fn mount_writable(path: &Path, timeout: Duration) -> Result<(), String> {
    let owned = path.to_path_buf();
    STUCK.bounded(path, timeout, move || probe(&owned))
}

/// A set of keys with a probe in flight; see [`Stuck::bounded`].
pub struct Stuck(Mutex<BTreeSet<PathBuf>>);

impl Stuck {
    pub const fn new() -> Self {
        Stuck(Mutex::new(BTreeSet::new()))
    }

    /// Runs `op` in a thread and waits at most `timeout` for it. While an earlier `op`
    /// for `key` has not returned, fails at once instead of starting another.
    pub fn bounded(
        &'static self,
        key: &Path,
        timeout: Duration,
        op: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<(), String> {
        {
            let mut stuck = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if !stuck.insert(key.to_path_buf()) {
                return Err(format!(
                    "an earlier probe of {} is still blocked",
                    key.display()
                ));
            }
        }
        let (tx, rx) = mpsc::channel();
        let owned = key.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("mount-probe".into())
            .spawn(move || {
                let result = op();
                // Off the list before answering: an answered probe never blocks the next.
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&owned);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
            return Err(format!("starting the probe of {}: {e}", key.display()));
        }
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer from {} within {timeout:?} (filesystem hung?)",
                key.display()
            )),
        }
    }
}

fn probe(path: &Path) -> Result<(), String> {
    let show = path.display();
    let dir = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {show}: {e}"))?;
    if !is_mount_root(&dir).map_err(|e| format!("inspecting {show}: {e}"))? {
        return Err(format!("{show} is not mounted"));
    }
    let name = random_name().map_err(|e| format!("choosing a probe name: {e}"))?;
    let file = rustix::fs::openat(
        &dir,
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| format!("creating {show}/{name}: {e}"))?;
    let mut file = std::fs::File::from(file);
    // Synced: a write only the page cache took says nothing about the storage.
    let written = file
        .write_all(b"hakeep\n")
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {show}/{name}: {e}"));
    drop(file);
    let removed = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty())
        .map_err(|e| format!("removing {show}/{name}: {e}"));
    written.and(removed)
}

/// The directory is the root of a mount (not a directory of the filesystem below, as
/// after an unmount). Kernels before 5.8 don't say: then its device differs from its
/// parent's (which misses a bind mount of the same filesystem).
fn is_mount_root(dir: &OwnedFd) -> rustix::io::Result<bool> {
    let st = rustix::fs::statx(dir, "", AtFlags::EMPTY_PATH, StatxFlags::empty())?;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    let parent = rustix::fs::statat(dir, "..", AtFlags::SYMLINK_NOFOLLOW)?;
    let me = rustix::fs::fstat(dir)?;
    Ok(me.st_dev != parent.st_dev)
}

/// `.hakeep-check-` and 16 random hex digits: nobody can plant a file there in advance.
pub(crate) fn random_name() -> rustix::io::Result<String> {
    let mut bytes = [0u8; 8];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    Ok(format!(".hakeep-check-{:016x}", u64::from_ne_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Instant;

    /// A tmpfs mounted on a scratch directory for the test's life, unmounted on drop
    /// (also when the test fails).
    struct Tmpfs {
        dir: tempfile::TempDir,
    }

    impl Tmpfs {
        fn mount() -> Tmpfs {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("mnt")).unwrap();
            rustix::mount::mount(
                "hakeep-test",
                dir.path().join("mnt"),
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                Some(c"size=1m,mode=0777"),
            )
            .unwrap();
            Tmpfs { dir }
        }

        fn mnt(&self) -> PathBuf {
            self.dir.path().join("mnt")
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.mnt(), rustix::mount::UnmountFlags::DETACH);
        }
    }

    fn root() -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        eprintln!("skipped: needs root (mounts a tmpfs)");
        false
    }

    /// A symlink planted where the old check wrote (`.hakeep-check-<agent pid>`) is
    /// neither followed nor removed: the file it points to outside stays as it was.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        if !root() {
            return;
        }
        let fs = Tmpfs::mount();
        let outside = fs.dir.path().join("precious");
        std::fs::write(&outside, b"keep me").unwrap();
        let planted = fs
            .mnt()
            .join(format!(".hakeep-check-{}", std::process::id()));
        std::os::unix::fs::symlink(&outside, &planted).unwrap();
        mount_writable(&fs.mnt(), Duration::from_secs(10)).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
        assert!(planted.symlink_metadata().unwrap().is_symlink());
        let left: Vec<_> = std::fs::read_dir(fs.mnt()).unwrap().collect();
        assert_eq!(left.len(), 1, "the probe left a file: {left:?}");
    }

    #[test]
    fn only_the_mount_itself_counts() {
        if !root() {
            return;
        }
        let fs = Tmpfs::mount();
        let link = fs.dir.path().join("link");
        std::os::unix::fs::symlink(fs.mnt(), &link).unwrap();
        let err = mount_writable(&link, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("opening"), "{err}");
        std::fs::create_dir(fs.mnt().join("sub")).unwrap();
        let err = mount_writable(&fs.mnt().join("sub"), Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("is not mounted"), "{err}");
    }

    /// A probe that blocks (a hung filesystem) costs the check its timeout, not more;
    /// while it stays blocked the next check fails at once without starting another.
    #[test]
    fn a_blocked_probe_is_bounded_and_not_repeated() {
        static PROBES: Stuck = Stuck::new();
        let key = Path::new("/hung");
        let (release, blocked) = channel::<()>();
        let started = Instant::now();
        let err = PROBES
            .bounded(key, Duration::from_millis(200), move || {
                let _ = blocked.recv();
                Ok(())
            })
            .unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let (ran_tx, ran) = channel();
        let err = PROBES
            .bounded(key, Duration::from_secs(5), move || {
                let _ = ran_tx.send(());
                Ok(())
            })
            .unwrap_err();
        assert!(err.contains("still blocked"), "{err}");
        assert!(ran.try_recv().is_err(), "a second probe was started");
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match PROBES.bounded(key, Duration::from_secs(5), || Ok(())) {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    assert!(e.contains("still blocked"), "{e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("the probe stays blocked after its release: {e}"),
            }
        }
    }
}
