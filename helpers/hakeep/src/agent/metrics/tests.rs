use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::AlertEvent;
use crate::runtime::holds::HoldKind;
use crate::runtime::state::{Fault, GroupState, Step};
use crate::runtime::VrrpState;

use super::super::events::{Event, GroupLive, Observer};
use super::*;

mod dist;

fn metrics() -> Metrics {
    Metrics::new("prod", "n1", &["web".into(), "db".into()], Box::new(|| 0))
}

fn group(vrrp: VrrpState, desired: &str, actual: &str) -> GroupState {
    GroupState {
        vrrp_state: vrrp,
        desired: desired.into(),
        actual: actual.into(),
        maintenance: false,
        fault: None,
        failed: None,
        resources: Vec::new(),
        floating_ips: Vec::new(),
        problems: Vec::new(),
        last_transition: None,
        fencing: None,
        fence_wait: None,
    }
}

fn event(kind: AlertEvent, result: &str) -> Event {
    Event::new(kind, Some("web"), result, "test".into())
}

/// Asserts that each line is in `text`, whole.
#[track_caller]
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "no line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn every_group_of_the_node_has_every_family_from_the_start() {
    let text = metrics().render(SystemTime::now());
    assert_lines(
        &text,
        &[
            "# TYPE hakeep_agent_info gauge",
            &format!(
                "hakeep_agent_info{{cluster=\"prod\",node=\"n1\",version=\"{}\",commit=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                env!("HAKEEP_GIT_COMMIT")
            ),
            "hakeep_keepalived_up 0",
            "# TYPE hakeep_group_takeovers_total counter",
            "hakeep_alerts_dropped_total 0",
        ],
    );
    for g in ["web", "db"] {
        for family in [
            "hakeep_group_active",
            "hakeep_group_healthy",
            "hakeep_group_failed",
            "hakeep_group_maintenance",
            "hakeep_group_takeovers_total",
            "hakeep_group_releases_total",
            "hakeep_group_faults_total",
            "hakeep_group_restarts_total",
            "hakeep_group_fences_total",
        ] {
            assert_lines(&text, &[&format!("{family}{{group=\"{g}\"}} 0")]);
        }
        assert_lines(
            &text,
            &[&format!("hakeep_group_hold_seconds{{group=\"{g}\"}} 0.0")],
        );
        for state in ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"] {
            assert_lines(
                &text,
                &[&format!(
                    "hakeep_group_vrrp_state{{group=\"{g}\",state=\"{state}\"}} 0"
                )],
            );
        }
    }
    // A family without series is left out: no step and no check ran yet.
    assert!(!text.contains("hakeep_step_duration_seconds"), "{text}");
    assert!(!text.contains("hakeep_check_up"), "{text}");
    let start: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hakeep_agent_start_time_seconds "))
        .expect("the start time")
        .parse()
        .unwrap();
    assert!(start > 1.7e9, "{start}");
}

#[test]
fn the_families_follow_the_observer_calls() {
    let m = metrics();
    m.keepalived(true);
    let live = GroupLive {
        hold_until: None,
        checks: vec![
            ("ping 10.0.0.1".into(), true),
            ("tcp 10.0.0.1:80".into(), false),
        ],
    };
    m.group("web", &group(VrrpState::Master, "active", "active"), &live);
    m.event(&event(AlertEvent::Take, "ok"));
    m.event(&event(AlertEvent::Take, "error"));
    m.event(&event(AlertEvent::Release, "ok"));
    m.event(&event(AlertEvent::Release, "error"));
    m.event(&event(AlertEvent::Restart, "ok"));
    m.event(&event(AlertEvent::Restart, "error"));
    m.event(&event(AlertEvent::Fault, "error"));
    m.event(&event(AlertEvent::Fence, "error"));
    m.event(&event(AlertEvent::Failed, "error"));
    m.event(&Event::new(
        AlertEvent::Keepalived,
        None,
        "down",
        "x".into(),
    ));
    m.step(
        "web",
        &Step {
            action: "take".into(),
            resource: "mount:/srv/web".into(),
            started: "2026-11-22T02:20:58.342Z".into(),
            duration_ms: 230,
            ok: true,
            error: None,
        },
    );
    let text = m.render(SystemTime::now());
    let step = "group=\"web\",action=\"take\",step=\"mount:/srv/web\"";
    assert_lines(
        &text,
        &[
            "hakeep_keepalived_up 1",
            "hakeep_group_vrrp_state{group=\"web\",state=\"MASTER\"} 1",
            "hakeep_group_vrrp_state{group=\"web\",state=\"BACKUP\"} 0",
            "hakeep_group_vrrp_state{group=\"web\",state=\"INIT\"} 0",
            "hakeep_group_active{group=\"web\"} 1",
            "hakeep_group_healthy{group=\"web\"} 1",
            "hakeep_group_hold_seconds{group=\"web\"} 0.0",
            "hakeep_group_takeovers_total{group=\"web\"} 1",
            "hakeep_group_releases_total{group=\"web\"} 1",
            "hakeep_group_restarts_total{group=\"web\"} 2",
            "hakeep_group_faults_total{group=\"web\"} 1",
            "hakeep_group_fences_total{group=\"web\"} 1",
            "hakeep_group_takeovers_total{group=\"db\"} 0",
            "hakeep_check_up{group=\"web\",check=\"ping 10.0.0.1\"} 1",
            "hakeep_check_up{group=\"web\",check=\"tcp 10.0.0.1:80\"} 0",
            &format!("hakeep_step_duration_seconds_bucket{{{step},le=\"0.1\"}} 0"),
            &format!("hakeep_step_duration_seconds_bucket{{{step},le=\"0.25\"}} 1"),
            &format!("hakeep_step_duration_seconds_bucket{{{step},le=\"+Inf\"}} 1"),
            &format!("hakeep_step_duration_seconds_sum{{{step}}} 0.23"),
            &format!("hakeep_step_duration_seconds_count{{{step}}} 1"),
        ],
    );

    // A fault: the node steps down and holds; the checks no longer run here.
    let now = SystemTime::now();
    let mut faulted = group(VrrpState::Fault, "standby", "standby");
    faulted.fault = Some(Fault {
        reason: "check failed".into(),
        by_operator: false,
        kind: HoldKind::Fault,
        since: "x".into(),
        hold_down_until: "y".into(),
    });
    let held = GroupLive {
        hold_until: Some(now + Duration::from_secs(30)),
        checks: Vec::new(),
    };
    m.group("web", &faulted, &held);
    m.keepalived(false);
    let text = m.render(now);
    assert_lines(
        &text,
        &[
            "hakeep_keepalived_up 0",
            "hakeep_group_vrrp_state{group=\"web\",state=\"MASTER\"} 0",
            "hakeep_group_vrrp_state{group=\"web\",state=\"FAULT\"} 1",
            "hakeep_group_active{group=\"web\"} 0",
            "hakeep_group_healthy{group=\"web\"} 0",
            "hakeep_group_hold_seconds{group=\"web\"} 30.0",
        ],
    );
    assert!(!text.contains("hakeep_check_up{"), "{text}");
    // The hold counts down at each scrape, and ends at 0.
    let later = m.render(now + Duration::from_millis(29_500));
    assert_lines(&later, &["hakeep_group_hold_seconds{group=\"web\"} 0.5"]);
    let after = m.render(now + Duration::from_secs(31));
    assert_lines(&after, &["hakeep_group_hold_seconds{group=\"web\"} 0.0"]);
}

#[test]
fn health_failed_and_maintenance() {
    let m = metrics();
    // Desired active but not yet actual: not active, not healthy.
    m.group(
        "web",
        &group(VrrpState::Master, "active", "partial"),
        &GroupLive::default(),
    );
    let text = m.render(SystemTime::now());
    assert_lines(
        &text,
        &[
            "hakeep_group_active{group=\"web\"} 0",
            "hakeep_group_healthy{group=\"web\"} 0",
        ],
    );
    // An operator's hold on a standby node is as intended; a problem is not.
    let mut standby = group(VrrpState::Backup, "standby", "standby");
    standby.fault = Some(Fault {
        reason: "switchover".into(),
        by_operator: true,
        kind: HoldKind::Operator,
        since: "x".into(),
        hold_down_until: "y".into(),
    });
    standby.maintenance = true;
    m.group("web", &standby, &GroupLive::default());
    let mut failed = group(VrrpState::Stop, "standby", "partial");
    failed.failed = Some("release failed at unit:x".into());
    failed
        .problems
        .push("floating IP 10.0.0.5/24 is present on a standby node".into());
    m.group("db", &failed, &GroupLive::default());
    let text = m.render(SystemTime::now());
    assert_lines(
        &text,
        &[
            "hakeep_group_healthy{group=\"web\"} 1",
            "hakeep_group_maintenance{group=\"web\"} 1",
            "hakeep_group_failed{group=\"web\"} 0",
            "hakeep_group_healthy{group=\"db\"} 0",
            "hakeep_group_failed{group=\"db\"} 1",
            "hakeep_group_vrrp_state{group=\"db\",state=\"STOP\"} 1",
        ],
    );
    // keepalived has not reported a state: every state series is 0.
    m.group(
        "db",
        &group(VrrpState::Unknown, "standby", "standby"),
        &GroupLive::default(),
    );
    let text = m.render(SystemTime::now());
    for state in ["INIT", "BACKUP", "MASTER", "FAULT", "STOP"] {
        assert_lines(
            &text,
            &[&format!(
                "hakeep_group_vrrp_state{{group=\"db\",state=\"{state}\"}} 0"
            )],
        );
    }
}

#[test]
fn dropped_alerts_are_read_at_each_scrape() {
    let dropped = Arc::new(AtomicU64::new(0));
    let read = dropped.clone();
    let m = Metrics::new(
        "c",
        "n",
        &[],
        Box::new(move || read.load(Ordering::Relaxed)),
    );
    dropped.store(3, Ordering::Relaxed);
    assert_lines(
        &m.render(SystemTime::now()),
        &["hakeep_alerts_dropped_total 3"],
    );
    dropped.store(5, Ordering::Relaxed);
    assert_lines(
        &m.render(SystemTime::now()),
        &["hakeep_alerts_dropped_total 5"],
    );
}

/// One HTTP/1.0 request; the whole answer.
fn request(address: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{head}\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_endpoint_serves_get_metrics_only() {
    let m = Arc::new(metrics());
    m.keepalived(true);
    let server = http::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = server.server_addr().to_ip().unwrap();
    let served = m.clone();
    std::thread::spawn(move || http::serve(server, address, &|| served.render(SystemTime::now())));

    let ok = request(address, "GET /metrics HTTP/1.1");
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("Content-Type: {CONTENT_TYPE}"))),
        "{head}"
    );
    assert_lines(
        body,
        &[
            "hakeep_keepalived_up 1",
            "hakeep_group_active{group=\"web\"} 0",
        ],
    );
    let with_query = request(address, "GET /metrics?x=1 HTTP/1.1");
    assert!(with_query.starts_with("HTTP/1.1 200"), "{with_query}");

    let missing = request(address, "GET / HTTP/1.1");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let missing = request(address, "GET /metricsx HTTP/1.1");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    for method in ["POST", "PUT", "DELETE", "HEAD"] {
        let refused = request(address, &format!("{method} /metrics HTTP/1.1"));
        assert!(refused.starts_with("HTTP/1.1 405"), "{method}: {refused}");
        assert!(
            refused
                .lines()
                .any(|l| l.eq_ignore_ascii_case("Allow: GET")),
            "{refused}"
        );
    }
}

#[test]
fn an_address_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let e = http::bind(address).err().expect("the address is taken");
    assert!(e.to_string().to_lowercase().contains("in use"), "{e}");
}

/// Polls `path` until `want` says yes (or 5 s pass); the last content.
fn wait_for_file(path: &std::path::Path, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if want(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_textfile_is_written_at_start_on_change_and_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hakeep.prom");
    let textfile = Arc::new(textfile::Textfile::new(&path));
    let renders = Arc::new(AtomicU64::new(0));
    let (writer, counted) = (textfile.clone(), renders.clone());
    let thread = std::thread::spawn(move || {
        writer.run(Duration::from_secs(3600), &|| {
            format!("x {}\n", counted.fetch_add(1, Ordering::SeqCst))
        })
    });
    assert_eq!(wait_for_file(&path, |t| t == "x 0\n"), "x 0\n");
    textfile.changed();
    assert_eq!(wait_for_file(&path, |t| t == "x 1\n"), "x 1\n");
    textfile.stop();
    thread.join().unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o644,
        "node_exporter reads it as another user"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left");

    // The periodic write, and a directory that appears only later.
    let late = dir.path().join("later/hakeep.prom");
    let textfile = Arc::new(textfile::Textfile::new(&late));
    let writer = textfile.clone();
    let thread =
        std::thread::spawn(move || writer.run(Duration::from_millis(20), &|| "y 1\n".to_string()));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::create_dir(dir.path().join("later")).unwrap();
    assert_eq!(wait_for_file(&late, |t| !t.is_empty()), "y 1\n");
    textfile.stop();
    thread.join().unwrap();
}

#[test]
fn the_textfile_follows_the_observer_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hakeep.prom");
    let textfile = Arc::new(textfile::Textfile::new(&path));
    let mut m = metrics();
    m.textfile = Some(textfile.clone());
    let m = Arc::new(m);
    let (writer, rendered) = (textfile.clone(), m.clone());
    let thread = std::thread::spawn(move || {
        // Only the changes write: the periodic write is an hour away.
        writer.run(Duration::from_secs(3600), &|| {
            rendered.render(SystemTime::now())
        })
    });
    let text = wait_for_file(&path, |t| t.contains("hakeep_keepalived_up 0"));
    assert_lines(&text, &["hakeep_group_active{group=\"web\"} 0"]);
    m.keepalived(true);
    m.group(
        "web",
        &group(VrrpState::Master, "active", "active"),
        &GroupLive::default(),
    );
    let text = wait_for_file(&path, |t| {
        t.contains("hakeep_group_active{group=\"web\"} 1")
    });
    assert_lines(
        &text,
        &[
            "hakeep_keepalived_up 1",
            "hakeep_group_active{group=\"web\"} 1",
        ],
    );
    textfile.stop();
    thread.join().unwrap();
}
