//! `hakeep status --all-nodes`: a line per node and per group's placement, then each node
//! as `hakeep status` shows it there.

use crate::ops::cluster_status::ClusterStatus;
use crate::ops::status::Verdict;

use super::line::{Line, Tone};
use super::node;
use super::table::Table;
use super::View;

pub fn render(status: &ClusterStatus, view: &View) -> String {
    let mut out = view.out();
    out.line(&Line::of(
        &format!("cluster {}", status.cluster),
        Tone::Plain,
    ));
    let mut nodes = Table::new(&["NODE", "KEEPALIVED", "AGENT", "STATUS"]);
    for n in &status.nodes {
        let yes = |b: bool| {
            if b {
                ("running".to_string(), Tone::Good)
            } else {
                ("down".to_string(), Tone::Bad)
            }
        };
        let verdict = match (&n.error, n.verdict()) {
            (Some(e), _) => (e.clone(), Tone::Bad),
            (None, Verdict::AsIntended) => ("OK".into(), Tone::Good),
            (None, _) => ("NOT OK".into(), Tone::Bad),
        };
        nodes.row(vec![
            (n.node.clone(), Tone::Plain),
            yes(n.keepalived_running),
            yes(n.agent_running),
            verdict,
        ]);
    }
    for line in nodes.lines(0) {
        out.line(&line);
    }
    let mut groups = Table::new(&["GROUP", "ACTIVE ON", "ALARM"]);
    for g in &status.groups {
        groups.row(vec![
            (g.name.clone(), Tone::Plain),
            (
                if g.active_on.is_empty() {
                    "-".into()
                } else {
                    g.active_on.join(", ")
                },
                Tone::Plain,
            ),
            match &g.alarm {
                Some(a) => (a.clone(), Tone::Bad),
                None => ("".into(), Tone::Plain),
            },
        ]);
    }
    out.blank();
    for line in groups.lines(0) {
        out.line(&line);
    }
    for n in &status.nodes {
        out.blank();
        if n.error.is_some() && n.groups.is_empty() {
            // Nothing was read from it: only why.
            out.wrapped(
                &Line::of(&format!("node {}: ", n.node), Tone::Plain),
                n.error.as_deref().unwrap_or_default(),
                Tone::Bad,
                4,
            );
        } else {
            node::section(n, view, &mut out);
        }
    }
    if status.verdict() == Verdict::AsIntended {
        out.blank();
        out.line(&Line::of("everything is as intended", Tone::Good));
    }
    out.finish()
}
