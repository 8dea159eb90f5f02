//! `/metrics` after a real sync (the GCP stand-in with Workload Identity,
//! ESO-compatible names on) carries every metric the issue names, with values that match what
//! happened: one success, two refusals by reason code, cloud calls counted
//! by provider and call, and the Ready gauge by namespace.

use crate::gcp_sync::GcpSync;
use crate::process::{ControllerProcess, eventually, http_get, sample};

#[tokio::test]
async fn metrics_after_a_gcp_sync_name_every_series_with_sane_values() {
    let env = GcpSync::seed("metrics").await;
    let endpoint = env.gcp.endpoint();
    let mut controller = ControllerProcess::start(
        env.cluster.kubeconfig_path(),
        &["--leader-elect=false", "--namespace", &env.namespace, "--gcp-endpoint", &endpoint, "--eso-metrics=true"],
        &[],
    );
    env.wait_synced().await;
    let addr = controller.metrics_addr().await;
    let namespace = env.namespace.clone();
    // The gauges follow the watch cache, which sees the status writes a little later.
    let text = eventually("the Ready gauge to count the synced ExternalSecret", || {
        let namespace = namespace.clone();
        async move {
            let (code, text) = http_get(addr, "/metrics").await;
            let ready = sample(&text, "secretbridge_externalsecret_ready", &format!("namespace=\"{namespace}\",status=\"True\""));
            (code == 200 && ready == Some(1.0)).then_some(text)
        }
    })
    .await;
    assert!(sample(&text, "secretbridge_sync_total", "result=\"success\"").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "secretbridge_sync_total", "result=\"PropertyOfNonJson\"").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "secretbridge_sync_total", "result=\"TemplateParseFailed\"").is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(&text, "secretbridge_provider_api_calls_total", "provider=\"gcpsm\",call=\"AccessSecretVersion\",status=\"ok\"").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sample(&text, "secretbridge_provider_api_calls_total", "").is_some_and(|n| n >= 3.0), "token exchanges count too:\n{text}");
    assert_eq!(sample(&text, "secretbridge_externalsecret_ready", &format!("namespace=\"{namespace}\",status=\"False\"")), Some(2.0), "{text}");
    assert!(sample(&text, "secretbridge_reconcile_duration_seconds_count", "").is_some_and(|n| n >= 3.0), "{text}");
    assert_eq!(sample(&text, "secretbridge_reconcile_duration_seconds_bucket", "le=\"+Inf\""), sample(&text, "secretbridge_reconcile_duration_seconds_count", ""));
    assert_eq!(sample(&text, "secretbridge_workqueue_depth", ""), Some(0.0), "everything synced or refused:\n{text}");
    assert_eq!(sample(&text, "secretbridge_leader", ""), Some(1.0), "without leader election the replica reconciles");
    // Every series the dashboard and the alert rules query exists here, with
    // the labels they use (deploy/monitoring; see monitoring.rs).
    let store_namespace = namespace.clone();
    let text = eventually("the store Ready gauge to count the SecretStore", || {
        let store_namespace = store_namespace.clone();
        async move {
            let (_, text) = http_get(addr, "/metrics").await;
            let labels = format!("kind=\"SecretStore\",namespace=\"{store_namespace}\",status=\"True\"");
            (sample(&text, "secretbridge_store_ready", &labels) == Some(1.0)).then_some(text)
        }
    })
    .await;
    let problems = crate::monitoring::check_queries(&text, &crate::monitoring::monitoring_queries());
    assert!(problems.is_empty(), "dashboard/alert queries against /metrics:\n{}\n{text}", problems.join("\n"));
    // With --eso-metrics=true, ESO's names carry the same facts.
    for (name, ready, not_ready) in [("synced", 1.0, 0.0), ("bad-property", 0.0, 1.0), ("bad-template", 0.0, 1.0)] {
        for (status, expected) in [("True", ready), ("False", not_ready)] {
            let labels = format!("name=\"{name}\",namespace=\"{namespace}\",condition=\"Ready\",status=\"{status}\"");
            assert_eq!(sample(&text, "externalsecret_status_condition", &labels), Some(expected), "{labels}\n{text}");
        }
    }
    assert_eq!(
        sample(&text, "externalsecret_provider_api_calls_count", ""),
        sample(&text, "secretbridge_provider_api_calls_total", ""),
        "the ESO counter counts the same calls"
    );
    // Bounded labels: no error text, only reason codes and names.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains(' ') || line.matches(' ').count() == 1, "label values with spaces (error text?): {line}");
    }
    eventually("/readyz to report the synced cache", || async move { (http_get(addr, "/readyz").await.0 == 200).then_some(()) }).await;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    drop(controller);
    env.finish().await;
}
