//! `hakeep agent`: reads keepalived's notify FIFO and keeps each group's resources in
//! line with its VRRP state (DESIGN.md §1–2). Events only wake the workers; each worker
//! looks at the node itself and does what is missing.

pub mod control;
pub mod fifo;
pub mod ips;
pub mod lock;
pub mod mailbox;
pub mod monitor;
pub mod paths;
pub mod reconcile;
pub mod records;
mod worker;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Cluster;
use crate::exec::{Runner, SystemRunner};
use crate::keepalived::notify::Scope;
use crate::keepalived::state as keepalived_state;

pub use mailbox::Mailbox;
pub use paths::Paths;

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
    // Open the FIFO before asking keepalived for its state, so nothing said in between is lost.
    let fifo_file = fifo::open(&paths.fifo)?;

    let runner: Arc<dyn Runner> = Arc::new(SystemRunner);
    let records = Arc::new(records::Records::new(
        &cluster.name,
        node,
        &paths.state_json,
        &paths.actions_log,
    ));
    let mut mailboxes: HashMap<String, Arc<Mailbox>> = HashMap::new();
    for group in cluster.groups_of(node) {
        let mailbox = Arc::new(Mailbox::new());
        mailboxes.insert(group.name.clone(), mailbox.clone());
        let worker = worker::Worker::new(
            cluster,
            group,
            node,
            runner.clone(),
            paths.clone(),
            records.clone(),
        );
        std::thread::Builder::new()
            .name(format!("group-{}", group.name))
            .spawn(move || worker.run(mailbox))
            .context("starting a group worker")?;
    }
    log::info!(
        "hakeep agent {} for node {node} of cluster {}: {} group(s)",
        env!("CARGO_PKG_VERSION"),
        cluster.name,
        mailboxes.len()
    );

    let mailboxes = Arc::new(mailboxes);
    let listener = control::bind(&paths.control_socket)?;
    let served = mailboxes.clone();
    std::thread::Builder::new()
        .name("control-socket".into())
        .spawn(move || control::serve(listener, served))
        .context("starting the control socket")?;

    let ka_paths = keepalived_state::Paths::default();
    let resync = Duration::from_secs(u64::from(cluster.agent.resync_interval_secs));
    resync_all(
        runner.as_ref(),
        &ka_paths,
        &mailboxes,
        &records,
        "agent start",
    );

    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("notify-fifo".into())
        .spawn(move || fifo::read_events(fifo_file, tx))
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
            Err(mpsc::RecvTimeoutError::Timeout) => {
                resync_all(runner.as_ref(), &ka_paths, &mailboxes, &records, "resync");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The reader ended on an error; keep going on resyncs alone.
                std::thread::sleep(resync);
                resync_all(runner.as_ref(), &ka_paths, &mailboxes, &records, "resync");
            }
        }
    }
}

/// Every this many resyncs, ask keepalived for a full JSON dump; in between, only check
/// that it runs (each dump is a line in keepalived's log).
const DUMP_EVERY: u32 = 12;

/// Asks keepalived directly; without it, every group's desired state is standby.
fn resync_all(
    runner: &dyn Runner,
    ka_paths: &keepalived_state::Paths,
    mailboxes: &HashMap<String, Arc<Mailbox>>,
    records: &records::Records,
    trigger: &str,
) {
    static RESYNCS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let count = RESYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let states = if count % DUMP_EVERY == 0 {
        keepalived_state::dump_states(runner, ka_paths, Duration::from_secs(2))
    } else {
        None
    };
    let running = states.is_some() || keepalived_state::running_pid(ka_paths).is_some();
    records.set_keepalived_running(running);
    for (name, mailbox) in mailboxes {
        let state = match &states {
            Some(states) => states.get(name).copied(),
            None if !running => Some(crate::keepalived::notify::VrrpState::Stop),
            None => None,
        };
        mailbox.post(state, running, trigger);
    }
}
