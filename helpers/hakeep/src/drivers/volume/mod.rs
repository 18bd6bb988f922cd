//! Volumes: shared storage attached, and fenced, before anything is mounted from it.

use std::path::{Path, PathBuf};

use super::Resource;
use crate::config::Volume;

pub mod iscsi;
pub mod none;
pub mod nvmesh;

pub fn for_config(volume: &Volume) -> Box<dyn Resource> {
    match volume {
        Volume::None => Box::new(none::NoVolume),
        Volume::Iscsi(v) => Box::new(iscsi::Iscsi::new(v.clone())),
        Volume::Nvmesh(v) => Box::new(nvmesh::Nvmesh::new(v.clone())),
    }
}

/// `path` (absolute, as the commands see it) looked up under `root`, which tests
/// point at a scratch directory instead of `/`.
fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}
