//! `hakeep agent`: reads keepalived's notify FIFO and keeps each group's resources in
//! line with its VRRP state (docs/design.md). Events only wake the workers: keepalived's
//! FIFO lines, systemd's unit signals, the kernel's mount and address notifications.
//! Each worker then looks at the node (from those observed tables) and does what is
//! missing.

pub mod alerts;
pub mod control;
pub mod events;
pub mod fifo;
mod fifo_reader;
pub mod ips;
mod keepalived_watch;
pub mod lock;
pub mod mailbox;
mod metrics;
mod quorum;
mod readiness;
pub mod reconcile;
pub mod records;
mod routes;
mod supervise;
mod watchdog;
mod worker;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::Cluster;
use crate::drivers::{NoSystemd, Units};
use crate::exec::{Runner, SystemRunner};
use crate::keepalived::notify::Scope;
use crate::keepalived::state as keepalived_state;
use crate::observe::addresses::Addresses;
use crate::observe::mounts::MountTable;
use crate::observe::systemd::Systemd;
use crate::observe::AddressView;
use crate::runtime::{Paths, VrrpState};

use keepalived_watch::{KeepalivedWatch, Verdict, PROBLEM_KEY};
pub use mailbox::Mailbox;

/// Every this many resyncs, ask keepalived for a full JSON dump and re-read the observed
/// tables (units, addresses, mounts) as a safety net against a lost notification; in
/// between, a resync only checks that keepalived runs and lets each worker compare.
const FULL_RESYNC_EVERY: u32 = 12;

/// Runs the agent for `node` until the process is stopped. Stopping it leaves every
/// resource as it is: an agent restart must never move a service.
pub fn run(
    cluster: &Cluster,
    config: &std::path::Path,
    node: &str,
    paths: Paths,
) -> anyhow::Result<()> {
    if cluster.node(node).is_none() {
        bail!("node {node:?} is not in cluster {:?}", cluster.name);
    }
    fifo::secure_dir(&paths.run_dir, 0o755)?;
    fifo::secure_dir(&paths.track_dir, 0o755)?;
    fifo::secure_dir(&paths.lock_dir, 0o700)?;
    if let Some(dir) = paths.actions_log.parent() {
        fifo::secure_dir(dir, 0o750)?;
    }
    if let Some(dir) = paths.holds_dir.parent() {
        fifo::secure_dir(dir, 0o755)?;
    }
    fifo::secure_dir(&paths.holds_dir, 0o755)?;
    // One agent per node: a second one would split keepalived's events with the first.
    let _instance = lock::AgentLock::acquire(&paths.lock_dir.join("agent.lock"))?;
    // Open the FIFO before asking keepalived for its state, so nothing said in between is lost.
    let fifo_file = fifo::open(&paths.fifo)?;

    let groups: Vec<_> = cluster.groups_of(node).collect();
    let mailboxes: Arc<HashMap<String, Arc<Mailbox>>> = Arc::new(
        groups
            .iter()
            .map(|g| (g.name.clone(), Arc::new(Mailbox::new())))
            .collect(),
    );

    let runner: Arc<dyn Runner> = Arc::new(SystemRunner);
    let mut observers: Vec<Arc<dyn events::Observer>> = Vec::new();
    let alerts = alerts::Alerts::start(&cluster.alerts, &cluster.name, node, runner.clone())
        .context("starting the alert programs' runners")?;
    if let Some(settings) = &cluster.metrics {
        let alerts = alerts.clone();
        let dropped = Box::new(move || alerts.as_ref().map_or(0, |a| a.dropped()));
        observers.push(metrics::start(settings, cluster, node, dropped)?);
    }
    if let Some(alerts) = alerts {
        observers.push(alerts);
    }
    let records = Arc::new(
        records::Records::new(&cluster.name, node, &paths.state_json, &paths.actions_log)
            .with_observers(observers),
    );
    let routes = Arc::new(routes::Routes::new(
        cluster,
        node,
        mailboxes.clone(),
        records.clone(),
    ));
    let to_mounts = routes.clone();
    let mounts = MountTable::start(routes.mountpoints(), move |changed| {
        to_mounts.mounts_changed(changed)
    })
    .context("watching the mount table")?;
    let to_addresses = routes.clone();
    let addresses = Addresses::start(move |event| to_addresses.address_changed(event))
        .context("watching the node's addresses (netlink)")?;
    let watched_units = routes.units();
    let systemd: Option<Arc<Systemd>> = if watched_units.is_empty() {
        None
    } else {
        let to_units = routes.clone();
        match Systemd::connect(&watched_units, move |unit| to_units.unit_changed(unit)) {
            Ok(s) => Some(s),
            Err(e) => {
                bail!("connecting to systemd (the groups here protect units): {e}");
            }
        }
    };
    let units: Arc<dyn Units> = match &systemd {
        Some(s) => s.clone(),
        None => Arc::new(NoSystemd("no group on this node protects a systemd unit")),
    };

    let watchdog = watchdog::Watchdog::for_node(cluster, node).map(Arc::new);
    if let Some(dog) = &watchdog {
        if let Err(e) = dog.start(runner.as_ref()) {
            // Its groups cannot be taken here (a take needs the device armed).
            log::error!("watchdog: {e}: watchdog-fenced groups will not be taken here");
            records.set_node_problem(
                "watchdog:",
                Some(format!(
                    "watchdog: {e}: watchdog-fenced groups cannot be taken here"
                )),
            );
        }
    }
    let env = Arc::new(worker::Env {
        runner: runner.clone(),
        units,
        mounts: mounts.clone(),
        addresses: addresses.clone(),
        paths: paths.clone(),
        records: records.clone(),
        watchdog: watchdog.clone(),
        cluster: Arc::new(cluster.clone()),
        config: config.to_path_buf(),
    });
    if cluster.quorum.is_some() {
        follow_quorum(cluster, node, &mailboxes, &records, watchdog.clone())?;
    }
    for group in &groups {
        let mailbox = mailboxes[&group.name].clone();
        let (cluster, group, node, env) = (
            cluster.clone(),
            (*group).clone(),
            node.to_string(),
            env.clone(),
        );
        std::thread::Builder::new()
            .name(format!("group-{}", group.name))
            .spawn(move || {
                let records = env.records.clone();
                supervise::supervise(&group.name, &records, Default::default(), |attempt| {
                    if attempt > 0 {
                        mailbox.nudge("worker restarted after a panic");
                    }
                    worker::Worker::new(&cluster, &group, &node, env.clone()).run(mailbox.clone())
                })
            })
            .context("starting a group worker")?;
    }
    log::info!(
        "hakeep agent {} for node {node} of cluster {}: {} group(s), {} unit(s) watched over D-Bus",
        env!("CARGO_PKG_VERSION"),
        cluster.name,
        mailboxes.len(),
        watched_units.len()
    );

    records.event(events::Event::new(
        crate::config::AlertEvent::Agent,
        None,
        "ok",
        format!(
            "hakeep agent {} started on {node} with {} group(s)",
            crate::cli::VERSION,
            mailboxes.len()
        ),
    ));

    let listener = control::bind(&paths.control_socket)?;
    let served = mailboxes.clone();
    std::thread::Builder::new()
        .name("control-socket".into())
        .spawn(move || control::serve(listener, served))
        .context("starting the control socket")?;

    let me = cluster.node(node).cloned().context("this node")?;
    let group_ips: Vec<(String, Vec<ips::NodeIp>)> = groups
        .iter()
        .map(|g| {
            let ips = g.ips.iter().map(|ip| ips::NodeIp::new(ip, &me)).collect();
            (g.name.clone(), ips)
        })
        .collect();
    let observed_addresses = addresses.clone();
    let safety_net = SafetyNet {
        systemd,
        addresses,
        mounts,
    };
    let ka_paths = keepalived_state::Paths::default();
    let resync = Duration::from_secs(u64::from(cluster.agent.resync_interval_secs));
    let fifo_path = paths.fifo.display().to_string();
    let mut watch = KeepalivedWatch::default();
    let mut resyncs: u32 = 0;
    let mut resync_now = |trigger: &str, watch: &mut KeepalivedWatch| {
        let periodic = resyncs % FULL_RESYNC_EVERY == 0;
        resyncs = resyncs.wrapping_add(1);
        if periodic {
            safety_net.refresh();
        }
        let pid = keepalived_state::running_pid(&ka_paths);
        let disagree = addresses_disagree(&mailboxes, &group_ips, observed_addresses.as_ref());
        let dump = watch.wants_dump(pid, disagree) || periodic;
        let states = resync_all(
            runner.as_ref(),
            &ka_paths,
            pid,
            &mailboxes,
            &records,
            dump,
            trigger,
        );
        if let Some(states) = states {
            if let Verdict::Raise(problem) = watch.compare(&states, &fifo_path, pid, resync) {
                log::error!("{problem}");
                records.set_node_problem(PROBLEM_KEY, Some(problem));
            }
        }
    };
    resync_now("agent start", &mut watch);

    let (tx, rx) = mpsc::channel();
    let reader = fifo_reader::Reader::new(&paths.fifo, fifo_file);
    std::thread::Builder::new()
        .name("notify-fifo".into())
        .spawn(move || reader.run(tx))
        .context("starting the FIFO reader")?;
    let mut readiness = readiness::Readiness::new(cluster, mailboxes.clone());
    readiness.ready(&records.summary());
    let mut next_resync = Instant::now() + resync;
    let mut next_dog_pet: Option<Instant> = watchdog.as_ref().map(|_| Instant::now());
    let mut reader_alive = true;
    loop {
        let now = Instant::now();
        let mut wait = next_resync.saturating_duration_since(now);
        if let Some(pet) = readiness.next_pet_in() {
            wait = wait.min(pet);
        }
        if let Some(pet) = next_dog_pet.map(|t| t.saturating_duration_since(now)) {
            wait = wait.min(pet);
        }
        let received = if reader_alive {
            rx.recv_timeout(wait)
        } else {
            std::thread::sleep(wait);
            Err(mpsc::RecvTimeoutError::Timeout)
        };
        match received {
            Ok(event) => {
                if event.scope == Scope::Instance {
                    match mailboxes.get(&event.name) {
                        Some(mailbox) => {
                            log::info!("keepalived: instance {} is {}", event.name, event.state);
                            if watch.fifo_event(&event.name, event.state) == Verdict::Clear {
                                log::warn!("keepalived's notify FIFO works again");
                                records.set_node_problem(PROBLEM_KEY, None);
                            }
                            records.log_event(&event.name, event.state, event.priority);
                            let running = keepalived_state::running_pid(&ka_paths).is_some();
                            mailbox.post(
                                Some(event.state),
                                running,
                                &format!("keepalived event {}", event.state),
                            );
                        }
                        None => {
                            log::warn!("ignoring event for unknown instance {:?}", event.name)
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The reader reopens the FIFO itself; it ends only by a panic (a bug).
                log::error!("the notify FIFO reader is gone; resyncs alone from now on");
                reader_alive = false;
            }
        }
        if Instant::now() >= next_resync {
            resync_now("resync", &mut watch);
            next_resync = Instant::now() + resync;
        }
        readiness.tick(&records.summary());
        if let Some(dog) = &watchdog {
            if next_dog_pet.is_none_or(|t| Instant::now() >= t) {
                let hung = readiness.hung_worker().map(|(g, _)| g);
                let first_pass = mailboxes.values().all(|m| m.had_first_pass());
                next_dog_pet = Some(Instant::now() + dog.tick(hung.as_deref(), first_pass));
            }
        }
    }
}

/// Starts following corosync's quorum: every worker waits for the first answer, then
/// holds nothing while the node is not quorate.
fn follow_quorum(
    cluster: &Cluster,
    node: &str,
    mailboxes: &Arc<HashMap<String, Arc<Mailbox>>>,
    records: &Arc<records::Records>,
    watchdog: Option<Arc<watchdog::Watchdog>>,
) -> anyhow::Result<()> {
    // Peers not seen since the agent started count as gone since then.
    let start = Instant::now();
    let mut absent: HashMap<String, Instant> = cluster
        .nodes
        .iter()
        .filter(|n| n.name != node)
        .map(|n| (n.name.clone(), start))
        .collect();
    let absent_list = |absent: &HashMap<String, Instant>| {
        let mut list: Vec<(String, Instant)> =
            absent.iter().map(|(n, t)| (n.clone(), *t)).collect();
        list.sort();
        list
    };
    for mailbox in mailboxes.values() {
        mailbox.set_quorum(
            mailbox::QuorumGate::Pending,
            absent_list(&absent),
            "agent start",
        );
    }
    let follower = quorum::Follower::new(cluster, node);
    let (mailboxes, records) = (mailboxes.clone(), records.clone());
    let peers: Vec<String> = absent.keys().cloned().collect();
    std::thread::Builder::new()
        .name("quorum".into())
        .spawn(move || {
            let mut last: Option<bool> = None;
            follower
                .run(|state| {
                    records.set_quorum(state.clone());
                    if let Some(dog) = &watchdog {
                        dog.quorum(state.quorate);
                    }
                    for peer in &peers {
                        if state.members.contains(peer) {
                            absent.remove(peer);
                        } else {
                            absent.entry(peer.clone()).or_insert_with(Instant::now);
                        }
                    }
                    let (gate, trigger) = if state.quorate {
                        (mailbox::QuorumGate::Quorate, "quorum regained")
                    } else {
                        (
                            mailbox::QuorumGate::Lost(state.detail.clone()),
                            "quorum lost",
                        )
                    };
                    for mailbox in mailboxes.values() {
                        mailbox.set_quorum(gate.clone(), absent_list(&absent), trigger);
                    }
                    // The first reading is no event: quorum did not change.
                    if last.is_some_and(|q| q != state.quorate) {
                        let (result, detail) = if state.quorate {
                            (
                                "ok",
                                format!("quorate; members: {}", state.members.join(", ")),
                            )
                        } else {
                            ("lost", state.detail.clone())
                        };
                        records.event(events::Event::new(
                            crate::config::AlertEvent::Quorum,
                            None,
                            result,
                            detail,
                        ));
                    }
                    last = Some(state.quorate);
                })
                .unwrap_or_else(|e| log::error!("cannot follow quorum: {e}"))
        })
        .context("starting the quorum follower")?;
    Ok(())
}

/// The observed tables, re-read from their sources now and then in case a notification
/// was lost (differences wake the groups concerned like any notification).
struct SafetyNet {
    systemd: Option<Arc<Systemd>>,
    addresses: Arc<Addresses>,
    mounts: Arc<MountTable>,
}

impl SafetyNet {
    fn refresh(&self) {
        if let Some(systemd) = &self.systemd {
            if let Err(e) = systemd.refresh() {
                log::warn!("re-reading the units' states from systemd: {e}");
            }
        }
        if let Err(e) = self.addresses.resync() {
            log::warn!("re-reading the node's addresses: {e}");
        }
        if let Err(e) = crate::drivers::procfs::MountSource::refresh(self.mounts.as_ref()) {
            log::warn!("re-reading the mount table: {e}");
        }
    }
}

/// Whether a group's floating IPs are on this node while the agent does not believe
/// MASTER, or the other way round: keepalived may have changed state without an event.
fn addresses_disagree(
    mailboxes: &HashMap<String, Arc<Mailbox>>,
    group_ips: &[(String, Vec<ips::NodeIp>)],
    addresses: &dyn AddressView,
) -> bool {
    group_ips.iter().any(|(name, ips)| {
        let Some(mailbox) = mailboxes.get(name) else {
            return false;
        };
        let input = mailbox.latest();
        if ips.is_empty() || !input.keepalived_running {
            return false;
        }
        let master = input.vrrp == VrrpState::Master;
        let present = ips
            .iter()
            .any(|ip| addresses.has(&ip.interface, ip.address));
        present != master
    })
}

/// Asks keepalived directly (its JSON dump when `dump`); without it (`pid`, its running
/// pid as this resync read it, is `None`), every group's desired state is standby.
/// Returns the dump's states.
fn resync_all(
    runner: &dyn Runner,
    ka_paths: &keepalived_state::Paths,
    pid: Option<i32>,
    mailboxes: &HashMap<String, Arc<Mailbox>>,
    records: &records::Records,
    dump: bool,
    trigger: &str,
) -> Option<HashMap<String, VrrpState>> {
    let states = if dump {
        keepalived_state::dump_states(runner, ka_paths, Duration::from_secs(2))
    } else {
        None
    };
    let running = states.is_some() || pid.is_some();
    records.set_keepalived_running(running);
    for (name, mailbox) in mailboxes {
        let state = match &states {
            Some(states) => states.get(name).copied(),
            None if !running => Some(VrrpState::Stop),
            None => None,
        };
        mailbox.post(state, running, trigger);
    }
    states
}
