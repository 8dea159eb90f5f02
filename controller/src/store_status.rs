//! The `Ready` condition of SecretStores and ClusterSecretStores: set once
//! the config is valid and credentials were obtained for it.

use crate::backend::retry::RetryPolicy;
use crate::reconcile::{BackendFactory, ResolvedStore, merge_condition};
use crate::resolve;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use secretbridge_shared::condition::reason;
use secretbridge_shared::duration::MAX_INTERVAL;
use secretbridge_shared::store::StoreView;
use secretbridge_shared::{ClusterSecretStore, Condition, ConditionStatus, SecretStore, SecretStoreStatus, StoreKind, StoreProvider};
use std::sync::Arc;
use std::time::Duration;

/// How often a store is re-validated when its spec does not say.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(300);

/// State shared by the store reconcilers.
pub struct StoreContext {
    /// Kubernetes client.
    pub client: Client,
    /// Backend clients and credentials (the cache is shared with ExternalSecrets).
    pub backends: Arc<dyn BackendFactory>,
}

/// Why a store's status could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing `status` failed.
    #[error("writing status of {kind:?} {name:?} failed")]
    WriteStatus {
        /// Store kind.
        kind: StoreKind,
        /// Store name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Validates a store and decides its `Ready` condition. A ClusterSecretStore
/// whose ServiceAccount has no namespace is validated without credentials:
/// the namespace comes from each ExternalSecret.
pub async fn validate(kind: StoreKind, name: &str, namespace: Option<&str>, spec: StoreView<'_>, backends: &dyn BackendFactory) -> Condition {
    let provider = spec.provider;
    let retry = match RetryPolicy::from_settings(spec.retry_settings) {
        Ok(retry) => retry,
        Err(error) => return Condition::ready(ConditionStatus::False, reason::INVALID_PROVIDER_CONFIG, error.to_string()),
    };
    if let Some(error) = provider.validate().into_iter().next() {
        return Condition::ready(ConditionStatus::False, reason::INVALID_PROVIDER_CONFIG, error.to_string());
    }
    if let StoreProvider::Gcpsm(gcp) = provider
        && gcp.project_id.as_deref().is_none_or(str::is_empty)
    {
        return Condition::ready(ConditionStatus::False, reason::INVALID_PROVIDER_CONFIG, "spec.provider.gcpsm.projectID is required");
    }
    let service_account = match provider.service_account_ref() {
        None => None,
        Some(selector) => match (kind, &selector.namespace, namespace) {
            (StoreKind::ClusterSecretStore, None, _) => {
                return Condition::ready(ConditionStatus::True, reason::STORE_VALID, "config is valid; credentials are obtained per ExternalSecret namespace");
            }
            _ => match resolve::service_account_namespace(kind, namespace, selector, namespace.unwrap_or_default()) {
                Ok(sa_namespace) => Some((sa_namespace, selector.name.clone())),
                Err(error) => return Condition::ready(ConditionStatus::False, reason::INVALID_PROVIDER_CONFIG, error.to_string()),
            },
        },
    };
    let store = ResolvedStore { kind, name: name.to_string(), provider: provider.clone(), service_account, retry };
    match backends.client_for(&store).await {
        Ok(_) => Condition::ready(ConditionStatus::True, reason::STORE_VALID, "config is valid and credentials were obtained"),
        Err(error) => Condition::ready(ConditionStatus::False, reason::VALIDATION_FAILED, error.to_string()),
    }
}

/// When to validate a store again: its `refreshInterval` seconds, clamped
/// to [`MAX_INTERVAL`] (the CRD's bound, which a server without it would not
/// enforce: timers past about two years do not exist in the runtime).
fn revalidate_after(refresh_interval: Option<i64>) -> Action {
    match refresh_interval {
        Some(seconds) if seconds > 0 => Action::requeue(Duration::from_secs(seconds.unsigned_abs()).min(MAX_INTERVAL)),
        _ => Action::requeue(DEFAULT_REVALIDATE),
    }
}

fn status_with(previous: Option<&SecretStoreStatus>, condition: Condition) -> Option<SecretStoreStatus> {
    let previous = previous.cloned().unwrap_or_default();
    let conditions = merge_condition(&previous.conditions, condition, Timestamp::now());
    (conditions != previous.conditions).then_some(SecretStoreStatus { conditions })
}

/// Reconciles a SecretStore's `Ready` condition.
pub async fn reconcile_secret_store(store: Arc<SecretStore>, ctx: Arc<StoreContext>) -> Result<Action, StoreError> {
    let name = store.name_any();
    let namespace = store.namespace().unwrap_or_default();
    let condition = validate(StoreKind::SecretStore, &name, Some(&namespace), store.spec.view(), ctx.backends.as_ref()).await;
    if let Some(status) = status_with(store.status.as_ref(), condition) {
        let api: Api<SecretStore> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status })))
            .await
            .map_err(|source| StoreError::WriteStatus { kind: StoreKind::SecretStore, name: name.clone(), source })?;
    }
    Ok(revalidate_after(store.spec.refresh_interval))
}

/// Reconciles a ClusterSecretStore's `Ready` condition.
pub async fn reconcile_cluster_store(store: Arc<ClusterSecretStore>, ctx: Arc<StoreContext>) -> Result<Action, StoreError> {
    let name = store.name_any();
    let condition = validate(StoreKind::ClusterSecretStore, &name, None, store.spec.view(), ctx.backends.as_ref()).await;
    if let Some(status) = status_with(store.status.as_ref(), condition) {
        let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "status": status })))
            .await
            .map_err(|source| StoreError::WriteStatus { kind: StoreKind::ClusterSecretStore, name: name.clone(), source })?;
    }
    Ok(revalidate_after(store.spec.refresh_interval))
}

/// Retries a failed status write after a short wait.
pub fn store_error_policy<K>(_store: Arc<K>, error: &StoreError, _ctx: Arc<StoreContext>) -> Action {
    tracing::warn!(%error, "store status write failed");
    Action::requeue(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's `refreshInterval: 9223372036854775807` must not reach the
    /// runtime's timers as it is.
    #[test]
    fn a_huge_store_refresh_interval_is_clamped() {
        assert_eq!(revalidate_after(Some(i64::MAX)), Action::requeue(MAX_INTERVAL));
        assert_eq!(revalidate_after(Some(60)), Action::requeue(Duration::from_secs(60)));
        assert_eq!(revalidate_after(Some(-5)), Action::requeue(DEFAULT_REVALIDATE));
    }
}
