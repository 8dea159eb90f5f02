//! Issue 10's faults, with nothing lost: a cloud outage, throttling, an API
//! server restart and a controller crash mid-sync.

use crate::support::*;
use secretbridge_shared::ConditionStatus;
use secretbridge_shared::names::{AWS_ROLE_ARN_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION, MANAGED_LABEL};
use secretbridge_stack::{Stack, ready_condition, secret_strings};
use serde_json::json;
use std::time::Duration;

/// A namespace with an SSM SecretStore `ssm` whose role may read `/NS/*`.
async fn ssm_namespace(stack: &Stack, prefix: &str) -> String {
    ssm_namespace_with(stack, prefix, &serde_json::Value::Null).await
}

/// [`ssm_namespace`] with the store's `retrySettings` (none when null).
async fn ssm_namespace_with(stack: &Stack, prefix: &str, retry_settings: &serde_json::Value) -> String {
    let ns = stack.create_namespace(prefix).await.unwrap();
    ssm_store(stack, &ns, retry_settings).await;
    ns
}

/// The SecretStore `ssm` in `ns`, with its IRSA role and ServiceAccount.
async fn ssm_store(stack: &Stack, ns: &str, retry_settings: &serde_json::Value) {
    stack.create_oidc_provider().await.unwrap();
    let pattern = format!("arn:aws:ssm:{}:{}:parameter/{ns}/*", stack.aws_region(), secretbridge_stack::AWS_ACCOUNT);
    let role = stack.create_irsa_role(ns, ns, "app", &[&pattern], &[]).await.unwrap();
    stack.create_service_account(ns, "app", &[(AWS_ROLE_ARN_ANNOTATION, &role)]).await.unwrap();
    let mut store = json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "ssm", "namespace": ns},
        "spec": {"provider": {"aws": {"service": "ParameterStore", "region": stack.aws_region(),
            "auth": {"jwt": {"serviceAccountRef": {"name": "app"}}}}}}});
    if !retry_settings.is_null() {
        store["spec"]["retrySettings"] = retry_settings.clone();
    }
    stack.apply_value(&store, None).await.unwrap();
}

/// A namespace with a GCP SecretStore `gcp` (Workload Identity as GSA `sb-NS`).
async fn gcp_namespace(stack: &Stack, prefix: &str) -> (String, String) {
    gcp_namespace_with(stack, prefix, &serde_json::Value::Null).await
}

/// [`gcp_namespace`] with the store's `retrySettings` (none when null).
async fn gcp_namespace_with(stack: &Stack, prefix: &str, retry_settings: &serde_json::Value) -> (String, String) {
    let ns = stack.create_namespace(prefix).await.unwrap();
    let gsa = stack.create_gsa(&format!("sb-{ns}")).unwrap();
    stack.grant_workload_identity_user(&gsa, &ns, "app").unwrap();
    stack.create_service_account(&ns, "app", &[(GCP_SERVICE_ACCOUNT_ANNOTATION, &gsa)]).await.unwrap();
    let mut store = json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "gcp", "namespace": ns},
        "spec": {"provider": {"gcpsm": {"projectID": stack.gcp_project(), "auth": {"workloadIdentity": {
            "clusterLocation": "europe-west1", "clusterName": "e2e", "serviceAccountRef": {"name": "app"}}}}}}});
    if !retry_settings.is_null() {
        store["spec"]["retrySettings"] = retry_settings.clone();
    }
    stack.apply_value(&store, None).await.unwrap();
    (ns, gsa)
}

/// Secret `NS-db` holding `g1`, readable by GSA `gsa`; returns its id.
fn granted_gcp_key(stack: &Stack, ns: &str, gsa: &str) -> String {
    let key = format!("{ns}-db");
    stack.seed_secret(&key, &[b"g1"]).unwrap();
    stack.grant_secret_accessor(&key, &format!("serviceAccount:{gsa}")).unwrap();
    key
}

/// Waits until SecretStore `ns/name` has a `Ready` condition for which `done` holds.
async fn wait_store(stack: &Stack, ns: &str, name: &str, what: &str, done: impl Fn(&secretbridge_shared::Condition) -> bool) -> secretbridge_shared::Condition {
    let api: kube::Api<secretbridge_shared::SecretStore> = kube::Api::namespaced(stack.client(), ns);
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    loop {
        let store = api.get_opt(name).await.unwrap();
        let ready = store
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready").cloned());
        match ready {
            Some(condition) if done(&condition) => return condition,
            _ if tokio::time::Instant::now() > deadline => panic!("SecretStore {ns}/{name}: {what} within {SYNC_TIMEOUT:?}; last Ready: {ready:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn is_ready(condition: &secretbridge_shared::Condition) -> bool {
    condition.status == ConditionStatus::True
}

/// An ExternalSecret `name` -> Secret `name` with `data` pairs (secretKey, remote key).
async fn external_secret(stack: &Stack, ns: &str, name: &str, store: &str, refresh: &str, data: &[(&str, &str)]) {
    let data: Vec<_> = data.iter().map(|(k, key)| json!({"secretKey": k, "remoteRef": {"key": key}})).collect();
    stack
        .apply_value(
            &json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret", "metadata": {"name": name, "namespace": ns},
                "spec": {"refreshInterval": refresh, "secretStoreRef": {"name": store, "kind": "SecretStore"},
                    "target": {"name": name}, "data": data}}),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_outage_keeps_secrets_backs_off_and_recovers_by_itself() {
    let stack = stack(true, true).await;
    let controller = controller(&stack).await;
    let ns = ssm_namespace(&stack, "fault-outage-aws").await;
    let (gns, gsa) = gcp_namespace(&stack, "fault-outage-gcp").await;
    let key = format!("/{ns}/db");
    stack.put_parameter(&key, "v1").await.unwrap();
    let gkey = granted_gcp_key(&stack, &gns, &gsa);
    external_secret(&stack, &ns, "db", "ssm", "1s", &[("v", &key)]).await;
    external_secret(&stack, &gns, "db", "gcp", "1s", &[("v", &gkey)]).await;
    let before = stack.wait_secret_data(&ns, "db", &[("v", "v1")], SYNC_TIMEOUT).await.or_logs(&controller, "AWS sync");
    let gbefore = stack.wait_secret_data(&gns, "db", &[("v", "g1")], SYNC_TIMEOUT).await.or_logs(&controller, "GCP sync");

    // AWS goes down (every call answers 503); GCP fails every read too. The
    // GCP client retries twice within a sync, so far more failures than
    // three tries are injected: the retries cannot absorb them, a sync fails.
    let guard = stack.guard().unwrap();
    guard.set_unavailable(true);
    let gcp = stack.gcp().unwrap();
    gcp.inject_fault(Some("AccessSecretVersion"), secretbridge_stack::gcp_standin::FaultCode::Unavailable, 1000);
    let gcp_failed = stack
        .wait_external_secret(&gns, "db", SYNC_TIMEOUT, "Ready=False during the GCP outage", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await
        .or_logs(&controller, "the GCP outage shows in status");
    let gcp_message = ready_condition(&gcp_failed).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(gcp_message.contains(&gkey), "the GCP condition names the secret: {gcp_message}");
    let failed = stack
        .wait_external_secret(&ns, "db", SYNC_TIMEOUT, "Ready=False during the outage", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await
        .or_logs(&controller, "the outage shows in status");
    let message = ready_condition(&failed).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains(&key), "the condition names the key: {message}");
    let unavailable_at_failure = guard.stats().unavailable;
    // Watch the outage for a while: with a 1s refresh and no backoff the
    // controller would call every second; backoff (5s, 10s, ...) keeps it to a few.
    let watch = Duration::from_secs(8);
    let started = tokio::time::Instant::now();
    while started.elapsed() < watch {
        let secret = stack.get_secret(&ns, "db").await.unwrap().expect("the Secret stays during the outage");
        assert_eq!(secret_strings(&secret), secret_strings(&before), "the Secret's data is untouched during the outage");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let attempts = guard.stats().unavailable - unavailable_at_failure;
    // Each attempt is at most 3 SDK tries; without backoff 8s of 1s refreshes would be ~24.
    assert!(attempts <= 12, "retries back off during the outage: {attempts} refused calls in {watch:?}");
    let secret = stack.get_secret(&gns, "db").await.unwrap().expect("the GCP Secret stays");
    assert_eq!(secret_strings(&secret), secret_strings(&gbefore), "the GCP Secret is untouched");

    // The backends return, with new values: the controller recovers by itself.
    stack.put_parameter(&key, "v2").await.unwrap();
    stack.add_secret_version(&gkey, b"g2").await.unwrap();
    guard.set_unavailable(false);
    assert!(gcp.pending_faults() > 0, "the GCP outage lasted until now");
    gcp.clear_faults();
    stack.wait_secret_data(&ns, "db", &[("v", "v2")], Duration::from_secs(120)).await.or_logs(&controller, "AWS recovery");
    stack.wait_ready(&ns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "AWS Ready again");
    stack.wait_secret_data(&gns, "db", &[("v", "g2")], Duration::from_secs(120)).await.or_logs(&controller, "GCP recovery");
    stack.wait_ready(&gns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "GCP Ready again");
}

/// An ExternalSecret applied before its store (as a `kubectl apply -f dir/`
/// may order them). A missing store is a permanent error: nothing retries it
/// before the 1h refresh, so the sync that follows the store's creation
/// proves the store watch re-reconciles the ExternalSecrets that use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_created_after_its_external_secret_syncs_it_at_once() {
    let stack = stack(true, false).await;
    let controller = controller(&stack).await;
    let ns = stack.create_namespace("late-store").await.unwrap();
    let key = format!("/{ns}/db");
    stack.put_parameter(&key, "v1").await.unwrap();
    external_secret(&stack, &ns, "db", "ssm", "1h", &[("v", &key)]).await;
    let failed = stack
        .wait_external_secret(&ns, "db", SYNC_TIMEOUT, "Ready=False for the missing store", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await
        .or_logs(&controller, "the missing store shows in status");
    let condition = ready_condition(&failed).cloned().expect("a Ready condition");
    assert!(condition.message.as_deref().unwrap_or_default().contains("ssm"), "the condition names the store: {condition:?}");

    ssm_store(&stack, &ns, &serde_json::Value::Null).await;
    stack.wait_secret_data(&ns, "db", &[("v", "v1")], SYNC_TIMEOUT).await.or_logs(&controller, "sync after the store appeared");
    stack.wait_ready(&ns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "Ready after the store appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_and_recovers() {
    let stack = stack(true, true).await;
    let controller = controller(&stack).await;
    let ns = ssm_namespace(&stack, "fault-throttle-aws").await;
    let (gns, gsa) = gcp_namespace(&stack, "fault-throttle-gcp").await;
    let key = format!("/{ns}/db");
    stack.put_parameter(&key, "v1").await.unwrap();
    let gkey = granted_gcp_key(&stack, &gns, &gsa);
    // Throttle before the first sync: the first data calls are refused.
    let guard = stack.guard().unwrap();
    let throttles = 6;
    guard.inject_throttling(throttles);
    stack.gcp().unwrap().inject_fault(Some("AccessSecretVersion"), secretbridge_stack::gcp_standin::FaultCode::ResourceExhausted, 4);
    external_secret(&stack, &ns, "db", "ssm", "1h", &[("v", &key)]).await;
    external_secret(&stack, &gns, "db", "gcp", "1h", &[("v", &gkey)]).await;
    stack.wait_secret_data(&ns, "db", &[("v", "v1")], Duration::from_secs(120)).await.or_logs(&controller, "AWS sync after throttling");
    stack.wait_ready(&ns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "AWS Ready");
    stack.wait_secret_data(&gns, "db", &[("v", "g1")], Duration::from_secs(120)).await.or_logs(&controller, "GCP sync after throttling");
    stack.wait_ready(&gns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "GCP Ready");
    let stats = guard.stats();
    assert_eq!(stats.throttled, throttles, "every injected throttle was hit before success: {stats:?}");
    let gcp = stack.gcp().unwrap();
    assert_eq!(gcp.pending_faults(), 0, "every injected GCP throttle was served before success");
    assert!(gcp.call_count("AccessSecretVersion") > 4, "four throttled reads and one that succeeded: {:?}", gcp.call_counts());
    let metrics = controller.metrics_text().await.unwrap();
    for provider in ["ssm", "gcpsm"] {
        let throttled = secretbridge_stack::metric_value(&metrics, "secretbridge_provider_api_calls_total", &[("provider", provider), ("status", "Throttled")]);
        assert!(throttled.is_some_and(|n| n >= 1.0), "{provider}: the controller counts throttled calls:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_drops_watches_and_the_controller_picks_up_changes() {
    let mut stack = stack(true, false).await;
    let controller = controller(&stack).await;
    let ns = ssm_namespace(&stack, "fault-apiserver").await;
    let key = format!("/{ns}/db");
    let extra = format!("/{ns}/extra");
    stack.put_parameter(&key, "v1").await.unwrap();
    stack.put_parameter(&extra, "x1").await.unwrap();
    external_secret(&stack, &ns, "db", "ssm", "1h", &[("v", &key)]).await;
    stack.wait_secret_data(&ns, "db", &[("v", "v1")], SYNC_TIMEOUT).await.or_logs(&controller, "first sync");

    // The API server goes away, cutting every watch; the remote value changes meanwhile.
    let standin = stack.cluster_mut().standin_mut().expect("a stand-in, not a real cluster");
    let watches_before_stop = standin.watches_started();
    assert!(watches_before_stop > 0, "the controller watches before the restart");
    standin.stop();
    stack.put_parameter(&key, "v2").await.unwrap();
    stack.cluster_mut().standin_mut().expect("stand-in").restart().await.unwrap();
    // The controller noticed the broken watches: it opens new ones.
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    while stack.cluster_mut().standin_mut().expect("stand-in").watches_started() == watches_before_stop {
        assert!(tokio::time::Instant::now() < deadline, "the controller re-watches within {SYNC_TIMEOUT:?}\n{}", controller.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Changes after the restart arrive through re-established watches: a
    // spec change (new key) and a new ExternalSecret.
    external_secret(&stack, &ns, "db", "ssm", "1h", &[("v", &key), ("extra", &extra)]).await;
    external_secret(&stack, &ns, "late", "ssm", "1h", &[("v", &extra)]).await;
    stack
        .wait_secret_data(&ns, "db", &[("v", "v2"), ("extra", "x1")], Duration::from_secs(120))
        .await
        .or_logs(&controller, "the spec change after the restart is picked up");
    stack
        .wait_secret_data(&ns, "late", &[("v", "x1")], Duration::from_secs(120))
        .await
        .or_logs(&controller, "an ExternalSecret created after the restart syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_sync_converges_without_blank_or_duplicate_secrets() {
    const COUNT: usize = 30;
    let stack = stack(true, false).await;
    let ns = ssm_namespace(&stack, "fault-crash").await;
    for i in 0..COUNT {
        stack.put_parameter(&format!("/{ns}/k{i}"), &format!("value-{i}")).await.unwrap();
    }
    let mut first = controller(&stack).await;
    for i in 0..COUNT {
        external_secret(&stack, &ns, &format!("es-{i:02}"), "ssm", "1h", &[("v", &format!("/{ns}/k{i}"))]).await;
    }
    // Kill it once some Secrets are written; the fault is only the one this
    // test names if some, but not all, existed when it died.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(stack.client(), &ns);
    let managed = kube::api::ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
    let deadline = tokio::time::Instant::now() + SYNC_TIMEOUT;
    while secrets.list(&managed).await.unwrap().items.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no Secret written within {SYNC_TIMEOUT:?}\n{}", first.log_tail());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    assert!(!first.is_running(), "SIGKILL stopped the controller");
    // The controller is dead: what exists now is what existed at the kill.
    let written_at_kill = secrets.list(&managed).await.unwrap().items.len();
    assert!(
        (1..COUNT).contains(&written_at_kill),
        "the kill landed mid-sync: {written_at_kill} of {COUNT} Secrets existed when the controller died"
    );

    let second = controller(&stack).await;
    for i in 0..COUNT {
        let name = format!("es-{i:02}");
        stack
            .wait_secret_data(&ns, &name, &[("v", &format!("value-{i}"))], SYNC_TIMEOUT)
            .await
            .or_logs(&second, "the restarted controller converges");
        stack.wait_ready(&ns, &name, SYNC_TIMEOUT).await.or_logs(&second, "Ready after the restart");
    }
    let all = secrets.list(&Default::default()).await.unwrap().items;
    let managed: Vec<_> = all
        .iter()
        .filter(|s| s.metadata.labels.as_ref().is_some_and(|l| l.contains_key(MANAGED_LABEL)))
        .collect();
    assert_eq!(managed.len(), COUNT, "one Secret per ExternalSecret, no duplicates");
    for secret in managed {
        let data = secret_strings(secret);
        assert!(data.len() == 1 && data.values().all(|v| v.starts_with("value-")), "no blank Secret: {data:?}");
    }
}

/// Issue 10: a store's `retrySettings` decide how many throttled calls one
/// sync survives. Counts calls at the guard and the GCP stand-in: with
/// `maxRetries: N`, N throttles are absorbed by one sync (N+1 calls, no
/// failed reconcile); with `maxRetries: 0` the first throttle fails the sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_settings_decide_how_many_throttles_one_sync_survives() {
    // More than the SDK's default two retries, so the default would fail the first sync.
    const RETRIES: u32 = 4;
    // Enough that retries would still be failing when Ready=False is seen.
    const MANY: u32 = 10;
    let retrying = json!({"maxRetries": RETRIES, "retryInterval": "10ms"});
    let no_retries = json!({"maxRetries": 0, "retryInterval": "10ms"});
    let stack = stack(true, true).await;
    let controller = controller(&stack).await;
    let guard = stack.guard().unwrap();
    let gcp = stack.gcp().unwrap();
    let throttled_syncs = |metrics: &str| secretbridge_stack::metric_value(metrics, "secretbridge_sync_total", &[("result", "Throttled")]);

    // AWS, maxRetries 4: four throttles, one sync. The store is Ready first,
    // so its status write does not trigger a second sync.
    let ns = ssm_namespace_with(&stack, "retry-aws", &retrying).await;
    let key = format!("/{ns}/db");
    stack.put_parameter(&key, "v1").await.unwrap();
    wait_store(&stack, &ns, "ssm", "Ready=True", is_ready).await;
    let before = guard.stats();
    guard.inject_throttling(u64::from(RETRIES));
    external_secret(&stack, &ns, "db", "ssm", "1h", &[("v", &key)]).await;
    stack.wait_secret_data(&ns, "db", &[("v", "v1")], SYNC_TIMEOUT).await.or_logs(&controller, "AWS sync through the throttles");
    stack.wait_ready(&ns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "AWS Ready");
    let after = guard.stats();
    assert_eq!(after.throttled - before.throttled, u64::from(RETRIES), "every injected throttle was hit: {after:?}");
    // At least the four throttled tries and the one that succeeded; a later
    // sync (e.g. after a status write) may add calls, so this is a bound.
    assert!(after.calls("GetParameters") - before.calls("GetParameters") > u64::from(RETRIES), "four throttled tries and the one that succeeded: {after:?}");

    // GCP, maxRetries 4: the same through the REST client's retry loop.
    let (gns, gsa) = gcp_namespace_with(&stack, "retry-gcp", &retrying).await;
    let gkey = granted_gcp_key(&stack, &gns, &gsa);
    wait_store(&stack, &gns, "gcp", "Ready=True", is_ready).await;
    let gcp_before = gcp.call_count("AccessSecretVersion");
    gcp.inject_fault(Some("AccessSecretVersion"), secretbridge_stack::gcp_standin::FaultCode::ResourceExhausted, RETRIES);
    external_secret(&stack, &gns, "db", "gcp", "1h", &[("v", &gkey)]).await;
    stack.wait_secret_data(&gns, "db", &[("v", "g1")], SYNC_TIMEOUT).await.or_logs(&controller, "GCP sync through the throttles");
    stack.wait_ready(&gns, "db", SYNC_TIMEOUT).await.or_logs(&controller, "GCP Ready");
    assert_eq!(gcp.pending_faults(), 0, "every injected GCP throttle was served");
    assert!(gcp.call_count("AccessSecretVersion") - gcp_before > u64::from(RETRIES), "four throttled tries and the one that succeeded");

    // Neither survived by failing a sync and waiting for the requeue.
    // A series appears on its first increment, so "none failed" is: the
    // metric exists (the successful syncs are counted under this name and
    // label) and its Throttled series is absent or 0.
    let metrics = controller.metrics_text().await.unwrap();
    let successes = secretbridge_stack::metric_value(&metrics, "secretbridge_sync_total", &[("result", "success")]);
    assert!(successes.is_some_and(|n| n >= 2.0), "the sync counter exists and counts both syncs:\n{metrics}");
    assert_eq!(throttled_syncs(&metrics).unwrap_or(0.0), 0.0, "no sync failed on throttling:\n{metrics}");
    for provider in ["ssm", "gcpsm"] {
        let ok = secretbridge_stack::metric_value(&metrics, "secretbridge_provider_api_calls_total", &[("provider", provider), ("status", "ok")]);
        assert!(ok.is_some_and(|n| n >= 1.0), "{provider}: the call counter exists and counts the successful call:\n{metrics}");
        let surfaced = secretbridge_stack::metric_value(&metrics, "secretbridge_provider_api_calls_total", &[("provider", provider), ("status", "Throttled")]);
        assert_eq!(surfaced.unwrap_or(0.0), 0.0, "{provider}: the retries absorbed every throttle:\n{metrics}");
    }

    // AWS, maxRetries 0: the first throttle fails the sync. One failed sync
    // writes Ready=False, which may trigger one more (also one try); a
    // retrying client would have made three or more calls by then.
    let ns0 = ssm_namespace_with(&stack, "retry-aws-none", &no_retries).await;
    let key0 = format!("/{ns0}/db");
    stack.put_parameter(&key0, "v1").await.unwrap();
    wait_store(&stack, &ns0, "ssm", "Ready=True", is_ready).await;
    let before = guard.stats();
    guard.inject_throttling(u64::from(MANY));
    external_secret(&stack, &ns0, "db", "ssm", "1h", &[("v", &key0)]).await;
    let failed = stack.wait_not_ready(&ns0, "db", "SecretSyncedError", SYNC_TIMEOUT).await.or_logs(&controller, "AWS Ready=False on the first throttle");
    let calls = guard.stats().calls("GetParameters") - before.calls("GetParameters");
    guard.inject_throttling(0);
    let message = ready_condition(&failed).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("Throttl") && message.contains(&key0), "the condition names the throttling and the key: {message}");
    assert!((1..=2).contains(&calls), "one try per sync, no retries: {calls} calls");

    // GCP, maxRetries 0: likewise.
    let (gns0, gsa0) = gcp_namespace_with(&stack, "retry-gcp-none", &no_retries).await;
    let gkey0 = granted_gcp_key(&stack, &gns0, &gsa0);
    wait_store(&stack, &gns0, "gcp", "Ready=True", is_ready).await;
    let gcp_before = gcp.call_count("AccessSecretVersion");
    gcp.inject_fault(Some("AccessSecretVersion"), secretbridge_stack::gcp_standin::FaultCode::ResourceExhausted, MANY);
    external_secret(&stack, &gns0, "db", "gcp", "1h", &[("v", &gkey0)]).await;
    let failed = stack.wait_not_ready(&gns0, "db", "SecretSyncedError", SYNC_TIMEOUT).await.or_logs(&controller, "GCP Ready=False on the first throttle");
    let calls = gcp.call_count("AccessSecretVersion") - gcp_before;
    let message = ready_condition(&failed).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("Throttled") && message.contains(&gkey0), "the condition names the throttling and the key: {message}");
    assert!((1..=2).contains(&calls), "one try per sync, no retries: {calls} calls");

    // A retryInterval that does not parse is refused at admission by the
    // CRD's pattern, naming the field.
    let store = |name: &str, interval: &str| {
        json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": name, "namespace": ns},
            "spec": {"retrySettings": {"maxRetries": 2, "retryInterval": interval},
                "provider": {"aws": {"service": "ParameterStore", "region": stack.aws_region(),
                    "auth": {"jwt": {"serviceAccountRef": {"name": "app"}}}}}}})
    };
    let refused = stack.apply_value(&store("typo", "2 seconds"), None).await.expect_err("the pattern refuses it");
    let refusal = error_chain(&refused);
    assert!(refusal.contains("retryInterval"), "the refusal names the field: {refusal}");
    // One that parses but is past the bound: a real API server's CEL rule
    // refuses it; where no CEL runs, the controller does, naming the field.
    match stack.apply_value(&store("too-long", "8761h"), None).await {
        Ok(_) => {
            let condition = wait_store(&stack, &ns, "too-long", "Ready=False", |c| c.status == ConditionStatus::False).await;
            let message = condition.message.unwrap_or_default();
            assert_eq!(condition.reason.as_deref(), Some("InvalidProviderConfig"), "{message}");
            assert!(message.contains("spec.retrySettings.retryInterval") && message.contains("8760h"), "names the field and the bound: {message}");
        }
        Err(refused) => assert!(error_chain(&refused).contains("retryInterval"), "{}", error_chain(&refused)),
    }
}
