//! Walks a marked YAML tree: typed access that records every problem with its
//! position and field path, and remembers where each field was for later checks.

use std::collections::HashMap;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{Node, Span};

use super::diagnostic::{Diagnostic, Pos};

/// A field path such as `groups.nfs.ips[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    pub fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(key.to_string())
        } else {
            FieldPath(format!("{}.{key}", self.0))
        }
    }

    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn pos_of(span: &Span) -> Pos {
    span.start()
        .map(|m| Pos {
            line: m.line(),
            column: m.column(),
        })
        .unwrap_or_default()
}

/// Collects diagnostics and field positions while a document is read.
#[derive(Debug, Default)]
pub struct Reader {
    pub diagnostics: Vec<Diagnostic>,
    positions: HashMap<String, Pos>,
}

impl Reader {
    pub fn error(&mut self, pos: Pos, path: &FieldPath, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            pos,
            path: path.as_str().to_string(),
            message: message.into(),
        });
    }

    /// Where `path` was in the file; falls back to the nearest recorded parent.
    pub fn position(&self, path: &str) -> Pos {
        let mut candidate = path;
        loop {
            if let Some(pos) = self.positions.get(candidate) {
                return *pos;
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate = &candidate[..cut],
                None => return Pos { line: 1, column: 1 },
            }
        }
    }

    /// True when a diagnostic was already recorded at or below `path`.
    pub fn has_error_under(&self, path: &str) -> bool {
        self.diagnostics.iter().any(|d| {
            d.path == path
                || d.path
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    /// Records where `path` is; the first record wins, so an entry keeps its key's place.
    pub fn remember_at(&mut self, path: &FieldPath, pos: Pos) {
        self.positions
            .entry(path.as_str().to_string())
            .or_insert(pos);
    }

    fn remember(&mut self, path: &FieldPath, node: &Node) {
        self.remember_at(path, pos_of(node.span()));
    }

    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
    ) -> Option<&'n MarkedMappingNode> {
        self.remember(path, node);
        match node {
            Node::Mapping(m) => {
                for key in m.keys() {
                    self.remember_at(&path.key(key.as_str()), pos_of(key.span()));
                }
                Some(m)
            }
            other => {
                self.error(
                    pos_of(other.span()),
                    path,
                    format!("expected a mapping, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn sequence<'n>(
        &mut self,
        node: &'n Node,
        path: &FieldPath,
    ) -> Option<&'n MarkedSequenceNode> {
        self.remember(path, node);
        match node {
            Node::Sequence(s) => Some(s),
            other => {
                self.error(
                    pos_of(other.span()),
                    path,
                    format!("expected a list, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub fn scalar<'n>(&mut self, node: &'n Node, path: &FieldPath) -> Option<&'n MarkedScalarNode> {
        // A value's own place beats its key's: errors about a value point at it.
        self.positions
            .insert(path.as_str().to_string(), pos_of(node.span()));
        match node {
            Node::Scalar(s) => Some(s),
            other => {
                self.error(
                    pos_of(other.span()),
                    path,
                    format!("expected a single value, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// A non-empty string value.
    pub fn string(&mut self, node: &Node, path: &FieldPath) -> Option<String> {
        let scalar = self.scalar(node, path)?;
        if scalar.as_str().is_empty() {
            self.error(pos_of(scalar.span()), path, "must not be empty");
            return None;
        }
        Some(scalar.as_str().to_string())
    }

    pub fn boolean(&mut self, node: &Node, path: &FieldPath) -> Option<bool> {
        let scalar = self.scalar(node, path)?;
        let value = scalar.as_bool();
        if value.is_none() {
            self.error(
                pos_of(scalar.span()),
                path,
                format!(
                    "{} is not true or false",
                    super::diagnostic::quoted(scalar.as_str())
                ),
            );
        }
        value
    }

    /// An unsigned integer within `min..=max`.
    pub fn integer(&mut self, node: &Node, path: &FieldPath, min: u64, max: u64) -> Option<u64> {
        let scalar = self.scalar(node, path)?;
        match scalar.as_str().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.error(
                    pos_of(scalar.span()),
                    path,
                    format!(
                        "{:?} is not a whole number from {min} to {max}",
                        scalar.as_str()
                    ),
                );
                None
            }
        }
    }

    /// Reports keys of `map` that are not in `allowed`, naming the ones that are.
    pub fn reject_unknown_keys(
        &mut self,
        map: &MarkedMappingNode,
        path: &FieldPath,
        allowed: &[&str],
    ) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let suggestion = closest(key.as_str(), allowed)
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                self.error(
                    pos_of(key.span()),
                    &path.key(key.as_str()),
                    format!(
                        "unknown field{suggestion}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// A required field: reports its absence at the mapping's position.
    pub fn required<'n>(
        &mut self,
        map: &'n MarkedMappingNode,
        path: &FieldPath,
        key: &str,
    ) -> Option<&'n Node> {
        let node = map.get_node(key);
        if node.is_none() {
            let pos = self
                .positions
                .get(path.as_str())
                .copied()
                .unwrap_or_else(|| pos_of(map.span()));
            self.error(pos, &path.key(key), "missing required field");
        }
        node
    }
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a single value",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// The allowed key nearest to a typo, when it is close enough to be a likely slip.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
