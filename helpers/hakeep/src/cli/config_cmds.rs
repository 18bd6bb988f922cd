//! validate, render, keepalived-check.

use std::path::Path;

use anyhow::Context;

use super::exit;
use crate::config::{self, ConfigError};
use crate::exec::SystemRunner;
use crate::fsutil::write_atomic;
use crate::keepalived::check;
use crate::render;

pub fn validate(path: &Path) -> anyhow::Result<i32> {
    match config::load(path) {
        Ok(cluster) => {
            // Where the file is checked before it is installed (Ansible's validate runs on
            // a temporary copy), ownership says nothing yet: a warning, not an error.
            for why in config::trust::untrusted(path, &cluster) {
                eprintln!("warning: {why} (the agent refuses to run with it)");
            }
            println!(
                "{}: valid: cluster {}, {} nodes, {} groups",
                path.display(),
                cluster.name,
                cluster.nodes.len(),
                cluster.groups.len()
            );
            Ok(exit::OK)
        }
        Err(err) => Ok(report_config_error(&err)),
    }
}

fn report_config_error(err: &ConfigError) -> i32 {
    eprintln!("{err}");
    match err {
        ConfigError::Read { .. } => exit::CANNOT_TELL,
        ConfigError::Invalid { diagnostics, .. } => {
            eprintln!("{} error(s); nothing was changed", diagnostics.len());
            exit::PROBLEM
        }
    }
}

pub fn render_keepalived(
    path: &Path,
    node: &str,
    output: Option<&Path>,
    verify: bool,
) -> anyhow::Result<i32> {
    let cluster = match config::load(path) {
        Ok(c) => c,
        Err(err) => return Ok(report_config_error(&err)),
    };
    let text = match render::keepalived_conf(&cluster, node) {
        Ok(t) => t,
        Err(err @ render::RenderError::UnknownNode { .. }) => {
            eprintln!("hakeep: {err}");
            return Ok(exit::PROBLEM);
        }
        Err(err) => return Err(err.into()),
    };
    emit(&text, output, verify, "keepalived", |file| {
        check::check_file(&SystemRunner, file).map_err(|e| e.to_string())
    })
}

pub fn render_corosync(path: &Path, output: Option<&Path>, verify: bool) -> anyhow::Result<i32> {
    let cluster = match config::load(path) {
        Ok(c) => c,
        Err(err) => return Ok(report_config_error(&err)),
    };
    let text = match render::corosync_conf(&cluster) {
        Ok(t) => t,
        Err(err @ render::RenderError::NoQuorum(_)) => {
            eprintln!("hakeep: {err}");
            return Ok(exit::PROBLEM);
        }
        Err(err) => return Err(err.into()),
    };
    emit(&text, output, verify, "corosync", |file| {
        crate::corosync::check_file(&SystemRunner, file)
    })
}

/// Prints `text`, or writes it to `output` atomically; with `verify`, `check` must accept
/// a candidate copy beside `output` first, or nothing is replaced.
fn emit(
    text: &str,
    output: Option<&Path>,
    verify: bool,
    candidate_name: &str,
    check: impl Fn(&Path) -> Result<(), String>,
) -> anyhow::Result<i32> {
    let Some(output) = output else {
        print!("{text}");
        return Ok(exit::OK);
    };
    if verify {
        let candidate = tempfile::Builder::new()
            .prefix(&format!(".{candidate_name}-candidate"))
            .tempfile_in(
                output
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            )
            .context("creating a candidate file to check")?;
        std::fs::write(candidate.path(), text).context("writing the candidate file")?;
        if let Err(err) = check(candidate.path()) {
            eprintln!("hakeep: {} not replaced: {err}", output.display());
            return Ok(exit::PROBLEM);
        }
    }
    let changed = write_atomic(output, text.as_bytes(), 0o640)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{}: {}",
        if changed { "changed" } else { "unchanged" },
        output.display()
    );
    Ok(exit::OK)
}

pub fn keepalived_check(file: &Path, interfaces: &[String], inside: bool) -> anyhow::Result<i32> {
    let result = if inside {
        check::check_inside(&SystemRunner, file, interfaces)
    } else {
        check::check_file(&SystemRunner, file)
    };
    match result {
        Ok(()) => {
            if !inside {
                println!(
                    "{}: keepalived accepts it without a message",
                    file.display()
                );
            }
            Ok(exit::OK)
        }
        Err(
            err @ (check::CheckError::Rejected { .. }
            | check::CheckError::Messages { .. }
            | check::CheckError::Reported(_)),
        ) => {
            eprintln!("{err}");
            Ok(exit::PROBLEM)
        }
        Err(err) => {
            eprintln!("hakeep: {err}");
            Ok(exit::CANNOT_TELL)
        }
    }
}
