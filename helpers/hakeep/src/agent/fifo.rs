//! The notify FIFO keepalived writes to. The agent creates it once and then always reuses
//! it: re-creating it would strand keepalived on the old inode (docs/design.md §7).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::mpsc::Sender;

use anyhow::{bail, Context};

use crate::keepalived::notify::{parse_line, Event, LineSplitter};

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

/// Creates the FIFO (mode 0600) or reuses an existing one after checking it.
pub fn open(path: &Path) -> anyhow::Result<File> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.file_type().is_fifo() {
                bail!(
                    "refusing to start: {} exists and is not a FIFO",
                    path.display()
                );
            }
            if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o077 != 0 {
                bail!(
                    "refusing to start: FIFO {} has owner uid {} and mode {:o}; expected ours and 0600",
                    path.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .with_context(|| format!("creating FIFO {}", path.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
    // Read-write, as keepalived does: we never see EOF when keepalived restarts.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening FIFO {}", path.display()))
}

/// Reads events forever, sending the valid ones; garbage is logged and dropped.
pub fn read_events(mut fifo: File, events: Sender<Event>) {
    let mut splitter = LineSplitter::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match fifo.read(&mut buf) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("reading the notify FIFO failed: {e}; the periodic resync takes over");
                return;
            }
        };
        for line in splitter.feed(&buf[..n]) {
            match parse_line(&line) {
                Ok(event) => {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                Err(why) => log::warn!(
                    "ignoring notify FIFO line {:?}: {why}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                ),
            }
        }
    }
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

    #[test]
    fn refuses_a_path_that_is_not_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        std::fs::write(&path, b"").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("is not a FIFO"), "{err}");
    }

    #[test]
    fn events_flow_and_garbage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let reader = open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || read_events(reader, tx));
        let mut writer = OpenOptions::new().write(true).open(&path).unwrap();
        use std::io::Write;
        writer
            .write_all(b"\xff\xfe garbage\nINSTANCE \"web\" MASTER 200\n")
            .unwrap();
        let event = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(event.name, "web");
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
    }
}
