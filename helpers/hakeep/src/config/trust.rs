//! Whether the files the agent runs as root can only have been written by root: the
//! cluster file, the resource scripts, the check commands and the alert programs. Anyone who can rewrite one
//! of them, or a directory on its way, can make root run anything.
//!
//! A path is trusted when every directory on its way (symlinks resolved) and the file
//! itself are owned by root and not writable by group or others. A directory writable by
//! others is accepted only with the sticky bit (like /var/tmp) when what lies in it is
//! root's: there nobody else can rename or delete root's entry. Every symlink on the way
//! must be root's too. The agent refuses to start on an untrusted path; `hakeep validate`
//! prints a warning (it also runs on files that are not installed yet).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::model::{CheckKind, Cluster, Service};

/// Every path of `cluster` (read from `file`) that root would trust wrongly, with why.
pub fn untrusted(file: &Path, cluster: &Cluster) -> Vec<String> {
    let mut paths: Vec<PathBuf> = vec![file.to_path_buf()];
    for group in &cluster.groups {
        for service in &group.services {
            if let Service::Script { path, .. } = service {
                paths.push(path.clone());
            }
        }
        for check in &group.checks {
            if let CheckKind::Command(argv) = &check.kind {
                if let Some(program) = argv.first() {
                    paths.push(PathBuf::from(program));
                }
            }
        }
    }
    paths.extend(cluster.alerts.iter().map(|a| a.program.clone()));
    paths.sort();
    paths.dedup();
    paths
        .iter()
        .filter_map(|p| check(p).err().map(|why| format!("{}: {why}", p.display())))
        .collect()
}

/// Ok when `path` can only have been written by root.
pub fn check(path: &Path) -> Result<(), String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("current directory: {e}"))?
            .join(path)
    };
    symlinks_are_roots(&absolute)?;
    let real = std::fs::canonicalize(&absolute).map_err(|e| format!("cannot resolve it: {e}"))?;
    let mut ancestors: Vec<&Path> = real.ancestors().collect();
    ancestors.reverse();
    for (i, dir) in ancestors.iter().enumerate() {
        let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let what = if i + 1 == ancestors.len() {
            "it"
        } else {
            "its directory"
        };
        if meta.uid() != 0 {
            return Err(format!(
                "{what} {} is owned by uid {}, not root",
                dir.display(),
                meta.uid()
            ));
        }
        let writable_by_others = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        if writable_by_others && !(meta.is_dir() && sticky && i + 1 < ancestors.len()) {
            return Err(format!(
                "{what} {} is writable by group or others (mode {:o}): make it root's alone",
                dir.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// Every symlink on the way to `path` (as written) must be root's.
fn symlinks_are_roots(path: &Path) -> Result<(), String> {
    let mut prefix = PathBuf::new();
    for component in path.components() {
        prefix.push(component);
        if let Ok(meta) = std::fs::symlink_metadata(&prefix) {
            if meta.file_type().is_symlink() && meta.uid() != 0 {
                return Err(format!(
                    "{} is a symlink owned by uid {}, not root",
                    prefix.display(),
                    meta.uid()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn only_roots_files_in_roots_directories_are_trusted() {
        if !is_root() {
            eprintln!("skipped: needs root (chown)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("script");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        check(&file).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(check(&file)
            .unwrap_err()
            .contains("writable by group or others"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();

        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        assert!(check(&file).unwrap_err().contains("uid 65534"));
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();

        // A world-writable directory without the sticky bit: anyone can swap the file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check(&file).unwrap_err().contains("its directory"));
        // With the sticky bit (as /tmp), root's file in it cannot be swapped.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        check(&file).unwrap();

        // Another user's symlink to root's file.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        assert!(check(&link)
            .unwrap_err()
            .contains("symlink owned by uid 65534"));
    }
}
