//! Rules for single values: names, interfaces, unit names, paths, addresses.
//! Each returns `Err(reason)` phrased to follow the offending value.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// Cluster, node and group names: `[a-z0-9-]`, 1–32 characters, no leading hyphen.
pub fn name(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("must be 1-32 characters of a-z, 0-9 and '-', not starting with '-'".into())
    }
}

/// A Linux interface name (IFNAMSIZ 16 including the NUL).
pub fn interface(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(
            "is not a valid interface name (1-15 characters of a-z, A-Z, 0-9, '-', '_', '.', '@')"
                .into(),
        )
    }
}

const UNIT_TYPES_NOT_MANAGED: &[&str] = &[
    "mount",
    "automount",
    "socket",
    "timer",
    "path",
    "swap",
    "slice",
    "scope",
    "device",
];

/// A systemd unit name; returns it canonical (`.service` added when it has no suffix).
pub fn unit_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with('-')
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'@' | b'-' | b'\\')
        });
    if !ok {
        return Err("is not a valid systemd unit name (letters, digits and ':_.@-\\' only)".into());
    }
    if value.ends_with(".service") || value.ends_with(".target") {
        return Ok(value.to_string());
    }
    if let Some((_, suffix)) = value.rsplit_once('.') {
        if UNIT_TYPES_NOT_MANAGED.contains(&suffix) {
            return Err(format!(
                "is a .{suffix} unit; hakeep starts and stops .service and .target units"
            ));
        }
    }
    Ok(format!("{value}.service"))
}

/// An absolute, normalised path without characters a shell would interpret.
pub fn absolute_path(value: &str) -> Result<PathBuf, String> {
    let path = Path::new(value);
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    if let Some(bad) = value.chars().find(|c| !safe_path_char(*c)) {
        return Err(format!(
            "contains {bad:?}; paths may use letters, digits and '/._-+@:,='"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || value.contains("//")
        || (value.len() > 1 && value.ends_with('/'))
    {
        return Err("must be normalised (no '.', '..', '//' or trailing '/')".into());
    }
    if value.len() >= PATH_MAX {
        return Err(format!(
            "is {} bytes long; the kernel takes paths of at most {} bytes",
            value.len(),
            PATH_MAX - 1
        ));
    }
    if let Some(long) = value.split('/').find(|c| c.len() > NAME_MAX) {
        return Err(format!(
            "has a component of {} bytes; the kernel takes names of at most {NAME_MAX}",
            long.len()
        ));
    }
    Ok(path.to_path_buf())
}

/// Linux's limits (linux/limits.h): a path with its terminating NUL, one name.
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

/// Mountpoints that would hide what the node itself runs on: these and anything under them.
const RESERVED_TREES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/boot",
    "/run/hakeep",
    "/var/lib/hakeep",
];
/// Directories of the system itself: a group may mount below them, not on them.
const RESERVED_DIRS: &[&str] = &[
    "/bin",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
];

/// Whether `path` is `tree` or lies under it.
pub fn is_within(path: &Path, tree: &str) -> bool {
    path.starts_with(tree)
}

fn reserved(path: &Path) -> Option<String> {
    if let Some(tree) = RESERVED_TREES.iter().find(|t| is_within(path, t)) {
        return Some(format!(
            "is {}{tree}, which the node itself needs; mount the group's filesystems elsewhere (under /srv, say)",
            if path == Path::new(tree) { "" } else { "under " }
        ));
    }
    RESERVED_DIRS
        .iter()
        .find(|d| path == Path::new(d))
        .map(|d| format!("is {d} itself; mount below it (as {d}/NAME), not on it"))
}

fn safe_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | '@' | ':' | ',' | '=')
}

/// A mountpoint: an absolute path other than `/`.
pub fn mountpoint(value: &str) -> Result<PathBuf, String> {
    let path = absolute_path(value)?;
    if value == "/" {
        return Err("must not be the root directory".into());
    }
    if let Some(why) = reserved(&path) {
        return Err(why);
    }
    Ok(path)
}

/// The source of a bind mount: an absolute path, not `/` nor the kernel's trees.
pub fn bind_source(value: &str) -> Result<PathBuf, String> {
    let path = absolute_path(value)?;
    if value == "/" {
        return Err("must not be the root directory: the bind would expose the whole node".into());
    }
    if let Some(tree) = ["/proc", "/sys", "/dev", "/run/hakeep"]
        .iter()
        .find(|t| is_within(&path, t))
    {
        return Err(format!("must not be in {tree}"));
    }
    Ok(path)
}

/// A filesystem type as `mount -t` takes it.
pub fn fstype(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err("is not a filesystem type (a-z, 0-9, '.', '_')".into())
    }
}

/// One mount option such as `noatime` or `logbsize=256k`.
pub fn mount_option(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'.' | b'-' | b':' | b'/')
        });
    if ok {
        Ok(())
    } else {
        Err("is not a mount option (letters, digits and '_=.-:/')".into())
    }
}

/// An IP address with a prefix length, such as `192.168.56.100/24` or `fd00::100/64`.
pub fn ip_prefix(value: &str) -> Result<(IpAddr, u8), String> {
    let invalid = || "is not an IP prefix (address/length, e.g. 192.168.56.100/24)".to_string();
    let (address, prefix) = value.split_once('/').ok_or_else(invalid)?;
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    if prefix == 0 || prefix > max {
        return Err(format!("has prefix length {prefix}; it must be 1 to {max}"));
    }
    if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
        return Err("is not a usable unicast address".into());
    }
    Ok((address, prefix))
}

/// A plain IP address.
pub fn ip_address(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| "is not an IP address".to_string())
}

/// `ADDRESS:PORT`, with IPv6 written `[ADDRESS]:PORT`. `default_port` applies when none is given.
pub fn socket_address(value: &str, default_port: Option<u16>) -> Result<(IpAddr, u16), String> {
    let invalid = || "is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)".to_string();
    if let Ok(address) = value.parse::<IpAddr>() {
        return default_port.map(|p| (address, p)).ok_or_else(invalid);
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let address: IpAddr = host.parse().map_err(|_| invalid())?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if port == 0 {
        return Err(invalid());
    }
    Ok((address, port))
}

/// An iSCSI qualified name (`iqn.YYYY-MM.reversed.domain[:suffix]`) or an eui./naa. name.
pub fn iscsi_name(value: &str) -> Result<(), String> {
    let charset_ok = value.len() <= 223
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b':')
        });
    let shape_ok = match value.strip_prefix("iqn.") {
        Some(rest) => {
            let date = rest.get(..7).unwrap_or("");
            let domain = rest.get(8..).unwrap_or("");
            date.len() == 7
                && date.as_bytes()[4] == b'-'
                && date
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 4 || b.is_ascii_digit())
                && rest.as_bytes().get(7) == Some(&b'.')
                && domain.split(':').next().is_some_and(|d| d.contains('.'))
        }
        None => value.starts_with("eui.") || value.starts_with("naa."),
    };
    if charset_ok && shape_ok {
        Ok(())
    } else {
        Err("is not an iSCSI name (iqn.YYYY-MM.reversed.domain[:name], lower case)".into())
    }
}

/// An NVMesh volume name.
pub fn nvmesh_volume(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("is not an NVMesh volume name (letters, digits, '_', '-', '.')".into())
    }
}

/// keepalived's PASS authentication: at most 8 characters, none the config parser splits on.
pub fn auth_pass(value: &str) -> Result<(), String> {
    if value.len() > 8 {
        return Err(format!(
            "is {} characters long; keepalived uses at most 8 and silently truncates the rest",
            value.len()
        ));
    }
    if value.is_empty()
        || !value.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'#' | b'!' | b'{' | b'}' | b'\\')
        })
    {
        return Err(
            "must be 1-8 printable characters without spaces, quotes, '#', '!', braces or '\\'"
                .into(),
        );
    }
    Ok(())
}

/// An advertisement interval in seconds, as milliseconds (keepalived's resolution: 10 ms).
pub fn advert_int_ms(value: &str) -> Result<u32, String> {
    let invalid = || "is not a number of seconds such as 1 or 0.2 (at most 2 decimals)".to_string();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() || fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let whole: u32 = whole.parse().map_err(|_| invalid())?;
    let centis: u32 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    let ms = whole
        .checked_mul(1000)
        .and_then(|w| w.checked_add(centis * 10))
        .ok_or_else(invalid)?;
    if ms == 0 || ms > 255_000 {
        return Err("must be between 0.01 and 255 seconds".into());
    }
    Ok(ms)
}

/// A resource-script or check command: absolute path to the program, then plain arguments.
pub fn command_argument(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control()) {
        return Err("contains a control character".into());
    }
    Ok(())
}
