//! The controller runs under exactly the ServiceAccount and RBAC in
//! `deploy/controller/` on the Kubernetes stand-in with RBAC enforced: it
//! takes the lease in its own namespace, watches ExternalSecrets cluster-wide,
//! reads stores and writes status and events, and nothing it does is denied.

use crate::process::{ControllerProcess, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, PostParams};
use kube::Api;
use kube_standin::testing::Cluster;
use secretbridge_shared::ExternalSecret;
use std::path::Path;

const SYSTEM_NAMESPACE: &str = "secretbridge-system";
const SERVICE_ACCOUNT: &str = "secretbridge-controller";

/// `kubectl apply`, awaited without blocking the runtime the in-process stand-in serves on.
async fn kubectl_apply(kubeconfig: &Path, files: &[&str]) {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/controller");
    let mut command = tokio::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(["apply", "--server-side"]);
    for file in files {
        command.arg("-f").arg(deploy.join(file));
    }
    let output = command.output().await.expect("kubectl runs");
    assert!(output.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn controller_runs_under_the_deployed_service_account_and_rbac() {
    let mut cluster = Cluster::from_env_or_start().await.expect("kube stand-in starts (RBAC on)");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    cluster.install_crds(&crds).await.expect("CRDs install");
    let admin_kubeconfig = cluster.kubeconfig_path().to_path_buf();
    kubectl_apply(&admin_kubeconfig, &["namespace.yaml", "serviceaccount.yaml"]).await;
    let token = cluster
        .service_account_token(SYSTEM_NAMESPACE, SERVICE_ACCOUNT, &[], 3600)
        .await
        .expect("token for the controller's ServiceAccount");
    // Without the RBAC the ServiceAccount may do nothing: the check has teeth.
    let unbound = cluster.client_for_token(&token).await.expect("client");
    let denied = Api::<ExternalSecret>::all(unbound.clone()).list(&ListParams::default()).await;
    assert!(matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403), "{denied:?}");
    kubectl_apply(&admin_kubeconfig, &["rbac.yaml"]).await;
    eventually("the RBAC to apply", || {
        let api = Api::<ExternalSecret>::all(unbound.clone());
        async move { api.list(&ListParams::default()).await.ok().map(|_| ()) }
    })
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("controller-kubeconfig");
    cluster
        .standin()
        .expect("a stand-in (this test needs to mint a kubeconfig)")
        .write_kubeconfig(&token, &kubeconfig)
        .expect("kubeconfig written");
    let namespace = cluster.create_namespace("rbac").await.expect("namespace");
    let mut controller = ControllerProcess::start(
        &kubeconfig,
        &["--leader-elect=true", "--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s", "--identity=rbac-replica"],
        &[("POD_NAMESPACE", SYSTEM_NAMESPACE)],
    );
    let client = cluster.client();
    eventually("the controller to take the lease in its own namespace", || {
        let api = Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE);
        async move {
            let lease = api.get_opt("secretbridge-controller").await.ok().flatten()?;
            (lease.spec?.holder_identity.as_deref() == Some("rbac-replica")).then_some(())
        }
    })
    .await;

    let es: ExternalSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "needs-a-store", "namespace": namespace},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "no-such-store", "kind": "SecretStore"},
            "target": {"name": "needs-a-store"},
            "data": [{"secretKey": "k", "remoteRef": {"key": "/k"}}]
        }
    }))
    .expect("ExternalSecret parses");
    let api = Api::<ExternalSecret>::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), &es).await.expect("create ExternalSecret");
    eventually("the controller to record the missing store in status", || {
        let api = api.clone();
        async move {
            let ready = api.get("needs-a-store").await.ok()?.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            ready.message.as_deref().is_some_and(|m| m.contains("does not exist")).then_some(())
        }
    })
    .await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &namespace);
    eventually("the controller to publish an event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items.iter().any(|e| e.reason.as_deref() == Some("StoreNotFound")).then_some(())
        }
    })
    .await;
    let metrics = controller.metrics_text().await;
    assert!(metrics.contains("secretbridge_sync_total{result=\"StoreNotFound\"}"), "{metrics}");
    let logs = controller.logs();
    assert!(!logs.to_lowercase().contains("forbidden"), "the controller was denied something:\n{logs}");
    cluster.cleanup().await;
}
