//! `hakeep agent`: reads keepalived's notify FIFO and keeps each group's resources in
//! line with its VRRP state (docs/design.md). Events only wake the workers: keepalived's
//! FIFO lines, systemd's unit signals, the kernel's mount and address notifications.
//! Each worker then looks at the node (from those observed tables) and does what is
//! missing.

pub mod control;
pub mod fifo;
mod fifo_reader;
pub mod ips;
pub mod lock;
pub mod mailbox;
pub mod reconcile;
pub mod records;
mod routes;
mod supervise;
mod worker;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Cluster;
use crate::drivers::{NoSystemd, Units};
use crate::exec::{Runner, SystemRunner};
use crate::keepalived::notify::Scope;
use crate::keepalived::state as keepalived_state;
use crate::observe::addresses::Addresses;
use crate::observe::mounts::MountTable;
use crate::observe::systemd::Systemd;
use crate::runtime::{Paths, VrrpState};

pub use mailbox::Mailbox;

/// Every this many resyncs, ask keepalived for a full JSON dump and re-read the observed
/// tables (units, addresses, mounts) as a safety net against a lost notification; in
/// between, a resync only checks that keepalived runs and lets each worker compare.
const FULL_RESYNC_EVERY: u32 = 12;

/// Runs the agent for `node` until the process is stopped. Stopping it leaves every
/// resource as it is: an agent restart must never move a service.
pub fn run(cluster: &Cluster, node: &str, paths: Paths) -> anyhow::Result<()> {
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
    let records = Arc::new(records::Records::new(
        &cluster.name,
        node,
        &paths.state_json,
        &paths.actions_log,
    ));
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

    let env = Arc::new(worker::Env {
        runner: runner.clone(),
        units,
        mounts: mounts.clone(),
        addresses: addresses.clone(),
        paths: paths.clone(),
        records: records.clone(),
    });
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

    let listener = control::bind(&paths.control_socket)?;
    let served = mailboxes.clone();
    std::thread::Builder::new()
        .name("control-socket".into())
        .spawn(move || control::serve(listener, served))
        .context("starting the control socket")?;

    let safety_net = SafetyNet {
        systemd,
        addresses,
        mounts,
    };
    let ka_paths = keepalived_state::Paths::default();
    let resync = Duration::from_secs(u64::from(cluster.agent.resync_interval_secs));
    let mut resyncs: u32 = 0;
    let mut resync_now = |trigger: &str| {
        let full = resyncs % FULL_RESYNC_EVERY == 0;
        resyncs = resyncs.wrapping_add(1);
        if full {
            safety_net.refresh();
        }
        resync_all(
            runner.as_ref(),
            &ka_paths,
            &mailboxes,
            &records,
            full,
            trigger,
        );
    };
    resync_now("agent start");

    let (tx, rx) = mpsc::channel();
    let reader = fifo_reader::Reader::new(&paths.fifo, fifo_file);
    std::thread::Builder::new()
        .name("notify-fifo".into())
        .spawn(move || reader.run(tx))
        .context("starting the FIFO reader")?;
    loop {
        match rx.recv_timeout(resync) {
            Ok(event) => {
                if event.scope != Scope::Instance {
                    continue;
                }
                match mailboxes.get(&event.name) {
                    Some(mailbox) => {
                        log::info!("keepalived: instance {} is {}", event.name, event.state);
                        records.log_event(&event.name, event.state, event.priority);
                        let running = keepalived_state::running_pid(&ka_paths).is_some();
                        mailbox.post(
                            Some(event.state),
                            running,
                            &format!("keepalived event {}", event.state),
                        );
                    }
                    None => log::warn!("ignoring event for unknown instance {:?}", event.name),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => resync_now("resync"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The reader reopens the FIFO itself; it ends only by a panic (a bug).
                log::error!("the notify FIFO reader is gone; resyncs alone from now on");
                loop {
                    std::thread::sleep(resync);
                    resync_now("resync");
                }
            }
        }
    }
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

/// Asks keepalived directly (its JSON dump when `full`); without it, every group's
/// desired state is standby.
fn resync_all(
    runner: &dyn Runner,
    ka_paths: &keepalived_state::Paths,
    mailboxes: &HashMap<String, Arc<Mailbox>>,
    records: &records::Records,
    full: bool,
    trigger: &str,
) {
    let states = if full {
        keepalived_state::dump_states(runner, ka_paths, Duration::from_secs(2))
    } else {
        None
    };
    let running = states.is_some() || keepalived_state::running_pid(ka_paths).is_some();
    records.set_keepalived_running(running);
    for (name, mailbox) in mailboxes {
        let state = match &states {
            Some(states) => states.get(name).copied(),
            None if !running => Some(VrrpState::Stop),
            None => None,
        };
        mailbox.post(state, running, trigger);
    }
}
