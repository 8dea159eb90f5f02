//! The controller runs under exactly the ServiceAccount and RBAC in
//! `deploy/controller/` on the Kubernetes stand-in with RBAC enforced,
//! through a full Workload Identity sync from the GCP stand-in: it takes the
//! lease in its own namespace, watches ExternalSecrets cluster-wide, mints a
//! token for the store's ServiceAccount, writes the Secret, status and
//! events, and nothing it does is denied.

use crate::gcp_sync::GcpSync;
use crate::process::{ControllerProcess, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
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
async fn controller_syncs_under_the_deployed_service_account_and_rbac() {
    let env = GcpSync::seed("rbac").await;
    let cluster = &env.cluster;
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
        .expect("a stand-in (this test mints a kubeconfig)")
        .write_kubeconfig(&token, &kubeconfig)
        .expect("kubeconfig written");
    let endpoint = env.gcp.endpoint();
    let controller = ControllerProcess::start(
        &kubeconfig,
        &[
            "--leader-elect=true",
            "--lease-duration=6s",
            "--renew-deadline=4s",
            "--retry-period=1s",
            "--identity=rbac-replica",
            "--gcp-endpoint",
            &endpoint,
        ],
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
    env.wait_synced().await;
    let (events, _) = env.events_and_statuses().await;
    assert!(events.contains("\"Created\""), "the Secret creation was published as an event: {events}");
    let logs = controller.logs();
    assert!(!logs.to_lowercase().contains("forbidden"), "the controller was denied something:\n{logs}");
    drop(controller);
    env.finish().await;
}
