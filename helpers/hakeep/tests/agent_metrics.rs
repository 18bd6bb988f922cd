//! Tier 2: the agents' Prometheus metrics (docs/metrics.md) on the real lab: both agents
//! serve them on their node's address (scraped from the client netns over the lab's
//! bridge) and keep the textfile; after a failover the survivor's scrape says it serves
//! the group and counts the takeover. Needs root, like agent_cluster.
//!
//!     flock /var/tmp/hakeep-tier2.lock cargo test --locked --test integration agent_metrics:: -- --test-threads=1

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::harness::*;

/// The value of one series (`name{labels}` exactly as exported), if the scrape has it.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn web(family: &str) -> String {
    format!("{family}{{group=\"{GROUP}\"}}")
}

fn state(s: &str) -> String {
    format!("hakeep_group_vrrp_state{{group=\"{GROUP}\",state=\"{s}\"}}")
}

/// Waits until `node`'s scrape has every (series, value); returns that scrape.
fn wait_scrape(lab: &Lab, node: &str, want: &[(String, f64)]) -> Result<String> {
    let mut last = Err(anyhow::anyhow!("no scrape yet"));
    let matches = |scrape: &str| want.iter().all(|(s, v)| value(scrape, s) == Some(*v));
    let waited = lab.wait(&format!("{node}'s metrics say {want:?}"), CONVERGE, |lab| {
        last = lab.scrape(node);
        last.as_deref().is_ok_and(matches)
    });
    match waited {
        Ok(_) => last,
        Err(e) => Err(e.context(format!("{node}'s last scrape: {last:?}"))),
    }
}

#[test]
fn after_a_failover_the_survivors_metrics_show_the_takeover() {
    scenario("metrics", Lab::builder().metrics(), |lab| {
        lab.wait_only_active("n1", CONVERGE)?;
        let n1 = wait_scrape(
            lab,
            "n1",
            &[
                (web("hakeep_group_active"), 1.0),
                (web("hakeep_group_healthy"), 1.0),
                (web("hakeep_group_takeovers_total"), 1.0),
                (state("MASTER"), 1.0),
                ("hakeep_keepalived_up".into(), 1.0),
            ],
        )?;
        ensure!(
            n1.contains("hakeep_agent_info{cluster=\"hkt\",node=\"n1\","),
            "{n1}"
        );
        ensure!(
            n1.lines().any(|l| l.starts_with(&format!(
                "hakeep_step_duration_seconds_count{{group=\"{GROUP}\",action=\"take\","
            ))),
            "n1 timed its take's steps:\n{n1}"
        );
        wait_scrape(
            lab,
            "n2",
            &[
                (web("hakeep_group_active"), 0.0),
                (web("hakeep_group_healthy"), 1.0),
                (web("hakeep_group_takeovers_total"), 0.0),
                (state("BACKUP"), 1.0),
            ],
        )?;

        // n1's keepalived dies and its link goes down: n2 takes over.
        lab.crash_keepalived("n1")?;
        lab.set_link("n1", false)?;
        lab.wait("n2 is active and serves through the VIP", CONVERGE, |l| {
            l.is_active("n2") && l.serving_node().as_deref() == Some("n2")
        })?;
        let n2 = wait_scrape(
            lab,
            "n2",
            &[
                (web("hakeep_group_active"), 1.0),
                (web("hakeep_group_takeovers_total"), 1.0),
                (state("MASTER"), 1.0),
                (state("BACKUP"), 0.0),
                (web("hakeep_group_hold_seconds"), 0.0),
            ],
        )?;
        ensure!(
            value(&n2, &web("hakeep_group_faults_total")) == Some(0.0),
            "{n2}"
        );
        // The textfile says the same.
        lab.wait("n2's textfile shows the takeover", secs(10), |l| {
            l.read_node_file("n2", METRICS_TEXTFILE).is_some_and(|t| {
                value(&t, &web("hakeep_group_active")) == Some(1.0)
                    && value(&t, &web("hakeep_group_takeovers_total")) == Some(1.0)
            })
        })?;

        // n1, back on the bridge without keepalived: released, and says why.
        lab.set_link("n1", true)?;
        wait_scrape(
            lab,
            "n1",
            &[
                (web("hakeep_group_active"), 0.0),
                (web("hakeep_group_releases_total"), 1.0),
                ("hakeep_keepalived_up".into(), 0.0),
                (state("STOP"), 1.0),
            ],
        )?;

        // An address the agent cannot listen on: it refuses to start, and says why.
        lab.kill_agent("n1")?;
        let listen = format!(
            "import socket, time\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{}', {METRICS_PORT})); s.listen(1); time.sleep(120)",
            lab.node("n1").address
        );
        lab.spawn_in("n1", "port-holder", &["python3", "-c", &listen])?;
        lab.wait("the port is taken in n1", secs(10), |l| {
            l.exec("n1", &["ss", "-Hltn", &format!("sport = :{METRICS_PORT}")])
                .is_ok_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        })?;
        // It may still run when start_agent looks (after 0.5 s): wait for it to end.
        let _ = lab.start_agent("n1");
        let deadline = Instant::now() + secs(20);
        while lab.agent_running("n1") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        ensure!(
            !lab.agent_running("n1"),
            "the agent runs without its endpoint"
        );
        let output = lab.agent_output("n1");
        let why = format!(
            "hakeep: metrics.listen: cannot listen on {}:{METRICS_PORT}: ",
            lab.node("n1").address
        );
        ensure!(output.contains(&why), "no {why:?} in:\n{output}");
        Ok(())
    });
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
