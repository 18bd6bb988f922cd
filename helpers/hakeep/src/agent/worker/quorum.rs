//! Quorum: a node without it holds no group (docs/fencing.md). While quorum is lost the
//! track file says FAULT, so keepalived gives the floating IPs to a quorate peer and the
//! converge releases the rest; once quorum is back the node is eligible again, as after a
//! boot (BACKUP until VRRP makes it MASTER).

use super::super::mailbox::{Input, QuorumGate};
use super::Worker;

impl Worker {
    pub(super) fn follow_quorum(&mut self, input: &Input) {
        match &input.quorum {
            QuorumGate::Lost(why) if !self.quorum_lost => {
                self.quorum_lost = true;
                log::error!(
                    "group {}: no quorum ({why}): stepping down and releasing",
                    self.group.name
                );
                self.step_down(&format!("no quorum: {why}"));
            }
            QuorumGate::Quorate | QuorumGate::NotConfigured if self.quorum_lost => {
                self.quorum_lost = false;
                if self.hold.is_none() {
                    log::warn!("group {}: quorum is back: eligible again", self.group.name);
                    // Logged inside when it fails; the node then only stays out.
                    let _ = self.write_track(false);
                }
            }
            _ => {}
        }
    }
}
