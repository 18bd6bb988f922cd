//! Validating JSON documents against the schemas in docs/ (JSON Schema 2020-12) with
//! Debian's python3-jsonschema (scripts/install-deps.sh installs it): the project's
//! validator, shared by the schema tests of tier 1 (`schemas`) and tier 2 (`operator`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

const VALIDATOR: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(json.load(open(path))))
    for e in errors:
        print(f"{path}: at {list(e.absolute_path)}: {e.message[:300]}")
        for sub in sorted(e.context or [], key=lambda s: len(list(s.absolute_path)))[:6]:
            print(f"    {list(sub.absolute_path)}: {sub.message[:200]}")
    print(f"RESULT {path} {'invalid' if errors else 'valid'}")
"#;

/// docs/NAME.
pub fn schema(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
}

/// Why the validator cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import jsonschema; jsonschema.Draft202012Validator"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "python3 has no jsonschema with draft 2020-12 ({}); scripts/install-deps.sh installs python3-jsonschema",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("no python3: {e}")),
    }
}

/// Validates each (label, document) against `schema`: label → (valid, the validator's
/// messages when not).
pub fn validate(
    schema: &Path,
    docs: &[(&str, &Value)],
) -> Result<BTreeMap<String, (bool, String)>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("validate.py");
    std::fs::write(&script, VALIDATOR)?;
    let mut files = BTreeMap::new();
    let mut command = Command::new("python3");
    command.arg(&script).arg(schema);
    for (i, (label, doc)) in docs.iter().enumerate() {
        let path = dir.path().join(format!("doc-{i}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(doc)?)?;
        command.arg(&path);
        files.insert(path.display().to_string(), label.to_string());
    }
    let out = command.output().context("running python3")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "the validator failed ({}); is python3-jsonschema installed \
             (scripts/install-deps.sh)? {}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut results = BTreeMap::new();
    for (path, label) in &files {
        let valid = text.contains(&format!("RESULT {path} valid"));
        let invalid = text.contains(&format!("RESULT {path} invalid"));
        ensure!(valid != invalid, "no result for {label} in:\n{text}");
        let messages: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{path}: ")))
            .collect();
        results.insert(label.clone(), (valid, messages.join("\n")));
    }
    Ok(results)
}

/// Every document must validate against `schema`.
pub fn ensure_valid(schema: &Path, docs: &[(&str, &Value)]) -> Result<()> {
    let results = validate(schema, docs)?;
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, (valid, _))| !valid)
        .map(|(label, (_, why))| format!("{label}:\n{why}"))
        .collect();
    ensure!(
        bad.is_empty(),
        "not valid against {}:\n{}",
        schema.display(),
        bad.join("\n")
    );
    eprintln!(
        "[schema] valid against {}: {}",
        schema.display(),
        results.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Every document must be rejected (the validator does check).
pub fn ensure_rejected(schema: &Path, docs: &[(&str, &Value)]) -> Result<()> {
    let results = validate(schema, docs)?;
    ensure!(
        results.values().all(|(valid, _)| !valid),
        "the validator accepts invalid documents: {results:?}"
    );
    Ok(())
}
