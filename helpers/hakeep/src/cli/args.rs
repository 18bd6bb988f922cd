//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hakeep",
    version,
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
        /// This node's name in the cluster file (default: the short hostname).
        #[arg(long, env = "HAKEEP_NODE")]
        node: Option<String>,
        /// Log debug detail too.
        #[arg(long)]
        verbose: bool,
    },
    /// Print the version.
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
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
