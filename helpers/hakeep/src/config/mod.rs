//! cluster.yml: loading, the typed model, and validation with positions.

mod diagnostic;
mod model;
mod monitoring;
mod parse;
mod quorum;
mod reader;
mod scan;
pub mod syntax;
pub mod trust;
mod validate;

use std::path::Path;

use marked_yaml::{LoadError, LoaderOptions};

pub use diagnostic::{ConfigError, Diagnostic, Pos};
pub use model::*;
pub use quorum::two_node_quorum;

/// Default location of the cluster file on a node.
pub const DEFAULT_PATH: &str = "/etc/hakeep/cluster.yml";

/// Reads and validates a cluster file.
pub fn load(path: &Path) -> Result<Cluster, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    // One byte past the limit is enough to refuse a file that is too large.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(scan::MAX_BYTES as u64 + 1).read_to_string(&mut text))
        .map_err(read_error)?;
    from_str(&path.display().to_string(), &text)
}

/// Parses and validates cluster.yml text; `file` names it in error messages.
pub fn from_str(file: &str, text: &str) -> Result<Cluster, ConfigError> {
    let invalid = |diagnostics| ConfigError::Invalid {
        file: file.to_string(),
        diagnostics,
    };
    // YAML allows a byte order mark at the start; editors on some systems write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(problem) = scan::check(text) {
        return Err(invalid(vec![problem]));
    }
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let root = marked_yaml::parse_yaml_with_options(0, text, options)
        .map_err(|e| invalid(vec![load_error(&e, text)]))?;
    let mut reader = reader::Reader::default();
    let cluster = parse::cluster(&mut reader, &root);
    validate::cluster(&mut reader, &cluster);
    let mut diagnostics = reader.diagnostics;
    if diagnostics.is_empty() {
        return Ok(cluster);
    }
    diagnostics.sort_by(|a, b| (a.pos, &a.path).cmp(&(b.pos, &b.path)));
    diagnostics.dedup();
    Err(invalid(diagnostics))
}

fn load_error(error: &LoadError, text: &str) -> Diagnostic {
    let at = |m: &marked_yaml::Marker| Pos {
        line: m.line(),
        column: m.column(),
    };
    let (pos, path, message) = match error {
        LoadError::TopLevelMustBeMapping(m) => (
            at(m),
            String::new(),
            "the file must be a YAML mapping".to_string(),
        ),
        LoadError::TopLevelMustBeSequence(m) => (
            at(m),
            String::new(),
            "unexpected top-level list".to_string(),
        ),
        LoadError::UnexpectedAnchor(m) => (
            at(m),
            String::new(),
            "YAML anchors and aliases are not supported".to_string(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            at(m),
            String::new(),
            "mapping keys must be plain values".to_string(),
        ),
        LoadError::UnexpectedTag(m) => (
            at(m),
            String::new(),
            "YAML tags are not supported".to_string(),
        ),
        LoadError::ScanError(m, e) => (
            at(m),
            String::new(),
            format!("YAML syntax error: {}", e.info()),
        ),
        LoadError::DuplicateKey(dup) => {
            let first = dup.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            let pos = dup.key.span().start().map(at).unwrap_or_default();
            (
                pos,
                scan::key_path_at(text, pos.line).unwrap_or_else(|| dup.key.as_str().to_string()),
                format!("duplicate key (first defined on line {first})"),
            )
        }
    };
    Diagnostic { pos, path, message }
}
