//! Watching and driving systemd units over D-Bus.
//!
//! Unit states come from signals (no polling); start/stop wait for the job's `JobRemoved`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use serde::Deserialize;
use zbus::blocking::{connection::Builder, Connection, MessageIterator};
use zbus::connection::socket::{ReadHalf, Split, WriteHalf};
use zbus::message::Sequence;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Type, Value};
use zbus::{MatchRule, Message};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const PROPS_IFACE: &str = "org.freedesktop.DBus.Properties";
const PRIVATE_SOCKET: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// Bound for every D-Bus call, for connecting/authenticating and for each socket write.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long callers wait for a reconnection before giving up.
const RECONNECT_WAIT: Duration = Duration::from_secs(10);
const JOB_KEEP: Duration = Duration::from_secs(60);
/// Signal queue; a full one stalls zbus' socket reader (and so all replies): keep it large.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// Service.Result (or Socket/Mount/... Result), e.g. "success", "exit-code"; empty if unknown.
    pub result: String,
}

impl UnitState {
    /// "active" or "reloading".
    pub fn is_active(&self) -> bool {
        self.active_state == "active" || self.active_state == "reloading"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot connect to systemd at {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("systemd call {what} failed: {reason}")]
    Call { what: String, reason: String },
    #[error("{verb} of {unit} failed: job result '{result}', unit result '{unit_result}' (see 'journalctl -u {unit}')")]
    JobFailed {
        unit: String,
        verb: String,
        result: String,
        unit_result: String,
    },
    #[error("{verb} of {unit} did not finish within {secs} s; its job stays queued (see 'systemctl list-jobs', 'journalctl -u {unit}')")]
    Timeout {
        unit: String,
        verb: String,
        secs: u64,
    },
    #[error("not connected to systemd")]
    Disconnected,
}

/// One entry of ListUnitsByNames' a(ssssssouso).
#[derive(Debug, Deserialize, Type)]
#[zvariant(crate = "zbus::zvariant")]
struct Listed {
    name: String,
    _description: String,
    load_state: String,
    active_state: String,
    sub_state: String,
    _following: String,
    _path: OwnedObjectPath,
    _job_id: u32,
    _job_type: String,
    _job_path: OwnedObjectPath,
}

struct Inner {
    conn: Option<Connection>,
    /// Bumped on every (re)connection; messages of older connections are ignored.
    generation: u64,
    /// Cached state, and the receive position of the message that set it: older data must
    /// not win (a ListUnitsByNames reply racing with signals).
    units: HashMap<String, (UnitState, Sequence)>,
    /// Finished jobs (path → result, when): JobRemoved may beat the StartUnit reply.
    jobs: HashMap<String, (String, Instant)>,
    /// Between Reloading(true) and (false): systemd sends UnitRemoved for every unit then.
    reloading: bool,
}

type OnChange = Box<dyn Fn(&str) + Send + Sync>;

/// One connection to systemd (PID 1) with a cache of the watched units' states, kept up to date
/// by signals on a thread "systemd-events". `on_change` runs on that thread (or on the caller of
/// `refresh`): it must return quickly and must not call `start`/`stop`.
pub struct Systemd {
    /// None: the private socket if present, else the system bus.
    address: Option<(String, bool)>,
    /// Object path → name of the watched units.
    paths: HashMap<String, String>,
    names: Vec<String>,
    inner: Mutex<Inner>,
    /// Signalled on job completion and on connection changes.
    cv: Condvar,
    on_change: OnChange,
}

/// D-Bus object path of a unit, as systemd's bus_label_escape builds it.
pub fn unit_object_path(unit: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        path.push('_');
    }
    for (i, b) in unit.bytes().enumerate() {
        // Like systemd, a leading digit is escaped too.
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            path.push(char::from(b));
        } else {
            let _ = write!(path, "_{b:02x}");
        }
    }
    path
}

fn call_error(what: &str, e: zbus::Error) -> SystemdError {
    match &e {
        zbus::Error::InputOutput(io) if io.kind() != io::ErrorKind::TimedOut => {
            debug!("systemd: {what}: {e}");
            SystemdError::Disconnected
        }
        _ => SystemdError::Call {
            what: what.to_string(),
            reason: e.to_string(),
        },
    }
}

/// A method call to systemd, bounded by the connection's method timeout.
fn call<B: serde::Serialize + DynamicType>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<Message> {
    conn.call_method(Some(DEST), path, Some(iface), method, body)
}

fn get(conn: &Connection, path: &str, iface: &str, prop: &str) -> zbus::Result<OwnedValue> {
    call(conn, path, PROPS_IFACE, "Get", &(iface, prop))?
        .body()
        .deserialize()
}

/// The interface holding a unit's Result property ("a.service" → "...systemd1.Service").
fn result_interface(unit: &str) -> Option<String> {
    let (_, kind) = unit.rsplit_once('.')?;
    let mut chars = kind.chars();
    let first = chars.next()?.to_ascii_uppercase();
    Some(format!(
        "org.freedesktop.systemd1.{first}{}",
        chars.as_str()
    ))
}

impl Systemd {
    /// Connects to systemd's private socket /run/systemd/private (peer-to-peer, root only, no bus
    /// daemon needed), or to the system bus when that socket is absent; subscribes, reads the
    /// `units` (one ListUnitsByNames call) and starts the "systemd-events" thread.
    pub fn connect(
        units: &[String],
        on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Arc<Systemd>, SystemdError> {
        Self::launch(Self::new(None, units, Box::new(on_change)))
    }

    /// Same, with an explicit `unix:path=` address, and whether it is peer-to-peer.
    pub fn connect_to(
        address: &str,
        p2p: bool,
        units: &[String],
        on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Arc<Systemd>, SystemdError> {
        let address = Some((address.to_string(), p2p));
        Self::launch(Self::new(address, units, Box::new(on_change)))
    }

    fn new(address: Option<(String, bool)>, units: &[String], on_change: OnChange) -> Systemd {
        let cached = units.iter().map(|u| (u.clone(), Default::default()));
        Systemd {
            address,
            paths: units
                .iter()
                .map(|u| (unit_object_path(u), u.clone()))
                .collect(),
            names: units.to_vec(),
            inner: Mutex::new(Inner {
                conn: None,
                generation: 0,
                units: cached.collect(),
                jobs: HashMap::new(),
                reloading: false,
            }),
            cv: Condvar::new(),
            on_change,
        }
    }

    fn launch(sd: Systemd) -> Result<Arc<Systemd>, SystemdError> {
        let sd = Arc::new(sd);
        let (iter, generation) = sd.open()?;
        let weak = Arc::downgrade(&sd);
        std::thread::Builder::new()
            .name("systemd-events".into())
            .spawn(move || events_loop(weak, iter, generation))
            .map_err(|e| SystemdError::Connect {
                address: "(events thread)".into(),
                reason: e.to_string(),
            })?;
        Ok(sd)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking on_change must not wedge the agent; the data stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Inner>, d: Duration) -> MutexGuard<'a, Inner> {
        let r = self.cv.wait_timeout(guard, d);
        r.unwrap_or_else(|e| e.into_inner()).0
    }

    /// Connects, subscribes, installs the connection and reads all units.
    fn open(&self) -> Result<(MessageIterator, u64), SystemdError> {
        let (address, p2p) = match &self.address {
            Some(a) => a.clone(),
            None if std::path::Path::new(PRIVATE_SOCKET).exists() => {
                (format!("unix:path={PRIVATE_SOCKET}"), true)
            }
            None => (SYSTEM_BUS.to_string(), false),
        };
        let fail = |reason: String| SystemdError::Connect {
            address: address.clone(),
            reason,
        };
        let conn = dial(&address).map_err(fail)?;
        // Created before Subscribe/ListUnitsByNames, so no signal falls in between.
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .build();
        let iter = MessageIterator::for_match_rule(rule, &conn, Some(QUEUE))
            .map_err(|e| fail(e.to_string()))?;
        let ctx = |what: &'static str| move |e: zbus::Error| fail(format!("{what}: {e}"));
        if !p2p {
            // zbus treats the connection as p2p (see dial): do the bus part here.
            let (bus, bus_path) = (Some("org.freedesktop.DBus"), "/org/freedesktop/DBus");
            let hello = conn.call_method(bus, bus_path, bus, "Hello", &());
            hello.map_err(ctx("Hello"))?;
            let rule = format!("type='signal',sender='{DEST}'");
            let added = conn.call_method(bus, bus_path, bus, "AddMatch", &rule);
            added.map_err(ctx("AddMatch"))?;
        }
        // Direct connections get all signals anyway; on the bus this enables them.
        call(&conn, MANAGER_PATH, MANAGER, "Subscribe", &()).map_err(ctx("Subscribe"))?;
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            inner.conn = Some(conn.clone());
            inner.reloading = false;
            inner
                .units
                .values_mut()
                .for_each(|c| c.1 = Sequence::default());
            inner.generation
        };
        self.cv.notify_all();
        info!("systemd: connected to {address} (p2p: {p2p})");
        if let Err(e) = self.refresh_on(&conn, generation) {
            warn!("systemd: reading unit states failed: {e}");
        }
        Ok((iter, generation))
    }

    fn disconnected(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation == generation && inner.conn.take().is_some() {
            warn!("systemd: connection lost, reconnecting");
        }
        drop(inner);
        self.cv.notify_all();
    }

    /// The current connection, waiting up to RECONNECT_WAIT while it is down.
    fn conn(&self) -> Result<(Connection, u64), SystemdError> {
        let deadline = Instant::now() + RECONNECT_WAIT;
        let mut inner = self.lock();
        loop {
            if let Some(c) = &inner.conn {
                return Ok((c.clone(), inner.generation));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SystemdError::Disconnected);
            }
            inner = self.wait(inner, left);
        }
    }

    /// The cached state (no D-Bus call). Err(Disconnected) while the connection is down.
    pub fn state(&self, unit: &str) -> Result<UnitState, SystemdError> {
        let inner = self.lock();
        if inner.conn.is_none() {
            return Err(SystemdError::Disconnected);
        }
        match inner.units.get(unit) {
            Some((state, _)) => Ok(state.clone()),
            None => Err(SystemdError::Call {
                what: format!("state({unit})"),
                reason: "unit is not watched".into(),
            }),
        }
    }

    /// Whether the connection is up.
    pub fn connected(&self) -> bool {
        self.lock().conn.is_some()
    }

    /// Re-reads every watched unit with one ListUnitsByNames call (safety net); reports changes.
    pub fn refresh(&self) -> Result<(), SystemdError> {
        self.with_conn(|conn, generation| self.refresh_on(conn, generation))
    }

    /// Runs `f` on the connection; once more on the next one if it broke under the call
    /// (a StartUnit/StopUnit sent twice merges into the same job).
    fn with_conn<T>(
        &self,
        f: impl Fn(&Connection, u64) -> Result<T, SystemdError>,
    ) -> Result<T, SystemdError> {
        let (conn, generation) = self.conn()?;
        match f(&conn, generation) {
            Err(SystemdError::Disconnected) => {
                self.disconnected(generation);
                let (conn, generation) = self.conn()?;
                f(&conn, generation)
            }
            other => other,
        }
    }

    fn list(
        &self,
        conn: &Connection,
        names: &[String],
    ) -> Result<(Sequence, Vec<Listed>), SystemdError> {
        let what = "ListUnitsByNames";
        let reply = call(conn, MANAGER_PATH, MANAGER, what, &names);
        let reply = reply.map_err(|e| call_error(what, e))?;
        let listed = reply
            .body()
            .deserialize()
            .map_err(|e| call_error(what, e))?;
        Ok((reply.recv_position(), listed))
    }

    fn refresh_on(&self, conn: &Connection, generation: u64) -> Result<(), SystemdError> {
        if self.names.is_empty() {
            return Ok(());
        }
        let (seq, listed) = self.list(conn, &self.names)?;
        for l in listed {
            // The list carries no Result: keep the cached one unless the unit is gone.
            let changed = self.update(generation, seq, &l.name, |s| {
                if l.load_state == "not-loaded" {
                    s.result.clear();
                }
                // ListUnitsByNames loads a GC'd unit to answer; GC drops it again at once.
                let echo = s.load_state == "not-loaded" && l.active_state == "inactive";
                if !echo {
                    s.load_state.clone_from(&l.load_state);
                }
                s.active_state.clone_from(&l.active_state);
                s.sub_state.clone_from(&l.sub_state);
            });
            if changed {
                (self.on_change)(&l.name);
            }
        }
        Ok(())
    }

    /// Applies `f` to a watched unit unless the data is older than the cache; true if changed.
    fn update(
        &self,
        generation: u64,
        seq: Sequence,
        unit: &str,
        f: impl FnOnce(&mut UnitState),
    ) -> bool {
        let mut inner = self.lock();
        if inner.generation != generation {
            return false;
        }
        let Some((state, at)) = inner.units.get_mut(unit).filter(|c| seq >= c.1) else {
            return false;
        };
        *at = seq;
        let old = state.clone();
        f(state);
        old != *state
    }

    /// Handles one signal; malformed ones are logged and skipped.
    fn dispatch(&self, generation: u64, msg: &Message) {
        let hdr = msg.header();
        let (Some(iface), Some(member), Some(path)) = (hdr.interface(), hdr.member(), hdr.path())
        else {
            return;
        };
        log::trace!("systemd: signal {member} on {path}");
        let seq = msg.recv_position();
        let body = msg.body();
        let changed = match (iface.as_str(), member.as_str()) {
            (PROPS_IFACE, "PropertiesChanged") => {
                let Some(unit) = self.paths.get(path.as_str()) else {
                    return;
                };
                type Changed<'a> = (&'a str, HashMap<&'a str, Value<'a>>, Vec<&'a str>);
                let (iface, props, _) = match body.deserialize::<Changed>() {
                    Ok(v) => v,
                    Err(e) => return warn!("systemd: bad PropertiesChanged on {path}: {e}"),
                };
                let text = |name: &str| match props.get(name) {
                    Some(Value::Str(s)) => Some(s.to_string()),
                    _ => None,
                };
                let set = |field: &mut String, value: Option<String>| {
                    if let Some(v) = value {
                        *field = v;
                    }
                };
                // systemd sends the type-specific interface (Result) before the Unit one.
                let changed = if iface == UNIT_IFACE {
                    let (load, active, sub) =
                        (text("LoadState"), text("ActiveState"), text("SubState"));
                    self.update(generation, seq, unit, |s| {
                        // LoadState is constant, so not signalled: a unit that does more
                        // than idle is loaded.
                        let busy = active.as_deref().is_some_and(|a| a != "inactive");
                        if busy && load.is_none() && s.load_state == "not-loaded" {
                            s.load_state = "loaded".into();
                        }
                        set(&mut s.load_state, load);
                        set(&mut s.active_state, active);
                        set(&mut s.sub_state, sub);
                    })
                } else if iface.starts_with(DEST) {
                    let result = text("Result");
                    self.update(generation, seq, unit, |s| set(&mut s.result, result))
                } else {
                    false
                };
                changed.then(|| unit.clone())
            }
            (MANAGER, "JobRemoved") => {
                match body.deserialize::<(u32, OwnedObjectPath, &str, String)>() {
                    Ok((id, job, unit, result)) => {
                        debug!("systemd: job {id} ({unit}) finished: {result}");
                        let mut inner = self.lock();
                        inner.jobs.retain(|_, (_, at)| at.elapsed() < JOB_KEEP);
                        inner.jobs.insert(job.to_string(), (result, Instant::now()));
                        drop(inner);
                        self.cv.notify_all();
                        None
                    }
                    Err(e) => return warn!("systemd: bad JobRemoved: {e}"),
                }
            }
            // Garbage-collected: a unit that is not loaded runs nothing.
            (MANAGER, "UnitRemoved") => match body.deserialize::<(String, OwnedObjectPath)>() {
                Ok(_) if self.lock().reloading => None, // re-created right after
                Ok((unit, _)) => self
                    .update(generation, seq, &unit, |s| {
                        *s = UnitState {
                            load_state: "not-loaded".into(),
                            active_state: "inactive".into(),
                            sub_state: "dead".into(),
                            result: String::new(),
                        }
                    })
                    .then_some(unit),
                Err(e) => return warn!("systemd: bad UnitRemoved: {e}"),
            },
            (MANAGER, "Reloading") => match body.deserialize::<bool>() {
                Ok(active) => {
                    let mut inner = self.lock();
                    let conn = inner
                        .conn
                        .clone()
                        .filter(|_| inner.generation == generation);
                    inner.reloading = active;
                    drop(inner);
                    // Units were re-created, mostly without PropertiesChanged: re-read them.
                    if let (false, Some(conn)) = (active, conn) {
                        if let Err(e) = self.refresh_on(&conn, generation) {
                            warn!("systemd: reading unit states after reload failed: {e}");
                        }
                    }
                    None
                }
                Err(e) => return warn!("systemd: bad Reloading: {e}"),
            },
            // UnitNew is always followed by the unit's PropertiesChanged: nothing to do.
            _ => None,
        };
        if let Some(unit) = changed {
            (self.on_change)(&unit);
        }
    }

    /// StartUnit(unit, "replace") and waits for its JobRemoved: Ok only for "done". The wait is
    /// bounded by `timeout`, the call itself by the method timeout (10 s).
    pub fn start(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        self.job("start", "StartUnit", unit, timeout)
    }

    /// StopUnit(unit, "replace") and waits likewise; a unit that is not loaded is Ok.
    pub fn stop(&self, unit: &str, timeout: Duration) -> Result<(), SystemdError> {
        self.job("stop", "StopUnit", unit, timeout)
    }

    fn job(
        &self,
        verb: &str,
        method: &str,
        unit: &str,
        timeout: Duration,
    ) -> Result<(), SystemdError> {
        let deadline = Instant::now() + timeout;
        let what = format!("{method}({unit})");
        let started = self.with_conn(|conn, generation| {
            match call(conn, MANAGER_PATH, MANAGER, method, &(unit, "replace")) {
                Ok(reply) => {
                    let job: OwnedObjectPath = reply
                        .body()
                        .deserialize()
                        .map_err(|e| call_error(&what, e))?;
                    Ok(Some((job, generation)))
                }
                Err(zbus::Error::MethodError(name, _, _))
                    if verb == "stop" && name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
                {
                    Ok(None) // not loaded: nothing runs
                }
                Err(e) => Err(call_error(&what, e)),
            }
        })?;
        let Some((job, generation)) = started else {
            return Ok(());
        };
        debug!("systemd: {verb} {unit}: job {}", job.as_str());
        let result = self.wait_job(verb, unit, job.as_str(), generation, deadline, timeout)?;
        if result == "done" {
            return Ok(());
        }
        Err(SystemdError::JobFailed {
            unit: unit.to_string(),
            verb: verb.to_string(),
            result,
            unit_result: self.unit_result(unit),
        })
    }

    fn wait_job(
        &self,
        verb: &str,
        unit: &str,
        job: &str,
        mut generation: u64,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<String, SystemdError> {
        let mut inner = self.lock();
        loop {
            if let Some((result, _)) = inner.jobs.get(job) {
                return Ok(result.clone());
            }
            if let Some(conn) = inner
                .conn
                .clone()
                .filter(|_| inner.generation != generation)
            {
                // Reconnected: the JobRemoved may have gone down with the old connection.
                generation = inner.generation;
                drop(inner);
                if let Some(result) = self.lost_job(&conn, verb, unit, job) {
                    return Ok(result);
                }
                inner = self.lock();
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && inner.conn.is_none() {
                return Err(SystemdError::Disconnected);
            } else if left.is_zero() {
                return Err(SystemdError::Timeout {
                    unit: unit.to_string(),
                    verb: verb.to_string(),
                    secs: timeout.as_secs(),
                });
            }
            inner = self.wait(inner, left);
        }
    }

    /// After a reconnection: None while the job exists, else its result judged by the unit state.
    fn lost_job(&self, conn: &Connection, verb: &str, unit: &str, job: &str) -> Option<String> {
        match get(conn, job, "org.freedesktop.systemd1.Job", "State") {
            Err(zbus::Error::MethodError(..)) => {}
            _ => return None,
        }
        if let Some((result, _)) = self.lock().jobs.get(job) {
            return Some(result.clone());
        }
        let (_, listed) = self.list(conn, &[unit.to_string()]).ok()?;
        let active = listed
            .first()
            .is_some_and(|l| l.active_state == "active" || l.active_state == "reloading");
        let ok = active == (verb == "start");
        info!("systemd: {verb} job of {unit} ended while disconnected (ok: {ok})");
        Some(if ok { "done" } else { "failed" }.to_string())
    }

    /// The unit's Result property, for error messages; empty if unknown.
    fn unit_result(&self, unit: &str) -> String {
        let cached = self.lock().units.get(unit).map(|c| c.0.result.clone());
        if let Some(result) = cached.filter(|r| !r.is_empty()) {
            return result;
        }
        let (Some(iface), Ok((conn, _))) = (result_interface(unit), self.conn()) else {
            return String::new();
        };
        let value = get(&conn, &unit_object_path(unit), &iface, "Result");
        value
            .ok()
            .and_then(|v| String::try_from(v).ok())
            .unwrap_or_default()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // Shutting the socket down ends the events thread's iterator.
        let conn = self.inner.get_mut().map(|i| i.conn.take()).unwrap_or(None);
        if let Some(conn) = conn {
            let _ = conn.close();
        }
    }
}

/// Blocks reading signals; when the connection ends, reconnects with backoff.
fn events_loop(weak: Weak<Systemd>, mut iter: MessageIterator, mut generation: u64) {
    loop {
        for msg in &mut iter {
            let Some(sd) = weak.upgrade() else { return };
            match msg {
                Ok(msg) => sd.dispatch(generation, &msg),
                Err(e) => debug!("systemd: connection error: {e}"),
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let Some(sd) = weak.upgrade() else { return };
            sd.disconnected(generation);
            match sd.open() {
                Ok(opened) => {
                    (iter, generation) = opened;
                    break;
                }
                Err(e) => debug!("systemd: reconnect failed: {e}"),
            }
            drop(sd);
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// Connects and authenticates (SASL EXTERNAL) by hand, bounded by CALL_TIMEOUT, then hands
/// the socket to zbus as an authenticated p2p connection (no Hello; the caller says it).
fn dial(address: &str) -> Result<Connection, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let path = address.strip_prefix("unix:path=");
    let path = path.ok_or("only unix:path= addresses are supported")?;
    let (stream, guid) = authenticate(path).map_err(|e| text(&e))?;
    let (buf, pos) = (Vec::new(), 0);
    let reader = Box::new(SenderFixer {
        stream: stream.try_clone().map_err(|e| text(&e))?,
        buf,
        pos,
    });
    let split = Split::new(
        reader as Box<dyn ReadHalf>,
        Box::new(Writer(stream)) as Box<dyn WriteHalf>,
    );
    let builder = Builder::authenticated_socket(split, guid.as_str()).map_err(|e| text(&e))?;
    let builder = builder.p2p().method_timeout(CALL_TIMEOUT);
    builder.build().map_err(|e| text(&e))
}

fn authenticate(path: &str) -> io::Result<(UnixStream, String)> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(CALL_TIMEOUT))?;
    s.set_write_timeout(Some(CALL_TIMEOUT))?;
    let uid = std::fs::metadata("/proc/self")?.uid().to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    // BEGIN goes with AUTH, as sd-bus clients do: sd-bus leaves a message that arrives in the
    // same read as BEGIN unprocessed until more input comes (seen as a hung first call).
    s.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
    // Byte by byte: messages may follow the OK line at once and belong to zbus.
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        if line.len() > 512 || s.read(&mut byte)? == 0 {
            return Err(io::Error::other("authentication: no answer"));
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line);
    let guid = line.trim().strip_prefix("OK ").map(str::to_string);
    let guid =
        guid.ok_or_else(|| io::Error::other(format!("authentication refused: {}", line.trim())))?;
    s.set_read_timeout(None)?; // idle reads block; close() shuts the socket down
    Ok((s, guid))
}

/// Read half that frames messages itself to repair their SENDER field: systemd's direct
/// connections put its well-known name there, which zbus 5 rejects with a panic in its socket
/// reader ("Invalid field reconstruction", zbus issue #1497).
#[derive(Debug)]
struct SenderFixer {
    stream: UnixStream,
    buf: Vec<u8>,
    pos: usize,
}

#[zbus::export::async_trait::async_trait]
impl ReadHalf for SenderFixer {
    // Blocking read: this runs in zbus' socket-reader task on its own executor thread.
    async fn recvmsg(&mut self, out: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        if self.pos == self.buf.len() {
            self.buf = read_message(&mut self.stream)?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok((n, Vec::new()))
    }
}

/// One whole message with its sender repaired; empty at end of stream.
fn read_message(s: &mut UnixStream) -> io::Result<Vec<u8>> {
    let mut msg = vec![0u8; 16];
    if s.read(&mut msg[..1])? == 0 {
        return Ok(Vec::new());
    }
    s.read_exact(&mut msg[1..])?;
    let fields = word(&msg, 12).unwrap_or(0);
    let total = (16 + fields).next_multiple_of(8) + word(&msg, 4).unwrap_or(0);
    if total > 1 << 27 {
        return Err(io::Error::other("message too long"));
    }
    msg.resize(total, 0);
    s.read_exact(&mut msg[16..])?;
    fix_sender(&mut msg);
    Ok(msg)
}

/// A u32 at `at` in the message's byte order.
fn word(msg: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = msg.get(at..at + 4)?.try_into().ok()?;
    let v = if msg.first() == Some(&b'B') {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    };
    usize::try_from(v).ok()
}

/// Overwrites a SENDER (field 7) that is no unique name with one of the same length; we never
/// use the sender, and the length must stay. Malformed headers are left for zbus to reject.
fn fix_sender(msg: &mut [u8]) -> Option<()> {
    let end = 16 + word(msg, 12)?;
    let mut at = 16;
    while at + 4 <= end {
        let (code, sig_len) = (*msg.get(at)?, usize::from(*msg.get(at + 1)?));
        let value = at + 3 + sig_len;
        match msg.get(at + 2..at + 2 + sig_len)? {
            b"s" | b"o" => {
                let start = value.next_multiple_of(4) + 4;
                let len = word(msg, start - 4)?;
                let name = msg.get_mut(start..start + len)?;
                if code == 7
                    && name.len() >= 4
                    && name[0] != b':'
                    && name != b"org.freedesktop.DBus"
                {
                    name.fill(b'0');
                    (name[0], name[2]) = (b':', b'.'); // ":0.000…"
                }
                at = start + len + 1;
            }
            b"g" => at = value + usize::from(*msg.get(value)?) + 2,
            b"u" => at = value.next_multiple_of(4) + 4,
            _ => return None,
        }
        at = at.next_multiple_of(8);
    }
    Some(())
}

#[derive(Debug)]
struct Writer(UnixStream);

#[zbus::export::async_trait::async_trait]
impl WriteHalf for Writer {
    // Blocking write on the caller's thread, bounded by the socket's write timeout.
    async fn sendmsg(&mut self, buf: &[u8], _fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        self.0.write(buf)
    }

    async fn close(&mut self) -> io::Result<()> {
        self.0.shutdown(std::net::Shutdown::Both)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;
    use zbus::zvariant::ObjectPath;

    type Events = mpsc::Receiver<(String, Instant)>;

    fn recorder() -> (impl Fn(&str) + Send + Sync + 'static, Events) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let cb = move |u: &str| {
            let _ = tx.lock().unwrap().send((u.to_string(), Instant::now()));
        };
        (cb, rx)
    }

    fn names(units: &[&str]) -> Vec<String> {
        units.iter().map(|s| s.to_string()).collect()
    }

    fn cached(sd: &Systemd, unit: &str) -> UnitState {
        sd.lock().units[unit].0.clone()
    }

    fn signal<B: serde::Serialize + Type>(
        path: &str,
        iface: &str,
        member: &str,
        body: &B,
    ) -> Message {
        Message::signal(path, iface, member)
            .unwrap()
            .build(body)
            .unwrap()
    }

    fn props(
        iface: &str,
        kv: &[(&str, &str)],
    ) -> (String, HashMap<String, Value<'static>>, Vec<String>) {
        let map = kv
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.to_string())))
            .collect();
        (iface.to_string(), map, vec![])
    }

    #[test]
    fn object_path_escaping() {
        let p = |u| unit_object_path(u)["/org/freedesktop/systemd1/unit/".len()..].to_string();
        assert_eq!(
            unit_object_path("nginx.service"),
            "/org/freedesktop/systemd1/unit/nginx_2eservice"
        );
        assert_eq!(
            p("beegfs-meta@inst1.service"),
            "beegfs_2dmeta_40inst1_2eservice"
        );
        assert_eq!(p(""), "_");
        assert_eq!(p("a_b\\x2d.mount"), "a_5fb_5cx2d_2emount");
        assert_eq!(p("0day.service"), "_30day_2eservice"); // leading digit, like systemd
        assert_eq!(p("ä"), "_c3_a4");
        assert_eq!(p("-.slice"), "_2d_2eslice");
    }

    #[test]
    fn result_interfaces() {
        assert_eq!(
            result_interface("a.service").as_deref(),
            Some("org.freedesktop.systemd1.Service")
        );
        assert_eq!(
            result_interface("x.y.mount").as_deref(),
            Some("org.freedesktop.systemd1.Mount")
        );
        assert_eq!(result_interface("noext"), None);
        assert_eq!(result_interface("trailing."), None);
    }

    #[test]
    fn error_messages_point_to_journal() {
        let e = SystemdError::JobFailed {
            unit: "x.service".into(),
            verb: "start".into(),
            result: "failed".into(),
            unit_result: "exit-code".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("exit-code") && text.contains("journalctl -u x.service"),
            "{text}"
        );
    }

    #[test]
    fn sender_of_direct_connections_is_repaired() {
        // A signal as systemd's private socket sends it: SENDER is its well-known name.
        let fake = ":1.aaaaaaaaaaaaaaaaaaaaa"; // same length as DEST
        let msg = Message::signal(MANAGER_PATH, MANAGER, "UnitRemoved")
            .unwrap()
            .sender(fake)
            .unwrap();
        let msg = msg
            .build(&(DEST, ObjectPath::try_from("/a").unwrap()))
            .unwrap();
        let replace = |bytes: &[u8], from: &str, to: &str| {
            let at = bytes
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            let mut v = bytes.to_vec();
            v[at..at + from.len()].copy_from_slice(to.as_bytes());
            v
        };
        let raw = replace(msg.data(), fake, DEST);
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&raw).unwrap();
        a.write_all(&raw[..5]).unwrap(); // a truncated message follows
        drop(a);
        let fixed = read_message(&mut b).unwrap();
        assert_eq!(fixed.len(), raw.len());
        assert_eq!(
            fixed,
            replace(msg.data(), fake, ":0.000000000000000000000"),
            "only SENDER changes"
        );
        assert!(zbus::names::UniqueName::try_from(":0.000000000000000000000").is_ok());
        assert!(read_message(&mut b).is_err());
        // Valid senders, and headers that do not parse, are left alone.
        let mut ok = msg.data().to_vec();
        fix_sender(&mut ok);
        assert_eq!(ok, msg.data().to_vec());
        let mut junk = vec![b'l', 4, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 200, 0, 0, 0, 7, 1];
        assert!(fix_sender(&mut junk).is_none());
    }

    #[test]
    fn dispatch_updates_cache_and_reports() {
        let (cb, rx) = recorder();
        let sd = Systemd::new(None, &names(&["a.service", "b.service"]), Box::new(cb));
        let pa = unit_object_path("a.service");
        let m = signal(
            &pa,
            PROPS_IFACE,
            "PropertiesChanged",
            &props(
                UNIT_IFACE,
                &[
                    ("ActiveState", "active"),
                    ("SubState", "running"),
                    ("LoadState", "loaded"),
                    ("Id", "a.service"),
                ],
            ),
        );
        sd.dispatch(0, &m);
        assert_eq!(rx.try_recv().unwrap().0, "a.service");
        let s = cached(&sd, "a.service");
        assert!(s.is_active());
        assert_eq!(
            (s.load_state.as_str(), s.sub_state.as_str()),
            ("loaded", "running")
        );
        // Same values again: no report.
        sd.dispatch(0, &m);
        assert!(rx.try_recv().is_err());
        // Service interface carries Result; other properties of it are ignored.
        let m = signal(
            &pa,
            PROPS_IFACE,
            "PropertiesChanged",
            &props(
                "org.freedesktop.systemd1.Service",
                &[("Result", "signal"), ("Type", "simple")],
            ),
        );
        sd.dispatch(0, &m);
        assert_eq!(cached(&sd, "a.service").result, "signal");
        assert_eq!(rx.try_recv().unwrap().0, "a.service");
        // Unwatched path, a foreign interface, an old connection and a malformed body are skipped.
        let other = signal(
            &unit_object_path("c.service"),
            PROPS_IFACE,
            "PropertiesChanged",
            &props(UNIT_IFACE, &[("ActiveState", "failed")]),
        );
        let foreign = signal(
            &pa,
            PROPS_IFACE,
            "PropertiesChanged",
            &props("org.example.X", &[("Result", "x")]),
        );
        let malformed = signal(&pa, PROPS_IFACE, "PropertiesChanged", &(42u32, "x"));
        let wrong_variant = signal(
            &pa,
            PROPS_IFACE,
            "PropertiesChanged",
            &(
                UNIT_IFACE,
                HashMap::from([("ActiveState", Value::from(7u32))]),
                Vec::<String>::new(),
            ),
        );
        for m in [&other, &foreign, &malformed, &wrong_variant] {
            sd.dispatch(0, m);
        }
        let gone = signal(
            &pa,
            PROPS_IFACE,
            "PropertiesChanged",
            &props(UNIT_IFACE, &[("ActiveState", "failed")]),
        );
        sd.dispatch(7, &gone);
        assert!(rx.try_recv().is_err());
        assert_eq!(cached(&sd, "a.service").active_state, "active");
        // GC'd unit: inactive, not loaded.
        let path_a = OwnedObjectPath::try_from(pa.as_str()).unwrap();
        sd.dispatch(
            0,
            &signal(
                MANAGER_PATH,
                MANAGER,
                "UnitRemoved",
                &("a.service", &path_a),
            ),
        );
        let s = cached(&sd, "a.service");
        assert_eq!(
            (
                s.load_state.as_str(),
                s.active_state.as_str(),
                s.result.as_str()
            ),
            ("not-loaded", "inactive", "")
        );
        assert_eq!(rx.try_recv().unwrap().0, "a.service");
        sd.dispatch(0, &signal(MANAGER_PATH, MANAGER, "UnitRemoved", &(1u8,)));
        sd.dispatch(0, &signal(MANAGER_PATH, MANAGER, "JobRemoved", &("bad",)));
        assert!(sd.lock().jobs.is_empty());
    }

    #[test]
    fn job_wait_sees_early_and_late_job_removed() {
        let sd = Arc::new(Systemd::new(None, &[], Box::new(|_: &str| {})));
        let job = |n: u32| {
            OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{n}")).unwrap()
        };
        let removed = |n: u32, result: &str| {
            signal(
                MANAGER_PATH,
                MANAGER,
                "JobRemoved",
                &(n, job(n), "a.service", result),
            )
        };
        let far = Instant::now() + Duration::from_secs(5);
        // Signal processed before the caller starts waiting (JobRemoved beat the reply).
        sd.dispatch(0, &removed(1, "done"));
        assert_eq!(
            sd.wait_job(
                "start",
                "a.service",
                job(1).as_str(),
                0,
                far,
                Duration::from_secs(5)
            )
            .unwrap(),
            "done"
        );
        // Several waiters, each for its own job, the signals arriving later and out of order.
        let waiters: Vec<_> = (2..6)
            .map(|n| {
                let sd = sd.clone();
                std::thread::spawn(move || {
                    sd.wait_job(
                        "start",
                        "a.service",
                        job(n).as_str(),
                        0,
                        far,
                        Duration::from_secs(5),
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        for n in (2..6).rev() {
            sd.dispatch(0, &removed(n, if n == 3 { "failed" } else { "done" }));
        }
        let results: Vec<String> = waiters
            .into_iter()
            .map(|w| w.join().unwrap().unwrap())
            .collect();
        assert_eq!(results, ["done", "failed", "done", "done"]);
        // No signal: bounded; reported as Disconnected since there is no connection.
        let soon = Instant::now() + Duration::from_millis(50);
        let err = sd.wait_job(
            "stop",
            "a.service",
            job(9).as_str(),
            0,
            soon,
            Duration::from_millis(50),
        );
        assert!(matches!(err, Err(SystemdError::Disconnected)), "{err:?}");
        assert!(matches!(
            sd.state("a.service"),
            Err(SystemdError::Disconnected)
        ));
        // Old entries are pruned on the next insertion.
        sd.lock()
            .jobs
            .values_mut()
            .for_each(|(_, at)| *at -= JOB_KEEP);
        sd.dispatch(0, &removed(10, "done"));
        assert_eq!(sd.lock().jobs.len(), 1);
    }

    /// A fake systemd on a p2p socket: emits JobRemoved before the StartUnit reply.
    #[derive(Default)]
    struct Fake {
        units: Mutex<HashMap<String, &'static str>>,
        conns: Mutex<Vec<Connection>>,
        next_job: AtomicU32,
    }

    #[derive(Debug, zbus::DBusError)]
    #[zbus(prefix = "org.freedesktop.systemd1")]
    enum FakeError {
        #[zbus(error)]
        ZBus(zbus::Error),
        NoSuchUnit(String),
    }

    struct FakeManager(Arc<Fake>);
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        OwnedObjectPath,
        u32,
        String,
        OwnedObjectPath,
    );

    #[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
    impl FakeManager {
        fn subscribe(&self) {}

        fn list_units_by_names(&self, names: Vec<String>) -> Vec<Row> {
            let units = self.0.units.lock().unwrap();
            let root = OwnedObjectPath::try_from("/").unwrap();
            let row = |n: String| {
                let active = units.get(&n).copied().unwrap_or("inactive").to_string();
                (
                    n,
                    "".into(),
                    "loaded".into(),
                    active,
                    "x".into(),
                    "".into(),
                    root.clone(),
                    0,
                    "".into(),
                    root.clone(),
                )
            };
            names.into_iter().map(row).collect()
        }

        async fn start_unit(
            &self,
            #[zbus(connection)] conn: &zbus::Connection,
            unit: String,
            _mode: String,
        ) -> Result<OwnedObjectPath, FakeError> {
            let state = if unit.starts_with("fail") {
                "failed"
            } else {
                "active"
            };
            self.job(conn, unit, state).await
        }

        async fn stop_unit(
            &self,
            #[zbus(connection)] conn: &zbus::Connection,
            unit: String,
            _mode: String,
        ) -> Result<OwnedObjectPath, FakeError> {
            if unit.starts_with("nosuch") {
                return Err(FakeError::NoSuchUnit(format!("Unit {unit} not loaded.")));
            }
            self.job(conn, unit, "inactive").await
        }
    }

    impl FakeManager {
        async fn job(
            &self,
            conn: &zbus::Connection,
            unit: String,
            state: &'static str,
        ) -> Result<OwnedObjectPath, FakeError> {
            self.0.units.lock().unwrap().insert(unit.clone(), state);
            let path = unit_object_path(&unit);
            let changed = props(UNIT_IFACE, &[("ActiveState", state)]);
            conn.emit_signal(
                None::<&str>,
                path.as_str(),
                PROPS_IFACE,
                "PropertiesChanged",
                &changed,
            )
            .await?;
            let id = self.0.next_job.fetch_add(1, Ordering::SeqCst);
            let job =
                OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}")).unwrap();
            let result = if state == "failed" { "failed" } else { "done" };
            conn.emit_signal(
                None::<&str>,
                MANAGER_PATH,
                MANAGER,
                "JobRemoved",
                &(id, &job, &unit, result),
            )
            .await?;
            Ok(job)
        }
    }

    struct FakeService;

    #[zbus::interface(name = "org.freedesktop.systemd1.Service")]
    impl FakeService {
        #[zbus(property)]
        fn result(&self) -> String {
            "exit-code".into()
        }
    }

    impl Fake {
        fn serve(self: Arc<Self>, listener: UnixListener) {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                #[allow(deprecated)] // its replacement needs async-io's types; tokio is off
                let builder = zbus::blocking::connection::Builder::unix_stream(stream);
                let conn = builder
                    .server(zbus::Guid::generate())
                    .and_then(|b| b.p2p().serve_at(MANAGER_PATH, FakeManager(self.clone())))
                    .and_then(|b| b.serve_at(unit_object_path("fail.service"), FakeService))
                    .and_then(|b| b.build());
                self.conns.lock().unwrap().extend(conn.ok());
            }
        }
    }

    #[test]
    fn fake_systemd_end_to_end() {
        let sock = std::env::temp_dir().join(format!("hkt-fake-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).unwrap();
        let fake = Arc::new(Fake::default());
        let f = fake.clone();
        std::thread::spawn(move || f.serve(listener));
        let (cb, rx) = recorder();
        let watched = names(&[
            "a.service",
            "fail.service",
            "p0.service",
            "p1.service",
            "p2.service",
        ]);
        let address = format!("unix:path={}", sock.display());
        let sd = Systemd::connect_to(&address, true, &watched, cb).unwrap();
        assert_eq!(sd.state("a.service").unwrap().active_state, "inactive");
        let t = Duration::from_secs(5);
        sd.start("a.service", t).unwrap();
        assert!(sd.state("a.service").unwrap().is_active());
        assert_eq!(rx.recv_timeout(t).unwrap().0, "a.service");
        match sd.start("fail.service", t) {
            Err(SystemdError::JobFailed {
                result,
                unit_result,
                ..
            }) => assert_eq!(
                (result.as_str(), unit_result.as_str()),
                ("failed", "exit-code")
            ),
            other => panic!("{other:?}"),
        }
        sd.stop("nosuch.service", t).unwrap();
        let threads: Vec<_> = (0..30)
            .map(|i| {
                let sd = sd.clone();
                std::thread::spawn(move || sd.start(&format!("p{}.service", i % 3), t))
            })
            .collect();
        assert!(threads.into_iter().all(|h| h.join().unwrap().is_ok()));
        // Drop the connection after a silent change: the reconnect's refresh must report it.
        while rx.try_recv().is_ok() {}
        fake.units
            .lock()
            .unwrap()
            .insert("a.service".into(), "inactive");
        let conns = std::mem::take(&mut *fake.conns.lock().unwrap());
        conns.into_iter().for_each(|c| c.close().unwrap());
        assert_eq!(rx.recv_timeout(t).unwrap().0, "a.service");
        assert!(sd.connected());
        assert_eq!(sd.state("a.service").unwrap().active_state, "inactive");
        sd.start("a.service", t).unwrap();
        drop(sd);
        let _ = std::fs::remove_file(&sock);
    }

    // ---- Against a real systemd (run inside a container as root, see README of the brief). ----

    const UNITS: &[(&str, &str)] = &[
        (
            "hkt-sleep.service",
            "[Service]\nExecStart=/bin/sleep infinity\n",
        ),
        (
            "hkt-fail.service",
            "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        ),
        (
            "hkt-par@.service",
            "[Service]\nExecStart=/bin/sleep infinity\n",
        ),
    ];
    const T: Duration = Duration::from_secs(20);

    fn real_units() -> Vec<String> {
        let mut v = names(&[
            "hkt-sleep.service",
            "hkt-fail.service",
            "hkt-nonexistent.service",
        ]);
        v.extend((0..10).map(|i| format!("hkt-par@{i}.service")));
        v
    }

    fn init_log() {
        struct Stderr;
        impl log::Log for Stderr {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, r: &log::Record) {
                eprintln!("  [{}] {}", r.level(), r.args());
            }
            fn flush(&self) {}
        }
        if std::env::var_os("HKT_LOG").is_some() && log::set_logger(&Stderr).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    }

    fn call(
        sd: &Systemd,
        path: &str,
        iface: &str,
        method: &str,
        body: &(impl serde::Serialize + Type),
    ) -> Message {
        let (conn, _) = sd.conn().unwrap();
        conn.call_method(Some(DEST), path, Some(iface), method, body)
            .unwrap()
    }

    fn real_setup(on_change: impl Fn(&str) + Send + Sync + 'static) -> Arc<Systemd> {
        init_log();
        for (name, text) in UNITS {
            std::fs::write(format!("/etc/systemd/system/{name}"), text).unwrap();
        }
        let sd = Systemd::connect(&real_units(), on_change).unwrap();
        call(&sd, MANAGER_PATH, MANAGER, "Reload", &());
        sd.refresh().unwrap();
        sd
    }

    fn main_pid(sd: &Systemd, unit: &str) -> u32 {
        let path = unit_object_path(unit);
        let v: OwnedValue = call(
            sd,
            &path,
            PROPS_IFACE,
            "Get",
            &("org.freedesktop.systemd1.Service", "MainPID"),
        )
        .body()
        .deserialize()
        .unwrap();
        u32::try_from(v).unwrap()
    }

    fn threads() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect();
        v.sort();
        v
    }

    /// Waits for on_change of `unit` until `pred` holds for its state; returns when that was.
    fn wait_for(
        sd: &Systemd,
        rx: &Events,
        unit: &str,
        pred: impl Fn(&UnitState) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (u, at) = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no on_change for {unit}: {:?}", sd.state(unit)));
            if u == unit && sd.state(unit).map(|s| pred(&s)).unwrap_or(false) {
                return at;
            }
        }
    }

    fn kill_and_measure(sd: &Systemd, rx: &Events, unit: &str) {
        let pid = main_pid(sd, unit);
        assert!(pid > 0);
        while rx.try_recv().is_ok() {}
        let before = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        let after = Instant::now();
        assert!(status.success());
        let at = wait_for(sd, rx, unit, |s| !s.is_active());
        let s = sd.state(unit).unwrap();
        println!("SIGKILL of {unit} (pid {pid}) -> on_change: {:?} after kill(1) returned ({:?} incl. fork of kill); state {s:?}", at - after, at - before);
        assert_eq!(
            (s.active_state.as_str(), s.result.as_str()),
            ("failed", "signal")
        );
    }

    #[test]
    #[ignore]
    fn real_start_sigkill_stop() {
        let before = threads();
        let (cb, rx) = recorder();
        let sd = real_setup(cb);
        println!(
            "threads before connect: {before:?}\nthreads after connect: {:?}",
            threads()
        );
        let unit = "hkt-sleep.service";
        sd.start(unit, T).unwrap();
        let s = sd.state(unit).unwrap();
        println!("after start: {s:?}");
        assert!(s.is_active() && s.sub_state == "running" && s.load_state == "loaded");
        // Idle cost: context switches of all threads but this one over 2 s.
        let switches = || -> u64 {
            let me = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm")).unwrap_or_default() != me
                })
                .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
                .flat_map(|st| {
                    st.lines()
                        .filter(|l| l.contains("ctxt_switches"))
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        };
        let before = switches();
        std::thread::sleep(Duration::from_secs(2));
        println!(
            "idle: {} context switches in 2 s by the other threads",
            switches() - before
        );
        kill_and_measure(&sd, &rx, unit);
        sd.stop(unit, T).unwrap();
        sd.start(unit, T).unwrap();
        assert!(sd.state(unit).unwrap().is_active());
        sd.stop(unit, T).unwrap();
        assert!(!sd.state(unit).unwrap().is_active());
    }

    #[test]
    #[ignore]
    fn real_failing_unit() {
        let sd = real_setup(|_: &str| {});
        let err = sd.start("hkt-fail.service", T).unwrap_err();
        println!("start hkt-fail.service: {err}");
        match &err {
            SystemdError::JobFailed {
                result,
                unit_result,
                ..
            } => assert_eq!(
                (result.as_str(), unit_result.as_str()),
                ("failed", "exit-code")
            ),
            _ => panic!("{err:?}"),
        }
        let s = sd.state("hkt-fail.service").unwrap();
        assert_eq!(
            (s.active_state.as_str(), s.result.as_str()),
            ("failed", "exit-code")
        );
    }

    #[test]
    #[ignore]
    fn real_never_loaded_unit() {
        let sd = real_setup(|_: &str| {});
        println!("state: {:?}", sd.state("hkt-nonexistent.service").unwrap());
        sd.stop("hkt-nonexistent.service", T).unwrap();
        let err = sd.start("hkt-nonexistent.service", T).unwrap_err();
        println!("start hkt-nonexistent.service: {err}");
        assert!(matches!(err, SystemdError::Call { .. }));
    }

    #[test]
    #[ignore]
    fn real_concurrent_starts_and_gc() {
        let (cb, rx) = recorder();
        let sd = real_setup(cb);
        let t0 = Instant::now();
        let run = |verb: &'static str| {
            let hs: Vec<_> = (0..10)
                .map(|i| {
                    let sd = sd.clone();
                    std::thread::spawn(move || {
                        let unit = format!("hkt-par@{i}.service");
                        if verb == "start" {
                            sd.start(&unit, T)
                        } else {
                            sd.stop(&unit, T)
                        }
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        };
        let started = run("start");
        println!("10 concurrent starts took {:?}: {started:?}", t0.elapsed());
        assert!(started.iter().all(Result::is_ok));
        assert!((0..10).all(|i| sd
            .state(&format!("hkt-par@{i}.service"))
            .unwrap()
            .is_active()));
        assert!(run("stop").iter().all(Result::is_ok));
        // Stopped template instances get garbage-collected: UnitRemoved -> not-loaded.
        // An instance's event may have come (and been passed over) while waiting for an
        // earlier one: its state then already says so.
        let collected = |s: &UnitState| s.load_state == "not-loaded";
        for i in 0..10 {
            let unit = format!("hkt-par@{i}.service");
            if !sd.state(&unit).is_ok_and(|s| collected(&s)) {
                wait_for(&sd, &rx, &unit, collected);
            }
        }
        println!(
            "all 10 stopped instances reported not-loaded after {:?}",
            t0.elapsed()
        );
        sd.refresh().unwrap();
        println!(
            "after refresh: {:?}",
            sd.state("hkt-par@0.service").unwrap()
        );
    }

    #[test]
    #[ignore]
    fn real_daemon_reload_keeps_state() {
        let (cb, rx) = recorder();
        let sd = real_setup(cb);
        sd.start("hkt-sleep.service", T).unwrap();
        while rx.try_recv().is_ok() {}
        // Reload re-creates all units (UnitRemoved + UnitNew for each): no false alarm.
        call(&sd, MANAGER_PATH, MANAGER, "Reload", &());
        std::thread::sleep(Duration::from_millis(500));
        let s = sd.state("hkt-sleep.service").unwrap();
        let events: Vec<String> = rx.try_iter().map(|(u, _)| u).collect();
        println!("after daemon-reload: {s:?}; on_change calls: {events:?}");
        assert!(s.is_active());
        assert!(!events.iter().any(|u| u == "hkt-sleep.service"));
        // Refreshing idle units must not flap them between loaded and not-loaded.
        for _ in 0..3 {
            sd.refresh().unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        let events: Vec<String> = rx.try_iter().map(|(u, _)| u).collect();
        println!("on_change calls during 3 refreshes: {events:?}");
        assert!(events.is_empty());
        sd.stop("hkt-sleep.service", T).unwrap();
    }

    #[test]
    #[ignore]
    fn real_daemon_reexec() {
        let (cb, rx) = recorder();
        let sd = real_setup(cb);
        sd.start("hkt-sleep.service", T).unwrap();
        let generation = sd.lock().generation;
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        let reexec = std::process::Command::new("systemctl")
            .arg("daemon-reexec")
            .spawn()
            .unwrap();
        // Issued while systemd re-executes: must wait for the reconnection, then succeed.
        std::thread::sleep(Duration::from_millis(20));
        sd.start("hkt-par@3.service", T).unwrap();
        println!(
            "start during reexec ok after {:?} (connected: {})",
            t0.elapsed(),
            sd.connected()
        );
        assert!(reexec.wait_with_output().unwrap().status.success());
        while sd.lock().generation == generation {
            assert!(t0.elapsed() < T, "no reconnection");
            std::thread::sleep(Duration::from_millis(10));
        }
        println!(
            "reconnected (generation {} -> {}) {:?} after reexec began",
            generation,
            sd.lock().generation,
            t0.elapsed()
        );
        assert!(sd.state("hkt-sleep.service").unwrap().is_active());
        assert!(sd.state("hkt-par@3.service").unwrap().is_active());
        // A change right behind a reexec is reported, by signal or by the reconnect's refresh.
        let sh = "systemctl daemon-reexec && systemctl stop --no-block hkt-sleep.service hkt-par@3.service";
        assert!(std::process::Command::new("sh")
            .args(["-c", sh])
            .status()
            .unwrap()
            .success());
        wait_for(&sd, &rx, "hkt-sleep.service", |s| !s.is_active());
        wait_for(&sd, &rx, "hkt-par@3.service", |s| !s.is_active());
        println!(
            "after 2nd reexec + stop: {:?} (generation {})",
            sd.state("hkt-sleep.service").unwrap(),
            sd.lock().generation
        );
        sd.start("hkt-sleep.service", T).unwrap();
        kill_and_measure(&sd, &rx, "hkt-sleep.service");
        sd.stop("hkt-sleep.service", T).unwrap();
    }

    #[test]
    #[ignore]
    fn real_system_bus() {
        let (cb, rx) = recorder();
        drop(real_setup(|_: &str| {}));
        let sd =
            Systemd::connect_to(SYSTEM_BUS, false, &names(&["hkt-sleep.service"]), cb).unwrap();
        sd.start("hkt-sleep.service", T).unwrap();
        assert!(sd.state("hkt-sleep.service").unwrap().is_active());
        kill_and_measure(&sd, &rx, "hkt-sleep.service");
        sd.stop("hkt-sleep.service", T).unwrap();
        sd.stop("hkt-nonexistent.service", T).unwrap();
    }
}
