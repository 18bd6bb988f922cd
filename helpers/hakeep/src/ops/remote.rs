//! Running hakeep on a peer over SSH (ssh2): key authentication (ssh-agent, then the
//! configured key), host keys checked against known_hosts, every step bounded in time.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
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
    let address = SocketAddr::new(node.address, ssh.port);
    let connect = Duration::from_secs(u64::from(ssh.connect_timeout_secs));
    let tcp = TcpStream::connect_timeout(&address, connect)
        .with_context(|| format!("connecting to {address}"))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let mut session = Session::new().context("creating an SSH session")?;
    session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    session.set_tcp_stream(tcp);
    session
        .handshake()
        .with_context(|| format!("SSH handshake with {address}"))?;
    check_host_key(&session, ssh, node)?;
    authenticate(&session, ssh)
        .with_context(|| format!("authenticating as {} on {address}", ssh.user))?;
    let mut channel = session.channel_session()?;
    channel
        .exec(command)
        .with_context(|| format!("running {command:?} on {address}"))?;
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

fn check_host_key(session: &Session, ssh: &SshSettings, node: &Node) -> anyhow::Result<()> {
    let mut known = session.known_hosts()?;
    known
        .read_file(&ssh.known_hosts, KnownHostFileKind::OpenSSH)
        .with_context(|| format!("reading {}", ssh.known_hosts.display()))?;
    let (key, _) = session
        .host_key()
        .ok_or_else(|| anyhow!("the server sent no host key"))?;
    let host = node.address.to_string();
    let result = if ssh.port == 22 {
        known.check(&host, key)
    } else {
        known.check_port(&host, ssh.port, key)
    };
    match result {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound => bail!(
            "host key of {host} is not in {}; add it (ssh-keyscan) after checking it",
            ssh.known_hosts.display()
        ),
        CheckResult::Mismatch => bail!(
            "HOST KEY MISMATCH for {host} (file {}): refusing to connect",
            ssh.known_hosts.display()
        ),
        CheckResult::Failure => bail!("checking the host key of {host} failed"),
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
