//! The runtime contract: what the agent, the operator commands and the renderer share on
//! a node. Paths of the runtime files, the state.json types, the hold records, the control
//! socket's protocol and client, and the VRRP state type. Nothing here depends on the
//! agent, so `ops` and `render` never import `agent`.

pub mod control;
pub mod holds;
pub mod paths;
pub mod state;
pub mod vrrp;

pub use paths::Paths;
pub use vrrp::VrrpState;
