//! Tier 2 (docs/design.md §8): `hakeep doctor` inside a node of the real-parts lab (real
//! keepalived, the real agent, a real sshd per node; tests/harness/mod.rs). A healthy node
//! exits 0 and its JSON validates against docs/doctor.schema.json; then, one at a time: a
//! stale keepalived.conf, a peer whose host key is not in known_hosts, an unreachable peer
//! (warning) and one known_hosts does not know either (failure), a wrong node name (exit
//! 2), maintenance and an operator hold (warnings), and the agent killed.
//!
//! A protected unit enabled at boot is not covered here: the lab's nodes have no systemd
//! (their services are resource scripts). ops/doctor/host.rs covers it with a recording
//! runner, and against a real systemd in its `real_` test (scripts/systemd-tests.sh).
//!
//! Needs root (skipped loudly without it), openssh-server and openssh-client, and
//! python3-jsonschema (scripts/install-deps.sh):
//!
//!     flock /var/tmp/hakeep-tier2.lock cargo test --test integration doctor:: -- --test-threads=1

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::harness::*;

/// What one `hakeep doctor --json` run gave.
struct Doctor {
    code: i32,
    json: Value,
    stderr: String,
}

impl Doctor {
    fn check(&self, id: &str) -> Result<&Value> {
        self.json["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .with_context(|| format!("no check {id} in {}", self.json))
    }

    fn status(&self, id: &str) -> String {
        self.check(id)
            .ok()
            .and_then(|c| c["status"].as_str())
            .unwrap_or("?")
            .to_string()
    }

    /// The checks that are not ok, for messages.
    fn not_ok(&self) -> String {
        self.json["checks"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter(|c| c["status"] != "ok")
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// The node's keepalived.conf, as its keepalived reads it (the lab renders it there).
fn conf_of(lab: &Lab, node: &str) -> PathBuf {
    lab.dir.join(node).join("keepalived.conf")
}

/// `hakeep -c CONFIG doctor --json --keepalived-conf CONF` inside n1.
fn doctor(lab: &Lab, config: &Path, conf: &Path) -> Result<Doctor> {
    let conf = conf.display().to_string();
    let out = lab.hakeep_with(
        "n1",
        config,
        &["doctor", "--json", "--keepalived-conf", &conf],
        Duration::from_secs(60),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim())
        .with_context(|| format!("not JSON: {stdout:?}; stderr: {stderr}"))?;
    Ok(Doctor {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr,
    })
}

const VALIDATOR: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
errors = list(validator.iter_errors(json.load(open(sys.argv[2]))))
for e in errors:
    print(f"at {list(e.absolute_path)}: {e.message[:300]}")
sys.exit(1 if errors else 0)
"#;

/// The report validates against docs/doctor.schema.json (Debian's python3-jsonschema).
fn ensure_valid(lab: &Lab, label: &str, report: &Value) -> Result<()> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/doctor.schema.json");
    let script = lab.write_lab_file("validate-doctor.py", VALIDATOR)?;
    let doc = lab.write_lab_file(
        &format!("doctor-{label}.json"),
        &serde_json::to_string_pretty(report)?,
    )?;
    let (script, schema, doc) = (
        script.display().to_string(),
        schema.display().to_string(),
        doc.display().to_string(),
    );
    let out = run(&["/usr/bin/python3", &script, &schema, &doc])?;
    ensure!(
        out.status.success(),
        "the {label} report does not validate (python3-jsonschema installed?): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn doctor_passes_a_healthy_node_and_names_what_is_wrong() {
    scenario("doctor", Lab::builder().ssh(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let config = lab.config.clone();
        let conf = conf_of(lab, "n1");
        let files = lab.ssh.clone().context("ssh files")?;

        // Healthy: exit 0. The lab sets HAKEEP_NODE and has no node file, so node-name may
        // warn (the agent's unit would use the hostname); the lab has no systemd, so the
        // clock cannot be told (warn).
        let mut last = None;
        let healthy = lab.wait("doctor on n1 exits 0", CONVERGE, |l| {
            let d = doctor(l, &config, &conf);
            let ok = d.as_ref().is_ok_and(|d| d.code == 0);
            last = Some(d);
            ok
        });
        let report = match (healthy, last) {
            (Ok(_), Some(Ok(d))) => d,
            (e, d) => bail!(
                "healthy n1: {e:?}; last report: {:?}",
                d.map(|d| d.map(|d| format!("exit {}: {}; {}", d.code, d.not_ok(), d.stderr)))
            ),
        };
        let ids: Vec<&str> = report.json["checks"]
            .as_array()
            .context("checks")?
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        ensure!(ids == hakeep::ops::doctor::IDS, "check ids: {ids:?}");
        for id in [
            "script-user",
            "keepalived-conf",
            "notify-fifo",
            "peer-ssh",
            "units-disabled",
            "runtime-dirs",
            "holds",
        ] {
            ensure!(
                report.status(id) == "ok",
                "healthy n1: {id}: {}",
                report.check(id)?
            );
        }
        ensure!(
            report.json["node"] == "n1"
                && report.json["node_source"] == "HAKEEP_NODE"
                && report.json["cluster"] == "hkt"
                && report.json["summary"]["fail"] == 0,
            "healthy n1: {}",
            report.json
        );
        let peer = report.check("peer-ssh")?["message"].as_str().unwrap_or("");
        ensure!(
            peer.starts_with("n2: logged in as root at 10.213.0.12:22"),
            "peer-ssh: {peer}"
        );
        ensure_valid(lab, "healthy", &report.json)?;
        eprintln!("[doctor] healthy n1, not ok: {}", report.not_ok());

        // A stale keepalived.conf: exit 1, the line named.
        let good = std::fs::read_to_string(&conf)?;
        let line = good
            .lines()
            .position(|l| l.trim() == "priority 200")
            .context("n1's priority line")?
            + 1;
        let stale = lab.write_lab_file(
            "keepalived.stale.conf",
            &good.replace("priority 200", "priority 150"),
        )?;
        let d = doctor(lab, &config, &stale)?;
        let c = d.check("keepalived-conf")?;
        ensure!(
            d.code == 1
                && c["status"] == "fail"
                && c["message"].as_str().is_some_and(|m| m.contains("is stale")
                    && m.contains(&format!("installed line {line}, rendered line {line}")))
                && c["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains("render keepalived --node n1")),
            "stale keepalived.conf: exit {}: {c}",
            d.code
        );
        ensure_valid(lab, "stale", &d.json)?;

        // A wrong node name: exit 2, named, nothing on stdout.
        let out = lab.hakeep("n1", &["doctor", "--json", "--node", "web01"])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2)
                && out.stdout.is_empty()
                && err.contains("node \"web01\" (from --node)")
                && err.contains("its nodes: n1, n2"),
            "wrong node name: {out:?}"
        );

        // n2's host key not in known_hosts: exit 1, the fix is ssh-keyscan.
        let known = std::fs::read_to_string(&files.known_hosts)?;
        let n2 = lab.node("n2").address.clone();
        let without_n2: String = known
            .lines()
            .filter(|l| !l.starts_with(&format!("{n2} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        ensure!(
            without_n2 != known,
            "n2 is not in {}",
            files.known_hosts.display()
        );
        let other_known = |name: &str, text: &str| -> Result<PathBuf> {
            let path = lab.write_lab_file(name, text)?;
            let yml = lab.cluster_yml().replace(
                &format!("known_hosts: {}", files.known_hosts.display()),
                &format!("known_hosts: {}", path.display()),
            );
            ensure!(
                yml.contains(&path.display().to_string()),
                "no known_hosts in cluster.yml"
            );
            lab.write_lab_file(&format!("cluster.{name}.yml"), &yml)
        };
        let unknown_n2 = other_known("known_hosts.without-n2", &without_n2)?;
        let d = doctor(lab, &unknown_n2, &conf)?;
        let c = d.check("peer-ssh")?;
        ensure!(
            d.code == 1
                && c["status"] == "fail"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("n2: ") && m.contains("is not in"))
                && c["fix"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(&format!("ssh-keyscan {n2} >> "))
                        && f.contains("after checking the fingerprint")),
            "n2's host key unknown: exit {}: {c}",
            d.code
        );

        // A peer that does not answer: a warning while known_hosts knows it, a failure
        // when it does not (it would be refused once back).
        let n3 = "10.213.0.13";
        let with_n3 = |known_hosts: &Path, name: &str| -> Result<PathBuf> {
            let yml = lab
                .cluster_yml()
                .replace(
                    &format!("known_hosts: {}", files.known_hosts.display()),
                    &format!("known_hosts: {}", known_hosts.display()),
                )
                .replace(
                    "nodes:\n",
                    &format!("nodes:\n  n3: {{ address: {n3}, interface: {IFACE} }}\n"),
                );
            lab.write_lab_file(name, &yml)
        };
        let n3_key = lab.new_public_key("n3")?;
        let known_n3 =
            lab.write_lab_file("known_hosts.with-n3", &format!("{known}{n3} {n3_key}\n"))?;
        let d = doctor(lab, &with_n3(&known_n3, "cluster.n3-known.yml")?, &conf)?;
        let c = d.check("peer-ssh")?;
        ensure!(
            d.code == 0
                && c["status"] == "warn"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("n3: unreachable") && m.contains("n2: logged in")),
            "n3 unreachable, known: exit {}: {c}",
            d.code
        );
        let d = doctor(
            lab,
            &with_n3(&files.known_hosts, "cluster.n3-unknown.yml")?,
            &conf,
        )?;
        let c = d.check("peer-ssh")?;
        ensure!(
            d.code == 1
                && c["status"] == "fail"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no entry for 10.213.0.13")),
            "n3 unreachable, unknown: exit {}: {c}",
            d.code
        );

        // Maintenance and an operator hold: warnings with the command that ends them.
        ensure!(lab
            .hakeep("n1", &["maintenance", "on", "--group", GROUP])?
            .status
            .success());
        let d = doctor(lab, &config, &conf)?;
        let c = d.check("holds")?;
        ensure!(
            d.code == 0
                && c["status"] == "warn"
                && c["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains(&format!("maintenance off --group {GROUP}"))),
            "maintenance: exit {}: {c}",
            d.code
        );
        ensure!(lab
            .hakeep("n1", &["maintenance", "off", "--group", GROUP])?
            .status
            .success());
        let out = lab.hakeep("n1", &["release", GROUP, "--hold", "120"])?;
        ensure!(out.status.success(), "release: {out:?}");
        let d = doctor(lab, &config, &conf)?;
        let c = d.check("holds")?;
        ensure!(
            d.code == 0
                && c["status"] == "warn"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("{GROUP}: operator hold until")))
                && c["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains(&format!("takeover {GROUP}`"))),
            "operator hold: exit {}: {c}",
            d.code
        );
        ensure_valid(lab, "held", &d.json)?;

        // The agent killed: notify-fifo fails.
        lab.kill_agent("n1")?;
        let d = doctor(lab, &config, &conf)?;
        let c = d.check("notify-fifo")?;
        ensure!(
            d.code == 1
                && c["status"] == "fail"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is not running")),
            "agent killed: exit {}: {c}",
            d.code
        );
        Ok(())
    });
}
