//! Errors in a cluster file: where (line, column, field path) and what.

use std::fmt;
use std::path::PathBuf;

/// A position in the source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem found in a cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    /// Field path such as `groups.nfs.ips[0].address`; empty for the document itself.
    pub path: String,
    pub message: String,
}

/// The most characters of a value from the file shown in a message: a megabyte of it
/// helps nobody.
pub const MAX_VALUE_SHOWN: usize = 200;
/// The most characters of a whole message or field path, whatever built it.
const MAX_SHOWN: usize = 600;

/// A value from the file as messages quote it: `"text"`, cut to MAX_VALUE_SHOWN.
pub fn quoted(text: &str) -> String {
    format!("{:?}", cut_to(text, MAX_VALUE_SHOWN))
}

fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    cut_to(text, MAX_SHOWN)
}

/// `text`, cut to `limit` characters with a note of how much was left out.
fn cut_to(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(limit) {
        None => text.into(),
        Some((end, _)) => {
            let left = text[end..].chars().count();
            format!("{}... ({left} more characters)", &text[..end]).into()
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = cut(&self.message);
        if self.path.is_empty() {
            write!(f, "{}:{}: {message}", self.pos.line, self.pos.column)
        } else {
            write!(
                f,
                "{}:{}: {}: {message}",
                self.pos.line,
                self.pos.column,
                cut(&self.path)
            )
        }
    }
}

/// Why a cluster file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(file, diagnostics))]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The problems found, empty when the file could not be read at all.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
        }
    }
}

fn render_invalid(file: &str, diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| format!("{file}:{d}")).collect();
    lines.join("\n")
}
