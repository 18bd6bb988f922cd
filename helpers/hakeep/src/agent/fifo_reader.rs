//! Reads keepalived's notify FIFO for as long as the agent runs. The FIFO can go away
//! under the agent (removed by hand or a cleanup of /run, replaced, a read error): the
//! reader looks once a second whether the path still names the FIFO it reads, and if
//! not, opens the path again (re-creating a missing FIFO, refusing anything else there:
//! fifo::open), retrying with a bounded back-off. The FIFO it read before stays read,
//! from a read-only descriptor, until its last writer closes it: a keepalived that
//! opened it still writes there until it restarts or reloads, and opens the new one then.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::fifo;
use crate::keepalived::notify::{parse_line, Event, LineSplitter};

/// How often the path is compared with the FIFO being read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Back-off of a failing reopen: from FIRST_RETRY, doubling, to MAX_RETRY.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One FIFO being read, with its partial line.
struct Source {
    file: File,
    splitter: LineSplitter,
    /// (st_dev, st_ino) of the FIFO.
    id: (u64, u64),
}

impl Source {
    fn new(file: File) -> std::io::Result<Source> {
        let meta = file.metadata()?;
        Ok(Source {
            file,
            splitter: LineSplitter::default(),
            id: (meta.dev(), meta.ino()),
        })
    }
}

enum Got {
    Lines(Vec<Vec<u8>>),
    Empty,
    /// No writer is left (only seen on the read-only, retired descriptor).
    Eof,
}

fn read_some(source: &mut Source) -> std::io::Result<Got> {
    let mut buf = [0u8; 4096];
    match source.file.read(&mut buf) {
        Ok(0) => Ok(Got::Eof),
        Ok(n) => Ok(Got::Lines(source.splitter.feed(&buf[..n]))),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) =>
        {
            Ok(Got::Empty)
        }
        Err(e) => Err(e),
    }
}

/// The same FIFO, read-only and non-blocking: it reads EOF once no writer is left
/// (the read-write descriptor the agent reads with never does).
fn read_only(source: &Source) -> std::io::Result<Source> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(format!("/proc/self/fd/{}", source.file.as_raw_fd()))?;
    Ok(Source {
        file,
        splitter: LineSplitter::default(),
        id: source.id,
    })
}

pub struct Reader {
    path: PathBuf,
    current: Option<Source>,
    retired: Option<Source>,
    retry: Duration,
    next_open: Instant,
    next_check: Instant,
}

impl Reader {
    /// `first` is the FIFO the agent opened at start (fifo::open).
    pub fn new(path: &Path, first: File) -> Reader {
        let now = Instant::now();
        Reader {
            path: path.to_path_buf(),
            current: Source::new(first).ok(),
            retired: None,
            retry: FIRST_RETRY,
            next_open: now,
            next_check: now + CHECK_EVERY,
        }
    }

    /// Reads events forever, sending the valid ones; garbage is logged and dropped.
    /// Returns when nobody listens any more.
    pub fn run(mut self, events: Sender<Event>) {
        loop {
            for line in self.step() {
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

    /// Waits (at most about CHECK_EVERY) for input, reads it, and keeps the FIFO open.
    fn step(&mut self) -> Vec<Vec<u8>> {
        let now = Instant::now();
        if self.current.is_none() && now >= self.next_open {
            self.reopen();
        }
        if self.current.is_some() && now >= self.next_check {
            self.next_check = now + CHECK_EVERY;
            self.check_path();
        }
        let mut wait = self.next_check.saturating_duration_since(Instant::now());
        if self.current.is_none() {
            wait = wait.min(self.next_open.saturating_duration_since(Instant::now()));
        }
        let (current_ready, retired_ready) = self.wait_readable(wait);
        let mut lines = Vec::new();
        if current_ready {
            if let Some(source) = self.current.as_mut() {
                match read_some(source) {
                    Ok(Got::Lines(l)) => lines.extend(l),
                    Ok(Got::Empty | Got::Eof) => {}
                    Err(e) => {
                        log::error!(
                            "reading the notify FIFO {} failed: {e}; opening it again",
                            self.path.display()
                        );
                        self.current = None;
                        self.next_open = Instant::now() + self.retry;
                    }
                }
            }
        }
        if retired_ready {
            if let Some(source) = self.retired.as_mut() {
                match read_some(source) {
                    Ok(Got::Lines(l)) => lines.extend(l),
                    Ok(Got::Empty) => {}
                    Ok(Got::Eof) | Err(_) => {
                        log::info!("the old notify FIFO has no writer left; no longer read");
                        self.retired = None;
                    }
                }
            }
        }
        lines
    }

    fn wait_readable(&self, wait: Duration) -> (bool, bool) {
        let flags = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &self.current {
            fds.push(PollFd::new(&s.file, flags));
        }
        if let Some(s) = &self.retired {
            fds.push(PollFd::new(&s.file, flags));
        }
        if fds.is_empty() {
            std::thread::sleep(wait);
            return (false, false);
        }
        let timeout = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        if poll(&mut fds, Some(&timeout)).is_err() {
            return (false, false);
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        let mut ready = ready.into_iter();
        let current = self.current.is_some() && ready.next().unwrap_or(false);
        let retired = self.retired.is_some() && ready.next().unwrap_or(false);
        (current, retired)
    }

    /// The path no longer names the FIFO being read (removed, replaced): open it again,
    /// and go on reading the old one while a writer still has it.
    fn check_path(&mut self) {
        let Some(current) = &self.current else {
            return;
        };
        let now_there = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now_there == Some(current.id) {
            return;
        }
        log::warn!(
            "the notify FIFO {} was {}; opening it again (the old one is read until \
             keepalived closes it)",
            self.path.display(),
            if now_there.is_some() {
                "replaced"
            } else {
                "removed"
            }
        );
        match read_only(current) {
            Ok(old) => self.retired = Some(old),
            Err(e) => log::warn!("keeping the old notify FIFO open read-only: {e}"),
        }
        self.current = None;
        self.next_open = Instant::now();
        self.reopen();
    }

    fn reopen(&mut self) {
        let opened = fifo::open(&self.path).and_then(|f| Ok(Source::new(f)?));
        match opened {
            Ok(source) => {
                log::info!("reading the notify FIFO {} again", self.path.display());
                self.current = Some(source);
                self.retry = FIRST_RETRY;
                self.next_check = Instant::now() + CHECK_EVERY;
            }
            Err(e) => {
                log::error!(
                    "cannot open the notify FIFO: {e:#}; trying again in {:.1} s",
                    self.retry.as_secs_f32()
                );
                self.next_open = Instant::now() + self.retry;
                self.retry = (self.retry * 2).min(MAX_RETRY);
            }
        }
    }

    #[cfg(test)]
    fn fd_count(&self) -> usize {
        usize::from(self.current.is_some()) + usize::from(self.retired.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::mpsc::{channel, Receiver};

    fn start(path: &Path) -> Receiver<Event> {
        let reader = Reader::new(path, fifo::open(path).unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || reader.run(tx));
        rx
    }

    fn writer(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .unwrap()
    }

    fn next(rx: &Receiver<Event>) -> String {
        let event = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        format!("{} {}", event.name, event.state)
    }

    fn wait_for_fifo(path: &Path, not: Option<u64>) -> u64 {
        use std::os::unix::fs::FileTypeExt;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if m.file_type().is_fifo() && Some(m.ino()) != not {
                    return m.ino();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new FIFO at {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn events_flow_and_garbage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let rx = start(&path);
        writer(&path)
            .write_all(b"\xff\xfe garbage\nINSTANCE \"web\" MASTER 200\n")
            .unwrap();
        assert_eq!(next(&rx), "web MASTER");
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }

    /// Removed under the reader: it makes a new FIFO (0600) and reads it, and a writer
    /// that still has the old one open (keepalived before its restart) is heard too.
    #[test]
    fn a_removed_fifo_is_recreated_and_both_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let rx = start(&path);
        let old_inode = wait_for_fifo(&path, None);
        let mut old_writer = writer(&path);
        std::fs::remove_file(&path).unwrap();
        wait_for_fifo(&path, Some(old_inode));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        writer(&path)
            .write_all(b"INSTANCE \"web\" BACKUP 100\n")
            .unwrap();
        assert_eq!(next(&rx), "web BACKUP");
        old_writer
            .write_all(b"INSTANCE \"db\" MASTER 100\n")
            .unwrap();
        assert_eq!(next(&rx), "db MASTER");
    }

    /// Replaced by something that is not our FIFO (a symlink to a FIFO elsewhere): it is
    /// not followed; once a proper FIFO is back, events flow again.
    #[test]
    fn a_replacement_that_is_not_our_fifo_is_refused_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let rx = start(&path);
        wait_for_fifo(&path, None);
        let elsewhere = dir.path().join("elsewhere.fifo");
        drop(fifo::open(&elsewhere).unwrap());
        let mut lure = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&elsewhere)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        std::thread::sleep(CHECK_EVERY * 2);
        lure.write_all(b"INSTANCE \"web\" MASTER 200\n").unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "an event came through the symlink"
        );
        std::fs::remove_file(&path).unwrap();
        // Any FIFO here now is the reader's new one (the old one went before the
        // symlink). Not told apart by inode: the old one's may be reused once it is closed.
        wait_for_fifo(&path, None);
        writer(&path)
            .write_all(b"INSTANCE \"web\" BACKUP 100\n")
            .unwrap();
        assert_eq!(next(&rx), "web BACKUP");
    }

    /// The old FIFO is let go once nobody writes to it: replacements don't pile up fds.
    #[test]
    fn the_old_fifo_is_dropped_without_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrp.fifo");
        let mut reader = Reader::new(&path, fifo::open(&path).unwrap());
        for _ in 0..3 {
            std::fs::remove_file(&path).unwrap();
            reader.next_check = Instant::now();
            reader.step();
            assert!(reader.current.is_some(), "not reopened");
            let deadline = Instant::now() + Duration::from_secs(5);
            while reader.retired.is_some() {
                reader.step();
                assert!(Instant::now() < deadline, "the old FIFO stays open");
            }
            assert_eq!(reader.fd_count(), 1);
        }
    }
}
