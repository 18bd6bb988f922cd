//! Floating IPs as the agent sees them: keepalived adds and removes them; the agent only
//! looks, except when keepalived is dead and cannot remove its own leftovers.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{FloatingIp, Node};
use crate::exec::{Cmd, ExecError, Runner};

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

/// Addresses currently on `interface` (`ip -o addr show dev IFACE`).
pub fn addresses_on(
    runner: &dyn Runner,
    interface: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ExecError> {
    let out = runner.run_ok(&Cmd::new(
        ["ip", "-o", "addr", "show", "dev", interface],
        timeout,
    ))?;
    Ok(parse_ip_addr(&out.stdout))
}

/// Parses `ip -o addr` lines: `2: eth1    inet 10.0.0.1/24 brd ... scope global eth1`.
pub fn parse_ip_addr(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .collect()
}

pub fn is_present(runner: &dyn Runner, ip: &NodeIp, timeout: Duration) -> Result<bool, ExecError> {
    Ok(addresses_on(runner, &ip.interface, timeout)?.contains(&ip.address))
}

/// Removes a floating IP keepalived left behind when it died.
pub fn remove(runner: &dyn Runner, ip: &NodeIp, timeout: Duration) -> Result<(), ExecError> {
    let cidr = ip.cidr();
    runner
        .run_ok(&Cmd::new(
            [
                "ip",
                "addr",
                "del",
                cidr.as_str(),
                "dev",
                ip.interface.as_str(),
            ],
            timeout,
        ))
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6() {
        let text = "2: eth1    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth1\\       valid_lft forever\n\
                    2: eth1    inet 10.0.0.100/24 scope global secondary eth1\n\
                    2: eth1    inet6 fd00::1/64 scope global \\       valid_lft forever\n";
        let addrs = parse_ip_addr(text);
        assert_eq!(addrs.len(), 3);
        assert!(addrs.contains(&"10.0.0.100".parse().unwrap()));
        assert!(addrs.contains(&"fd00::1".parse().unwrap()));
    }
}
