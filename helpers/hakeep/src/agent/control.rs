//! The agent's side of the control socket (the protocol is `runtime::control`): each
//! request goes to its group's worker, so every action on a group runs on that one
//! thread under the group's lock. Root only (mode 0600).

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::mailbox::{Mailbox, Request};
use crate::runtime::control::{
    read_request, write_reply, ControlReply, ControlRequest, REPLY_TIMEOUT,
};

/// Binds the socket, replacing a stale one from an earlier run (never anything else).
/// The caller holds the agent lock, so no live agent's socket is ever removed. The
/// socket is made 0600 from the start (umask around the bind), not chmod-ed after it.
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
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Only root may ask the agent to act (the socket's mode says so too; this holds even if
/// the mode were changed).
fn peer_is_root(stream: &UnixStream) -> Result<(), String> {
    let cred = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|e| format!("reading the caller's credentials: {e}"))?;
    if cred.uid.is_root() {
        Ok(())
    } else {
        Err(format!(
            "refused: the control socket answers root only (caller uid {}, pid {})",
            cred.uid.as_raw(),
            cred.pid.as_raw_nonzero()
        ))
    }
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
    if let Err(refusal) = peer_is_root(&stream) {
        log::warn!("control socket: {refusal}");
        write_reply(&stream, &ControlReply::error(refusal));
        return;
    }
    let reply = match read_request(&stream) {
        Err(e) => ControlReply::error(e),
        Ok(request) => dispatch(request, mailboxes),
    };
    write_reply(&stream, &reply);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_group_is_refused_without_waiting() {
        let reply = dispatch(
            ControlRequest::Takeover {
                group: "nope".into(),
                force: false,
            },
            &HashMap::new(),
        );
        assert!(!reply.ok && reply.message.contains("does not serve group"));
    }
}
