//! Log lines to stderr, where systemd's journal picks them up; no timestamps (the journal
//! has them) unless asked.

use log::{Level, LevelFilter, Metadata, Record};

struct StderrLogger {
    level: LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            // <N> prefixes are journald priorities (sd-daemon(3)).
            let priority = match record.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            eprintln!("<{priority}>{}", record.args());
        }
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
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}
