//! Talking to keepalived: checking a config the way it will run, its notify FIFO
//! lines, and its state.

pub mod check;
pub mod notify;
pub mod state;
