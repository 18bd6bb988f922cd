//! hakeep: keepalived decides where each service group lives; hakeep makes that node
//! really serve it. The modules follow the data flow: `config` (cluster.yml) →
//! `render` (keepalived.conf) → `keepalived` → `exec` (running programs).
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod config;
pub mod drivers;
pub mod exec;
pub mod fsutil;
pub mod keepalived;
pub mod logging;
pub mod ops;
pub mod render;
