//! corosync, hakeep's quorum engine: checking a corosync.conf before it is installed, and
//! (agent side, `agent::quorum`) following the node's quorum.

use std::path::Path;
use std::time::Duration;

use crate::exec::{Cmd, Runner};

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// `corosync -t -c FILE`: corosync's own parse of the file, as the daemon would read it.
pub fn check_file(runner: &dyn Runner, file: &Path) -> Result<(), String> {
    let cmd = Cmd::new(
        [
            "corosync".to_string(),
            "-t".into(),
            "-c".into(),
            file.display().to_string(),
        ],
        CHECK_TIMEOUT,
    );
    let out = runner.run(&cmd).map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(());
    }
    let said = format!("{}{}", out.stdout, out.stderr);
    Err(format!(
        "corosync rejects it (exit {}): {}",
        out.code.map_or("by signal".to_string(), |c| c.to_string()),
        said.trim()
    ))
}
