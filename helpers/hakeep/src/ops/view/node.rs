//! `hakeep status` of one node: whether keepalived and the agent run, what is wrong with
//! the node, then its groups (group.rs), their lines aligned as one table.

use crate::ops::status::{NodeStatus, Verdict};
use crate::runtime::state::QuorumState;

use super::group::{self, ItemColumns};
use super::line::{Line, Out, Tone};
use super::table::Table;
use super::View;

/// Where the node's wrapped free text continues when it cannot continue under itself.
const HANG: usize = 4;

/// The whole output: the node's section, then the verdict when all is as intended.
pub fn render(status: &NodeStatus, view: &View) -> String {
    let mut out = view.out();
    section(status, view, &mut out);
    if status.verdict() == Verdict::AsIntended {
        out.line(&Line::of("everything is as intended", Tone::Good));
    }
    out.finish()
}

/// The node's header, what is wrong with it, and its groups.
pub fn section(status: &NodeStatus, view: &View, out: &mut Out) {
    out.fields(&header(status), 3, 2);
    if let Some(error) = &status.error {
        out.wrapped(&Line::of("error: ", Tone::Bad), error, Tone::Bad, HANG);
    }
    for problem in &status.problems {
        out.wrapped(&Line::of("problem: ", Tone::Bad), problem, Tone::Bad, HANG);
    }
    if let Some(q) = &status.quorum {
        let tone = if q.quorate { Tone::Plain } else { Tone::Bad };
        out.wrapped(&Line::of("quorum: ", tone), &quorum_text(q), tone, HANG);
    }
    if status.groups.is_empty() {
        return;
    }
    let mut table = Table::new(&[
        "GROUP",
        "VRRP",
        "DESIRED",
        "ACTUAL",
        "STATUS",
        "LAST TRANSITION",
    ]);
    for g in &status.groups {
        table.row(group::cells(g, view));
    }
    let lines = table.lines(0);
    out.line(&lines[0]);
    let columns = ItemColumns::of(&status.groups, view.width);
    for (g, line) in status.groups.iter().zip(&lines[1..]) {
        out.line(line);
        group::items(g, view, &columns, out);
    }
}

/// `node nfs1 (cluster lab)`, `keepalived: running`, `agent: running`, maintenance.
fn header(status: &NodeStatus) -> Vec<Line> {
    let running = |what: &str, yes: bool| {
        let mut line = Line::of(&format!("{what}: "), Tone::Plain);
        if yes {
            line.push("running", Tone::Good);
        } else {
            line.push("NOT RUNNING", Tone::Bad);
        }
        line
    };
    let mut fields = vec![
        Line::of(
            &format!("node {} (cluster {})", status.node, status.cluster),
            Tone::Plain,
        ),
        running("keepalived", status.keepalived_running),
        running("agent", status.agent_running),
    ];
    if let Some(q) = &status.quorum {
        let mut line = Line::of("quorum: ", Tone::Plain);
        if q.quorate {
            line.push("quorate", Tone::Good);
        } else {
            line.push("NOT QUORATE", Tone::Bad);
        }
        fields.push(line);
    }
    if status.maintenance {
        fields.push(Line::of("MAINTENANCE: the agent does not act", Tone::Warn));
    }
    fields
}

/// `members s1, s2; 2 of 3 votes needed; qdevice alive, voting; link 0 to s2 up`, and
/// why the node is not quorate.
fn quorum_text(q: &QuorumState) -> String {
    let mut parts = Vec::new();
    if !q.detail.is_empty() {
        parts.push(q.detail.clone());
    }
    if q.connected {
        parts.push(format!("members {}", q.members.join(", ")));
    }
    if let (Some(needed), Some(expected)) = (q.quorum_votes, q.expected_votes) {
        parts.push(format!("{needed} of {expected} votes needed"));
    }
    if let Some(d) = &q.qdevice {
        let mut state = vec![if d.alive { "alive" } else { "NOT ALIVE" }];
        state.push(if d.cast_vote {
            "voting for us"
        } else {
            "not voting for us"
        });
        parts.push(format!("qdevice {}", state.join(", ")));
    }
    for l in &q.links {
        parts.push(format!(
            "link {} to {} {}",
            l.link,
            l.peer,
            if l.connected { "up" } else { "DOWN" }
        ));
    }
    parts.join("; ")
}
