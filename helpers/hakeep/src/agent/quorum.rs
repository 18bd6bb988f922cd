//! Follows this node's quorum through corosync's own libraries: libquorum's change
//! callbacks say when quorum comes and goes; libvotequorum and the stats map (libcmap)
//! add the votes, the qdevice and knet's links for `hakeep status`. Without corosync
//! (not running, or it died) the node is not quorate: it cannot know better.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use rust_corosync::{cmap, quorum, votequorum, DispatchFlags, NodeId, TrackFlags};

use crate::config::Cluster;
use crate::runtime::state::{timestamp, LinkState, QdeviceState, QuorumState};

/// How often the votes and links are read again for status (quorum itself is an event).
const DETAIL_REFRESH: Duration = Duration::from_secs(2);
/// Wait between attempts to reach corosync.
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

/// What the event thread learns from libquorum.
enum Notice {
    /// Quorate or not, and the membership (node ids).
    Quorum(bool, Vec<u32>),
    /// The connection to corosync failed or ended, and why.
    Gone(String),
}

/// Where libquorum's callback sends (callbacks are plain functions; one follower per
/// process).
static NOTICES: OnceLock<Mutex<Option<Sender<Notice>>>> = OnceLock::new();

fn notify(notice: Notice) {
    if let Some(tx) = NOTICES
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        let _ = tx.send(notice);
    }
}

fn on_quorum(_: &quorum::Handle, quorate: bool, _: quorum::RingId, members: Vec<NodeId>) {
    notify(Notice::Quorum(
        quorate,
        members.into_iter().map(u32::from).collect(),
    ));
}

/// libquorum's events, forever: connect, say the current quorum, dispatch (blocking)
/// until the connection ends, say so, and connect again.
fn events() -> ! {
    loop {
        let why = match track() {
            Ok(handle) => match quorum::dispatch(&handle, DispatchFlags::Blocking) {
                Ok(()) => "corosync ended the connection".to_string(),
                Err(e) => format!("corosync went away ({e})"),
            },
            Err(e) => e,
        };
        notify(Notice::Gone(why));
        std::thread::sleep(RECONNECT_WAIT);
    }
}

/// A libquorum handle that tracks changes, after telling the current state.
fn track() -> Result<quorum::Handle, String> {
    let model = quorum::ModelData::ModelV1(quorum::Model1Data {
        flags: quorum::Model1Flags::None,
        quorum_notification_fn: Some(on_quorum),
        nodelist_notification_fn: None,
    });
    let unreachable =
        |what: &str, e: rust_corosync::CsError| format!("corosync is not reachable ({what}: {e})");
    let (handle, _) = quorum::initialize(&model, 0).map_err(|e| unreachable("libquorum", e))?;
    // CURRENT: the callback tells the present state (with the members) at the first
    // dispatch; CHANGES: then every change.
    for flags in [TrackFlags::Current, TrackFlags::Changes] {
        quorum::trackstart(&handle, flags).map_err(|e| unreachable("libquorum tracking", e))?;
    }
    let quorate = quorum::getquorate(&handle).map_err(|e| unreachable("libquorum", e))?;
    notify(Notice::Quorum(quorate, Vec::new()));
    Ok(handle)
}

/// Runs on its own thread; `publish` gets every change of the picture.
pub struct Follower {
    cluster: String,
    /// corosync node ids to names, in `nodes:` order.
    names: Vec<(u32, String)>,
    me: u32,
    links: u32,
    last: Option<QuorumState>,
}

impl Follower {
    pub fn new(cluster: &Cluster, node: &str) -> Self {
        let names = cluster
            .nodes
            .iter()
            .filter_map(|n| Some((cluster.corosync_nodeid(&n.name)?, n.name.clone())))
            .collect();
        Follower {
            cluster: cluster.name.clone(),
            names,
            me: cluster.corosync_nodeid(node).unwrap_or(0),
            links: cluster.quorum.as_ref().map_or(1, |q| q.links.len() as u32),
            last: None,
        }
    }

    /// Starts the event thread, then follows it (and refreshes the details) forever.
    pub fn run(mut self, mut publish: impl FnMut(&QuorumState)) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        *NOTICES
            .get_or_init(|| Mutex::new(None))
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        std::thread::Builder::new()
            .name("quorum-events".into())
            .spawn(|| events())?;
        self.follow(&rx, &mut publish);
        Ok(())
    }

    fn follow(&mut self, rx: &Receiver<Notice>, publish: &mut impl FnMut(&QuorumState)) {
        // Not quorate until corosync says otherwise.
        let mut quorum: Result<(bool, Vec<u32>), String> =
            Err("waiting for corosync's first answer".into());
        let mut details: Option<Details> = None;
        loop {
            match rx.recv_timeout(DETAIL_REFRESH) {
                Ok(Notice::Quorum(quorate, members)) => {
                    // getquorate gives no members: keep the last ones until the callback.
                    let members = match (&quorum, members.is_empty()) {
                        (Ok((_, last)), true) => last.clone(),
                        _ => members,
                    };
                    quorum = Ok((quorate, members));
                }
                Ok(Notice::Gone(why)) => {
                    quorum = Err(why);
                    details = None;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let state = match &quorum {
                Ok((quorate, members)) => {
                    if details.is_none() {
                        details = Details::connect().ok();
                    }
                    let (state, stale) = self.picture(details.as_ref(), *quorate, members);
                    if stale {
                        // The handles went stale (corosync restarted): new ones next time.
                        details = None;
                    }
                    state
                }
                Err(why) => QuorumState {
                    detail: why.clone(),
                    ..QuorumState::default()
                },
            };
            self.update(state, publish);
        }
    }

    /// Everything status shows, read now, and whether `details` failed (to be reopened).
    fn picture(
        &self,
        details: Option<&Details>,
        quorate: bool,
        members: &[u32],
    ) -> (QuorumState, bool) {
        let name = |id: u32| {
            self.names
                .iter()
                .find(|(n, _)| *n == id)
                .map_or_else(|| format!("node{id}"), |(_, name)| name.clone())
        };
        let mut state = QuorumState {
            quorate,
            connected: true,
            members: members.iter().map(|&id| name(id)).collect(),
            ..QuorumState::default()
        };
        let Some(details) = details else {
            // Without corosync's configuration the quorum cannot be trusted to be ours.
            state.quorate = false;
            state.detail = "votequorum: corosync's maps are not reachable".into();
            return (state, true);
        };
        // A corosync that runs another configuration (the package's default one-node
        // cluster, say) is quorate about something else.
        match cmap::get(&details.icmap, "totem.cluster_name") {
            Ok(cmap::Data::String(name)) if name == self.cluster => {}
            Err(e) => {
                // corosync is going away (or restarting): the next notice says which.
                state.quorate = false;
                state.detail = format!("votequorum: corosync's configuration is unreadable ({e})");
                return (state, true);
            }
            other => {
                let runs = match other {
                    Ok(cmap::Data::String(name)) => format!("cluster {name:?}"),
                    _ => "a cluster without a name".into(),
                };
                state.quorate = false;
                state.detail = format!(
                    "corosync runs {runs}, not {:?}: its corosync.conf is not the one \
                     `hakeep render corosync` writes",
                    self.cluster
                );
                return (state, false);
            }
        }
        let mut stale = false;
        match votequorum::get_info(&details.votequorum, NodeId::from(self.me)) {
            Ok(info) => {
                use votequorum::NodeInfoFlags as F;
                state.quorum_votes = Some(info.quorum);
                state.expected_votes = Some(info.node_expected_votes);
                if info.flags.contains(F::VOTEQUORUM_INFO_QDEVICE_REGISTERED) {
                    state.qdevice = Some(QdeviceState {
                        registered: true,
                        alive: info.flags.contains(F::VOTEQUORUM_INFO_QDEVICE_ALIVE),
                        cast_vote: info.flags.contains(F::VOTEQUORUM_INFO_QDEVICE_CAST_VOTE),
                        votes: info.qdevice_votes,
                    });
                }
            }
            Err(e) => {
                state.detail = format!("votequorum: {e}");
                stale = true;
            }
        }
        for (id, peer) in self.names.iter().filter(|(id, _)| *id != self.me) {
            for link in 0..self.links {
                let key = format!("stats.knet.node{id}.link{link}.connected");
                let connected = matches!(cmap::get(&details.stats, &key), Ok(cmap::Data::UInt8(1)));
                state.links.push(LinkState {
                    peer: peer.clone(),
                    link,
                    connected,
                });
            }
        }
        if !quorate && state.detail.is_empty() {
            state.detail = format!(
                "this node's partition ({}) lacks the votes for quorum",
                state.members.join(", ")
            );
        }
        (state, stale)
    }

    /// Publishes `state` when it differs from the last one; `since` moves only when
    /// quorum itself changes.
    fn update(&mut self, mut state: QuorumState, publish: &mut impl FnMut(&QuorumState)) {
        state.since = match &self.last {
            Some(last) if last.quorate == state.quorate => last.since.clone(),
            _ => timestamp(SystemTime::now()),
        };
        if self.last.as_ref() == Some(&state) {
            return;
        }
        match &self.last {
            Some(last) if last.quorate == state.quorate => {}
            _ if state.quorate => {
                log::warn!("corosync: quorate (members: {})", state.members.join(", "))
            }
            _ => log::error!("corosync: NOT quorate: {}", state.detail),
        }
        publish(&state);
        self.last = Some(state);
    }
}

/// The handles status reads votes and links through (request and answer: no events).
struct Details {
    votequorum: votequorum::Handle,
    stats: cmap::Handle,
    icmap: cmap::Handle,
}

impl Details {
    fn connect() -> Result<Self, String> {
        let callbacks = votequorum::Callbacks {
            quorum_notification_fn: None,
            nodelist_notification_fn: None,
            expectedvotes_notification_fn: None,
        };
        let votequorum =
            votequorum::initialize(&callbacks).map_err(|e| format!("libvotequorum: {e}"))?;
        let stats = cmap::initialize(cmap::Map::Stats).map_err(|e| format!("libcmap: {e}"))?;
        let icmap = cmap::initialize(cmap::Map::Icmap).map_err(|e| format!("libcmap: {e}"))?;
        Ok(Details {
            votequorum,
            stats,
            icmap,
        })
    }
}
