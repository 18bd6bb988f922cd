//! Maintenance flags: while one is set the agent logs and records but does not act;
//! keepalived is left alone. They live under /var/lib so they survive a reboot.

use anyhow::Context;

use crate::runtime::Paths;

/// Sets or clears the flag; returns whether anything changed.
pub fn set(paths: &Paths, group: Option<&str>, on: bool) -> anyhow::Result<bool> {
    let path = paths.maintenance_flag(group);
    if on {
        if path.exists() {
            return Ok(false);
        }
        std::fs::create_dir_all(&paths.maintenance_dir)
            .with_context(|| format!("creating {}", paths.maintenance_dir.display()))?;
        std::fs::write(&path, b"set by `hakeep maintenance on`\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(true)
    } else {
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
}
