//! The typed cluster model (cluster.yml schema v1). Field names follow docs/configuration.md (docs/design.md §4).

use std::net::IpAddr;
use std::path::PathBuf;

/// Highest VRRP priority hakeep hands out; the first node of a group gets it.
pub const TOP_PRIORITY: u8 = 200;
/// Priority distance between consecutive nodes of a group's preference order.
pub const PRIORITY_STEP: u8 = 10;
/// Longest preference list the priority formula supports (200 - 10 * 19 = 10).
pub const MAX_NODES_PER_GROUP: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub keepalived: KeepalivedSettings,
    pub agent: AgentSettings,
    pub ssh: SshSettings,
    /// Prometheus metrics of the agent; `None`: off.
    pub metrics: Option<MetricsSettings>,
    /// Programs the agent runs on events (Pacemaker-style alert agents).
    pub alerts: Vec<Alert>,
    /// Quorum from corosync votequorum; `None`: keepalived alone decides (no quorum).
    pub quorum: Option<QuorumSettings>,
    /// The watchdog device that self-fences a node holding a `fencing: watchdog` group.
    pub watchdog: WatchdogSettings,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
}

/// `metrics:`: where the agent serves its Prometheus metrics, and/or the file it keeps
/// for node_exporter's textfile collector. At least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: Option<MetricsListen>,
    pub textfile: Option<PathBuf>,
}

/// The metrics endpoint's address: a fixed one (`127.0.0.1:9840`, `0.0.0.0:9840`), or
/// `node:PORT`, each node's own address from `nodes:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Fixed(std::net::SocketAddr),
    NodeAddress(u16),
}

impl MetricsListen {
    /// The socket address the agent of `node` listens on.
    pub fn for_node(&self, node: &Node) -> std::net::SocketAddr {
        match *self {
            MetricsListen::Fixed(address) => address,
            MetricsListen::NodeAddress(port) => std::net::SocketAddr::new(node.address, port),
        }
    }
}

/// One alert program: run with `args` (argv, never a shell) and the event in
/// HAKEEP_* environment variables, for each event of `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub events: Vec<AlertEvent>,
    pub timeout_secs: u32,
}

/// What the agent tells alert programs about (HAKEEP_EVENT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertEvent {
    /// A group was taken here (HAKEEP_RESULT ok), or its take failed (error).
    Take,
    /// A group was released here (ok), or its release failed (error).
    Release,
    /// The group faulted here (failed take, dead service beyond its restart budget,
    /// failing check): the node steps down for the hold-down.
    Fault,
    /// A peer took the group's volume (storage fencing): the node steps down.
    Fence,
    /// The node could not bring the group to a safe state by itself (`hakeep status`
    /// says FAILED).
    Failed,
    /// The group's services were restarted after a failure (ok), or the restart failed.
    Restart,
    /// keepalived stopped (HAKEEP_RESULT down) or runs again (up).
    Keepalived,
    /// The node lost quorum (HAKEEP_RESULT lost) or has it again (ok).
    Quorum,
    /// The agent started on this node.
    Agent,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 9] = [
        AlertEvent::Take,
        AlertEvent::Release,
        AlertEvent::Fault,
        AlertEvent::Fence,
        AlertEvent::Failed,
        AlertEvent::Restart,
        AlertEvent::Keepalived,
        AlertEvent::Quorum,
        AlertEvent::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Take => "take",
            AlertEvent::Release => "release",
            AlertEvent::Fault => "fault",
            AlertEvent::Fence => "fence",
            AlertEvent::Failed => "failed",
            AlertEvent::Restart => "restart",
            AlertEvent::Keepalived => "keepalived",
            AlertEvent::Quorum => "quorum",
            AlertEvent::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// How long corosync-qdevice keeps its vote for a node that can no longer reach qnetd
/// (votequorum's default device timeout, which the rendered corosync.conf keeps).
pub const QDEVICE_VOTE_TIMEOUT_SECS: u32 = 10;

/// `quorum.release_timeout` when the file does not say.
pub const DEFAULT_RELEASE_TIMEOUT_SECS: u32 = 30;

/// `quorum:`: hakeep runs corosync (votequorum over knet) on every node; a node without
/// quorum holds no group (docs/fencing.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// knet links in order (link 0 first), each with every node's address on it, in the
    /// order of `nodes:`. Default: one link, each node's own `address`.
    pub links: Vec<Vec<IpAddr>>,
    /// corosync-qdevice's arbitrator (corosync-qnetd on a third machine).
    pub qdevice: Option<Qdevice>,
    /// corosync's totem token timeout in milliseconds: how long a silent node takes to
    /// leave the membership.
    pub token_ms: u32,
    /// How long a node that lost quorum has to release every group before its watchdog
    /// resets it, in seconds.
    pub release_timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdevice {
    /// corosync-qnetd's host (an address or a name the nodes resolve).
    pub host: String,
    pub port: u16,
    pub algorithm: QdeviceAlgorithm,
    pub tie_breaker: TieBreaker,
}

/// corosync-qdevice's net algorithms (corosync-qdevice(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QdeviceAlgorithm {
    /// fifty-fifty split: qnetd's vote goes to one half of an even split.
    Ffsplit,
    /// last man standing: the partition qnetd sees keeps quorum, even a single node.
    Lms,
}

impl QdeviceAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            QdeviceAlgorithm::Ffsplit => "ffsplit",
            QdeviceAlgorithm::Lms => "lms",
        }
    }
}

/// Which half of an even split qnetd favours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TieBreaker {
    Lowest,
    Highest,
    /// The half that holds this node.
    Node(String),
}

/// `watchdog:`: the device the agent keeps armed while it holds a `fencing: watchdog` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchdogSettings {
    pub device: PathBuf,
    /// Seconds without a pet before the device resets the node.
    pub timeout_secs: u32,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        WatchdogSettings {
            device: PathBuf::from("/dev/watchdog"),
            timeout_secs: 10,
        }
    }
}

/// How a group is kept from being served on two nodes when they cannot see each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fencing {
    /// The volume refuses the loser (SCSI-3 persistent reservations, NVMesh).
    Storage,
    /// A node without quorum releases, or its watchdog resets it; a taker that cannot see
    /// the old holder waits until it must have done one or the other.
    Watchdog,
    /// Nothing: a partition may leave the group served on both sides.
    None,
}

impl Fencing {
    pub fn as_str(self) -> &'static str {
        match self {
            Fencing::Storage => "storage",
            Fencing::Watchdog => "watchdog",
            Fencing::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeepalivedSettings {
    /// Advertisement interval in milliseconds (keepalived's resolution is 10 ms).
    pub advert_int_ms: u32,
    pub vrrp_version: u8,
    pub unicast: bool,
    pub auth_pass: Option<String>,
}

impl Default for KeepalivedSettings {
    fn default() -> Self {
        KeepalivedSettings {
            advert_int_ms: 1000,
            vrrp_version: 2,
            unicast: true,
            auth_pass: None,
        }
    }
}

/// How the agent acts; every field has a default (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// After a fault, seconds the node stays out (track file 1) before it may serve again.
    pub hold_down_secs: u32,
    /// The hold-down after this node's volume was taken by a peer (fenced). Longer: under
    /// a lasting heartbeat partition both nodes are MASTER, and each would otherwise take
    /// the volume from the other at every hold-down's end.
    pub fenced_hold_down_secs: u32,
    /// Seconds between full resyncs with keepalived's state (catches lost events).
    pub resync_interval_secs: u32,
    /// Service restarts allowed within `restart_window_secs` before the group faults.
    pub restart_limit: u32,
    pub restart_window_secs: u32,
    /// Longest a `systemctl start/stop` may take (resource scripts have their own `timeout`).
    pub service_timeout_secs: u32,
    /// Longest any other program (mount, iscsiadm, ...) may take.
    pub command_timeout_secs: u32,
    /// Seconds between TERM and KILL to processes holding a busy mountpoint.
    pub umount_grace_secs: u32,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            hold_down_secs: 60,
            fenced_hold_down_secs: 600,
            resync_interval_secs: 5,
            restart_limit: 3,
            restart_window_secs: 300,
            service_timeout_secs: 120,
            command_timeout_secs: 30,
            umount_grace_secs: 5,
        }
    }
}

/// How operator commands reach the other nodes (`status --all-nodes`, `switchover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// Private key used when no ssh-agent offers one.
    pub identity_file: PathBuf,
    /// Host keys are always checked against this file; unknown hosts are refused.
    pub known_hosts: PathBuf,
    pub connect_timeout_secs: u32,
    /// hakeep's path on the nodes.
    pub hakeep: PathBuf,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            user: "root".into(),
            port: 22,
            identity_file: PathBuf::from("/root/.ssh/id_ed25519"),
            known_hosts: PathBuf::from("/root/.ssh/known_hosts"),
            connect_timeout_secs: 5,
            hakeep: PathBuf::from("/usr/bin/hakeep"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub address: IpAddr,
    pub interface: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub vrid: u8,
    /// Preference order: the first node is preferred.
    pub nodes: Vec<String>,
    pub preempt: Preempt,
    pub volumes: Vec<Volume>,
    pub filesystems: Vec<Filesystem>,
    pub ips: Vec<FloatingIp>,
    pub services: Vec<Service>,
    pub checks: Vec<Check>,
    /// Resolved: `storage` when a volume can fence, else `watchdog` when quorum is on,
    /// else `none`, unless the file says otherwise.
    pub fencing: Fencing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preempt {
    /// `preempt: false`: a recovered preferred node does not take the group back.
    Never,
    /// `preempt: true`: it takes the group back at once.
    Immediately,
    /// `preempt: N`: it takes the group back after N seconds as BACKUP.
    AfterSeconds(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    None,
    Iscsi(IscsiVolume),
    Nvmesh(NvmeshVolume),
}

impl Volume {
    /// Whether the storage itself refuses a node that lost the volume to a peer.
    pub fn fences(&self) -> bool {
        matches!(self, Volume::Iscsi(_) | Volume::Nvmesh(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiVolume {
    /// host:port of the target portal.
    pub portal: String,
    pub target: String,
    pub lun: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvmeshVolume {
    pub volume: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filesystem {
    Device {
        device: PathBuf,
        mountpoint: PathBuf,
        fstype: String,
        options: Vec<String>,
    },
    Bind {
        source: PathBuf,
        mountpoint: PathBuf,
    },
}

impl Filesystem {
    pub fn mountpoint(&self) -> &PathBuf {
        match self {
            Filesystem::Device { mountpoint, .. } | Filesystem::Bind { mountpoint, .. } => {
                mountpoint
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingIp {
    pub address: IpAddr,
    pub prefix: u8,
    /// Interface to raise it on; `None` means each node's own `interface`.
    pub interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A systemd unit, canonical name with its suffix (`.service` added when missing).
    Unit(String),
    /// A resource script called as `PATH start|stop|status`; `status` runs every
    /// `interval_secs` while the group is active here (scripts are polled: that is
    /// their contract, units are watched by systemd's signals).
    Script {
        path: PathBuf,
        timeout_secs: u32,
        interval_secs: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    /// Consecutive failures before the check counts as failed.
    pub fall: u32,
    /// Consecutive successes before a failed check counts as passing again.
    pub rise: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Ping(IpAddr),
    Tcp { host: IpAddr, port: u16 },
    Mount(PathBuf),
    Ip(IpAddr),
    Command(Vec<String>),
}

impl Cluster {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The node's corosync node id: its place in `nodes:`, from 1.
    pub fn corosync_nodeid(&self, name: &str) -> Option<u32> {
        let index = self.nodes.iter().position(|n| n.name == name)?;
        u32::try_from(index + 1).ok()
    }

    /// How long a node waits before it takes a watchdog-fenced group while a peer of the
    /// group is out of its corosync membership: until that peer must have noticed it lost
    /// quorum (qdevice's vote times out after 10 s), then released (`release_timeout`), or
    /// been reset by its watchdog (`watchdog.timeout`), with 2 s for clocks and scheduling.
    pub fn fence_wait(&self) -> std::time::Duration {
        let Some(quorum) = &self.quorum else {
            return std::time::Duration::ZERO;
        };
        let qdevice = if quorum.qdevice.is_some() {
            QDEVICE_VOTE_TIMEOUT_SECS
        } else {
            0
        };
        std::time::Duration::from_secs(u64::from(
            qdevice + quorum.release_timeout_secs + self.watchdog.timeout_secs + 2,
        ))
    }

    /// How long a node without quorum, or with a failing release of a watchdog-fenced
    /// group, has to release before its watchdog resets it.
    pub fn release_timeout(&self) -> std::time::Duration {
        let secs = self
            .quorum
            .as_ref()
            .map_or(DEFAULT_RELEASE_TIMEOUT_SECS, |q| q.release_timeout_secs);
        std::time::Duration::from_secs(u64::from(secs))
    }

    /// Whether some group of `node` is fenced by the watchdog.
    pub fn watchdog_fenced_on(&self, node: &str) -> bool {
        self.groups_of(node).any(|g| g.fencing == Fencing::Watchdog)
    }

    /// Groups this node takes part in, in file order.
    pub fn groups_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups
            .iter()
            .filter(move |g| g.nodes.iter().any(|n| n == node))
    }
}

impl Group {
    /// VRRP priority of `node`: `200 - 10 × position` in the preference order.
    pub fn priority_of(&self, node: &str) -> Option<u8> {
        let position = self.nodes.iter().position(|n| n == node)?;
        let position = u8::try_from(position).ok()?;
        TOP_PRIORITY.checked_sub(PRIORITY_STEP.checked_mul(position)?)
    }
}
