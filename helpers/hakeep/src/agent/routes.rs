//! Which group a notification is about: a unit, a mountpoint or a floating IP belongs to
//! the groups that name it, and only their workers are woken.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Cluster, Service};
use crate::observe::addresses::AddressEvent;

use super::mailbox::Mailbox;
use super::records::Records;

pub struct Routes {
    mailboxes: Arc<HashMap<String, Arc<Mailbox>>>,
    records: Arc<Records>,
    units: HashMap<String, Vec<String>>,
    mountpoints: HashMap<PathBuf, Vec<String>>,
    /// A floating IP (on any interface) → its groups.
    addresses: HashMap<IpAddr, Vec<String>>,
}

impl Routes {
    pub fn new(
        cluster: &Cluster,
        node: &str,
        mailboxes: Arc<HashMap<String, Arc<Mailbox>>>,
        records: Arc<Records>,
    ) -> Self {
        let mut routes = Routes {
            mailboxes,
            records,
            units: HashMap::new(),
            mountpoints: HashMap::new(),
            addresses: HashMap::new(),
        };
        for group in cluster.groups_of(node) {
            let name = || group.name.clone();
            for service in &group.services {
                if let Service::Unit(unit) = service {
                    routes.units.entry(unit.clone()).or_default().push(name());
                }
            }
            for fs in &group.filesystems {
                routes
                    .mountpoints
                    .entry(fs.mountpoint().to_path_buf())
                    .or_default()
                    .push(name());
            }
            for ip in &group.ips {
                routes.addresses.entry(ip.address).or_default().push(name());
            }
        }
        routes
    }

    pub fn units(&self) -> Vec<String> {
        let mut units: Vec<String> = self.units.keys().cloned().collect();
        units.sort();
        units
    }

    pub fn mountpoints(&self) -> Vec<PathBuf> {
        self.mountpoints.keys().cloned().collect()
    }

    fn wake(&self, groups: Option<&Vec<String>>, why: &str) {
        for group in groups.into_iter().flatten() {
            if let Some(mailbox) = self.mailboxes.get(group) {
                mailbox.nudge(why);
            }
        }
    }

    pub fn unit_changed(&self, unit: &str) {
        self.wake(self.units.get(unit), &format!("unit {unit} changed"));
    }

    pub fn mounts_changed(&self, changed: &[PathBuf]) {
        for mountpoint in changed {
            self.wake(
                self.mountpoints.get(mountpoint),
                &format!("mount table changed at {}", mountpoint.display()),
            );
        }
    }

    pub fn address_changed(&self, event: &AddressEvent) {
        let what = if event.added {
            "added to"
        } else {
            "removed from"
        };
        let cidr = format!("{}/{}", event.address, event.prefix);
        for group in self.addresses.get(&event.address).into_iter().flatten() {
            self.records
                .log_address(group, &cidr, &event.interface, event.added);
            if !event.added {
                log::info!(
                    "group {group}: floating IP {cidr} {what} {}",
                    event.interface
                );
            }
        }
        self.wake(
            self.addresses.get(&event.address),
            &format!("address {} {what} {}", event.address, event.interface),
        );
    }
}
