//! Aligned columns: every cell padded to its column's widest, two spaces between.

use super::line::{Line, Tone};
use super::text;

pub struct Table {
    rows: Vec<Vec<(String, Tone)>>,
}

impl Table {
    /// A table whose first row is `header` (none: no header row).
    pub fn new(header: &[&str]) -> Self {
        let mut table = Table { rows: Vec::new() };
        if !header.is_empty() {
            table.row(
                header
                    .iter()
                    .map(|h| (h.to_string(), Tone::Plain))
                    .collect(),
            );
        }
        table
    }

    pub fn row(&mut self, cells: Vec<(String, Tone)>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|(t, tone)| (text::one_line(&t), tone))
                .collect(),
        );
    }

    /// Each row as a line, `indent` spaces in.
    pub fn lines(&self, indent: usize) -> Vec<Line> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|(s, _)| text::columns(s))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.rows
            .iter()
            .map(|row| {
                let mut line = Line::new();
                line.plain(&" ".repeat(indent));
                for (c, (cell, tone)) in row.iter().enumerate() {
                    line.push(cell, *tone);
                    if c + 1 < row.len() {
                        let pad = widths[c].saturating_sub(text::columns(cell));
                        line.plain(&" ".repeat(pad + 2));
                    }
                }
                line
            })
            .collect()
    }
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
        let painted: Vec<String> = t.lines(0).iter().map(|l| l.paint(false)).collect();
        assert_eq!(
            painted,
            ["GROUP     STATE", "nfs       active", "database  standby"]
        );
        assert!(t.lines(2)[1]
            .paint(true)
            .starts_with("  \x1b[32mnfs\x1b[0m"));
    }

    #[test]
    fn wide_characters_align_by_columns() {
        let mut t = Table::new(&[]);
        t.row(vec![
            ("日本".into(), Tone::Plain),
            ("x".into(), Tone::Plain),
        ]);
        t.row(vec![
            ("abcde".into(), Tone::Plain),
            ("y".into(), Tone::Plain),
        ]);
        let painted: Vec<String> = t.lines(0).iter().map(|l| l.paint(false)).collect();
        assert_eq!(painted, ["日本   x", "abcde  y"]);
    }
}
