//! No secret value leaks into what operators read: the controller's logs,
//! Kubernetes Events and ExternalSecret status. The scan looks for each
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

mod end_to_end {
    use super::find_leaks;
    use crate::process::{ControllerProcess, eventually};
    use gcp_standin::{GcpStandin, ProjectSpec, TrustedIssuer};
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use kube::api::{ListParams, PostParams};
    use kube::{Api, Client};
    use kube_standin::testing::Cluster;
    use secretbridge_shared::names::GCP_SERVICE_ACCOUNT_ANNOTATION;
    use secretbridge_shared::{ExternalSecret, SecretStore};
    use serde_json::json;
    use std::path::Path;

    const PROJECT: &str = "scan-project";

    async fn create<K>(api: &Api<K>, value: serde_json::Value)
    where
        K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(value).expect("object parses");
        api.create(&PostParams::default(), &object).await.expect("object created");
    }

    async fn ready_message(api: &Api<ExternalSecret>, name: &str) -> Option<(String, String)> {
        let es = api.get(name).await.ok()?;
        let ready = es.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        Some((format!("{:?}", ready.status), ready.message.unwrap_or_default()))
    }

    /// A full Workload Identity sync from the GCP stand-in (TokenRequest,
    /// identity-binding exchange, generateAccessToken, AccessSecretVersion)
    /// plus two failing ExternalSecrets (a property of a non-JSON value that
    /// holds a secret, and a template error), with debug logs: no secret
    /// value appears in the logs, the Events or any status.
    #[tokio::test]
    async fn a_full_gcp_sync_leaks_no_secret_value_into_logs_events_or_status() {
        let mut cluster = Cluster::from_env_or_start().await.expect("kube stand-in starts");
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
        cluster.install_crds(&crds).await.expect("CRDs install");
        let kube = cluster.standin().expect("this test needs the stand-in's issuer");
        let gcp = GcpStandin::start(gcp_standin::Options {
            projects: vec![ProjectSpec::new(PROJECT)],
            trusted_issuers: vec![TrustedIssuer {
                issuer: kube.issuer().to_owned(),
                ca_pem: Some(kube.ca_pem().to_owned()),
                workload_pool: format!("{PROJECT}.svc.id.goog"),
                identity_provider: None,
            }],
            ..Default::default()
        })
        .await
        .expect("GCP stand-in starts");
        let namespace = cluster.create_namespace("scan").await.expect("namespace");
        let client: Client = cluster.client();

        let synced_value = format!("gcp-synced-{}", rand::random::<u64>());
        let hidden_value = format!("gcp-hidden-{}", rand::random::<u64>());
        let not_json = format!("password={hidden_value}");
        gcp.seed_secret(PROJECT, "db-password", &[synced_value.as_bytes()]).expect("seed secret");
        gcp.seed_secret(PROJECT, "db-config", &[not_json.as_bytes()]).expect("seed secret");
        let gsa = gcp.seed_service_account(PROJECT, "syncer").expect("seed GSA");
        gcp.grant(
            &format!("projects/{PROJECT}/serviceAccounts/{gsa}"),
            "roles/iam.workloadIdentityUser",
            &format!("serviceAccount:{PROJECT}.svc.id.goog[{namespace}/app]"),
        )
        .expect("grant workloadIdentityUser");
        for secret in ["db-password", "db-config"] {
            gcp.grant(&format!("projects/{PROJECT}/secrets/{secret}"), "roles/secretmanager.secretAccessor", &format!("serviceAccount:{gsa}"))
                .expect("grant secretAccessor");
        }

        create(
            &Api::<ServiceAccount>::namespaced(client.clone(), &namespace),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "app", "annotations": {GCP_SERVICE_ACCOUNT_ANNOTATION: gsa}}}),
        )
        .await;
        create(
            &Api::<SecretStore>::namespaced(client.clone(), &namespace),
            json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "gcp"},
                "spec": {"provider": {"gcpsm": {"projectID": PROJECT, "auth": {"workloadIdentity": {
                    "clusterLocation": "europe-west1", "clusterName": "scan", "serviceAccountRef": {"name": "app"}}}}}}}),
        )
        .await;
        let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), &namespace);
        let es = |name: &str, data: serde_json::Value, template: Option<serde_json::Value>| {
            let mut target = json!({"name": name});
            if let Some(template) = template {
                target["template"] = template;
            }
            json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret", "metadata": {"name": name},
                "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "gcp", "kind": "SecretStore"},
                    "target": target, "data": data}})
        };
        create(&external_secrets, es("synced", json!([{"secretKey": "password", "remoteRef": {"key": "db-password"}}]), None)).await;
        create(
            &external_secrets,
            es("bad-property", json!([{"secretKey": "password", "remoteRef": {"key": "db-config", "property": "password"}}]), None),
        )
        .await;
        create(
            &external_secrets,
            es(
                "bad-template",
                json!([{"secretKey": "password", "remoteRef": {"key": "db-password"}}]),
                Some(json!({"data": {"url": "{{ .password | sha256sum }}"}})),
            ),
        )
        .await;

        let endpoint = gcp.endpoint();
        let controller = ControllerProcess::start(
            cluster.kubeconfig_path(),
            &["--leader-elect=false", "--namespace", &namespace, "--gcp-endpoint", &endpoint, "--log-level=debug"],
            &[],
        );
        let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
        eventually("the synced Secret to hold the GCP value", || {
            let secrets = secrets.clone();
            let expected = synced_value.clone();
            async move {
                let secret = secrets.get("synced").await.ok()?;
                let value = secret.data?.get("password")?.0.clone();
                (value == expected.as_bytes()).then_some(())
            }
        })
        .await;
        for name in ["bad-property", "bad-template"] {
            let (status, message) = eventually(&format!("{name} to be refused"), || ready_message(&external_secrets, name)).await;
            assert_eq!(status, "False", "{name}: {message}");
        }

        let logs = controller.logs();
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .expect("list events");
        let events = serde_json::to_string(&events.items).unwrap_or_default();
        let statuses = external_secrets.list(&ListParams::default()).await.expect("list ExternalSecrets");
        let statuses = serde_json::to_string(&statuses.items.iter().map(|e| &e.status).collect::<Vec<_>>()).unwrap_or_default();
        let stores = Api::<SecretStore>::namespaced(client.clone(), &namespace).list(&ListParams::default()).await.expect("list stores");
        let stores = serde_json::to_string(&stores.items.iter().map(|s| &s.status).collect::<Vec<_>>()).unwrap_or_default();
        let sources = [("logs", logs.as_str()), ("events", events.as_str()), ("status", statuses.as_str()), ("store status", stores.as_str())];
        let leaks = find_leaks(&sources, &[&synced_value, &hidden_value]);
        assert!(leaks.is_empty(), "secret values leaked: {leaks:?}");
        // The scan read real content: the failing ExternalSecrets' status and
        // events name the remote key, the logs name the objects.
        assert_eq!(find_leaks(&sources[1..3], &["db-config"]).len(), 2, "status and events name the remote key:\n{statuses}\n{events}");
        assert!(logs.contains("bad-template") && logs.contains(namespace.as_str()), "logs name the objects");
        drop(controller);
        gcp.shutdown().await;
        cluster.cleanup().await;
    }
}
