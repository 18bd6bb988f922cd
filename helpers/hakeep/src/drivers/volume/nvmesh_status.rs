//! Whether the NVMesh client on this node holds a volume, from the client's own status
//! file, `PROC/nvmeibc/volumes/VOLUME/status.json` (the client kernel module's view of its
//! attach: access mode and IO state).
//!
//! The fields read are assumptions to check against the client version in use; they
//! live here only: `status` (the attach state, e.g. "IO Enabled") and the access the
//! attach holds, `reservation.mode` or `access` (e.g. "EXCLUSIVE_READ_WRITE"). Anything
//! else — IO disabled, a shared access, an unknown value — counts as not ours, so the
//! agent attaches with preempt instead of trusting what it cannot read.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The access hakeep attaches with (`nvmesh_attach_volumes --access`).
pub const EXCLUSIVE: &str = "EXCLUSIVE_READ_WRITE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Attached here, exclusive read-write, IO enabled.
    Owned,
    /// The client has no such volume attached here (no status file).
    NotAttached,
    /// Attached here but not ours: why (IO disabled after a preempt, shared access, ...).
    NotOurs(String),
}

impl fmt::Display for Ownership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ownership::Owned => write!(f, "attached here exclusively, IO enabled"),
            Ownership::NotAttached => write!(f, "not attached here"),
            Ownership::NotOurs(why) => write!(f, "attached here but not ours: {why}"),
        }
    }
}

pub fn status_path(proc: &Path, volume: &str) -> PathBuf {
    proc.join("nvmeibc/volumes")
        .join(volume)
        .join("status.json")
}

/// Reads the client's status of `volume` under `proc` (normally /proc). An unreadable
/// file is an error: neither ours nor free.
pub fn read(proc: &Path, volume: &str) -> Result<Ownership, String> {
    let path = status_path(proc, volume);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ownership::NotAttached),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

pub fn parse(text: &str) -> Result<Ownership, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("unreadable JSON: {e}"))?;
    let status = doc.get("status").and_then(Value::as_str).unwrap_or("");
    let access = doc
        .get("reservation")
        .and_then(|r| r.get("mode"))
        .or_else(|| doc.get("access"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let io_enabled = {
        let s = status.to_ascii_lowercase();
        s.contains("io enabled") && !s.contains("disabled")
    };
    if !io_enabled {
        return Ok(Ownership::NotOurs(format!("status {status:?}")));
    }
    if access != EXCLUSIVE {
        return Ok(Ownership::NotOurs(format!("access {access:?}")));
    }
    Ok(Ownership::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exclusive_attach_with_io_is_ours() {
        let owned = r#"{"status":"IO Enabled","reservation":{"mode":"EXCLUSIVE_READ_WRITE"}}"#;
        assert_eq!(parse(owned), Ok(Ownership::Owned));
        let flat = r#"{"status":"Attached IO Enabled","access":"EXCLUSIVE_READ_WRITE"}"#;
        assert_eq!(parse(flat), Ok(Ownership::Owned));
        let preempted = r#"{"status":"IO Disabled","reservation":{"mode":"EXCLUSIVE_READ_WRITE"}}"#;
        assert!(matches!(parse(preempted), Ok(Ownership::NotOurs(_))));
        let shared = r#"{"status":"IO Enabled","reservation":{"mode":"SHARED_READ_WRITE"}}"#;
        assert!(matches!(parse(shared), Ok(Ownership::NotOurs(_))));
        assert!(matches!(parse("{}"), Ok(Ownership::NotOurs(_))));
        assert!(parse("not json").is_err());
    }

    #[test]
    fn no_status_file_is_not_attached() {
        let proc = tempfile::tempdir().unwrap();
        assert_eq!(read(proc.path(), "db1"), Ok(Ownership::NotAttached));
    }
}
