//! The file for node_exporter's textfile collector: rewritten atomically (the collector
//! never reads half a file) soon after each change, and at least every resync interval
//! (the remaining hold seconds move on their own), by a thread of its own, so a worker
//! never waits for the disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::fsutil::write_atomic;

use super::lock;

/// Changes arriving together (the steps of one take) make one write.
const COALESCE: Duration = Duration::from_millis(100);

pub struct Textfile {
    path: PathBuf,
    dirty: Mutex<bool>,
    wake: Condvar,
    /// Only tests stop the writer; the agent's runs until the process ends.
    stopped: AtomicBool,
}

impl Textfile {
    pub fn new(path: &Path) -> Self {
        Textfile {
            path: path.to_path_buf(),
            dirty: Mutex::new(false),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
        }
    }

    #[cfg(test)]
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.changed();
    }

    pub fn changed(&self) {
        *lock(&self.dirty) = true;
        self.wake.notify_one();
    }

    /// Writes the file now, then after each change and every `every`, until the process ends.
    pub fn run(&self, every: Duration, render: &dyn Fn() -> String) {
        let mut failing = false;
        if let Some(dir) = self.path.parent().filter(|d| !d.is_dir()) {
            log::warn!(
                "metrics.textfile: {} is not a directory (node_exporter's textfile collector \
                 directory?); {} is written once it exists",
                dir.display(),
                self.path.display()
            );
            failing = true;
        }
        while !self.stopped.load(Ordering::Relaxed) {
            self.write(&render(), &mut failing);
            let mut dirty = lock(&self.dirty);
            if !*dirty {
                dirty = self
                    .wake
                    .wait_timeout(dirty, every)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let changed = std::mem::take(&mut *dirty);
            drop(dirty);
            if changed {
                std::thread::sleep(COALESCE);
                *lock(&self.dirty) = false;
            }
        }
    }

    /// One write; a failure is logged once until a write works again.
    fn write(&self, text: &str, failing: &mut bool) {
        match write_atomic(&self.path, text.as_bytes(), 0o644) {
            Ok(_) if *failing => {
                log::info!("metrics.textfile: {} is written now", self.path.display());
                *failing = false;
            }
            Ok(_) => {}
            Err(e) if !*failing => {
                log::warn!(
                    "metrics.textfile: cannot write {}: {e}",
                    self.path.display()
                );
                *failing = true;
            }
            Err(_) => {}
        }
    }
}
