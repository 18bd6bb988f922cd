//! B5 monitoring: what metrics and alert programs cost an idle agent. The same lab
//! (light groups, 1 s VRRPv2) three ways: neither configured, metrics and alerts
//! configured but never scraped, and metrics scraped every second from the client over
//! the bridge (a busy Prometheus). Each agent's CPU over the same window, its RSS and
//! threads; the scrapes' size and time as the client saw them.

use super::*;

pub const GROUPS: usize = 32;
const WINDOW: Duration = Duration::from_secs(30);
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

pub const HEADER: &[&str] = &[
    "mode",
    "groups",
    "node",
    "role",
    "window_ms",
    "agent_cpu_pct",
    "agent_cpu_with_children_pct",
    "agent_rss_kb",
    "agent_threads",
    "scrapes",
    "scrape_bytes",
    "scrape_ms_max",
];

/// (mode, metrics and alerts configured, scraped)
const MODES: [(&str, bool, bool); 3] = [
    ("off", false, false),
    ("configured", true, false),
    ("scraped-1s", true, true),
];

pub fn bench(t0: Instant) -> Result<Vec<Vec<String>>> {
    let tck = clock_ticks();
    let mut rows = Vec::new();
    for (mode, configured, scraped) in MODES {
        let what = format!("B5 monitoring {mode}, {GROUPS} groups");
        let mut builder = Lab::builder().light_groups(GROUPS);
        if configured {
            builder = builder.metrics().alerts();
        }
        let mut got = with_lab(&what, builder, |lab| {
            lab.wait(&format!("n1 holds all {GROUPS} groups"), secs(180), |l| {
                light_held(l, "n1").0 == GROUPS
            })?;
            sleep(secs(3));
            let pids: Vec<(String, u32)> = lab
                .node_names()
                .into_iter()
                .map(|n| Ok((n.clone(), lab.agent_pid(&n).context("agent pid")?)))
                .collect::<Result<_>>()?;
            let before: Vec<Footprint> = pids
                .iter()
                .map(|(_, p)| footprint(*p))
                .collect::<Result<_>>()?;
            let clock = Instant::now();
            let mut scrapes = 0usize;
            let mut bytes = 0usize;
            let mut slowest = Duration::ZERO;
            while clock.elapsed() < WINDOW {
                let round = Instant::now();
                if scraped {
                    for (node, _) in &pids {
                        let started = Instant::now();
                        let text = lab.scrape(node)?;
                        slowest = slowest.max(started.elapsed());
                        bytes = bytes.max(text.len());
                        scrapes += 1;
                    }
                }
                sleep(SCRAPE_EVERY.saturating_sub(round.elapsed()));
            }
            let window = clock.elapsed().as_millis() as u64;
            let mut out = Vec::new();
            for ((node, pid), b) in pids.iter().zip(&before) {
                let a = footprint(*pid)?;
                let (own, all) = cpu_ms(b, &a, tck);
                let role = if node == "n1" { "active" } else { "standby" };
                out.push(vec![
                    mode.to_string(),
                    GROUPS.to_string(),
                    node.clone(),
                    role.to_string(),
                    window.to_string(),
                    pct(own, window),
                    pct(all, window),
                    a.rss_kb.to_string(),
                    a.threads.to_string(),
                    scrapes.to_string(),
                    bytes.to_string(),
                    slowest.as_millis().to_string(),
                ]);
            }
            Ok(out)
        })?;
        progress(t0, &format!("{what}: measured"));
        rows.append(&mut got);
    }
    Ok(rows)
}

/// The report's table: per mode, the active and the standby agent.
pub fn markdown(out: &Path) -> String {
    let Some(csv) = Csv::read(&out.join("b5_monitoring.csv"), HEADER) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### B5 monitoring: the idle cost of metrics and alert programs\n\n\
         {GROUPS} light groups held by n1, 1 s VRRPv2; each agent over the same {} s window. \
         `off`: no `metrics:` nor `alerts:`; `configured`: `metrics:` (endpoint and textfile) \
         and an alert program for every event, never scraped (idle: no event, no alert run); \
         `scraped-1s`: the same, each agent scraped every second from the client.\n",
        WINDOW.as_secs()
    );
    let _ = writeln!(
        s,
        "| mode | agent CPU % of one core, active / standby | RSS MiB, active / standby | threads, active / standby | scrape size KiB, slowest scrape ms |\n| --- | --- | --- | --- | --- |"
    );
    for (mode, _, _) in MODES {
        let pick = |role: &str| {
            csv.select(&[("mode", mode), ("role", role)])
                .first()
                .cloned()
        };
        let (Some(a), Some(b)) = (pick("active"), pick("standby")) else {
            continue;
        };
        let col = |r: &Vec<String>, c: &str| r[csv.col(c)].clone();
        let mib = |r: &Vec<String>| {
            format!(
                "{:.1}",
                col(r, "agent_rss_kb").parse::<f64>().unwrap_or(0.0) / 1024.0
            )
        };
        let scrape = if col(a, "scrapes") == "0" {
            "–".to_string()
        } else {
            format!(
                "{:.1}, {}",
                col(a, "scrape_bytes").parse::<f64>().unwrap_or(0.0) / 1024.0,
                col(a, "scrape_ms_max")
            )
        };
        let _ = writeln!(
            s,
            "| {mode} | {} / {} | {} / {} | {} / {} | {scrape} |",
            col(a, "agent_cpu_pct"),
            col(b, "agent_cpu_pct"),
            mib(a),
            mib(b),
            col(a, "agent_threads"),
            col(b, "agent_threads"),
        );
    }
    s
}
