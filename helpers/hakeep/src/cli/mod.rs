//! The `hakeep` command line: parsing, dispatch, and exit codes.

mod args;
mod config_cmds;
mod generated;
pub mod node_identity;
mod ops_cmds;

use clap::Parser;

pub use args::{Cli, Command};

/// The version and the git commit the binary was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HAKEEP_GIT_COMMIT"),
    ")"
);

/// Exit codes shared by every command (docs/cli.md).
pub mod exit {
    /// Done; everything is as intended.
    pub const OK: i32 = 0;
    /// The input is invalid, or something is not as intended.
    pub const PROBLEM: i32 = 1;
    /// Could not tell: unreadable input, usage error, or an environment problem.
    pub const CANNOT_TELL: i32 = 2;
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hakeep: {err:#}");
            exit::CANNOT_TELL
        }
    }
}

/// The host name up to its first dot, as nodes are usually named.
pub fn short_hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    name.split('.').next().unwrap_or_default().to_string()
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Validate => config_cmds::validate(&cli.config),
        Command::Render { what } => match what {
            args::RenderWhat::Keepalived {
                node,
                output,
                verify,
            } => config_cmds::render_keepalived(&cli.config, &node, output.as_deref(), verify),
            args::RenderWhat::Corosync { output, verify } => {
                config_cmds::render_corosync(&cli.config, output.as_deref(), verify)
            }
        },
        Command::KeepalivedCheck {
            file,
            interface,
            inside_scratch_netns,
        } => config_cmds::keepalived_check(&file, &interface, inside_scratch_netns),
        Command::Agent { node, verbose } => {
            crate::logging::init(verbose);
            let cluster = match crate::config::load(&cli.config) {
                Ok(c) => c,
                Err(err) => {
                    eprintln!("{err}");
                    return Ok(exit::PROBLEM);
                }
            };
            let node = match node_identity::resolve(node).and_then(|id| id.in_cluster(&cluster)) {
                Ok(node) => node,
                Err(err) => {
                    eprintln!("hakeep: {err}");
                    return Ok(exit::CANNOT_TELL);
                }
            };
            // Root runs what these files say: only files only root could write.
            let untrusted = crate::config::trust::untrusted(&cli.config, &cluster);
            if !untrusted.is_empty() {
                for why in &untrusted {
                    eprintln!("{why}");
                }
                eprintln!(
                    "the agent runs these as root, so they must be root's alone; not starting"
                );
                return Ok(exit::PROBLEM);
            }
            crate::agent::run(
                &cluster,
                &cli.config,
                &node,
                crate::runtime::Paths::default(),
            )?;
            Ok(exit::OK)
        }
        Command::Status {
            json,
            all_nodes,
            wide,
            node,
        } => ops_cmds::status(&cli.config, node, json, all_nodes, wide),
        Command::Release {
            group,
            all,
            hold,
            json,
            node,
        } => ops_cmds::release(&cli.config, node, group, all, hold, json),
        Command::Takeover {
            group,
            no_remote,
            prepare,
            force,
            wait,
            json,
            node,
        } => ops_cmds::takeover(
            &cli.config,
            node,
            &group,
            ops_cmds::TakeoverMode {
                no_remote,
                prepare,
                force,
            },
            wait,
            json,
        ),
        Command::Switchover {
            group,
            to,
            wait,
            force,
            json,
            node,
        } => ops_cmds::switchover(&cli.config, node, &group, &to, wait, force, json),
        Command::Maintenance { mode, group, node } => {
            ops_cmds::maintenance(&cli.config, node, &mode, group.as_deref())
        }
        Command::Check { group, json, node } => {
            ops_cmds::check(&cli.config, node, group.as_deref(), json)
        }
        Command::Doctor {
            json,
            node,
            keepalived_conf,
        } => ops_cmds::doctor(&cli.config, node, json, &keepalived_conf),
        Command::PeerCommand => ops_cmds::peer_command(&cli.config),
        Command::Plan { node, json } => ops_cmds::plan(&cli.config, node, json),
        Command::Completions { shell } => generated::completions(shell),
        Command::Man { dir } => generated::man_pages(&dir),
        Command::Version => {
            println!("hakeep {VERSION}");
            Ok(exit::OK)
        }
    }
}
