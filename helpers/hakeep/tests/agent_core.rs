//! The event-driven agent core on real parts: what the node reports by itself (an
//! address removed by hand), holds that survive an agent restart, switchovers back to
//! back that do not depend on what the target went through before, a worker that
//! panics, and a notify FIFO removed under the agent.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{Duration, SystemTime};

use anyhow::{ensure, Context};

use crate::harness::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn group_state(lab: &Lab, node: &str) -> Option<serde_json::Value> {
    let text = lab.state_json(node)?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state.get("groups")?.get(GROUP).cloned()
}

/// A floating IP removed by hand from the active node is noticed through netlink (the
/// agent runs no `ip` to look) and recorded in actions.log. keepalived 2.2.7 answers the
/// removal of its VIP by leaving MASTER and entering it again, which puts the address
/// back; the group then serves again from the same node.
#[test]
fn a_floating_ip_removed_by_hand_is_recorded() {
    scenario("vip_removed", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let out = lab.exec(
            "n1",
            &["ip", "addr", "del", &format!("{VIP}/24"), "dev", IFACE],
        )?;
        ensure!(out.status.success(), "ip addr del: {out:?}");
        let recorded =
            format!("group={GROUP} event=address-removed address={VIP}/24 interface={IFACE}");
        lab.wait(
            "n1 records the removal of its floating IP",
            secs(10),
            |lab| lab.actions_log("n1").contains(&recorded),
        )?;
        lab.wait_only_active("n1", CONVERGE)?;
        lab.wait("n1 says all is as intended again", secs(20), |lab| {
            lab.hakeep("n1", &["status", "--node", "n1"])
                .is_ok_and(|o| o.status.code() == Some(0))
        })?;
        Ok(())
    });
}

/// A hold keeps its kind and its end across an agent restart: released by the operator
/// for 600 s, the node stays out for those 600 s, not for the configured hold-down.
#[test]
fn an_agent_restart_keeps_a_hold_to_its_original_end() {
    scenario("hold_restart", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let out = lab.hakeep(
            "n1",
            &["release", GROUP, "--hold", "600", "--json", "--node", "n1"],
        )?;
        ensure!(out.status.success(), "release: {out:?}");
        lab.wait_only_active("n2", CONVERGE)?;
        let before = group_state(lab, "n1").context("n1's group state")?;
        let until = before["fault"]["hold_down_until"]
            .as_str()
            .context("no hold on n1")?
            .to_string();
        ensure!(
            before["fault"]["kind"] == "operator",
            "hold: {}",
            before["fault"]
        );
        lab.kill_agent("n1")?;
        lab.start_agent("n1")?;
        let pid = lab.agent_pid("n1").context("the restarted agent's pid")?;
        lab.wait("the restarted agent published its state", secs(20), |lab| {
            lab.state_json("n1")
                .is_some_and(|t| t.contains(&format!("\"pid\": {pid}")))
                && group_state(lab, "n1").is_some()
        })?;
        // Past several hold-downs (5 s each here): still out, same end.
        std::thread::sleep(secs(HOLD_DOWN * 2 + 2));
        let after = group_state(lab, "n1").context("n1's group state after the restart")?;
        ensure!(
            after["fault"]["hold_down_until"].as_str() == Some(until.as_str()),
            "the hold's end moved across the restart: {until} -> {}",
            after["fault"]
        );
        ensure!(
            after["fault"]["kind"] == "operator",
            "hold: {}",
            after["fault"]
        );
        ensure!(
            lab.track_file("n1").as_deref().map(str::trim) == Some("1"),
            "n1's track file: {:?}",
            lab.track_file("n1")
        );
        lab.check_only_active("n2")?;
        Ok(())
    });
}

/// Switchovers straight after one another, with the production hold-down (60 s): each
/// target is seen BACKUP before the holder starts to release (the prepare step), so a
/// target still held from its own step-down a moment ago is ready all the same.
#[test]
fn back_to_back_switchovers_wait_for_a_ready_target() {
    let builder = Lab::builder().ssh().hold_down(60);
    scenario("back_to_back", builder, |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        for (i, to) in ["n2", "n1", "n2", "n1"].iter().enumerate() {
            let from = if *to == "n1" { "n2" } else { "n1" };
            let started = SystemTime::now();
            let out = lab.hakeep(
                from,
                &[
                    "switchover",
                    GROUP,
                    "--to",
                    to,
                    "--json",
                    "--node",
                    from,
                    "--wait",
                    "60",
                ],
            )?;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("switchover {i} output: {out:?}"))?;
            ensure!(report["ok"] == true, "switchover {i} to {to}: {report}");
            lab.wait_only_active(to, CONVERGE)?;
            if i == 0 {
                continue; // the target had never stepped down: BACKUP all along
            }
            // The target left its hold (it stepped down in the previous switchover) and
            // its keepalived said BACKUP before the holder's first release step.
            let since = epoch(started);
            let backup_at = times(&lab.actions_log(to), "event=BACKUP", since);
            let release_at = times(&lab.actions_log(from), "action=release", since);
            let first_release = *release_at.first().context("no release step")?;
            ensure!(
                backup_at.iter().any(|t| *t <= first_release),
                "switchover {i}: {to} was not BACKUP before {from} released \
                 (BACKUP at {backup_at:?}, release at {release_at:?})"
            );
        }
        Ok(())
    });
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Times (ms since the epoch) of the actions.log lines of GROUP containing `needle`,
/// from `since` on.
fn times(log: &str, needle: &str, since: u64) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(&format!("group={GROUP} ")) && l.contains(needle))
        .filter_map(|l| epoch_ms(l.split_whitespace().next()?))
        .filter(|t| *t >= since)
        .collect()
}

/// One agent per node: a second one refuses to start, saying why, and the first goes on
/// serving its control socket (a second agent would split keepalived's events and
/// delete the first one's socket).
#[test]
fn a_second_agent_refuses_to_start() {
    scenario("second_agent", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let hakeep = lab.dir.join("bin/hakeep").display().to_string();
        let config = lab.config.display().to_string();
        let out = lab.exec("n1", &[&hakeep, "agent", "-c", &config, "--node", "n1"])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains("another hakeep agent runs on this node"),
            "the second agent: {out:?}"
        );
        let ready = lab.hakeep(
            "n1",
            &["takeover", GROUP, "--prepare", "--json", "--node", "n1"],
        )?;
        ensure!(
            ready.status.success(),
            "the first agent's control socket no longer answers: {ready:?}"
        );
        lab.check_only_active("n1")?;
        Ok(())
    });
}

/// The control socket answers root only, even if its mode were opened up.
#[test]
fn the_control_socket_refuses_other_users() {
    scenario("control_peercred", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let socket = "/run/hakeep/control.sock";
        let out = lab.exec("n1", &["chmod", "0666", socket])?;
        ensure!(out.status.success(), "chmod: {out:?}");
        let hakeep = lab.dir.join("bin/hakeep").display().to_string();
        let config = lab.config.display().to_string();
        let out = lab.exec(
            "n1",
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                &hakeep,
                "-c",
                &config,
                "release",
                GROUP,
                "--json",
                "--node",
                "n1",
            ],
        )?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            !out.status.success() && stdout.contains("answers root only"),
            "a release as nobody: {out:?}"
        );
        lab.check_only_active("n1")?;
        Ok(())
    });
}

/// A group worker that panics (debug builds: HAKEEP_DEBUG_PANIC_ONCE, right after its
/// first take step, the mount) does not take the agent with it: the panic is reported in
/// state.json and `hakeep status`, a fresh worker starts, finds the mount it left, takes
/// only what is missing (the service) and the group serves from n1.
#[test]
fn a_panicking_worker_is_reported_restarted_and_serves_again() {
    let builder = Lab::builder().agent_env("n1", "HAKEEP_DEBUG_PANIC_ONCE", GROUP);
    scenario("worker_panic", builder, |lab| {
        let pid = lab.agent_pid("n1").context("n1's agent")?;
        lab.wait(
            "n1's state.json reports the worker's panic",
            CONVERGE,
            |lab| {
                group_state(lab, "n1").is_some_and(|g| {
                    g["problems"].as_array().is_some_and(|p| {
                        p.iter()
                            .any(|p| p.as_str().is_some_and(|p| p.contains("worker panicked")))
                    })
                })
            },
        )?;
        ensure!(
            lab.agent_output("n1")
                .contains(&format!("group {GROUP}: its worker panicked")),
            "the agent did not log the panic with its group"
        );
        lab.wait_only_active("n1", CONVERGE)?;
        ensure!(
            lab.agent_running("n1") && lab.agent_pid("n1") == Some(pid),
            "the agent did not survive its worker's panic"
        );
        let mount_takes = parse_actions(&lab.actions_log("n1"))
            .iter()
            .filter(|a| a.action == "take" && a.step.starts_with("mount:"))
            .count();
        ensure!(
            mount_takes == 1,
            "the restarted worker did not start from what was held: {mount_takes} mount takes"
        );
        let status = lab.hakeep("n1", &["status", "--node", "n1"])?;
        let text = String::from_utf8_lossy(&status.stdout);
        ensure!(
            status.status.code() == Some(1) && text.contains("worker panicked"),
            "hakeep status does not report the panic: {status:?}"
        );
        Ok(())
    });
}

/// The notify FIFO removed under a running agent: the agent makes a new one (0600) at
/// once and reads it, and still reads the old one while keepalived has it open. So
/// keepalived's STOP (written to the old FIFO) and, after its restart, its BACKUP
/// (written to the new one) both reach the agent as FIFO events. The old agent kept
/// reading only the removed FIFO: the restarted keepalived made its own and was unheard.
#[test]
fn a_removed_notify_fifo_is_recreated_and_events_keep_flowing() {
    scenario("fifo_removed", Lab::builder(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let path = lab.node_path("n2", "/run/hakeep/vrrp.fifo");
        let old = std::fs::symlink_metadata(&path)?.ino();
        std::fs::remove_file(&path)?;
        lab.wait("n2's agent re-creates its FIFO", secs(10), |_| {
            std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.file_type().is_fifo() && m.ino() != old)
        })?;
        let meta = std::fs::symlink_metadata(&path)?;
        ensure!(
            meta.mode() & 0o7777 == 0o600 && meta.uid() == 0,
            "the new FIFO: mode {:o}, uid {}",
            meta.mode() & 0o7777,
            meta.uid()
        );
        let since = epoch(SystemTime::now());
        lab.stop_keepalived("n2")?;
        lab.wait(
            "n2's agent hears STOP through the old FIFO",
            secs(20),
            |lab| !times(&lab.actions_log("n2"), "event=STOP", since).is_empty(),
        )?;
        lab.start_keepalived("n2")?;
        lab.wait(
            "n2's agent hears BACKUP through the new FIFO",
            secs(30),
            |lab| !times(&lab.actions_log("n2"), "event=BACKUP", since).is_empty(),
        )?;
        lab.check_only_active("n1")?;
        Ok(())
    });
}
