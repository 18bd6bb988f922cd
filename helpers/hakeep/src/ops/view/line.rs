//! Output lines made of coloured pieces, fitted to a width before they are painted, so
//! colour codes never count as columns.

use std::io::IsTerminal;

use super::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
}

pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    let code = match tone {
        Tone::Plain => return text.to_string(),
        Tone::Good => "32",
        Tone::Bad => "1;31",
        Tone::Warn => "33",
    };
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Colour when stdout is a terminal and NO_COLOR is unset.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// One line of output: pieces of text, each with its tone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pieces: Vec<(String, Tone)>,
}

impl Line {
    pub fn new() -> Line {
        Line::default()
    }

    /// A line of one piece.
    pub fn of(text: &str, tone: Tone) -> Line {
        let mut line = Line::new();
        line.push(text, tone);
        line
    }

    /// Appends a piece (control characters and NBSPs become spaces).
    pub fn push(&mut self, text: &str, tone: Tone) -> &mut Line {
        if !text.is_empty() {
            let text = text::one_line(text).replace(text::NBSP, " ");
            self.pieces.push((text, tone));
        }
        self
    }

    pub fn plain(&mut self, text: &str) -> &mut Line {
        self.push(text, Tone::Plain)
    }

    pub fn columns(&self) -> usize {
        self.pieces.iter().map(|(t, _)| text::columns(t)).sum()
    }

    /// Without trailing spaces (which are never printed).
    fn trimmed(&self) -> Line {
        let mut line = self.clone();
        while let Some((t, _)) = line.pieces.last_mut() {
            let kept = t.trim_end().len();
            t.truncate(kept);
            if !t.is_empty() {
                break;
            }
            line.pieces.pop();
        }
        line
    }

    /// At most `max` columns, cut with an ellipsis (in the tone of the piece it cuts).
    pub fn fit(&self, max: usize) -> Line {
        let trimmed = self.trimmed();
        if trimmed.columns() <= max {
            return self.clone();
        }
        let mut out = Line::new();
        let mut left = max;
        for (piece, tone) in &trimmed.pieces {
            let width = text::columns(piece);
            if width < left {
                out.pieces.push((piece.clone(), *tone));
                left -= width;
            } else {
                out.pieces.push((text::truncate(piece, left), *tone));
                break;
            }
        }
        // A cut at a piece's end leaves the next piece's ellipsis out: add it.
        if !out
            .pieces
            .last()
            .is_some_and(|(t, _)| t.ends_with(text::ELLIPSIS))
        {
            let trimmed = out.columns();
            if let Some((t, _)) = out.pieces.last_mut() {
                if trimmed >= max {
                    let keep = text::take(t, text::columns(t).saturating_sub(1)).to_string();
                    *t = keep;
                }
                t.push(text::ELLIPSIS);
            }
        }
        out
    }

    /// The line as printed, without trailing spaces.
    pub fn paint(&self, colour: bool) -> String {
        let last = self.pieces.iter().rposition(|(t, _)| !t.trim().is_empty());
        let mut out = String::new();
        for (i, (piece, tone)) in self.pieces.iter().enumerate() {
            match last {
                Some(l) if i < l => out.push_str(&paint(piece, *tone, colour)),
                Some(l) if i == l => out.push_str(&paint(piece.trim_end(), *tone, colour)),
                _ => {}
            }
        }
        out
    }
}

/// Lines fitted to a width (none: as long as they are) and painted.
pub struct Out {
    width: Option<usize>,
    colour: bool,
    text: String,
}

/// Free text that does not fit beside its head on one line wraps there only with this
/// many columns beside it (on a narrow terminal: half the width); else it goes below.
const MIN_BESIDE: usize = 40;

impl Out {
    pub fn new(width: Option<usize>, colour: bool) -> Out {
        Out {
            width,
            colour,
            text: String::new(),
        }
    }

    /// A line, cut with an ellipsis when it is too long.
    pub fn line(&mut self, line: &Line) {
        let fitted = match self.width {
            Some(w) => line.fit(w),
            None => line.clone(),
        };
        self.text.push_str(&fitted.paint(self.colour));
        self.text.push('\n');
    }

    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// `head` then `body` (free text: an error, a problem) wrapped to the width, nothing
    /// lost: beside the head, continuing under itself, when it fits on the line or has
    /// room enough there; else on lines of its own below the head, `indent` columns in.
    pub fn wrapped(&mut self, head: &Line, body: &str, tone: Tone, indent: usize) {
        let body = text::one_line(body);
        let Some(width) = self.width else {
            let mut line = head.clone();
            line.push(&body, tone);
            return self.line(&line);
        };
        let start = head.columns();
        let room = width.saturating_sub(start);
        let fits = text::columns(body.trim()) <= room;
        if !fits && room < MIN_BESIDE.min(width / 2) {
            self.line(head);
            let margin = Line::of(&" ".repeat(indent.min(width / 2)), Tone::Plain);
            return self.wrapped(&margin, &body, tone, indent);
        }
        for (i, piece) in text::wrap(&body, room, room).iter().enumerate() {
            let mut line = if i == 0 {
                head.clone()
            } else {
                Line::of(&" ".repeat(start), Tone::Plain)
            };
            line.push(piece, tone);
            self.line(&line);
        }
    }

    /// Fields on a line, `gap` apart, continued on lines `indent` columns in when they do
    /// not fit (a field is cut only when it alone is too long).
    pub fn fields(&mut self, fields: &[Line], gap: usize, indent: usize) {
        let mut line = Line::new();
        let mut first = true;
        for field in fields {
            let joined = line.columns() + gap + field.columns();
            if !first && self.width.is_some_and(|w| joined > w) {
                self.line(&line);
                line = Line::of(&" ".repeat(indent), Tone::Plain);
            } else if !first {
                line.plain(&" ".repeat(gap));
            }
            line.pieces.extend(field.pieces.iter().cloned());
            first = false;
        }
        self.line(&line);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pieces: &[(&str, Tone)]) -> Line {
        let mut l = Line::new();
        for (t, tone) in pieces {
            l.push(t, *tone);
        }
        l
    }

    #[test]
    fn fitting_cuts_with_an_ellipsis_and_colour_takes_no_columns() {
        let l = line(&[
            ("nfs  ", Tone::Plain),
            ("FAILED", Tone::Bad),
            ("  x", Tone::Plain),
        ]);
        assert_eq!(l.fit(20), l);
        assert_eq!(l.fit(8).paint(false), "nfs  FA…");
        assert_eq!(l.fit(8).paint(true), "nfs  \x1b[1;31mFA…\x1b[0m");
        assert_eq!(l.fit(8).columns(), 8);
        // A cut exactly at a piece's end still says something was cut.
        assert_eq!(l.fit(11).paint(false), "nfs  FAILE…");
        assert_eq!(l.fit(12).paint(false), "nfs  FAILED…");
    }

    #[test]
    fn painting_drops_trailing_spaces() {
        let l = line(&[
            ("id      ", Tone::Plain),
            ("active  ", Tone::Good),
            ("", Tone::Plain),
        ]);
        assert_eq!(l.paint(false), "id      active");
    }

    #[test]
    fn wrapped_text_continues_under_itself_within_the_width() {
        let mut out = Out::new(Some(40), false);
        out.wrapped(
            &Line::of("  problem: ", Tone::Plain),
            "floating IP 192.168.56.100/24 is present on a standby node",
            Tone::Bad,
            4,
        );
        assert_eq!(
            out.finish(),
            "  problem: floating IP 192.168.56.100/24\n           is present on a standby node\n"
        );
    }

    #[test]
    fn wrapped_text_goes_below_a_head_that_leaves_too_little_room() {
        let body = "cannot read /proc/self/mountinfo: permission denied";
        let mut out = Out::new(Some(40), false);
        out.wrapped(
            &Line::of("  script:x  bad  ", Tone::Plain),
            body,
            Tone::Bad,
            4,
        );
        out.wrapped(
            &Line::of("  mount:/srv/nfs  unknown  ", Tone::Plain),
            body,
            Tone::Bad,
            4,
        );
        out.wrapped(
            &Line::of("  mount:/srv/nfs  unknown  ", Tone::Plain),
            "busy",
            Tone::Bad,
            4,
        );
        let text = out.finish();
        assert!(text.lines().all(|l| text::columns(l) <= 40), "{text}");
        assert_eq!(
            text,
            "  script:x  bad  cannot read\n                 /proc/self/mountinfo:\n                 permission denied\n\
             \x20 mount:/srv/nfs  unknown\n    cannot read /proc/self/mountinfo:\n    permission denied\n\
             \x20 mount:/srv/nfs  unknown  busy\n"
        );
    }

    #[test]
    fn fields_continue_on_the_next_line_when_they_do_not_fit() {
        let fields = [
            Line::of("node nfs1 (cluster lab)", Tone::Plain),
            Line::of("keepalived: running", Tone::Good),
            Line::of("agent: running", Tone::Good),
        ];
        let mut out = Out::new(Some(50), false);
        out.fields(&fields, 3, 2);
        let mut wide = Out::new(None, false);
        wide.fields(&fields, 3, 2);
        assert_eq!(
            out.finish(),
            "node nfs1 (cluster lab)   keepalived: running\n  agent: running\n"
        );
        assert_eq!(
            wide.finish(),
            "node nfs1 (cluster lab)   keepalived: running   agent: running\n"
        );
    }

    #[test]
    fn without_a_width_nothing_is_cut_or_wrapped() {
        let mut out = Out::new(None, false);
        let long = "x".repeat(300);
        out.wrapped(&Line::of("  error: ", Tone::Plain), &long, Tone::Bad, 4);
        out.line(&Line::of(&long, Tone::Plain));
        assert_eq!(out.finish(), format!("  error: {long}\n{long}\n"));
    }
}
