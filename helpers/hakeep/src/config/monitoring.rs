//! `metrics:` and `alerts:`: how the agent tells people what happens (docs/operations.md).

use marked_yaml::Node;

use super::diagnostic::quoted;
use super::model::{Alert, AlertEvent, MetricsListen, MetricsSettings};
use super::parse::{checked_string, list, scalar_text};
use super::reader::{pos_of, FieldPath, Reader};
use super::syntax;

/// Longest an alert program may run unless its `timeout` says otherwise.
const DEFAULT_ALERT_TIMEOUT_SECS: u32 = 30;

pub fn metrics(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<MetricsSettings> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["listen", "textfile"]);
    let listen = map
        .get_node("listen")
        .and_then(|n| checked_string(r, n, &path.key("listen"), listen_address));
    let textfile = map
        .get_node("textfile")
        .and_then(|n| checked_string(r, n, &path.key("textfile"), textfile_path));
    if map.get_node("listen").is_none() && map.get_node("textfile").is_none() {
        r.error(
            pos_of(map.span()),
            path,
            "metrics needs `listen` (ADDRESS:PORT or node:PORT), `textfile` (a .prom file), or both",
        );
    }
    Some(MetricsSettings { listen, textfile })
}

/// `ADDRESS:PORT`, or `node:PORT` for each node's own address.
fn listen_address(value: &str) -> Result<MetricsListen, String> {
    if let Some(port) = value.strip_prefix("node:") {
        return match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(MetricsListen::NodeAddress(p)),
            _ => Err("is not node:PORT (PORT 1-65535)".into()),
        };
    }
    let (address, port) = syntax::socket_address(value, None)
        .map_err(|_| "is not ADDRESS:PORT, [ADDRESS]:PORT or node:PORT".to_string())?;
    Ok(MetricsListen::Fixed(std::net::SocketAddr::new(
        address, port,
    )))
}

/// node_exporter's textfile collector reads only `*.prom` files.
fn textfile_path(value: &str) -> Result<std::path::PathBuf, String> {
    let path = syntax::absolute_path(value)?;
    if path.extension().is_none_or(|e| e != "prom") {
        return Err(
            "must end in .prom (node_exporter's textfile collector reads only those)".into(),
        );
    }
    Ok(path)
}

pub fn alert(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Alert> {
    let map = r.mapping(node, path)?;
    r.reject_unknown_keys(map, path, &["program", "args", "events", "timeout"]);
    let program = r
        .required(map, path, "program")
        .and_then(|n| checked_string(r, n, &path.key("program"), syntax::absolute_path));
    let args = match map.get_node("args") {
        // The same rules as a check command's arguments; `command` wants the program first.
        Some(n) => arguments(r, n, &path.key("args"))?,
        None => Vec::new(),
    };
    let events = match map.get_node("events") {
        Some(_) => {
            let events = list(r, map, path, "events", event);
            if events.is_empty() {
                r.error(
                    pos_of(map.span()),
                    &path.key("events"),
                    "lists no event; leave `events` out for all of them",
                );
                return None;
            }
            events
        }
        None => AlertEvent::ALL.to_vec(),
    };
    let timeout_secs = match map.get_node("timeout") {
        Some(n) => r
            .integer(n, &path.key("timeout"), 1, 600)
            .map(|v| v as u32)?,
        None => DEFAULT_ALERT_TIMEOUT_SECS,
    };
    Some(Alert {
        program: program?,
        args,
        events,
        timeout_secs,
    })
}

fn arguments(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<Vec<String>> {
    let seq = r.sequence(node, path)?;
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        out.push(
            checked_string(r, item, &path.index(i), syntax::command_argument)
                .map(|()| scalar_text(item)),
        );
    }
    out.into_iter().collect()
}

fn event(r: &mut Reader, node: &Node, path: &FieldPath) -> Option<AlertEvent> {
    let text = r.string(node, path)?;
    let event = AlertEvent::parse(&text);
    if event.is_none() {
        let names: Vec<&str> = AlertEvent::ALL.iter().map(|e| e.as_str()).collect();
        r.error(
            pos_of(node.span()),
            path,
            format!(
                "{} is not an event; events are: {}",
                quoted(&text),
                names.join(", ")
            ),
        );
    }
    event
}
