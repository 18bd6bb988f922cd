//! Property tests of what root reads from others (proptest, bounded: a fixed number of
//! cases each, so `make test` stays fast): keepalived's FIFO lines, the control socket's
//! requests and cluster.yml. For any input: no panic, and what is accepted is what was
//! meant.

use std::io::Write;
use std::os::unix::net::UnixStream;

use hakeep::config;
use hakeep::keepalived::notify::{parse_line, LineSplitter, Scope, MAX_LINE};
use hakeep::runtime::control::{read_request, ControlRequest};
use hakeep::runtime::VrrpState;
use proptest::prelude::*;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const STATES: [(&str, VrrpState); 4] = [
    ("MASTER", VrrpState::Master),
    ("BACKUP", VrrpState::Backup),
    ("FAULT", VrrpState::Fault),
    ("STOP", VrrpState::Stop),
];

proptest! {
    #![proptest_config(cases(2000))]

    /// Any bytes: an error or an event, never a panic; an accepted line is short, UTF-8,
    /// and its name is printable ASCII.
    #[test]
    fn fifo_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..700)) {
        if let Ok(event) = parse_line(&line) {
            prop_assert!(line.len() <= MAX_LINE);
            prop_assert!(!event.name.is_empty());
            prop_assert!(event.name.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
        }
    }

    /// A well-formed INSTANCE line says exactly what it was built from.
    #[test]
    fn well_formed_fifo_lines_parse_back(
        name in "[a-z][a-z0-9-]{0,30}",
        state in 0usize..4,
        priority in any::<u8>(),
    ) {
        let (word, expected) = STATES[state];
        let line = format!("INSTANCE \"{name}\" {word} {priority}");
        let event = parse_line(line.as_bytes()).unwrap();
        prop_assert_eq!(event.scope, Scope::Instance);
        prop_assert_eq!(event.name, name);
        prop_assert_eq!(event.state, expected);
        prop_assert_eq!(event.priority, Some(priority));
    }

    /// However a stream is cut into reads, the splitter yields the same bounded lines.
    #[test]
    fn line_splitting_ignores_read_boundaries(
        stream in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..3000),
        cut in 1usize..600,
    ) {
        let whole = LineSplitter::default().feed(&stream);
        let mut splitter = LineSplitter::default();
        let mut pieces = Vec::new();
        for chunk in stream.chunks(cut) {
            pieces.extend(splitter.feed(chunk));
        }
        prop_assert_eq!(&whole, &pieces);
        prop_assert!(whole.iter().all(|l| l.len() <= MAX_LINE + 1));
    }
}

proptest! {
    #![proptest_config(cases(300))]

    /// Any request line on the control socket: a request or an error, never a panic, and
    /// an accepted request names a group.
    #[test]
    fn control_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (mut client, server) = UnixStream::pair().unwrap();
        client.write_all(&bytes).unwrap();
        client.write_all(b"\n").unwrap();
        drop(client);
        if let Ok(request) = read_request(&server) {
            let again: ControlRequest =
                serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
            prop_assert_eq!(again, request);
        }
    }

    /// Requests the operator commands send come back as they were sent.
    #[test]
    fn control_requests_round_trip(
        group in "[a-z][a-z0-9-]{0,30}",
        hold in proptest::option::of(any::<u32>()),
        force in any::<bool>(),
        op in 0usize..3,
    ) {
        let request = match op {
            0 => ControlRequest::Release { group, hold_secs: hold },
            1 => ControlRequest::Takeover { group, force },
            _ => ControlRequest::Prepare { group, force },
        };
        let (mut client, server) = UnixStream::pair().unwrap();
        writeln!(client, "{}", serde_json::to_string(&request).unwrap()).unwrap();
        drop(client);
        prop_assert_eq!(read_request(&server).unwrap(), request);
    }

    /// Any text as cluster.yml: valid or a list of errors, never a panic; every error
    /// has a line (positions are 1-based) and a bounded message.
    #[test]
    fn the_config_loader_never_panics(text in "\\PC{0,400}") {
        check_loader(&text)?;
    }

    /// A valid file with one span of it replaced by arbitrary text.
    #[test]
    fn a_damaged_config_is_an_error_or_valid(
        at in 0usize..BASE.len(),
        len in 0usize..40,
        with in "[ -~\n\t]{0,40}",
    ) {
        let start = floor_char_boundary(BASE, at);
        let end = floor_char_boundary(BASE, (start + len).min(BASE.len()));
        let text = format!("{}{with}{}", &BASE[..start], &BASE[end..]);
        check_loader(&text)?;
    }
}

#[test]
fn the_base_of_the_damaged_configs_is_valid() {
    if let Err(e) = config::from_str("cluster.yml", BASE) {
        panic!("{e}");
    }
}

fn check_loader(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = config::from_str("cluster.yml", text) {
        let diagnostics = e.diagnostics();
        prop_assert!(!diagnostics.is_empty());
        for d in diagnostics {
            prop_assert!(d.pos.line >= 1, "{d}");
            prop_assert!(d.to_string().chars().count() < 1400, "{d}");
        }
    }
    Ok(())
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

const BASE: &str = r#"cluster: lab
keepalived: { advert_int: 1, vrrp_version: 2, unicast: true, auth_pass: "secret" }
nodes:
  nfs1: { address: 192.168.56.11, interface: eth1 }
  nfs2: { address: 192.168.56.12, interface: eth1 }
groups:
  nfs:
    vrid: 51
    nodes: [nfs1, nfs2]
    volumes:
      - iscsi: { portal: "192.168.56.10:3260", target: "iqn.2026-11.org.example:nfs", lun: 1 }
    filesystems:
      - { device: /dev/sdb, mountpoint: /srv/nfs, fstype: xfs }
      - { bind: /srv/nfs/.state/nfs, mountpoint: /var/lib/nfs }
    ips: [{ address: 192.168.56.100/24, interface: eth1 }]
    services: [nfs-server.service, { script: /usr/local/lib/hakeep/exportfs.sh }]
    checks: [{ ping: 192.168.56.1 }, { command: [/usr/bin/true] }]
"#;
