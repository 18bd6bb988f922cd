//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hakeep",
    version = super::VERSION,
    about = "keepalived-based high availability for systemd services"
)]
pub struct Cli {
    /// The cluster file.
    #[arg(short, long, global = true, env = "HAKEEP_CONFIG", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the cluster file; exit 0 when valid, 1 when not (errors on stderr), 2 when unreadable.
    Validate,
    /// Render a derived file from the cluster file.
    Render {
        #[command(subcommand)]
        what: RenderWhat,
    },
    /// Check a keepalived.conf as it will run: `keepalived -t` in a scratch network
    /// namespace with the interfaces it names. Any message is a failure.
    KeepalivedCheck {
        /// The keepalived.conf to check.
        file: PathBuf,
        /// Interface to create in the scratch namespace (internal; found in the file otherwise).
        #[arg(long, hide = true)]
        interface: Vec<String>,
        /// Run the check here, assuming a scratch namespace (internal).
        #[arg(long, hide = true)]
        inside_scratch_netns: bool,
    },
    /// Run the agent: follow keepalived's state and take or release this node's groups.
    Agent {
        /// This node's name in the cluster file (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
        /// Log debug detail too.
        #[arg(long)]
        verbose: bool,
    },
    /// Where each group runs and whether anything is wrong. Exit 0 as intended, 1 something
    /// wrong, 2 cannot tell.
    Status {
        /// Machine-readable output (docs/cli.md has the schema).
        #[arg(long)]
        json: bool,
        /// Every node's status (over SSH), and where each group is active.
        #[arg(long)]
        all_nodes: bool,
        /// Every line in full, not fitted to the terminal's width or COLUMNS (no effect
        /// with --json).
        #[arg(long)]
        wide: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Release a group held here: stop services, unmount, release storage, then step down.
    Release {
        /// The group (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        group: Option<String>,
        /// Every group of this node.
        #[arg(long)]
        all: bool,
        /// Seconds this node stays out afterwards (default: agent.hold_down).
        #[arg(long)]
        hold: Option<u32>,
        #[arg(long)]
        json: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Take a group over here; a reachable current holder is asked to release it first.
    Takeover {
        group: String,
        /// Do not ask other nodes to release (used by switchover).
        #[arg(long)]
        no_remote: bool,
        /// Only get ready: end this node's hold and wait until keepalived here reports
        /// BACKUP for the group (switchover's first step); nothing moves.
        #[arg(long)]
        prepare: bool,
        /// Also end a fence hold (another node took the storage from this one).
        #[arg(long)]
        force: bool,
        /// Seconds to wait until the group is active here.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        #[arg(long)]
        json: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Move a group to another node: the holder releases first, then the target takes over.
    Switchover {
        group: String,
        /// The node to move it to.
        #[arg(long)]
        to: String,
        /// Seconds to wait for the group to be healthy on the target.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        /// Move it even to a node that was fenced from it.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Stop (on) or resume (off) the agent's actions, for all groups or one.
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        #[arg(long)]
        group: Option<String>,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Run the health checks once; exit 0 when all pass, 1 otherwise.
    Check {
        group: Option<String>,
        #[arg(long)]
        json: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
    },
    /// Check that this node can do its job (keepalived, the agent, peers, units, clock,
    /// directories, holds), each check with a fix. Exit 0 all good (warnings allowed), 1
    /// problems found, 2 could not run.
    Doctor {
        /// Machine-readable output (docs/cli.md has the schema).
        #[arg(long)]
        json: bool,
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
        /// The keepalived.conf keepalived reads.
        #[arg(long, value_name = "PATH", default_value = crate::ops::doctor::KEEPALIVED_CONF)]
        keepalived_conf: PathBuf,
    },
    /// The forced command of the peers' SSH keys (authorized_keys `command=`): runs the
    /// request in SSH_ORIGINAL_COMMAND if it is one the operator commands send (internal).
    #[command(hide = true)]
    PeerCommand,
    /// What this node needs from its deployment (groups, units, volume kinds, mountpoints,
    /// packages), for the Ansible roles. Exit 2 when this host is not a node of the cluster.
    Plan {
        /// This node's name (else HAKEEP_NODE, /etc/hakeep/node, the short hostname).
        #[arg(long)]
        node: Option<String>,
        /// Machine-readable output (docs/cli.md has the schema).
        #[arg(long)]
        json: bool,
    },
    /// Print the completion script for a shell (bash, zsh, fish, ...) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (hakeep.1, hakeep-COMMAND.1) into a directory (packaging).
    #[command(hide = true)]
    Man {
        /// The directory (created when missing).
        dir: PathBuf,
    },
    /// Print the version and the git commit it was built from.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum RenderWhat {
    /// keepalived.conf for one node.
    Keepalived {
        /// The node (a key of `nodes:`).
        #[arg(long, env = "HAKEEP_NODE")]
        node: String,
        /// Write here atomically (mode 0640) instead of stdout; prints `changed` or `unchanged`.
        #[arg(long)]
        output: Option<PathBuf>,
        /// With --output: run `hakeep keepalived-check` on the new file before it replaces the old.
        #[arg(long, requires = "output")]
        verify: bool,
    },
    /// corosync.conf of the cluster (`quorum:`), the same on every node.
    Corosync {
        /// Write here atomically (mode 0640) instead of stdout; prints `changed` or `unchanged`.
        #[arg(long)]
        output: Option<PathBuf>,
        /// With --output: `corosync -t` must accept the new file before it replaces the old.
        #[arg(long, requires = "output")]
        verify: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
