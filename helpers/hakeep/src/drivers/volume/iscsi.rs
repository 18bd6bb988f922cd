//! iSCSI LUN with SCSI-3 persistent reservations (open-iscsi + sg3-utils, LIO target).
//! Fencing, as fence_scsi does it: each node registers its own key; the taker holds a
//! Write Exclusive reservation and preempt-aborts every other key, so a stale holder's
//! next write fails with a reservation conflict.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ensure_unused, under_root};
use crate::config::IscsiVolume;
use crate::drivers::{wait_until, Context, DriverError, Kind, Observed, Resource};
use crate::exec::{Cmd, ExecError, Output};

/// iscsiadm: no records / sessions / portals matched (ISCSI_ERR_NO_OBJS_FOUND).
const ISCSI_NO_OBJECTS: i32 = 21;
/// iscsiadm: the session already exists (ISCSI_ERR_SESS_EXISTS).
const ISCSI_SESSION_EXISTS: i32 = 15;
/// PR type 1: Write Exclusive.
const PROUT_TYPE: &str = "--prout-type=1";
/// TEST UNIT READY attempts: the first command after a login meets a unit attention.
const TUR_ATTEMPTS: usize = 5;
const TUR_PAUSE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

/// This node's reservation key: FNV-1a 64 over `cluster/node`, never 0 (0 means "no
/// key" to the target).
pub fn reservation_key(cluster: &str, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in cluster.bytes().chain(*b"/").chain(node.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash == 0 {
        1
    } else {
        hash
    }
}

/// A key as sg_persist takes it.
pub fn format_key(key: u64) -> String {
    format!("0x{key:016x}")
}

/// The udev by-path link of the LUN.
pub fn device_path(volume: &IscsiVolume) -> PathBuf {
    PathBuf::from(format!(
        "/dev/disk/by-path/ip-{}-iscsi-{}-lun-{}",
        volume.portal, volume.target, volume.lun
    ))
}

/// Whether `iscsiadm -m session` output lists a session to this target on this portal
/// (`tcp: [1] 192.168.56.10:3260,1 iqn.2026-11.org.example:nfs (non-flash)`).
pub fn has_session(sessions: &str, volume: &IscsiVolume) -> bool {
    let portal = format!("{},", volume.portal);
    sessions.lines().any(|line| {
        let mut tokens = line.split_whitespace();
        tokens.clone().any(|t| t == volume.target) && tokens.any(|t| t.starts_with(&portal))
    })
}

/// Keys from `sg_persist --in --read-keys` (duplicates kept: one per I_T nexus).
pub fn parse_read_keys(text: &str) -> Result<Vec<u64>, String> {
    if !text.contains("PR generation=") {
        return Err(format!("unexpected read-keys output: {}", text.trim()));
    }
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("0x"))
        .map(|l| parse_hex(l).ok_or_else(|| format!("bad key line {l:?}")))
        .collect()
}

/// The reservation from `sg_persist --in --read-reservation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub key: u64,
    /// As printed, e.g. `scope: LU_SCOPE,  type: Write Exclusive`.
    pub kind: String,
}

pub fn parse_read_reservation(text: &str) -> Result<Option<Reservation>, String> {
    if !text.contains("PR generation=") {
        return Err(format!(
            "unexpected read-reservation output: {}",
            text.trim()
        ));
    }
    if text.contains("NO reservation held") {
        return Ok(None);
    }
    let key = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Key"))
        .find_map(|rest| parse_hex(rest.trim_start().strip_prefix('=')?.trim()))
        .ok_or_else(|| format!("no Key= in read-reservation output: {}", text.trim()))?;
    let kind = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("scope:"))
        .unwrap_or_default()
        .to_string();
    Ok(Some(Reservation { key, kind }))
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

pub struct Iscsi {
    volume: IscsiVolume,
    root: PathBuf,
}

impl Iscsi {
    pub fn new(volume: IscsiVolume) -> Self {
        Iscsi {
            volume,
            root: PathBuf::from("/"),
        }
    }

    /// Looks for device paths under `root` instead of `/` (tests).
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    fn dev(&self) -> String {
        device_path(&self.volume).display().to_string()
    }

    fn device_exists(&self) -> bool {
        under_root(&self.root, Path::new(&self.dev())).exists()
    }

    fn what(&self) -> String {
        format!("iSCSI {} lun {}", self.volume.target, self.volume.lun)
    }

    fn fail(&self, doing: &str, e: impl Into<DriverError>) -> DriverError {
        e.into().context(format!("{}: {doing}", self.what()))
    }

    fn iscsiadm(&self, ctx: &Context, args: &[&str]) -> Result<Output, ExecError> {
        let argv = std::iter::once("iscsiadm").chain(args.iter().copied());
        ctx.runner.run(&Cmd::new(argv, ctx.timeouts.command))
    }

    fn node_args<'a>(&'a self, action: &'a str) -> [&'a str; 7] {
        [
            "-m",
            "node",
            "-T",
            &self.volume.target,
            "-p",
            &self.volume.portal,
            action,
        ]
    }

    fn session_present(&self, ctx: &Context) -> Result<bool, DriverError> {
        let out = self
            .iscsiadm(ctx, &["-m", "session"])
            .map_err(|e| self.fail("listing sessions", e))?;
        match out.code {
            Some(0) => Ok(has_session(&out.stdout, &self.volume)),
            Some(ISCSI_NO_OBJECTS) => Ok(false),
            _ => Err(self.fail("listing sessions", failed("iscsiadm", out))),
        }
    }

    fn login(&self, ctx: &Context) -> Result<(), DriverError> {
        let mut out = self
            .iscsiadm(ctx, &self.node_args("--login"))
            .map_err(|e| self.fail("logging in", e))?;
        if out.code == Some(ISCSI_NO_OBJECTS) {
            // No node record yet: discover the portal's targets, then log in.
            let discovery = ["-m", "discovery", "-t", "sendtargets", "-p"];
            let args: Vec<&str> = discovery
                .into_iter()
                .chain([&*self.volume.portal])
                .collect();
            let found = self
                .iscsiadm(ctx, &args)
                .map_err(|e| self.fail("discovering targets", e))?;
            if !found.success() {
                return Err(self.fail("discovering targets", failed("iscsiadm", found)));
            }
            out = self
                .iscsiadm(ctx, &self.node_args("--login"))
                .map_err(|e| self.fail("logging in", e))?;
        }
        match out.code {
            Some(0) | Some(ISCSI_SESSION_EXISTS) => Ok(()),
            _ => Err(self.fail("logging in", failed("iscsiadm", out))),
        }
    }

    fn sg_persist(&self, ctx: &Context, args: &[&str]) -> Result<Output, ExecError> {
        let dev = self.dev();
        let argv = ["sg_persist"]
            .into_iter()
            .chain(args.iter().copied())
            .chain([dev.as_str()]);
        ctx.runner.run(&Cmd::new(argv, ctx.timeouts.command))
    }

    /// PR OUT that must succeed.
    fn prout(&self, ctx: &Context, doing: &str, args: &[&str]) -> Result<(), DriverError> {
        let out = self
            .sg_persist(ctx, args)
            .map_err(|e| self.fail(doing, e))?;
        if out.success() {
            Ok(())
        } else {
            Err(self.fail(doing, failed("sg_persist", out)))
        }
    }

    /// PR IN, tried twice: a pending unit attention fails the first command only.
    fn prin(&self, ctx: &Context, what: &str) -> Result<String, DriverError> {
        let args = ["--in", "--no-inquiry", what];
        let mut out = self
            .sg_persist(ctx, &args)
            .map_err(|e| self.fail(what, e))?;
        if !out.success() {
            out = self
                .sg_persist(ctx, &args)
                .map_err(|e| self.fail(what, e))?;
        }
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.fail(what, failed("sg_persist", out)))
        }
    }

    fn read_keys(&self, ctx: &Context) -> Result<Vec<u64>, DriverError> {
        let text = self.prin(ctx, "--read-keys")?;
        parse_read_keys(&text).map_err(|e| self.fail("reading keys", DriverError::Failed(e)))
    }

    fn read_reservation(&self, ctx: &Context) -> Result<Option<Reservation>, DriverError> {
        let text = self.prin(ctx, "--read-reservation")?;
        parse_read_reservation(&text)
            .map_err(|e| self.fail("reading the reservation", DriverError::Failed(e)))
    }

    /// Clears a pending unit attention; the PR commands after it report real errors.
    fn test_unit_ready(&self, ctx: &Context) {
        for attempt in 0..TUR_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(TUR_PAUSE);
            }
            let cmd = Cmd::new(["sg_turs".to_string(), self.dev()], ctx.timeouts.command);
            if ctx.runner.run(&cmd).is_ok_and(|o| o.success()) {
                return;
            }
        }
        log::warn!(
            "{}: {} never answered TEST UNIT READY",
            self.what(),
            self.dev()
        );
    }

    fn preempt_abort(&self, ctx: &Context, mine: &str, theirs: u64) -> Result<(), DriverError> {
        log::warn!("{}: fencing key {}", self.what(), format_key(theirs));
        let rk = format!("--param-rk={mine}");
        let sark = format!("--param-sark={}", format_key(theirs));
        self.prout(
            ctx,
            &format!("preempting key {}", format_key(theirs)),
            &[
                "--out",
                "--no-inquiry",
                "--preempt-abort",
                &rk,
                &sark,
                PROUT_TYPE,
            ],
        )
    }
}

/// A non-zero exit as an error carrying stderr (or stdout when stderr is empty).
fn failed(program: &str, out: Output) -> ExecError {
    ExecError::Failed {
        program: program.to_string(),
        code: out.code,
        stderr: if out.stderr.trim().is_empty() {
            out.stdout
        } else {
            out.stderr
        },
    }
}

impl Resource for Iscsi {
    fn id(&self) -> String {
        format!("volume:iscsi:{}:{}", self.volume.target, self.volume.lun)
    }

    fn kind(&self) -> Kind {
        Kind::Volume
    }

    fn observe(&self, ctx: &Context) -> Result<Observed, DriverError> {
        if !self.device_exists() {
            return Ok(Observed::Inactive);
        }
        let mine = reservation_key(ctx.cluster, ctx.node);
        Ok(match self.read_reservation(ctx)? {
            Some(r) if r.key == mine => Observed::Active,
            _ => Observed::Inactive,
        })
    }

    fn take(&self, ctx: &Context) -> Result<(), DriverError> {
        if !self.session_present(ctx)? {
            self.login(ctx)?;
        }
        let wait = ctx.timeouts.device_wait;
        if !wait_until(wait, POLL, || self.device_exists()) {
            return Err(DriverError::Failed(format!(
                "{}: {} did not appear within {wait:?} after login",
                self.what(),
                self.dev()
            )));
        }
        self.test_unit_ready(ctx);

        let mine_key = reservation_key(ctx.cluster, ctx.node);
        let mine = format_key(mine_key);
        let sark = format!("--param-sark={mine}");
        self.prout(
            ctx,
            &format!("registering key {mine}"),
            &["--out", "--no-inquiry", "--register-ignore", &sark],
        )?;
        let mut keys = self.read_keys(ctx)?;
        let holder = self.read_reservation(ctx)?.map(|r| r.key);
        match holder {
            Some(k) if k == mine_key => {}
            Some(theirs) => self.preempt_abort(ctx, &mine, theirs)?,
            None => {
                let rk = format!("--param-rk={mine}");
                self.prout(
                    ctx,
                    "reserving",
                    &["--out", "--no-inquiry", "--reserve", &rk, PROUT_TYPE],
                )?;
            }
        }
        // Fence every other registrant too: a registered peer could reserve later.
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            if key != mine_key && Some(key) != holder {
                self.preempt_abort(ctx, &mine, key)?;
            }
        }
        Ok(())
    }

    fn release(&self, ctx: &Context) -> Result<(), DriverError> {
        if self.device_exists() {
            ensure_unused(
                &under_root(&self.root, Path::new(&self.dev())),
                &self.what(),
            )?;
            let mine_key = reservation_key(ctx.cluster, ctx.node);
            let mine = format_key(mine_key);
            let rk = format!("--param-rk={mine}");
            // Releasing what we don't hold fails harmlessly when we aren't registered.
            let args = ["--out", "--no-inquiry", "--release", &rk, PROUT_TYPE];
            if let Err(e) = self.prout(ctx, "releasing the reservation", &args) {
                if self
                    .read_reservation(ctx)?
                    .is_some_and(|r| r.key == mine_key)
                {
                    return Err(e);
                }
            }
            let args = ["--out", "--no-inquiry", "--register", &rk, "--param-sark=0"];
            if let Err(e) = self.prout(ctx, &format!("unregistering key {mine}"), &args) {
                if self.read_keys(ctx)?.contains(&mine_key) {
                    return Err(e);
                }
            }
        }
        let out = self
            .iscsiadm(ctx, &self.node_args("--logout"))
            .map_err(|e| self.fail("logging out", e))?;
        match out.code {
            Some(0) | Some(ISCSI_NO_OBJECTS) => Ok(()),
            _ => Err(self.fail("logging out", failed("iscsiadm", out))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Timeouts;
    use crate::exec::RecordingRunner;
    use std::fs;

    const TARGET: &str = "iqn.2026-11.org.example:nfs";
    const DEV: &str =
        "/dev/disk/by-path/ip-192.168.56.10:3260-iscsi-iqn.2026-11.org.example:nfs-lun-1";
    const MINE: &str = "0x6f93cfabb2776a45";
    const PEER: &str = "0x00000000000000ab";

    fn volume() -> IscsiVolume {
        IscsiVolume {
            portal: "192.168.56.10:3260".into(),
            target: TARGET.into(),
            lun: 1,
        }
    }

    /// A driver whose device exists under a scratch root (`present`) or not.
    fn driver(present: bool) -> (Iscsi, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        if present {
            let dev = under_root(root.path(), Path::new(DEV));
            fs::create_dir_all(dev.parent().unwrap()).unwrap();
            fs::write(dev, "").unwrap();
        }
        (Iscsi::new(volume()).with_root(root.path()), root)
    }

    fn ctx<'a>(runner: &'a RecordingRunner, timeouts: &'a Timeouts) -> Context<'a> {
        Context {
            cluster: "lab",
            node: "nfs1",
            ..Context::plain(runner, timeouts)
        }
    }

    fn answer(runner: &RecordingRunner, has: &'static str, code: i32, stdout: &'static str) {
        runner.respond(move |c| {
            (c.argv.join(" ").contains(has)).then(|| Ok(Output::ok(code, stdout)))
        });
    }

    #[test]
    fn reservation_key_is_stable_and_per_node() {
        assert_eq!(reservation_key("lab", "nfs1"), 0x6f93_cfab_b277_6a45);
        assert_eq!(format_key(reservation_key("lab", "nfs1")), MINE);
        assert_ne!(
            reservation_key("lab", "nfs1"),
            reservation_key("lab", "nfs2")
        );
        assert_ne!(
            reservation_key("lab", "nfs1"),
            reservation_key("prod", "nfs1")
        );
        assert_ne!(reservation_key("lab", "nfs1"), 0);
        assert_eq!(format_key(0xab), PEER);
    }

    #[test]
    fn parses_read_keys() {
        let two = "  PR generation=0x3, 2 registered reservation keys follow:\n    0x6f93cfabb2776a45\n    0xab\n";
        assert_eq!(
            parse_read_keys(two).unwrap(),
            vec![0x6f93_cfab_b277_6a45, 0xab]
        );
        let none = "  PR generation=0x0, there are NO registered reservation keys\n";
        assert_eq!(parse_read_keys(none).unwrap(), Vec::<u64>::new());
        let with_inquiry = "  LIO-ORG   nfs   4.0\n  Peripheral device type: disk\n  PR generation=0x1, 1 registered reservation key follows:\n    0x1\n";
        assert_eq!(parse_read_keys(with_inquiry).unwrap(), vec![1]);
        assert!(parse_read_keys("sg_persist: error opening file").is_err());
        assert!(parse_read_keys(
            "  PR generation=0x1, 1 registered reservation key follows:\n    0xzz\n"
        )
        .is_err());
    }

    #[test]
    fn parses_read_reservation() {
        let held = "  PR generation=0x3, Reservation follows:\n    Key=0xabc\n    scope: LU_SCOPE,  type: Write Exclusive\n";
        assert_eq!(
            parse_read_reservation(held).unwrap(),
            Some(Reservation {
                key: 0xabc,
                kind: "scope: LU_SCOPE,  type: Write Exclusive".into()
            })
        );
        let free = "  PR generation=0x3, there is NO reservation held\n";
        assert_eq!(parse_read_reservation(free).unwrap(), None);
        assert!(parse_read_reservation("  PR generation=0x3, Reservation follows:\n").is_err());
        assert!(parse_read_reservation("").is_err());
    }

    #[test]
    fn finds_sessions_by_target_and_portal() {
        let out = "tcp: [1] 192.168.56.10:3260,1 iqn.2026-11.org.example:nfs (non-flash)\n";
        assert!(has_session(out, &volume()));
        let other = "tcp: [1] 192.168.56.10:3260,1 iqn.2026-11.org.example:nfs2 (non-flash)\n";
        assert!(!has_session(other, &volume()));
        let other_portal =
            "tcp: [1] 192.168.56.20:3260,1 iqn.2026-11.org.example:nfs (non-flash)\n";
        assert!(!has_session(other_portal, &volume()));
    }

    #[test]
    fn fresh_take_logs_in_registers_and_reserves() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        answer(&runner, "-m session", 21, "");
        answer(
            &runner,
            "--read-keys",
            0,
            "  PR generation=0x1, 1 registered reservation key follows:\n    0x6f93cfabb2776a45\n",
        );
        answer(
            &runner,
            "--read-reservation",
            0,
            "  PR generation=0x1, there is NO reservation held\n",
        );
        drv.take(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            runner.calls(),
            vec![
                "iscsiadm -m session".to_string(),
                format!("iscsiadm -m node -T {TARGET} -p 192.168.56.10:3260 --login"),
                format!("sg_turs {DEV}"),
                format!("sg_persist --out --no-inquiry --register-ignore --param-sark={MINE} {DEV}"),
                format!("sg_persist --in --no-inquiry --read-keys {DEV}"),
                format!("sg_persist --in --no-inquiry --read-reservation {DEV}"),
                format!("sg_persist --out --no-inquiry --reserve --param-rk={MINE} --prout-type=1 {DEV}"),
            ]
        );
    }

    #[test]
    fn login_without_node_record_discovers_first() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        answer(&runner, "-m session", 21, "");
        let logins = std::sync::atomic::AtomicUsize::new(0);
        runner.respond(move |c| {
            if !c.argv.iter().any(|a| a == "--login") {
                return None;
            }
            let first = logins.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            first.then(|| {
                Ok(Output {
                    code: Some(21),
                    stdout: String::new(),
                    stderr: "iscsiadm: No records found".into(),
                })
            })
        });
        drv.login(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            runner.calls(),
            vec![
                format!("iscsiadm -m node -T {TARGET} -p 192.168.56.10:3260 --login"),
                "iscsiadm -m discovery -t sendtargets -p 192.168.56.10:3260".to_string(),
                format!("iscsiadm -m node -T {TARGET} -p 192.168.56.10:3260 --login"),
            ]
        );
    }

    #[test]
    fn take_from_a_peer_preempts_its_key_and_fences_the_rest() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        answer(
            &runner,
            "-m session",
            0,
            "tcp: [3] 192.168.56.10:3260,1 iqn.2026-11.org.example:nfs (non-flash)\n",
        );
        answer(&runner, "--read-keys", 0, "  PR generation=0x5, 3 registered reservation keys follow:\n    0xab\n    0x6f93cfabb2776a45\n    0xcd\n");
        answer(&runner, "--read-reservation", 0, "  PR generation=0x5, Reservation follows:\n    Key=0xab\n    scope: LU_SCOPE,  type: Write Exclusive\n");
        drv.take(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            runner.calls(),
            vec![
                "iscsiadm -m session".to_string(),
                format!("sg_turs {DEV}"),
                format!("sg_persist --out --no-inquiry --register-ignore --param-sark={MINE} {DEV}"),
                format!("sg_persist --in --no-inquiry --read-keys {DEV}"),
                format!("sg_persist --in --no-inquiry --read-reservation {DEV}"),
                format!("sg_persist --out --no-inquiry --preempt-abort --param-rk={MINE} --param-sark={PEER} --prout-type=1 {DEV}"),
                format!("sg_persist --out --no-inquiry --preempt-abort --param-rk={MINE} --param-sark=0x00000000000000cd --prout-type=1 {DEV}"),
            ]
        );
    }

    #[test]
    fn failed_preempt_carries_stderr() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        answer(
            &runner,
            "-m session",
            0,
            "tcp: [3] 192.168.56.10:3260,1 iqn.2026-11.org.example:nfs (non-flash)\n",
        );
        answer(
            &runner,
            "--read-keys",
            0,
            "  PR generation=0x5, 1 registered reservation key follows:\n    0xab\n",
        );
        answer(
            &runner,
            "--read-reservation",
            0,
            "  PR generation=0x5, Reservation follows:\n    Key=0xab\n",
        );
        runner.respond(|c| {
            c.argv.contains(&"--preempt-abort".into()).then(|| {
                Ok(Output {
                    code: Some(6),
                    stdout: String::new(),
                    stderr: "persistent reserve out: Reservation conflict".into(),
                })
            })
        });
        let err = drv.take(&ctx(&runner, &timeouts)).unwrap_err().to_string();
        assert!(err.contains("preempting key 0x00000000000000ab"), "{err}");
        assert!(err.contains("Reservation conflict"), "{err}");
    }

    #[test]
    fn take_fails_when_the_device_never_appears() {
        let (drv, _root) = driver(false);
        let (runner, timeouts) = (
            RecordingRunner::new(),
            Timeouts {
                device_wait: Duration::from_millis(50),
                ..Timeouts::default()
            },
        );
        answer(&runner, "-m session", 21, "");
        let err = drv.take(&ctx(&runner, &timeouts)).unwrap_err().to_string();
        assert!(err.contains("did not appear"), "{err}");
    }

    #[test]
    fn observe_needs_device_and_our_reservation() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let (absent, _r1) = driver(false);
        assert_eq!(
            absent.observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Inactive
        );
        assert!(runner.calls().is_empty());
        let (drv, _r2) = driver(true);
        answer(
            &runner,
            "--read-reservation",
            0,
            "  PR generation=0x5, Reservation follows:\n    Key=0x6f93cfabb2776a45\n",
        );
        assert_eq!(
            drv.observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Active
        );
        answer(
            &runner,
            "--read-reservation",
            0,
            "  PR generation=0x5, Reservation follows:\n    Key=0xab\n",
        );
        assert_eq!(
            drv.observe(&ctx(&runner, &timeouts)).unwrap(),
            Observed::Inactive
        );
    }

    #[test]
    fn release_releases_unregisters_and_logs_out() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        drv.release(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            runner.calls(),
            vec![
                format!("sg_persist --out --no-inquiry --release --param-rk={MINE} --prout-type=1 {DEV}"),
                format!("sg_persist --out --no-inquiry --register --param-rk={MINE} --param-sark=0 {DEV}"),
                format!("iscsiadm -m node -T {TARGET} -p 192.168.56.10:3260 --logout"),
            ]
        );
    }

    #[test]
    fn release_without_session_or_registration_is_fine() {
        let (drv, _root) = driver(true);
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        runner.respond(|c| {
            c.argv
                .contains(&"--out".into())
                .then(|| Ok(Output::ok(6, "")))
        });
        answer(
            &runner,
            "--read-reservation",
            0,
            "  PR generation=0x5, there is NO reservation held\n",
        );
        answer(
            &runner,
            "--read-keys",
            0,
            "  PR generation=0x5, there are NO registered reservation keys\n",
        );
        answer(&runner, "--logout", 21, "");
        drv.release(&ctx(&runner, &timeouts)).unwrap();
        let (gone, _r) = driver(false);
        let runner = RecordingRunner::new();
        answer(&runner, "--logout", 21, "");
        gone.release(&ctx(&runner, &timeouts)).unwrap();
        assert_eq!(
            runner.calls(),
            vec![format!(
                "iscsiadm -m node -T {TARGET} -p 192.168.56.10:3260 --logout"
            )]
        );
    }
}
