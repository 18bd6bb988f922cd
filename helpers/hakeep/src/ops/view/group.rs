//! One group in `hakeep status`: the cells of its line (VRRP state, desired and actual, its
//! markers, how long ago it changed), and under it an indented line per thing wrong, per
//! resource and per floating IP, then its last transition and the transition's steps.

use crate::ops::status::GroupStatus;
use crate::runtime::holds::HoldKind;
use crate::runtime::state::{Fault, Transition};

use super::line::{Line, Out, Tone};
use super::text;
use super::View;

/// Where a group's lines start.
const ITEM: &str = "  ";
/// Where their wrapped free text continues when it cannot continue under itself.
const HANG: usize = 4;
/// Resource ids longer than this do not widen the column for the others.
const ID_COLUMN_MAX: usize = 64;

/// The group's line: name, VRRP state, desired, actual, markers, last change.
pub fn cells(g: &GroupStatus, view: &View) -> Vec<(String, Tone)> {
    let s = &g.state;
    let actual_tone = if s.actual == s.desired {
        Tone::Plain
    } else {
        Tone::Bad
    };
    // How long ago; when, in the zone, on the group's `last transition:` line.
    let last = s
        .last_transition
        .as_ref()
        .and_then(|t| view.clock.age(&t.started))
        .unwrap_or_else(|| "-".to_string());
    vec![
        (g.name.clone(), Tone::Plain),
        (s.vrrp_state.to_string(), Tone::Plain),
        (s.desired.clone(), Tone::Plain),
        (s.actual.clone(), actual_tone),
        markers(g),
        (last, Tone::Plain),
    ]
}

/// OK, or what the group is: FAILED, MAINTENANCE, RELEASED (by the operator), FAULT or
/// FENCED (held out), and NOT OK when none of these says it is not as intended.
pub fn markers(g: &GroupStatus) -> (String, Tone) {
    let s = &g.state;
    let mut words = Vec::new();
    let mut tone = Tone::Good;
    if s.failed.is_some() {
        words.push("FAILED");
        tone = worst(tone, Tone::Bad);
    }
    if s.maintenance {
        words.push("MAINTENANCE");
        tone = worst(tone, Tone::Warn);
    }
    if let Some(f) = &s.fault {
        let (word, t) = hold_marker(f);
        words.push(word);
        tone = worst(tone, t);
    }
    if !g.ok && tone != Tone::Bad {
        words.push("NOT OK");
        tone = Tone::Bad;
    }
    if words.is_empty() {
        words.push("OK");
    }
    (words.join(" "), tone)
}

fn worst(a: Tone, b: Tone) -> Tone {
    let rank = |t: Tone| match t {
        Tone::Plain | Tone::Good => 0,
        Tone::Warn => 1,
        Tone::Bad => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn hold_marker(f: &Fault) -> (&'static str, Tone) {
    if f.by_operator {
        ("RELEASED", Tone::Warn)
    } else if f.kind == HoldKind::Fence {
        ("FENCED", Tone::Bad)
    } else {
        ("FAULT", Tone::Bad)
    }
}

/// The widths of a group's item lines, shared by every group of the node.
pub struct ItemColumns {
    id: usize,
    state: usize,
    width: Option<usize>,
}

impl ItemColumns {
    pub fn of(groups: &[GroupStatus], width: Option<usize>) -> ItemColumns {
        let states = groups.iter().flat_map(|g| {
            let s = &g.state;
            s.resources
                .iter()
                .map(|r| (text::columns(&r.id), r.observed.len()))
                .chain(s.floating_ips.iter().map(|ip| {
                    (
                        text::columns(&ip_id(&ip.address)),
                        ip_state(ip.present).len(),
                    )
                }))
        });
        let (mut id, mut state) = (0, 0);
        for (i, s) in states {
            if i <= ID_COLUMN_MAX {
                id = id.max(i);
            }
            state = state.max(s);
        }
        // The column leaves room for the longest state on the line.
        let id = match width {
            Some(w) => id.min(w.saturating_sub(ITEM.len() + 2 + state)),
            None => id,
        };
        ItemColumns { id, state, width }
    }

    /// `  ID  STATE  `: the id padded (cut with an ellipsis when the line has no room for
    /// it and its state), the state in its tone, room for an error after it.
    fn head(&self, id: &str, state: &str, tone: Tone) -> Line {
        let id = match self.width {
            Some(w) => text::truncate(id, w.saturating_sub(ITEM.len() + 2 + state.len()).max(8)),
            None => id.to_string(),
        };
        let pad = self.id.saturating_sub(text::columns(&id));
        let mut line = Line::of(ITEM, Tone::Plain);
        line.plain(&id)
            .plain(&" ".repeat(pad + 2))
            .push(state, tone)
            .plain(&" ".repeat(self.state.saturating_sub(state.len()) + 2));
        line
    }
}

fn ip_id(address: &str) -> String {
    format!("ip:{address}")
}

fn ip_state(present: bool) -> &'static str {
    if present {
        "present"
    } else {
        "absent"
    }
}

/// A group's indented lines: what is wrong, its resources, its floating IPs, its last
/// transition.
pub fn items(g: &GroupStatus, view: &View, columns: &ItemColumns, out: &mut Out) {
    let s = &g.state;
    let head = |label: &str, tone: Tone| {
        let mut line = Line::of(ITEM, Tone::Plain);
        line.push(label, tone);
        line
    };
    if let Some(failed) = &s.failed {
        out.wrapped(&head("FAILED: ", Tone::Bad), failed, Tone::Bad, HANG);
    }
    if let Some(f) = &s.fault {
        let (_, tone) = hold_marker(f);
        out.wrapped(&head("hold: ", tone), &hold_text(f, view), tone, HANG);
    }
    for p in &s.problems {
        out.wrapped(&head("problem: ", Tone::Bad), p, Tone::Bad, HANG);
    }
    if let Some(wait) = &s.fence_wait {
        out.wrapped(&head("fence wait: ", Tone::Warn), wait, Tone::Warn, HANG);
    }
    if let Some(fencing) = &s.fencing {
        let tone = if fencing == "none" {
            Tone::Warn
        } else {
            Tone::Plain
        };
        out.line(&columns.head("fencing", fencing, tone));
    }
    let active = s.desired == "active";
    for r in &s.resources {
        let wrong = match r.observed.as_str() {
            "active" => !active,
            "n/a" => false,
            _ => active,
        };
        let tone = if r.error.is_some() || wrong {
            Tone::Bad
        } else {
            Tone::Plain
        };
        let line = columns.head(&r.id, &r.observed, tone);
        match &r.error {
            Some(e) => out.wrapped(&line, e, Tone::Bad, HANG),
            None => out.line(&line),
        }
    }
    for ip in &s.floating_ips {
        let tone = if ip.present == active {
            Tone::Plain
        } else {
            Tone::Bad
        };
        out.line(&columns.head(&ip_id(&ip.address), ip_state(ip.present), tone));
    }
    if let Some(t) = &s.last_transition {
        let tone = if matches!(t.result.as_str(), "ok" | "unchanged") {
            Tone::Plain
        } else {
            Tone::Bad
        };
        let when = format!(
            "{} to {} ({}), {} ms, {}",
            when(view, &t.started),
            t.to,
            t.trigger,
            t.duration_ms,
            t.result
        );
        out.wrapped(&head("last transition: ", Tone::Plain), &when, tone, HANG);
        if !t.steps.is_empty() {
            out.wrapped(
                &head("  steps: ", Tone::Plain),
                &steps_text(t),
                Tone::Plain,
                HANG,
            );
        }
    }
}

/// `fault since …, until … (in 1 min 40 s): reason`.
fn hold_text(f: &Fault, view: &View) -> String {
    let what = if f.by_operator {
        "released by the operator"
    } else if f.kind == HoldKind::Fence {
        "fenced (another node took the storage)"
    } else {
        "fault"
    };
    format!(
        "{what} since {}, until {}: {}",
        text::unbroken(&view.clock.absolute(&f.since)),
        when(view, &f.hold_down_until),
        f.reason
    )
}

/// `2026-12-03 17:42:10 UTC (12 s ago)`, each part kept on one line.
fn when(view: &View, stamp: &str) -> String {
    match view.clock.age(stamp) {
        Some(age) => format!(
            "{} ({})",
            text::unbroken(&view.clock.absolute(stamp)),
            text::unbroken(&age)
        ),
        None => stamp.to_string(),
    }
}

/// `take mount:/srv/nfs 4 ms; take service:nfs-server.service 190 ms FAILED (why)`.
fn steps_text(t: &Transition) -> String {
    let steps: Vec<String> = t
        .steps
        .iter()
        .map(|st| {
            let mut step = format!("{} {} {} ms", st.action, st.resource, st.duration_ms);
            if !st.ok {
                step.push_str(" FAILED");
                if let Some(e) = &st.error {
                    step.push_str(&format!(" ({e})"));
                }
            }
            step
        })
        .collect();
    steps.join("; ")
}
