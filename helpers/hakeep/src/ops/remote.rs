//! Running hakeep on a peer over SSH (ssh2): key authentication (ssh-agent, then the
//! configured key), host keys checked against known_hosts, every step bounded in time.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use ssh2::{CheckResult, KnownHostFileKind, Session};

use crate::config::{Node, SshSettings};

/// The output of a remote command.
pub struct RemoteOutput {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hakeep ARGS...` on `node`. Arguments are fixed words and validated names, so
/// the remote command line needs no quoting beyond what is checked here.
pub fn hakeep(
    ssh: &SshSettings,
    node: &Node,
    config: &Path,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<RemoteOutput> {
    let mut words = vec![
        ssh.hakeep.display().to_string(),
        "-c".into(),
        config.display().to_string(),
    ];
    words.extend(args.iter().map(|a| a.to_string()));
    if let Some(bad) = words
        .iter()
        .find(|w| !w.chars().all(safe_word_char) || w.is_empty())
    {
        bail!("refusing to send {bad:?} to a remote shell");
    }
    run(ssh, node, &words.join(" "), timeout)
}

fn safe_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | ',' | '=')
}

fn run(
    ssh: &SshSettings,
    node: &Node,
    command: &str,
    timeout: Duration,
) -> anyhow::Result<RemoteOutput> {
    let session = session(ssh, node, timeout)?;
    let mut channel = session.channel_session()?;
    channel.exec(command).with_context(|| {
        format!(
            "running {command:?} on {}",
            SocketAddr::new(node.address, ssh.port)
        )
    })?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    channel.read_to_string(&mut stdout)?;
    channel.stderr().read_to_string(&mut stderr)?;
    channel.wait_close()?;
    Ok(RemoteOutput {
        exit: channel.exit_status()?,
        stdout,
        stderr,
    })
}

/// What is wrong with a peer's host key, as known_hosts sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyProblem {
    /// known_hosts could not be read.
    Unreadable,
    /// No entry for the peer: never learned, refused.
    NotFound,
    /// An entry with another key: refused.
    Mismatch,
    /// The server sent no key, or libssh2 could not compare it.
    Failure,
}

/// Why no authenticated session with a peer could be had, by the stage that failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No TCP connection within `ssh.connect_timeout` (down, or no route).
    #[error("connecting to {address}: {reason}")]
    Connect { address: SocketAddr, reason: String },
    /// The SSH handshake (or setting the session up) failed.
    #[error("{0}")]
    Ssh(String),
    #[error("{message}")]
    HostKey {
        problem: HostKeyProblem,
        message: String,
    },
    #[error("authenticating as {user} on {address}: {reason}")]
    Auth {
        user: String,
        address: SocketAddr,
        reason: String,
    },
}

/// An authenticated session with `node`: TCP within `ssh.connect_timeout`, every later step
/// within `timeout`, the host key checked against known_hosts before the key is offered.
pub fn session(ssh: &SshSettings, node: &Node, timeout: Duration) -> Result<Session, SessionError> {
    let address = SocketAddr::new(node.address, ssh.port);
    let connect = Duration::from_secs(u64::from(ssh.connect_timeout_secs));
    let tcp = TcpStream::connect_timeout(&address, connect).map_err(|e| SessionError::Connect {
        address,
        reason: e.to_string(),
    })?;
    let ssh_error =
        |what: &str, e: &dyn std::fmt::Display| SessionError::Ssh(format!("{what}: {e}"));
    tcp.set_read_timeout(Some(timeout))
        .and_then(|()| tcp.set_write_timeout(Some(timeout)))
        .map_err(|e| ssh_error(&format!("setting timeouts on {address}"), &e))?;
    let mut session = Session::new().map_err(|e| ssh_error("creating an SSH session", &e))?;
    session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .map_err(|e| ssh_error(&format!("SSH handshake with {address}"), &e))?;
    check_host_key(&session, ssh, node)?;
    authenticate(&session, ssh).map_err(|e| SessionError::Auth {
        user: ssh.user.clone(),
        address,
        reason: format!("{e:#}"),
    })?;
    Ok(session)
}

/// Whether `node` can be reached and logged in to, as the operator commands do, within
/// `ssh.connect_timeout` for every step; nothing is run there.
pub fn probe(ssh: &SshSettings, node: &Node) -> Result<(), SessionError> {
    let timeout = Duration::from_secs(u64::from(ssh.connect_timeout_secs.max(1)));
    let session = session(ssh, node, timeout)?;
    let _ = session.disconnect(None, "hakeep doctor", None);
    Ok(())
}

/// The name known_hosts must list for `node`: the address, or `[address]:port` off port 22
/// (as OpenSSH writes it, and as the host key check asks).
pub fn known_hosts_name(ssh: &SshSettings, node: &Node) -> String {
    if ssh.port == 22 {
        node.address.to_string()
    } else {
        format!("[{}]:{}", node.address, ssh.port)
    }
}

/// What known_hosts says of a node without connecting to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownEntry {
    /// A plain entry names it.
    Listed,
    /// None names it, but hashed entries might (they can only be checked with the key).
    MaybeHashed,
    Absent,
}

/// Looks for `node` in known_hosts (libssh2's reader, as the host key check uses).
pub fn known_entry(ssh: &SshSettings, node: &Node) -> Result<KnownEntry, String> {
    let session = Session::new().map_err(|e| format!("creating an SSH session: {e}"))?;
    let mut known = session
        .known_hosts()
        .map_err(|e| format!("reading {}: {e}", ssh.known_hosts.display()))?;
    known
        .read_file(&ssh.known_hosts, KnownHostFileKind::OpenSSH)
        .map_err(|e| format!("reading {}: {e}", ssh.known_hosts.display()))?;
    let hosts = known
        .hosts()
        .map_err(|e| format!("reading {}: {e}", ssh.known_hosts.display()))?;
    let name = known_hosts_name(ssh, node);
    Ok(if hosts.iter().any(|h| h.name() == Some(name.as_str())) {
        KnownEntry::Listed
    } else if hosts.iter().any(|h| h.name().is_none()) {
        KnownEntry::MaybeHashed
    } else {
        KnownEntry::Absent
    })
}

fn check_host_key(session: &Session, ssh: &SshSettings, node: &Node) -> Result<(), SessionError> {
    let fail = |problem, message: String| SessionError::HostKey { problem, message };
    let mut known = session.known_hosts().map_err(|e| {
        fail(
            HostKeyProblem::Unreadable,
            format!("reading {}: {e}", ssh.known_hosts.display()),
        )
    })?;
    known
        .read_file(&ssh.known_hosts, KnownHostFileKind::OpenSSH)
        .map_err(|e| {
            fail(
                HostKeyProblem::Unreadable,
                format!("reading {}: {e}", ssh.known_hosts.display()),
            )
        })?;
    let (key, _) = session.host_key().ok_or_else(|| {
        fail(
            HostKeyProblem::Failure,
            "the server sent no host key".into(),
        )
    })?;
    let host = node.address.to_string();
    let result = if ssh.port == 22 {
        known.check(&host, key)
    } else {
        known.check_port(&host, ssh.port, key)
    };
    match result {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound => Err(fail(
            HostKeyProblem::NotFound,
            format!(
                "host key of {host} is not in {}; add it (ssh-keyscan) after checking it",
                ssh.known_hosts.display()
            ),
        )),
        CheckResult::Mismatch => Err(fail(
            HostKeyProblem::Mismatch,
            format!(
                "HOST KEY MISMATCH for {host} (file {}): refusing to connect",
                ssh.known_hosts.display()
            ),
        )),
        CheckResult::Failure => Err(fail(
            HostKeyProblem::Failure,
            format!("checking the host key of {host} failed"),
        )),
    }
}

fn authenticate(session: &Session, ssh: &SshSettings) -> anyhow::Result<()> {
    if std::env::var_os("SSH_AUTH_SOCK").is_some()
        && session.userauth_agent(&ssh.user).is_ok()
        && session.authenticated()
    {
        return Ok(());
    }
    session
        .userauth_pubkey_file(&ssh.user, None, &ssh.identity_file, None)
        .with_context(|| format!("with key {}", ssh.identity_file.display()))?;
    if !session.authenticated() {
        bail!("the server did not accept the key");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILx8/7uE6OfquoUBRJ58T4vRVn2c9mteeV6NQPfnldPp";

    fn node(address: &str) -> Node {
        Node {
            name: "peer".into(),
            address: address.parse().unwrap(),
            interface: "eth0".into(),
        }
    }

    fn settings(known_hosts: &Path, port: u16) -> SshSettings {
        SshSettings {
            known_hosts: known_hosts.to_path_buf(),
            port,
            ..SshSettings::default()
        }
    }

    /// known_hosts is read by libssh2 as the host key check reads it: plain names (one of
    /// several on a line, `[address]:port` off port 22) are found without connecting;
    /// hashed ones can only be told with the key.
    #[test]
    fn known_hosts_entries_are_found_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!(
                "10.0.0.1 {KEY}\npeer.example,10.0.0.2 {KEY}\n[10.0.0.3]:2222 {KEY}\n\
                 2001:db8::4 {KEY}\n"
            ),
        )
        .unwrap();
        let on22 = settings(&file, 22);
        for listed in ["10.0.0.1", "10.0.0.2", "2001:db8::4"] {
            assert_eq!(
                known_entry(&on22, &node(listed)),
                Ok(KnownEntry::Listed),
                "{listed}"
            );
        }
        assert_eq!(
            known_entry(&on22, &node("10.0.0.3")),
            Ok(KnownEntry::Absent)
        );
        let on2222 = settings(&file, 2222);
        assert_eq!(
            known_hosts_name(&on2222, &node("10.0.0.3")),
            "[10.0.0.3]:2222"
        );
        assert_eq!(
            known_entry(&on2222, &node("10.0.0.3")),
            Ok(KnownEntry::Listed)
        );
        assert_eq!(
            known_entry(&on2222, &node("10.0.0.1")),
            Ok(KnownEntry::Absent)
        );

        std::fs::write(
            &file,
            format!("|1|hKL9c+F5JALodUFw8IrBF6P0BAU=|QMCkh8gYF1bqjo5CAbaIVZ6NgOw= {KEY}\n"),
        )
        .unwrap();
        assert_eq!(
            known_entry(&on22, &node("10.0.0.9")),
            Ok(KnownEntry::MaybeHashed)
        );

        let missing = settings(&dir.path().join("nope"), 22);
        let err = known_entry(&missing, &node("10.0.0.1")).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
