//! Looks at cluster.yml's text before the YAML parser does: its size and nesting depth
//! (the parser recurses per level: a few hundred kilobytes of `- - - -` overflow its
//! stack), and the field path of a line, for messages that the parser gives only a line
//! for (a duplicate key).

use super::diagnostic::{Diagnostic, Pos};

/// The largest cluster file read; real ones are a few kilobytes.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting accepted; cluster.yml needs about six levels.
pub const MAX_DEPTH: usize = 64;

/// A problem with the text as a whole, before any parsing.
pub fn check(text: &str) -> Option<Diagnostic> {
    let at_line = |line: usize, message: String| Diagnostic {
        pos: Pos { line, column: 1 },
        path: String::new(),
        message,
    };
    if text.len() > MAX_BYTES {
        return Some(at_line(
            1,
            format!(
                "the file is {} bytes; a cluster file may have at most {MAX_BYTES}",
                text.len()
            ),
        ));
    }
    let mut indents: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        while indents.last().is_some_and(|&top| top >= indent) {
            indents.pop();
        }
        indents.push(indent);
        let depth = indents.len() + leading_dashes(body);
        if depth > MAX_DEPTH {
            return Some(at_line(
                n + 1,
                format!("nesting deeper than {MAX_DEPTH} levels; a cluster file needs a handful"),
            ));
        }
    }
    None
}

/// How many sequence entries open on this line (`- - - x` opens three).
fn leading_dashes(body: &str) -> usize {
    let mut rest = body;
    let mut n = 0;
    while let Some(after) = rest.strip_prefix('-') {
        if !(after.is_empty() || after.starts_with(' ')) {
            break;
        }
        n += 1;
        rest = after.trim_start_matches(' ');
    }
    n
}

/// The dotted path of the mapping key at `line` (1-based), from the keys of the lines
/// above it with less indentation: `groups.nfs.vrid`. Block style only; `None` when the
/// line holds no plain `key:`.
pub fn key_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let target = lines.get(line.checked_sub(1)?)?;
    let (mut indent, key) = key_of(target)?;
    let mut path = vec![key];
    for above in lines[..line - 1].iter().rev() {
        if let Some((i, k)) = key_of(above) {
            if i < indent {
                path.push(k);
                indent = i;
                if i == 0 {
                    break;
                }
            }
        }
    }
    path.reverse();
    Some(path.join("."))
}

/// The indentation and key of a `key:` line (a `- key:` entry counts its dash as indent).
fn key_of(line: &str) -> Option<(usize, &str)> {
    let body = line.trim_start_matches([' ', '-']);
    let indent = line.len() - body.len();
    let (key, _) = body.split_once(':')?;
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some((indent, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_and_huge_files_are_refused_before_parsing() {
        let deep = format!("nodes:\n  {} x\n", "- ".repeat(MAX_DEPTH + 1));
        let d = check(&deep).expect("too deep");
        assert_eq!(d.pos.line, 2);
        assert!(d.message.contains("nesting"));
        assert!(check(&"#".repeat(MAX_BYTES + 1))
            .unwrap()
            .message
            .contains("bytes"));
        assert!(check("cluster: x\nnodes:\n  n1:\n    address: 10.0.0.1\n").is_none());
    }

    #[test]
    fn the_path_of_a_line_comes_from_the_keys_above() {
        let text = "cluster: c\ngroups:\n  nfs:\n    vrid: 1\n    ips:\n      - address: 10.0.0.1\n    vrid: 2\n";
        assert_eq!(key_path_at(text, 7).as_deref(), Some("groups.nfs.vrid"));
        assert_eq!(key_path_at(text, 1).as_deref(), Some("cluster"));
        assert_eq!(
            key_path_at(text, 6).as_deref(),
            Some("groups.nfs.ips.address")
        );
    }
}
