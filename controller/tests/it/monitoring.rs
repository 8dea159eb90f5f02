//! The monitoring kit in `deploy/monitoring/` and `deploy/components/`:
//!
//! - `promtool check rules` and `promtool test rules` over the alert rules
//!   (promtool comes from Debian's `prometheus` package, installed by
//!   `make setup`; a missing promtool fails the test, it is not skipped);
//! - every alert has a firing and a non-firing unit-test case and a runbook
//!   section in `docs/guides/operations.md`;
//! - the PrometheusRule component holds exactly the groups of `alerts.yaml`
//!   (`make gen` rewrites it);
//! - the series the dashboard and the alerts query exist, with the labels
//!   they use, in a running controller's `/metrics` (the check is called by
//!   `metrics::metrics_after_a_gcp_sync_name_every_series_with_sane_values`,
//!   which has the controller running; the checker itself is shown to catch
//!   a renamed metric and label here).

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn monitoring_dir() -> PathBuf {
    repo_root().join("deploy/monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn alert_rules() -> Value {
    serde_yaml::from_str(&read(&monitoring_dir().join("alerts.yaml"))).expect("alerts.yaml is YAML")
}

/// Every alerting rule of `alerts.yaml`.
fn alerts() -> Vec<Value> {
    let rules = alert_rules();
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|rule| rule["alert"].is_string())
        .collect()
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .unwrap_or_else(|e| panic!("promtool {args:?} did not run ({e}): `make setup` installs it (Debian package prometheus)"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let checked = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(checked.contains(&format!("SUCCESS: {} rules found", alerts().len())), "{checked}");
    let tested = promtool(&["test", "rules", "alerts_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test_case_and_a_runbook_section() {
    let tests: Value = serde_yaml::from_str(&read(&monitoring_dir().join("alerts_test.yaml"))).expect("alerts_test.yaml is YAML");
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in tests["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let entry = cases.entry(case["alertname"].as_str().expect("alertname").to_string()).or_default();
            if case["exp_alerts"].as_sequence().is_some_and(|alerts| !alerts.is_empty()) {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    let runbook = read(&repo_root().join("docs/guides/operations.md"));
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| heading.trim_start_matches('#').trim().to_lowercase().replace(' ', "-").replace(['`', '(', ')', ',', '.', '/'], ""))
        .collect();
    let names: Vec<String> = alerts().iter().map(|a| a["alert"].as_str().expect("name").to_string()).collect();
    assert_eq!(names.len(), 7, "the seven alerts of issue 25: {names:?}");
    for name in &names {
        let (firing, quiet) = cases.get(name).copied().unwrap_or_default();
        assert!(firing >= 1 && quiet >= 1, "{name}: {firing} firing and {quiet} non-firing cases in alerts_test.yaml");
        let alert = alerts().into_iter().find(|a| a["alert"].as_str() == Some(name)).expect("the alert");
        let url = alert["annotations"]["runbook_url"].as_str().unwrap_or_else(|| panic!("{name} has a runbook_url"));
        let anchor = url.strip_prefix("docs/guides/operations.md#").unwrap_or_else(|| panic!("{name}: {url} points into operations.md"));
        assert!(anchors.contains(anchor), "{name}: no section #{anchor} in docs/guides/operations.md");
    }
    assert!(cases.keys().all(|tested| names.contains(tested)), "alerts_test.yaml tests an alert that does not exist: {cases:?}");
}

fn prometheus_rule() -> String {
    let mut rule = serde_yaml::Mapping::new();
    let put = |map: &mut serde_yaml::Mapping, key: &str, value: Value| {
        map.insert(Value::String(key.into()), value);
    };
    put(&mut rule, "apiVersion", Value::String("monitoring.coreos.com/v1".into()));
    put(&mut rule, "kind", Value::String("PrometheusRule".into()));
    let mut metadata = serde_yaml::Mapping::new();
    put(&mut metadata, "name", Value::String("secretbridge-controller".into()));
    put(&mut metadata, "namespace", Value::String("secretbridge-system".into()));
    let mut labels = serde_yaml::Mapping::new();
    put(&mut labels, "app.kubernetes.io/name", Value::String("secretbridge-controller".into()));
    put(&mut metadata, "labels", Value::Mapping(labels));
    put(&mut rule, "metadata", Value::Mapping(metadata));
    let mut spec = serde_yaml::Mapping::new();
    put(&mut spec, "groups", alert_rules()["groups"].clone());
    put(&mut rule, "spec", Value::Mapping(spec));
    format!(
        "# Generated by `make gen` from deploy/monitoring/alerts.yaml (controller/tests/it/monitoring.rs). Do not edit.\n{}",
        serde_yaml::to_string(&Value::Mapping(rule)).expect("YAML")
    )
}

#[test]
fn generated_prometheus_rule_matches_alerts() {
    let path = repo_root().join("deploy/components/prometheus-rule/prometheusrule.yaml");
    let text = prometheus_rule();
    if std::env::var("SECRETBRIDGE_GEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("write the PrometheusRule");
        return;
    }
    assert!(read(&path) == text, "{} is stale; run `make gen` and commit the result", path.display());
}

/// A metric a query selects, with the label names its matchers use.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The series name as written (a histogram's `_bucket` etc. included).
    pub metric: String,
    /// Label names of `{...}` matchers.
    pub labels: Vec<String>,
}

/// What one PromQL expression uses: selectors, and label names in
/// `by (...)`, `on (...)` and the like.
#[derive(Debug, Default)]
pub struct QueryUse {
    /// The selected series.
    pub selectors: Vec<Selector>,
    /// Grouping and matching labels.
    pub grouping: Vec<String>,
}

const KEYWORDS: [&str; 11] = ["and", "or", "unless", "by", "on", "without", "ignoring", "group_left", "group_right", "bool", "offset"];

/// Aggregation operators: `sum by (x) (...)` puts the grouping between the
/// name and its parenthesis, so they are not told apart by a following `(`.
const AGGREGATIONS: [&str; 12] = ["sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"];

/// Reads the metric names and labels out of a PromQL expression (the subset
/// the dashboard and alerts use: selectors, functions, aggregations,
/// binary operators with `on`).
pub fn parse_query(expr: &str) -> QueryUse {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = QueryUse::default();
    let mut i = 0;
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_spaces = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // Label names inside (...) or {...}, from `j` up to `close`.
    let label_list = |mut j: usize, close: char| -> (Vec<String>, usize) {
        let mut labels = Vec::new();
        let mut current = String::new();
        let mut in_string = false;
        while j < chars.len() {
            let c = chars[j];
            if in_string {
                if c == '\\' {
                    j += 1;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == close {
                if !current.is_empty() {
                    labels.push(std::mem::take(&mut current));
                }
                return (labels, j + 1);
            } else if is_part(c) {
                current.push(c);
            } else if !current.is_empty() {
                labels.push(std::mem::take(&mut current));
            }
            j += 1;
        }
        (labels, j)
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            // A string outside a selector (e.g. label_replace arguments).
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !is_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_part(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = skip_spaces(i);
        let next_char = chars.get(next).copied();
        if KEYWORDS.contains(&word.as_str()) {
            if next_char == Some('(') {
                let (labels, end) = label_list(next + 1, ')');
                found.grouping.extend(labels);
                i = end;
            }
            continue;
        }
        if AGGREGATIONS.contains(&word.as_str()) {
            continue;
        }
        match next_char {
            Some('(') => {} // a function
            Some('{') => {
                let (tokens, end) = label_list(next + 1, '}');
                // Matchers are `name op "value"`: strings are skipped, so the tokens are the names.
                found.selectors.push(Selector { metric: word, labels: tokens });
                i = end;
            }
            _ => found.selectors.push(Selector { metric: word, labels: Vec::new() }),
        }
    }
    found
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// The family a series name belongs to in `scrape`, and that family's sample lines.
fn family<'a>(scrape: &'a str, series: &str) -> Option<(String, Vec<&'a str>)> {
    let typed = |name: &str| scrape.lines().any(|l| l.strip_prefix("# TYPE ").is_some_and(|rest| rest.split(' ').next() == Some(name)));
    let name = if typed(series) {
        series.to_string()
    } else {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| series.strip_suffix(suffix))?;
        if !typed(base) {
            return None;
        }
        base.to_string()
    };
    let samples = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .collect();
    Some((name, samples))
}

/// Problems with `queries` against a `/metrics` text: unknown series, and
/// labels no sample of the family carries. Empty when all is well.
pub fn check_queries(scrape: &str, queries: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in queries {
        let used = parse_query(expr);
        let mut seen_labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        for selector in &used.selectors {
            let Some((_, samples)) = family(scrape, &selector.metric) else {
                problems.push(format!("{place}: metric {} is not exported", selector.metric));
                continue;
            };
            for sample in &samples {
                if let Some((labels, _)) = sample.split_once('{').and_then(|(_, rest)| rest.split_once('}')) {
                    for pair in labels.split("\",") {
                        if let Some((name, _)) = pair.split_once('=') {
                            seen_labels.insert(name.to_string());
                        }
                    }
                }
            }
            for label in &selector.labels {
                let carried = TARGET_LABELS.contains(&label.as_str()) || samples.iter().any(|s| s.contains(&format!("{label}=\"")));
                if !carried {
                    problems.push(format!("{place}: no sample of {} has label {label}", selector.metric));
                }
            }
        }
        for label in &used.grouping {
            if !seen_labels.contains(label) {
                problems.push(format!("{place}: grouping label {label} is on none of its series"));
            }
        }
    }
    problems
}

/// Every PromQL expression of the dashboard and the alert rules, with where it is.
pub fn monitoring_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let dashboard: serde_json::Value = serde_json::from_str(&read(&monitoring_dir().join("dashboard.json"))).expect("dashboard.json is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let place = format!("dashboard panel {:?} target {}", panel["title"].as_str().unwrap_or_default(), target["refId"]);
            queries.push((place, target["expr"].as_str().expect("expr").to_string()));
        }
    }
    for alert in alerts() {
        queries.push((format!("alert {}", alert["alert"].as_str().unwrap_or_default()), alert["expr"].as_str().expect("expr").to_string()));
    }
    queries
}

#[test]
fn query_parser_finds_metrics_matchers_and_grouping_labels() {
    let used = parse_query(r#"sum by (provider, call) (rate(secretbridge_provider_api_calls_total{status="Throttled", provider=~"a|b"}[10m])) > 0"#);
    assert_eq!(used.selectors, vec![Selector { metric: "secretbridge_provider_api_calls_total".into(), labels: vec!["status".into(), "provider".into()] }]);
    assert_eq!(used.grouping, vec!["provider".to_string(), "call".to_string()]);
    let used = parse_query("changes(process_start_time_seconds[1h]) > 2 and on (job, instance) secretbridge_leader");
    let metrics: Vec<&str> = used.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["process_start_time_seconds", "secretbridge_leader"]);
    assert_eq!(used.grouping, ["job", "instance"]);
    let used = parse_query("histogram_quantile(0.99, sum by (le) (rate(secretbridge_reconcile_duration_seconds_bucket[5m])))");
    assert_eq!(used.selectors.len(), 1);
    assert_eq!(monitoring_queries().len(), 24, "14 dashboard panels (17 targets) and 7 alerts");
}

/// The checker catches what it is for: a renamed metric and a label that no
/// series carries (the real scrape is checked by the metrics test).
#[test]
fn query_check_rejects_a_renamed_metric_and_an_unknown_label() {
    let scrape = "# HELP secretbridge_sync_total x\n# TYPE secretbridge_sync_total counter\nsecretbridge_sync_total{result=\"success\"} 3\n\
# TYPE secretbridge_reconcile_duration_seconds histogram\nsecretbridge_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3\n";
    let good = [("q".to_string(), "sum by (result, job) (rate(secretbridge_sync_total{result!=\"success\"}[5m]))".to_string())];
    assert_eq!(check_queries(scrape, &good), Vec::<String>::new());
    let histogram = [("h".to_string(), "histogram_quantile(0.5, sum by (le) (rate(secretbridge_reconcile_duration_seconds_bucket[5m])))".to_string())];
    assert_eq!(check_queries(scrape, &histogram), Vec::<String>::new());
    let renamed = [("q".to_string(), "rate(secretbridge_syncs_total[5m])".to_string())];
    assert_eq!(check_queries(scrape, &renamed), ["q: metric secretbridge_syncs_total is not exported"]);
    let label = [("q".to_string(), "sum by (reason) (secretbridge_sync_total{reason=\"x\"})".to_string())];
    assert_eq!(
        check_queries(scrape, &label),
        ["q: no sample of secretbridge_sync_total has label reason", "q: grouping label reason is on none of its series"]
    );
}
