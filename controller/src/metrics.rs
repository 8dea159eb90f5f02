//! The controller's Prometheus metrics, rendered by hand in the text
//! exposition format (a few counters, one histogram and some gauges do not
//! justify a metrics crate).
//!
//! Every label value is bounded: reason codes from the errors' `reason()`,
//! provider and call names, namespaces, condition statuses; never error text.

use crate::backend::metrics::CallMetrics;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use secretbridge_shared::{ConditionStatus, ExternalSecret};
use secretbridge_shared::condition::READY;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// Everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_calls(&mut out);
        out.push_str("# HELP secretbridge_sync_total Reconciles of ExternalSecrets by result: success or the failure's reason code.\n# TYPE secretbridge_sync_total counter\n");
        for (result, count) in lock(&self.syncs).iter() {
            let _ = writeln!(out, "secretbridge_sync_total{{result=\"{result}\"}} {count}");
        }
        self.render_durations(&mut out);
        self.render_cache_gauges(&mut out);
        out.push_str("# HELP secretbridge_reconciles_in_flight Reconciles running now.\n# TYPE secretbridge_reconciles_in_flight gauge\n");
        let _ = writeln!(out, "secretbridge_reconciles_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        out.push_str("# HELP secretbridge_leader Whether this replica reconciles: 1 when it holds the lease (or leader election is off), 0 on standby.\n# TYPE secretbridge_leader gauge\n");
        let leading = self.role.load(Ordering::Relaxed) != Role::Standby as i64;
        let _ = writeln!(out, "secretbridge_leader {}", u8::from(leading));
        out
    }

    fn render_calls(&self, out: &mut String) {
        out.push_str(&self.calls.render_prometheus());
    }

    fn render_durations(&self, out: &mut String) {
        out.push_str("# HELP secretbridge_reconcile_duration_seconds Time one ExternalSecret reconcile took.\n# TYPE secretbridge_reconcile_duration_seconds histogram\n");
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

    /// `secretbridge_externalsecret_ready{namespace,status}` and
    /// `secretbridge_workqueue_depth`, computed from the cache at scrape time.
    fn render_cache_gauges(&self, out: &mut String) {
        let store = lock(&self.external_secrets).clone();
        let objects = store.map(|s| s.state()).unwrap_or_default();
        let mut ready: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut pending = 0u64;
        for es in &objects {
            *ready.entry((es.namespace().unwrap_or_default(), ready_status(es))).or_insert(0) += 1;
            if is_pending(es) {
                pending += 1;
            }
        }
        out.push_str("# HELP secretbridge_externalsecret_ready ExternalSecrets per namespace by the status of their Ready condition.\n# TYPE secretbridge_externalsecret_ready gauge\n");
        for ((namespace, status), count) in ready {
            let _ = writeln!(out, "secretbridge_externalsecret_ready{{namespace=\"{}\",status=\"{status}\"}} {count}", escape(&namespace));
        }
        out.push_str("# HELP secretbridge_workqueue_depth ExternalSecrets whose current spec has not been synced yet (waiting for or in a reconcile).\n# TYPE secretbridge_workqueue_depth gauge\n");
        let _ = writeln!(out, "secretbridge_workqueue_depth {pending}");
    }
}

/// `True`, `False` or `Unknown` (no Ready condition yet).
fn ready_status(es: &ExternalSecret) -> &'static str {
    let condition = es.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    match condition.map(|c| c.status) {
        Some(ConditionStatus::True) => "True",
        Some(ConditionStatus::False) => "False",
        Some(ConditionStatus::Unknown) | None => "Unknown",
    }
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
