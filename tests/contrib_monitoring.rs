//! The monitoring files in contrib/ against what a node exports: the Grafana dashboard
//! parses as JSON and its queries name only exported series; the Prometheus alert rules
//! have the structure Prometheus loads (checked line by line: no YAML parser is a
//! dependency) and name only exported series; and docs/monitoring.md describes every
//! metric family and every alert.

use std::collections::{BTreeSet, HashSet};

use softadastra::{Client, ClientOptions};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The metrics text of a node with a WAL (so that every family has its figures).
fn metrics_text() -> String {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("n.wal");
    let client = Client::new(ClientOptions::persistent(
        "contrib-node",
        wal.to_str().unwrap(),
    ));
    client.open().unwrap();
    client.put("k", b"v").unwrap();
    client.metrics_text().unwrap()
}

/// Every series name the node exports (`_bucket`, `_sum` and `_count` of a histogram, the
/// `_total` of a counter).
fn exported_series() -> HashSet<String> {
    metrics_text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// Every family the node exports, by its name in `# TYPE` lines (a counter's without
/// `_total`).
fn exported_families() -> BTreeSet<String> {
    metrics_text()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

/// The `softadastra_*` names a query uses.
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("softadastra_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn check_names(what: &str, expr: &str, exported: &HashSet<String>) -> usize {
    let names = names_in(expr);
    for name in &names {
        assert!(
            exported.contains(name),
            "{what}: {name} is not exported (query: {expr})"
        );
    }
    names.len()
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let exported = exported_series();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("contrib/grafana/softadastra-dashboard.json"))
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "softadastra-node");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = HashSet::new();
    let mut queries = 0;
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric id")),
            "{panel}"
        );
        assert!(
            panel["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24),
            "{panel}"
        );
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a title");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("an expr");
            assert!(
                check_names(title, expr, &exported) > 0,
                "{title}: {expr} names no metric"
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "only {queries} queries");
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            check_names("a variable", q, &exported);
        }
    }
}

/// One alerting rule, as read from the rules file.
#[derive(Debug, Default)]
struct Rule {
    alert: String,
    expr: String,
    keys: BTreeSet<String>,
    severity: String,
}

/// Reads the rules file line by line, checking the structure Prometheus expects:
/// `groups:`, a group with `name:` and `rules:`, and rules of `alert:`, `expr:`, `for:`,
/// `labels:` (with `severity:`) and `annotations:` (with `summary:` and `description:`),
/// indented with spaces.
fn rules() -> Vec<Rule> {
    let text = read("contrib/prometheus/softadastra-alerts.yml");
    assert!(!text.contains('\t'), "YAML is indented with spaces only");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(lines[0], "groups:");
    assert_eq!(lines[1], "  - name: softadastra");
    assert_eq!(lines[2], "    rules:");
    let mut rules: Vec<Rule> = Vec::new();
    let mut section = "";
    for line in &lines[3..] {
        let indent = line.len() - line.trim_start().len();
        let entry = line.trim_start();
        let (key, value) = entry
            .trim_start_matches("- ")
            .split_once(':')
            .unwrap_or_else(|| panic!("not KEY: VALUE: {line}"));
        let value = value.trim();
        match (indent, entry.starts_with("- ")) {
            (6, true) => {
                assert_eq!(key, "alert", "{line}");
                rules.push(Rule {
                    alert: value.to_string(),
                    ..Rule::default()
                });
            }
            (8, false) => {
                let rule = rules.last_mut().expect("a rule first");
                assert!(rule.keys.insert(key.to_string()), "{key} twice: {line}");
                section = key;
                if key == "expr" {
                    rule.expr = value.to_string();
                }
                assert!(
                    ["expr", "for", "labels", "annotations"].contains(&key),
                    "unknown rule key: {line}"
                );
                assert_eq!(
                    value.is_empty(),
                    ["labels", "annotations"].contains(&key),
                    "{line}"
                );
            }
            (10, false) => {
                let rule = rules.last_mut().expect("a rule first");
                assert!(
                    rule.keys.insert(format!("{section}.{key}")),
                    "{key} twice: {line}"
                );
                if section == "labels" && key == "severity" {
                    rule.severity = value.to_string();
                }
                assert!(
                    value.starts_with('"') == value.ends_with('"') && !value.is_empty(),
                    "a quoted value is closed on its line: {line}"
                );
            }
            _ => panic!("unexpected indentation: {line}"),
        }
    }
    rules
}

#[test]
fn the_alert_rules_are_well_formed_and_use_only_exported_metrics() {
    let exported = exported_series();
    let rules = rules();
    assert!(rules.len() >= 8, "{rules:?}");
    let mut names = HashSet::new();
    for rule in &rules {
        assert!(names.insert(rule.alert.clone()), "{} twice", rule.alert);
        assert!(rule.alert.starts_with("Softadastra"), "{}", rule.alert);
        for key in [
            "expr",
            "for",
            "labels",
            "labels.severity",
            "annotations",
            "annotations.summary",
            "annotations.description",
        ] {
            assert!(rule.keys.contains(key), "{} has no {key}", rule.alert);
        }
        assert!(
            ["critical", "warning"].contains(&rule.severity.as_str()),
            "{}: severity {}",
            rule.alert,
            rule.severity
        );
        let used = check_names(&rule.alert, &rule.expr, &exported);
        assert!(used > 0 || rule.expr.contains("up{"), "{}", rule.alert);
    }
    // The alerts the issue asks for: failed sync work, peer down, writes refused, disk
    // nearly full.
    for wanted in [
        "SoftadastraSyncFailedWork",
        "SoftadastraPeerDown",
        "SoftadastraWritesRefused",
        "SoftadastraDiskNearlyFull",
    ] {
        assert!(names.contains(wanted), "no {wanted}");
    }
}

#[test]
fn every_metric_family_and_alert_is_described_in_the_monitoring_doc() {
    let doc = read("docs/monitoring.md");
    let text = metrics_text();
    for family in exported_families() {
        // Counters are documented by their series name (with `_total`), the rest as is.
        let counter = text.contains(&format!("# TYPE {family} counter"));
        let info = text.contains(&format!("# TYPE {family} info"));
        let shown = match (counter, info) {
            (true, _) => format!("`{family}_total`"),
            (_, true) => format!("`{family}_info`"),
            _ => format!("`{family}`"),
        };
        assert!(doc.contains(&shown), "{shown} is not in docs/monitoring.md");
    }
    for rule in rules() {
        assert!(
            doc.contains(&format!("`{}`", rule.alert)),
            "{} is not in docs/monitoring.md",
            rule.alert
        );
    }
}
