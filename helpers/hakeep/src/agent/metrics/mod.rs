//! Prometheus metrics of the agent (`metrics:` in cluster.yml; docs/metrics.md): an
//! observer of the records that keeps the families up to date, served over HTTP
//! (`listen`) and/or kept in a file for node_exporter's textfile collector (`textfile`).
//! A scrape reads only the metrics' own atomics and locks: it never waits for a worker
//! and runs no program.

mod families;
mod http;
mod observe;
mod textfile;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::config::{Cluster, MetricsSettings};

pub use families::CONTENT_TYPE;
use families::{group_labels, Families};

/// How many alert jobs were dropped so far (alerts.rs), read at each scrape.
pub type DroppedAlerts = Box<dyn Fn() -> u64 + Send + Sync>;

pub struct Metrics {
    families: Families,
    /// Per group, when its hold ends: the remaining seconds are computed at each scrape.
    holds: Mutex<BTreeMap<String, Option<SystemTime>>>,
    /// Per group, the checks that have a `hakeep_check_up` series now.
    checks: Mutex<BTreeMap<String, BTreeSet<String>>>,
    dropped_alerts: DroppedAlerts,
    /// Serialises the scrape-time updates (holds, dropped alerts) with their encoding.
    render: Mutex<()>,
    textfile: Option<Arc<textfile::Textfile>>,
}

impl Metrics {
    pub fn new(
        cluster: &str,
        node: &str,
        groups: &[String],
        dropped_alerts: DroppedAlerts,
    ) -> Self {
        Metrics {
            families: Families::new(cluster, node, groups, SystemTime::now()),
            holds: Mutex::new(groups.iter().map(|g| (g.clone(), None)).collect()),
            checks: Mutex::new(BTreeMap::new()),
            dropped_alerts,
            render: Mutex::new(()),
            textfile: None,
        }
    }

    /// The text exposition as of `now`.
    pub fn render(&self, now: SystemTime) -> String {
        let _serial = lock(&self.render);
        for (group, until) in lock(&self.holds).iter() {
            let left = until
                .and_then(|u| u.duration_since(now).ok())
                .unwrap_or(Duration::ZERO);
            self.families
                .hold_seconds
                .get_or_create(&group_labels(group))
                .set(left.as_secs_f64());
        }
        let dropped = (self.dropped_alerts)();
        let counted = self.families.alerts_dropped.get();
        if dropped > counted {
            self.families.alerts_dropped.inc_by(dropped - counted);
        }
        self.families.encode()
    }

    /// Something changed: the textfile is rewritten soon.
    fn changed(&self) {
        if let Some(textfile) = &self.textfile {
            textfile.changed();
        }
    }
}

/// Starts the metrics of `node` as `settings` asks: binds the endpoint (an address it
/// cannot listen on is an error: the agent refuses to start) and starts the textfile's
/// writer.
pub fn start(
    settings: &MetricsSettings,
    cluster: &Cluster,
    node: &str,
    dropped_alerts: DroppedAlerts,
) -> anyhow::Result<Arc<Metrics>> {
    let me = cluster.node(node).context("this node")?;
    let groups: Vec<String> = cluster.groups_of(node).map(|g| g.name.clone()).collect();
    let mut metrics = Metrics::new(&cluster.name, node, &groups, dropped_alerts);
    let server = match &settings.listen {
        Some(listen) => {
            let address = listen.for_node(me);
            let server = http::bind(address)
                .with_context(|| format!("metrics.listen: cannot listen on {address}"))?;
            Some((server, address))
        }
        None => None,
    };
    if let Some(path) = &settings.textfile {
        metrics.textfile = Some(Arc::new(textfile::Textfile::new(path)));
    }
    let metrics = Arc::new(metrics);
    if let Some((server, address)) = server {
        let served = metrics.clone();
        std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || http::serve(server, address, &|| served.render(SystemTime::now())))
            .context("starting the metrics endpoint")?;
        log::info!("metrics: serving http://{address}/metrics");
    }
    if let Some(textfile) = metrics.textfile.clone() {
        let every = Duration::from_secs(u64::from(cluster.agent.resync_interval_secs));
        let written = metrics.clone();
        std::thread::Builder::new()
            .name("metrics-textfile".into())
            .spawn(move || textfile.run(every, &|| written.render(SystemTime::now())))
            .context("starting the metrics textfile writer")?;
    }
    Ok(metrics)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
