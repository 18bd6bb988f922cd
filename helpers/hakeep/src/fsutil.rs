//! Writing files the way a config manager needs: atomic, with a mode, and honest about
//! whether anything changed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `contents` (temp file in the same directory, fsync, rename).
/// Returns false, touching nothing, when the file already holds exactly that with `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<bool> {
    if let (Ok(existing), Ok(meta)) = (fs::read(path), fs::metadata(path)) {
        if existing == contents && meta.permissions().mode() & 0o7777 == mode {
            return Ok(false);
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.hakeep-tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(true)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_change_only_when_content_or_mode_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        assert!(write_atomic(&path, b"a", 0o640).unwrap());
        assert!(!write_atomic(&path, b"a", 0o640).unwrap());
        assert!(write_atomic(&path, b"b", 0o640).unwrap());
        assert!(write_atomic(&path, b"b", 0o600).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"b");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
