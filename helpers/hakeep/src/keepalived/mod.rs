//! Talking to keepalived: checking a config the way it will run.

pub mod check;
