//! Sharing backend calls between concurrent reconciles that read from the
//! same backend with the same credentials.
//!
//! - [`ParameterBatcher`]: SSM selectors requested until callers go quiet
//!   for a short collection window are de-duplicated and sent in `GetParameters` batches of 10, so K
//!   unique keys read by N ExternalSecrets cost ⌈K/10⌉ calls.
//! - [`SingleFlight`]: concurrent reads of the same Secrets Manager secret or
//!   GCP secret version share one call.

use super::metrics::CallMetrics;
use super::{CallError, CallErrorKind, ParameterSource, SSM_BATCH_LIMIT};
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Default collection window of a [`ParameterBatcher`]: long enough to catch
/// reconciles started together, short enough not to be felt.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(20);

/// A collection ends at the latest this many windows after its first request.
const MAX_WINDOWS: u32 = 10;

/// The result for one SSM selector: its value, `None` when SSM reported it
/// invalid (missing), or the error of the batch it was in.
pub type ParameterResult = Result<Option<Vec<u8>>, CallError>;

struct BatchRequest {
    selectors: Vec<String>,
    reply: oneshot::Sender<HashMap<String, ParameterResult>>,
}

/// Collects SSM selectors from concurrent callers and fetches them in shared
/// batches. One batcher per (region, endpoint, credentials).
#[derive(Clone)]
pub struct ParameterBatcher {
    requests: mpsc::UnboundedSender<BatchRequest>,
}

impl ParameterBatcher {
    /// Starts the batching task on the current Tokio runtime. It ends when
    /// every clone of the batcher is dropped.
    pub fn spawn(source: Arc<dyn ParameterSource>, metrics: Arc<CallMetrics>, window: Duration) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_batches(source, metrics, window, receiver));
        ParameterBatcher { requests }
    }

    /// Fetches the given selectors, sharing calls with concurrent callers.
    pub async fn get(&self, selectors: Vec<String>) -> HashMap<String, ParameterResult> {
        let (reply, answer) = oneshot::channel();
        let wanted = selectors.clone();
        let stopped = || {
            wanted
                .iter()
                .map(|s| {
                    let error = CallError::new(CallErrorKind::Network, "the SSM batching task stopped; the controller is shutting down");
                    (s.clone(), Err(error))
                })
                .collect()
        };
        if self.requests.send(BatchRequest { selectors, reply }).is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }
}

async fn run_batches(
    source: Arc<dyn ParameterSource>,
    metrics: Arc<CallMetrics>,
    window: Duration,
    mut receiver: mpsc::UnboundedReceiver<BatchRequest>,
) {
    while let Some(first) = receiver.recv().await {
        let mut pending = vec![first];
        // Collect until the callers go quiet for one window (reconciles
        // released together, e.g. after a shared credential exchange, arrive
        // a few milliseconds apart on a busy node), but never longer than
        // MAX_WINDOWS windows in all.
        let cap = tokio::time::Instant::now() + window * MAX_WINDOWS;
        loop {
            let deadline = (tokio::time::Instant::now() + window).min(cap);
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(request)) => pending.push(request),
                _ => break,
            }
        }
        let unique: BTreeSet<&String> = pending.iter().flat_map(|r| r.selectors.iter()).collect();
        let chunks = plan_batches(unique.into_iter().cloned().collect());
        let outcomes = futures::future::join_all(chunks.iter().map(|chunk| fetch_chunk(source.as_ref(), &metrics, chunk))).await;
        let results: HashMap<String, ParameterResult> = outcomes.into_iter().flatten().collect();
        for request in pending {
            let answer = request
                .selectors
                .iter()
                .filter_map(|s| results.get(s).map(|r| (s.clone(), r.clone())))
                .collect();
            // The caller may have given up (its reconcile was cancelled).
            let _ = request.reply.send(answer);
        }
    }
}

/// Splits unique selectors into `GetParameters` batches of at most
/// [`SSM_BATCH_LIMIT`], never putting two selectors of the same parameter
/// (`name`, `name:3`, `name:label`) into one batch: a response names the
/// parameter, and not every SSM implementation says which selector it
/// answered, so one name per batch keeps every answer unambiguous.
pub fn plan_batches(selectors: Vec<String>) -> Vec<Vec<String>> {
    let mut batches: Vec<Vec<String>> = Vec::new();
    for selector in selectors {
        let name = super::parameter_name(&selector);
        let open = batches
            .iter_mut()
            .find(|batch| batch.len() < SSM_BATCH_LIMIT && batch.iter().all(|other| super::parameter_name(other) != name));
        match open {
            Some(batch) => batch.push(selector),
            None => batches.push(vec![selector]),
        }
    }
    batches
}

/// One batch. IAM refuses a whole `GetParameters` call when any one name is
/// denied, and SSM refuses it when any one name is malformed, so a batch of
/// several selectors that fails for a reason other than a passing one
/// (throttling, 5xx, network) is retried one selector at a time: the failure
/// lands on the ExternalSecrets that asked for the bad key, not on the other
/// tenants who shared the batch.
async fn fetch_chunk(source: &dyn ParameterSource, metrics: &CallMetrics, chunk: &[String]) -> Vec<(String, ParameterResult)> {
    match source.get_parameters(chunk).await {
        Ok(mut batch) => {
            metrics.record("ssm", "GetParameters", "ok");
            chunk.iter().map(|s| (s.clone(), Ok(batch.values.remove(s)))).collect()
        }
        Err(error) if !error.kind.is_transient() && chunk.len() > 1 => {
            metrics.record("ssm", "GetParameters", error.kind.reason());
            let singles = chunk.iter().map(|selector| async move {
                let alone = std::slice::from_ref(selector);
                let result = match source.get_parameters(alone).await {
                    Ok(mut batch) => {
                        metrics.record("ssm", "GetParameters", "ok");
                        Ok(batch.values.remove(selector))
                    }
                    Err(error) => {
                        metrics.record("ssm", "GetParameters", error.kind.reason());
                        Err(error)
                    }
                };
                (selector.clone(), result)
            });
            futures::future::join_all(singles).await
        }
        Err(error) => {
            metrics.record("ssm", "GetParameters", error.kind.reason());
            chunk.iter().map(|s| (s.clone(), Err(error.clone()))).collect()
        }
    }
}

/// Concurrent calls with the same key share the first caller's call.
pub struct SingleFlight<K, V> {
    in_flight: Mutex<HashMap<K, Vec<oneshot::Sender<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `call` unless a call for `key` is already running, in which case
    /// its result is shared. If the leading caller is cancelled, followers
    /// make their own call.
    pub async fn run<F, Fut>(&self, key: K, call: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = V>,
    {
        let follower = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.get_mut(&key) {
                Some(waiters) => {
                    let (sender, receiver) = oneshot::channel();
                    waiters.push(sender);
                    Some(receiver)
                }
                None => {
                    in_flight.insert(key.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(receiver) = follower {
            if let Ok(value) = receiver.await {
                return value;
            }
            return call().await;
        }
        let guard = LeaderGuard { flight: self, key: Some(key) };
        let value = call().await;
        guard.finish(&value);
        value
    }
}

/// Removes the in-flight entry even when the leader is cancelled, so the
/// followers' receivers close and they call for themselves.
struct LeaderGuard<'a, K: Eq + Hash, V> {
    flight: &'a SingleFlight<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash, V: Clone> LeaderGuard<'_, K, V> {
    fn finish(mut self, value: &V) {
        if let Some(key) = self.key.take() {
            let waiters = self
                .flight
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
                .unwrap_or_default();
            for waiter in waiters {
                let _ = waiter.send(value.clone());
            }
        }
    }
}

impl<K: Eq + Hash, V> Drop for LeaderGuard<'_, K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flight
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeParameters;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn fifty_readers_of_thirty_keys_cost_three_calls() {
        let fake = Arc::new(FakeParameters::default());
        for i in 0..30 {
            fake.put(&format!("/app/key{i:02}"), &format!("value{i}"));
        }
        let metrics = Arc::new(CallMetrics::default());
        let batcher = ParameterBatcher::spawn(fake.clone(), metrics.clone(), Duration::from_millis(200));
        // 50 readers, each wanting 6 of the 30 keys, overlapping.
        let readers = (0..50).map(|reader| {
            let batcher = batcher.clone();
            async move {
                let wanted: Vec<String> = (0..6).map(|j| format!("/app/key{:02}", (reader * 7 + j) % 30)).collect();
                let answer = batcher.get(wanted.clone()).await;
                wanted.iter().all(|s| matches!(answer.get(s), Some(Ok(Some(_)))))
            }
        });
        let all_ok = futures::future::join_all(readers).await;
        assert!(all_ok.iter().all(|ok| *ok));
        assert_eq!(metrics.calls("ssm", "GetParameters"), 3);
        assert_eq!(fake.calls(), 3);
        assert!(fake.batch_sizes().iter().all(|n| *n <= SSM_BATCH_LIMIT));
    }

    #[tokio::test]
    async fn missing_and_failed_selectors_are_reported_per_key() {
        let fake = Arc::new(FakeParameters::default());
        fake.put("/a", "1");
        let metrics = Arc::new(CallMetrics::default());
        let batcher = ParameterBatcher::spawn(fake.clone(), metrics.clone(), Duration::from_millis(1));
        let answer = batcher.get(vec!["/a".into(), "/gone".into()]).await;
        assert_eq!(answer.get("/a"), Some(&Ok(Some(b"1".to_vec()))));
        assert_eq!(answer.get("/gone"), Some(&Ok(None)));
        fake.fail_next(CallError::new(CallErrorKind::Throttled, "slow down"));
        let answer = batcher.get(vec!["/a".into()]).await;
        assert!(matches!(answer.get("/a"), Some(Err(e)) if e.kind == CallErrorKind::Throttled));
        assert_eq!(metrics.snapshot().iter().filter(|(l, _)| l.status == "Throttled").count(), 1);
    }

    #[test]
    fn batches_hold_one_selector_per_parameter() {
        let selectors: Vec<String> = ["/a", "/a:1", "/a:stable", "/b", "/b:2"].iter().map(|s| s.to_string()).collect();
        let batches = plan_batches(selectors);
        assert_eq!(batches.len(), 3, "{batches:?}");
        for batch in &batches {
            let names: BTreeSet<&str> = batch.iter().map(|s| crate::backend::parameter_name(s)).collect();
            assert_eq!(names.len(), batch.len(), "one selector per parameter in {batch:?}");
        }
        let many: Vec<String> = (0..25).map(|i| format!("/k{i}")).collect();
        assert_eq!(plan_batches(many).iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 5]);
    }

    #[tokio::test]
    async fn a_denied_key_does_not_fail_the_readers_it_was_batched_with() {
        let fake = Arc::new(FakeParameters::default());
        fake.put("/team-a/db", "a");
        fake.put("/team-b/db", "b");
        fake.deny("/team-b/db");
        let metrics = Arc::new(CallMetrics::default());
        let batcher = ParameterBatcher::spawn(fake.clone(), metrics.clone(), Duration::from_millis(200));
        let (a, b) = tokio::join!(batcher.get(vec!["/team-a/db".into()]), batcher.get(vec!["/team-b/db".into()]));
        assert_eq!(a.get("/team-a/db"), Some(&Ok(Some(b"a".to_vec()))), "team A reads despite sharing a batch with B");
        assert!(matches!(b.get("/team-b/db"), Some(Err(e)) if e.kind == CallErrorKind::AccessDenied));
    }

    /// One tenant's malformed name once failed every ExternalSecret in the
    /// batch window, other tenants' included.
    #[tokio::test]
    async fn a_malformed_key_fails_only_the_reader_that_asked_for_it() {
        let fake = Arc::new(FakeParameters::default());
        fake.put("/team-a/db", "a");
        fake.reject_as_malformed("/team-b/bad name!");
        let batcher = ParameterBatcher::spawn(fake.clone(), Arc::default(), Duration::from_millis(200));
        let (a, b) = tokio::join!(batcher.get(vec!["/team-a/db".into()]), batcher.get(vec!["/team-b/bad name!".into()]));
        assert_eq!(a.get("/team-a/db"), Some(&Ok(Some(b"a".to_vec()))), "team A reads despite sharing a batch with B");
        assert!(matches!(b.get("/team-b/bad name!"), Some(Err(e)) if e.kind == CallErrorKind::InvalidRequest));
        assert_eq!(fake.batch_sizes().first(), Some(&2), "the two did share a batch");
        // A passing failure of the whole call is not split: it is retried as a whole.
        fake.fail_next(CallError::new(CallErrorKind::Throttled, "slow down"));
        let (a, _) = tokio::join!(batcher.get(vec!["/team-a/db".into()]), batcher.get(vec!["/team-a/other".into()]));
        assert!(matches!(a.get("/team-a/db"), Some(Err(e)) if e.kind == CallErrorKind::Throttled));
    }

    #[tokio::test]
    async fn single_flight_shares_one_call() {
        let flight: Arc<SingleFlight<String, u32>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let tasks = (0..10).map(|_| {
            let flight = flight.clone();
            let calls = calls.clone();
            let mut gate = gate.clone();
            async move {
                flight
                    .run("k".to_string(), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        7
                    })
                    .await
            }
        });
        let joined = tokio::spawn(futures::future::join_all(tasks));
        // Let every task register before the call completes.
        while flight.in_flight.lock().map(|m| m.get("k").map(Vec::len)).ok().flatten() != Some(9) {
            tokio::task::yield_now().await;
        }
        let _ = release.send(true);
        let values = joined.await.expect("tasks finish");
        assert!(values.iter().all(|v| *v == 7));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
