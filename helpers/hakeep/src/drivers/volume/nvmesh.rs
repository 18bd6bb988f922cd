//! NVMesh volume through the client CLI: an exclusive read-write attach with preempt
//! (the storage fences the previous holder), then /dev/nvmesh/VOLUME appears.
//! The CLI's JSON answer decides success; its exit code is not relied upon.
//!
//! Whether this node holds the volume comes from the client's own status
//! (nvmesh_status.rs), never from the device node: a node that was preempted keeps its
//! /dev/nvmesh/VOLUME, and taking that for ownership would skip the attach (and its
//! preempt) and hide the fence.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::nvmesh_status::{self, Ownership};
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

    /// Looks for device paths and the client's /proc files under `root` instead of `/`
    /// (tests).
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

    /// What the NVMesh client says about this node's attach of the volume.
    fn ownership(&self) -> Result<Ownership, String> {
        nvmesh_status::read(
            &under_root(&self.root, Path::new("/proc")),
            &self.volume.volume,
        )
    }

    /// Ours: attached here exclusively read-write with IO enabled, and the device there.
    fn owned(&self) -> Result<bool, String> {
        Ok(self.ownership()? == Ownership::Owned && self.device_exists())
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
        match self.owned() {
            Ok(true) => Ok(Observed::Active),
            Ok(false) => Ok(Observed::Inactive),
            // Unknown is neither: not released blind, not reported as fenced.
            Err(e) => Err(DriverError::Failed(format!(
                "NVMesh volume {}: {e}",
                self.volume.volume
            ))),
        }
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
        // The CLI said attached; the client must also say the reservation is ours.
        if !wait_until(wait, POLL, || self.owned() == Ok(true)) {
            let why = match self.ownership() {
                Ok(o) => o.to_string(),
                Err(e) => e,
            };
            return Err(DriverError::Failed(format!(
                "attaching NVMesh volume {}: the client does not report it as this node's \
                 within {wait:?} ({why})",
                self.volume.volume
            )));
        }
        Ok(())
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        let attached = self
            .ownership()
            .map_or(true, |o| o != Ownership::NotAttached);
        if !self.device_exists() && !attached {
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

    const OWNED: &str = r#"{"status":"IO Enabled","reservation":{"mode":"EXCLUSIVE_READ_WRITE"}}"#;
    /// What a client that was preempted by another node shows: still attached, no IO.
    const PREEMPTED: &str =
        r#"{"status":"IO Disabled","reservation":{"mode":"EXCLUSIVE_READ_WRITE"}}"#;

    /// Writes the client's status file of db1 under the fake root.
    fn client_status(root: &Path, json: &str) {
        let path = nvmesh_status::status_path(&root.join("proc"), "db1");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, json).unwrap();
    }

    /// Answers the attach as the CLI and the client do: success, and the status file
    /// now says the volume is this node's.
    fn attach_succeeds(runner: &RecordingRunner, root: &Path) {
        let root = root.to_path_buf();
        runner.respond(move |cmd| {
            (cmd.program() == "nvmesh_attach_volumes").then(|| {
                client_status(&root, OWNED);
                Ok(Output::ok(
                    0,
                    r#"{"status":"success","volumes":{"db1":{"status":"Attached IO Enabled"}}}"#,
                ))
            })
        });
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
        let (drv, root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        attach_succeeds(&runner, root.path());
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

    /// The device node of a preempted client stays; it is not ownership. Converging to
    /// active attaches with preempt (the old driver saw the node, called the volume
    /// active and skipped the attach), and the watch sees the volume as lost.
    #[test]
    fn a_device_node_without_ownership_is_attached_with_preempt() {
        use crate::agent::reconcile::{converge, Desired, Outcome};
        let (drv, root) = driver(true);
        client_status(root.path(), PREEMPTED);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        assert_eq!(
            drv.observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Inactive,
            "a preempted attach is not this node's"
        );
        attach_succeeds(&runner, root.path());
        let resources: Vec<Box<dyn Resource>> = vec![Box::new(drv)];
        let (outcome, _) = converge(
            &ctx(&runner, &timeouts),
            &resources,
            Desired::Active,
            &mut |_| {},
        );
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(runner.calls(), vec![ATTACH]);
        // Owned now: the next converge has nothing to do.
        let (again, _) = converge(
            &ctx(&runner, &timeouts),
            &resources,
            Desired::Active,
            &mut |_| {},
        );
        assert_eq!(again, Outcome::AlreadyThere);
        assert_eq!(runner.calls().len(), 1);
        // Without a status file, the device node alone is not ours either.
        fs::remove_file(nvmesh_status::status_path(&root.path().join("proc"), "db1")).unwrap();
        assert_eq!(
            resources[0].observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Inactive
        );
    }

    #[test]
    fn an_attach_the_client_does_not_confirm_fails() {
        let (drv, root) = driver(true);
        client_status(root.path(), PREEMPTED);
        let runner = RecordingRunner::new();
        let timeouts = Timeouts {
            device_wait: Duration::from_millis(50),
            ..Timeouts::default()
        };
        stdout(&runner, r#"{"volumes":{"db1":{"status":"Attached"}}}"#);
        let err = drv.take(&ctx(&runner, &timeouts)).unwrap_err().to_string();
        assert!(err.contains("does not report it as this node's"), "{err}");
    }
}
