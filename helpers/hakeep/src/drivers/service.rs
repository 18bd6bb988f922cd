//! Services: systemd units and resource scripts.
//!
//! A systemd unit is started and stopped through systemd's D-Bus API (`ctx.units`: the
//! agent's connection, observe::systemd), waiting for the job to finish as Pacemaker
//! does; whether it is active comes from the unit state systemd signals, so watching a
//! unit costs no process. (Never `systemctl kill`: it fails in nspawn containers without
//! a host systemd.)
//!
//! A resource script is called as `PATH start`, `PATH stop` or `PATH status`, with no
//! other arguments and no shell, each call bounded by the script's `timeout_secs`
//! (killed after it). Its exit codes, LSB-like:
//!
//! | call     | 0                  | 3           | anything else |
//! | -------- | ------------------ | ----------- | ------------- |
//! | `status` | running            | not running | error (unknown state) |
//! | `start`  | running now        | error       | error         |
//! | `stop`   | not running now    | error       | error         |
//!
//! hakeep calls `start` only when `status` did not say running and `stop` only when
//! it did not say stopped, yet `start` and `stop` should also succeed when there is
//! nothing to do. stderr (or stdout) of a failing call ends up in the error.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Context, DriverError, Kind, Observed, Resource};
use crate::config::Service;
use crate::exec::Cmd;

/// LSB `status`: program is not running.
const SCRIPT_STOPPED: i32 = 3;

pub fn for_config(service: &Service) -> Box<dyn Resource> {
    match service {
        Service::Unit(name) => Box::new(SystemdUnit { name: name.clone() }),
        Service::Script {
            path,
            timeout_secs,
            interval_secs,
        } => Box::new(ResourceScript::new(
            path.clone(),
            Duration::from_secs(u64::from(*timeout_secs)),
            Duration::from_secs(u64::from(*interval_secs)),
        )),
    }
}

pub struct SystemdUnit {
    pub name: String,
}

impl Resource for SystemdUnit {
    fn id(&self) -> String {
        format!("service:{}", self.name)
    }

    fn kind(&self) -> Kind {
        Kind::Service
    }

    fn observe(&self, ctx: &Context) -> Result<Observed, DriverError> {
        Ok(if ctx.units.is_active(&self.name)? {
            Observed::Active
        } else {
            Observed::Inactive
        })
    }

    fn take(&self, ctx: &Context) -> Result<(), DriverError> {
        ctx.units
            .start(&self.name, ctx.timeouts.service)
            .map_err(|e| e.context(format!("starting {}", self.name)))
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        ctx.units
            .stop(&self.name, ctx.timeouts.service)
            .map_err(|e| e.context(format!("stopping {}", self.name)))
    }
}

pub struct ResourceScript {
    pub path: PathBuf,
    pub timeout: Duration,
    /// How long a `status` answer stands for a look (status, resync, watching); a take
    /// or a release always asks again. Zero: always ask.
    pub interval: Duration,
    last: Mutex<Option<(Instant, Observed)>>,
}

impl ResourceScript {
    pub fn new(path: PathBuf, timeout: Duration, interval: Duration) -> Self {
        ResourceScript {
            path,
            timeout,
            interval,
            last: Mutex::new(None),
        }
    }

    fn remember(&self, observed: Option<Observed>) {
        if let Ok(mut last) = self.last.lock() {
            *last = observed.map(|o| (Instant::now(), o));
        }
    }

    fn recent(&self) -> Option<Observed> {
        let last = self.last.lock().ok()?;
        let (at, observed) = (*last)?;
        (at.elapsed() < self.interval).then_some(observed)
    }

    /// Runs `status` now.
    fn status(&self, ctx: &Context) -> Result<Observed, DriverError> {
        let doing = format!("{} status", self.path.display());
        let out = ctx
            .runner
            .run(&self.call("status"))
            .map_err(|e| DriverError::from(e).context(&doing))?;
        let observed = match out.code {
            Some(0) => Observed::Active,
            Some(SCRIPT_STOPPED) => Observed::Inactive,
            code => {
                self.remember(None);
                return Err(DriverError::Failed(format!(
                    "{doing}: unknown state (exit {}, expected 0 running or 3 stopped): {}",
                    code.map_or("by a signal".to_string(), |c| c.to_string()),
                    message(&out.stderr, &out.stdout)
                )));
            }
        };
        self.remember(Some(observed));
        Ok(observed)
    }

    fn call(&self, action: &str) -> Cmd {
        Cmd::new(
            [self.path.display().to_string(), action.to_string()],
            self.timeout,
        )
    }

    fn run_action(&self, ctx: &Context, action: &str) -> Result<(), DriverError> {
        ctx.runner.run_ok(&self.call(action)).map_err(|e| {
            DriverError::from(e).context(format!("{} {action}", self.path.display()))
        })?;
        Ok(())
    }
}

impl Resource for ResourceScript {
    fn id(&self) -> String {
        format!("script:{}", self.path.display())
    }

    fn kind(&self) -> Kind {
        Kind::Service
    }

    fn observe(&self, ctx: &Context) -> Result<Observed, DriverError> {
        match self.recent() {
            Some(observed) => Ok(observed),
            None => self.status(ctx),
        }
    }

    fn observe_now(&self, ctx: &Context) -> Result<Observed, DriverError> {
        self.status(ctx)
    }

    fn take(&self, ctx: &Context) -> Result<(), DriverError> {
        // An unknown state still gets a start: the script's start decides.
        if let Ok(Observed::Active) = self.status(ctx) {
            return Ok(());
        }
        self.remember(None);
        self.run_action(ctx, "start")
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        if let Ok(Observed::Inactive) = self.status(ctx) {
            return Ok(());
        }
        self.remember(None);
        self.run_action(ctx, "stop")
    }
}

fn message(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    text.trim().lines().collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::drivers::{Timeouts, Units};
    use crate::exec::{Output, RecordingRunner};

    fn ctx<'a>(runner: &'a RecordingRunner, timeouts: &'a Timeouts) -> Context<'a> {
        Context::plain(runner, timeouts)
    }

    fn exit(code: i32, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// A script whose every look asks it (interval zero).
    fn script() -> Box<dyn Resource> {
        Box::new(ResourceScript::new(
            "/usr/local/lib/hakeep/app".into(),
            Duration::from_secs(7),
            Duration::ZERO,
        ))
    }

    #[test]
    fn a_status_answer_stands_for_its_interval_but_takes_and_releases_ask_again() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let c = ctx(&runner, &timeouts);
        let s = for_config(&Service::Script {
            path: "/usr/local/lib/hakeep/app".into(),
            timeout_secs: 7,
            interval_secs: 10,
        });
        runner.respond(|cmd| (cmd.argv[1] == "status").then(|| Ok(exit(3, ""))));
        assert_eq!(s.observe(&c).unwrap(), Observed::Inactive);
        assert_eq!(s.observe(&c).unwrap(), Observed::Inactive);
        assert_eq!(runner.calls().len(), 1, "the second look used the answer");
        s.take(&c).unwrap();
        runner.respond(|cmd| (cmd.argv[1] == "status").then(|| Ok(exit(0, ""))));
        // The take forgot the answer: the verify that follows asks.
        assert_eq!(s.observe(&c).unwrap(), Observed::Active);
        assert_eq!(
            runner.calls(),
            vec![
                "/usr/local/lib/hakeep/app status",
                "/usr/local/lib/hakeep/app status",
                "/usr/local/lib/hakeep/app start",
                "/usr/local/lib/hakeep/app status",
            ]
        );
    }

    /// systemd as a test sees it: units in memory, every call recorded.
    #[derive(Default)]
    struct FakeUnits {
        active: Mutex<Vec<String>>,
        calls: Mutex<Vec<String>>,
        fail: Mutex<Option<String>>,
    }

    impl Units for FakeUnits {
        fn is_active(&self, unit: &str) -> Result<bool, DriverError> {
            self.calls.lock().unwrap().push(format!("is-active {unit}"));
            Ok(self.active.lock().unwrap().iter().any(|u| u == unit))
        }
        fn start(&self, unit: &str, _: Duration) -> Result<(), DriverError> {
            self.calls.lock().unwrap().push(format!("start {unit}"));
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(DriverError::Failed(e));
            }
            self.active.lock().unwrap().push(unit.into());
            Ok(())
        }
        fn stop(&self, unit: &str, _: Duration) -> Result<(), DriverError> {
            self.calls.lock().unwrap().push(format!("stop {unit}"));
            self.active.lock().unwrap().retain(|u| u != unit);
            Ok(())
        }
    }

    #[test]
    fn unit_observe_start_and_stop_go_through_systemd_not_programs() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let units = FakeUnits::default();
        let c = Context {
            units: &units,
            ..Context::plain(&runner, &timeouts)
        };
        let unit = for_config(&Service::Unit("nginx.service".into()));
        assert_eq!(unit.id(), "service:nginx.service");
        assert_eq!(unit.kind(), Kind::Service);
        assert_eq!(unit.observe(&c).unwrap(), Observed::Inactive);
        unit.take(&c).unwrap();
        assert_eq!(unit.observe(&c).unwrap(), Observed::Active);
        unit.release(&c).unwrap();
        assert_eq!(
            *units.calls.lock().unwrap(),
            [
                "is-active nginx.service",
                "start nginx.service",
                "is-active nginx.service",
                "stop nginx.service"
            ]
        );
        assert!(runner.calls().is_empty(), "no program was run");
    }

    #[test]
    fn unit_start_failure_says_what_was_being_done() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let units = FakeUnits::default();
        *units.fail.lock().unwrap() = Some("job failed (result: exit-code)".into());
        let c = Context {
            units: &units,
            ..Context::plain(&runner, &timeouts)
        };
        let unit = for_config(&Service::Unit("nginx.service".into()));
        let err = unit.take(&c).unwrap_err().to_string();
        assert_eq!(
            err,
            "starting nginx.service: job failed (result: exit-code)"
        );
    }

    #[test]
    fn script_status_codes() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let c = ctx(&runner, &timeouts);
        let s = script();
        assert_eq!(s.id(), "script:/usr/local/lib/hakeep/app");
        assert_eq!(s.observe(&c).unwrap(), Observed::Active);
        runner.respond(|_| Some(Ok(exit(3, ""))));
        assert_eq!(s.observe(&c).unwrap(), Observed::Inactive);
        runner.respond(|_| Some(Ok(exit(1, "pid file exists"))));
        let err = s.observe(&c).unwrap_err().to_string();
        assert!(
            err.contains("exit 1") && err.contains("pid file exists"),
            "{err}"
        );
    }

    #[test]
    fn script_take_and_release_use_status_first_and_own_timeout() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let c = ctx(&runner, &timeouts);
        let s = script();
        runner.respond(|cmd| (cmd.argv[1] == "status").then(|| Ok(exit(3, ""))));
        s.take(&c).unwrap();
        s.release(&c).unwrap();
        assert_eq!(
            runner.calls(),
            vec![
                "/usr/local/lib/hakeep/app status",
                "/usr/local/lib/hakeep/app start",
                "/usr/local/lib/hakeep/app status",
            ]
        );
        runner.respond(|cmd| (cmd.argv[1] == "start").then(|| Ok(exit(1, "port in use"))));
        let err = s.take(&c).unwrap_err().to_string();
        assert_eq!(
            err,
            "/usr/local/lib/hakeep/app start: /usr/local/lib/hakeep/app exited 1: port in use"
        );
    }

    #[test]
    fn script_calls_carry_its_timeout() {
        let runner = RecordingRunner::new();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&seen);
        runner.respond(move |cmd| {
            log.lock().unwrap().push(cmd.timeout);
            None
        });
        let timeouts = Timeouts::default();
        script().release(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Duration::from_secs(7), Duration::from_secs(7)]
        );
    }
}
