//! SSH for labs with [`LabBuilder::ssh`](super::LabBuilder::ssh): the lab's keys (a host
//! key per node, a client key, authorized_keys and known_hosts) and a real sshd per node on
//! its address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::process::{run, run_ok, tail, wait_until};
use super::Lab;

/// Where Debian's openssh-server puts sshd (it must be started by its absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";
/// sshd's pid file inside a node.
pub const SSHD_PID: &str = "/run/sshd.pid";

/// The SSH material of a lab with [`LabBuilder::ssh`](super::LabBuilder::ssh): a host key
/// per node, one client key for root (authorized through `AuthorizedKeysFile` pointing
/// here, never root's own files), and the known_hosts file made from the host keys. All
/// under `<lab>/ssh/`.
#[derive(Debug, Clone)]
pub struct SshFiles {
    pub dir: PathBuf,
    /// The client's private key (cluster.yml `ssh.identity_file`).
    pub identity_file: PathBuf,
    /// `ADDRESS KEYTYPE KEY` per started node (cluster.yml `ssh.known_hosts`).
    pub known_hosts: PathBuf,
    pub authorized_keys: PathBuf,
    /// Node name → its host's private key (the public one is next to it, `.pub`).
    pub host_keys: BTreeMap<String, PathBuf>,
}

/// Whether something in the network namespace of `pid` listens on a TCP (IPv4) port.
fn listens_on(pid: u32, port: u16) -> bool {
    let tcp = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let local = format!(":{port:04X}");
    tcp.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
    })
}

/// The `KEYTYPE KEY` of a key pair's .pub file (comment dropped).
fn public_key(private: &Path) -> Result<String> {
    let text = fs::read_to_string(private.with_extension("pub"))
        .with_context(|| format!("reading {}.pub", private.display()))?;
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    if words.len() != 2 {
        bail!("{}.pub is not a public key: {text:?}", private.display());
    }
    Ok(words.join(" "))
}

impl Lab {
    /// Makes the lab's keys: a client key, a host key per node, authorized_keys and
    /// known_hosts (`ADDRESS KEYTYPE KEY`, from the host keys' .pub files).
    pub(super) fn make_ssh_keys(&mut self) -> Result<()> {
        run(&[SSHD, "-V"]).with_context(|| {
            format!("{SSHD} is needed (openssh-server; scripts/install-deps.sh)")
        })?;
        let dir = self.dir.join("ssh");
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let keygen = |path: &Path, comment: &str| -> Result<()> {
            let p = path.display().to_string();
            run_ok(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                comment,
                "-f",
                &p,
            ])
            .context("ssh-keygen (openssh-client) is needed")?;
            Ok(())
        };
        let identity_file = dir.join("id_ed25519");
        keygen(&identity_file, &format!("{}-client", self.id))?;
        // Authorized as roles/hakeep authorizes a peer's key: only hakeep's peer requests.
        let authorized_keys = dir.join("authorized_keys");
        fs::write(
            &authorized_keys,
            format!(
                "restrict,command=\"{} -c {} peer-command\" {}\n",
                self.hakeep.display(),
                self.config.display(),
                public_key(&identity_file)?
            ),
        )?;
        let mut host_keys = BTreeMap::new();
        let mut known = String::new();
        for n in &self.nodes {
            let key = dir.join(format!("host_{}_ed25519", n.name));
            keygen(&key, &format!("{}-{}", self.id, n.name))?;
            let _ = writeln!(known, "{} {}", n.address, public_key(&key)?);
            host_keys.insert(n.name.clone(), key);
        }
        let known_hosts = dir.join("known_hosts");
        fs::write(&known_hosts, known)?;
        self.ssh = Some(SshFiles {
            dir,
            identity_file,
            known_hosts,
            authorized_keys,
            host_keys,
        });
        Ok(())
    }

    /// Makes a fresh ed25519 key pair under the lab's ssh dir and returns its public key as
    /// `KEYTYPE KEY` (e.g. a wrong host key for a known_hosts that must not match).
    pub fn new_public_key(&self, label: &str) -> Result<String> {
        let files = self.ssh.as_ref().context("the lab has no SSH")?;
        let key = files.dir.join(format!("extra_{label}_ed25519"));
        let p = key.display().to_string();
        run_ok(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", &p])?;
        public_key(&key)
    }

    /// Starts sshd in a node, listening on the node's address (port 22), and waits until
    /// it listens.
    pub fn start_sshd(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        let files = self.ssh.clone().context("the lab has no SSH")?;
        let node = &self.nodes[i];
        let config = node.dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "# sshd of lab {id}, node {name} (tests/harness)\n\
                 ListenAddress {addr}\nPort 22\nAddressFamily inet\n\
                 HostKey {hostkey}\nPidFile {SSHD_PID}\n\
                 AuthorizedKeysFile {auth}\n\
                 # The key lives under /var/tmp (world-writable): StrictModes would refuse it.\n\
                 StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nX11Forwarding no\nAllowTcpForwarding no\n\
                 PrintMotd no\nLogLevel VERBOSE\n",
                id = self.id,
                addr = node.address,
                hostkey = files.host_keys[name].display(),
                auth = files.authorized_keys.display(),
            ),
        )?;
        // Privilege separation directory, in the node's private /run.
        let privsep = self.node_path(name, "/run/sshd");
        fs::create_dir_all(&privsep)?;
        fs::set_permissions(&privsep, fs::Permissions::from_mode(0o755))?;
        let node = &self.nodes[i];
        let (log, _) = Self::open_log(&node.sshd_log(), "sshd", self.started.elapsed())?;
        let child = self
            .nsenter(name)
            .args([SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{name}: starting sshd"))?;
        let holder = self.nodes[i].holder_pid;
        let sshd = self.nodes[i].sshd.insert(child);
        let listening = wait_until(
            &format!("{name}'s sshd listens on port 22"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || listens_on(holder, 22) || !matches!(sshd.try_wait(), Ok(None)),
        );
        if listening.is_err() || !self.listens_on(name, 22) {
            let log = fs::read_to_string(self.nodes[i].sshd_log()).unwrap_or_default();
            bail!("{name}: sshd does not listen:\n{}", tail(&log, 20));
        }
        Ok(())
    }

    /// sshd's log of a node (all its runs).
    pub fn sshd_output(&self, name: &str) -> String {
        fs::read_to_string(self.node(name).sshd_log()).unwrap_or_default()
    }

    /// Whether something in the node listens on a TCP (IPv4) port, from /proc/HOLDER/net/tcp.
    pub fn listens_on(&self, name: &str, port: u16) -> bool {
        listens_on(self.holder_pid(name), port)
    }
}
