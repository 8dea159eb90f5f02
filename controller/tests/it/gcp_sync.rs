//! A namespace on the Kubernetes stand-in wired to the GCP stand-in with
//! Workload Identity: a KSA annotated with a GSA that may impersonate it, a
//! SecretStore, and three ExternalSecrets: `synced` (reads `db-password`),
//! `bad-property` (a property of the non-JSON `db-config`, whose value
//! holds a secret) and `bad-template` (an unknown template function).

use crate::process::eventually;
use gcp_standin::{GcpStandin, ProjectSpec, TrustedIssuer};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use kube_standin::testing::Cluster;
use secretbridge_shared::names::GCP_SERVICE_ACCOUNT_ANNOTATION;
use secretbridge_shared::{ExternalSecret, SecretStore};
use serde_json::{Value, json};
use std::path::Path;

/// The GCP project of the stand-in.
pub const PROJECT: &str = "sync-project";
/// The GKE cluster the store names; the stand-in trusts exactly its identity provider.
pub const CLUSTER_LOCATION: &str = "europe-west1";
/// See [`CLUSTER_LOCATION`].
pub const CLUSTER_NAME: &str = "sync";

/// Everything one test needs; see the module docs.
pub struct GcpSync {
    /// The Kubernetes stand-in (RBAC on).
    pub cluster: Cluster,
    /// The GCP stand-in.
    pub gcp: GcpStandin,
    /// The namespace holding the store and ExternalSecrets.
    pub namespace: String,
    /// The value of `db-password`, expected in Secret `synced`.
    pub synced_value: String,
}

async fn create<K>(api: &Api<K>, value: Value)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).expect("object parses");
    api.create(&PostParams::default(), &object).await.expect("object created");
}

/// `(status, message)` of an ExternalSecret's Ready condition.
pub async fn ready_condition(api: &Api<ExternalSecret>, name: &str) -> Option<(String, String)> {
    let es = api.get(name).await.ok()?;
    let ready = es.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((format!("{:?}", ready.status), ready.message.unwrap_or_default()))
}

fn external_secret(name: &str, data: Value, template: Option<Value>) -> Value {
    let mut target = json!({"name": name});
    if let Some(template) = template {
        target["template"] = template;
    }
    json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret", "metadata": {"name": name},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "gcp", "kind": "SecretStore"},
            "target": target, "data": data}})
}

impl GcpSync {
    /// Starts both stand-ins and seeds everything (no controller yet).
    pub async fn seed(prefix: &str) -> Self {
        let mut cluster = Cluster::from_env_or_start().await.expect("kube stand-in starts");
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
        cluster.install_crds(&crds).await.expect("CRDs install");
        let kube = cluster.standin().expect("these tests need the stand-in's issuer");
        let gcp = GcpStandin::start(gcp_standin::Options {
            projects: vec![ProjectSpec::new(PROJECT)],
            trusted_issuers: vec![TrustedIssuer {
                issuer: kube.issuer().to_owned(),
                ca_pem: Some(kube.ca_pem().to_owned()),
                workload_pool: format!("{PROJECT}.svc.id.goog"),
                // Pinned: an exchange audience naming any other provider is refused.
                identity_provider: Some(format!(
                    "https://container.googleapis.com/v1/projects/{PROJECT}/locations/{CLUSTER_LOCATION}/clusters/{CLUSTER_NAME}"
                )),
            }],
            ..Default::default()
        })
        .await
        .expect("GCP stand-in starts");
        let namespace = cluster.create_namespace(prefix).await.expect("namespace");
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
                    "clusterLocation": CLUSTER_LOCATION, "clusterName": CLUSTER_NAME, "serviceAccountRef": {"name": "app"}}}}}}}),
        )
        .await;
        let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), &namespace);
        let password = json!([{"secretKey": "password", "remoteRef": {"key": "db-password"}}]);
        create(&external_secrets, external_secret("synced", password.clone(), None)).await;
        let property = json!([{"secretKey": "password", "remoteRef": {"key": "db-config", "property": "password"}}]);
        create(&external_secrets, external_secret("bad-property", property, None)).await;
        let template = json!({"data": {"url": "{{ .password | sha256sum }}"}});
        create(&external_secrets, external_secret("bad-template", password, Some(template))).await;
        GcpSync { cluster, gcp, namespace, synced_value }
    }

    /// Creates another ExternalSecret `name` that syncs `db-password` into Secret `name`.
    pub async fn create_synced_external_secret(&self, name: &str) {
        let api = Api::<ExternalSecret>::namespaced(self.cluster.client(), &self.namespace);
        let password = json!([{"secretKey": "password", "remoteRef": {"key": "db-password"}}]);
        create(&api, external_secret(name, password, None)).await;
    }

    /// Waits until Secret `name` holds the value of `db-password`.
    pub async fn wait_secret(&self, name: &str) {
        let secrets = Api::<Secret>::namespaced(self.cluster.client(), &self.namespace);
        eventually(&format!("Secret {name} to hold the GCP value"), || {
            let secrets = secrets.clone();
            let expected = self.synced_value.clone();
            async move {
                let secret = secrets.get(name).await.ok()?;
                let value = secret.data?.get("password")?.0.clone();
                (value == expected.as_bytes()).then_some(())
            }
        })
        .await;
    }

    /// Waits until `synced` holds the GCP value and both bad ones are refused.
    pub async fn wait_synced(&self) {
        let client = self.cluster.client();
        self.wait_secret("synced").await;
        let external_secrets = Api::<ExternalSecret>::namespaced(client, &self.namespace);
        for name in ["bad-property", "bad-template"] {
            let (status, message) = eventually(&format!("{name} to be refused"), || ready_condition(&external_secrets, name)).await;
            assert_eq!(status, "False", "{name}: {message}");
        }
    }

    /// Every Event in the namespace and every ExternalSecret and store status, as JSON text.
    pub async fn events_and_statuses(&self) -> (String, String) {
        let client = self.cluster.client();
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("list events");
        let external_secrets = Api::<ExternalSecret>::namespaced(client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("list ExternalSecrets");
        let stores = Api::<SecretStore>::namespaced(client, &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("list stores");
        let statuses = json!({
            "externalSecrets": external_secrets.items.iter().map(|e| &e.status).collect::<Vec<_>>(),
            "stores": stores.items.iter().map(|s| &s.status).collect::<Vec<_>>(),
        });
        (serde_json::to_string(&events.items).unwrap_or_default(), statuses.to_string())
    }

    /// Stops the GCP stand-in and removes the namespace.
    pub async fn finish(mut self) {
        self.gcp.shutdown().await;
        self.cluster.cleanup().await;
    }
}

/// The stand-in trusts exactly one identity provider, the one of the cluster
/// the store names. A store naming another cluster makes the controller build
/// another exchange audience, which must be refused (as by Google STS), so a
/// controller that built the audience wrong could not pass these tests.
#[tokio::test]
async fn a_store_naming_another_cluster_is_refused_at_the_token_exchange() {
    let env = GcpSync::seed("gcp-audience").await;
    let client = env.cluster.client();
    create(
        &Api::<SecretStore>::namespaced(client.clone(), &env.namespace),
        json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "elsewhere"},
            "spec": {"provider": {"gcpsm": {"projectID": PROJECT, "auth": {"workloadIdentity": {
                "clusterLocation": CLUSTER_LOCATION, "clusterName": "another-cluster", "serviceAccountRef": {"name": "app"}}}}}}}),
    )
    .await;
    let external_secrets = Api::<ExternalSecret>::namespaced(client, &env.namespace);
    let mut wrong = external_secret("wrong-audience", json!([{"secretKey": "password", "remoteRef": {"key": "db-password"}}]), None);
    wrong["spec"]["secretStoreRef"]["name"] = json!("elsewhere");
    create(&external_secrets, wrong).await;
    let endpoint = env.gcp.endpoint();
    let controller = crate::process::ControllerProcess::start(
        env.cluster.kubeconfig_path(),
        &["--leader-elect=false", "--namespace", &env.namespace, "--gcp-endpoint", &endpoint],
        &[],
    );
    // The pinned provider is accepted...
    env.wait_secret("synced").await;
    // ...and the other cluster's is not: nothing is read through it.
    let (status, message) = eventually("wrong-audience to be refused", || {
        let external_secrets = external_secrets.clone();
        async move { ready_condition(&external_secrets, "wrong-audience").await.filter(|(status, _)| status == "False") }
    })
    .await;
    assert_eq!(status, "False", "{message}");
    let secrets = Api::<Secret>::namespaced(env.cluster.client(), &env.namespace);
    assert!(secrets.get_opt("wrong-audience").await.expect("get").is_none(), "no Secret through a refused exchange");
    drop(controller);
    env.finish().await;
}
