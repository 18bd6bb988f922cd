//! NVMesh volume through the client CLI: an exclusive read-write attach with preempt
//! (the storage fences the previous holder), then /dev/nvmesh/VOLUME appears.
//! The CLI's JSON answer decides success; its exit code is not relied upon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{ensure_unused, under_root};
use crate::config::NvmeshVolume;
use crate::drivers::{wait_until, Context, DriverError, Kind, Observed, Resource};
use crate::exec::{Cmd, Output};

const POLL: Duration = Duration::from_millis(100);
const ATTACHED: [&str; 3] = ["Attached IO Enabled", "Attached", "Already Attached"];

/// Checks `nvmesh_attach_volumes --json` output for `volume`.
pub fn check_attach(json: &str, volume: &str) -> Result<(), String> {
    check(json, volume, |status| ATTACHED.contains(&status))
}

/// Checks `nvmesh_detach_volumes --json` output for `volume`.
pub fn check_detach(json: &str, volume: &str) -> Result<(), String> {
    check(json, volume, |status| status == "Detached")
}

fn check(json: &str, volume: &str, good: impl Fn(&str) -> bool) -> Result<(), String> {
    let doc: Value = serde_json::from_str(json)
        .map_err(|e| format!("unreadable JSON ({e}): {}", json.trim()))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    if text(&doc, "status").as_deref() == Some("failed") {
        return Err(text(&doc, "error").unwrap_or_else(|| json.trim().to_string()));
    }
    let entry = doc
        .get("volumes")
        .and_then(|v| v.get(volume))
        .ok_or_else(|| format!("no entry for {volume} in {}", json.trim()))?;
    let status = text(entry, "status").unwrap_or_default();
    match text(entry, "error") {
        None if good(&status) => Ok(()),
        Some(error) => Err(format!("{status}: {error}")),
        None => Err(format!("status {status:?}")),
    }
}

pub struct Nvmesh {
    volume: NvmeshVolume,
    root: PathBuf,
}

impl Nvmesh {
    pub fn new(volume: NvmeshVolume) -> Self {
        Nvmesh {
            volume,
            root: PathBuf::from("/"),
        }
    }

    /// Looks for device paths under `root` instead of `/` (tests).
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    fn dev(&self) -> PathBuf {
        Path::new("/dev/nvmesh").join(&self.volume.volume)
    }

    fn device_exists(&self) -> bool {
        under_root(&self.root, &self.dev()).exists()
    }

    fn run_json(
        &self,
        ctx: &Context,
        argv: &[&str],
        doing: &str,
        check: fn(&str, &str) -> Result<(), String>,
    ) -> Result<(), DriverError> {
        let fail = |msg: String| {
            DriverError::Failed(format!(
                "{doing} NVMesh volume {}: {msg}",
                self.volume.volume
            ))
        };
        let out: Output = ctx
            .runner
            .run(&Cmd::new(argv.iter().copied(), ctx.timeouts.command))
            .map_err(|e| fail(e.to_string()))?;
        check(&out.stdout, &self.volume.volume).map_err(|msg| {
            let stderr = out.stderr.trim();
            if stderr.is_empty() {
                fail(msg)
            } else {
                fail(format!("{msg} (stderr: {stderr})"))
            }
        })
    }
}

impl Resource for Nvmesh {
    fn id(&self) -> String {
        format!("volume:nvmesh:{}", self.volume.volume)
    }

    fn kind(&self) -> Kind {
        Kind::Volume
    }

    fn observe(&self, _ctx: &Context) -> Result<Observed, DriverError> {
        Ok(if self.device_exists() {
            Observed::Active
        } else {
            Observed::Inactive
        })
    }

    fn take(&self, ctx: &Context) -> Result<(), DriverError> {
        // Always asked: "Already Attached" is cheap, and the attach carries the preempt.
        let argv = [
            "nvmesh_attach_volumes",
            "--wait_for_attach",
            "--json",
            "--access",
            "EXCLUSIVE_READ_WRITE",
            "--preempt",
            &self.volume.volume,
        ];
        self.run_json(ctx, &argv, "attaching", check_attach)?;
        let wait = ctx.timeouts.device_wait;
        if !wait_until(wait, POLL, || self.device_exists()) {
            return Err(DriverError::Failed(format!(
                "attaching NVMesh volume {}: {} did not appear within {wait:?}",
                self.volume.volume,
                self.dev().display()
            )));
        }
        Ok(())
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        if !self.device_exists() {
            return Ok(());
        }
        ensure_unused(
            &self.dev(),
            &format!("NVMesh volume {}", self.volume.volume),
        )?;
        let argv = ["nvmesh_detach_volumes", "--json", &self.volume.volume];
        self.run_json(ctx, &argv, "detaching", check_detach)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Timeouts;
    use crate::exec::RecordingRunner;
    use std::fs;

    const ATTACH: &str =
        "nvmesh_attach_volumes --wait_for_attach --json --access EXCLUSIVE_READ_WRITE --preempt db1";

    fn ctx<'a>(runner: &'a RecordingRunner, timeouts: &'a Timeouts) -> Context<'a> {
        Context {
            cluster: "lab",
            node: "db-a",
            ..Context::plain(runner, timeouts)
        }
    }

    fn driver(present: bool) -> (Nvmesh, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        if present {
            fs::create_dir_all(root.path().join("dev/nvmesh")).unwrap();
            fs::write(root.path().join("dev/nvmesh/db1"), "").unwrap();
        }
        let vol = NvmeshVolume {
            volume: "db1".into(),
        };
        (Nvmesh::new(vol).with_root(root.path()), root)
    }

    fn stdout(runner: &RecordingRunner, json: &'static str) {
        runner.respond(move |_| Some(Ok(Output::ok(0, json))));
    }

    #[test]
    fn parses_attach_and_detach_answers() {
        let ok = r#"{"status":"success","volumes":{"db1":{"status":"Attached IO Enabled"}}}"#;
        assert_eq!(check_attach(ok, "db1"), Ok(()));
        let again = r#"{"volumes":{"db1":{"status":"Already Attached"}}}"#;
        assert_eq!(check_attach(again, "db1"), Ok(()));
        let with_error = r#"{"volumes":{"db1":{"status":"Attached","error":"IO disabled"}}}"#;
        assert_eq!(
            check_attach(with_error, "db1"),
            Err("Attached: IO disabled".into())
        );
        let other = r#"{"volumes":{"db2":{"status":"Attached"}}}"#;
        assert!(check_attach(other, "db1").is_err());
        assert!(check_attach("not json", "db1").is_err());
        let detached = r#"{"status":"success","volumes":{"db1":{"status":"Detached"}}}"#;
        assert_eq!(check_detach(detached, "db1"), Ok(()));
        assert!(check_detach(ok, "db1").is_err());
    }

    #[test]
    fn attach_success_waits_for_the_device() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        stdout(
            &runner,
            r#"{"status":"success","volumes":{"db1":{"status":"Attached IO Enabled"}}}"#,
        );
        drv.take(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(runner.calls(), vec![ATTACH]);
        assert_eq!(drv.id(), "volume:nvmesh:db1");
        assert_eq!(
            drv.observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Active
        );
    }

    #[test]
    fn attach_failure_reports_the_cli_error() {
        let (drv, _root) = driver(false);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        stdout(
            &runner,
            r#"{"status":"failed","error":"Volume db1 is attached exclusively by node db-b"}"#,
        );
        let err = drv.take(&ctx(&runner, &timeouts)).unwrap_err().to_string();
        assert_eq!(
            err,
            "attaching NVMesh volume db1: Volume db1 is attached exclusively by node db-b"
        );
        assert_eq!(runner.calls(), vec![ATTACH]);
    }

    #[test]
    fn attach_without_device_times_out() {
        let (drv, _root) = driver(false);
        let runner = RecordingRunner::new();
        let timeouts = Timeouts {
            device_wait: Duration::from_millis(50),
            ..Timeouts::default()
        };
        stdout(&runner, r#"{"volumes":{"db1":{"status":"Attached"}}}"#);
        let err = drv.take(&ctx(&runner, &timeouts)).unwrap_err().to_string();
        assert!(err.contains("/dev/nvmesh/db1 did not appear"), "{err}");
    }

    #[test]
    fn release_detaches_only_when_attached() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        stdout(
            &runner,
            r#"{"status":"success","volumes":{"db1":{"status":"Detached"}}}"#,
        );
        let (absent, _r1) = driver(false);
        absent.release(&ctx(&runner, &timeouts)).unwrap();
        assert!(runner.calls().is_empty());
        let (drv, _r2) = driver(true);
        drv.release(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(runner.calls(), vec!["nvmesh_detach_volumes --json db1"]);
        stdout(
            &runner,
            r#"{"volumes":{"db1":{"status":"Busy","error":"volume in use"}}}"#,
        );
        let err = drv
            .release(&ctx(&runner, &timeouts))
            .unwrap_err()
            .to_string();
        assert!(err.contains("volume in use"), "{err}");
    }
}
