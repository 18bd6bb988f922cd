//! The agent's control socket protocol: operator commands (`hakeep release`, `takeover`,
//! `switchover`) ask the agent to act, so every action on a group goes through its one
//! worker and its lock. One JSON request line in, one JSON reply line out; root only.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 4096;
/// A release may wait for slow service stops and busy unmounts; never forever.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum ControlRequest {
    /// Release the group here (services, mounts, volumes), then step down for `hold_secs`.
    Release {
        group: String,
        hold_secs: Option<u32>,
    },
    /// End a fault or release hold here, so this node may become MASTER again. A fence
    /// hold ends only with `force`.
    Takeover {
        group: String,
        #[serde(default)]
        force: bool,
    },
    /// Get ready to take the group over from its holder: end this node's hold (a fence
    /// hold only with `force`) and wait until keepalived here reports BACKUP (or MASTER)
    /// for it, so the holder's step-down moves the group at once instead of after a
    /// master-down timer.
    Prepare {
        group: String,
        #[serde(default)]
        force: bool,
    },
}

impl ControlRequest {
    pub fn group(&self) -> &str {
        match self {
            ControlRequest::Release { group, .. }
            | ControlRequest::Takeover { group, .. }
            | ControlRequest::Prepare { group, .. } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    pub message: String,
    /// Milliseconds since the epoch when the first release step began (outage start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_duration_ms: Option<u64>,
}

impl ControlReply {
    pub fn ok(message: impl Into<String>) -> Self {
        ControlReply {
            ok: true,
            message: message.into(),
            release_started_ms: None,
            release_duration_ms: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        ControlReply {
            ok: false,
            message: message.into(),
            release_started_ms: None,
            release_duration_ms: None,
        }
    }
}

/// Sends one request to the local agent and waits for its reply.
pub fn send(socket: &Path, request: &ControlRequest) -> anyhow::Result<ControlReply> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the agent at {} (is hakeep-agent running?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut text = serde_json::to_string(request)?;
    text.push('\n');
    // An agent that refuses the caller (not root) answers and closes without reading:
    // the write then fails (EPIPE) but its answer is there to read.
    if let Err(e) = stream.write_all(text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    let mut line = String::new();
    BufReader::new(stream.take(1 << 20)).read_line(&mut line)?;
    serde_json::from_str(line.trim_end()).with_context(|| format!("the agent's reply {line:?}"))
}

/// Reads one request line (bounded) from a connection.
pub fn read_request(stream: &UnixStream) -> Result<ControlRequest, String> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST))
        .read_line(&mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    serde_json::from_str::<ControlRequest>(line.trim_end()).map_err(|e| format!("bad request: {e}"))
}

/// Writes one reply line.
pub fn write_reply(mut stream: &UnixStream, reply: &ControlReply) {
    if let Ok(mut text) = serde_json::to_string(reply) {
        text.push('\n');
        let _ = stream.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_strict_json() {
        let r: ControlRequest =
            serde_json::from_str(r#"{"op":"release","group":"nfs","hold_secs":30}"#).unwrap();
        assert_eq!(
            r,
            ControlRequest::Release {
                group: "nfs".into(),
                hold_secs: Some(30)
            }
        );
        assert!(
            serde_json::from_str::<ControlRequest>(r#"{"op":"release","group":"nfs","x":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<ControlRequest>(r#"{"op":"reboot","group":"nfs"}"#).is_err()
        );
    }
}
