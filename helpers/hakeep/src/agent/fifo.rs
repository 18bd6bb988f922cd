//! The notify FIFO keepalived writes to: created (0600) or reused after a check. The
//! agent re-creates it only when it is gone (fifo_reader.rs), and reads the old one
//! until its writers close it, so a running keepalived is not stranded (docs/design.md §7).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};

/// Makes sure `dir` is a root-owned directory nobody else can write to.
pub fn secure_dir(dir: &Path, mode: u32) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing to use {}: it is writable by group or others (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        );
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        bail!(
            "refusing to use {}: owned by uid {}, not by us",
            dir.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// Creates the FIFO (mode 0600) or reuses an existing one after checking it: a FIFO of
/// ours, mode 0600. A symlink or anything else at the path is refused, and what was
/// opened is checked again through the descriptor (the path may change in between).
pub fn open(path: &Path) -> anyhow::Result<File> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => check(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            ) {
                // Someone made one in between: it is checked below like any other.
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating FIFO {}", path.display()))
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
    // Read-write, as keepalived does: we never see EOF when keepalived restarts.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .with_context(|| format!("opening FIFO {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("inspecting FIFO {}", path.display()))?;
    check(path, &meta)?;
    if meta.mode() & 0o077 != 0 {
        // keepalived's own (it makes one, 0660 root:root, when it starts while the path
        // is missing): narrowed through the descriptor, so nothing can swap it meanwhile.
        rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o600))
            .with_context(|| format!("making FIFO {} 0600", path.display()))?;
        log::warn!(
            "FIFO {} had mode {:o} (made by keepalived?); it is 0600 now",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(file)
}

fn check(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    if meta.file_type().is_symlink() {
        bail!("refusing {}: it is a symlink, not a FIFO", path.display());
    }
    if !meta.file_type().is_fifo() {
        bail!("refusing {}: it exists and is not a FIFO", path.display());
    }
    // Ours and 0600; or ours with group root and no access for others, as keepalived
    // makes it (root's group can only be root's processes in this root-only directory).
    let ours = meta.uid() == rustix::process::geteuid().as_raw();
    let private = meta.mode() & 0o077 == 0 || (meta.gid() == 0 && meta.mode() & 0o007 == 0);
    if !ours || !private {
        bail!(
            "refusing FIFO {}: owner uid {}, group {} and mode {:o}; expected ours and 0600",
            path.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("hakeep");
        secure_dir(&run, 0o755).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = secure_dir(&run, 0o755).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }

    #[test]
    fn creates_a_private_fifo_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        drop(open(&path).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let inode = meta.ino();
        drop(open(&path).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "the FIFO was re-created"
        );
    }

    /// keepalived makes the FIFO 0660 root:root when it starts before the agent: taken
    /// and narrowed to 0600; one others could write is refused.
    #[test]
    fn narrows_keepalived_s_fifo_and_refuses_a_world_writable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let mkfifo = |mode: u32| {
            let _ = std::fs::remove_file(&path);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(mode),
                0,
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        if std::fs::metadata(dir.path()).unwrap().gid() == 0 {
            mkfifo(0o660);
            drop(open(&path).unwrap());
            assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        }
        mkfifo(0o666);
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("refusing FIFO"), "{err}");
    }

    #[test]
    fn refuses_a_path_that_is_not_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        std::fs::write(&path, b"").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("is not a FIFO"), "{err}");
    }

    #[test]
    fn refuses_a_symlink_to_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.fifo");
        drop(open(&real).unwrap());
        let path = dir.path().join("vrrp.fifo");
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");
    }
}
