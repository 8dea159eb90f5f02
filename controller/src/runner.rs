//! Wires the reconciler into `kube::runtime::Controller`: watches
//! ExternalSecrets, the Secrets they write (filtered by the managed label, so
//! the controller does not cache every Secret in the cluster), and the stores,
//! mapping a store change to the ExternalSecrets that use it.

use crate::reconcile::{Context, error_policy, reconcile};
use crate::store_status::{StoreContext, reconcile_cluster_store, reconcile_secret_store, store_error_policy};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use secretbridge_shared::names::MANAGED_LABEL;
use secretbridge_shared::{ClusterSecretStore, ExternalSecret, SecretStore, StoreKind};
use std::sync::Arc;

/// Where the controller looks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this namespace, or every namespace when `None`.
    pub namespace: Option<String>,
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match &scope.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The ExternalSecrets in the cache that read from the given store.
fn users_of(cache: &Store<ExternalSecret>, kind: StoreKind, name: &str, namespace: Option<&str>) -> Vec<ObjectRef<ExternalSecret>> {
    cache
        .state()
        .iter()
        .filter(|es| {
            es.spec.secret_store_ref.kind == kind
                && es.spec.secret_store_ref.name == name
                && (namespace.is_none() || es.namespace().as_deref() == namespace)
        })
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

/// The ExternalSecrets in the cache that write the given Secret (any
/// creation policy, so Merge and Orphan targets are watched too).
fn writers_of(cache: &Store<ExternalSecret>, secret: &Secret) -> Vec<ObjectRef<ExternalSecret>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    cache
        .state()
        .iter()
        .filter(|es| es.namespace() == namespace && es.target_secret_name() == Some(name.as_str()))
        .map(|es| ObjectRef::from_obj(es.as_ref()))
        .collect()
}

/// Runs the controller until the process gets SIGTERM or SIGINT.
pub async fn run(client: Client, context: Arc<Context>, scope: Scope, concurrency: u16) {
    run_until(client, context, scope, concurrency, termination_signal(), || ()).await;
}

/// Resolves on SIGTERM (what Kubernetes sends to stop a pod) or SIGINT.
/// If the SIGTERM handler cannot be installed, only SIGINT is awaited.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the controller");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the controller until `shutdown` completes, then lets in-flight
/// reconciles finish before returning. `on_ready` is called once the
/// ExternalSecret cache has synced (for `/readyz`).
pub async fn run_until(
    client: Client,
    context: Arc<Context>,
    scope: Scope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce() + Send + 'static,
) {
    // One trigger for the three controllers: a shared future resolves for
    // every clone.
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);
    let external_secrets: Api<ExternalSecret> = api(&client, &scope);
    let secrets: Api<Secret> = api(&client, &scope);
    let stores: Api<SecretStore> = api(&client, &scope);
    let cluster_stores: Api<ClusterSecretStore> = Api::all(client.clone());
    let controller = Controller::new(external_secrets, watcher::Config::default().any_semantic());
    let cache = controller.store();
    context.metrics.watch_external_secrets(cache.clone());
    let ready_cache = cache.clone();
    tokio::spawn(async move {
        // The Controller waits on the same store; its readiness signal is a
        // oneshot that keeps only the last waiter's waker, so a second waiter
        // may never be woken. Re-poll: once the Controller's wait completes
        // the value is memoized and the next poll returns at once.
        loop {
            match tokio::time::timeout(std::time::Duration::from_millis(100), ready_cache.wait_until_ready()).await {
                Ok(Ok(())) => {
                    tracing::info!("ExternalSecret cache synced; ready");
                    on_ready();
                    break;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the ExternalSecret cache never synced");
                    break;
                }
                Err(_) => continue,
            }
        }
    });
    let (for_secrets, for_stores, for_cluster_stores) = (cache.clone(), cache.clone(), cache);
    let controller = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches(
            secrets,
            watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true")),
            move |secret| writers_of(&for_secrets, &secret),
        )
        .watches(stores, watcher::Config::default(), move |store: SecretStore| {
            users_of(&for_stores, StoreKind::SecretStore, &store.name_any(), store.namespace().as_deref())
        })
        .watches(cluster_stores, watcher::Config::default(), move |store: ClusterSecretStore| {
            users_of(&for_cluster_stores, StoreKind::ClusterSecretStore, &store.name_any(), None)
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, context.clone())
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile failed"),
            }
        });
    let store_context = Arc::new(StoreContext { client: client.clone(), backends: context.backends.clone() });
    let secret_stores = Controller::new(api::<SecretStore>(&client, &scope), watcher::Config::default().any_semantic());
    let cluster_stores = Controller::new(Api::<ClusterSecretStore>::all(client.clone()), watcher::Config::default().any_semantic());
    context.metrics.watch_stores(secret_stores.store(), cluster_stores.store());
    let secret_stores = secret_stores
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_secret_store, store_error_policy, store_context.clone())
        .for_each(|_| async {});
    let cluster_stores = cluster_stores
        .graceful_shutdown_on(shutdown)
        .run(reconcile_cluster_store, store_error_policy, store_context)
        .for_each(|_| async {});
    futures::join!(controller, secret_stores, cluster_stores);
}
