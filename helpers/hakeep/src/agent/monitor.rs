//! Health checks of an active group, with fall/rise so one blip is not a failover.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Check, CheckKind};
use crate::exec::{Cmd, Runner};

use super::ips;

/// One configured check and its recent history.
pub struct Monitored {
    pub check: Check,
    failures: u32,
    successes: u32,
    pub failing: bool,
    next_due: Instant,
    pub last_error: Option<String>,
}

impl Monitored {
    pub fn new(check: Check) -> Self {
        let first = Instant::now() + Duration::from_secs(u64::from(check.interval_secs));
        Monitored {
            check,
            failures: 0,
            successes: 0,
            failing: false,
            next_due: first,
            last_error: None,
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_due
    }

    pub fn next_due(&self) -> Instant {
        self.next_due
    }

    /// Forgets history, e.g. after a restart or a new take.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.successes = 0;
        self.failing = false;
        self.last_error = None;
        self.next_due = Instant::now() + Duration::from_secs(u64::from(self.check.interval_secs));
    }

    /// Runs the check; returns true when it just crossed into failing.
    pub fn run(&mut self, runner: &dyn Runner) -> bool {
        self.next_due = Instant::now() + Duration::from_secs(u64::from(self.check.interval_secs));
        let timeout = Duration::from_secs(u64::from(self.check.timeout_secs));
        match probe(runner, &self.check.kind, timeout) {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.failing && self.successes >= self.check.rise {
                    self.failing = false;
                    self.last_error = None;
                }
                false
            }
            Err(error) => {
                self.successes = 0;
                self.failures += 1;
                self.last_error = Some(error);
                let crossed = !self.failing && self.failures >= self.check.fall;
                if crossed {
                    self.failing = true;
                }
                crossed
            }
        }
    }

    pub fn describe(&self) -> String {
        describe(&self.check.kind)
    }
}

pub fn describe(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Ping(a) => format!("ping {a}"),
        CheckKind::Tcp { host, port } => format!("tcp {}", SocketAddr::new(*host, *port)),
        CheckKind::Mount(p) => format!("mount {}", p.display()),
        CheckKind::Ip(a) => format!("ip {a}"),
        CheckKind::Command(argv) => format!("command {}", argv.join(" ")),
    }
}

/// Runs one check once.
pub fn probe(runner: &dyn Runner, kind: &CheckKind, timeout: Duration) -> Result<(), String> {
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
        CheckKind::Mount(path) => mount_writable(path),
        CheckKind::Ip(addr) => {
            let out = runner
                .run_ok(&Cmd::new(["ip", "-o", "addr", "show"], timeout))
                .map_err(|e| e.to_string())?;
            if ips::parse_ip_addr(&out.stdout).contains(addr) {
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

/// The path is a mountpoint and a file can be written and removed there.
fn mount_writable(path: &Path) -> Result<(), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let wanted = path.to_string_lossy();
    let mounted = mountinfo.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|mp| mp.replace("\\040", " ") == wanted)
    });
    if !mounted {
        return Err(format!("{wanted} is not mounted"));
    }
    let probe = path.join(format!(".hakeep-check-{}", std::process::id()));
    std::fs::write(&probe, b"hakeep").map_err(|e| format!("writing {}: {e}", probe.display()))?;
    std::fs::remove_file(&probe).map_err(|e| format!("removing {}: {e}", probe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{ExecError, RecordingRunner};

    fn check(fall: u32, rise: u32) -> Check {
        Check {
            kind: CheckKind::Command(vec!["/bin/check".into()]),
            interval_secs: 1,
            timeout_secs: 1,
            fall,
            rise,
        }
    }

    #[test]
    fn fails_after_fall_and_recovers_after_rise() {
        let runner = RecordingRunner::new();
        let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = failing.clone();
        runner.respond(move |_| {
            flag.load(std::sync::atomic::Ordering::SeqCst).then(|| {
                Err(ExecError::Failed {
                    program: "/bin/check".into(),
                    code: Some(1),
                    stderr: "down".into(),
                })
            })
        });
        let mut m = Monitored::new(check(3, 2));
        assert!(!m.run(&runner));
        assert!(!m.run(&runner));
        assert!(m.run(&runner), "third failure crosses fall=3");
        assert!(m.failing);
        assert!(!m.run(&runner), "crossing is reported once");
        failing.store(false, std::sync::atomic::Ordering::SeqCst);
        m.run(&runner);
        assert!(m.failing, "one success is not rise=2");
        m.run(&runner);
        assert!(!m.failing);
    }

    #[test]
    fn tcp_check_fails_on_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = CheckKind::Tcp {
            host: "127.0.0.1".parse().unwrap(),
            port,
        };
        assert!(probe(&RecordingRunner::new(), &open, Duration::from_secs(1)).is_ok());
        drop(listener);
        assert!(probe(&RecordingRunner::new(), &open, Duration::from_secs(1)).is_err());
    }
}
