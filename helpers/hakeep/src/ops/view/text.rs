//! Plain text measured in terminal columns: one line of it, cut with an ellipsis, or
//! wrapped at spaces.

use unicode_width::UnicodeWidthChar;

pub const ELLIPSIS: char = '…';
/// A space that wrapping does not break at; printed as a plain space.
pub const NBSP: char = '\u{a0}';

/// The text with its spaces made unbreakable (a time and its zone stay on one line).
pub fn unbroken(text: &str) -> String {
    text.replace(' ', &NBSP.to_string())
}

/// The text on one line: control characters (a script's newlines and tabs, an escape
/// sequence in an error message) become spaces, so nothing but hakeep's own colours
/// reaches the terminal and every item stays on its own lines.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Columns a character takes (0 for a combining mark).
fn columns_of(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Columns the text takes on a terminal.
pub fn columns(text: &str) -> usize {
    text.chars().map(columns_of).sum()
}

/// The longest start of `text` that takes at most `max` columns.
pub fn take(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += columns_of(c);
        if used > max {
            return &text[..at];
        }
    }
    text
}

/// At most `max` columns: the text as it is when it fits, else cut with an ellipsis as
/// its last column.
pub fn truncate(text: &str, max: usize) -> String {
    if columns(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    format!("{}{ELLIPSIS}", take(text, max - 1).trim_end())
}

/// Units that stay on the line of the number before them (`30 s`, `412 ms`).
const UNITS: &[&str] = &["s", "ms", "min", "h", "d"];

/// The words of `text`, a number and its unit as one.
fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| c.is_whitespace() && c != NBSP)
        .filter(|w| !w.is_empty())
    {
        match words.last_mut() {
            Some(last)
                if UNITS.contains(&word.trim_end_matches(|c: char| c.is_ascii_punctuation()))
                    && last.ends_with(|c: char| c.is_ascii_digit()) =>
            {
                last.push(' ');
                last.push_str(word);
            }
            _ => words.push(word.to_string()),
        }
    }
    words
}

/// The text in lines of at most `first` columns for the first line and `rest` for the
/// others, broken at spaces but never at an NBSP nor between a number and its unit; a
/// word longer than a line is broken inside (nothing is lost). Runs of spaces count as
/// one. Always at least one line.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let room = |lines: &Vec<String>| if lines.is_empty() { first } else { rest }.max(1);
    for word in words(text) {
        let mut word = word.as_str();
        loop {
            let gap = usize::from(!line.is_empty());
            if columns(&line) + gap + columns(word) <= room(&lines) {
                if gap == 1 {
                    line.push(' ');
                }
                line.push_str(word);
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a whole line: as much of it as fits, the rest next.
            let mut head = take(word, room(&lines));
            if head.is_empty() {
                head = &word[..word.chars().next().map_or(0, char::len_utf8)];
            }
            lines.push(head.to_string());
            word = &word[head.len()..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(one_line("a\nb\tc\x1b[31m"), "a b c [31m");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(columns("abc"), 3);
        assert_eq!(columns("日本"), 4);
        assert_eq!(columns("e\u{301}"), 1);
        assert_eq!(take("日本語", 5), "日本");
    }

    #[test]
    fn truncation_ends_in_an_ellipsis_within_the_width() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly10!", 10), "exactly10!");
        assert_eq!(truncate("one two three", 8), "one two…");
        assert_eq!(truncate("日本語テキスト", 6), "日本…");
        assert_eq!(columns(&truncate("日本語テキスト", 6)), 5);
        assert_eq!(truncate("abc", 1), "…");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_keeps_every_word() {
        let text = "the release of mount:/srv/nfs failed: target is busy (umount exit 32)";
        let lines = wrap(text, 20, 30);
        assert_eq!(
            lines,
            [
                "the release of",
                "mount:/srv/nfs failed: target",
                "is busy (umount exit 32)"
            ]
        );
        assert!(columns(&lines[0]) <= 20 && lines[1..].iter().all(|l| columns(l) <= 30));
        assert_eq!(lines.join(" "), text);
    }

    #[test]
    fn a_number_keeps_its_unit() {
        assert_eq!(
            wrap("timed out after 5 s, took 412 ms)", 17, 17),
            ["timed out after", "5 s, took 412 ms)"]
        );
        assert_eq!(wrap("retry in 30 s", 11, 11), ["retry in", "30 s"]);
        assert_eq!(wrap("a s b", 1, 1), ["a", "s", "b"]);
        let at = format!("until {}", unbroken("2026-12-03 17:44:02 UTC"));
        assert_eq!(
            wrap(&at, 20, 30),
            ["until", &unbroken("2026-12-03 17:44:02 UTC")]
        );
    }

    #[test]
    fn a_word_longer_than_a_line_is_broken_inside_it() {
        let lines = wrap("id volume:iscsi:iqn.2026-11.org.example:nfs:1 ok", 10, 10);
        assert_eq!(
            lines,
            [
                "id",
                "volume:isc",
                "si:iqn.202",
                "6-11.org.e",
                "xample:nfs",
                ":1 ok"
            ]
        );
        assert_eq!(wrap("", 10, 10), [""]);
        assert_eq!(wrap("abc", 0, 0), ["a", "b", "c"]);
    }
}
