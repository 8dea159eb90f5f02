//! A GCP store without an auth block reads with Application Default
//! Credentials: the metadata server's token for the controller's own
//! identity (the GCP stand-in's metadata server, reached through
//! `GCE_METADATA_HOST`, acting as the service account attached to it). What
//! that account was granted syncs; the rest is refused with GCP's permission
//! error in the ExternalSecret's status. Only a ClusterSecretStore may
//! borrow the controller's identity by default: a namespaced SecretStore
//! without auth is refused, naming the flag that allows it.

use crate::process::eventually;
use crate::support::*;
use kube::Api;
use secretbridge_shared::{ClusterSecretStore, ConditionStatus};
use secretbridge_stack::{metric_value, ready_condition};

const GRANTED: &str = "adc-granted";
const UNGRANTED: &str = "adc-ungranted";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_store_without_auth_reads_as_the_metadata_servers_service_account() {
    let stack = stack(false, true).await;
    let gcp = stack.gcp().unwrap();
    let gsa = stack.create_gsa("node-default").unwrap();
    gcp.set_metadata_service_account(Some(&gsa));
    stack.seed_secret(GRANTED, &[b"from-the-metadata-server"]).unwrap();
    stack.seed_secret(UNGRANTED, &[b"not-for-this-node"]).unwrap();
    stack.grant_secret_accessor(GRANTED, &format!("serviceAccount:{gsa}")).unwrap();
    let namespace = stack.create_namespace("e2e-adc").await.unwrap();

    // HOST:PORT, as on GKE; it wins over --gcp-endpoint (the same stand-in here).
    let options = controller_options().with_env("GCE_METADATA_HOST", gcp.addr().to_string());
    let controller = stack.start_controller(options).await.unwrap_or_else(|e| panic!("starting the controller failed: {e}"));
    let project = stack.gcp_project();
    let cluster_store = format!("gcp-adc-{namespace}");
    stack
        .apply_value(
            &serde_json::json!({"apiVersion": "secretbridge.io/v1", "kind": "ClusterSecretStore", "metadata": {"name": cluster_store},
                "spec": {"provider": {"gcpsm": {"projectID": project}}, "conditions": [{"namespaces": [namespace]}]}}),
            None,
        )
        .await
        .unwrap();
    stack
        .apply_yaml_in(
            &namespace,
            &format!(
                r#"
apiVersion: secretbridge.io/v1
kind: SecretStore
metadata: {{name: gcp-adc}}
spec: {{provider: {{gcpsm: {{projectID: {project}}}}}}}
---
apiVersion: secretbridge.io/v1
kind: ExternalSecret
metadata: {{name: namespaced}}
spec:
  secretStoreRef: {{name: gcp-adc, kind: SecretStore}}
  target: {{name: namespaced}}
  data: [{{secretKey: value, remoteRef: {{key: {GRANTED}}}}}]
---
apiVersion: secretbridge.io/v1
kind: ExternalSecret
metadata: {{name: granted}}
spec:
  secretStoreRef: {{name: {cluster_store}, kind: ClusterSecretStore}}
  target: {{name: granted}}
  data: [{{secretKey: value, remoteRef: {{key: {GRANTED}}}}}]
---
apiVersion: secretbridge.io/v1
kind: ExternalSecret
metadata: {{name: ungranted}}
spec:
  secretStoreRef: {{name: {cluster_store}, kind: ClusterSecretStore}}
  target: {{name: ungranted}}
  data: [{{secretKey: value, remoteRef: {{key: {UNGRANTED}}}}}]
"#
            ),
        )
        .await
        .unwrap();

    // The namespaced store may not act as the controller: refused, naming the way out.
    let blocked = stack
        .wait_external_secret(&namespace, "namespaced", SYNC_TIMEOUT, "Ready=False: a SecretStore may not use the controller's identity", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await
        .or_logs(&controller, "the namespaced store is refused");
    let message = ready_condition(&blocked).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("--secret-stores-may-use-controller-identity") && message.contains("ClusterSecretStore"), "{message}");
    assert!(stack.get_secret(&namespace, "namespaced").await.unwrap().is_none(), "nothing read for the refused store");

    stack.wait_ready(&namespace, "granted", SYNC_TIMEOUT).await.or_logs(&controller, "the granted secret syncs");
    stack
        .wait_secret_data(&namespace, "granted", &[("value", "from-the-metadata-server")], SYNC_TIMEOUT)
        .await
        .or_logs(&controller, "the Secret holds the granted value");
    let refused = stack
        .wait_external_secret(&namespace, "ungranted", SYNC_TIMEOUT, "Ready=False with GCP's permission error", |es| {
            ready_condition(es).is_some_and(|c| {
                c.status == ConditionStatus::False && c.message.as_deref().unwrap_or_default().contains("PERMISSION_DENIED")
            })
        })
        .await
        .or_logs(&controller, "the ungranted secret is refused");
    let message = ready_condition(&refused).and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains(UNGRANTED), "the refusal names the secret: {message}");
    assert!(stack.get_secret(&namespace, "ungranted").await.unwrap().is_none(), "no Secret for the refused one");

    let stores: Api<ClusterSecretStore> = Api::all(stack.client());
    let store_message = eventually("the store to be Ready with metadata-server credentials", || {
        let (stores, name) = (stores.clone(), cluster_store.clone());
        async move {
            let ready = stores.get(&name).await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            (ready.status == ConditionStatus::True).then(|| ready.message.unwrap_or_default())
        }
    })
    .await;
    assert!(store_message.contains("credentials were obtained"), "{store_message}");
    assert_eq!(gcp.call_count("MetadataToken"), 1, "one token for the store, cached: {:?}", gcp.call_counts());
    assert_eq!(gcp.call_count("GenerateAccessToken") + gcp.call_count("IdentityBindingToken"), 0, "no Workload Identity exchange");
    let metrics = controller.metrics_text().await.unwrap();
    let fetched = metric_value(&metrics, "secretbridge_provider_api_calls_total", &[("provider", "gcp-metadata"), ("call", "Token"), ("status", "ok")]);
    assert_eq!(fetched, Some(1.0), "{metrics}");
}
