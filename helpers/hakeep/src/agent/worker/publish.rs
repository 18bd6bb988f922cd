//! Publishing a group's picture (state.json, through the records) and cleaning up the
//! floating IPs a dead keepalived left behind. Everything here reads the observed
//! tables (mounts, addresses, unit states), so an idle resync runs no program for units,
//! mounts or IPs.

use std::time::{Duration, UNIX_EPOCH};

use crate::drivers::Observed;
use crate::runtime::state::{GroupState, IpStatus, ResourceStatus};
use crate::runtime::VrrpState;

use super::super::events::GroupLive;
use super::super::mailbox::{Input, QuorumGate};
use super::super::reconcile::Desired;
use super::Worker;

impl Worker {
    pub(super) fn publish(
        &self,
        input: &Input,
        desired: Desired,
        maintenance: bool,
        mut problems: Vec<String>,
    ) {
        let ctx = self.ctx();
        let resources: Vec<ResourceStatus> = self
            .resources
            .iter()
            .map(|r| match r.observe(&ctx) {
                Ok(o) => ResourceStatus {
                    id: r.id(),
                    observed: match o {
                        Observed::Active => "active",
                        Observed::Inactive => "inactive",
                        Observed::NotApplicable => "n/a",
                    }
                    .into(),
                    error: None,
                },
                Err(e) => ResourceStatus {
                    id: r.id(),
                    observed: "unknown".into(),
                    error: Some(e.to_string()),
                },
            })
            .collect();
        let floating_ips: Vec<IpStatus> = self
            .ips
            .iter()
            .map(|ip| IpStatus {
                address: ip.cidr(),
                present: self.env.addresses.has(&ip.interface, ip.address),
            })
            .collect();
        if let QuorumGate::Lost(why) = &input.quorum {
            problems.push(format!("no quorum: {why}; this node holds no group"));
        }
        let active = resources.iter().filter(|r| r.observed == "active").count();
        let applicable = resources.iter().filter(|r| r.observed != "n/a").count();
        let actual = if applicable > 0 && active == applicable {
            "active"
        } else if active == 0 {
            "standby"
        } else {
            "partial"
        };
        match desired {
            Desired::Standby => {
                for ip in floating_ips.iter().filter(|ip| ip.present) {
                    problems.push(format!(
                        "floating IP {} is present on a standby node",
                        ip.address
                    ));
                }
            }
            // keepalived adds the IPs on MASTER; one missing here (removed by hand, or
            // by something else on the node) means clients cannot reach the group.
            Desired::Active if input.vrrp == VrrpState::Master => {
                for ip in floating_ips.iter().filter(|ip| !ip.present) {
                    problems.push(format!(
                        "floating IP {} is missing on the active node",
                        ip.address
                    ));
                }
            }
            Desired::Active => {}
        }
        for check in self.watch.checks.iter().filter(|c| c.failing) {
            problems.push(format!(
                "check {} failing: {}",
                check.describe(),
                check.last_error.clone().unwrap_or_default()
            ));
        }
        self.env.records.set_group(
            &self.group.name,
            GroupState {
                vrrp_state: if input.keepalived_running {
                    input.vrrp
                } else {
                    VrrpState::Stop
                },
                desired: desired.as_str().into(),
                actual: actual.into(),
                maintenance,
                fault: self.hold.as_ref().map(|h| h.fault()),
                failed: self.failed.as_ref().map(|f| f.text().to_string()),
                resources,
                floating_ips,
                problems,
                last_transition: self.last_transition.clone(),
                fencing: Some(self.group.fencing.as_str().into()),
                fence_wait: self.fence_wait.as_ref().map(|w| w.text.clone()),
            },
            &self.live(desired),
        );
    }

    /// What metrics want beside the picture: the hold's end and, while the group is
    /// active here (only then do checks run), each check and whether it passes.
    fn live(&self, desired: Desired) -> GroupLive {
        let until_ms = self.hold.as_ref().map(|h| h.record.until_ms);
        GroupLive {
            hold_until: until_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            checks: match desired {
                Desired::Active if self.active_confirmed => self
                    .watch
                    .checks
                    .iter()
                    .map(|c| (c.describe(), !c.failing))
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    /// keepalived is dead, so it cannot remove its own VIPs: the agent does, or two
    /// nodes would answer for one address.
    pub(super) fn remove_stale_ips(&self, problems: &mut Vec<String>) {
        for ip in &self.ips {
            if !self.env.addresses.has(&ip.interface, ip.address) {
                continue;
            }
            log::warn!(
                "group {}: keepalived is not running but left {} on {}; removing it",
                self.group.name,
                ip.cidr(),
                ip.interface
            );
            if let Err(e) = self.env.addresses.remove(
                &ip.interface,
                ip.address,
                ip.prefix,
                self.timeouts.command,
            ) {
                problems.push(format!(
                    "cannot remove stale floating IP {}: {e}",
                    ip.cidr()
                ));
            }
        }
    }
}
