//! hakeep in a node: the agent (started, killed, its notify FIFO written as keepalived
//! would) and the operator commands (`hakeep -c CLUSTER ...` run inside a node).

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::process::{run_with_timeout, tail, wait_until};
use super::Lab;

/// The agent's files, inside a node (contract of `hakeep agent`).
pub const FIFO: &str = "/run/hakeep/vrrp.fifo";
pub const STATE_JSON: &str = "/run/hakeep/state.json";
pub const ACTIONS_LOG: &str = "/var/log/hakeep/actions.log";

impl Lab {
    pub fn agent_running(&mut self, name: &str) -> bool {
        let i = self.idx(name);
        matches!(
            self.nodes[i].agent.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    pub fn agent_pid(&self, name: &str) -> Option<u32> {
        self.node(name).agent.as_ref().map(|c| c.id())
    }

    /// Starts `hakeep agent` in the node. On a first start, waits until it has created the
    /// notify FIFO; on a restart (the FIFO is there), until it has run for a moment.
    pub fn start_agent(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        if self.agent_running(name) {
            bail!("{name}: the agent is already running");
        }
        let fifo_existed = self.node_path(name, FIFO).exists();
        let node = &self.nodes[i];
        let (log, _) = Self::open_log(&node.agent_log(), "hakeep agent", self.started.elapsed())?;
        let mut cmd = self.nsenter(name);
        for (_, key, value) in self.agent_env.iter().filter(|(n, _, _)| n == name) {
            cmd.env(key, value);
        }
        let child = cmd
            .arg(&self.hakeep)
            .args(["agent", "-c"])
            .arg(&self.config)
            .args(["--node", name])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{name}: starting hakeep agent"))?;
        self.nodes[i].agent = Some(child);
        if fifo_existed {
            thread::sleep(Duration::from_millis(500));
        } else {
            let fifo = self.node_path(name, FIFO);
            let _ = wait_until(
                &format!("{name}'s agent creates {FIFO}"),
                Duration::from_secs(15),
                Duration::from_millis(50),
                || {
                    fs::metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo())
                        || !matches!(
                            self.nodes[i].agent.as_mut().map(|c| c.try_wait()),
                            Some(Ok(None))
                        )
                },
            );
        }
        if !self.agent_running(name) {
            let log = fs::read_to_string(self.nodes[i].agent_log()).unwrap_or_default();
            bail!("{name}: hakeep agent exited at start:\n{}", tail(&log, 40));
        }
        if !fifo_existed
            && !fs::metadata(self.node_path(name, FIFO)).is_ok_and(|m| m.file_type().is_fifo())
        {
            bail!("{name}: hakeep agent did not create {FIFO} within 15 s");
        }
        Ok(())
    }

    /// The agent's output (stderr: its log) over all its starts in this lab.
    pub fn agent_output(&self, name: &str) -> String {
        fs::read_to_string(self.node(name).agent_log()).unwrap_or_default()
    }

    /// kill -9 the agent (only the agent: what it started keeps running), and reap it.
    pub fn kill_agent(&mut self, name: &str) -> Result<()> {
        let i = self.idx(name);
        let Some(mut child) = self.nodes[i].agent.take() else {
            bail!("{name}: no agent to kill");
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Writes bytes into a node's notify FIFO, as keepalived would (never blocks for long).
    pub fn write_fifo(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.node_path(name, FIFO);
        let meta = fs::metadata(&path).with_context(|| format!("{name}: {FIFO}"))?;
        if !meta.file_type().is_fifo() {
            bail!("{name}: {FIFO} is not a FIFO");
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .with_context(|| format!("{name}: opening {FIFO} (no reader?)"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut rest = bytes;
        while !rest.is_empty() {
            match f.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        bail!(
                            "{name}: {FIFO} stays full: nobody reads it ({} bytes unwritten)",
                            rest.len()
                        );
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).with_context(|| format!("{name}: writing {FIFO}")),
            }
        }
        Ok(())
    }

    /// Runs `hakeep -c CONFIG ARGS...` inside a node (the lab's cluster.yml), as an operator
    /// on that node would: it knows its name as a deployed node does from its node file
    /// (here HAKEEP_NODE; the namespaces share the host's hostname). Ok(output) whatever
    /// the exit code.
    pub fn hakeep(&self, name: &str, args: &[&str]) -> Result<Output> {
        self.hakeep_with(name, &self.config, args, Duration::from_secs(180))
    }

    /// [`Lab::hakeep`] with another cluster file and time limit.
    pub fn hakeep_with(
        &self,
        name: &str,
        config: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output> {
        run_with_timeout(&mut self.hakeep_command(name, config, args), timeout)
    }

    /// [`Lab::hakeep`] with `COLUMNS` set: the width human output is fitted to.
    pub fn hakeep_columns(&self, name: &str, columns: usize, args: &[&str]) -> Result<Output> {
        let mut cmd = self.hakeep_command(name, &self.config, args);
        cmd.env("COLUMNS", columns.to_string());
        run_with_timeout(&mut cmd, Duration::from_secs(180))
    }

    fn hakeep_command(&self, name: &str, config: &Path, args: &[&str]) -> Command {
        let mut cmd = self.nsenter(name);
        cmd.arg(&self.hakeep)
            .arg("-c")
            .arg(config)
            .args(args)
            // Deterministic: the configured key, never a developer's ssh-agent; no colours;
            // human output whole (stdout is a pipe), whatever the developer's COLUMNS.
            .env_remove("SSH_AUTH_SOCK")
            .env("HAKEEP_NODE", name)
            .env_remove("HAKEEP_CONFIG")
            .env_remove("COLUMNS")
            .env("NO_COLOR", "1");
        cmd
    }
}
