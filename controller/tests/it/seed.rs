//! The seed scenario end to end: the reference article's manifests, applied
//! as written (apart from the API group), produce `multicloud-db-info`.

use crate::support::*;
use secretbridge_shared::names::{DATA_HASH_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION, MANAGED_LABEL};
use secretbridge_shared::names::AWS_ROLE_ARN_ANNOTATION;
use k8s_openapi::api::core::v1::Secret;

const NAMESPACE: &str = "multicloud";
const KSA: &str = "multicloud-app";
const TARGET: &str = "multicloud-db-info";

fn assert_seed_secret(secret: &Secret, es_uid: &str) {
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    assert!(
        annotations.get(DATA_HASH_ANNOTATION).is_some_and(|h| !h.is_empty()),
        "the Secret carries the data-hash annotation: {annotations:?}"
    );
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(MANAGED_LABEL).map(String::as_str), Some("true"), "managed label: {labels:?}");
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners.iter().any(|o| o.kind == "ExternalSecret" && o.uid == es_uid && o.controller == Some(true)),
        "creationPolicy Owner: the ExternalSecret owns the Secret: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_aws_parameter_store_with_irsa_yields_multicloud_db_info() {
    let stack = stack(true, false).await;
    stack.create_oidc_provider().await.unwrap();
    let params = ["/multicloud/db/url", "/multicloud/db/user", "/multicloud/db/password"];
    let role = stack.create_irsa_role("multicloud-app", NAMESPACE, KSA, &params, &[]).await.unwrap();
    stack.put_parameter(params[0], "postgres://db.internal:5432/app").await.unwrap();
    stack.put_parameter(params[1], "app").await.unwrap();
    stack.put_parameter(params[2], "s3cr3t-from-ssm").await.unwrap();
    stack.ensure_namespace(NAMESPACE).await.unwrap();
    stack.create_service_account(NAMESPACE, KSA, &[(AWS_ROLE_ARN_ANNOTATION, &role)]).await.unwrap();

    let controller = controller(&stack).await;
    stack.apply_yaml(&seed_fixture("aws-parameter-store.yaml")).await.unwrap();

    let es = stack.wait_ready(NAMESPACE, TARGET, SYNC_TIMEOUT).await.or_logs(&controller, "the seed ExternalSecret syncs");
    let secret = stack
        .wait_secret_data(
            NAMESPACE,
            TARGET,
            &[("dburl", "postgres://db.internal:5432/app"), ("user", "app"), ("password", "s3cr3t-from-ssm")],
            SYNC_TIMEOUT,
        )
        .await
        .or_logs(&controller, "the Secret holds the three parameters");
    assert_seed_secret(&secret, es.metadata.uid.as_deref().unwrap_or_default());
    let guard = stack.guard().unwrap().stats();
    assert_eq!(guard.calls("AssumeRoleWithWebIdentity"), 1, "one STS exchange for the store: {guard:?}");
    assert_eq!(guard.denied.values().sum::<u64>(), 0, "nothing was denied: {guard:?}");
    assert_eq!(guard.calls("GetParameters"), 1, "three keys, one batched call: {guard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_gcp_cluster_store_with_workload_identity_yields_multicloud_db_info() {
    let stack = stack(false, true).await;
    let values: [(&str, &[u8]); 3] = [
        ("multicloud-db-url", b"postgres://cloudsql:5432/app"),
        ("multicloud-db-user", b"app"),
        ("multicloud-db-password", b"s3cr3t-from-gcp"),
    ];
    let gsa = stack.create_gsa("multicloud-app").unwrap();
    stack.grant_workload_identity_user(&gsa, NAMESPACE, KSA).unwrap();
    for (name, payload) in values {
        stack.seed_secret(name, &[payload]).unwrap();
        stack.grant_secret_accessor(name, &format!("serviceAccount:{gsa}")).unwrap();
    }
    stack.ensure_namespace(NAMESPACE).await.unwrap();
    stack.create_service_account(NAMESPACE, KSA, &[(GCP_SERVICE_ACCOUNT_ANNOTATION, &gsa)]).await.unwrap();

    let controller = controller(&stack).await;
    stack.apply_yaml(&seed_fixture("gcp-secret-manager.yaml")).await.unwrap();

    let es = stack.wait_ready(NAMESPACE, TARGET, SYNC_TIMEOUT).await.or_logs(&controller, "the seed ExternalSecret syncs");
    let secret = stack
        .wait_secret_data(
            NAMESPACE,
            TARGET,
            &[("dburl", "postgres://cloudsql:5432/app"), ("user", "app"), ("password", "s3cr3t-from-gcp")],
            SYNC_TIMEOUT,
        )
        .await
        .or_logs(&controller, "the Secret holds the three secrets");
    assert_seed_secret(&secret, es.metadata.uid.as_deref().unwrap_or_default());
    let gcp = stack.gcp().unwrap();
    assert_eq!(gcp.call_count("GenerateAccessToken"), 1, "one impersonation: {:?}", gcp.call_counts());
    assert_eq!(gcp.call_count("AccessSecretVersion"), 3, "{:?}", gcp.call_counts());
}
