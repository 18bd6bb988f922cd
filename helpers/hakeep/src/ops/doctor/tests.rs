//! The checks' test bench: a healthy node of the example cluster in a temporary directory
//! (the rendered keepalived.conf, the FIFO, a live agent's state.json, the runtime
//! directories), fake users, processes and peers, and a recording runner. Each test
//! breaks one thing and looks at the check it concerns.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{self, Cluster};
use crate::exec::{Output, RecordingRunner};
use crate::ops::remote::HostKeyProblem;
use crate::runtime::state::AgentState;

pub(super) const AGENT_PID: u32 = 4242;

const EXAMPLE: &str = include_str!("../../../../../examples/nfs-active-passive.yml");

/// One node, one group of it, no unit.
const SINGLE: &str = "cluster: solo\nnodes:\n  s1: { address: 192.0.2.1, interface: eth0 }\n\
                      groups:\n  g:\n    vrid: 7\n    nodes: [s1]\n    volumes: [none]\n    \
                      ips: [{ address: 192.0.2.100/24 }]\n";

pub(super) struct FakeHost {
    pub users: HashSet<String>,
    /// Running hakeep processes: pid → start.
    pub agents: HashMap<u32, SystemTime>,
    pub now: SystemTime,
}

impl Host for FakeHost {
    fn user_exists(&self, name: &str) -> Result<bool, String> {
        Ok(self.users.contains(name))
    }

    fn hakeep_started(&self, pid: u32) -> Option<SystemTime> {
        self.agents.get(&pid).copied()
    }

    fn now(&self) -> SystemTime {
        self.now
    }
}

/// How a fake peer answers a login.
#[derive(Debug, Clone, Copy)]
pub(super) enum Probe {
    Ok,
    NotFound,
    Mismatch,
    Unreachable,
    Auth,
}

#[derive(Default)]
pub(super) struct FakePeers {
    answers: HashMap<String, (Probe, KnownEntry)>,
}

impl FakePeers {
    pub fn set(&mut self, node: &str, probe: Probe, known: KnownEntry) {
        self.answers.insert(node.to_string(), (probe, known));
    }

    fn answer(&self, node: &Node) -> (Probe, KnownEntry) {
        self.answers
            .get(&node.name)
            .copied()
            .unwrap_or((Probe::Ok, KnownEntry::Listed))
    }
}

impl Peers for FakePeers {
    fn known_entry(&self, _: &SshSettings, node: &Node) -> Result<KnownEntry, String> {
        Ok(self.answer(node).1)
    }

    fn probe(&self, ssh: &SshSettings, node: &Node) -> Result<(), SessionError> {
        let address = SocketAddr::new(node.address, ssh.port);
        let host_key = |problem, message: &str| SessionError::HostKey {
            problem,
            message: message.into(),
        };
        match self.answer(node).0 {
            Probe::Ok => Ok(()),
            Probe::NotFound => Err(host_key(HostKeyProblem::NotFound, "not in known_hosts")),
            Probe::Mismatch => Err(host_key(HostKeyProblem::Mismatch, "HOST KEY MISMATCH")),
            Probe::Unreachable => Err(SessionError::Connect {
                address,
                reason: "connection timed out".into(),
            }),
            Probe::Auth => Err(SessionError::Auth {
                user: ssh.user.clone(),
                address,
                reason: "the server did not accept the key".into(),
            }),
        }
    }
}

pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub cluster: Cluster,
    pub node: String,
    pub paths: Paths,
    /// The installed keepalived.conf (the rendering at first).
    pub conf: PathBuf,
    pub runner: RecordingRunner,
    pub host: FakeHost,
    pub peers: FakePeers,
    pub unit_node: Option<UnitNode>,
}

impl Fixture {
    /// nfs1 of the example: two nodes, a group with a unit.
    pub fn new() -> Fixture {
        Fixture::with(EXAMPLE, "nfs1")
    }

    /// A cluster of one node with no unit.
    pub fn single() -> Fixture {
        Fixture::with(SINGLE, "s1")
    }

    /// A node of this cluster file.
    pub fn with(yaml: &str, node: &str) -> Fixture {
        let cluster = config::from_str("cluster.yml", yaml).expect("a valid cluster");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = root.join("run");
        let paths = Paths {
            run_dir: run.clone(),
            fifo: run.join("vrrp.fifo"),
            track_dir: run.join("track"),
            lock_dir: run.join("lock"),
            state_json: run.join("state.json"),
            control_socket: run.join("control.sock"),
            actions_log: root.join("log/hakeep/actions.log"),
            maintenance_dir: root.join("lib/hakeep/maintenance"),
            holds_dir: root.join("lib/hakeep/holds"),
        };
        for (d, mode) in [
            (&paths.run_dir, 0o755),
            (&paths.actions_log.parent().unwrap().to_path_buf(), 0o750),
            (&paths.holds_dir, 0o755),
        ] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let conf = root.join("keepalived.conf");
        let rendered = crate::render::keepalived_conf_for(&cluster, node, &paths).unwrap();
        std::fs::write(&conf, rendered).unwrap();
        let runner = RecordingRunner::new();
        runner.respond(|c| (c.program() == "timedatectl").then(|| Ok(Output::ok(0, "yes\n"))));
        runner.respond(|c| {
            (c.argv.get(1).map(String::as_str) == Some("is-enabled"))
                .then(|| Ok(Output::ok(1, "disabled\n")))
        });
        let now = SystemTime::now();
        let lab = Fixture {
            cluster,
            node: node.to_string(),
            paths,
            conf,
            runner,
            host: FakeHost {
                users: HashSet::from([crate::keepalived::check::SCRIPT_USER.to_string()]),
                agents: HashMap::from([(AGENT_PID, now - Duration::from_secs(60))]),
                now,
            },
            peers: FakePeers::default(),
            unit_node: None,
            dir,
        };
        lab.make_fifo();
        lab.write_state(&[]);
        lab
    }

    /// The notify FIFO, as the agent makes it (0600).
    pub fn make_fifo(&self) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &self.paths.fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    /// The agent's state.json, written now by AGENT_PID, with these node problems.
    pub fn write_state(&self, problems: &[&str]) {
        let state = AgentState {
            schema: crate::runtime::state::SCHEMA,
            node: self.node.clone(),
            cluster: self.cluster.name.clone(),
            pid: AGENT_PID,
            updated: crate::runtime::state::timestamp(SystemTime::now()),
            keepalived_running: true,
            problems: problems.iter().map(|p| p.to_string()).collect(),
            quorum: None,
            groups: Default::default(),
        };
        std::fs::write(
            &self.paths.state_json,
            serde_json::to_vec_pretty(&state).unwrap(),
        )
        .unwrap();
    }

    pub fn doctor(&self) -> Doctor<'_> {
        Doctor {
            cluster: &self.cluster,
            config: Path::new(crate::config::DEFAULT_PATH),
            node: &self.node,
            node_source: "--node",
            unit_node: self.unit_node.clone(),
            paths: &self.paths,
            keepalived_conf: &self.conf,
            runner: &self.runner,
            host: &self.host,
            peers: &self.peers,
        }
    }

    pub fn run(&self) -> Report {
        self.doctor().run()
    }
}

impl Report {
    /// The check with this id (every report has each once).
    pub(super) fn check(&self, id: &str) -> Check {
        self.checks
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no check {id} in {self:?}"))
    }
}

#[test]
fn a_healthy_node_passes_every_check_in_order() {
    let lab = Fixture::new();
    let report = lab.run();
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id).collect();
    assert_eq!(ids, IDS);
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert_eq!(c.fix, None, "{c:?}");
    }
    assert_eq!(
        report.summary,
        Summary {
            ok: 9,
            warn: 0,
            fail: 0
        }
    );
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn warnings_exit_0_and_failures_exit_1() {
    let mut lab = Fixture::new();
    lab.peers
        .set("nfs2", Probe::Unreachable, KnownEntry::Listed);
    let report = lab.run();
    assert_eq!((report.summary.warn, report.exit_code()), (1, 0));
    lab.host.users.clear();
    let report = lab.run();
    assert_eq!((report.summary.fail, report.exit_code()), (1, 1));
}

#[test]
fn the_json_has_the_documented_shape() {
    let mut lab = Fixture::new();
    lab.host.users.clear();
    let json = serde_json::to_value(lab.run()).unwrap();
    assert_eq!(json["schema"], 1);
    assert_eq!(json["node"], "nfs1");
    assert_eq!(json["node_source"], "--node");
    assert_eq!(json["cluster"], "lab");
    assert_eq!(
        json["summary"],
        serde_json::json!({"ok": 8, "warn": 0, "fail": 1})
    );
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), IDS.len());
    let ok = &checks[0];
    assert_eq!(ok["status"], "ok");
    assert!(ok.get("fix").is_none(), "no fix when ok: {ok}");
    let bad = &checks[1];
    assert_eq!(
        (bad["id"].as_str(), bad["status"].as_str()),
        (Some("script-user"), Some("fail"))
    );
    assert!(bad["fix"].is_string());
    // The keys are exactly those docs/doctor.schema.json allows.
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "checks",
            "cluster",
            "node",
            "node_source",
            "schema",
            "summary"
        ]
    );
}

#[test]
fn the_human_report_has_a_line_per_check_and_its_fix() {
    let mut lab = Fixture::new();
    lab.host.users.clear();
    let text = render(&lab.run(), false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "node nfs1 (from --node), cluster lab");
    assert!(
        lines[1].starts_with("ok    node-name        nfs1 (from --node)"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("FAIL  script-user      user keepalived_script"),
        "{text}"
    );
    assert!(lines[3].starts_with("  fix: systemd-sysusers"), "{text}");
    assert_eq!(*lines.last().unwrap(), "8 ok, 0 warning(s), 1 problem(s)");
    assert_eq!(lines.len(), 1 + IDS.len() + 1 + 1);
}

#[test]
fn the_agent_unit_s_name_must_agree_with_the_one_given() {
    let mut lab = Fixture::new();
    lab.unit_node = Some(Ok(("nfs1".into(), "/etc/hakeep/node".into())));
    assert_eq!(lab.run().check("node-name").status, Status::Ok);
    lab.unit_node = Some(Ok(("web01".into(), "the short hostname".into())));
    let c = lab.run().check("node-name");
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.message.contains("\"web01\" (from the short hostname)"),
        "{c:?}"
    );
    assert!(c.fix.unwrap().starts_with("write nfs1 to /etc/hakeep/node"));
    lab.unit_node = Some(Err("/etc/hakeep/node: holds no node name".into()));
    assert_eq!(lab.run().check("node-name").status, Status::Warn);
}
