//! The lab's network: a bridge of its own (no host address, no route out), one netns per
//! node and for the client, each joined to the bridge by a veth with its address on
//! [`IFACE`](super::IFACE); links set down and up.

use std::fs;

use anyhow::{bail, Result};

use super::process::run_ok;
use super::{Lab, CLIENT_ADDR, IFACE};

fn no_ipv6(link: &str) {
    // Keeps link-local addresses off the host side: the host has no address on the lab.
    let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6"), "1");
}

impl Lab {
    pub(super) fn make_network(&mut self) -> Result<()> {
        let br = self.bridge.clone();
        run_ok(&[
            "ip",
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        no_ipv6(&br);
        run_ok(&["ip", "link", "set", &br, "up"])?;
        let mut ends: Vec<(String, String, String)> = self
            .nodes
            .iter()
            .map(|n| (n.netns.clone(), n.host_veth.clone(), n.address.clone()))
            .collect();
        ends.push((
            self.client_ns.clone(),
            self.client_veth.clone(),
            CLIENT_ADDR.to_string(),
        ));
        for (ns, veth, addr) in ends {
            run_ok(&["ip", "netns", "add", &ns])?;
            run_ok(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", IFACE, "netns", &ns,
            ])?;
            no_ipv6(&veth);
            run_ok(&["ip", "link", "set", &veth, "master", &br, "up"])?;
            run_ok(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run_ok(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                IFACE,
            ])?;
            run_ok(&["ip", "-n", &ns, "link", "set", IFACE, "up"])?;
        }
        // The rules: no host address on the bridge, no default route anywhere.
        let host = run_ok(&["ip", "-o", "addr", "show", "dev", &br])?;
        if !host.trim().is_empty() {
            bail!("the bridge {br} has a host address: {host}");
        }
        Ok(())
    }

    /// Sets the node's link (its eth1) down or up.
    pub fn set_link(&self, name: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        run_ok(&[
            "ip",
            "-n",
            &self.node(name).netns,
            "link",
            "set",
            IFACE,
            state,
        ])?;
        Ok(())
    }
}
