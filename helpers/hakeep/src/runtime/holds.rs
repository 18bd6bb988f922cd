//! Hold records: why a node stays out of a group, and until when. keepalived only sees
//! the track file's 1; the record beside it (under /var/lib, so it survives an agent
//! restart and a reboot) says what kind of hold it is and when it ends, so a restarted
//! agent resumes exactly that hold: a 600 s fence stays a 600 s fence.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldKind {
    /// A failed take, a failed check or service beyond its restart budget.
    #[default]
    Fault,
    /// Another node took this node's volume: it must not take it back soon.
    Fence,
    /// `hakeep release` or a switchover stepped this node down.
    Operator,
}

impl HoldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Fault => "fault",
            HoldKind::Fence => "fence",
            HoldKind::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRecord {
    pub kind: HoldKind,
    pub reason: String,
    /// Milliseconds since the epoch.
    pub since_ms: u64,
    pub until_ms: u64,
}

impl HoldRecord {
    pub fn new(kind: HoldKind, reason: String, now: SystemTime, length: Duration) -> Self {
        let since_ms = ms(now);
        HoldRecord {
            kind,
            reason,
            since_ms,
            until_ms: since_ms.saturating_add(length.as_millis() as u64),
        }
    }

    /// What is left of the hold at `now`. A clock that went backwards never makes a hold
    /// longer than it was given.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let length = self.until_ms.saturating_sub(self.since_ms);
        let left = self.until_ms.saturating_sub(ms(now)).min(length);
        Duration::from_millis(left)
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The hold recorded at `path`; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<HoldRecord>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() > 64 * 1024 => Err(format!("{} is too large", path.display())),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

pub fn write(path: &Path, hold: &HoldRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = serde_json::to_vec(hold).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes, 0o644).map(|_| ())
}

pub fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_survives_a_write_and_a_read_and_never_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holds/nfs.json");
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hold = HoldRecord::new(
            HoldKind::Fence,
            "fenced".into(),
            start,
            Duration::from_secs(600),
        );
        write(&path, &hold).unwrap();
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back, hold);
        assert_eq!(
            back.remaining(start + Duration::from_secs(100)),
            Duration::from_secs(500)
        );
        assert_eq!(
            back.remaining(start + Duration::from_secs(700)),
            Duration::ZERO
        );
        // The clock went back an hour: still at most the 600 s it was given.
        let earlier = start - Duration::from_secs(3600);
        assert_eq!(back.remaining(earlier), Duration::from_secs(600));
        clear(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        clear(&path).unwrap();
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.json");
        std::fs::write(&path, b"{\"kind\":\"fence\"").unwrap();
        assert!(read(&path).is_err());
    }
}
