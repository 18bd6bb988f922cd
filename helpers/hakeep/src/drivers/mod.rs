//! Drivers: one per resource kind of a group (docs/design.md §3). Each observes whether its
//! resource is active on this node, and takes or releases it idempotently. They run
//! programs only through `exec::Runner`.

use std::time::Duration;

use crate::config::{Cluster, Group};
use crate::exec::{ExecError, Runner};
use procfs::{MountSource, ProcMounts};

pub mod filesystem;
pub mod procfs;
pub mod service;
pub mod volume;

/// What one driver finds on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Active,
    Inactive,
    /// Nothing to do for this resource here (a `none` volume).
    NotApplicable,
}

/// Limits every driver respects.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// One program run (mount, iscsiadm, sg_persist, ...).
    pub command: Duration,
    /// `systemctl start` / `stop` (the job is waited for).
    pub service: Duration,
    /// Busy unmount: time between TERM and KILL to the mountpoint's holders.
    pub umount_grace: Duration,
    /// A device to appear after an attach or login.
    pub device_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(30),
            service: Duration::from_secs(120),
            umount_grace: Duration::from_secs(5),
            device_wait: Duration::from_secs(30),
        }
    }
}

/// systemd units as the service driver needs them: the agent's D-Bus connection
/// (observe::systemd), or a fake in tests.
pub trait Units: Send + Sync {
    fn is_active(&self, unit: &str) -> Result<bool, DriverError>;
    /// Starts the unit and waits for its job to finish (done, or the error).
    fn start(&self, unit: &str, timeout: Duration) -> Result<(), DriverError>;
    /// Stops the unit and waits for its job; a unit that is not loaded is stopped.
    fn stop(&self, unit: &str, timeout: Duration) -> Result<(), DriverError>;
}

/// Where systemd cannot be reached: every unit operation fails, saying why.
pub struct NoSystemd(pub &'static str);

impl Units for NoSystemd {
    fn is_active(&self, unit: &str) -> Result<bool, DriverError> {
        Err(DriverError::Failed(format!("{unit}: {}", self.0)))
    }
    fn start(&self, unit: &str, _: Duration) -> Result<(), DriverError> {
        self.is_active(unit).map(|_| ())
    }
    fn stop(&self, unit: &str, _: Duration) -> Result<(), DriverError> {
        self.is_active(unit).map(|_| ())
    }
}

/// The host's own mount table, read on every call.
pub static HOST_MOUNTS: ProcMounts = ProcMounts::host();

/// What drivers need besides their own config.
pub struct Context<'a> {
    pub runner: &'a dyn Runner,
    pub units: &'a dyn Units,
    pub mounts: &'a dyn MountSource,
    pub cluster: &'a str,
    pub node: &'a str,
    pub timeouts: &'a Timeouts,
}

impl<'a> Context<'a> {
    /// A context without systemd, reading the host's mount table: for one-shot commands
    /// and tests of drivers that need neither.
    pub fn plain(runner: &'a dyn Runner, timeouts: &'a Timeouts) -> Self {
        static NONE: NoSystemd = NoSystemd("systemd is not connected here");
        Context {
            runner,
            units: &NONE,
            mounts: &HOST_MOUNTS,
            cluster: "lab",
            node: "n1",
            timeouts,
        }
    }
}

/// What part of a group a resource is: the safe order takes volumes, then filesystems,
/// then services, and releases in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Volume,
    Filesystem,
    Service,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{0}")]
    Failed(String),
}

impl DriverError {
    /// Says what was being done: `mounting /dev/sdb on /srv/nfs: mount exited 32: ...`.
    pub fn context(self, doing: impl std::fmt::Display) -> DriverError {
        DriverError::Failed(format!("{doing}: {self}"))
    }
}

/// Polls `done` every `step` until it holds or `limit` has passed (checked once more at
/// the end). Returns whether it held.
pub fn wait_until(limit: Duration, step: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

/// One resource of a group.
pub trait Resource: Send + Sync {
    /// Stable id for logs and status, e.g. `mount:/srv/nfs`, `service:nginx.service`.
    fn id(&self) -> String;
    fn kind(&self) -> Kind;
    fn observe(&self, ctx: &Context) -> Result<Observed, DriverError>;
    /// Looks now, even where `observe` may answer from a recent look (resource scripts).
    fn observe_now(&self, ctx: &Context) -> Result<Observed, DriverError> {
        self.observe(ctx)
    }
    /// Makes the resource active; does nothing when it already is.
    fn take(&self, ctx: &Context) -> Result<(), DriverError>;
    /// Makes the resource inactive; does nothing when it already is.
    fn release(&self, ctx: &Context) -> Result<(), DriverError>;
}

/// A group's resources in take order: volumes, filesystems, services.
/// Release runs them in reverse.
pub fn resources_of(_cluster: &Cluster, group: &Group) -> Vec<Box<dyn Resource>> {
    let mut out: Vec<Box<dyn Resource>> = Vec::new();
    for v in &group.volumes {
        out.push(volume::for_config(v));
    }
    for fs in &group.filesystems {
        out.push(Box::new(filesystem::Mount::new(fs.clone())));
    }
    for s in &group.services {
        out.push(service::for_config(s));
    }
    out
}
