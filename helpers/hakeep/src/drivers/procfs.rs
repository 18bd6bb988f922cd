//! Reading /proc without running programs: what is mounted where (mountinfo) and which
//! processes hold a mountpoint. Every function takes the text or the proc directory as an
//! argument, so tests feed it samples instead of the live system.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where drivers read the mount table from.
pub trait MountSource: Send + Sync {
    /// The table as last read.
    fn entries(&self) -> std::io::Result<Arc<Vec<MountEntry>>>;
    /// Reads the table now (after a mount or unmount of our own, before verifying it).
    fn refresh(&self) -> std::io::Result<Arc<Vec<MountEntry>>>;
}

/// Reads `PROC/self/mountinfo` on every call (tests, one-shot commands).
pub struct ProcMounts {
    /// None: /proc.
    proc: Option<PathBuf>,
}

impl ProcMounts {
    pub const fn host() -> Self {
        ProcMounts { proc: None }
    }

    pub fn new(proc: impl Into<PathBuf>) -> Self {
        ProcMounts {
            proc: Some(proc.into()),
        }
    }
}

impl MountSource for ProcMounts {
    fn entries(&self) -> std::io::Result<Arc<Vec<MountEntry>>> {
        let proc = self.proc.as_deref().unwrap_or(Path::new("/proc"));
        read_mountinfo(proc).map(Arc::new)
    }

    fn refresh(&self) -> std::io::Result<Arc<Vec<MountEntry>>> {
        self.entries()
    }
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// major:minor of the mounted filesystem (`st_dev` of files on it).
    pub dev: (u32, u32),
    /// Path inside that filesystem that is mounted here (not `/` for bind mounts).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// Mount source as the kernel reports it (`/dev/sdb`, `tmpfs`, ...).
    pub source: String,
}

/// Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash) into raw bytes.
pub fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'\\', Some(digits)) = (bytes[i], bytes.get(i + 1..i + 4)) {
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn unescape_path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

// Format (proc(5)): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
fn parse_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    let (major, minor) = fields[2].split_once(':')?;
    Some(MountEntry {
        dev: (major.parse().ok()?, minor.parse().ok()?),
        root: unescape_path(fields[3]),
        mount_point: unescape_path(fields[4]),
        fstype: String::from_utf8_lossy(&unescape(fields[sep + 1])).into_owned(),
        source: String::from_utf8_lossy(&unescape(fields[sep + 2])).into_owned(),
    })
}

/// Reads the mount table of this process from `proc` (normally `/proc`).
pub fn read_mountinfo(proc: &Path) -> std::io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&fs::read_to_string(
        proc.join("self/mountinfo"),
    )?))
}

/// The mount visible at `path`: the last one listed there (later mounts stack on top).
/// Paths compare by components, so a trailing slash doesn't matter.
pub fn mount_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == path)
}

/// Mounts strictly below `path` (they keep it busy too).
pub fn mounts_below<'a>(entries: &'a [MountEntry], path: &Path) -> Vec<&'a MountEntry> {
    entries
        .iter()
        .filter(|e| e.mount_point != path && e.mount_point.starts_with(path))
        .collect()
}

/// The filesystem (dev) and path inside it that a bind mount of `source` would show:
/// found through the mount that contains `source`, ignoring the one at `exclude`.
pub fn bind_origin(
    entries: &[MountEntry],
    source: &Path,
    exclude: &Path,
) -> Option<((u32, u32), PathBuf)> {
    let containing = containing_mount(entries, source, Some(exclude))?;
    let rel = source.strip_prefix(&containing.mount_point).ok()?;
    Some((containing.dev, containing.root.join(rel)))
}

/// The mount that holds `path`: the deepest mountpoint above or at it; among equals, the
/// last (top of the stack). The one at `exclude` does not count.
pub fn containing_mount<'a>(
    entries: &'a [MountEntry],
    path: &Path,
    exclude: Option<&Path>,
) -> Option<&'a MountEntry> {
    entries
        .iter()
        .filter(|e| Some(e.mount_point.as_path()) != exclude && path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.components().count())
}

/// Processes under `proc` whose cwd, root, exe, open files or mapped files are
/// `mountpoint` or below it, sorted. Only processes in our mount namespace count: in
/// another one the same path can name something else (another node of a test harness).
/// Processes that vanish or can't be read are skipped (the umount that follows tells
/// whether anything was missed).
pub fn holders(proc: &Path, mountpoint: &Path) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(proc) else {
        return Vec::new();
    };
    let own_ns = fs::read_link(proc.join("self/ns/mnt")).ok();
    let same_ns = |pid_dir: &Path| match (&own_ns, fs::read_link(pid_dir.join("ns/mnt"))) {
        (Some(own), Ok(theirs)) => *own == theirs,
        // Unknown: count the process (the namespace check is a guard, not a must).
        _ => true,
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let pid_dir = proc.join(pid.to_string());
            same_ns(&pid_dir) && holds(&pid_dir, mountpoint)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn holds(pid_dir: &Path, mountpoint: &Path) -> bool {
    let under = |target: PathBuf| is_under(&target, mountpoint);
    if ["cwd", "root", "exe"]
        .iter()
        .filter_map(|l| fs::read_link(pid_dir.join(l)).ok())
        .any(under)
    {
        return true;
    }
    if let Ok(fds) = fs::read_dir(pid_dir.join("fd")) {
        if fds
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .any(under)
        {
            return true;
        }
    }
    // A file mapped after its fd was closed still keeps the filesystem busy.
    fs::read(pid_dir.join("maps"))
        .map(|maps| maps_paths(&maps).any(|p| is_under(&p, mountpoint)))
        .unwrap_or(false)
}

/// The file paths of /proc/PID/maps lines (sixth column onwards, may contain spaces).
fn maps_paths(maps: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    maps.split(|b| *b == b'\n').filter_map(|line| {
        let mut rest = line;
        for _ in 0..5 {
            let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            rest = &rest[start..];
            let end = rest.iter().position(u8::is_ascii_whitespace)?;
            rest = &rest[end..];
        }
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let path = &rest[start..];
        path.starts_with(b"/")
            .then(|| PathBuf::from(OsString::from_vec(path.to_vec())))
    })
}

/// Whether a link target names `mountpoint` or something below it; the kernel's
/// " (deleted)" suffix is ignored.
fn is_under(target: &Path, mountpoint: &Path) -> bool {
    let bytes = target.as_os_str().as_encoded_bytes();
    let trimmed = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
    let target = PathBuf::from(OsString::from_vec(trimmed.to_vec()));
    target.is_absolute() && target.starts_with(mountpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
98 27 8:16 / /srv/nfs rw,noatime shared:40 master:3 - xfs /dev/sdb rw,attr2
99 27 8:16 /.state/nfs /var/lib/nfs rw,noatime shared:40 - xfs /dev/sdb rw,attr2
100 27 7:0 / /mnt/with\\040space rw - ext4 /dev/loop0 rw
101 98 0:50 / /srv/nfs rw - tmpfs tmp\\134fs rw
garbage line
";

    #[test]
    fn parses_fields_and_optional_tags() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries[2],
            MountEntry {
                dev: (8, 16),
                root: PathBuf::from("/"),
                mount_point: PathBuf::from("/srv/nfs"),
                fstype: "xfs".into(),
                source: "/dev/sdb".into(),
            }
        );
        assert_eq!(entries[3].root, Path::new("/.state/nfs"));
    }

    #[test]
    fn decodes_octal_escapes() {
        let entries = parse_mountinfo(SAMPLE);
        assert_eq!(entries[4].mount_point, Path::new("/mnt/with space"));
        assert_eq!(entries[5].source, "tmp\\fs");
        assert_eq!(
            unescape("a\\011b\\012c\\\\d\\9"),
            b"a\tb\nc\\\\d\\9".to_vec()
        );
        assert_eq!(unescape("end\\04"), b"end\\04".to_vec());
    }

    #[test]
    fn mount_at_sees_the_top_of_a_stack() {
        let entries = parse_mountinfo(SAMPLE);
        let top = mount_at(&entries, Path::new("/srv/nfs/")).unwrap();
        assert_eq!(top.fstype, "tmpfs");
        assert!(mount_at(&entries, Path::new("/srv")).is_none());
        assert!(mount_at(&entries, Path::new("/mnt/with space")).is_some());
    }

    #[test]
    fn lists_mounts_below() {
        let entries = parse_mountinfo(SAMPLE);
        let below: Vec<_> = mounts_below(&entries, Path::new("/var"))
            .iter()
            .map(|e| e.mount_point.clone())
            .collect();
        assert_eq!(below, vec![PathBuf::from("/var/lib/nfs")]);
    }

    #[test]
    fn bind_origin_finds_the_path_inside_the_filesystem() {
        let entries = parse_mountinfo(SAMPLE)[..4].to_vec();
        assert_eq!(
            bind_origin(
                &entries,
                Path::new("/srv/nfs/.state/nfs"),
                Path::new("/var/lib/nfs")
            ),
            Some(((8, 16), PathBuf::from("/.state/nfs")))
        );
        assert_eq!(
            bind_origin(&entries, Path::new("/etc/x"), Path::new("/var/lib/nfs")),
            Some(((254, 0), PathBuf::from("/etc/x")))
        );
    }

    #[test]
    fn finds_holders_by_cwd_fd_and_maps() {
        let proc = tempfile::tempdir().unwrap();
        let p = proc.path();
        for pid in ["10", "11", "12", "13"] {
            fs::create_dir_all(p.join(pid).join("fd")).unwrap();
            symlink("/", p.join(pid).join("root")).unwrap();
        }
        symlink("/srv/nfs/data", p.join("10/cwd")).unwrap();
        symlink("/srv/nfs/db (deleted)", p.join("11/fd/3")).unwrap();
        symlink("socket:[123]", p.join("11/fd/4")).unwrap();
        fs::write(
            p.join("12/maps"),
            "7f00-7f01 r--p 00000000 08:10 42     /srv/nfs/lib with space.so\n\
             7f01-7f02 rw-p 00000000 00:00 0 \n",
        )
        .unwrap();
        symlink("/srv/nfsother", p.join("13/cwd")).unwrap();
        assert_eq!(holders(p, Path::new("/srv/nfs")), vec![10, 11, 12]);
        // With namespaces known, a process in another mount namespace is left alone.
        fs::create_dir_all(p.join("self/ns")).unwrap();
        symlink("mnt:[4026531841]", p.join("self/ns/mnt")).unwrap();
        fs::create_dir_all(p.join("10/ns")).unwrap();
        symlink("mnt:[4026532000]", p.join("10/ns/mnt")).unwrap();
        fs::create_dir_all(p.join("11/ns")).unwrap();
        symlink("mnt:[4026531841]", p.join("11/ns/mnt")).unwrap();
        assert_eq!(holders(p, Path::new("/srv/nfs")), vec![11, 12]);
        assert!(holders(&p.join("missing"), Path::new("/srv/nfs")).is_empty());
    }
}
