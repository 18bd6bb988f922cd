//! Alert programs (`alerts:` in cluster.yml), as Pacemaker runs its alert agents: on each
//! event a program asked for, the agent runs it with its argv and the event in HAKEEP_*
//! environment variables. Never in the way of a take or a release: an event only queues
//! a job (a full queue drops it, and says so). Each alert has its own queue and a few
//! threads that run its jobs, each bounded by the program's timeout, so a hanging mail
//! program never holds back the webhook; a failure is logged with the program's stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Alert;
use crate::exec::{Cmd, Runner};
use crate::runtime::state::{epoch_ms, timestamp};

use super::events::{Event, Observer};

/// How many runs of one alert program may be under way at once.
pub const CONCURRENCY: usize = 2;
/// Jobs of one alert waiting for a free runner beyond this are dropped (and logged).
pub const QUEUE: usize = 64;

struct Job {
    event: String,
    env: Vec<(String, String)>,
}

pub struct Alerts {
    alerts: Vec<Alert>,
    cluster: String,
    node: String,
    /// One queue per alert, in `alerts` order.
    queues: Vec<SyncSender<Job>>,
    sequence: AtomicU64,
    dropped: AtomicU64,
}

impl Alerts {
    /// Starts the runner threads; `None` when no alert is configured.
    pub fn start(
        alerts: &[Alert],
        cluster: &str,
        node: &str,
        runner: Arc<dyn Runner>,
    ) -> anyhow::Result<Option<Arc<Alerts>>> {
        if alerts.is_empty() {
            return Ok(None);
        }
        let mut queues = Vec::new();
        for (a, alert) in alerts.iter().enumerate() {
            let (queue, jobs) = mpsc::sync_channel(QUEUE);
            let jobs = Arc::new(Mutex::new(jobs));
            for i in 0..CONCURRENCY {
                let (jobs, alert, runner) = (jobs.clone(), alert.clone(), runner.clone());
                std::thread::Builder::new()
                    .name(format!("alert-{a}-{i}"))
                    .spawn(move || run_jobs(&jobs, &alert, runner.as_ref()))?;
            }
            queues.push(queue);
        }
        Ok(Some(Arc::new(Alerts {
            alerts: alerts.to_vec(),
            cluster: cluster.to_string(),
            node: node.to_string(),
            queues,
            sequence: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })))
    }

    /// Jobs dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The environment an alert program gets for `event`.
    fn environment(&self, event: &Event, sequence: u64) -> Vec<(String, String)> {
        let group = event.group.clone().unwrap_or_default();
        let detail = one_line(&event.detail);
        let at = timestamp(event.at);
        let json = serde_json::json!({
            "event": event.kind.as_str(),
            "cluster": self.cluster,
            "node": self.node,
            "group": event.group,
            "result": event.result,
            "detail": detail,
            "timestamp": at,
            "timestamp_ms": epoch_ms(event.at),
            "sequence": sequence,
        });
        [
            ("HAKEEP_EVENT", event.kind.as_str().to_string()),
            ("HAKEEP_CLUSTER", self.cluster.clone()),
            ("HAKEEP_NODE", self.node.clone()),
            ("HAKEEP_GROUP", group),
            ("HAKEEP_RESULT", event.result.clone()),
            ("HAKEEP_DETAIL", detail),
            ("HAKEEP_TIMESTAMP", at),
            ("HAKEEP_TIMESTAMP_MS", epoch_ms(event.at).to_string()),
            ("HAKEEP_SEQUENCE", sequence.to_string()),
            ("HAKEEP_EVENT_JSON", json.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Observer for Alerts {
    fn event(&self, event: &Event) {
        let wanted: Vec<usize> = (0..self.alerts.len())
            .filter(|&i| self.alerts[i].events.contains(&event.kind))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let env = self.environment(event, sequence);
        for alert in wanted {
            let job = Job {
                event: event.kind.as_str().to_string(),
                env: env.clone(),
            };
            match self.queues[alert].try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "alert {} for event {}: not run, {QUEUE} runs of it are already waiting",
                        self.alerts[alert].program.display(),
                        job.event
                    );
                }
            }
        }
    }
}

fn run_jobs(jobs: &Mutex<Receiver<Job>>, alert: &Alert, runner: &dyn Runner) {
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let mut argv = vec![alert.program.display().to_string()];
        argv.extend(alert.args.iter().cloned());
        let cmd =
            Cmd::new(argv, Duration::from_secs(u64::from(alert.timeout_secs))).with_env(job.env);
        let started = Instant::now();
        match runner.run_ok(&cmd) {
            Ok(_) => log::info!(
                "alert {} for event {} done in {} ms",
                alert.program.display(),
                job.event,
                started.elapsed().as_millis()
            ),
            Err(e) => log::error!("alert for event {}: {e}", job.event),
        }
    }
}

/// Control characters (newlines) become spaces: a detail goes into mail headers too.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertEvent;
    use crate::exec::{ExecError, RecordingRunner};
    use std::path::PathBuf;

    fn alert(program: &str, events: &[AlertEvent]) -> Alert {
        Alert {
            program: PathBuf::from(program),
            args: vec!["arg one".into()],
            events: events.to_vec(),
            timeout_secs: 7,
        }
    }

    fn wait_for(runner: &RecordingRunner, n: usize) -> Vec<Cmd> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while runner.commands().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        runner.commands()
    }

    #[test]
    fn runs_the_programs_that_asked_for_the_event_with_argv_and_environment() {
        let runner = Arc::new(RecordingRunner::new());
        let alerts = Alerts::start(
            &[
                alert("/usr/lib/hakeep/alerts/webhook", &[AlertEvent::Take]),
                alert("/usr/lib/hakeep/alerts/email", &[AlertEvent::Fault]),
            ],
            "prod",
            "n1",
            runner.clone(),
        )
        .unwrap()
        .unwrap();
        alerts.event(&Event::new(
            AlertEvent::Take,
            Some("web"),
            "ok",
            "now active\non n1".into(),
        ));
        let cmds = wait_for(&runner, 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runner.commands().len(), 1, "only the take alert runs");
        let cmd = &cmds[0];
        assert_eq!(cmd.argv, ["/usr/lib/hakeep/alerts/webhook", "arg one"]);
        assert_eq!(cmd.timeout, Duration::from_secs(7));
        let env: std::collections::HashMap<_, _> = cmd.env.iter().cloned().collect();
        assert_eq!(env["HAKEEP_EVENT"], "take");
        assert_eq!(env["HAKEEP_CLUSTER"], "prod");
        assert_eq!(env["HAKEEP_NODE"], "n1");
        assert_eq!(env["HAKEEP_GROUP"], "web");
        assert_eq!(env["HAKEEP_RESULT"], "ok");
        assert_eq!(
            env["HAKEEP_DETAIL"], "now active on n1",
            "newlines become spaces"
        );
        assert!(env["HAKEEP_TIMESTAMP"].ends_with('Z'));
        assert_eq!(env["HAKEEP_SEQUENCE"], "1");
        let json: serde_json::Value = serde_json::from_str(&env["HAKEEP_EVENT_JSON"]).unwrap();
        assert_eq!(json["group"], "web");
        assert_eq!(json["event"], "take");
    }

    #[test]
    fn a_failing_or_hanging_program_never_blocks_the_event() {
        let runner = Arc::new(RecordingRunner::new());
        // Every run hangs until the test lets it go, then fails.
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let held = gate.clone();
        runner.respond(move |cmd| {
            if cmd.program() != "/bin/hang" {
                return None;
            }
            let (open, cv) = &*held;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Some(Err(ExecError::Failed {
                program: "x".into(),
                code: Some(1),
                stderr: "boom".into(),
            }))
        });
        let alerts = Alerts::start(
            &[
                alert("/bin/hang", &AlertEvent::ALL),
                alert("/bin/quick", &[AlertEvent::Fault]),
            ],
            "c",
            "n",
            runner.clone(),
        )
        .unwrap()
        .unwrap();
        let events = QUEUE + CONCURRENCY + 10;
        let (done_tx, done) = mpsc::channel();
        let sender = alerts.clone();
        std::thread::spawn(move || {
            for _ in 0..events {
                sender.event(&Event::new(
                    AlertEvent::Fault,
                    Some("g"),
                    "error",
                    "x".into(),
                ));
            }
            done_tx.send(()).unwrap();
        });
        // While every runner hangs, all the events were still accepted (or dropped).
        done.recv_timeout(Duration::from_secs(30))
            .expect("posting events returned while the alert programs hang");
        assert!(alerts.dropped() >= 10, "dropped {}", alerts.dropped());
        // The quick alert is not held back by the hanging one.
        let count = |program: &str| {
            runner
                .commands()
                .iter()
                .filter(|c| c.program() == program)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while count("/bin/quick") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            count("/bin/quick") > 0,
            "the quick alert ran while the other one hangs"
        );
        assert_eq!(
            count("/bin/hang"),
            CONCURRENCY,
            "runs of the hanging program under way"
        );
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
        let ran = 2 * events - alerts.dropped() as usize;
        assert_eq!(wait_for(&runner, ran).len(), ran, "every queued alert runs");
    }

    #[test]
    fn no_alerts_no_threads() {
        let runner = Arc::new(RecordingRunner::new());
        assert!(Alerts::start(&[], "c", "n", runner).unwrap().is_none());
    }
}
