//! Human output of `hakeep status`: one table of groups, then what is wrong.

use super::status::{NodeStatus, Verdict};
use super::table::{paint, Table, Tone};

pub fn node(status: &NodeStatus, colour: bool) -> String {
    let mut out = String::new();
    let running = |yes: bool| {
        if yes {
            paint("running", Tone::Good, colour)
        } else {
            paint("NOT RUNNING", Tone::Bad, colour)
        }
    };
    out.push_str(&format!(
        "node {} (cluster {})   keepalived: {}   agent: {}{}\n",
        status.node,
        status.cluster,
        running(status.keepalived_running),
        running(status.agent_running),
        if status.maintenance {
            format!(
                "   {}",
                paint("MAINTENANCE: the agent does not act", Tone::Warn, colour)
            )
        } else {
            String::new()
        }
    ));
    if let Some(error) = &status.error {
        out.push_str(&format!("{}\n", paint(error, Tone::Bad, colour)));
    }
    for problem in &status.problems {
        out.push_str(&format!("{}\n", paint(problem, Tone::Bad, colour)));
    }
    if status.groups.is_empty() {
        return out;
    }
    let mut table = Table::new(&["GROUP", "VRRP", "DESIRED", "ACTUAL", "STATUS", "RESOURCES"]);
    for g in &status.groups {
        let s = &g.state;
        let verdict = if s.failed.is_some() {
            ("FAILED".to_string(), Tone::Bad)
        } else if s.maintenance {
            ("MAINTENANCE".to_string(), Tone::Warn)
        } else if let Some(f) = s.fault.as_ref().filter(|f| f.by_operator) {
            (
                format!("RELEASED until {}", short_time(&f.hold_down_until)),
                Tone::Warn,
            )
        } else if let Some(f) = &s.fault {
            (
                format!("FAULT until {}", short_time(&f.hold_down_until)),
                Tone::Bad,
            )
        } else if g.ok {
            ("OK".to_string(), Tone::Good)
        } else {
            ("NOT OK".to_string(), Tone::Bad)
        };
        let resources: Vec<String> = s
            .resources
            .iter()
            .map(|r| format!("{} {}", r.id, r.observed))
            .chain(s.floating_ips.iter().map(|ip| {
                format!(
                    "ip:{} {}",
                    ip.address,
                    if ip.present { "present" } else { "absent" }
                )
            }))
            .collect();
        table.row(vec![
            (g.name.clone(), Tone::Plain),
            (s.vrrp_state.to_string(), Tone::Plain),
            (s.desired.clone(), Tone::Plain),
            (
                s.actual.clone(),
                if s.actual == s.desired {
                    Tone::Plain
                } else {
                    Tone::Bad
                },
            ),
            verdict,
            (resources.join(", "), Tone::Plain),
        ]);
    }
    out.push_str(&table.render(colour));
    for g in &status.groups {
        let s = &g.state;
        if let Some(failed) = &s.failed {
            out.push_str(&format!(
                "{}: {}\n",
                g.name,
                paint(&format!("FAILED: {failed}"), Tone::Bad, colour)
            ));
        }
        if let Some(f) = &s.fault {
            out.push_str(&format!(
                "{}: {} since {}\n",
                g.name,
                f.reason,
                short_time(&f.since)
            ));
        }
        for p in &s.problems {
            out.push_str(&format!("{}: {}\n", g.name, paint(p, Tone::Bad, colour)));
        }
        for r in s.resources.iter().filter(|r| r.error.is_some()) {
            out.push_str(&format!(
                "{}: {}: {}\n",
                g.name,
                r.id,
                r.error.as_deref().unwrap_or("")
            ));
        }
        if let Some(t) = &s.last_transition {
            let steps: Vec<String> = t
                .steps
                .iter()
                .map(|st| {
                    format!(
                        "{} {} {} ms{}",
                        st.action,
                        st.resource,
                        st.duration_ms,
                        if st.ok { "" } else { " FAILED" }
                    )
                })
                .collect();
            out.push_str(&format!(
                "{}: last transition to {} at {} ({}), {} ms, {}: {}\n",
                g.name,
                t.to,
                short_time(&t.started),
                t.trigger,
                t.duration_ms,
                t.result,
                steps.join("; ")
            ));
        }
    }
    if status.verdict() == Verdict::AsIntended {
        out.push_str(&paint("everything is as intended\n", Tone::Good, colour));
    }
    out
}

/// `2026-11-22T02:20:58.342Z` → `02:20:58`.
fn short_time(stamp: &str) -> &str {
    stamp.get(11..19).unwrap_or(stamp)
}
