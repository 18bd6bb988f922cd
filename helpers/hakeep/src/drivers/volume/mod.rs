//! Volumes: shared storage attached, and fenced, before anything is mounted from it.

use std::path::{Path, PathBuf};

use super::Resource;
use crate::config::Volume;

pub mod iscsi;
pub mod none;
pub mod nvmesh;
mod nvmesh_status;

pub fn for_config(volume: &Volume) -> Box<dyn Resource> {
    match volume {
        Volume::None => Box::new(none::NoVolume),
        Volume::Iscsi(v) => Box::new(iscsi::Iscsi::new(v.clone())),
        Volume::Nvmesh(v) => Box::new(nvmesh::Nvmesh::new(v.clone())),
    }
}

/// `path` (absolute, as the commands see it) looked up under `root`, which tests
/// point at a scratch directory instead of `/`.
fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Proves nothing has the block device at `path` open before its volume is released: an
/// exclusive open fails with EBUSY while it is mounted anywhere, in any mount namespace
/// (a sandboxed unit's private mounts included), or held open by a program that asked
/// for exclusivity. A path that is not a block device (tests) is not checked.
pub fn ensure_unused(path: &Path, what: &str) -> Result<(), super::DriverError> {
    use rustix::fs::{open, stat, FileType, Mode, OFlags};
    let Ok(st) = stat(path) else {
        return Ok(());
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice {
        return Ok(());
    }
    match open(
        path,
        OFlags::RDONLY | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(_) => Ok(()),
        Err(rustix::io::Errno::BUSY) => Err(super::DriverError::Failed(format!(
            "{what}: {} is still in use (mounted, perhaps in another mount namespace, or \
             held open); not releasing it",
            path.display()
        ))),
        Err(e) => Err(super::DriverError::Failed(format!(
            "{what}: checking that {} is unused: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only: a loop device held exclusively (as a mount holds its device) is refused;
    /// once let go, it passes.
    #[test]
    fn a_block_device_in_use_is_not_released() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let out = std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let result = (|| {
            ensure_unused(&dev, "test")?;
            let held = rustix::fs::open(
                &dev,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::EXCL,
                rustix::fs::Mode::empty(),
            )
            .unwrap();
            let busy = ensure_unused(&dev, "test").unwrap_err().to_string();
            drop(held);
            ensure_unused(&dev, "test")?;
            Ok::<String, crate::drivers::DriverError>(busy)
        })();
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&dev)
            .status();
        let busy = result.unwrap();
        assert!(busy.contains("still in use"), "{busy}");
    }
}
