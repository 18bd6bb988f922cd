//! Floating IPs as the agent sees them: keepalived adds and removes them; the agent only
//! looks (observe::addresses), except when keepalived is dead and cannot remove its own
//! leftovers.

use std::net::IpAddr;

use crate::config::{FloatingIp, Node};

/// A group's floating IP as configured on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIp {
    pub address: IpAddr,
    pub prefix: u8,
    pub interface: String,
}

impl NodeIp {
    pub fn new(ip: &FloatingIp, node: &Node) -> Self {
        NodeIp {
            address: ip.address,
            prefix: ip.prefix,
            interface: ip
                .interface
                .clone()
                .unwrap_or_else(|| node.interface.clone()),
        }
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix)
    }
}
