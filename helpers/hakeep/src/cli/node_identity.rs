//! Who this node is: `--node`, else `HAKEEP_NODE`, else the node file the role writes
//! (/etc/hakeep/node), else the short hostname. Every command that acts as a node names
//! the source when the name is not one of the cluster's nodes.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Cluster;

/// Where the role records the node's cluster name (docs/configuration.md).
pub const NODE_FILE: &str = "/etc/hakeep/node";
/// Longer than any valid node name: a node file beyond this is not one.
const MAX_NODE_FILE_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File(PathBuf),
    Hostname,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "--node"),
            Source::Env => write!(f, "HAKEEP_NODE"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Hostname => write!(f, "the short hostname"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    pub source: Source,
}

/// Why a node name could not be settled (exit 2: the command cannot tell).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{file}: {why} (it names this host's node in the cluster; fix or remove it)")]
    BadFile { file: PathBuf, why: String },
    #[error(
        "this host is node {name:?} (from {from}), which cluster {cluster:?} does not list \
         (its nodes: {nodes}); set this host's name in {NODE_FILE}, HAKEEP_NODE or --node"
    )]
    NotInCluster {
        name: String,
        from: Source,
        cluster: String,
        nodes: String,
    },
}

/// The node name from the command line, the environment, the node file or the hostname.
pub fn resolve(flag: Option<String>) -> Result<NodeIdentity, IdentityError> {
    resolve_from(
        flag,
        std::env::var("HAKEEP_NODE").ok(),
        Path::new(NODE_FILE),
        super::short_hostname,
    )
}

/// `resolve` with its inputs given (tests).
pub fn resolve_from(
    flag: Option<String>,
    env: Option<String>,
    node_file: &Path,
    hostname: impl FnOnce() -> String,
) -> Result<NodeIdentity, IdentityError> {
    let given = |name: String, source| NodeIdentity { name, source };
    if let Some(name) = flag.filter(|n| !n.is_empty()) {
        return Ok(given(name, Source::Flag));
    }
    if let Some(name) = env.filter(|n| !n.is_empty()) {
        return Ok(given(name, Source::Env));
    }
    if let Some(name) = read_node_file(node_file)? {
        return Ok(given(name, Source::File(node_file.to_path_buf())));
    }
    Ok(given(hostname(), Source::Hostname))
}

/// The node file's one name, or None when there is no file. Root acts on it, so it must be
/// a regular file (not through a symlink) that only root (or the caller) can write.
fn read_node_file(path: &Path) -> Result<Option<String>, IdentityError> {
    let bad = |why: String| IdentityError::BadFile {
        file: path.to_path_buf(),
        why,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot open: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| bad(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(bad(format!("owned by uid {}, not root", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "mode {:04o} lets others write it",
            meta.mode() & 0o7777
        )));
    }
    let mut text = String::new();
    file.take(MAX_NODE_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_NODE_FILE_BYTES {
        return Err(bad("longer than a node name can be".into()));
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match lines.as_slice() {
        [name] => match crate::config::syntax::name(name) {
            Ok(()) => Ok(Some((*name).to_string())),
            Err(why) => Err(bad(format!(
                "{:?} is not a node name: it {why}",
                name.chars().take(64).collect::<String>()
            ))),
        },
        [] => Err(bad("holds no node name".into())),
        _ => Err(bad("holds more than one line".into())),
    }
}

impl NodeIdentity {
    /// The name, when the cluster lists it as a node.
    pub fn in_cluster(self, cluster: &Cluster) -> Result<String, IdentityError> {
        if cluster.node(&self.name).is_some() {
            return Ok(self.name);
        }
        Err(IdentityError::NotInCluster {
            nodes: cluster
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            cluster: cluster.name.clone(),
            name: self.name,
            from: self.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn host() -> String {
        "myhost".into()
    }

    #[test]
    fn flag_wins_over_env_file_and_hostname() {
        let (_d, f) = file_with("s1\n", 0o644);
        let id = resolve_from(Some("a".into()), Some("b".into()), &f, host).unwrap();
        assert_eq!((id.name.as_str(), id.source), ("a", Source::Flag));
        let id = resolve_from(None, Some("b".into()), &f, host).unwrap();
        assert_eq!((id.name.as_str(), id.source), ("b", Source::Env));
        let id = resolve_from(None, None, &f, host).unwrap();
        assert_eq!(
            (id.name.as_str(), id.source),
            ("s1", Source::File(f.clone()))
        );
    }

    #[test]
    fn no_file_means_the_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let id = resolve_from(None, Some(String::new()), &dir.path().join("node"), host).unwrap();
        assert_eq!((id.name.as_str(), id.source), ("myhost", Source::Hostname));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let (_d, f) = file_with("# written by the hakeep role\n\n  nfs-1 \n", 0o644);
        assert_eq!(resolve_from(None, None, &f, host).unwrap().name, "nfs-1");
    }

    #[test]
    fn a_bad_node_file_is_an_error_naming_it() {
        for (text, mode, why) in [
            ("s1\n", 0o666, "lets others write"),
            ("s1\ns2\n", 0o644, "more than one line"),
            ("\n# nothing\n", 0o644, "no node name"),
            ("s 1\n", 0o644, "not a node name"),
        ] {
            let (_d, f) = file_with(text, mode);
            let err = resolve_from(None, None, &f, host).unwrap_err().to_string();
            assert!(err.contains(&f.display().to_string()), "{err}");
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_symlinked_node_file_is_refused() {
        let (d, f) = file_with("s1\n", 0o644);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let err = resolve_from(None, None, &link, host)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot open"), "{err}");
    }

    #[test]
    fn not_in_cluster_names_the_name_its_source_and_the_nodes() {
        let cluster = crate::config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/nfs-active-passive.yml"
        )))
        .unwrap();
        let id = NodeIdentity {
            name: "web01.example.com".into(),
            source: Source::Hostname,
        };
        let err = id.in_cluster(&cluster).unwrap_err().to_string();
        for part in ["\"web01.example.com\"", "the short hostname", "its nodes: "] {
            assert!(err.contains(part), "{err}");
        }
        let first = cluster.nodes[0].name.clone();
        let id = NodeIdentity {
            name: first.clone(),
            source: Source::Env,
        };
        assert_eq!(id.in_cluster(&cluster).unwrap(), first);
    }
}
