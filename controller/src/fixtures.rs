//! Scenario tests of the reconciler's decisions against a mocked API server
//! (tower-test): each scenario scripts the requests the reconciler must make,
//! in order, with the API server's answers, and fails on any other request.

use crate::backend::coalesce::ParameterBatcher;
use crate::backend::fake::{FakeGcpSecrets, FakeParameters, FakeSecrets};
use crate::backend::fetch::{CoalescedGcpSecrets, CoalescedSecrets, StoreClient};
use crate::backend::metrics::CallMetrics;
use crate::backend::{CallError, CallErrorKind};
use crate::reconcile::{BackendFactory, Context, CredentialError, ReconcileError, ResolvedStore, reconcile_decision};
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use jiff::Timestamp;
use kube::client::Body;
use kube::{Client, Resource};
use secretbridge_shared::names::{DATA_HASH_ANNOTATION, FORCE_SYNC_ANNOTATION, MANAGED_LABEL};
use secretbridge_shared::{
    CreationPolicy, DeletionPolicy, ExternalSecret, ExternalSecretStatus, SecretStore, StoreKind, StoreProvider,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_test::mock::{self, Handle};

const NS: &str = "multicloud";

/// A fixed clock for scenarios.
fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Backends built on the fakes.
struct FakeBackends {
    parameters: Arc<FakeParameters>,
    secrets: Arc<FakeSecrets>,
    gcp: Arc<FakeGcpSecrets>,
    metrics: Arc<CallMetrics>,
    batcher: ParameterBatcher,
    credential_failure: Mutex<Option<CredentialError>>,
    seen_stores: Mutex<Vec<ResolvedStore>>,
}

impl FakeBackends {
    fn new() -> Arc<Self> {
        let parameters = Arc::new(FakeParameters::default());
        let metrics = Arc::new(CallMetrics::default());
        Arc::new(FakeBackends {
            batcher: ParameterBatcher::spawn(parameters.clone(), metrics.clone(), Duration::from_millis(1)),
            parameters,
            secrets: Arc::default(),
            gcp: Arc::default(),
            metrics,
            credential_failure: Mutex::new(None),
            seen_stores: Mutex::new(Vec::new()),
        })
    }
}

impl BackendFactory for FakeBackends {
    fn client_for<'a>(&'a self, store: &'a ResolvedStore) -> BoxFuture<'a, Result<StoreClient, CredentialError>> {
        Box::pin(async move {
            self.seen_stores.lock().map(|mut s| s.push(store.clone())).ok();
            if let Some(error) = self.credential_failure.lock().ok().and_then(|f| f.clone()) {
                return Err(error);
            }
            Ok(match &store.provider {
                StoreProvider::Aws(aws) => match aws.service {
                    secretbridge_shared::AwsService::ParameterStore => StoreClient::ParameterStore {
                        region: aws.region.clone(),
                        prefix: aws.prefix.clone().unwrap_or_default(),
                        batcher: self.batcher.clone(),
                    },
                    secretbridge_shared::AwsService::SecretsManager => StoreClient::SecretsManager {
                        region: aws.region.clone(),
                        prefix: aws.prefix.clone().unwrap_or_default(),
                        secrets: Arc::new(CoalescedSecrets::new(self.secrets.clone(), self.metrics.clone())),
                    },
                },
                StoreProvider::Gcpsm(gcp) => StoreClient::Gcp {
                    project: gcp.project_id.clone().unwrap_or_default(),
                    location: gcp.location.clone(),
                    secrets: Arc::new(CoalescedGcpSecrets::new(self.gcp.clone(), self.metrics.clone())),
                },
            })
        })
    }
}

/// What the mocked API server answers.
enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// 200 echoing the request body (apply, event create, status patch).
    Echo,
    /// An error Status with this code.
    Error(u16),
}

/// One expected request.
struct Expect {
    method: Method,
    path: String,
    reply: Reply,
}

fn expect(method: Method, path: &str, reply: Reply) -> Expect {
    Expect { method, path: path.to_string(), reply }
}

/// A request the reconciler made.
#[derive(Debug)]
struct Seen {
    path_and_query: String,
    body: Value,
}

fn status_body(code: u16) -> Vec<u8> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        _ => "InternalError",
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code, "message": format!("mock {code}")})
        .to_string()
        .into_bytes()
}

/// Serves `script` in order, asserting each request, then asserts that no
/// other request arrives before the client is dropped.
fn serve(handle: Handle<Request<Body>, Response<Body>>, script: Vec<Expect>) -> tokio::task::JoinHandle<Vec<Seen>> {
    tokio::spawn(async move {
        let mut handle = handle;
        let mut seen = Vec::new();
        for step in script {
            let (request, send) = match handle.next_request().await {
                Some(pair) => pair,
                None => panic!("expected {} {} but the reconciler made no more requests", step.method, step.path),
            };
            let path_and_query = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            assert_eq!(
                (request.method().clone(), request.uri().path().to_string()),
                (step.method.clone(), step.path.clone()),
                "unexpected request {path_and_query}"
            );
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (code, reply) = match step.reply {
                Reply::Json(value) => (200, value.to_string().into_bytes()),
                Reply::Echo => (200, bytes.to_vec()),
                Reply::Error(code) => (code, status_body(code)),
            };
            let response = Response::builder().status(code).body(Body::from(reply)).expect("valid response");
            send.send_response(response);
            seen.push(Seen { path_and_query, body });
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected extra request {} {}", request.method(), request.uri());
        }
        seen
    })
}

fn context(backends: Arc<FakeBackends>) -> (Arc<Context>, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut ctx = Context::new(client, backends);
    ctx.now = now;
    (Arc::new(ctx), handle)
}

fn seed_store() -> SecretStore {
    let mut store: SecretStore = serde_json::from_value(json!({
        "apiVersion": "secretbridge.io/v1", "kind": "SecretStore",
        "metadata": {"name": "aws-parameter-store", "namespace": NS},
        "spec": {"provider": {"aws": {"service": "ParameterStore", "region": "eu-west-1",
            "auth": {"jwt": {"serviceAccountRef": {"name": "multicloud-app"}}}}}}
    }))
    .expect("seed store parses");
    store.metadata.uid = Some("store-uid".into());
    store
}

/// The seed store as the API server returns it.
fn seed_store_value() -> Value {
    serde_json::to_value(seed_store()).unwrap_or(Value::Null)
}

fn seed_external_secret() -> ExternalSecret {
    let mut es: ExternalSecret = serde_json::from_value(json!({
        "apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "multicloud-db-info", "namespace": NS, "uid": "es-uid", "generation": 1},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "aws-parameter-store", "kind": "SecretStore"},
            "target": {"name": "multicloud-db-info", "creationPolicy": "Owner"},
            "data": [
                {"secretKey": "dburl", "remoteRef": {"key": "/multicloud/db/url"}},
                {"secretKey": "user", "remoteRef": {"key": "/multicloud/db/user"}},
                {"secretKey": "password", "remoteRef": {"key": "/multicloud/db/password"}}
            ]
        }
    }))
    .expect("seed ExternalSecret parses");
    es.metadata.uid = Some("es-uid".into());
    es
}

/// What the API server answers to a status patch (the reconciler ignores the content).
fn es_value() -> Value {
    serde_json::to_value(seed_external_secret()).unwrap_or(Value::Null)
}

fn seed_values(backends: &FakeBackends) {
    backends.parameters.put("/multicloud/db/url", "postgres://db.internal:5432/app");
    backends.parameters.put("/multicloud/db/user", "app");
    backends.parameters.put("/multicloud/db/password", "s3cret");
}

const STORE_PATH: &str = "/apis/secretbridge.io/v1/namespaces/multicloud/secretstores/aws-parameter-store";
const SECRET_PATH: &str = "/api/v1/namespaces/multicloud/secrets/multicloud-db-info";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/multicloud/events";
const STATUS_PATH: &str = "/apis/secretbridge.io/v1/namespaces/multicloud/externalsecrets/multicloud-db-info/status";

/// The Secret a successful sync of `es` with `data` writes, as the API server returns it.
fn written_secret(es: &ExternalSecret, data: &[(&str, &str)]) -> Value {
    let data: crate::desired::SecretData = data.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
    let secret = crate::desired::build_target_secret(es, &data).expect("builds");
    serde_json::to_value(secret).unwrap_or(Value::Null)
}

/// The ExternalSecret after a successful sync at `now()`.
fn synced(mut es: ExternalSecret) -> ExternalSecret {
    es.status = Some(ExternalSecretStatus {
        conditions: vec![secretbridge_shared::Condition::ready(
            secretbridge_shared::ConditionStatus::True,
            secretbridge_shared::condition::reason::SECRET_SYNCED,
            "Secret was synced",
        )],
        refresh_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now() - jiff::SignedDuration::from_secs(60))),
        synced_resource_version: Some(crate::schedule::synced_version(&es)),
        binding: Some(secretbridge_shared::external_secret::SecretBinding { name: "multicloud-db-info".into() }),
    });
    es
}

fn seed_data() -> Vec<(&'static str, &'static str)> {
    vec![("dburl", "postgres://db.internal:5432/app"), ("password", "s3cret"), ("user", "app")]
}

async fn run(es: ExternalSecret, backends: Arc<FakeBackends>, script: Vec<Expect>) -> (Result<Option<Duration>, ReconcileError>, Vec<Seen>) {
    let (ctx, handle) = context(backends);
    let server = serve(handle, script);
    let result = reconcile_decision(Arc::new(es), ctx.clone()).await;
    drop(ctx);
    let seen = match server.await {
        Ok(seen) => seen,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    (result, seen)
}

fn ready(seen: &Seen) -> (String, String, String) {
    let condition = &seen.body["status"]["conditions"][0];
    (
        condition["status"].as_str().unwrap_or_default().to_string(),
        condition["reason"].as_str().unwrap_or_default().to_string(),
        condition["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn seed_scenario_creates_the_owned_secret_with_three_keys() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let es = seed_external_secret();
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es.clone(), backends.clone(), script).await;
    let next = result.expect("reconcile succeeds");
    assert!(next.is_some_and(|d| d >= Duration::from_secs(3600) && d <= Duration::from_secs(3960)), "{next:?}");
    let apply = &seen[2];
    assert!(apply.path_and_query.contains("fieldManager=secretbridge"), "{}", apply.path_and_query);
    assert!(apply.path_and_query.contains("force=true"), "{}", apply.path_and_query);
    let data = apply.body["data"].as_object().cloned().unwrap_or_default();
    assert_eq!(data.len(), 3);
    assert_eq!(data.get("user").and_then(Value::as_str), Some("YXBw"), "base64 of \"app\"");
    assert_eq!(apply.body["metadata"]["labels"][MANAGED_LABEL], "true");
    assert!(apply.body["metadata"]["annotations"][DATA_HASH_ANNOTATION].as_str().is_some_and(|h| h.len() == 64));
    assert_eq!(apply.body["metadata"]["ownerReferences"][0]["uid"], "es-uid");
    assert_eq!(apply.body["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(seen[3].body["reason"], "Created");
    let (status, reason, _) = ready(&seen[4]);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "SecretSynced"));
    assert_eq!(seen[4].body["status"]["syncedResourceVersion"], "1");
    assert!(seen[4].body["status"]["refreshTime"].is_string());
    // The store's ServiceAccount resolves to the store's own namespace.
    let stores = backends.seen_stores.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(stores[0].service_account, Some((NS.to_string(), "multicloud-app".to_string())));
    assert_eq!(backends.metrics.calls("ssm", "GetParameters"), 1);
}

#[tokio::test]
async fn synced_and_not_due_makes_no_writes_and_no_backend_calls() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let es = synced(seed_external_secret());
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Json(written_secret(&es, &seed_data()))),
    ];
    let (result, _) = run(es, backends.clone(), script).await;
    let next = result.expect("reconcile succeeds");
    // Synced 60s ago with a 1h interval: next look in 59m plus at most 10% jitter.
    assert!(next.is_some_and(|d| d >= Duration::from_secs(3540) && d <= Duration::from_secs(3900)), "{next:?}");
    assert_eq!(backends.parameters.calls(), 0);
}

#[tokio::test]
async fn failed_fetch_leaves_the_secret_and_names_key_and_error() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    backends.parameters.deny("/multicloud/db/password");
    let mut es = synced(seed_external_secret());
    es.metadata.generation = Some(2);
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Json(written_secret(&es, &seed_data()))),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    // Permanent: no error to back off on; wait for a change or an interval.
    let next = result.expect("permanent errors are recorded, not retried");
    assert!(next.is_some_and(|d| d >= Duration::from_secs(3600)), "{next:?}");
    assert_eq!(seen[2].body["type"], "Warning");
    let (status, reason, message) = ready(&seen[3]);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretSyncedError"));
    assert!(message.contains("/multicloud/db/password") && message.contains("AccessDenied"), "{message}");
    // The synced version is not advanced, so the spec change is retried later.
    assert!(seen[3].body["status"].get("syncedResourceVersion").is_none_or(|v| v == "1"));
}

#[tokio::test]
async fn transient_fetch_error_backs_off_without_touching_the_secret() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    backends.parameters.fail_next(CallError::new(CallErrorKind::Throttled, "Rate exceeded"));
    let es = seed_external_secret();
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    let error = result.expect_err("transient errors go to the error policy");
    assert!(error.is_transient());
    assert_eq!(error.reason(), "Throttled");
    assert_eq!(ready(&seen[3]).1, "SecretSyncedError");
}

#[tokio::test]
async fn tampered_secret_is_restored_without_a_status_write() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let es = synced(seed_external_secret());
    let mut tampered = written_secret(&es, &seed_data());
    tampered["data"]["password"] = json!("aGFja2Vk");
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Json(tampered)),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
    ];
    let (result, seen) = run(es, backends, script).await;
    result.expect("reconcile succeeds");
    assert_eq!(seen[2].body["data"]["password"], "czNjcmV0", "base64 of the remote value");
    assert_eq!(seen[3].body["reason"], "Restored");
}

#[tokio::test]
async fn deleted_secret_is_recreated() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let es = synced(seed_external_secret());
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    result.expect("reconcile succeeds");
    assert_eq!(seen[3].body["reason"], "Created");
}

#[tokio::test]
async fn force_sync_annotation_change_resyncs_at_once() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let mut es = synced(seed_external_secret());
    es.metadata.annotations = Some([(FORCE_SYNC_ANNOTATION.to_string(), "2026-11-28T16:00:00Z".to_string())].into_iter().collect());
    backends.parameters.put("/multicloud/db/password", "rotated");
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Json(written_secret(&es, &seed_data()))),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es.clone(), backends, script).await;
    result.expect("reconcile succeeds");
    assert_eq!(seen[2].body["data"]["password"], "cm90YXRlZA==");
    assert_eq!(seen[3].body["reason"], "Updated");
    assert_eq!(seen[4].body["status"]["syncedResourceVersion"], crate::schedule::synced_version(&es));
}

#[tokio::test]
async fn secret_store_may_not_use_another_namespaces_service_account() {
    let backends = FakeBackends::new();
    let es = seed_external_secret();
    let mut store = seed_store_value();
    store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["namespace"] = json!("kube-system");
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends.clone(), script).await;
    result.expect("permanent error recorded");
    let (status, _, message) = ready(&seen[2]);
    assert_eq!(status, "False");
    assert!(message.contains("kube-system"), "{message}");
    assert!(backends.seen_stores.lock().map(|s| s.is_empty()).unwrap_or(false), "no credentials requested");
}

#[tokio::test]
async fn missing_secret_store_is_reported() {
    let backends = FakeBackends::new();
    let es = seed_external_secret();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Error(404)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    result.expect("permanent error recorded");
    assert!(ready(&seen[2]).2.contains("does not exist"));
}

#[tokio::test]
async fn cluster_store_refuses_a_namespace_it_does_not_admit() {
    let backends = FakeBackends::new();
    let mut es = seed_external_secret();
    es.spec.secret_store_ref.kind = StoreKind::ClusterSecretStore;
    es.spec.secret_store_ref.name = "gcp".into();
    let store = json!({
        "apiVersion": "secretbridge.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "gcp"},
        "spec": {"provider": {"gcpsm": {"projectID": "p"}}, "conditions": [{"namespaces": ["other"]}]}
    });
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "x"}}});
    let script = vec![
        expect(Method::GET, "/apis/secretbridge.io/v1/clustersecretstores/gcp", Reply::Json(store)),
        expect(Method::GET, "/api/v1/namespaces/multicloud", Reply::Json(namespace)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    let _ = result.expect("permanent error recorded");
    assert!(ready(&seen[3]).2.contains("does not admit"), "{:?}", ready(&seen[3]));
}

#[tokio::test]
async fn gcp_cluster_store_syncs_with_the_es_namespace_service_account() {
    let backends = FakeBackends::new();
    backends.gcp.add_version("multicloud-demo", "multicloud-db-url", "postgres://gcp");
    backends.gcp.add_version("multicloud-demo", "multicloud-db-user", "app");
    backends.gcp.add_version("multicloud-demo", "multicloud-db-password", "pw");
    let mut es = seed_external_secret();
    es.spec.secret_store_ref.kind = StoreKind::ClusterSecretStore;
    es.spec.secret_store_ref.name = "gcp-secret-manager".into();
    for (entry, key) in es.spec.data.iter_mut().zip(["multicloud-db-url", "multicloud-db-user", "multicloud-db-password"]) {
        entry.remote_ref.key = key.into();
    }
    let store = json!({
        "apiVersion": "secretbridge.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "gcp-secret-manager"},
        "spec": {"provider": {"gcpsm": {"projectID": "multicloud-demo", "auth": {"workloadIdentity": {
            "clusterLocation": "europe-west1", "clusterName": "multicloud-autopilot", "clusterProjectID": "multicloud-demo",
            "serviceAccountRef": {"name": "multicloud-app"}}}}}}
    });
    let script = vec![
        expect(Method::GET, "/apis/secretbridge.io/v1/clustersecretstores/gcp-secret-manager", Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends.clone(), script).await;
    result.expect("reconcile succeeds");
    assert_eq!(seen[2].body["data"].as_object().map(|d| d.len()), Some(3));
    let stores = backends.seen_stores.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(stores[0].service_account, Some((NS.to_string(), "multicloud-app".to_string())));
    assert_eq!(backends.gcp.calls(), 3);
}

/// A synced ExternalSecret with `policy` whose spec changed since (so it
/// syncs again) while the backend holds none of its keys, and the two reads
/// its reconcile starts with: the store, then the Secret it wrote.
fn every_key_gone(policy: DeletionPolicy) -> (ExternalSecret, Vec<Expect>) {
    let mut es = synced(seed_external_secret());
    es.spec.target.deletion_policy = policy;
    es.metadata.generation = Some(2);
    let reads = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(seed_store_value())),
        expect(Method::GET, SECRET_PATH, Reply::Json(written_secret(&es, &seed_data()))),
    ];
    (es, reads)
}

#[tokio::test]
async fn deletion_policy_delete_removes_the_secret_when_every_key_is_gone() {
    let backends = FakeBackends::new();
    let (es, mut script) = every_key_gone(DeletionPolicy::Delete);
    script.extend([
        expect(Method::DELETE, SECRET_PATH, Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}))),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ]);
    let (result, seen) = run(es, backends, script).await;
    result.expect("reconcile succeeds");
    assert_eq!(ready(&seen[4]).1, "SecretDeleted");
}

/// Merge releases exactly the keys this ExternalSecret's field manager
/// wrote: it applies the Secret with no `data`, so keys others wrote stay.
#[tokio::test]
async fn deletion_policy_merge_releases_only_our_keys_when_every_key_is_gone() {
    let backends = FakeBackends::new();
    let (es, mut script) = every_key_gone(DeletionPolicy::Merge);
    script.extend([expect(Method::PATCH, SECRET_PATH, Reply::Echo), expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value()))]);
    let (result, seen) = run(es, backends, script).await;
    result.expect("reconcile succeeds");
    let release = &seen[2];
    assert!(release.path_and_query.contains("fieldManager=secretbridge"), "{}", release.path_and_query);
    assert!(release.body.get("data").is_none(), "no data applied, so ours is released: {}", release.body);
    assert_eq!(release.body["kind"], "Secret");
    assert_eq!(ready(&seen[3]).1, "SecretDeleted");
}

#[tokio::test]
async fn deletion_policy_retain_keeps_the_secret_and_reports() {
    let backends = FakeBackends::new();
    let (es, mut script) = every_key_gone(DeletionPolicy::Retain);
    script.extend([expect(Method::POST, EVENTS_PATH, Reply::Echo), expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value()))]);
    let (result, seen) = run(es, backends, script).await;
    result.expect("permanent error recorded");
    let (status, reason, message) = ready(&seen[3]);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretSyncedError"));
    assert!(message.contains("NotFound"), "{message}");
}

#[tokio::test]
async fn merge_into_a_missing_secret_is_an_error() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let mut es = seed_external_secret();
    es.spec.target.creation_policy = CreationPolicy::Merge;
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends.clone(), script).await;
    result.expect("permanent error recorded");
    assert!(ready(&seen[3]).2.contains("creationPolicy Merge"));
    assert_eq!(backends.parameters.calls(), 0, "nothing fetched");
}

/// Runs `es` (store resolves, Secret read answers `existing`) and returns
/// the Ready condition written, expecting a refusal before any fetch.
async fn refused_before_fetch(es: ExternalSecret, existing: Reply, backends: Arc<FakeBackends>, reason: &str) -> (String, String, String) {
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, existing),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends.clone(), script).await;
    result.expect("permanent error recorded, not a crash or retry loop");
    assert_eq!(backends.parameters.calls(), 0, "nothing fetched for a refused target");
    assert_eq!(seen[2].body["reason"], reason, "the event carries the reason code");
    ready(&seen[3])
}

#[tokio::test]
async fn merge_into_a_secret_owned_by_another_external_secret_is_refused() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let mut other = seed_external_secret();
    other.metadata.name = Some("someone-elses".into());
    other.metadata.uid = Some("other-uid".into());
    other.spec.target.name = Some("multicloud-db-info".into());
    let owned_by_other = written_secret(&other, &[("token", "theirs")]);
    for policy in [CreationPolicy::Merge, CreationPolicy::Owner] {
        let mut es = seed_external_secret();
        es.spec.target.creation_policy = policy;
        let (status, _, message) = refused_before_fetch(es, Reply::Json(owned_by_other.clone()), backends.clone(), "SecretOwnedByAnother").await;
        assert_eq!(status, "False");
        assert!(message.contains("owned by ExternalSecret \"someone-elses\""), "{policy:?}: {message}");
    }
}

#[tokio::test]
async fn merge_into_a_service_account_token_secret_is_refused() {
    for forbidden in secretbridge_shared::names::FORBIDDEN_SECRET_TYPES {
        let backends = FakeBackends::new();
        seed_values(&backends);
        let mut es = seed_external_secret();
        es.spec.target.creation_policy = CreationPolicy::Merge;
        let token = json!({"apiVersion": "v1", "kind": "Secret", "type": forbidden,
            "metadata": {"name": "multicloud-db-info", "namespace": NS}, "data": {"token": "eHg="}});
        let (status, _, message) = refused_before_fetch(es, Reply::Json(token), backends, "ForbiddenSecretType").await;
        assert_eq!(status, "False");
        assert!(message.contains(forbidden), "{message}");
    }
}

#[tokio::test]
async fn malformed_refresh_interval_is_reported_naming_the_field() {
    let backends = FakeBackends::new();
    let mut es = seed_external_secret();
    es.spec.refresh_interval = "every so often".into();
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends, script).await;
    assert_eq!(result.expect("permanent error recorded"), None, "waits for a fix, no retry loop");
    let (status, _, message) = ready(&seen[2]);
    assert_eq!(status, "False");
    assert!(message.contains("spec.refreshInterval"), "{message}");
    assert_eq!(seen[1].body["reason"], "InvalidRefreshInterval");
}

#[tokio::test]
async fn malformed_store_retry_settings_are_reported_naming_the_field() {
    let cases = [
        (json!({"maxRetries": 2, "retryInterval": "soon"}), "spec.retrySettings.retryInterval"),
        (json!({"maxRetries": -1}), "spec.retrySettings.maxRetries"),
    ];
    for (retry_settings, field) in cases {
        let backends = FakeBackends::new();
        seed_values(&backends);
        let mut store = seed_store_value();
        store["spec"]["retrySettings"] = retry_settings;
        let script = vec![
            expect(Method::GET, STORE_PATH, Reply::Json(store)),
            expect(Method::POST, EVENTS_PATH, Reply::Echo),
            expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
        ];
        let (result, seen) = run(seed_external_secret(), backends.clone(), script).await;
        let next = result.expect("permanent error recorded, not a transient backoff");
        assert!(next.is_some_and(|d| d >= Duration::from_secs(3600)), "waits for a store change or the refresh interval: {next:?}");
        let (status, _, message) = ready(&seen[2]);
        assert_eq!(status, "False");
        assert!(message.contains(field) && message.contains("\"aws-parameter-store\""), "{field}: {message}");
        assert_eq!(seen[1].body["reason"], "InvalidRetrySettings");
        assert!(backends.seen_stores.lock().map(|s| s.is_empty()).unwrap_or(false), "no client for a store that cannot be used");
        assert_eq!(backends.parameters.calls(), 0);
    }
}

#[tokio::test]
async fn the_stores_retry_settings_reach_the_backend_factory() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let mut store = seed_store_value();
    store["spec"]["retrySettings"] = json!({"maxRetries": 7, "retryInterval": "250ms"});
    let es = seed_external_secret();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::GET, SECRET_PATH, Reply::Error(404)),
        expect(Method::PATCH, SECRET_PATH, Reply::Echo),
        expect(Method::POST, EVENTS_PATH, Reply::Echo),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, _) = run(es, backends.clone(), script).await;
    result.expect("synced");
    let seen = backends.seen_stores.lock().map(|s| s.clone()).unwrap_or_default();
    let expected = crate::backend::retry::RetryPolicy { max_retries: 7, interval: Duration::from_millis(250) };
    assert_eq!(seen.iter().map(|s| s.retry).collect::<Vec<_>>(), vec![Some(expected)]);
}

#[tokio::test]
async fn store_with_malformed_retry_settings_is_not_ready_and_gets_no_credentials() {
    let backends = FakeBackends::new();
    let mut store = seed_store();
    store.spec.retry_settings = Some(secretbridge_shared::RetrySettings { max_retries: Some(1), retry_interval: Some("1d".into()) });
    let condition = crate::store_status::validate(StoreKind::SecretStore, "aws-parameter-store", Some(NS), store.spec.view(), backends.as_ref()).await;
    assert_eq!(condition.status, secretbridge_shared::ConditionStatus::False);
    assert_eq!(condition.reason.as_deref(), Some(secretbridge_shared::condition::reason::INVALID_PROVIDER_CONFIG));
    let message = condition.message.unwrap_or_default();
    assert!(message.contains("spec.retrySettings.retryInterval") && message.contains("24h"), "names the field and the fix: {message}");
    assert!(backends.seen_stores.lock().map(|s| s.is_empty()).unwrap_or(false), "no credentials for an unusable store");

    store.spec.retry_settings = Some(secretbridge_shared::RetrySettings { max_retries: Some(0), retry_interval: Some("2s".into()) });
    let condition = crate::store_status::validate(StoreKind::SecretStore, "aws-parameter-store", Some(NS), store.spec.view(), backends.as_ref()).await;
    assert_eq!(condition.status, secretbridge_shared::ConditionStatus::True, "{condition:?}");
    let seen = backends.seen_stores.lock().map(|s| s.clone()).unwrap_or_default();
    let expected = crate::backend::retry::RetryPolicy { max_retries: 0, interval: Duration::from_secs(2) };
    assert_eq!(seen.iter().map(|s| s.retry).collect::<Vec<_>>(), vec![Some(expected)], "validation builds the client the syncs will use");
}

#[tokio::test]
async fn property_of_a_non_json_value_and_a_bad_template_are_reported_naming_the_field() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let store = seed_store_value();
    let script = || {
        vec![
            expect(Method::GET, STORE_PATH, Reply::Json(store.clone())),
            expect(Method::GET, SECRET_PATH, Reply::Error(404)),
            expect(Method::POST, EVENTS_PATH, Reply::Echo),
            expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
        ]
    };
    let mut es = seed_external_secret();
    es.spec.data[1].remote_ref.property = Some("name.first".into());
    let (result, seen) = run(es, backends.clone(), script()).await;
    result.expect("permanent error recorded");
    let (status, _, message) = ready(&seen[3]);
    assert_eq!(status, "False");
    assert!(message.contains("property \"name.first\"") && message.contains("/multicloud/db/user"), "{message}");
    assert_eq!(seen[2].body["reason"], "PropertyOfNonJson");

    let mut es = seed_external_secret();
    es.spec.target.template = Some(secretbridge_shared::ExternalSecretTemplate {
        data: [("url".to_string(), "{{ .dburl | env \"HOME\" }}".to_string())].into_iter().collect(),
        ..Default::default()
    });
    let (result, seen) = run(es, backends, script()).await;
    result.expect("permanent error recorded");
    let (status, _, message) = ready(&seen[3]);
    assert_eq!(status, "False");
    assert!(message.contains("template.data.url"), "{message}");
}

#[tokio::test]
async fn cluster_store_regexes_and_namespace_selector_are_enforced_with_a_reason() {
    let refusing = [
        json!([{"namespaceRegexes": ["team-.*"]}]),
        json!([{"namespaceSelector": {"matchLabels": {"team": "y"}}}]),
        json!([{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}}]),
        // Every field of one condition must match: the name does, the labels don't.
        json!([{"namespaces": [NS], "namespaceSelector": {"matchLabels": {"team": "y"}}}]),
    ];
    for conditions in refusing {
        let backends = FakeBackends::new();
        let mut es = seed_external_secret();
        es.spec.secret_store_ref.kind = StoreKind::ClusterSecretStore;
        es.spec.secret_store_ref.name = "gcp".into();
        let store = json!({
            "apiVersion": "secretbridge.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": "gcp"},
            "spec": {"provider": {"gcpsm": {"projectID": "p"}}, "conditions": conditions}
        });
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "x"}}});
        let script = vec![
            expect(Method::GET, "/apis/secretbridge.io/v1/clustersecretstores/gcp", Reply::Json(store)),
            expect(Method::GET, "/api/v1/namespaces/multicloud", Reply::Json(namespace)),
            expect(Method::POST, EVENTS_PATH, Reply::Echo),
            expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
        ];
        let (result, seen) = run(es, backends.clone(), script).await;
        result.expect("permanent error recorded");
        let (status, _, message) = ready(&seen[3]);
        assert_eq!(status, "False", "{conditions}");
        assert!(message.contains("does not admit namespace \"multicloud\""), "{conditions}: {message}");
        assert_eq!(seen[2].body["reason"], "StoreNotAdmitted", "{conditions}");
        assert!(backends.seen_stores.lock().map(|s| s.is_empty()).unwrap_or(false), "no credentials for a refused namespace");
    }
}

#[tokio::test]
async fn creation_policy_none_fetches_but_writes_no_secret() {
    let backends = FakeBackends::new();
    seed_values(&backends);
    let mut es = seed_external_secret();
    es.spec.target.creation_policy = CreationPolicy::None;
    let store = seed_store_value();
    let script = vec![
        expect(Method::GET, STORE_PATH, Reply::Json(store)),
        expect(Method::PATCH, STATUS_PATH, Reply::Json(es_value())),
    ];
    let (result, seen) = run(es, backends.clone(), script).await;
    result.expect("reconcile succeeds");
    assert_eq!(ready(&seen[1]).1, "SecretSynced");
    assert_eq!(backends.parameters.calls(), 1);
}

#[tokio::test]
async fn fifty_external_secrets_reading_thirty_keys_cost_three_ssm_calls() {
    let parameters = Arc::new(FakeParameters::default());
    for i in 0..30 {
        parameters.put(&format!("/k/{i:02}"), &format!("v{i}"));
    }
    let metrics = Arc::new(CallMetrics::default());
    // One batcher per (backend, credentials), as the real factory keeps.
    let batcher = ParameterBatcher::spawn(parameters.clone(), metrics.clone(), Duration::from_millis(200));
    let client = StoreClient::ParameterStore { region: "eu-west-1".into(), prefix: String::new(), batcher };
    let fetches = (0..50).map(|n| {
        let mut es = seed_external_secret();
        es.spec.data.truncate(1);
        es.spec.data = (0..5)
            .map(|j| {
                let mut entry = seed_external_secret().spec.data[0].clone();
                entry.secret_key = format!("k{j}");
                entry.remote_ref.key = format!("/k/{:02}", (n * 3 + j) % 30);
                entry
            })
            .collect();
        let client = client.clone();
        async move { crate::backend::fetch::fetch_external_secret(&es.spec, &client).await.map(|f| f.data.len()) }
    });
    let results = futures::future::join_all(fetches).await;
    assert!(results.iter().all(|r| matches!(r, Ok(5))), "{results:?}");
    assert_eq!(metrics.calls("ssm", "GetParameters"), 3, "⌈30/10⌉");
    assert_eq!(parameters.calls(), 3);
}

#[test]
fn es_owner_reference_points_at_the_external_secret() {
    let es = seed_external_secret();
    let owner = es.controller_owner_ref(&()).expect("has uid");
    assert_eq!(owner.kind, "ExternalSecret");
    assert_eq!(owner.api_version, "secretbridge.io/v1");
}
