//! The controller's Prometheus metrics, rendered by hand in the text
//! exposition format (a few counters, one histogram and some gauges do not
//! justify a metrics crate).
//!
//! Every label value is bounded: reason codes from the errors' `reason()`,
//! provider and call names, namespaces, condition statuses; never error text.
//!
//! [`METRICS`] is the one list of what is exported: the renderer writes each
//! family's HELP and TYPE from it, `docs/controller.md` is generated from it,
//! and the monitoring tests check the dashboard and alert rules against it.

use crate::backend::metrics::CallMetrics;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use secretbridge_shared::{ClusterSecretStore, ConditionStatus, ExternalSecret, SecretStore};
use secretbridge_shared::condition::READY;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One exported metric family: what `docs/controller.md` lists and what the
/// renderer announces in its `# HELP` / `# TYPE` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The family name, as scraped.
    pub name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// Label names (a histogram's `le` not included), each with bounded values.
    pub labels: &'static [&'static str],
    /// What the value means (the `# HELP` text).
    pub help: &'static str,
}

/// `secretbridge_provider_api_calls_total`.
pub const PROVIDER_API_CALLS: MetricInfo = MetricInfo {
    name: "secretbridge_provider_api_calls_total",
    kind: "counter",
    labels: &["provider", "call", "status"],
    help: "Cloud and credential API calls by provider (data: ssm, secretsmanager, gcpsm; credentials: sts, gcp-securetoken, gcp-iamcredentials, gcp-metadata, kubernetes), call and status (ok or a reason code such as Throttled or AccessDenied).",
};
/// `secretbridge_sync_total`.
pub const SYNC_TOTAL: MetricInfo = MetricInfo {
    name: "secretbridge_sync_total",
    kind: "counter",
    labels: &["result"],
    help: "Reconciles of ExternalSecrets by result: success or the failure's reason code.",
};
/// `secretbridge_reconcile_duration_seconds`.
pub const RECONCILE_DURATION: MetricInfo = MetricInfo {
    name: "secretbridge_reconcile_duration_seconds",
    kind: "histogram",
    labels: &[],
    help: "Time one ExternalSecret reconcile took.",
};
/// `secretbridge_externalsecret_ready`.
pub const EXTERNALSECRET_READY: MetricInfo = MetricInfo {
    name: "secretbridge_externalsecret_ready",
    kind: "gauge",
    labels: &["namespace", "status"],
    help: "ExternalSecrets per namespace by the status of their Ready condition (True, False, Unknown).",
};
/// `secretbridge_externalsecret_not_ready_overdue`.
pub const EXTERNALSECRET_NOT_READY_OVERDUE: MetricInfo = MetricInfo {
    name: "secretbridge_externalsecret_not_ready_overdue",
    kind: "gauge",
    labels: &["namespace"],
    help: "ExternalSecrets per namespace that have not been Ready for longer than their refresh interval (one hour when refresh is off or the interval is invalid).",
};
/// `secretbridge_store_ready`.
pub const STORE_READY: MetricInfo = MetricInfo {
    name: "secretbridge_store_ready",
    kind: "gauge",
    labels: &["kind", "namespace", "status"],
    help: "SecretStores and ClusterSecretStores (namespace empty) by kind, namespace and the status of their Ready condition.",
};
/// `secretbridge_workqueue_depth`.
pub const WORKQUEUE_DEPTH: MetricInfo = MetricInfo {
    name: "secretbridge_workqueue_depth",
    kind: "gauge",
    labels: &[],
    help: "ExternalSecrets whose current spec has not been synced yet (waiting for or in a reconcile).",
};
/// `secretbridge_reconciles_in_flight`.
pub const RECONCILES_IN_FLIGHT: MetricInfo =
    MetricInfo { name: "secretbridge_reconciles_in_flight", kind: "gauge", labels: &[], help: "Reconciles running now." };
/// `secretbridge_leader`.
pub const LEADER: MetricInfo = MetricInfo {
    name: "secretbridge_leader",
    kind: "gauge",
    labels: &[],
    help: "Whether this replica reconciles: 1 when it holds the lease (or leader election is off), 0 on standby.",
};
/// `process_start_time_seconds`.
pub const PROCESS_START_TIME: MetricInfo = MetricInfo {
    name: "process_start_time_seconds",
    kind: "gauge",
    labels: &[],
    help: "Start time of the process since the Unix epoch, in seconds (changes on every restart).",
};
/// `process_resident_memory_bytes`.
pub const PROCESS_RESIDENT_MEMORY: MetricInfo = MetricInfo {
    name: "process_resident_memory_bytes",
    kind: "gauge",
    labels: &[],
    help: "Resident memory of the process in bytes (from /proc/self/statm).",
};

/// `externalsecret_status_condition` (with `--eso-metrics=true` only).
pub const ESO_STATUS_CONDITION: MetricInfo = MetricInfo {
    name: "externalsecret_status_condition",
    kind: "gauge",
    labels: &["name", "namespace", "condition", "status"],
    help: "ESO-compatible (--eso-metrics=true only): per ExternalSecret, 1 on the series of its Ready condition's status (True or False) and 0 on the other; both 0 while Unknown.",
};
/// `externalsecret_provider_api_calls_count` (with `--eso-metrics=true` only).
pub const ESO_PROVIDER_API_CALLS: MetricInfo = MetricInfo {
    name: "externalsecret_provider_api_calls_count",
    kind: "counter",
    labels: &["provider", "call", "status"],
    help: "ESO-compatible (--eso-metrics=true only): the same counts as secretbridge_provider_api_calls_total, with our provider, call and status values.",
};

/// Every metric family the controller exports, in the order it renders them.
pub const METRICS: &[MetricInfo] = &[
    PROVIDER_API_CALLS,
    SYNC_TOTAL,
    RECONCILE_DURATION,
    EXTERNALSECRET_READY,
    EXTERNALSECRET_NOT_READY_OVERDUE,
    STORE_READY,
    WORKQUEUE_DEPTH,
    RECONCILES_IN_FLIGHT,
    LEADER,
    PROCESS_START_TIME,
    PROCESS_RESIDENT_MEMORY,
    ESO_STATUS_CONDITION,
    ESO_PROVIDER_API_CALLS,
];

/// How long an ExternalSecret without a usable refresh interval may stay not
/// Ready before it counts as overdue.
pub const OVERDUE_WITHOUT_REFRESH: Duration = Duration::from_secs(3600);

/// The `# HELP` and `# TYPE` lines of one family.
pub fn header(out: &mut String, metric: &MetricInfo) {
    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", metric.name, metric.help, metric.name, metric.kind);
}

/// The metric families as a Markdown table, for `docs/controller.md`.
pub fn reference_markdown() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for metric in METRICS {
        let labels = if metric.labels.is_empty() { "—".to_string() } else { metric.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ") };
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", metric.name, metric.kind, labels, metric.help);
    }
    out
}

/// Upper bounds (seconds) of the reconcile-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The outcome label of a successful reconcile in `secretbridge_sync_total`.
pub const SUCCESS: &str = "success";

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bucket bound (not cumulative; summed when rendered).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Leader-election role for the `secretbridge_leader` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leader election is off: this replica always reconciles.
    Solo = 0,
    /// Waiting for the Lease.
    Standby = 1,
    /// Holding the Lease and reconciling.
    Leader = 2,
}

/// Counters and gauges of one controller process.
#[derive(Debug)]
pub struct ControllerMetrics {
    /// Backend API calls, counted by the backends.
    pub calls: Arc<CallMetrics>,
    syncs: Mutex<BTreeMap<&'static str, u64>>,
    durations: Mutex<Histogram>,
    in_flight: AtomicI64,
    role: AtomicI64,
    external_secrets: Mutex<Option<Store<ExternalSecret>>>,
    stores: Mutex<Option<(Store<SecretStore>, Store<ClusterSecretStore>)>>,
    started: f64,
    eso_compatible: std::sync::atomic::AtomicBool,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics::new(Arc::new(CallMetrics::default()))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic mid-update of a counter; the value is still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a reconcile as in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a ControllerMetrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ControllerMetrics {
    /// Metrics around the given backend call counters.
    pub fn new(calls: Arc<CallMetrics>) -> Self {
        ControllerMetrics {
            calls,
            syncs: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(Histogram::default()),
            in_flight: AtomicI64::new(0),
            role: AtomicI64::new(Role::Solo as i64),
            external_secrets: Mutex::new(None),
            stores: Mutex::new(None),
            eso_compatible: std::sync::atomic::AtomicBool::new(false),
            started: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        }
    }

    /// Marks one reconcile as running; it stops counting when the guard drops.
    pub fn start_reconcile(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Records a finished reconcile: its outcome (`success` or a reason
    /// code) and how long it took.
    pub fn observe_reconcile(&self, result: &'static str, took: Duration) {
        *lock(&self.syncs).entry(result).or_insert(0) += 1;
        let seconds = took.as_secs_f64();
        let mut histogram = lock(&self.durations);
        if let Some(index) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[index] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Reconciles counted with this outcome so far.
    pub fn syncs(&self, result: &str) -> u64 {
        lock(&self.syncs).get(result).copied().unwrap_or(0)
    }

    /// Sets the leader-election role.
    pub fn set_role(&self, role: Role) {
        self.role.store(role as i64, Ordering::Relaxed);
    }

    /// The ExternalSecret cache the gauges are computed from.
    pub fn watch_external_secrets(&self, store: Store<ExternalSecret>) {
        *lock(&self.external_secrets) = Some(store);
    }

    /// Also export the External Secrets Operator names that mean the same here.
    pub fn set_eso_compatible(&self, on: bool) {
        self.eso_compatible.store(on, Ordering::Relaxed);
    }

    /// The store caches the `secretbridge_store_ready` gauge is computed from.
    pub fn watch_stores(&self, secret_stores: Store<SecretStore>, cluster_stores: Store<ClusterSecretStore>) {
        *lock(&self.stores) = Some((secret_stores, cluster_stores));
    }

    /// Everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_calls(&mut out);
        header(&mut out, &SYNC_TOTAL);
        for (result, count) in lock(&self.syncs).iter() {
            let _ = writeln!(out, "secretbridge_sync_total{{result=\"{result}\"}} {count}");
        }
        self.render_durations(&mut out);
        self.render_cache_gauges(&mut out, jiff::Timestamp::now());
        self.render_store_gauges(&mut out);
        header(&mut out, &RECONCILES_IN_FLIGHT);
        let _ = writeln!(out, "secretbridge_reconciles_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        header(&mut out, &LEADER);
        let leading = self.role.load(Ordering::Relaxed) != Role::Standby as i64;
        let _ = writeln!(out, "secretbridge_leader {}", u8::from(leading));
        header(&mut out, &PROCESS_START_TIME);
        let _ = writeln!(out, "process_start_time_seconds {}", self.started);
        header(&mut out, &PROCESS_RESIDENT_MEMORY);
        let _ = writeln!(out, "process_resident_memory_bytes {}", resident_memory_bytes());
        if self.eso_compatible.load(Ordering::Relaxed) {
            self.render_eso(&mut out);
        }
        out
    }

    fn render_calls(&self, out: &mut String) {
        out.push_str(&self.calls.render_prometheus());
    }

    fn render_durations(&self, out: &mut String) {
        header(out, &RECONCILE_DURATION);
        let histogram = lock(&self.durations);
        let mut cumulative = 0;
        for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets.iter()) {
            cumulative += count;
            let _ = writeln!(out, "secretbridge_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "secretbridge_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}", histogram.count);
        let _ = writeln!(out, "secretbridge_reconcile_duration_seconds_sum {}", histogram.sum);
        let _ = writeln!(out, "secretbridge_reconcile_duration_seconds_count {}", histogram.count);
    }

    /// `secretbridge_externalsecret_ready{namespace,status}`,
    /// `secretbridge_externalsecret_not_ready_overdue{namespace}` and
    /// `secretbridge_workqueue_depth`, computed from the cache at scrape time.
    fn render_cache_gauges(&self, out: &mut String, now: jiff::Timestamp) {
        let store = lock(&self.external_secrets).clone();
        let objects = store.map(|s| s.state()).unwrap_or_default();
        let mut ready: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut overdue: BTreeMap<String, u64> = BTreeMap::new();
        let mut pending = 0u64;
        for es in &objects {
            let namespace = es.namespace().unwrap_or_default();
            *ready.entry((namespace.clone(), ready_status(es))).or_insert(0) += 1;
            // Every namespace with ExternalSecrets gets a series, so "0" is
            // scraped rather than absent.
            let count = overdue.entry(namespace).or_insert(0);
            if is_overdue(es, now) {
                *count += 1;
            }
            if is_pending(es) {
                pending += 1;
            }
        }
        header(out, &EXTERNALSECRET_READY);
        for ((namespace, status), count) in ready {
            let _ = writeln!(out, "secretbridge_externalsecret_ready{{namespace=\"{}\",status=\"{status}\"}} {count}", escape(&namespace));
        }
        header(out, &EXTERNALSECRET_NOT_READY_OVERDUE);
        for (namespace, count) in overdue {
            let _ = writeln!(out, "secretbridge_externalsecret_not_ready_overdue{{namespace=\"{}\"}} {count}", escape(&namespace));
        }
        header(out, &WORKQUEUE_DEPTH);
        let _ = writeln!(out, "secretbridge_workqueue_depth {pending}");
    }

    /// The ESO names: `externalsecret_status_condition` from the cache and
    /// `externalsecret_provider_api_calls_count` from the call counters.
    fn render_eso(&self, out: &mut String) {
        let store = lock(&self.external_secrets).clone();
        let mut objects = store.map(|s| s.state()).unwrap_or_default();
        objects.sort_by_key(|es| (es.namespace(), es.name_any()));
        header(out, &ESO_STATUS_CONDITION);
        for es in &objects {
            let status = ready_status(es);
            for candidate in ["True", "False"] {
                let _ = writeln!(
                    out,
                    "externalsecret_status_condition{{name=\"{}\",namespace=\"{}\",condition=\"Ready\",status=\"{candidate}\"}} {}",
                    escape(&es.name_any()),
                    escape(&es.namespace().unwrap_or_default()),
                    u8::from(status == candidate)
                );
            }
        }
        header(out, &ESO_PROVIDER_API_CALLS);
        for (labels, count) in self.calls.snapshot() {
            let _ = writeln!(
                out,
                "externalsecret_provider_api_calls_count{{provider=\"{}\",call=\"{}\",status=\"{}\"}} {count}",
                labels.provider, labels.call, labels.status
            );
        }
    }

    /// `secretbridge_store_ready{kind,namespace,status}` from the store caches.
    fn render_store_gauges(&self, out: &mut String) {
        let caches = lock(&self.stores).clone();
        let mut counts: BTreeMap<(&'static str, String, &'static str), u64> = BTreeMap::new();
        if let Some((secret_stores, cluster_stores)) = caches {
            for store in secret_stores.state() {
                let conditions = store.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
                *counts.entry(("SecretStore", store.namespace().unwrap_or_default(), condition_status(conditions))).or_insert(0) += 1;
            }
            for store in cluster_stores.state() {
                let conditions = store.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
                *counts.entry(("ClusterSecretStore", String::new(), condition_status(conditions))).or_insert(0) += 1;
            }
        }
        header(out, &STORE_READY);
        for ((kind, namespace, status), count) in counts {
            let _ = writeln!(out, "secretbridge_store_ready{{kind=\"{kind}\",namespace=\"{}\",status=\"{status}\"}} {count}", escape(&namespace));
        }
    }
}

/// Resident memory in bytes: the second field of `/proc/self/statm` (pages)
/// times the page size; 0 where /proc is missing.
fn resident_memory_bytes() -> u64 {
    const PAGE_SIZE: u64 = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()))
        .map_or(0, |pages| pages.saturating_mul(PAGE_SIZE))
}

/// The status of the Ready condition among `conditions`: `True`, `False` or `Unknown`.
fn condition_status(conditions: &[secretbridge_shared::Condition]) -> &'static str {
    match conditions.iter().find(|c| c.type_ == READY).map(|c| c.status) {
        Some(ConditionStatus::True) => "True",
        Some(ConditionStatus::False) => "False",
        Some(ConditionStatus::Unknown) | None => "Unknown",
    }
}

/// Whether the ExternalSecret has not been Ready for longer than its refresh
/// interval: since its Ready condition last changed, or since it was created
/// when it has none.
fn is_overdue(es: &ExternalSecret, now: jiff::Timestamp) -> bool {
    if ready_status(es) == "True" {
        return false;
    }
    let condition = es.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    let since = condition.and_then(|c| c.last_transition_time.as_ref()).or(es.metadata.creation_timestamp.as_ref());
    let Some(since) = since else { return false };
    let allowed = match es.spec.refresh_interval() {
        Ok(interval) if !interval.is_zero() => interval,
        _ => OVERDUE_WITHOUT_REFRESH,
    };
    let waited = now.duration_since(since.0);
    Duration::try_from(waited).is_ok_and(|waited| waited > allowed)
}

/// `True`, `False` or `Unknown` (no Ready condition yet).
fn ready_status(es: &ExternalSecret) -> &'static str {
    condition_status(es.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default())
}

/// Whether the ExternalSecret's latest spec is still waiting for a sync.
fn is_pending(es: &ExternalSecret) -> bool {
    let synced = es.status.as_ref().and_then(|s| s.synced_resource_version.as_deref());
    let failed = ready_status(es) == "False";
    !failed && synced != Some(crate::schedule::synced_version(es).as_str())
}

/// Escapes a label value (namespaces cannot contain these, but a renderer
/// should not rely on its input).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_bounded() {
        let metrics = ControllerMetrics::default();
        metrics.observe_reconcile(SUCCESS, Duration::from_millis(3));
        metrics.observe_reconcile(SUCCESS, Duration::from_millis(300));
        metrics.observe_reconcile("AccessDenied", Duration::from_secs(100));
        metrics.calls.record("ssm", "GetParameters", "ok");
        let text = metrics.render();
        assert!(text.contains("secretbridge_sync_total{result=\"success\"} 2\n"), "{text}");
        assert!(text.contains("secretbridge_sync_total{result=\"AccessDenied\"} 1\n"), "{text}");
        assert!(text.contains("secretbridge_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("secretbridge_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n"), "{text}");
        assert!(text.contains("secretbridge_reconcile_duration_seconds_bucket{le=\"30\"} 2\n"), "{text}");
        assert!(text.contains("secretbridge_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("secretbridge_reconcile_duration_seconds_count 3\n"), "{text}");
        assert!(text.contains("secretbridge_provider_api_calls_total{provider=\"ssm\",call=\"GetParameters\",status=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("secretbridge_workqueue_depth 0\n"), "{text}");
        assert!(text.contains("secretbridge_leader 1\n"), "{text}");
    }

    fn external_secret(namespace: &str, refresh: &str, ready: Option<(ConditionStatus, jiff::Timestamp)>) -> ExternalSecret {
        let mut es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "es", "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"secretStoreRef": {"name": "store"}, "refreshInterval": refresh, "target": {"name": "t"}, "data": []}
        }))
        .expect("valid ExternalSecret");
        if let Some((status, at)) = ready {
            let mut condition = secretbridge_shared::Condition::ready(status, "Reason", "message");
            condition.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
            es.status = Some(secretbridge_shared::ExternalSecretStatus { conditions: vec![condition], ..Default::default() });
        }
        es
    }

    #[test]
    fn not_ready_counts_as_overdue_only_after_its_refresh_interval() {
        let changed: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().expect("timestamp");
        let after = |seconds: i64| changed + jiff::SignedDuration::from_secs(seconds);
        let failing = external_secret("team", "1h", Some((ConditionStatus::False, changed)));
        assert!(!is_overdue(&failing, after(3599)), "within the refresh interval");
        assert!(is_overdue(&failing, after(3601)), "past the refresh interval");
        let ready = external_secret("team", "1h", Some((ConditionStatus::True, changed)));
        assert!(!is_overdue(&ready, after(86_400)), "Ready is never overdue");
        let quick = external_secret("team", "30s", Some((ConditionStatus::Unknown, changed)));
        assert!(is_overdue(&quick, after(31)));
        // Refresh off: the one-hour default applies.
        let never = external_secret("team", "0", Some((ConditionStatus::False, changed)));
        assert!(!is_overdue(&never, after(3000)));
        assert!(is_overdue(&never, after(3700)));
        // No condition yet: counted from creation.
        let fresh = external_secret("team", "1m", None);
        let created: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("timestamp");
        assert!(!is_overdue(&fresh, created + jiff::SignedDuration::from_secs(59)));
        assert!(is_overdue(&fresh, created + jiff::SignedDuration::from_secs(61)));
    }

    #[test]
    fn every_rendered_family_is_in_the_metric_table_and_back() {
        let metrics = ControllerMetrics::default();
        metrics.calls.record("ssm", "GetParameters", "ok");
        metrics.observe_reconcile(SUCCESS, Duration::from_millis(3));
        let default = metrics.render();
        assert!(!default.lines().any(|l| l.starts_with("externalsecret_") || l.contains(" externalsecret_")), "ESO names are off by default: {default}");
        metrics.set_eso_compatible(true);
        let text = metrics.render();
        assert!(text.contains("externalsecret_provider_api_calls_count{provider=\"ssm\",call=\"GetParameters\",status=\"ok\"} 1\n"), "{text}");
        let mut typed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
        let mut listed: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        typed.sort_unstable();
        listed.sort_unstable();
        assert_eq!(typed, listed);
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(!text.contains("process_resident_memory_bytes 0\n"), "RSS read from /proc: {text}");
        let docs = reference_markdown();
        for metric in METRICS {
            assert!(docs.contains(&format!("| `{}` | {} |", metric.name, metric.kind)), "{docs}");
        }
    }

    #[test]
    fn in_flight_guard_counts_down_on_drop() {
        let metrics = ControllerMetrics::default();
        let guard = metrics.start_reconcile();
        assert!(metrics.render().contains("secretbridge_reconciles_in_flight 1\n"));
        drop(guard);
        assert!(metrics.render().contains("secretbridge_reconciles_in_flight 0\n"));
        metrics.set_role(Role::Standby);
        assert!(metrics.render().contains("secretbridge_leader 0\n"));
    }
}
