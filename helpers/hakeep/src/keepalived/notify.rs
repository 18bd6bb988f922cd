//! keepalived's notify FIFO lines: `INSTANCE "name" STATE priority` and
//! `GROUP "name" STATE`. Anything else is rejected with a reason; nothing panics.

pub use crate::runtime::VrrpState;

/// The longest line the agent accepts; longer input is garbage, not a state change.
pub const MAX_LINE: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Instance,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub scope: Scope,
    pub name: String,
    pub state: VrrpState,
    pub priority: Option<u8>,
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    if line.len() > MAX_LINE {
        return Err(format!(
            "line of {} bytes is longer than {MAX_LINE}",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_string())?;
    let text = text.trim_end_matches('\r');
    let (scope, rest) = match text.split_once(' ') {
        Some(("INSTANCE", rest)) => (Scope::Instance, rest),
        Some(("GROUP", rest)) => (Scope::Group, rest),
        _ => return Err("does not start with INSTANCE or GROUP".into()),
    };
    let rest = rest.strip_prefix('"').ok_or("name is not quoted")?;
    let (name, rest) = rest.split_once('"').ok_or("name has no closing quote")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("name is empty or not printable".into());
    }
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let state = match words.next() {
        Some("MASTER") => VrrpState::Master,
        Some("BACKUP") => VrrpState::Backup,
        Some("FAULT") => VrrpState::Fault,
        Some("STOP") => VrrpState::Stop,
        Some(other) => return Err(format!("unknown state {other:?}")),
        None => return Err("no state".into()),
    };
    let priority = match (scope, words.next()) {
        (Scope::Instance, Some(p)) => Some(
            p.parse::<u8>()
                .map_err(|_| format!("priority {p:?} is not 0-255"))?,
        ),
        (Scope::Instance, None) => return Err("INSTANCE line without priority".into()),
        (Scope::Group, None) => None,
        (Scope::Group, Some(extra)) => {
            return Err(format!("unexpected {extra:?} after GROUP state"))
        }
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} at the end"));
    }
    Ok(Event {
        scope,
        name: name.to_string(),
        state,
        priority,
    })
}

/// Splits a byte stream into lines, bounding each: an over-long line is reported once
/// as garbage (its first bytes) and the rest of it skipped.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    skipping: bool,
}

impl LineSplitter {
    /// Feeds bytes; returns the complete lines they end (over-long ones truncated).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if !self.skipping {
                    lines.push(std::mem::take(&mut self.buf));
                }
                self.buf.clear();
                self.skipping = false;
            } else if !self.skipping {
                self.buf.push(b);
                if self.buf.len() > MAX_LINE {
                    lines.push(std::mem::take(&mut self.buf));
                    self.skipping = true;
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_instance_and_group_lines() {
        assert_eq!(
            parse_line(b"INSTANCE \"nfs\" MASTER 200").unwrap(),
            Event {
                scope: Scope::Instance,
                name: "nfs".into(),
                state: VrrpState::Master,
                priority: Some(200)
            }
        );
        let g = parse_line(b"GROUP \"g1\" FAULT").unwrap();
        assert_eq!(
            (g.scope, g.state, g.priority),
            (Scope::Group, VrrpState::Fault, None)
        );
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for bad in [
            &b""[..],
            b"INSTANCE nfs MASTER 200",
            b"INSTANCE \"nfs\" MASTER",
            b"INSTANCE \"nfs\" LEADER 200",
            b"INSTANCE \"nfs\" MASTER 300",
            b"INSTANCE \"nfs\" MASTER 200 extra",
            b"INSTANCE \"\" MASTER 200",
            b"\xff\xfe",
            b"VRRP \"nfs\" MASTER 200",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_line(&[b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn splitter_bounds_long_lines_and_keeps_partial_ones() {
        let mut s = LineSplitter::default();
        assert!(s.feed(b"INSTANCE \"a\" MAS").is_empty());
        assert_eq!(
            s.feed(b"TER 1\n"),
            vec![b"INSTANCE \"a\" MASTER 1".to_vec()]
        );
        let mut long = vec![b'x'; MAX_LINE * 3];
        long.extend_from_slice(b"\nINSTANCE \"b\" BACKUP 2\n");
        let lines = s.feed(&long);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE + 1);
        assert_eq!(lines[1], b"INSTANCE \"b\" BACKUP 2".to_vec());
    }

    /// Arbitrary bytes never panic, whatever they are (a small deterministic fuzz).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: &[u8] = b"INSTANCEGROUPMASTERBACKUPFAULTSTOP \"\n0123456789\xff\x00";
        let mut splitter = LineSplitter::default();
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let chunk: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            for line in splitter.feed(&chunk) {
                let _ = parse_line(&line);
            }
            let _ = parse_line(&chunk);
        }
    }
}
