//! Watchdog fencing on the take side (docs/fencing.md). Before this node takes a
//! `fencing: watchdog` group it arms the watchdog (no armed device, no take), and while
//! another node of the group is out of its corosync membership it waits until that node
//! must have released the group or been reset by its own watchdog: it may still be serving
//! on the other side of a partition. A peer still in the membership is asked (the peers'
//! SSH request `status`): one that reports the group standby has released it (a clean
//! move: switchover, a peer seen BACKUP) and there is no wait; one that still serves it,
//! or cannot be asked, is waited for (VRRP can see a peer go before corosync does, and a
//! VRRP-only split leaves both nodes quorate).

use std::time::{Duration, Instant, SystemTime};

use crate::config::Fencing;
use crate::runtime::state::timestamp;

use super::super::mailbox::Input;
use super::super::reconcile::{Desired, Outcome};
use super::Worker;

/// How soon a take that waits for a peer in the membership asks it again.
const PEER_RECHECK: Duration = Duration::from_secs(2);

/// Until when a take waits, and why (shown in status as the group's fence wait).
pub struct FenceWait {
    pub until: Instant,
    pub text: String,
}

impl Worker {
    /// `desired`, unless a watchdog-fenced take must wait or cannot be fenced.
    pub(super) fn fence_take(&mut self, input: &Input, desired: Desired) -> Desired {
        if self.group.fencing != Fencing::Watchdog || desired != Desired::Active {
            self.fence_wait = None;
            return desired;
        }
        if !self.active_confirmed {
            let wait = self
                .wait_for_absent_peers(input)
                .or_else(|| self.wait_for_serving_peers());
            if let Some(wait) = wait {
                if self
                    .fence_wait
                    .as_ref()
                    .is_none_or(|w| w.until != wait.until)
                {
                    log::warn!("group {}: fence wait {}", self.group.name, wait.text);
                }
                self.fence_wait = Some(wait);
                return Desired::Standby;
            }
        }
        if self.fence_wait.take().is_some() {
            log::warn!("group {}: fence wait over: taking", self.group.name);
        }
        let armed = match &self.env.watchdog {
            Some(dog) => dog.claim(&self.group.name, self.env.runner.as_ref()),
            None => Err("this node has no watchdog configured".into()),
        };
        if let Err(e) = armed {
            self.raise_fault(format!(
                "watchdog fencing: the watchdog cannot be armed ({e}); not taking"
            ));
            return Desired::Standby;
        }
        desired
    }

    /// The latest moment a peer of this group that left the membership must have released
    /// or reset by, when it is still to come.
    fn wait_for_absent_peers(&self, input: &Input) -> Option<FenceWait> {
        let now = Instant::now();
        let (peer, left) = input
            .absent
            .iter()
            .filter(|(name, _)| self.group.nodes.contains(name) && name != &self.node)
            .max_by_key(|(_, left)| *left)?;
        let until = *left + self.fence_wait_length;
        if until <= now {
            return None;
        }
        let left_ago = now.saturating_duration_since(*left);
        let until_wall = SystemTime::now() + until.saturating_duration_since(now);
        Some(FenceWait {
            until,
            text: format!(
                "until {}: {peer} left the corosync membership {} s ago and may still serve \
                 the group; it releases within its release timeout or its watchdog resets \
                 it ({} s in all)",
                timestamp(until_wall),
                left_ago.as_secs(),
                self.fence_wait_length.as_secs()
            ),
        })
    }

    /// A peer of the group in the membership that still serves it, or cannot say.
    fn wait_for_serving_peers(&self) -> Option<FenceWait> {
        let env = &self.env;
        for peer in self.group.nodes.iter().filter(|n| *n != &self.node) {
            if let Some(mailbox) = &self.mailbox {
                mailbox.beat();
            }
            let status = crate::ops::cluster_status::node_status(
                &env.cluster,
                &env.config,
                &self.node,
                peer,
                &env.paths,
            );
            let state = status
                .groups
                .iter()
                .find(|g| g.name == self.group.name)
                .map(|g| g.state.actual.as_str());
            let why = match (state, &status.error) {
                (Some("standby"), _) => continue,
                (Some(actual), _) => format!("{peer} still has it {actual}"),
                (None, Some(e)) => {
                    format!("{peer} cannot be asked whether it still serves it ({e})")
                }
                (None, None) => format!("{peer} does not report the group"),
            };
            return Some(FenceWait {
                until: Instant::now() + PEER_RECHECK,
                text: format!(
                    "{why}; asking again in {} s (it is in the corosync membership: once it \
                     releases, or leaves the membership, this node goes on)",
                    PEER_RECHECK.as_secs()
                ),
            });
        }
        None
    }

    /// After a converge: the watchdog's claim follows what happened.
    pub(super) fn fence_after(&self, desired: Desired, outcome: &Outcome) {
        if self.group.fencing != Fencing::Watchdog {
            return;
        }
        let Some(dog) = &self.env.watchdog else {
            return;
        };
        match (desired, outcome) {
            (Desired::Standby, Outcome::Done | Outcome::AlreadyThere) => {
                dog.released(&self.group.name)
            }
            (_, Outcome::ReleaseFailed { .. }) => dog.release_failing(&self.group.name),
            _ => {}
        }
    }
}
