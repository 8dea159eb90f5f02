//! The ExternalSecret reconciler: thin, it dispatches to [`apply`] (resolve
//! the store, decide whether to sync, fetch, write the Secret with
//! server-side apply, record status and events) and leaves cleanup to
//! Kubernetes garbage collection (owned Secrets carry an owner reference).
//!
//! Nothing lost: a fetch that fails for any key never touches the existing
//! Secret. Transient failures (throttling, 5xx, network) are returned as
//! errors and retried with per-object exponential backoff; permanent ones
//! (access denied, missing key, bad spec) set `Ready=False` and wait for a
//! change or the refresh interval.

use crate::backend::fetch::{FetchError, Fetched, StoreClient, fetch_external_secret};
use crate::backend::retry::{RetryPolicy, RetrySettingsError};
use crate::desired::{self, BuildError};
use crate::resolve::{self, ResolveError};
use crate::schedule::{self, SyncCause};
use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use secretbridge_shared::condition::{READY, reason};
use secretbridge_shared::names::CONTROLLER_FIELD_MANAGER;
use secretbridge_shared::{
    ClusterSecretStore, Condition, ConditionStatus, CreationPolicy, DeletionPolicy, ExternalSecret,
    ExternalSecretStatus, SecretStore, StoreKind, StoreProvider,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store resolved for one ExternalSecret: its backend and the identity to use.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStore {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// Store name.
    pub name: String,
    /// The backend configuration.
    pub provider: StoreProvider,
    /// `(namespace, name)` of the ServiceAccount to authenticate as, if any.
    pub service_account: Option<(String, String)>,
    /// The store's `retrySettings`, parsed; `None` keeps each backend's default.
    pub retry: Option<RetryPolicy>,
}

/// Turns a resolved store into a ready backend client, obtaining (and
/// caching) credentials. The real one does TokenRequest and the cloud token
/// exchanges; tests use one built on the fakes.
pub trait BackendFactory: Send + Sync {
    /// A client for the store, or why credentials could not be obtained.
    fn client_for<'a>(&'a self, store: &'a ResolvedStore) -> BoxFuture<'a, Result<StoreClient, CredentialError>>;
}

/// Why credentials for a store could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("obtaining credentials for store {store:?} ({step}) failed: {message}")]
pub struct CredentialError {
    /// Store name.
    pub store: String,
    /// Which step failed, e.g. `TokenRequest`, `AssumeRoleWithWebIdentity`.
    pub step: &'static str,
    /// What the service said, and what to do.
    pub message: String,
    /// Whether retrying may help (network, 5xx, throttling).
    pub transient: bool,
}

/// A status this process wrote, with the uid of the ExternalSecret it was written to.
type WrittenStatus = (Option<String>, ExternalSecretStatus);

/// How long an entry of the per-ExternalSecret maps is kept without being
/// touched. Entries of deleted ExternalSecrets are never removed otherwise.
const MEMORY_TTL: Duration = Duration::from_secs(3600);
/// Entries of each per-ExternalSecret map, at most: past this the oldest
/// are dropped, so no number of objects grows the controller without bound.
const MEMORY_MAX_ENTRIES: usize = 200_000;

/// What the controller remembers per ExternalSecret (`(namespace, name)`),
/// each entry stamped with when it was last touched. Entries of deleted
/// ExternalSecrets would otherwise stay for ever: a sweep drops entries
/// older than [`MEMORY_TTL`], and the oldest beyond [`MEMORY_MAX_ENTRIES`].
/// It runs when the map has grown by a quarter since the last sweep, so its
/// cost is amortised over the inserts.
struct Remembered<V> {
    entries: HashMap<(String, String), (V, std::time::Instant)>,
    swept_at: usize,
}

impl<V> Default for Remembered<V> {
    fn default() -> Self {
        Remembered { entries: HashMap::new(), swept_at: 0 }
    }
}

impl<V> Remembered<V> {
    fn get(&self, key: &(String, String)) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Updates (or starts from `V::default()`) the entry, stamps it, and returns it.
    fn touch(&mut self, key: (String, String), update: impl FnOnce(&mut V)) -> &V
    where
        V: Default,
    {
        self.sweep(std::time::Instant::now());
        let entry = self.entries.entry(key).or_insert_with(|| (V::default(), std::time::Instant::now()));
        update(&mut entry.0);
        entry.1 = std::time::Instant::now();
        &entry.0
    }

    fn remove(&mut self, key: &(String, String)) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn sweep(&mut self, now: std::time::Instant) {
        if self.entries.len() < self.swept_at.saturating_add(self.swept_at / 4).max(1024) {
            return;
        }
        self.entries.retain(|_, (_, touched)| now.saturating_duration_since(*touched) < MEMORY_TTL);
        if self.entries.len() > MEMORY_MAX_ENTRIES {
            let mut stamps: Vec<std::time::Instant> = self.entries.values().map(|(_, touched)| *touched).collect();
            stamps.sort_unstable();
            let cutoff = stamps[stamps.len() - MEMORY_MAX_ENTRIES];
            self.entries.retain(|_, (_, touched)| *touched >= cutoff);
        }
        self.swept_at = self.entries.len();
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Backend clients and credentials.
    pub backends: Arc<dyn BackendFactory>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// The last status this process wrote per ExternalSecret (with its uid).
    /// A reconcile triggered by our own Secret write can run before the
    /// watch cache has our status write; without this it would see the
    /// ExternalSecret as never synced and fetch everything a second time.
    written: Mutex<Remembered<Option<WrittenStatus>>>,
    /// Consecutive transient failures per ExternalSecret, for backoff.
    failures: Mutex<Remembered<u32>>,
    /// Clock, replaceable in tests.
    pub now: fn() -> Timestamp,
    /// Reconcile outcomes and durations for `/metrics`.
    pub metrics: Arc<crate::metrics::ControllerMetrics>,
}

impl Context {
    /// A context with the system clock.
    pub fn new(client: Client, backends: Arc<dyn BackendFactory>) -> Self {
        let reporter = Reporter {
            controller: CONTROLLER_FIELD_MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backends,
            written: Mutex::default(),
            failures: Mutex::default(),
            now: Timestamp::now,
            metrics: Arc::default(),
        }
    }

    fn remember_status(&self, es: &ExternalSecret, status: &ExternalSecretStatus) {
        let key = (es.namespace().unwrap_or_default(), es.name_any());
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.touch(key, |entry| *entry = Some((es.metadata.uid.clone(), status.clone())));
    }


    /// The ExternalSecret with the status this process last wrote, when the
    /// cached copy is older (its refreshTime is behind ours); `None` when the
    /// cached copy is current.
    fn with_written_status(&self, es: &ExternalSecret) -> Option<ExternalSecret> {
        let key = (es.namespace().unwrap_or_default(), es.name_any());
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let (uid, status) = written.get(&key)?.as_ref()?;
        if *uid != es.metadata.uid {
            return None;
        }
        let cached = es.status.as_ref().and_then(|s| s.refresh_time.as_ref()).map(|t| t.0);
        let ours = status.refresh_time.as_ref().map(|t| t.0);
        (ours > cached).then(|| {
            let mut fresher = es.clone();
            fresher.status = Some(status.clone());
            fresher
        })
    }

    fn failure_count(&self, key: (String, String), bump: bool) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if bump {
            *failures.touch(key, |count| *count = count.saturating_add(1))
        } else {
            failures.remove(&key);
            0
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The ExternalSecret lacks a name or namespace.
    #[error("ExternalSecret has no {0}; it must come from the API server")]
    MissingMetadata(&'static str),
    /// Reading the store failed at the API server.
    #[error("reading {kind:?} {name:?} failed")]
    ReadStore {
        /// Store kind.
        kind: StoreKind,
        /// Store name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The referenced store does not exist.
    #[error("{kind:?} {name:?} does not exist; create it or fix spec.secretStoreRef")]
    StoreNotFound {
        /// Store kind.
        kind: StoreKind,
        /// Store name.
        name: String,
    },
    /// Reading the ExternalSecret's namespace (for ClusterSecretStore conditions) failed.
    #[error("reading namespace {namespace:?} failed")]
    ReadNamespace {
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// The store may not be used from this namespace.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The store breaks a rule of the spec.
    #[error("{kind:?} {name:?} is invalid: {source}")]
    InvalidStore {
        /// Store kind.
        kind: StoreKind,
        /// Store name.
        name: String,
        /// The field and the fix.
        source: secretbridge_shared::rules::FieldError,
    },
    /// The reconcile panicked. It was contained; the panic's text is not
    /// repeated (it could quote anything).
    #[error("the controller hit an internal error while syncing this ExternalSecret; it was contained, counted in secretbridge_sync_total{{result=\"InternalError\"}} and will be retried; please report it with the controller's logs")]
    Internal,
    /// The store's `retrySettings` are unusable.
    #[error("{kind:?} {name:?} has invalid retrySettings; fix the store")]
    RetrySettings {
        /// Store kind.
        kind: StoreKind,
        /// Store name.
        name: String,
        /// Which field, and why.
        source: RetrySettingsError,
    },
    /// `refreshInterval` does not parse.
    #[error("spec.refreshInterval is invalid: {0}")]
    RefreshInterval(#[from] secretbridge_shared::duration::DurationError),
    /// Reading the target Secret failed.
    #[error("reading Secret {name:?} failed")]
    ReadSecret {
        /// Secret name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// `creationPolicy: Merge` but the Secret does not exist.
    #[error("creationPolicy Merge needs the Secret {name:?} to exist; create it or use creationPolicy Owner")]
    MergeTargetMissing {
        /// Secret name.
        name: String,
    },
    /// Credentials could not be obtained.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// Fetching remote data failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Some remote keys are missing (and not all of them).
    #[error("{}; the Secret was left as it was", missing.first().map(FetchError::condition_message).unwrap_or_default())]
    KeysMissing {
        /// The missing refs.
        missing: Vec<FetchError>,
    },
    /// Building the desired Secret failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Writing the Secret failed.
    #[error("writing Secret {name:?} failed")]
    WriteSecret {
        /// Secret name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting the Secret (`deletionPolicy: Delete`) failed.
    #[error("deleting Secret {name:?} failed")]
    DeleteSecret {
        /// Secret name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the ExternalSecret status failed.
    #[error("writing status of ExternalSecret {name:?} failed")]
    WriteStatus {
        /// ExternalSecret name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// What a failed Kubernetes API call may say in status, events and logs:
/// the code, the reason and the field paths, never the server's message.
pub fn api_error_summary(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let fields: Vec<&str> = status
                .details
                .iter()
                .flat_map(|details| details.causes.iter())
                .map(|cause| cause.field.as_str())
                .filter(|field| !field.is_empty())
                .collect();
            let reason = if status.reason.is_empty() { "no reason given" } else { status.reason.as_str() };
            if fields.is_empty() {
                format!("the API server answered {} ({reason})", status.code)
            } else {
                format!("the API server answered {} ({reason}) for {}", status.code, fields.join(", "))
            }
        }
        other => format!("the request did not complete ({})", kube_error_kind(other)),
    }
}

fn kube_error_kind(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::Api(_) => "API error",
        kube::Error::HyperError(_) | kube::Error::Service(_) => "connection error",
        kube::Error::SerdeError(_) => "unreadable answer",
        kube::Error::Auth(_) => "authentication error",
        _ => "client error",
    }
}

fn api_is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500 || status.code == 409,
        _ => true,
    }
}

impl ReconcileError {
    /// Stable reason code for events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::MissingMetadata(_) => "MissingMetadata",
            ReconcileError::ReadStore { .. } => "ReadStoreFailed",
            ReconcileError::StoreNotFound { .. } => "StoreNotFound",
            ReconcileError::ReadNamespace { .. } => "ReadNamespaceFailed",
            ReconcileError::Resolve(error) => error.reason(),
            ReconcileError::InvalidStore { .. } => "InvalidProviderConfig",
            ReconcileError::Internal => "InternalError",
            ReconcileError::RetrySettings { .. } => "InvalidRetrySettings",
            ReconcileError::RefreshInterval(_) => "InvalidRefreshInterval",
            ReconcileError::ReadSecret { .. } => "ReadSecretFailed",
            ReconcileError::MergeTargetMissing { .. } => "MergeTargetMissing",
            ReconcileError::Credentials(_) => "CredentialsFailed",
            ReconcileError::Fetch(error) => error.reason(),
            ReconcileError::KeysMissing { .. } => "NotFound",
            ReconcileError::Build(error) => error.reason(),
            ReconcileError::WriteSecret { .. } => "WriteSecretFailed",
            ReconcileError::DeleteSecret { .. } => "DeleteSecretFailed",
            ReconcileError::WriteStatus { .. } => "WriteStatusFailed",
        }
    }

    /// Whether retrying with backoff may help. Permanent errors wait for a
    /// change or the refresh interval instead.
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::ReadStore { source, .. }
            | ReconcileError::ReadNamespace { source, .. }
            | ReconcileError::ReadSecret { source, .. }
            | ReconcileError::WriteStatus { source, .. }
            | ReconcileError::DeleteSecret { source, .. }
            | ReconcileError::WriteSecret { source, .. } => api_is_transient(source),
            ReconcileError::Credentials(error) => error.transient,
            ReconcileError::Fetch(error) => error.is_transient(),
            _ => false,
        }
    }

    /// The message for the `Ready` condition: the error and its cause. An
    /// API server's answer is reduced to its code, reason and field paths:
    /// its message may quote what was sent, such as a templated label value.
    pub fn condition_message(&self) -> String {
        match self {
            ReconcileError::Fetch(error) => format!("{}; the Secret was left as it was", error.condition_message()),
            ReconcileError::ReadStore { source, .. }
            | ReconcileError::ReadNamespace { source, .. }
            | ReconcileError::ReadSecret { source, .. }
            | ReconcileError::WriteSecret { source, .. }
            | ReconcileError::DeleteSecret { source, .. }
            | ReconcileError::WriteStatus { source, .. } => format!("{self}: {}", api_error_summary(source)),
            ReconcileError::RetrySettings { source, .. } => format!("{self}: {source}"),
            ReconcileError::Build(BuildError::Template(error)) => error.to_string(),
            other => other.to_string(),
        }
    }
}

/// Entry point for the Controller: see [`reconcile_decision`]. A panic in
/// one reconcile is contained here: it is counted, the ExternalSecret gets
/// `Ready=False`, and every other ExternalSecret keeps syncing.
pub async fn reconcile(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    use futures::FutureExt;
    let decision = std::panic::AssertUnwindSafe(reconcile_decision(es.clone(), ctx.clone())).catch_unwind().await;
    match decision {
        Ok(result) => result.map(|next| next.map_or_else(Action::await_change, |wait| Action::requeue(clamp_requeue(wait)))),
        Err(_) => {
            ctx.metrics.observe_reconcile(ReconcileError::Internal.reason(), Duration::ZERO);
            tracing::error!(namespace = ?es.namespace(), name = %es.name_any(), "a reconcile panicked; contained, retrying later");
            record_failure(&es, &ctx, &ReconcileError::Internal).await;
            Ok(Action::requeue(PANIC_RETRY))
        }
    }
}

/// When an ExternalSecret whose reconcile panicked is tried again.
const PANIC_RETRY: Duration = Duration::from_secs(300);

/// The longest wait handed to the runtime: a refresh interval at its bound
/// plus the most jitter. Timers much longer do not exist in the runtime.
fn clamp_requeue(wait: Duration) -> Duration {
    wait.min(secretbridge_shared::duration::MAX_INTERVAL.saturating_add(secretbridge_shared::duration::MAX_INTERVAL / 5))
}

/// Dispatches to [`apply`] and returns when to look again (`None`: on a
/// change only). Deletion needs no cleanup: owned Secrets are
/// garbage-collected by Kubernetes and other policies keep the Secret by
/// definition.
pub async fn reconcile_decision(es: Arc<ExternalSecret>, ctx: Arc<Context>) -> Result<Option<Duration>, ReconcileError> {
    if es.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let key = (es.namespace().unwrap_or_default(), es.name_any());
    let started = std::time::Instant::now();
    let in_flight = ctx.metrics.start_reconcile();
    let result = apply(&es, &ctx).await;
    drop(in_flight);
    let outcome = result.as_ref().map_or_else(ReconcileError::reason, |_| crate::metrics::SUCCESS);
    ctx.metrics.observe_reconcile(outcome, started.elapsed());
    match result {
        Ok(next) => {
            ctx.failure_count(key, false);
            Ok(next)
        }
        Err(error) if error.is_transient() => {
            record_failure(&es, &ctx, &error).await;
            Err(error)
        }
        Err(error) => {
            ctx.failure_count(key, false);
            record_failure(&es, &ctx, &error).await;
            // Permanent: wait for a change, or retry one full refresh
            // interval from now (counting from refreshTime would retry at
            // once when the failed sync was itself due).
            Ok(permanent_retry(&es))
        }
    }
}

/// When to retry after a permanent failure: a full refresh interval (with
/// jitter) for periodic refresh, otherwise only on a change.
pub fn permanent_retry(es: &ExternalSecret) -> Option<Duration> {
    match es.spec.refresh_interval() {
        Ok(interval) if !interval.is_zero() && es.spec.refresh_policy() == secretbridge_shared::RefreshPolicy::Periodic => {
            Some(clamp_requeue(interval.saturating_add(schedule::jitter_of(interval, rand::random::<f64>()))))
        }
        _ => None,
    }
}

/// Backoff for transient failures: 5s doubling per consecutive failure up to
/// 5 minutes, plus up to 10% jitter.
pub fn error_policy(es: Arc<ExternalSecret>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = (es.namespace().unwrap_or_default(), es.name_any());
    let failures = ctx.failure_count(key, true);
    tracing::warn!(namespace = ?es.namespace(), name = %es.name_any(), reason = error.reason(), message = %error.condition_message(), "sync failed; backing off");
    Action::requeue(backoff(failures, rand::random::<f64>()))
}

/// The wait after `failures` consecutive transient failures.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    let base = Duration::from_secs(5 * (1u64 << exponent)).min(Duration::from_secs(300));
    base + base.mul_f64(jitter.clamp(0.0, 1.0) * 0.1)
}

async fn record_failure(es: &ExternalSecret, ctx: &Context, error: &ReconcileError) {
    let condition = Condition::ready(ConditionStatus::False, reason::SECRET_SYNCED_ERROR, error.condition_message());
    let previous = es.status.clone().unwrap_or_default();
    let status = ExternalSecretStatus {
        conditions: merge_condition(&previous.conditions, condition, (ctx.now)()),
        ..previous.clone()
    };
    if status != previous {
        publish(ctx, es, EventType::Warning, error.reason(), "Sync", error.condition_message()).await;
        if let Err(write_error) = write_status(ctx, es, &status).await {
            tracing::warn!(%write_error, "could not record the failure in status");
        }
    }
}

/// The sync itself.
pub async fn apply(es: &ExternalSecret, ctx: &Context) -> Result<Option<Duration>, ReconcileError> {
    let fresher = ctx.with_written_status(es);
    let es = fresher.as_ref().unwrap_or(es);
    let namespace = es.namespace().ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let target = es
        .target_secret_name()
        .ok_or(ReconcileError::MissingMetadata("name"))?
        .to_string();
    let store = resolve_store(es, &namespace, ctx).await?;
    if let Some(source) = store.provider.validate().into_iter().next() {
        return Err(ReconcileError::InvalidStore { kind: store.kind, name: store.name.clone(), source });
    }
    es.spec.refresh_interval()?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let policy = es.spec.target.creation_policy;
    let existing = if policy == CreationPolicy::None {
        None
    } else {
        secrets
            .get_opt(&target)
            .await
            .map_err(|source| ReconcileError::ReadSecret { name: target.clone(), source })?
    };
    let now = (ctx.now)();
    let Some(cause) = schedule::sync_cause(es, existing.as_ref(), now)? else {
        return Ok(requeue_action(es, now));
    };
    if policy == CreationPolicy::Merge && existing.is_none() {
        return Err(ReconcileError::MergeTargetMissing { name: target });
    }
    if let Some(secret) = &existing {
        desired::check_existing_target(es, secret)?;
    }
    let client = ctx.backends.client_for(&store).await?;
    let fetched = fetch_external_secret(&es.spec, &client).await?;
    if fetched.all_missing() {
        return apply_deletion_policy(es, ctx, &secrets, &target, existing.as_ref(), fetched, now).await;
    }
    if !fetched.missing.is_empty() {
        return Err(ReconcileError::KeysMissing { missing: fetched.missing });
    }
    if policy != CreationPolicy::None {
        let desired = desired::build_target_secret(es, &fetched.data)?;
        let owns_whole_secret = policy != CreationPolicy::Merge;
        let changed = existing.as_ref().is_none_or(|s| desired::data_differs(s, &desired, owns_whole_secret));
        let params = PatchParams::apply(&desired::field_manager(es)).force();
        let written = secrets
            .patch(&target, &params, &Patch::Apply(&desired))
            .await
            .map_err(|source| ReconcileError::WriteSecret { name: target.clone(), source })?;
        if owns_whole_secret {
            remove_foreign_keys(&secrets, &target, &written, &desired).await?;
        }
        if changed {
            let (reason, note) = match (&existing, cause) {
                (None, _) => ("Created", format!("Secret {target} created")),
                (Some(_), SyncCause::Tampered) => ("Restored", format!("Secret {target} was changed by someone else and was restored")),
                (Some(_), _) => ("Updated", format!("Secret {target} updated")),
            };
            publish(ctx, es, EventType::Normal, reason, "Sync", note).await;
        }
    }
    let condition = Condition::ready(ConditionStatus::True, reason::SECRET_SYNCED, "Secret was synced");
    record_success(es, ctx, condition, cause, &target, now).await?;
    Ok(requeue_action(es, now))
}

/// Keys someone else added to a Secret this ExternalSecret owns whole
/// (every policy but Merge). Server-side apply keeps fields other managers
/// own, so restoring a tampered Secret must drop them explicitly: the
/// restored data is exactly the desired data.
fn foreign_keys(written: &Secret, desired: &Secret) -> Vec<String> {
    let wanted = desired.data.as_ref();
    written
        .data
        .iter()
        .flatten()
        .map(|(key, _)| key)
        .chain(written.string_data.iter().flatten().map(|(key, _)| key))
        .filter(|key| !wanted.is_some_and(|data| data.contains_key(*key)))
        .cloned()
        .collect()
}

async fn remove_foreign_keys(secrets: &Api<Secret>, target: &str, written: &Secret, desired: &Secret) -> Result<(), ReconcileError> {
    let extra = foreign_keys(written, desired);
    if extra.is_empty() {
        return Ok(());
    }
    let removal: serde_json::Map<String, serde_json::Value> = extra.into_iter().map(|key| (key, serde_json::Value::Null)).collect();
    let patch = serde_json::json!({ "data": removal });
    let params = PatchParams { field_manager: Some(CONTROLLER_FIELD_MANAGER.to_string()), ..PatchParams::default() };
    secrets
        .patch(target, &params, &Patch::Merge(&patch))
        .await
        .map_err(|source| ReconcileError::WriteSecret { name: target.to_string(), source })?;
    Ok(())
}

fn requeue_action(es: &ExternalSecret, now: Timestamp) -> Option<Duration> {
    match schedule::next_requeue(es, now, rand::random::<f64>()) {
        Ok(Some(wait)) => Some(wait.max(Duration::from_secs(1))),
        _ => None,
    }
}

async fn apply_deletion_policy(
    es: &ExternalSecret,
    ctx: &Context,
    secrets: &Api<Secret>,
    target: &str,
    existing: Option<&Secret>,
    fetched: Fetched,
    now: Timestamp,
) -> Result<Option<Duration>, ReconcileError> {
    match es.spec.target.deletion_policy {
        DeletionPolicy::Retain => Err(ReconcileError::KeysMissing { missing: fetched.missing }),
        DeletionPolicy::Delete => {
            // Only a Secret this ExternalSecret created is ever deleted, and
            // only that very object (uid and version as read): never one
            // someone re-created or changed meanwhile.
            if let Some(secret) = existing.filter(|s| es.spec.target.creation_policy != CreationPolicy::Merge && desired::created_by(es, s)) {
                let params = DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        uid: secret.metadata.uid.clone(),
                        resource_version: secret.metadata.resource_version.clone(),
                    }),
                    ..DeleteParams::default()
                };
                secrets
                    .delete(target, &params)
                    .await
                    .map_err(|source| ReconcileError::DeleteSecret { name: target.to_string(), source })?;
                publish(ctx, es, EventType::Normal, "Deleted", "Delete", format!("Secret {target} deleted: every remote key is gone")).await;
            }
            let condition = Condition::ready(ConditionStatus::False, reason::SECRET_DELETED, "every remote key is gone; the Secret was deleted (deletionPolicy Delete)");
            record_success(es, ctx, condition, SyncCause::Due, target, now).await?;
            Ok(requeue_action(es, now))
        }
        DeletionPolicy::Merge => {
            if let Some(secret) = existing {
                // Applying our field manager's object with no data releases
                // (and so removes) exactly the keys this ExternalSecret wrote.
                let emptied = desired::data_release(es, secret)?;
                let params = PatchParams::apply(&desired::field_manager(es)).force();
                secrets
                    .patch(target, &params, &Patch::Apply(&emptied))
                    .await
                    .map_err(|source| ReconcileError::WriteSecret { name: target.to_string(), source })?;
            }
            let condition = Condition::ready(ConditionStatus::False, reason::SECRET_DELETED, "every remote key is gone; the keys this ExternalSecret wrote were removed (deletionPolicy Merge)");
            record_success(es, ctx, condition, SyncCause::Due, target, now).await?;
            Ok(requeue_action(es, now))
        }
    }
}

async fn record_success(
    es: &ExternalSecret,
    ctx: &Context,
    condition: Condition,
    cause: SyncCause,
    target: &str,
    now: Timestamp,
) -> Result<(), ReconcileError> {
    let previous = es.status.clone().unwrap_or_default();
    let mut status = ExternalSecretStatus {
        conditions: merge_condition(&previous.conditions, condition, now),
        synced_resource_version: Some(schedule::synced_version(es)),
        binding: Some(secretbridge_shared::external_secret::SecretBinding { name: target.to_string() }),
        ..previous.clone()
    };
    if cause.records_refresh() || status.refresh_time.is_none() {
        status.refresh_time = Some(Time(now));
    }
    if status != previous {
        write_status(ctx, es, &status).await?;
    }
    Ok(())
}

/// Replaces the `Ready` condition, keeping its transition time when the
/// status did not flip, and returns the list unchanged when it says the same.
pub fn merge_condition(conditions: &[Condition], mut condition: Condition, now: Timestamp) -> Vec<Condition> {
    let old = conditions.iter().find(|c| c.type_ == READY);
    if let Some(old) = old {
        if old.same_observation(&condition) {
            return conditions.to_vec();
        }
        condition.last_transition_time = if old.status == condition.status {
            old.last_transition_time.clone()
        } else {
            Some(Time(now))
        };
    } else {
        condition.last_transition_time = Some(Time(now));
    }
    let mut merged: Vec<Condition> = conditions.iter().filter(|c| c.type_ != READY).cloned().collect();
    merged.push(condition);
    merged
}

async fn write_status(ctx: &Context, es: &ExternalSecret, status: &ExternalSecretStatus) -> Result<(), ReconcileError> {
    let namespace = es.namespace().ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let name = es.name_any();
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| ReconcileError::WriteStatus { name, source })?;
    ctx.remember_status(es, status);
    Ok(())
}

async fn publish(ctx: &Context, es: &ExternalSecret, type_: EventType, reason: &str, action: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &es.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}

async fn resolve_store(es: &ExternalSecret, namespace: &str, ctx: &Context) -> Result<ResolvedStore, ReconcileError> {
    let reference = &es.spec.secret_store_ref;
    let name = reference.name.clone();
    let read_error = |source| ReconcileError::ReadStore { kind: reference.kind, name: name.clone(), source };
    let missing = || ReconcileError::StoreNotFound { kind: reference.kind, name: name.clone() };
    let (provider, retry_settings, store_namespace) = match reference.kind {
        StoreKind::SecretStore => {
            let api: Api<SecretStore> = Api::namespaced(ctx.client.clone(), namespace);
            let store = api.get_opt(&name).await.map_err(read_error)?.ok_or_else(missing)?;
            let store_namespace = store.namespace().unwrap_or_else(|| namespace.to_string());
            resolve::check_secret_store_namespace(&name, &store_namespace, namespace)?;
            (store.spec.provider, store.spec.retry_settings, Some(store_namespace))
        }
        StoreKind::ClusterSecretStore => {
            let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
            let store = api.get_opt(&name).await.map_err(read_error)?.ok_or_else(missing)?;
            if !store.spec.conditions.is_empty() {
                let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
                let labels = namespaces
                    .get_opt(namespace)
                    .await
                    .map_err(|source| ReconcileError::ReadNamespace { namespace: namespace.to_string(), source })?
                    .and_then(|ns| ns.metadata.labels)
                    .unwrap_or_default();
                resolve::check_cluster_store_admits(&name, &store.spec.conditions, namespace, &labels)?;
            }
            (store.spec.provider, store.spec.retry_settings, None)
        }
    };
    let service_account = match provider.service_account_ref() {
        Some(selector) => {
            let sa_namespace = resolve::service_account_namespace(reference.kind, store_namespace.as_deref(), selector, namespace)?;
            Some((sa_namespace, selector.name.clone()))
        }
        None => None,
    };
    let retry = RetryPolicy::from_settings(retry_settings.as_ref())
        .map_err(|source| ReconcileError::RetrySettings { kind: reference.kind, name: name.clone(), source })?;
    Ok(ResolvedStore { kind: reference.kind, name, provider, service_account, retry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tamper_restoration_drops_keys_someone_else_added() {
        use k8s_openapi::ByteString;
        let secret = |keys: &[&str]| Secret {
            data: Some(keys.iter().map(|k| (k.to_string(), ByteString(b"v".to_vec()))).collect()),
            ..Secret::default()
        };
        assert_eq!(foreign_keys(&secret(&["a", "extra"]), &secret(&["a"])), vec!["extra".to_string()]);
        assert!(foreign_keys(&secret(&["a"]), &secret(&["a"])).is_empty());
        assert_eq!(foreign_keys(&secret(&["x"]), &Secret::default()), vec!["x".to_string()]);
    }

    #[test]
    fn per_external_secret_memory_forgets_stale_entries_and_stays_bounded() {
        let mut remembered: Remembered<u32> = Remembered::default();
        for i in 0..2000 {
            remembered.touch(("ns".into(), format!("gone-{i}")), |count| *count += 1);
        }
        assert_eq!(remembered.len(), 2000, "a sweep finds nothing stale yet");
        remembered.touch(("ns".into(), "live".into()), |count| *count += 1);
        // An hour later the 2000 were never touched again; the live one was.
        let later = std::time::Instant::now() + MEMORY_TTL + Duration::from_secs(1);
        if let Some(live) = remembered.entries.get_mut(&("ns".to_string(), "live".to_string())) {
            live.1 = later;
        }
        remembered.swept_at = 0;
        remembered.sweep(later);
        assert_eq!(remembered.len(), 1, "entries of ExternalSecrets not seen for MEMORY_TTL are dropped");
        assert_eq!(remembered.get(&("ns".to_string(), "live".to_string())), Some(&1));
        // Small maps are not swept on every touch.
        remembered.touch(("ns".into(), "next".into()), |_| {});
        assert_eq!(remembered.len(), 2);
    }

    #[test]
    fn api_errors_in_status_carry_code_reason_and_fields_never_the_message() {
        use kube::core::Status;
        use kube::core::response::{StatusCause, StatusDetails};
        let quoted = Status {
            code: 422,
            reason: "Invalid".into(),
            message: "Secret \"db\" is invalid: metadata.labels: Invalid value: \"hunter2 value\": a valid label must be...".into(),
            details: Some(StatusDetails {
                name: "db".into(),
                group: String::new(),
                kind: "secrets".into(),
                uid: String::new(),
                causes: vec![StatusCause { reason: "FieldValueInvalid".into(), message: "Invalid value: \"hunter2 value\"".into(), field: "metadata.labels".into() }],
                retry_after_seconds: 0,
            }),
            ..Status::default()
        };
        let error = ReconcileError::WriteSecret { name: "db".into(), source: kube::Error::Api(Box::new(quoted)) };
        let message = error.condition_message();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("422") && message.contains("Invalid") && message.contains("metadata.labels"), "{message}");
        let conflict = kube::Error::Api(Box::new(Status { code: 500, message: "resourceVersion should not be set".into(), ..Status::default() }));
        assert_eq!(api_error_summary(&conflict), "the API server answered 500 (no reason given)");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(300));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(5500));
    }

    #[test]
    fn unchanged_condition_is_not_rewritten() {
        let now = Timestamp::UNIX_EPOCH;
        let first = merge_condition(&[], Condition::ready(ConditionStatus::True, reason::SECRET_SYNCED, "ok"), now);
        assert_eq!(first.len(), 1);
        let later = now + jiff::SignedDuration::from_secs(60);
        let same = merge_condition(&first, Condition::ready(ConditionStatus::True, reason::SECRET_SYNCED, "ok"), later);
        assert_eq!(same, first);
        let failed = merge_condition(&first, Condition::ready(ConditionStatus::False, reason::SECRET_SYNCED_ERROR, "x"), later);
        assert_eq!(failed[0].last_transition_time, Some(Time(later)));
        let failed_again = merge_condition(&failed, Condition::ready(ConditionStatus::False, reason::SECRET_SYNCED_ERROR, "y"), later + jiff::SignedDuration::from_secs(5));
        assert_eq!(failed_again[0].last_transition_time, Some(Time(later)));
    }
}
