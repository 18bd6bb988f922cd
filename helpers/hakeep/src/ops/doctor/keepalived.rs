//! The checks of keepalived's side: its script user (`script-user`), its configuration
//! against the rendering (`keepalived-conf`), and its events reaching the agent
//! (`notify-fifo`).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

use super::{read_capped, Check, Doctor, Finding, Status};
use crate::keepalived::check::SCRIPT_USER;
use crate::runtime::state::{self, AgentState, FIFO_SILENT_PROBLEM};

/// Larger than any keepalived.conf hakeep renders.
pub(super) const MAX_CONF_BYTES: u64 = 1 << 20;
/// Larger than any state.json.
const MAX_STATE_BYTES: u64 = 16 << 20;
/// How much earlier than its agent's start state.json may seem written (the clock ticks
/// of /proc against the file's time).
const START_SLACK: Duration = Duration::from_secs(5);

/// The installed keepalived.conf, as read once for the checks.
pub(super) type Installed = Result<Option<(String, std::fs::Metadata)>, String>;

pub(super) fn script_user(d: &Doctor) -> Check {
    const ID: &str = "script-user";
    match d.host.user_exists(SCRIPT_USER) {
        Ok(true) => Check::ok(
            ID,
            format!("user {SCRIPT_USER} exists (keepalived.conf's script_user)"),
        ),
        Ok(false) => Check::fail(
            ID,
            format!(
                "user {SCRIPT_USER} does not exist: keepalived then writes no event to the \
                 notify FIFO (it still moves the floating IPs)"
            ),
            format!(
                "systemd-sysusers /usr/lib/sysusers.d/hakeep.conf (the hakeep package's), or \
                 useradd --system --no-create-home --shell /usr/sbin/nologin {SCRIPT_USER}; \
                 then systemctl restart keepalived"
            ),
        ),
        Err(e) => Check::warn(
            ID,
            format!("cannot tell whether user {SCRIPT_USER} exists: {e}"),
            format!("check the user databases (/etc/nsswitch.conf): getent passwd {SCRIPT_USER}"),
        ),
    }
}

/// The command that installs the rendering, and has keepalived read it.
fn render_fix(d: &Doctor) -> String {
    format!(
        "hakeep {}render keepalived --node {} --output {} --verify, then systemctl reload \
         keepalived (or run the keepalived role)",
        d.config_arg(),
        d.node,
        d.keepalived_conf.display()
    )
}

pub(super) fn conf(d: &Doctor, installed: &Installed) -> Check {
    const ID: &str = "keepalived-conf";
    let path = d.keepalived_conf.display();
    let rendered = match crate::render::keepalived_conf_for(d.cluster, d.node, d.paths) {
        Ok(text) => text,
        Err(e) => {
            return Check::fail(
                ID,
                format!("cannot render keepalived.conf: {e}"),
                format!("hakeep {}validate", d.config_arg()),
            )
        }
    };
    match installed {
        Err(e) => Check::fail(ID, e.clone(), render_fix(d)),
        Ok(None) => Check::fail(ID, format!("{path} is missing"), render_fix(d)),
        Ok(Some((text, _))) if *text == rendered => Check::ok(
            ID,
            format!(
                "{path} is what `hakeep render keepalived --node {}` gives",
                d.node
            ),
        ),
        Ok(Some((text, _))) => Check::fail(
            ID,
            format!(
                "{path} is stale: it differs from the rendering of the cluster file at {}",
                difference(text, &rendered)
            ),
            render_fix(d),
        ),
    }
}

/// Where two texts differ, by line numbers (1-based): from the first line that differs to
/// the last one, in each.
fn difference(installed: &str, rendered: &str) -> String {
    let a: Vec<&str> = installed.lines().collect();
    let b: Vec<&str> = rendered.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if head == a.len() && head == b.len() {
        return "its line endings or final newline".into();
    }
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let span = |len: usize| match len - tail - head {
        0 => format!("no line (after line {head})"),
        1 => format!("line {}", head + 1),
        _ => format!("lines {}-{}", head + 1, len - tail),
    };
    format!("installed {}, rendered {}", span(a.len()), span(b.len()))
}

/// The FIFO keepalived.conf sends VRRP events to (`vrrp_notify_fifo`, or the global
/// `notify_fifo`, which gets them too).
fn conf_fifo(conf: &str) -> Option<String> {
    let mut found = None;
    for line in conf.lines() {
        let line = line.split(['#', '!']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("vrrp_notify_fifo"), Some(path)) => return Some(path.trim_matches('"').into()),
            (Some("notify_fifo"), Some(path)) => found = Some(path.trim_matches('"').into()),
            _ => {}
        }
    }
    found
}

pub(super) fn notify_fifo(d: &Doctor, installed: &Installed) -> Check {
    const ID: &str = "notify-fifo";
    let fifo = &d.paths.fifo;
    let restart_agent =
        "systemctl restart hakeep-agent (journalctl -u hakeep-agent says what it did)";
    let start_agent =
        "systemctl start hakeep-agent (journalctl -u hakeep-agent says why it is not running)";
    let mut findings = Vec::new();
    let mut bad = |message: String, fix: String| {
        findings.push(Finding {
            status: Status::Fail,
            message,
            fix: Some(fix),
        })
    };
    match installed {
        Ok(Some((text, _))) => match conf_fifo(text) {
            Some(path) if std::path::Path::new(&path) == fifo => {}
            Some(path) => bad(
                format!(
                    "{} sends keepalived's events to {path}, not to the agent's FIFO {}",
                    d.keepalived_conf.display(),
                    fifo.display()
                ),
                render_fix(d),
            ),
            None => bad(
                format!(
                    "{} names no vrrp_notify_fifo: keepalived tells the agent nothing",
                    d.keepalived_conf.display()
                ),
                render_fix(d),
            ),
        },
        Ok(None) | Err(_) => bad(
            format!(
                "cannot tell where keepalived sends its events: {} cannot be read",
                d.keepalived_conf.display()
            ),
            render_fix(d),
        ),
    }
    match std::fs::symlink_metadata(fifo) {
        Ok(m) if !m.file_type().is_fifo() => bad(
            format!("{} is not a FIFO: the agent refuses it", fifo.display()),
            format!("rm {}; {restart_agent}", fifo.display()),
        ),
        Ok(m) if m.uid() != 0 || m.mode() & 0o022 != 0 => bad(
            format!(
                "FIFO {} (uid {}, mode {:04o}) could be written by others: the agent refuses it",
                fifo.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
            format!("rm {}; {restart_agent}", fifo.display()),
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bad(
            format!("{} does not exist (the agent makes it)", fifo.display()),
            start_agent.into(),
        ),
        Err(e) => bad(
            format!("cannot inspect {}: {e}", fifo.display()),
            restart_agent.into(),
        ),
    }
    let agent = agent_state(d);
    match &agent {
        Ok(s) => {
            if s.node != d.node || s.cluster != d.cluster.name {
                bad(
                    format!(
                        "the agent runs as node {:?} of cluster {:?}, not {} of {}",
                        s.node, s.cluster, d.node, d.cluster.name
                    ),
                    format!(
                        "set this host's node name in {}, then {restart_agent}",
                        crate::cli::node_identity::NODE_FILE
                    ),
                );
            }
            if let Some(p) = s
                .problems
                .iter()
                .find(|p| p.starts_with(FIFO_SILENT_PROBLEM))
            {
                bad(
                    format!("the agent reports: {}", first_sentence(p)),
                    format!(
                        "look for \"Failed to set default user for vrrp_ fifo\" in journalctl -u \
                         keepalived; make sure user {SCRIPT_USER} exists, then systemctl restart \
                         keepalived"
                    ),
                );
            }
        }
        Err(why) => bad(why.clone(), start_agent.into()),
    }
    if findings.is_empty() {
        let pid = agent.map(|s| s.pid).unwrap_or_default();
        return Check::ok(
            ID,
            format!(
                "keepalived.conf sends events to {}, a FIFO that the agent (pid {pid}) reads, and \
                 the agent hears them",
                fifo.display()
            ),
        );
    }
    super::combine(ID, findings, "")
}

fn first_sentence(text: &str) -> &str {
    text.split(". ").next().unwrap_or(text)
}

/// The running agent's state.json: written by a live hakeep process since it started.
fn agent_state(d: &Doctor) -> Result<AgentState, String> {
    let path = &d.paths.state_json;
    let (text, meta) = match read_capped(path, MAX_STATE_BYTES, true) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(format!(
                "{} does not exist: the agent is not running",
                path.display()
            ))
        }
        Err(e) => return Err(e),
    };
    let s: AgentState = serde_json::from_str(&text)
        .map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    let Some(started) = d.host.hakeep_started(s.pid) else {
        return Err(format!(
            "the agent (pid {}) that wrote {} is not running",
            s.pid,
            path.display()
        ));
    };
    let written = meta.modified().map_err(|e| e.to_string())?;
    if written + START_SLACK < started {
        return Err(format!(
            "{} was written at {}, before the hakeep process {} started ({}): a dead agent \
             left it",
            path.display(),
            state::timestamp(written),
            s.pid,
            state::timestamp(started)
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::Status;
    use super::*;

    #[test]
    fn the_script_user_must_exist() {
        let mut lab = Fixture::new();
        assert_eq!(lab.run().check("script-user").status, Status::Ok);
        lab.host.users.clear();
        let c = lab.run().check("script-user");
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.unwrap().contains("systemd-sysusers"), "{}", c.message);
    }

    #[test]
    fn the_installed_conf_must_be_the_rendering() {
        let lab = Fixture::new();
        assert_eq!(lab.run().check("keepalived-conf").status, Status::Ok);
        let good = std::fs::read_to_string(&lab.conf).unwrap();
        std::fs::write(&lab.conf, good.replace("priority 200", "priority 150")).unwrap();
        let c = lab.run().check("keepalived-conf");
        assert_eq!(c.status, Status::Fail);
        let line = good
            .lines()
            .position(|l| l.contains("priority 200"))
            .unwrap()
            + 1;
        assert!(
            c.message.contains("stale")
                && c.message
                    .contains(&format!("installed line {line}, rendered line {line}")),
            "{}",
            c.message
        );
        assert!(
            c.fix
                .unwrap()
                .contains("render keepalived --node nfs1 --output"),
            "fix"
        );
        std::fs::remove_file(&lab.conf).unwrap();
        let c = lab.run().check("keepalived-conf");
        assert!(
            c.status == Status::Fail && c.message.contains("missing"),
            "{c:?}"
        );
    }

    #[test]
    fn differences_are_told_by_line_numbers() {
        assert_eq!(
            difference("a\nb\nc\n", "a\nB\nc\n"),
            "installed line 2, rendered line 2"
        );
        assert_eq!(
            difference("a\nb\nc\nd\n", "a\nX\nd\n"),
            "installed lines 2-3, rendered line 2"
        );
        assert_eq!(
            difference("a\nd\n", "a\nb\nc\nd\n"),
            "installed no line (after line 1), rendered lines 2-3"
        );
        assert_eq!(
            difference("a\nb", "a\nb\n"),
            "its line endings or final newline"
        );
    }

    #[test]
    fn the_fifo_is_found_in_the_conf() {
        assert_eq!(
            conf_fifo("global_defs {\n  vrrp_notify_fifo /run/hakeep/vrrp.fifo\n}\n").as_deref(),
            Some("/run/hakeep/vrrp.fifo")
        );
        assert_eq!(
            conf_fifo("# vrrp_notify_fifo /x\n notify_fifo \"/y\" root\n").as_deref(),
            Some("/y")
        );
        assert_eq!(conf_fifo("global_defs {\n}\n"), None);
    }

    #[test]
    fn the_agent_must_read_the_fifo_keepalived_writes() {
        let mut lab = Fixture::new();
        let c = lab.run().check("notify-fifo");
        assert_eq!(c.status, Status::Ok, "{c:?}");

        // keepalived.conf names another FIFO.
        let good = std::fs::read_to_string(&lab.conf).unwrap();
        std::fs::write(
            &lab.conf,
            good.replace(&lab.paths.fifo.display().to_string(), "/tmp/elsewhere.fifo"),
        )
        .unwrap();
        let c = lab.run().check("notify-fifo");
        assert!(
            c.status == Status::Fail && c.message.contains("/tmp/elsewhere.fifo"),
            "{c:?}"
        );
        std::fs::write(&lab.conf, &good).unwrap();

        // The FIFO is a regular file.
        std::fs::remove_file(&lab.paths.fifo).unwrap();
        std::fs::write(&lab.paths.fifo, "").unwrap();
        let c = lab.run().check("notify-fifo");
        assert!(
            c.status == Status::Fail && c.message.contains("not a FIFO"),
            "{c:?}"
        );
        std::fs::remove_file(&lab.paths.fifo).unwrap();
        let c = lab.run().check("notify-fifo");
        assert!(
            c.status == Status::Fail && c.message.contains("does not exist"),
            "{c:?}"
        );
        lab.make_fifo();

        // The agent that wrote state.json is gone.
        lab.host.agents.clear();
        let c = lab.run().check("notify-fifo");
        assert!(
            c.status == Status::Fail && c.message.contains("is not running"),
            "{c:?}"
        );
        // A hakeep process with that pid started after state.json was written.
        lab.host.agents.insert(
            AGENT_PID,
            std::time::SystemTime::now() + Duration::from_secs(60),
        );
        let c = lab.run().check("notify-fifo");
        assert!(
            c.status == Status::Fail && c.message.contains("dead agent"),
            "{c:?}"
        );
    }

    #[test]
    fn a_silent_fifo_reported_by_the_agent_fails() {
        let lab = Fixture::new();
        lab.write_state(&[&format!(
            "{FIFO_SILENT_PROBLEM}: keepalived (pid 9) started 6 s ago and has sent no event on \
             the FIFO. keepalived writes no events ..."
        )]);
        let c = lab.run().check("notify-fifo");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.message.contains("has sent no event on the FIFO"), "{c:?}");
        assert!(
            !c.message.contains("writes no events"),
            "one sentence: {c:?}"
        );
        assert!(c.fix.unwrap().contains("Failed to set default user"));
    }
}
