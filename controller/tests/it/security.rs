//! No secret value leaks into what operators read: the controller's logs,
//! Kubernetes Events and ExternalSecret and store status, after a full run
//! on the stack (`secretbridge-stack`: AWS via the guard and moto, GCP). The scan looks for each
//! value as written and base64-encoded (how Secret data travels), and is
//! shown to find a marker that must appear, so it can fail.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Every `(source, needle)` where a secret value (or its base64 form) occurs.
pub fn find_leaks(sources: &[(&str, &str)], secrets: &[&str]) -> Vec<String> {
    let mut leaks = Vec::new();
    for secret in secrets {
        let encoded = STANDARD.encode(secret.as_bytes());
        for (name, text) in sources {
            for needle in [secret.to_string(), encoded.clone()] {
                if text.contains(needle.as_str()) {
                    leaks.push(format!("{name} contains {needle:?}"));
                }
            }
        }
    }
    leaks
}

#[test]
fn the_leak_scan_finds_raw_and_base64_values() {
    let sources = [("logs", "synced key password=hunter2-marker"), ("events", "data cGxhaW4tc2VjcmV0 written")];
    let leaks = find_leaks(&sources, &["hunter2-marker", "plain-secret", "absent-value"]);
    assert_eq!(leaks.len(), 2, "{leaks:?}");
    assert!(leaks[0].starts_with("logs"), "{leaks:?}");
    assert!(leaks[1].starts_with("events"), "{leaks:?}");
}

/// A full end-to-end run on the stack: IRSA syncs from SSM and Secrets
/// Manager (moto behind the AWS guard) and a Workload Identity sync from the
/// GCP stand-in, plus two failing ExternalSecrets (a property of a non-JSON
/// value that holds a secret, and a template error), with debug logs: no
/// secret value appears in the logs, the Events or any status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_aws_and_gcp_sync_leaks_no_secret_value_into_logs_events_or_status() {
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::ListParams;
    use secretbridge_shared::{ExternalSecret, SecretStore};
    use secretbridge_stack::{ControllerOptions, Stack, StackOptions};
    use std::time::Duration;
    const PATIENCE: Duration = Duration::from_secs(90);

    let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let namespace = stack.create_namespace("scan").await.expect("namespace");
    let ssm_value = format!("aws-ssm-{}", rand::random::<u64>());
    let sm_value = format!("aws-sm-{}", rand::random::<u64>());
    let gcp_value = format!("gcp-{}", rand::random::<u64>());
    let hidden_value = format!("gcp-hidden-{}", rand::random::<u64>());
    stack.create_oidc_provider().await.expect("OIDC provider");
    stack.put_parameter("/scan/db/password", &ssm_value).await.expect("parameter");
    stack.put_secret("scan/api-token", &sm_value).await.expect("AWS secret");
    let role = stack
        .create_irsa_role("scan-reader", &namespace, "app", &["/scan/db/password"], &["scan/api-token"])
        .await
        .expect("IRSA role");
    stack.seed_secret("db-password", &[gcp_value.as_bytes()]).expect("GCP secret");
    stack.seed_secret("db-config", &[format!("password={hidden_value}").as_bytes()]).expect("GCP secret");
    let gsa = stack.create_gsa("scan-syncer").expect("GSA");
    stack.grant_workload_identity_user(&gsa, &namespace, "app").expect("workloadIdentityUser");
    for secret in ["db-password", "db-config"] {
        stack.grant_secret_accessor(secret, &format!("serviceAccount:{gsa}")).expect("secretAccessor");
    }
    stack
        .create_service_account(&namespace, "app", &[("eks.amazonaws.com/role-arn", role.as_str()), ("iam.gke.io/gcp-service-account", gsa.as_str())])
        .await
        .expect("ServiceAccount");
    let region = stack.aws_region().to_string();
    let project = stack.gcp_project().to_string();
    let es = |name: &str, store: &str, data: &str| {
        format!("apiVersion: secretbridge.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}}}\nspec:\n  secretStoreRef: {{name: {store}, kind: SecretStore}}\n  target: {{name: {name}}}\n  data: {data}\n")
    };
    let manifests = [
        format!("apiVersion: secretbridge.io/v1\nkind: SecretStore\nmetadata: {{name: ssm}}\nspec: {{provider: {{aws: {{service: ParameterStore, region: {region}, auth: {{jwt: {{serviceAccountRef: {{name: app}}}}}}}}}}}}\n"),
        format!("apiVersion: secretbridge.io/v1\nkind: SecretStore\nmetadata: {{name: sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: {region}, auth: {{jwt: {{serviceAccountRef: {{name: app}}}}}}}}}}}}\n"),
        format!("apiVersion: secretbridge.io/v1\nkind: SecretStore\nmetadata: {{name: gcp}}\nspec: {{provider: {{gcpsm: {{projectID: {project}, auth: {{workloadIdentity: {{clusterLocation: europe-west1, clusterName: scan, serviceAccountRef: {{name: app}}}}}}}}}}}}\n"),
        es("aws-ssm", "ssm", "[{secretKey: password, remoteRef: {key: /scan/db/password}}]"),
        es("aws-sm", "sm", "[{secretKey: token, remoteRef: {key: scan/api-token}}]"),
        es("gcp", "gcp", "[{secretKey: password, remoteRef: {key: db-password}}]"),
        es("bad-property", "gcp", "[{secretKey: password, remoteRef: {key: db-config, property: password}}]"),
        es("bad-template", "gcp", "[{secretKey: password, remoteRef: {key: db-password}}]")
            .replace("  target: {name: bad-template}", "  target: {name: bad-template, template: {data: {url: '{{ .password | sha256sum }}'}}}"),
    ];
    stack.apply_yaml_in(&namespace, &manifests.join("---\n")).await.expect("stores and ExternalSecrets apply");
    let controller = stack
        .start_controller(
            ControllerOptions::new(env!("CARGO_BIN_EXE_secretbridge-controller"))
                .with_args(["--leader-elect=false", "--log-level=debug", "--namespace", namespace.as_str()]),
        )
        .await
        .expect("the controller starts");
    for (name, key, value) in [("aws-ssm", "password", &ssm_value), ("aws-sm", "token", &sm_value), ("gcp", "password", &gcp_value)] {
        stack.wait_secret_data(&namespace, name, &[(key, value.as_str())], PATIENCE).await.expect("synced");
    }
    for name in ["bad-property", "bad-template"] {
        stack.wait_not_ready(&namespace, name, "SecretSyncedError", PATIENCE).await.expect("refused");
    }

    let client = stack.client();
    let events = Api::<Event>::namespaced(client.clone(), &namespace).list(&ListParams::default()).await.expect("events");
    let events = serde_json::to_string(&events.items).unwrap_or_default();
    let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), &namespace).list(&ListParams::default()).await.expect("ExternalSecrets");
    let stores = Api::<SecretStore>::namespaced(client, &namespace).list(&ListParams::default()).await.expect("stores");
    let statuses = serde_json::json!({
        "externalSecrets": external_secrets.items.iter().map(|e| &e.status).collect::<Vec<_>>(),
        "stores": stores.items.iter().map(|s| &s.status).collect::<Vec<_>>(),
    })
    .to_string();
    let logs = controller.logs();
    let sources = [("logs", logs.as_str()), ("events", events.as_str()), ("status", statuses.as_str())];
    let leaks = find_leaks(&sources, &[&ssm_value, &sm_value, &gcp_value, &hidden_value]);
    assert!(leaks.is_empty(), "secret values leaked: {leaks:?}");
    // The scan read real content: the failing ExternalSecrets' status and
    // events name the remote key, the logs name the objects.
    assert_eq!(find_leaks(&sources[1..], &["db-config"]).len(), 2, "status and events name the remote key:\n{statuses}\n{events}");
    assert!(logs.contains("bad-template") && logs.contains("aws-ssm") && logs.contains(namespace.as_str()), "logs name the objects");
}
