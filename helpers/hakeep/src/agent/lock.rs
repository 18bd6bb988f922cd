//! One lock per group, shared by the agent and the operator commands, so a manual
//! takeover never races the agent.

use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::Context;
use rustix::fs::{flock, FlockOperation};

/// Held while it lives; the kernel drops it if the process dies.
pub struct GroupLock {
    _file: File,
}

impl GroupLock {
    /// Waits for the group's lock.
    pub fn acquire(path: &Path) -> anyhow::Result<GroupLock> {
        let file = open_lock_file(path)?;
        flock(&file, FlockOperation::LockExclusive)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(GroupLock { _file: file })
    }

    /// Takes the lock only if nobody holds it.
    pub fn try_acquire(path: &Path) -> anyhow::Result<Option<GroupLock>> {
        let file = open_lock_file(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(GroupLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

/// The one-agent-per-node lock, held for the agent's lifetime.
pub struct AgentLock {
    _file: File,
}

impl AgentLock {
    /// Takes the lock or explains who holds it; never waits.
    pub fn acquire(path: &Path) -> anyhow::Result<AgentLock> {
        let file = open_lock_file(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(AgentLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => anyhow::bail!(
                "another hakeep agent runs on this node (it holds {}); a second one would \
                 split keepalived's events with it. Stop it first (systemctl stop hakeep-agent)",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

fn open_lock_file(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.lock");
        let held = GroupLock::acquire(&path).unwrap();
        assert!(GroupLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(GroupLock::try_acquire(&path).unwrap().is_some());
    }
}
