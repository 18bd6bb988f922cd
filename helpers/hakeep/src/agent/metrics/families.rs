//! The metric families (their names and labels are a contract: docs/metrics.md) and their
//! text exposition. Every value lives in the families' own atomics, so encoding never
//! waits for a worker.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The classic text format: Prometheus, `promtool check metrics` and node_exporter's
/// textfile collector all read it (the collector reads no OpenMetrics).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The states of `hakeep_group_vrrp_state`, keepalived's names.
pub const STATES: [&str; 5] = ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"];

/// Step durations from a unit's start (milliseconds) to a slow fsck or iSCSI login
/// (minutes; service_timeout is 120 s by default).
const STEP_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub group: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub group: String,
    pub action: String,
    pub step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub group: String,
    pub check: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type Groups<M> = Family<GroupLabels, M>;

pub struct Families {
    registry: Registry,
    pub keepalived_up: Gauge,
    pub vrrp_state: Family<StateLabels, Gauge>,
    pub active: Groups<Gauge>,
    pub healthy: Groups<Gauge>,
    pub failed: Groups<Gauge>,
    pub maintenance: Groups<Gauge>,
    pub hold_seconds: Groups<F64Gauge>,
    pub takeovers: Groups<Counter>,
    pub releases: Groups<Counter>,
    pub faults: Groups<Counter>,
    pub restarts: Groups<Counter>,
    pub fences: Groups<Counter>,
    pub step_duration: Family<StepLabels, Histogram, fn() -> Histogram>,
    pub check_up: Family<CheckLabels, Gauge>,
    pub alerts_dropped: Counter,
}

impl Families {
    /// Every family, with each group of `groups` at 0 from the start (a counter that
    /// appears only at its first increment hides that increment from `increase()`).
    pub fn new(cluster: &str, node: &str, groups: &[String], started: SystemTime) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "hakeep_agent",
            "The agent of this node: cluster, node and the agent's version and commit",
            Info::new(vec![
                ("cluster", cluster.to_string()),
                ("node", node.to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("commit", env!("HAKEEP_GIT_COMMIT").to_string()),
            ]),
        );
        let start_time = F64Gauge::default();
        let since_epoch = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        start_time.set(since_epoch.as_secs_f64());
        registry.register(
            "hakeep_agent_start_time_seconds",
            "When the agent started (Unix time); the counters count from then",
            start_time,
        );
        let f = Families {
            keepalived_up: Gauge::default(),
            vrrp_state: Family::default(),
            active: Family::default(),
            healthy: Family::default(),
            failed: Family::default(),
            maintenance: Family::default(),
            hold_seconds: Family::default(),
            takeovers: Family::default(),
            releases: Family::default(),
            faults: Family::default(),
            restarts: Family::default(),
            fences: Family::default(),
            step_duration: Family::new_with_constructor(|| Histogram::new(STEP_BUCKETS)),
            check_up: Family::default(),
            alerts_dropped: Counter::default(),
            registry,
        };
        f.register_all(groups)
    }

    fn register_all(mut self, groups: &[String]) -> Self {
        // get_or_create makes the series; the guard it returns is dropped at once.
        for group in groups {
            let g = &group_labels(group);
            for state in STATES {
                let _ = self.vrrp_state.get_or_create(&state_labels(group, state));
            }
            for gauge in [&self.active, &self.healthy, &self.failed, &self.maintenance] {
                let _ = gauge.get_or_create(g);
            }
            let _ = self.hold_seconds.get_or_create(g);
            for counter in [
                &self.takeovers,
                &self.releases,
                &self.faults,
                &self.restarts,
                &self.fences,
            ] {
                let _ = counter.get_or_create(g);
            }
        }
        let r = &mut self.registry;
        r.register(
            "hakeep_keepalived_up",
            "Whether keepalived runs on this node (1) or not (0), as of the agent's last resync",
            self.keepalived_up.clone(),
        );
        r.register(
            "hakeep_group_vrrp_state",
            "1 for the group's current VRRP state here, 0 for the others; all 0 while keepalived has not reported one",
            self.vrrp_state.clone(),
        );
        r.register(
            "hakeep_group_active",
            "Whether this node holds and serves the group (desired and actual state active)",
            self.active.clone(),
        );
        r.register(
            "hakeep_group_healthy",
            "Whether the group is as intended here, as `hakeep status` judges it (its ok)",
            self.healthy.clone(),
        );
        r.register(
            "hakeep_group_failed",
            "Whether this node could not bring the group to a safe state by itself (FAILED)",
            self.failed.clone(),
        );
        r.register(
            "hakeep_group_maintenance",
            "Whether the group is in maintenance here (the agent records but does not act)",
            self.maintenance.clone(),
        );
        r.register(
            "hakeep_group_hold_seconds",
            "Seconds left of this node's hold (fault, fence or operator) on the group; 0 without one",
            self.hold_seconds.clone(),
        );
        r.register(
            "hakeep_group_takeovers",
            "Takes of the group done here since the agent started",
            self.takeovers.clone(),
        );
        r.register(
            "hakeep_group_releases",
            "Releases of the group done here since the agent started",
            self.releases.clone(),
        );
        r.register(
            "hakeep_group_faults",
            "Faults of the group here (the node stepped down) since the agent started",
            self.faults.clone(),
        );
        r.register(
            "hakeep_group_restarts",
            "Restarts of the group's services here (done or failed) since the agent started",
            self.restarts.clone(),
        );
        r.register(
            "hakeep_group_fences",
            "Times a peer took the group's volume from this node since the agent started",
            self.fences.clone(),
        );
        r.register(
            "hakeep_step_duration_seconds",
            "How long each step of a take, release, rollback, verify or restart took",
            self.step_duration.clone(),
        );
        r.register(
            "hakeep_check_up",
            "Whether a check of a group passes (fall/rise applied); only while the group is active here",
            self.check_up.clone(),
        );
        r.register(
            "hakeep_alerts_dropped",
            "Alert programs not run because too many were already waiting",
            self.alerts_dropped.clone(),
        );
        self
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; the families encode nothing fallible.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

pub fn state_labels(group: &str, state: &str) -> StateLabels {
    StateLabels {
        group: group.to_string(),
        state: state.to_string(),
    }
}

pub fn group_labels(group: &str) -> GroupLabels {
    GroupLabels {
        group: group.to_string(),
    }
}
