//! The mount table, kept current without polling: the kernel marks /proc/self/mountinfo
//! readable with POLLPRI whenever a mount or unmount happens in our mount namespace, and
//! only then is it read again.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::drivers::procfs::{self, MountEntry, MountSource};

/// The live table of the agent's mount namespace, re-read only when the kernel says it
/// changed. `on_change` gets the watched mountpoints whose presence changed.
pub struct MountTable {
    table: RwLock<Arc<Vec<MountEntry>>>,
    watched: Vec<PathBuf>,
    present: Mutex<HashSet<PathBuf>>,
    on_change: OnChange,
}

type OnChange = Box<dyn Fn(&[PathBuf]) + Send + Sync>;

const MOUNTINFO: &str = "/proc/self/mountinfo";

impl MountTable {
    pub fn start(
        watched: Vec<PathBuf>,
        on_change: impl Fn(&[PathBuf]) + Send + Sync + 'static,
    ) -> std::io::Result<Arc<MountTable>> {
        let file = File::open(MOUNTINFO)?;
        let table = Arc::new(MountTable {
            table: RwLock::new(Arc::new(Vec::new())),
            watched,
            present: Mutex::new(HashSet::new()),
            on_change: Box::new(on_change),
        });
        table.reread(&file, false)?;
        let watcher = table.clone();
        std::thread::Builder::new()
            .name("mount-table".into())
            .spawn(move || watcher.follow(file))?;
        Ok(table)
    }

    /// Blocks in poll until the table changes, then reads it again.
    fn follow(&self, mut file: File) {
        loop {
            let mut fds = [PollFd::new(&file, PollFlags::PRI)];
            // A long timeout only as a safety net against a missed wakeup.
            let timeout = Timespec {
                tv_sec: 60,
                tv_nsec: 0,
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::error!("polling {MOUNTINFO}: {e}; reopening it in a second");
                    std::thread::sleep(Duration::from_secs(1));
                    match File::open(MOUNTINFO) {
                        Ok(f) => file = f,
                        Err(e) => log::error!("reopening {MOUNTINFO}: {e}"),
                    }
                    continue;
                }
            }
            if let Err(e) = self.reread(&file, true) {
                log::error!("reading {MOUNTINFO}: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// Reads the table from the start of `file` (which also acknowledges the POLLPRI).
    fn reread(&self, mut file: &File, notify: bool) -> std::io::Result<Arc<Vec<MountEntry>>> {
        file.seek(SeekFrom::Start(0))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let entries = Arc::new(procfs::parse_mountinfo(&text));
        if let Ok(mut table) = self.table.write() {
            *table = entries.clone();
        }
        let now: HashSet<PathBuf> = self
            .watched
            .iter()
            .filter(|w| procfs::mount_at(&entries, w).is_some())
            .cloned()
            .collect();
        let changed: Vec<PathBuf> = match self.present.lock() {
            Ok(mut present) => {
                let changed = present.symmetric_difference(&now).cloned().collect();
                *present = now;
                changed
            }
            Err(_) => Vec::new(),
        };
        if notify && !changed.is_empty() {
            (self.on_change)(&changed);
        }
        Ok(entries)
    }

    /// Is something mounted at `path` (from the table)?
    pub fn is_mounted(&self, path: &Path) -> bool {
        self.entries()
            .map(|e| procfs::mount_at(&e, path).is_some())
            .unwrap_or(false)
    }
}

impl MountSource for MountTable {
    fn entries(&self) -> std::io::Result<Arc<Vec<MountEntry>>> {
        self.table
            .read()
            .map(|t| t.clone())
            .map_err(|_| std::io::Error::other("mount table lock poisoned"))
    }

    fn refresh(&self) -> std::io::Result<Arc<Vec<MountEntry>>> {
        // Our own change: the watcher thread will notice it too, but callers verify now.
        let file = File::open(MOUNTINFO)?;
        self.reread(&file, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ROOT: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
    const SRV: &str = "40 22 7:0 / /srv/nfs rw,relatime shared:2 - ext4 /dev/loop0 rw\n";

    fn table(watched: &[&str]) -> (Arc<MountTable>, Arc<Mutex<Vec<PathBuf>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let table = Arc::new(MountTable {
            table: RwLock::new(Arc::new(Vec::new())),
            watched: watched.iter().map(PathBuf::from).collect(),
            present: Mutex::new(HashSet::new()),
            on_change: Box::new(move |paths: &[PathBuf]| {
                log.lock().unwrap().extend_from_slice(paths)
            }),
        });
        (table, seen)
    }

    fn rewrite(file: &mut File, text: &str) {
        file.set_len(0).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn reports_only_watched_mountpoints_that_came_or_went() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mountinfo");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let (table, seen) = table(&["/srv/nfs", "/var/lib/nfs"]);
        rewrite(&mut file, ROOT);
        table.reread(&file, false).unwrap();
        assert!(!table.is_mounted(Path::new("/srv/nfs")));
        rewrite(&mut file, &format!("{ROOT}{SRV}"));
        table.reread(&file, true).unwrap();
        assert!(table.is_mounted(Path::new("/srv/nfs")));
        assert_eq!(*seen.lock().unwrap(), vec![PathBuf::from("/srv/nfs")]);
        // Same table again: nothing to report.
        table.reread(&file, true).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
        rewrite(&mut file, ROOT);
        table.reread(&file, true).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(!table.is_mounted(Path::new("/srv/nfs")));
    }
}
