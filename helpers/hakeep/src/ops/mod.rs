//! Operator commands: status, release, takeover, switchover, maintenance, check.

pub mod check;
pub mod cluster_status;
pub mod doctor;
pub mod maintenance;
pub mod moves;
pub mod peer_command;
pub mod plan;
pub mod remote;
pub mod status;
pub mod view;
