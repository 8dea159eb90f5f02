//! Type-specific Secret validation (`ValidateSecret` in kube-apiserver's
//! `pkg/apis/core/validation/validation.go`): each built-in type names keys it must carry.

use crate::common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

async fn create(api: &Api<Secret>, body: Value) -> Result<Secret, kube::Error> {
    api.create(&PostParams::default(), &serde_json::from_value(body).unwrap()).await
}

/// The field paths of a 422's causes.
fn cause_fields(status: &kube::core::Status) -> Vec<String> {
    status
        .details
        .as_ref()
        .map(|d| d.causes.iter().map(|c| c.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn typed_secrets_without_their_required_keys_are_invalid() {
    let (mut cluster, ns) = cluster_with_namespace("secret-types").await;
    let api: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let cases: [(&str, Value, &str); 5] = [
        // basic-auth with only a url (what a template could build) has neither key.
        (
            "kubernetes.io/basic-auth",
            json!({"url": "aHR0cHM6Ly9leGFtcGxlLmNvbQ=="}),
            "[data[username]: Required value, data[password]: Required value]",
        ),
        ("kubernetes.io/tls", json!({"tls.crt": "Y2VydA=="}), "data[tls.key]: Required value"),
        ("kubernetes.io/ssh-auth", json!({"ssh-privatekey": ""}), "data[ssh-privatekey]: Required value"),
        ("kubernetes.io/dockerconfigjson", json!({"config": "e30="}), "data[.dockerconfigjson]: Required value"),
        ("kubernetes.io/dockercfg", json!({}), "data[.dockercfg]: Required value"),
    ];
    for (i, (type_, data, expected)) in cases.iter().enumerate() {
        let name = format!("missing-{i}");
        let err = api_error(create(&api, json!({"metadata": {"name": name}, "type": type_, "data": data})).await);
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{type_}: {}", err.message);
        assert_eq!(err.message, format!("Secret \"{name}\" is invalid: {expected}"), "{type_}");
    }
    let tls = api_error(create(&api, json!({"metadata": {"name": "tls-empty"}, "type": "kubernetes.io/tls"})).await);
    assert_eq!(cause_fields(&tls), ["data[tls.crt]", "data[tls.key]"]);

    // Docker configs must be JSON objects; the value is never echoed.
    for (type_, key) in [("kubernetes.io/dockerconfigjson", ".dockerconfigjson"), ("kubernetes.io/dockercfg", ".dockercfg")] {
        let err = api_error(create(&api, json!({
            "metadata": {"name": "not-json"}, "type": type_, "stringData": {key: "hunter2 is not json"}
        })).await);
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(
            err.message.starts_with(&format!("Secret \"not-json\" is invalid: data[{key}]: Invalid value: \"<secret contents redacted>\": ")),
            "{}",
            err.message
        );
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert_eq!(cause_fields(&err), [format!("data[{key}]")]);
    }
    cluster.cleanup().await;
}

#[tokio::test]
async fn typed_secrets_with_their_keys_are_accepted_and_updates_are_checked_too() {
    let (mut cluster, ns) = cluster_with_namespace("secret-types-ok").await;
    let api: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let valid = [
        // Either basic-auth key suffices, and it may be empty; stringData counts.
        ("basic-user", "kubernetes.io/basic-auth", json!({"username": ""})),
        ("basic-password", "kubernetes.io/basic-auth", json!({"password": "p"})),
        ("tls", "kubernetes.io/tls", json!({"tls.crt": "", "tls.key": ""})),
        ("ssh", "kubernetes.io/ssh-auth", json!({"ssh-privatekey": "key"})),
        ("dockerjson", "kubernetes.io/dockerconfigjson", json!({".dockerconfigjson": "{\"auths\":{}}"})),
        ("dockercfg", "kubernetes.io/dockercfg", json!({".dockercfg": "{}"})),
        ("opaque", "Opaque", json!({})),
    ];
    for (name, type_, string_data) in &valid {
        create(&api, json!({"metadata": {"name": name}, "type": type_, "stringData": string_data}))
            .await
            .unwrap_or_else(|e| panic!("{type_}: {e}"));
    }

    // An update that drops a required key is refused like a create.
    let mut tls = api.get("tls").await.unwrap();
    tls.data.as_mut().unwrap().remove("tls.key");
    let err = api_error(api.replace("tls", &PostParams::default(), &tls).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(err.message, "Secret \"tls\" is invalid: data[tls.key]: Required value");
    assert!(api.get("tls").await.unwrap().data.unwrap().contains_key("tls.key"));
    cluster.cleanup().await;
}
