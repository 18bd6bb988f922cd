//! What the agent observes on its node, kept current by the kernel's and systemd's own
//! notifications instead of by running programs: the mount table (mountinfo wakeups),
//! the addresses (netlink) and the protected systemd units (D-Bus signals). Each source
//! tells the agent which group's resources changed, so only that group's worker wakes.

pub mod mounts;

use std::net::IpAddr;
use std::time::Duration;

use crate::checks::AddressLookup;

/// The node's addresses as the agent sees them.
pub trait AddressView: AddressLookup + Send + Sync {
    /// Is `address` on `interface` now?
    fn has(&self, interface: &str, address: IpAddr) -> bool;
    /// Removes an address (one a dead keepalived left behind).
    fn remove(
        &self,
        interface: &str,
        address: IpAddr,
        prefix: u8,
        timeout: Duration,
    ) -> Result<(), String>;
}

pub mod addresses;
pub mod systemd;

impl AddressLookup for addresses::Addresses {
    fn present_anywhere(&self, address: IpAddr) -> bool {
        self.all().contains(&address)
    }
}

impl AddressView for addresses::Addresses {
    fn has(&self, interface: &str, address: IpAddr) -> bool {
        addresses::Addresses::has(self, interface, address)
    }

    fn remove(
        &self,
        interface: &str,
        address: IpAddr,
        prefix: u8,
        timeout: Duration,
    ) -> Result<(), String> {
        addresses::Addresses::remove(self, interface, address, prefix, timeout)
            .map_err(|e| e.to_string())
    }
}

impl crate::drivers::Units for systemd::Systemd {
    fn is_active(&self, unit: &str) -> Result<bool, crate::drivers::DriverError> {
        self.state(unit)
            .map(|s| s.is_active())
            .map_err(|e| crate::drivers::DriverError::Failed(e.to_string()))
    }

    fn start(&self, unit: &str, timeout: Duration) -> Result<(), crate::drivers::DriverError> {
        systemd::Systemd::start(self, unit, timeout)
            .map_err(|e| crate::drivers::DriverError::Failed(e.to_string()))
    }

    fn stop(&self, unit: &str, timeout: Duration) -> Result<(), crate::drivers::DriverError> {
        systemd::Systemd::stop(self, unit, timeout)
            .map_err(|e| crate::drivers::DriverError::Failed(e.to_string()))
    }
}
