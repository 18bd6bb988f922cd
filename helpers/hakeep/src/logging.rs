//! Logs go to the journal through its native protocol when the process runs under
//! journald (its stderr is the journal stream), so each line's key-values become fields
//! (`journalctl -u hakeep-agent HAKEEP_GROUP=web`); otherwise to stderr, with no
//! timestamps (whoever collects stderr adds them).

use log::{Level, LevelFilter, Metadata, Record};
use systemd_journal_logger::JournalLog;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _metadata: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        // <N> prefixes are syslog priorities (sd-daemon(3)), read by journald when
        // stderr is a stream to it without the native protocol.
        let priority = match record.level() {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        eprintln!("<{priority}>{}", record.args());
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls do nothing.
pub fn init(verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let installed = if systemd_journal_logger::connected_to_journal() {
        // The unit's SyslogIdentifier= names only its stderr stream: say it here too.
        match JournalLog::empty() {
            Ok(journal) => journal
                .with_syslog_identifier("hakeep-agent".into())
                .install(),
            Err(_) => log::set_boxed_logger(Box::new(StderrLogger)),
        }
    } else {
        log::set_boxed_logger(Box::new(StderrLogger))
    };
    if installed.is_ok() {
        log::set_max_level(level);
    }
}
