//! The fail-safe on real parts (docs/agent.md, "When a release fails"): a node that
//! cannot bring a group to a safe state says FAILED and does not keep its floating IPs,
//! and a keepalived whose notify FIFO says nothing is noticed within seconds.

use std::time::Duration;

use anyhow::ensure;

use crate::harness::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `hakeep status --json` of `node`, as it answers now.
fn status_json(lab: &Lab, node: &str) -> Option<serde_json::Value> {
    let out = lab
        .hakeep(node, &["status", "--json", "--node", node])
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn group_failed(lab: &Lab, node: &str) -> Option<String> {
    let status = status_json(lab, node)?;
    let group = status["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == GROUP)?;
    group["failed"].as_str().map(str::to_string)
}

fn node_problems(lab: &Lab, node: &str) -> Vec<String> {
    status_json(lab, node)
        .and_then(|s| s["problems"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

/// A release that fails (the service refuses to stop) after keepalived died on the
/// holder: the group is FAILED in status (human and JSON), the floating IP leaves the
/// node anyway, the peer serves; once the service can stop, the retried release
/// completes and FAILED ends.
#[test]
fn a_failed_release_is_reported_failed_and_the_ip_leaves() {
    scenario("release_failed", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        lab.write_node_file("n1", FAIL_STOP_MARKER, "set by the test\n")?;
        lab.crash_keepalived("n1")?;
        lab.wait("n1 reports the group FAILED", CONVERGE, |l| {
            group_failed(l, "n1").is_some_and(|f| f.contains("release failed"))
        })?;
        let human = lab.hakeep("n1", &["status", "--node", "n1"])?;
        let text = String::from_utf8_lossy(&human.stdout);
        ensure!(
            text.contains("FAILED") && human.status.code() == Some(1),
            "n1's status should say FAILED and exit 1: {human:?}"
        );
        lab.wait("n1's floating IP is gone", CONVERGE, |l| !l.has_vip("n1"))?;
        lab.wait("n2 serves", CONVERGE, |l| {
            l.serving_node().as_deref() == Some("n2")
        })?;
        lab.remove_node_file("n1", FAIL_STOP_MARKER)?;
        lab.wait(
            "the retried release completes on n1 and FAILED ends",
            CONVERGE,
            |l| l.holds_nothing("n1") && group_failed(l, "n1").is_none(),
        )?;
        lab.wait_only_active("n2", CONVERGE)?;
        Ok(())
    });
}

/// The holder's track file cannot be written (as on a full or read-only /run), so it
/// cannot say FAULT when the operator releases the group: keepalived would keep the
/// floating IP of a released group. The agent stops keepalived instead, the peer takes
/// over, and status says FAILED; once the file is writable and keepalived runs again,
/// FAILED ends.
#[test]
fn a_step_down_keepalived_cannot_hear_stops_keepalived() {
    scenario("track_unwritable", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        // The track directory read-only (bind-mounted onto itself): each write fails
        // with EROFS, as it fails with ENOSPC on a full /run; keepalived still reads it.
        let track = "/run/hakeep/track";
        for argv in [
            ["mount", "--bind", track, track].as_slice(),
            ["mount", "-o", "remount,bind,ro", track].as_slice(),
        ] {
            let out = lab.exec("n1", argv)?;
            ensure!(out.status.success(), "{argv:?} in n1: {out:?}");
        }
        let probe = lab.exec("n1", &["sh", "-c", "echo x > /run/hakeep/track/hkt-probe"])?;
        ensure!(!probe.status.success(), "n1's track directory is writable");

        let out = lab.hakeep("n1", &["release", GROUP, "--node", "n1"])?;
        ensure!(out.status.success(), "release on n1: {out:?}");
        lab.wait("n2 takes over", CONVERGE, |l| l.is_active("n2"))?;
        lab.wait("n1 keeps no floating IP", CONVERGE, |l| !l.has_vip("n1"))?;
        lab.wait(
            "n1's keepalived was stopped (its pid file is gone)",
            CONVERGE,
            |l| !l.node_file_exists("n1", KEEPALIVED_PID),
        )?;
        ensure!(!lab.keepalived_running("n1"), "n1's keepalived still runs");
        ensure!(
            lab.agent_output("n1").contains("FAILED"),
            "n1's agent log does not say FAILED:\n{}",
            lab.agent_output("n1")
        );
        let out = lab.exec("n1", &["umount", track])?;
        ensure!(out.status.success(), "umount {track} in n1: {out:?}");
        lab.wait("n1's status says FAILED", CONVERGE, |l| {
            group_failed(l, "n1").is_some_and(|f| f.contains("keepalived"))
        })?;
        lab.start_keepalived("n1")?;
        lab.wait("FAILED ends once keepalived runs again", CONVERGE, |l| {
            group_failed(l, "n1").is_none()
        })?;
        lab.wait_only_active("n2", CONVERGE)?;
        Ok(())
    });
}

/// keepalived on the standby runs without its script user (as on a node where the
/// keepalived_script account is missing): it logs "Failed to set default user for vrrp_
/// fifo" and never writes to the notify FIFO. When it becomes MASTER, the agent notices
/// from its addresses and the JSON dump, takes the group, and status names the problem.
#[test]
fn a_silent_notify_fifo_is_noticed_and_named() {
    scenario("fifo_silent", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let passwd = std::fs::read_to_string("/etc/passwd")?;
        let without: String = passwd
            .lines()
            .filter(|l| !l.starts_with("keepalived_script:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let copy = lab.write_lab_file("passwd-without-script-user", &without)?;
        let copy = copy.to_string_lossy().to_string();
        let out = lab.exec("n2", &["mount", "--bind", &copy, "/etc/passwd"])?;
        ensure!(
            out.status.success(),
            "bind-mounting n2's /etc/passwd: {out:?}"
        );
        lab.stop_keepalived("n2")?;
        lab.start_keepalived("n2")?;
        lab.wait("n2's keepalived cannot use its FIFO", secs(20), |l| {
            l.keepalived_output("n2")
                .contains("Failed to set default user for vrrp_ fifo")
        })?;
        lab.crash_keepalived("n1")?;
        lab.wait("n2 takes the group without a FIFO event", CONVERGE, |l| {
            l.is_active("n2")
        })?;
        lab.wait("n2's status names the silent FIFO", CONVERGE, |l| {
            node_problems(l, "n2")
                .iter()
                .any(|p| p.contains("notify FIFO is silent") && p.contains("keepalived_script"))
        })?;
        let human = lab.hakeep("n2", &["status", "--node", "n2"])?;
        ensure!(
            String::from_utf8_lossy(&human.stdout).contains("notify FIFO is silent")
                && human.status.code() == Some(1),
            "n2's status should name the silent FIFO and exit 1: {human:?}"
        );
        Ok(())
    });
}
