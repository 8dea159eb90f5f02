//! The controller's RBAC in deploy/controller grants what the controller does and nothing more.
//! On a real cluster this applies the (idempotent) namespace, ServiceAccount and RBAC objects of
//! deploy/controller and leaves them in place.

use crate::common::*;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::path::PathBuf;

fn deploy_controller(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/controller")
        .join(file)
        .display()
        .to_string()
}

#[tokio::test]
async fn the_controller_rbac_allows_its_work_and_denies_the_rest() {
    let (mut cluster, tenant) = cluster_with_namespace("tenant").await;
    let kc = cluster.kubeconfig_path().to_path_buf();
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        let (ok, out, err) = kubectl(&kc, &["apply", "-f", &deploy_controller(file)], None).await;
        assert!(ok, "kubectl apply {file}: {out}{err}");
    }
    let client = cluster.client();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "secretbridge-system");
    let request = serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap();
    let token = sas
        .create_token_request("secretbridge-controller", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    let controller = cluster.client_for_token(&token).await.unwrap();
    let ssar: Api<SelfSubjectAccessReview> = Api::all(controller.clone());
    let can = |verb: &str, group: &str, resource: &str, subresource: &str, ns: &str| {
        let ssar = ssar.clone();
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({"spec": {"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "subresource": subresource, "namespace": ns
        }}}))
        .unwrap();
        async move { ssar.create(&PostParams::default(), &review).await.unwrap().status.unwrap().allowed }
    };
    // Bindings take effect asynchronously on real clusters.
    eventually("the controller's bindings to take effect", || {
        let check = can("list", "secretbridge.io", "externalsecrets", "", "");
        async move { check.await.then_some(()) }
    })
    .await;

    for (verb, group, resource, sub, ns) in [
        ("watch", "secretbridge.io", "externalsecrets", "", ""),
        ("list", "secretbridge.io", "clustersecretstores", "", ""),
        ("patch", "secretbridge.io", "externalsecrets", "status", tenant.as_str()),
        ("create", "", "secrets", "", tenant.as_str()),
        ("patch", "", "secrets", "", tenant.as_str()),
        ("create", "", "serviceaccounts", "token", tenant.as_str()),
        ("create", "events.k8s.io", "events", "", tenant.as_str()),
        ("update", "coordination.k8s.io", "leases", "", "secretbridge-system"),
    ] {
        assert!(can(verb, group, resource, sub, ns).await, "controller must be able to {verb} {group}/{resource}/{sub} in {ns:?}");
    }
    for (verb, group, resource, sub, ns) in [
        ("update", "secretbridge.io", "externalsecrets", "", tenant.as_str()),
        ("create", "secretbridge.io", "secretstores", "", tenant.as_str()),
        ("update", "coordination.k8s.io", "leases", "", tenant.as_str()),
        ("create", "", "configmaps", "", tenant.as_str()),
        ("delete", "", "namespaces", "", ""),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
    ] {
        assert!(!can(verb, group, resource, sub, ns).await, "controller must not be able to {verb} {group}/{resource}/{sub} in {ns:?}");
    }

    // And real calls agree with the reviews.
    create_secret(&client, &tenant, json!({"metadata": {"name": "synced"}})).await;
    let secrets: Api<Secret> = Api::namespaced(controller.clone(), &tenant);
    assert_eq!(secrets.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let leases: Api<Lease> = Api::namespaced(controller.clone(), &tenant);
    let denied = api_error(
        leases
            .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "leader"}})).unwrap())
            .await,
    );
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    cluster.cleanup().await;
}
