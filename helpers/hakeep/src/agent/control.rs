//! The agent's control socket: operator commands (`hakeep release`, `takeover`) ask the
//! agent to act, so every action on a group goes through its one worker and its lock.
//! One JSON request line in, one JSON reply line out; root only (mode 0600).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::mailbox::{Mailbox, Request};

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
    /// End a fault or release hold here, so this node may become MASTER again.
    Takeover { group: String },
}

impl ControlRequest {
    pub fn group(&self) -> &str {
        match self {
            ControlRequest::Release { group, .. } | ControlRequest::Takeover { group } => group,
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
    pub fn error(message: impl Into<String>) -> Self {
        ControlReply {
            ok: false,
            message: message.into(),
            release_started_ms: None,
            release_duration_ms: None,
        }
    }
}

/// Binds the socket, replacing a stale one from an earlier run (never anything else).
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "refusing to start: {} exists and is not a socket",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Serves requests one connection at a time, each on its own thread.
pub fn serve(listener: UnixListener, mailboxes: Arc<HashMap<String, Arc<Mailbox>>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mailboxes = mailboxes.clone();
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || handle(stream, &mailboxes));
        if let Err(e) = spawned {
            log::error!("control socket: cannot start a handler: {e}");
        }
    }
}

fn handle(stream: UnixStream, mailboxes: &HashMap<String, Arc<Mailbox>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let read = BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line);
    let reply = match read {
        Err(e) => ControlReply::error(format!("reading the request: {e}")),
        Ok(_) => match serde_json::from_str::<ControlRequest>(line.trim_end()) {
            Err(e) => ControlReply::error(format!("bad request: {e}")),
            Ok(request) => dispatch(request, mailboxes),
        },
    };
    let mut stream = stream;
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = stream.write_all(text.as_bytes());
    }
}

fn dispatch(request: ControlRequest, mailboxes: &HashMap<String, Arc<Mailbox>>) -> ControlReply {
    let Some(mailbox) = mailboxes.get(request.group()) else {
        return ControlReply::error(format!(
            "this node does not serve group {:?}",
            request.group()
        ));
    };
    log::info!("operator request: {request:?}");
    let (tx, rx) = mpsc::channel();
    mailbox.request(Request { request, reply: tx });
    rx.recv_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|_| ControlReply::error("the agent did not answer in time"))
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
    stream.write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream.take(1 << 20)).read_line(&mut line)?;
    serde_json::from_str(line.trim_end()).with_context(|| format!("the agent's reply {line:?}"))
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

    #[test]
    fn unknown_group_is_refused_without_waiting() {
        let reply = dispatch(
            ControlRequest::Takeover {
                group: "nope".into(),
            },
            &HashMap::new(),
        );
        assert!(!reply.ok && reply.message.contains("does not serve group"));
    }
}
