//! Health probes: each configured check run once. The agent runs them on a schedule
//! (with fall/rise, agent::worker::watch) and `hakeep check` runs them for scripts.

mod writable;

pub(crate) use writable::random_name;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::CheckKind;
use crate::exec::{Cmd, Runner};

pub fn describe(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Ping(a) => format!("ping {a}"),
        CheckKind::Tcp { host, port } => format!("tcp {}", SocketAddr::new(*host, *port)),
        CheckKind::Mount(p) => format!("mount {}", p.display()),
        CheckKind::Ip(a) => format!("ip {a}"),
        CheckKind::Command(argv) => format!("command {}", argv.join(" ")),
    }
}

/// Where an `ip` check looks: the agent's netlink address table, or `ip -o addr`.
pub trait AddressLookup {
    fn present_anywhere(&self, address: IpAddr) -> bool;
}

/// Runs one check once. `addresses` answers `ip` checks without a fork when given.
pub fn probe(
    runner: &dyn Runner,
    kind: &CheckKind,
    timeout: Duration,
    addresses: Option<&dyn AddressLookup>,
) -> Result<(), String> {
    match kind {
        CheckKind::Ping(addr) => {
            let wait = timeout.as_secs().max(1).to_string();
            let target = addr.to_string();
            runner
                .run_ok(&Cmd::new(
                    [
                        "ping",
                        "-n",
                        "-q",
                        "-c",
                        "1",
                        "-W",
                        wait.as_str(),
                        target.as_str(),
                    ],
                    timeout + Duration::from_secs(1),
                ))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        CheckKind::Tcp { host, port } => {
            TcpStream::connect_timeout(&SocketAddr::new(*host, *port), timeout)
                .map(|_| ())
                .map_err(|e| format!("connecting to {}: {e}", SocketAddr::new(*host, *port)))
        }
        CheckKind::Mount(path) => writable::mount_writable(path, timeout),
        CheckKind::Ip(addr) => {
            let present = match addresses {
                Some(table) => table.present_anywhere(*addr),
                None => {
                    let out = runner
                        .run_ok(&Cmd::new(["ip", "-o", "addr", "show"], timeout))
                        .map_err(|e| e.to_string())?;
                    parse_ip_addr(&out.stdout).contains(addr)
                }
            };
            if present {
                Ok(())
            } else {
                Err(format!("{addr} is not on any interface"))
            }
        }
        CheckKind::Command(argv) => runner
            .run_ok(&Cmd::new(argv.clone(), timeout))
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// Parses `ip -o addr` lines: `2: eth1    inet 10.0.0.1/24 brd ... scope global eth1`.
pub fn parse_ip_addr(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::RecordingRunner;

    #[test]
    fn tcp_check_fails_on_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = CheckKind::Tcp {
            host: "127.0.0.1".parse().unwrap(),
            port,
        };
        assert!(probe(&RecordingRunner::new(), &open, Duration::from_secs(1), None).is_ok());
        drop(listener);
        assert!(probe(&RecordingRunner::new(), &open, Duration::from_secs(1), None).is_err());
    }

    #[test]
    fn parses_v4_and_v6() {
        let text = "2: eth1    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth1\\       valid_lft forever\n\
                    2: eth1    inet 10.0.0.100/24 scope global secondary eth1\n\
                    2: eth1    inet6 fd00::1/64 scope global \\       valid_lft forever\n";
        let addrs = parse_ip_addr(text);
        assert_eq!(addrs.len(), 3);
        assert!(addrs.contains(&"10.0.0.100".parse().unwrap()));
        assert!(addrs.contains(&"fd00::1".parse().unwrap()));
    }
}
