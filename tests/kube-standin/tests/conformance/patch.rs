use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm_config(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data})
}

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_reports_conflicts() {
    let (mut cluster, ns) = cluster_with_namespace("ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let alpha = PatchParams::apply("alpha");
    let beta = PatchParams::apply("beta");

    let created = api.patch("ssa", &alpha, &Patch::Apply(cm_config(json!({"a": "1", "b": "1"})))).await.unwrap();
    assert!(managers(&created).contains(&("alpha".into(), "Apply".into())));

    // Same value: shared ownership, no conflict.
    api.patch("ssa", &beta, &Patch::Apply(cm_config(json!({"a": "1"})))).await.unwrap();

    // Different value without force: 409 naming the other manager and the field.
    let conflict = api_error(api.patch("ssa", &PatchParams::apply("gamma"), &Patch::Apply(cm_config(json!({"b": "2"})))).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(conflict.message, "Apply failed with 1 conflict: conflict with \"alpha\": .data.b");

    let two = api_error(api.patch("ssa", &PatchParams::apply("gamma"), &Patch::Apply(cm_config(json!({"a": "3", "b": "3"})))).await);
    assert!(two.message.starts_with("Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .data.a\n- .data.b\nconflicts with \"beta\":\n- .data.a"), "{}", two.message);

    // Forced: the value changes and the others lose the field.
    let forced = api.patch("ssa", &PatchParams::apply("gamma").force(), &Patch::Apply(cm_config(json!({"b": "2"})))).await.unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["b"], "2");
    // alpha no longer owns b, so alpha dropping b from its config leaves gamma's value in place,
    // while a field only alpha owned would be removed.
    let after = api.patch("ssa", &alpha, &Patch::Apply(cm_config(json!({"a": "1"})))).await.unwrap();
    assert_eq!(after.data.as_ref().unwrap()["b"], "2");
    api.patch("ssa", &alpha, &Patch::Apply(cm_config(json!({"a": "1", "c": "1"})))).await.unwrap();
    let dropped = api.patch("ssa", &alpha, &Patch::Apply(cm_config(json!({"a": "1"})))).await.unwrap();
    assert!(!dropped.data.as_ref().unwrap().contains_key("c"), "a field only alpha owned is removed when alpha stops applying it");

    // An Update manager (a merge patch) owns what it changed; apply conflicts name it with its version.
    api.patch("ssa", &PatchParams { field_manager: Some("editor".into()), ..Default::default() }, &Patch::Merge(json!({"data": {"e": "1"}})))
        .await
        .unwrap();
    let vs_update = api_error(api.patch("ssa", &alpha, &Patch::Apply(cm_config(json!({"a": "1", "e": "2"})))).await);
    assert!(vs_update.message.starts_with("Apply failed with 1 conflict: conflict with \"editor\" using v1"), "{}", vs_update.message);
    assert!(vs_update.message.ends_with(": .data.e"), "{}", vs_update.message);

    cluster.cleanup().await;
}

#[tokio::test]
async fn json_merge_and_strategic_merge_patches() {
    let (mut cluster, ns) = cluster_with_namespace("patch").await;
    let client = cluster.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})).unwrap())
        .await
        .unwrap();
    let merged = api.patch("p", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": null, "c": "3"}}))).await.unwrap();
    assert_eq!(merged.data.unwrap(), [("b".to_string(), "2".to_string()), ("c".to_string(), "3".to_string())].into());

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}
    ]))
    .unwrap();
    let patched = api.patch("p", &PatchParams::default(), &Patch::<()>::Json(ops)).await.unwrap();
    assert_eq!(patched.data.unwrap()["b"], "20");
    assert_eq!(patched.metadata.labels.unwrap()["x"], "y");
    let failing: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/data/b", "value": "nope"}])).unwrap();
    let err = api_error(api.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing)).await);
    assert_eq!(err.code, 422);

    // Strategic merge: lists with a merge key are merged, not replaced.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "sa"}, "imagePullSecrets": [{"name": "one"}]})).unwrap())
        .await
        .unwrap();
    let sa = sas
        .patch("sa", &PatchParams::default(), &Patch::Strategic(json!({"imagePullSecrets": [{"name": "two"}]})))
        .await
        .unwrap();
    let names: Vec<String> = sa.image_pull_secrets.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["one", "two"]);
    cluster.cleanup().await;
}

#[tokio::test]
async fn strategic_merge_is_unsupported_for_custom_resources() {
    let (mut cluster, ns) = cluster_with_namespace("smpcr").await;
    crate::crd::install_widgets(&cluster).await;
    let api = crate::crd::widgets(&cluster.client(), &ns);
    api.create(&PostParams::default(), &crate::crd::widget("w", json!({"size": 1}))).await.unwrap();
    let err = api_error(api.patch("w", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"size": 2}}))).await);
    assert_eq!((err.code, err.reason.as_str()), (415, "UnsupportedMediaType"));
    cluster.cleanup().await;
}

#[tokio::test]
async fn server_side_apply_merges_finalizers_as_a_set_between_managers() {
    let (mut cluster, ns) = cluster_with_namespace("ssafin").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let config = |finalizer: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fin", "finalizers": [finalizer]}})
    };
    api.patch("fin", &PatchParams::apply("one"), &Patch::Apply(config("standin.test/one"))).await.unwrap();
    let both = api.patch("fin", &PatchParams::apply("two"), &Patch::Apply(config("standin.test/two"))).await.unwrap();
    let mut finalizers = both.metadata.finalizers.clone().unwrap_or_default();
    finalizers.sort();
    assert_eq!(finalizers, ["standin.test/one", "standin.test/two"]);
    // "one" stops applying its finalizer: only that element goes.
    let only_two = api
        .patch("fin", &PatchParams::apply("one"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fin"}})))
        .await
        .unwrap();
    assert_eq!(only_two.metadata.finalizers.unwrap_or_default(), ["standin.test/two"]);
    api.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    cluster.cleanup().await;
}
