//! `keepalived -t` as the file will run on its node: in a scratch network namespace
//! that has every interface the file names, so any message at all is a real problem
//! (docs/design.md §7). The namespace lives only as long as the checking process.

use std::path::Path;
use std::time::Duration;

use crate::exec::{Cmd, Runner};

const TIMEOUT: Duration = Duration::from_secs(30);
/// The user keepalived runs scripts as when script security is on.
pub const SCRIPT_USER: &str = "keepalived_script";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{file}: keepalived rejects it ({}):\n{messages}", exit_text(.code))]
    Rejected {
        file: String,
        code: Option<i32>,
        messages: String,
    },
    #[error("{file}: keepalived accepts it, but with messages:\n{messages}")]
    Messages { file: String, messages: String },
    #[error("user {SCRIPT_USER:?} does not exist; keepalived's script security needs it (useradd --system {SCRIPT_USER})")]
    NoScriptUser,
    /// The scratch-namespace run's own report, passed through.
    #[error("{0}")]
    Reported(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
}

/// Interface names a keepalived.conf refers to (`interface X`, `dev X`), in order, once each.
pub fn interfaces_named(conf: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in conf.lines() {
        let line = line.split(['#', '!']).next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "interface" | "dev") && !names.iter().any(|n| n == pair[1]) {
                names.push(pair[1].to_string());
            }
        }
    }
    names
}

/// Runs the check from outside: re-executes `hakeep` under `unshare --net`.
pub fn check_file(runner: &dyn Runner, file: &Path) -> Result<(), CheckError> {
    if !user_exists(SCRIPT_USER).unwrap_or(false) {
        return Err(CheckError::NoScriptUser);
    }
    let exe = std::env::current_exe()
        .map_err(|e| CheckError::Io(format!("finding hakeep itself: {e}")))?;
    let conf = std::fs::read_to_string(file)
        .map_err(|e| CheckError::Io(format!("{}: {e}", file.display())))?;
    let mut argv = vec![
        "unshare".to_string(),
        "--net".to_string(),
        "--".to_string(),
        exe.display().to_string(),
        "keepalived-check".to_string(),
        "--inside-scratch-netns".to_string(),
    ];
    for name in interfaces_named(&conf) {
        argv.push("--interface".to_string());
        argv.push(name);
    }
    argv.push(file.display().to_string());
    let out = runner.run(&Cmd::new(argv, TIMEOUT))?;
    match out.code {
        Some(0) => Ok(()),
        Some(1) => Err(CheckError::Reported(out.stderr.trim().to_string())),
        _ => Err(CheckError::Io(format!(
            "the scratch-namespace check could not run: {}",
            out.stderr.trim()
        ))),
    }
}

/// Runs inside the scratch namespace: makes the interfaces, then `keepalived -t`.
pub fn check_inside(
    runner: &dyn Runner,
    file: &Path,
    interfaces: &[String],
) -> Result<(), CheckError> {
    for (i, name) in interfaces.iter().enumerate() {
        let peer = format!("hkcheck{i}");
        runner.run_ok(&Cmd::new(
            [
                "ip",
                "link",
                "add",
                name.as_str(),
                "type",
                "veth",
                "peer",
                "name",
                peer.as_str(),
            ],
            TIMEOUT,
        ))?;
    }
    let file_text = file.display().to_string();
    let out = runner.run(&Cmd::new(
        ["keepalived", "-t", "-f", file_text.as_str()],
        TIMEOUT,
    ))?;
    let messages = format!("{}{}", out.stdout, out.stderr).trim().to_string();
    if !out.success() {
        return Err(CheckError::Rejected {
            file: file_text,
            code: out.code,
            messages,
        });
    }
    if !messages.is_empty() {
        return Err(CheckError::Messages {
            file: file_text,
            messages,
        });
    }
    Ok(())
}

fn exit_text(code: &Option<i32>) -> String {
    code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"))
}

/// Whether the user exists, asked through NSS (getpwnam_r) as keepalived asks: the user
/// may come from LDAP or sssd, not /etc/passwd. Err when the lookup itself failed.
pub fn user_exists(name: &str) -> Result<bool, String> {
    nix::unistd::User::from_name(name)
        .map(|u| u.is_some())
        .map_err(|e| format!("looking up user {name:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_interfaces_once_each() {
        let conf = "vrrp_instance a {\n interface eth1\n virtual_ipaddress {\n  10.0.0.1/24 dev eth1\n  10.0.1.1/24 dev eth2 # dev eth9\n }\n}\n";
        assert_eq!(interfaces_named(conf), vec!["eth1", "eth2"]);
    }

    #[test]
    fn users_are_looked_up_through_nss() {
        assert_eq!(user_exists("root"), Ok(true));
        assert_eq!(user_exists("no-such-user-hakeep"), Ok(false));
    }
}
