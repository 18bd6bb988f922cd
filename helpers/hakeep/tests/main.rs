//! The integration tests of hakeep, one test binary (`cargo test --test integration`):
//!
//! - `properties`: proptest of the FIFO lines, the control requests and cluster.yml;
//! - `cli`, `render`, `validation`: the binary's exit codes and output, the rendered
//!   keepalived.conf (snapshots, and keepalived's own check), cluster.yml validation;
//! - `schemas`: `status --json` and `check --json` against docs/*.schema.json (with
//!   [`json_schema`], which `operator` uses too);
//! - `agent_cluster`, `agent_core`, `agent_metrics`, `doctor`, `fail_safe`, `operator`:
//!   the real-parts tier on the lab of [`harness`] (real keepalived and `hakeep agent` in
//!   network namespaces; root).
//!
//! Select a module with a filter: `cargo test --test integration agent_cluster::`.

mod harness;
mod json_schema;

mod agent_cluster;
mod agent_core;
mod agent_metrics;
mod cli;
mod doctor;
mod fail_safe;
mod operator;
mod properties;
mod render;
mod schemas;
mod validation;
