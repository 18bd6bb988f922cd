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
        }
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

/// Runs real processes, each in its own process group so a timeout kills all of it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        use std::os::unix::process::CommandExt;
        let program = cmd.program().to_string();
        let mut child = Command::new(resolve(&program))
            .args(&cmd.argv[1..])
            // The caller's environment is not trusted: children get a fixed, minimal one,
            // and programs named without a path are looked up in SAFE_PATH only.
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| ExecError::Spawn {
                program: program.clone(),
                reason: e.to_string(),
            })?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= cmd.timeout => break None,
                Ok(None) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(ExecError::Spawn {
                        program,
                        reason: e.to_string(),
                    })
                }
            }
        };
        let Some(status) = status else {
            kill_group(child.id());
            let _ = child.wait();
            return Err(ExecError::Timeout {
                program,
                timeout: cmd.timeout,
                stderr: stderr.join().unwrap_or_default(),
            });
        };
        Ok(Output {
            code: status.code(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }
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

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
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
