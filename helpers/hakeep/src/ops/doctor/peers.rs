//! `peer-ssh`: every other node can be reached as the operator commands reach it (SSH to
//! its address, host key from ssh.known_hosts, the configured key), within
//! ssh.connect_timeout. An unreachable peer is a warning (a peer can be down: that is
//! what HA is for), unless known_hosts has no entry for it either, which will refuse it
//! once it is back.

use super::{Check, Doctor, Finding, Peers, Status};
use crate::config::{Node, SshSettings};
use crate::ops::remote::{self, HostKeyProblem, KnownEntry, SessionError};

/// The real peers, over ssh2 (ops/remote.rs, the code the operator commands use).
pub struct SshPeers;

impl Peers for SshPeers {
    fn known_entry(&self, ssh: &SshSettings, node: &Node) -> Result<KnownEntry, String> {
        remote::known_entry(ssh, node)
    }

    fn probe(&self, ssh: &SshSettings, node: &Node) -> Result<(), SessionError> {
        remote::probe(ssh, node)
    }
}

pub(super) fn peer_ssh(d: &Doctor) -> Check {
    const ID: &str = "peer-ssh";
    let peers: Vec<&Node> = d
        .cluster
        .nodes
        .iter()
        .filter(|n| n.name != d.node)
        .collect();
    // In parallel: each unreachable peer costs a connect timeout.
    let findings: Vec<Finding> = std::thread::scope(|s| {
        let asks: Vec<_> = peers
            .iter()
            .map(|peer| (peer, s.spawn(|| one(d, peer))))
            .collect();
        asks.into_iter()
            .map(|(peer, ask)| {
                ask.join().unwrap_or_else(|_| Finding {
                    status: Status::Fail,
                    message: format!("{}: the check panicked (a bug)", peer.name),
                    fix: None,
                })
            })
            .collect()
    });
    super::combine(ID, findings, "no other node in the cluster")
}

fn one(d: &Doctor, peer: &Node) -> Finding {
    let ssh = &d.cluster.ssh;
    let known_hosts = ssh.known_hosts.display();
    let name = remote::known_hosts_name(ssh, peer);
    let port = if ssh.port == 22 {
        String::new()
    } else {
        format!("-p {} ", ssh.port)
    };
    let keyscan = format!(
        "ssh-keyscan {port}{} >> {known_hosts} after checking the fingerprint (ssh-keygen -lf \
         on {}'s /etc/ssh/ssh_host_*_key.pub)",
        peer.address, peer.name
    );
    let finding = |status, message: String, fix: Option<String>| Finding {
        status,
        message: format!("{}: {message}", peer.name),
        fix,
    };
    match d.peers.probe(ssh, peer) {
        Ok(()) => finding(
            Status::Ok,
            format!(
                "logged in as {} at {}, host key known",
                ssh.user,
                std::net::SocketAddr::new(peer.address, ssh.port)
            ),
            None,
        ),
        Err(SessionError::HostKey { problem, message }) => match problem {
            HostKeyProblem::NotFound => finding(
                Status::Fail,
                format!("its host key ({name}) is not in {known_hosts}: the operator commands refuse it"),
                Some(keyscan),
            ),
            HostKeyProblem::Mismatch => finding(
                Status::Fail,
                format!("HOST KEY MISMATCH for {name} in {known_hosts}: refused"),
                Some(format!(
                    "find out why {} answers with another key; if it was reinstalled: ssh-keygen \
                     -f {known_hosts} -R {name}, then {keyscan}",
                    peer.address
                )),
            ),
            HostKeyProblem::Unreadable | HostKeyProblem::Failure => finding(
                Status::Fail,
                message,
                Some(format!(
                    "make {known_hosts} hold the peers' host keys (the hakeep role does): {keyscan}"
                )),
            ),
        },
        Err(e @ SessionError::Connect { .. }) => match d.peers.known_entry(ssh, peer) {
            Ok(KnownEntry::Listed) => finding(
                Status::Warn,
                format!("unreachable ({e}); its host key is in {known_hosts}"),
                Some(format!(
                    "if {} should be up: check it, its sshd and the network",
                    peer.name
                )),
            ),
            Ok(KnownEntry::MaybeHashed) => finding(
                Status::Warn,
                format!(
                    "unreachable ({e}); whether {known_hosts} (hashed) has its host key shows \
                     once it answers"
                ),
                Some(format!(
                    "if {} should be up: check it, its sshd and the network",
                    peer.name
                )),
            ),
            Ok(KnownEntry::Absent) => finding(
                Status::Fail,
                format!(
                    "unreachable ({e}), and {known_hosts} has no entry for {name}: it will be \
                     refused when it is back"
                ),
                Some(format!("once {} is up: {keyscan}", peer.name)),
            ),
            Err(why) => finding(
                Status::Fail,
                format!("unreachable ({e}), and {why}"),
                Some(format!(
                    "make {known_hosts} hold the peers' host keys (the hakeep role does): {keyscan}"
                )),
            ),
        },
        Err(e @ SessionError::Auth { .. }) => finding(
            Status::Fail,
            e.to_string(),
            Some(format!(
                "authorize this node's key ({}.pub) for {} on {} as the hakeep role does \
                 (restricted to `hakeep peer-command`)",
                ssh.identity_file.display(),
                ssh.user,
                peer.name
            )),
        ),
        Err(e @ SessionError::Ssh(_)) => finding(
            Status::Fail,
            e.to_string(),
            Some(format!(
                "check sshd on {} (port {}): systemctl status ssh there",
                peer.name, ssh.port
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::Status;
    use super::*;

    #[test]
    fn a_peer_that_logs_in_is_ok() {
        let lab = Fixture::new();
        let c = lab.run().check("peer-ssh");
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.message
                .starts_with("nfs2: logged in as root at 192.168.56.12:22"),
            "{c:?}"
        );
        assert_eq!(c.fix, None);
    }

    #[test]
    fn an_unknown_host_key_fails_with_ssh_keyscan() {
        let mut lab = Fixture::new();
        lab.peers.set("nfs2", Probe::NotFound, KnownEntry::Absent);
        let c = lab.run().check("peer-ssh");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.message.contains("not in /root/.ssh/known_hosts"), "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.starts_with("ssh-keyscan 192.168.56.12 >> /root/.ssh/known_hosts after checking the fingerprint"),
            "{fix}"
        );
    }

    #[test]
    fn a_mismatch_and_a_refused_key_fail() {
        let mut lab = Fixture::new();
        lab.peers.set("nfs2", Probe::Mismatch, KnownEntry::Listed);
        let c = lab.run().check("peer-ssh");
        assert!(
            c.status == Status::Fail && c.message.contains("MISMATCH"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("-R 192.168.56.12"));
        lab.peers.set("nfs2", Probe::Auth, KnownEntry::Listed);
        let c = lab.run().check("peer-ssh");
        assert!(
            c.status == Status::Fail && c.message.contains("authenticating"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("id_ed25519.pub"));
    }

    #[test]
    fn an_unreachable_peer_warns_unless_its_key_is_unknown_too() {
        let mut lab = Fixture::new();
        lab.peers
            .set("nfs2", Probe::Unreachable, KnownEntry::Listed);
        let c = lab.run().check("peer-ssh");
        assert!(
            c.status == Status::Warn && c.message.contains("unreachable"),
            "{c:?}"
        );
        lab.peers
            .set("nfs2", Probe::Unreachable, KnownEntry::MaybeHashed);
        assert_eq!(lab.run().check("peer-ssh").status, Status::Warn);
        lab.peers
            .set("nfs2", Probe::Unreachable, KnownEntry::Absent);
        let c = lab.run().check("peer-ssh");
        assert!(
            c.status == Status::Fail && c.message.contains("no entry"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().starts_with("once nfs2 is up: ssh-keyscan"));
    }

    #[test]
    fn a_cluster_of_one_has_no_peer_to_check() {
        let lab = Fixture::single();
        let c = lab.run().check("peer-ssh");
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Ok, "no other node in the cluster")
        );
    }
}
