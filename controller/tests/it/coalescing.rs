//! Issue 9: 50 ExternalSecrets reading 30 unique SSM keys through one store
//! cost at most ⌈30/10⌉ = 3 GetParameters calls and one STS exchange,
//! counted by the AWS guard and by the controller's own /metrics.

use crate::support::*;
use secretbridge_shared::names::AWS_ROLE_ARN_ANNOTATION;
use secretbridge_stack::metric_value;
use serde_json::json;

const EXTERNAL_SECRETS: usize = 50;
const UNIQUE_KEYS: usize = 30;

/// The controller's backend call counter, under its current name or the one
/// issue 10 asks for (either may be exposed while the metrics are renamed);
/// `None` when neither has a matching series.
fn controller_calls(metrics: &str, provider: &str, call: &str) -> Option<f64> {
    ["secretbridge_backend_calls_total", "secretbridge_provider_api_calls_total"]
        .iter()
        .filter_map(|name| metric_value(metrics, name, &[("provider", provider), ("call", call)]))
        .reduce(f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_external_secrets_on_thirty_keys_cost_three_get_parameters_calls_and_one_exchange() {
    let stack = stack(true, false).await;
    let ns = stack.create_namespace("e2e-coalesce").await.unwrap();
    stack.create_oidc_provider().await.unwrap();
    let keys: Vec<String> = (0..UNIQUE_KEYS).map(|i| format!("/{ns}/k{i:02}")).collect();
    let pattern = format!("arn:aws:ssm:{}:{}:parameter/{ns}/*", stack.aws_region(), secretbridge_stack::AWS_ACCOUNT);
    let role = stack.create_irsa_role(&ns, &ns, "app", &[&pattern], &[]).await.unwrap();
    stack.create_service_account(&ns, "app", &[(AWS_ROLE_ARN_ANNOTATION, &role)]).await.unwrap();
    for (i, key) in keys.iter().enumerate() {
        stack.put_parameter(key, &format!("value-{i}")).await.unwrap();
    }
    stack
        .apply_value(
            &json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "ssm", "namespace": ns},
                "spec": {"provider": {"aws": {"service": "ParameterStore", "region": stack.aws_region(),
                    "auth": {"jwt": {"serviceAccountRef": {"name": "app"}}}}}}}),
            None,
        )
        .await
        .unwrap();
    // ExternalSecret i reads keys i and i+7 (mod 30): together every key, most of them twice.
    let pairs: Vec<(usize, usize)> = (0..EXTERNAL_SECRETS).map(|i| (i % UNIQUE_KEYS, (i + 7) % UNIQUE_KEYS)).collect();
    for (i, (a, b)) in pairs.iter().enumerate() {
        stack
            .apply_value(
                &json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
                    "metadata": {"name": format!("es-{i:02}"), "namespace": ns},
                    "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "ssm", "kind": "SecretStore"},
                        "target": {"name": format!("es-{i:02}")},
                        "data": [{"secretKey": "a", "remoteRef": {"key": keys[*a]}},
                                 {"secretKey": "b", "remoteRef": {"key": keys[*b]}}]}}),
                None,
            )
            .await
            .unwrap();
    }
    // Everything exists before the controller starts, so its first list hands
    // it all 50 at once; concurrency 50 lets them all reconcile together.
    let guard = stack.guard().unwrap();
    guard.reset_stats();
    let controller = stack
        .start_controller(controller_options().with_args(["--concurrency", "50"]))
        .await
        .unwrap();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let (va, vb) = (format!("value-{a}"), format!("value-{b}"));
        stack
            .wait_secret_data(&ns, &format!("es-{i:02}"), &[("a", &va), ("b", &vb)], SYNC_TIMEOUT)
            .await
            .or_logs(&controller, "every ExternalSecret syncs");
    }
    let stats = guard.stats();
    let data_calls = stats.calls("GetParameters") + stats.calls("GetParameter");
    let limit = UNIQUE_KEYS.div_ceil(10) as u64;
    assert!(data_calls <= limit, "at most {limit} SSM data calls for {UNIQUE_KEYS} keys, the guard saw {data_calls}: {stats:?}");
    assert_eq!(stats.calls("AssumeRoleWithWebIdentity"), 1, "one STS exchange for the one role: {stats:?}");

    let metrics = controller.metrics_text().await.unwrap();
    let own_data_calls = controller_calls(&metrics, "ssm", "GetParameters");
    let own_exchanges = controller_calls(&metrics, "sts", "AssumeRoleWithWebIdentity");
    assert_eq!(own_data_calls, Some(data_calls as f64), "the controller counts the same data calls as the guard:\n{metrics}");
    assert_eq!(own_exchanges, Some(1.0), "the controller counts one exchange:\n{metrics}");
}
