//! hakeep: keepalived decides where each service group lives; hakeep makes that node
//! really serve it. The modules follow the data flow: `config` (cluster.yml) →
//! `render` (keepalived.conf) → `keepalived` (notify lines, JSON state) → `agent`
//! (reconciler, workers) → `drivers` (volumes, mounts, services) and `observe` (what
//! the node's kernel and systemd report); `runtime` is the contract the agent, `ops`
//! (operator commands) and `render` share; `exec` is the one way to run a program.
#![forbid(unsafe_code)]

pub mod agent;
pub mod checks;
pub mod cli;
pub mod config;
pub mod corosync;
pub mod drivers;
pub mod exec;
pub mod fsutil;
pub mod keepalived;
pub mod logging;
pub mod observe;
pub mod ops;
pub mod render;
pub mod runtime;
