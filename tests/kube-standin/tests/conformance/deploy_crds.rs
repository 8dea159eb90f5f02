use crate::common::*;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::path::PathBuf;

fn deploy_crds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

fn api(client: &kube::Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("secretbridge.io", "v1", kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, plural))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "secretbridge.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn the_project_crds_load_and_validate() {
    let (mut cluster, ns) = cluster_with_namespace("deploycrds").await;
    let installed = cluster.install_crds(&deploy_crds()).await.unwrap();
    for expected in ["externalsecrets.secretbridge.io", "secretstores.secretbridge.io", "clustersecretstores.secretbridge.io"] {
        assert!(installed.iter().any(|n| n == expected), "{expected} not in {installed:?}");
    }
    let client = cluster.client();

    let stores = api(&client, &ns, "SecretStore", "secretstores");
    let store = object("SecretStore", "aws", json!({"provider": {"aws": {"region": "eu-west-1", "service": "ParameterStore"}}}));
    stores.create(&PostParams::default(), &store).await.unwrap();
    let both = object("SecretStore", "both", json!({"provider": {
        "aws": {"region": "eu-west-1", "service": "ParameterStore"},
        "gcpsm": {"projectID": "p"}
    }}));
    let err = api_error(stores.create(&PostParams::default(), &both).await);
    assert_eq!(err.code, 422);
    assert!(err.message.contains("spec.provider"), "{}", err.message);

    let externals = api(&client, &ns, "ExternalSecret", "externalsecrets");
    let valid = object("ExternalSecret", "db", json!({
        "secretStoreRef": {"name": "aws"},
        "data": [{"secretKey": "url", "remoteRef": {"key": "/app/db/url"}}]
    }));
    let created = externals.create(&PostParams::default(), &valid).await.unwrap();
    assert_eq!(created.data["spec"]["target"]["creationPolicy"], "Owner", "defaults applied");
    assert_eq!(created.data["spec"]["refreshInterval"], "1h");
    assert_eq!(created.data["spec"]["secretStoreRef"]["kind"], "SecretStore");

    let bad_enum = object("ExternalSecret", "bad-enum", json!({
        "secretStoreRef": {"name": "aws"},
        "target": {"creationPolicy": "Sometimes"}
    }));
    let err = api_error(externals.create(&PostParams::default(), &bad_enum).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("spec.target.creationPolicy: Unsupported value: \"Sometimes\""), "{}", err.message);
    let causes = err.details.as_ref().map(|d| d.causes.clone()).unwrap_or_default();
    assert!(
        causes.iter().any(|c| c.field == "spec.target.creationPolicy" && c.reason == "FieldValueNotSupported"),
        "{causes:?}"
    );

    let no_name = object("ExternalSecret", "no-name", json!({"secretStoreRef": {"kind": "SecretStore"}}));
    let err = api_error(externals.create(&PostParams::default(), &no_name).await);
    assert!(err.message.contains("spec.secretStoreRef.name: Required value"), "{}", err.message);

    let bad_key = object("ExternalSecret", "bad-key", json!({
        "secretStoreRef": {"name": "aws"},
        "data": [{"secretKey": "no spaces", "remoteRef": {"key": "/k"}}]
    }));
    let err = api_error(externals.create(&PostParams::default(), &bad_key).await);
    assert!(err.message.contains("spec.data[0].secretKey"), "{}", err.message);
    // kubectl prints the CRD's printer columns.
    let (ok, out, err) = kubectl(cluster.kubeconfig_path(), &["get", "externalsecrets", "-n", &ns], None).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STORE", "REFRESH", "INTERVAL", "STATUS", "READY"], "{out}");
    assert!(out.lines().any(|l| l.starts_with("db ") && l.contains(" aws ") && l.contains(" 1h")), "{out}");

    // The CRDs' category lists every secretbridge kind for kubectl.
    let kc = cluster.kubeconfig_path().to_path_buf();
    let (ok, out, err) = kubectl(&kc, &["get", "secretbridge", "-n", &ns, "-o", "name"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("externalsecret.secretbridge.io/db") && out.contains("secretstore.secretbridge.io/aws"), "{out}");
    cluster.cleanup().await;
}
