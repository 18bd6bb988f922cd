//! The example alerting rules, the Grafana dashboard and docs/metrics.md name only
//! families the agent exports, and the docs name every one: none can drift from the code.

use std::collections::BTreeSet;

use marked_yaml::Node;
use serde_json::Value;

use super::*;

const RULES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../dist/prometheus/hakeep-rules.yml"
));
const DASHBOARD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../dist/grafana/hakeep.json"
));
const DOCS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/metrics.md"
));

/// (family, the series names it exports) from a scrape that has every family: a check
/// and a step make the two that start without series.
fn exported() -> Vec<(String, Vec<String>)> {
    let m = metrics();
    let live = GroupLive {
        hold_until: None,
        checks: vec![("ping 10.0.0.1".into(), true)],
    };
    m.group("web", &group(VrrpState::Master, "active", "active"), &live);
    let step = Step {
        action: "take".into(),
        resource: "mount:/srv/web".into(),
        started: "2026-11-22T02:20:58.342Z".into(),
        duration_ms: 5,
        ok: true,
        error: None,
    };
    m.step("web", &step);
    let text = m.render(SystemTime::now());
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE NAME KIND");
            let series = match kind {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name.to_string()],
            };
            (name.to_string(), series)
        })
        .collect()
}

fn series_names() -> BTreeSet<String> {
    exported().into_iter().flat_map(|(_, s)| s).collect()
}

/// Every `hakeep_...` identifier in a PromQL expression.
fn hakeep_names(expr: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("hakeep_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if !before.is_some_and(ident) {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The hakeep families `expr` uses, each checked against `known`.
#[track_caller]
fn assert_known(what: &str, expr: &str, known: &BTreeSet<String>) -> Vec<String> {
    let names = hakeep_names(expr);
    for name in &names {
        assert!(
            known.contains(name),
            "{what}: {name} is no family the agent exports ({known:?}):\n{expr}"
        );
    }
    names
}

fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.as_mapping()?.get_scalar(key).map(|s| s.as_str())
}

#[test]
fn the_alerting_rules_use_only_exported_families() {
    let known = series_names();
    let root = marked_yaml::parse_yaml(0, RULES).expect("hakeep-rules.yml is YAML");
    let groups = root
        .as_mapping()
        .and_then(|m| m.get_sequence("groups"))
        .expect("groups:");
    let (mut alerts, mut used) = (BTreeSet::new(), BTreeSet::new());
    for group in groups.iter() {
        let rules = group
            .as_mapping()
            .and_then(|m| m.get_sequence("rules"))
            .expect("rules:");
        for rule in rules.iter() {
            let alert = text(rule, "alert").expect("every rule is an alert");
            assert!(alerts.insert(alert.to_string()), "{alert} twice");
            let expr = text(rule, "expr").expect("expr:");
            used.extend(assert_known(alert, expr, &known));
            let map = rule.as_mapping().unwrap();
            let severity = map
                .get_mapping("labels")
                .and_then(|l| l.get_scalar("severity"));
            assert!(severity.is_some(), "{alert}: labels.severity");
            let annotations = map.get_mapping("annotations").expect("annotations");
            assert!(
                annotations.get_scalar("summary").is_some(),
                "{alert}: summary"
            );
        }
    }
    assert!(used.len() >= 8, "{used:?}");
    for wanted in [
        "HakeepGroupNotServed",
        "HakeepGroupServedTwice",
        "HakeepGroupUnhealthy",
        "HakeepKeepalivedDown",
        "HakeepAgentDown",
        "HakeepTakeoversRising",
        "HakeepGroupHold",
    ] {
        assert!(alerts.contains(wanted), "no rule {wanted}: {alerts:?}");
    }
}

/// Every PromQL expression of the dashboard: panel targets and variable queries.
fn dashboard_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_uses_only_exported_families() {
    let known = series_names();
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("hakeep.json is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for wanted in ["datasource", "node", "group"] {
        assert!(
            variables.contains(&wanted),
            "variable {wanted}: {variables:?}"
        );
    }
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let queries: Vec<&String> = queries.iter().filter(|q| q.contains("hakeep_")).collect();
    assert!(queries.len() >= 10, "{queries:?}");
    for q in queries {
        assert_known("the dashboard", q, &known);
    }
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
    }
}

#[test]
fn the_docs_name_every_family() {
    for (family, _) in exported() {
        assert!(
            DOCS.contains(&format!("`{family}")),
            "docs/metrics.md does not describe {family}"
        );
    }
    let mut known = series_names();
    known.extend(exported().into_iter().map(|(family, _)| family));
    for name in hakeep_names(DOCS) {
        assert!(
            known.contains(&name),
            "docs/metrics.md names {name}, which the agent does not export"
        );
    }
}

#[test]
fn names_are_found_in_expressions() {
    assert_eq!(
        hakeep_names("sum by (group) (rate(hakeep_a_total[5m])) > on(x) xhakeep_b + hakeep_c:d"),
        ["hakeep_a_total", "hakeep_c:d"]
    );
}
