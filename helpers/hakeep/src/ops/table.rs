//! Aligned text tables, with colour only on a terminal.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
}

pub struct Table {
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            rows: vec![header
                .iter()
                .map(|h| (h.to_string(), Tone::Plain))
                .collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Tone)>) {
        self.rows.push(cells);
    }

    pub fn render(&self, colour: bool) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|(s, _)| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, (text, tone)) in row.iter().enumerate() {
                let pad = widths[c].saturating_sub(text.chars().count());
                let last = c + 1 == row.len();
                line.push_str(&paint(text, *tone, colour));
                if !last {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["GROUP", "STATE"]);
        t.row(vec![
            ("nfs".into(), Tone::Good),
            ("active".into(), Tone::Plain),
        ]);
        t.row(vec![
            ("database".into(), Tone::Bad),
            ("standby".into(), Tone::Plain),
        ]);
        assert_eq!(
            t.render(false),
            "GROUP     STATE\nnfs       active\ndatabase  standby\n"
        );
        assert!(t.render(true).contains("\x1b[32mnfs\x1b[0m"));
    }
}
