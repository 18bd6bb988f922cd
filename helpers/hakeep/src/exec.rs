//! The one way hakeep runs programs: argv (never a shell), a timeout, stderr kept.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A program and its arguments, with the longest it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Variables the program gets on top of the fixed minimal environment.
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn new<I, S>(argv: I, timeout: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout,
            env: Vec::new(),
        }
    }

    /// Adds environment variables (alert programs get the event this way).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// The command line for logs (quoted only where needed to read it back).
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn ok(code: i32, stdout: &str) -> Self {
        Output {
            code: Some(code),
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("{program}: cannot start: {reason}")]
    Spawn { program: String, reason: String },
    #[error("{program}: still running after {timeout:?}, killed{}", stderr_suffix(.stderr))]
    Timeout {
        program: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("{program} {}{}", exit_text(.code), stderr_suffix(.stderr))]
    Failed {
        program: String,
        code: Option<i32>,
        stderr: String,
    },
}

fn exit_text(code: &Option<i32>) -> String {
    match code {
        Some(c) => format!("exited {c}"),
        None => "was killed by a signal".to_string(),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {}", trimmed.lines().collect::<Vec<_>>().join(" / "))
    }
}

/// Runs commands. Drivers take one of these and never spawn processes themselves.
pub trait Runner: Send + Sync {
    /// Runs to completion or timeout; a non-zero exit is an `Ok` output.
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError>;

    /// Runs and turns a non-zero exit into an error that carries stderr.
    fn run_ok(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let out = self.run(cmd)?;
        if out.success() {
            Ok(out)
        } else {
            Err(ExecError::Failed {
                program: cmd.program().to_string(),
                code: out.code,
                stderr: if out.stderr.trim().is_empty() {
                    out.stdout
                } else {
                    out.stderr
                },
            })
        }
    }
}

/// The only directories programs are looked up in.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Most of each stream a call keeps; the rest is dropped (and said so).
pub const MAX_OUTPUT: usize = 1 << 20;
/// After the program exits, how long its output may still arrive: a daemon it started
/// in the background and that kept the pipes open must not hold the call.
const EOF_GRACE: Duration = Duration::from_millis(200);
/// After the KILL of a timed-out program, how long to wait for it to be reaped; a
/// process in uninterruptible sleep may never be, and the call returns anyway.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// Runs real processes, each in its own process group so a timeout kills all of it.
/// Every call returns within its timeout plus about REAP_WAIT, whatever the program's
/// descendants do: output is read without threads, with a deadline, and a child that
/// does not die after its KILL is left to a reaper thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        use std::os::unix::process::CommandExt;
        let program = cmd.program().to_string();
        let spawn_error = |e: std::io::Error| ExecError::Spawn {
            program: program.clone(),
            reason: e.to_string(),
        };
        let mut child = Command::new(resolve(&program))
            .args(&cmd.argv[1..])
            // The caller's environment is not trusted: children get a fixed, minimal one,
            // and programs named without a path are looked up in SAFE_PATH only.
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("LC_ALL", "C")
            .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        let started = Instant::now();
        let deadline = started + cmd.timeout;
        let mut out = Capture::new(child.stdout.take());
        let mut err = Capture::new(child.stderr.take());
        let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
        loop {
            if exited.is_none() {
                if let Some(status) = child.try_wait().map_err(spawn_error)? {
                    exited = Some((status, Instant::now()));
                }
            }
            let now = Instant::now();
            let open = out.open() || err.open();
            match exited {
                Some(_) if !open => break,
                Some((_, at)) if now >= at + EOF_GRACE => break,
                None if now >= deadline => {
                    kill_group(child.id());
                    reap_bounded(child);
                    return Err(ExecError::Timeout {
                        program,
                        timeout: cmd.timeout,
                        stderr: err.text(),
                    });
                }
                _ => {}
            }
            let limit = match exited {
                Some((_, at)) => at + EOF_GRACE,
                None => deadline,
            };
            // Short slices: the exit of a program whose output stays open is seen soon.
            let slice = limit
                .saturating_duration_since(now)
                .min(Duration::from_millis(20));
            wait_readable(&mut out, &mut err, slice);
        }
        let (status, _) = exited.ok_or_else(|| spawn_error(std::io::Error::other("no exit")))?;
        Ok(Output {
            code: status.code(),
            stdout: out.text(),
            stderr: err.text(),
        })
    }
}

/// One output stream of a child, read without blocking, kept up to MAX_OUTPUT.
struct Capture<R> {
    pipe: Option<R>,
    bytes: Vec<u8>,
    dropped: usize,
}

impl<R: Read + std::os::fd::AsFd> Capture<R> {
    fn new(pipe: Option<R>) -> Self {
        let pipe = pipe.filter(|p| rustix::io::ioctl_fionbio(p, true).is_ok());
        Capture {
            pipe,
            bytes: Vec::new(),
            dropped: 0,
        }
    }

    fn open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Reads what is there; closes the pipe at EOF or on an error.
    fn drain(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(self.bytes.len()).min(n);
                    self.bytes.extend_from_slice(&chunk[..room]);
                    self.dropped += n - room;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&mut self) -> String {
        self.drain();
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!("\n[{} more bytes not kept]", self.dropped));
        }
        text
    }
}

/// Waits up to `limit` for either open stream to be readable, then reads both.
fn wait_readable<A, B>(a: &mut Capture<A>, b: &mut Capture<B>, limit: Duration)
where
    A: Read + std::os::fd::AsFd,
    B: Read + std::os::fd::AsFd,
{
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    {
        let mut fds: Vec<PollFd> = Vec::with_capacity(2);
        if let Some(p) = a.pipe.as_ref() {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if let Some(p) = b.pipe.as_ref() {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        let timeout = Timespec {
            tv_sec: limit.as_secs() as i64,
            tv_nsec: i64::from(limit.subsec_nanos()),
        };
        if fds.is_empty() {
            thread::sleep(limit);
        } else {
            let _ = poll(&mut fds, Some(&timeout));
        }
    }
    a.drain();
    b.drain();
}

/// Waits a little for a killed child; one that cannot die yet (uninterruptible sleep) is
/// handed to a thread that reaps it whenever it does, so the call returns now.
fn reap_bounded(mut child: std::process::Child) {
    let until = Instant::now() + REAP_WAIT;
    while Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id();
    let _ = thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            let _ = child.wait();
        });
}

/// The program's absolute path in SAFE_PATH. Spawning by path (not by name with a PATH
/// set for the child) lets std use posix_spawn instead of forking the whole agent.
fn resolve(program: &str) -> std::path::PathBuf {
    if program.contains('/') {
        return program.into();
    }
    SAFE_PATH
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| program.into())
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Records every command and answers from a script: for tests of ordering and errors.
#[derive(Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Cmd>>,
    #[allow(clippy::type_complexity)]
    responders: Mutex<Vec<Box<dyn Fn(&Cmd) -> Option<Result<Output, ExecError>> + Send>>>,
}

impl RecordingRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a responder; the most recently added one that answers wins. Unanswered
    /// commands succeed with empty output.
    pub fn respond(&self, f: impl Fn(&Cmd) -> Option<Result<Output, ExecError>> + Send + 'static) {
        self.responders
            .lock()
            .expect("responders lock")
            .push(Box::new(f));
    }

    /// Every command run so far, as space-joined argv.
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .expect("calls lock")
            .iter()
            .map(|c| c.argv.join(" "))
            .collect()
    }

    /// Every command run so far, whole (with its environment).
    pub fn commands(&self) -> Vec<Cmd> {
        self.calls.lock().expect("calls lock").clone()
    }
}

impl Runner for RecordingRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.calls.lock().expect("calls lock").push(cmd.clone());
        let responders = self.responders.lock().expect("responders lock");
        for responder in responders.iter().rev() {
            if let Some(answer) = responder(cmd) {
                return answer;
            }
        }
        Ok(Output::ok(0, ""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_runner_keeps_stderr_and_exit_code() {
        let cmd = Cmd::new(
            ["sh", "-c", "echo oops >&2; exit 3"],
            Duration::from_secs(5),
        );
        let err = SystemRunner.run_ok(&cmd).unwrap_err();
        assert_eq!(err.to_string(), "sh exited 3: oops");
    }

    #[test]
    fn real_runner_kills_after_timeout() {
        let cmd = Cmd::new(["sleep", "5"], Duration::from_millis(100));
        let started = Instant::now();
        let err = SystemRunner.run(&cmd).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn children_get_a_fixed_environment() {
        let out = SystemRunner
            .run_ok(&Cmd::new(["env"], Duration::from_secs(5)))
            .unwrap();
        let mut vars: Vec<&str> = out.stdout.lines().collect();
        vars.sort();
        assert_eq!(
            vars,
            vec!["LC_ALL=C".to_string(), format!("PATH={SAFE_PATH}")]
        );
    }

    /// A program that leaves a background child holding its output returns when it
    /// exits, not when the child does.
    #[test]
    fn a_background_child_holding_the_pipes_does_not_hold_the_call() {
        let cmd = Cmd::new(
            ["sh", "-c", "sleep 5 & echo started"],
            Duration::from_secs(3),
        );
        let started = Instant::now();
        let out = SystemRunner.run_ok(&cmd).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.stdout.trim(), "started");
    }

    /// A timed-out program whose grandchild left its process group is still cut at the
    /// timeout (plus the bounded reap).
    #[test]
    fn a_timeout_holds_even_when_a_grandchild_escapes_the_group() {
        let cmd = Cmd::new(
            ["sh", "-c", "setsid sleep 6 & sleep 6"],
            Duration::from_millis(300),
        );
        let started = Instant::now();
        let err = SystemRunner.run(&cmd).unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn output_is_kept_up_to_a_bound() {
        let cmd = Cmd::new(
            ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"],
            Duration::from_secs(10),
        );
        let out = SystemRunner.run_ok(&cmd).unwrap();
        assert!(out.stdout.len() < MAX_OUTPUT + 100, "{}", out.stdout.len());
        assert!(
            out.stdout.ends_with("more bytes not kept]"),
            "{}",
            &out.stdout[out.stdout.len() - 40..]
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let cmd = Cmd::new(["/nonexistent/prog"], Duration::from_secs(1));
        assert!(matches!(
            SystemRunner.run(&cmd),
            Err(ExecError::Spawn { .. })
        ));
    }

    #[test]
    fn recording_runner_answers_from_latest_responder() {
        let runner = RecordingRunner::new();
        runner.respond(|c| (c.program() == "a").then(|| Ok(Output::ok(1, "first"))));
        runner.respond(|c| (c.program() == "a").then(|| Ok(Output::ok(2, "second"))));
        let out = runner
            .run(&Cmd::new(["a", "x"], Duration::from_secs(1)))
            .unwrap();
        assert_eq!(out.code, Some(2));
        assert_eq!(runner.calls(), vec!["a x".to_string()]);
    }
}
