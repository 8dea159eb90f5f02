use crate::common::*;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_standin::testing::Cluster;
use serde_json::{Value, json};

pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.standin.test"},
        "spec": {
            "group": "standin.test",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wdg"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                "color": {"type": "string", "enum": ["red", "blue"]},
                                "label": {"type": "string", "pattern": "^[a-z]+$"},
                                "mode": {"type": "string", "default": "auto"},
                                "port": {"x-kubernetes-int-or-string": true},
                                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}}
                            }
                        },
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
                    }
                }}
            }]
        }
    })
}

pub fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("standin.test", "v1", "Widget");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, "widgets"))
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "standin.test/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

pub async fn install_widgets(cluster: &Cluster) {
    cluster.install_crd(&widget_crd()).await.unwrap();
}

#[tokio::test]
async fn a_crd_is_established_and_served_with_defaults_and_pruning() {
    let (mut cluster, ns) = cluster_with_namespace("crd").await;
    install_widgets(&cluster).await;
    let client = cluster.client();
    let discovery = kube::Discovery::new(client.clone()).filter(&["standin.test"]).run().await.unwrap();
    let (resource, caps) = discovery.resolve_gvk(&GroupVersionKind::gvk("standin.test", "v1", "Widget")).unwrap();
    assert_eq!(resource.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);

    let api = widgets(&client, &ns);
    let mut w = widget("w1", json!({"size": 3, "port": "http", "unknown": "dropped", "free": {"anything": {"goes": 1}}}));
    w.data["status"] = json!({"phase": "ignored-on-create"});
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["mode"], "auto", "default applied");
    assert!(created.data["spec"].get("unknown").is_none(), "unknown field pruned");
    assert_eq!(created.data["spec"]["free"]["anything"]["goes"], 1, "preserved unknown fields kept");
    assert!(created.data.get("status").is_none(), "status is ignored on create with a status subresource");
    assert_eq!(created.metadata.generation, Some(1));

    let int_port = api.create(&PostParams::default(), &widget("w2", json!({"size": 1, "port": 8080}))).await.unwrap();
    assert_eq!(int_port.data["spec"]["port"], 8080);
    cluster.cleanup().await;
}

#[tokio::test]
async fn invalid_custom_resources_are_rejected_with_field_paths() {
    let (mut cluster, ns) = cluster_with_namespace("crdinvalid").await;
    install_widgets(&cluster).await;
    let api = widgets(&cluster.client(), &ns);
    let bad = widget("bad", json!({"color": "green", "label": "UPPER", "tags": ["a", "b", "c"], "port": true}));
    let err = api_error(api.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.starts_with("Widget.standin.test \"bad\" is invalid: "), "{}", err.message);
    assert!(err.message.contains("spec.size: Required value"), "{}", err.message);
    assert!(err.message.contains("spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""), "{}", err.message);
    assert!(err.message.contains("spec.label: Invalid value: \"UPPER\": spec.label in body should match '^[a-z]+$'"), "{}", err.message);
    assert!(err.message.contains("spec.tags"), "{}", err.message);
    assert!(err.message.contains("spec.port"), "{}", err.message);

    let too_big = api_error(api.create(&PostParams::default(), &widget("big", json!({"size": 11}))).await);
    assert_eq!(too_big.code, 422);
    assert!(too_big.message.contains("spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"), "{}", too_big.message);
    let wrong_type = api_error(api.create(&PostParams::default(), &widget("typed", json!({"size": "three"}))).await);
    assert!(wrong_type.message.contains("spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""), "{}", wrong_type.message);
    cluster.cleanup().await;
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let (mut cluster, ns) = cluster_with_namespace("crdstatus").await;
    install_widgets(&cluster).await;
    let api = widgets(&cluster.client(), &ns);
    api.create(&PostParams::default(), &widget("g", json!({"size": 2}))).await.unwrap();

    // Status goes only through /status and does not bump generation.
    let status_patch = json!({"status": {"phase": "Ready"}});
    let after_status = api.patch_status("g", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    assert_eq!(after_status.data["status"]["phase"], "Ready");
    assert_eq!(after_status.metadata.generation, Some(1));

    // Status written through the main resource is ignored; metadata-only changes keep generation.
    let main_patch = json!({"status": {"phase": "Hacked"}, "metadata": {"labels": {"x": "y"}}});
    let after_main = api.patch("g", &PatchParams::default(), &Patch::Merge(&main_patch)).await.unwrap();
    assert_eq!(after_main.data["status"]["phase"], "Ready");
    assert_eq!(after_main.metadata.generation, Some(1));

    // A spec change bumps generation.
    let spec_patch = json!({"spec": {"size": 5}});
    let after_spec = api.patch("g", &PatchParams::default(), &Patch::Merge(&spec_patch)).await.unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    // Spec written through /status is ignored.
    let sneaky = json!({"spec": {"size": 9}});
    let after_sneaky = api.patch_status("g", &PatchParams::default(), &Patch::Merge(&sneaky)).await.unwrap();
    assert_eq!(after_sneaky.data["spec"]["size"], 5);
    assert_eq!(after_sneaky.metadata.generation, Some(2));

    // Server-side apply to /status manages status only.
    let status_apply = json!({"apiVersion": "standin.test/v1", "kind": "Widget", "metadata": {"name": "g"},
        "spec": {"size": 7}, "status": {"phase": "Applied"}});
    // The earlier merge patches own .status.phase, so an unforced apply of another value conflicts.
    let conflict = api_error(api.patch_status("g", &PatchParams::apply("status-writer"), &Patch::Apply(&status_apply)).await);
    assert_eq!(conflict.code, 409);
    assert!(conflict.message.ends_with(": .status.phase"), "{}", conflict.message);
    let applied = api
        .patch_status("g", &PatchParams::apply("status-writer").force(), &Patch::Apply(&status_apply))
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Applied");
    assert_eq!(applied.data["spec"]["size"], 5);
    let entry = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("status-writer"))
        .expect("status-writer entry");
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    cluster.cleanup().await;
}

#[tokio::test]
async fn deleting_a_crd_stops_serving_its_kind_and_removes_its_objects() {
    let (mut cluster, ns) = cluster_with_namespace("crddel").await;
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("gizmos.standin.test");
    crd["spec"]["names"] = json!({"kind": "Gizmo", "plural": "gizmos", "singular": "gizmo"});
    cluster.install_crd(&crd).await.unwrap();
    let gvk = GroupVersionKind::gvk("standin.test", "v1", "Gizmo");
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), &ns, &ApiResource::from_gvk_with_plural(&gvk, "gizmos"));
    let mut gizmo = widget("g1", json!({"size": 1}));
    gizmo.types = Some(kube::core::TypeMeta { api_version: "standin.test/v1".into(), kind: "Gizmo".into() });
    api.create(&PostParams::default(), &gizmo).await.unwrap();
    kube_standin::testing::crd_api(&cluster.client())
        .delete("gizmos.standin.test", &Default::default())
        .await
        .unwrap();
    eventually("the kind to stop being served", || {
        let api = api.clone();
        async move { matches!(api.list(&Default::default()).await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    // Recreating the CRD does not bring the old objects back.
    cluster.install_crd(&crd).await.unwrap();
    let items = eventually("the recreated kind to list", || {
        let api = api.clone();
        async move { api.list(&Default::default()).await.ok() }
    })
    .await;
    assert!(items.items.is_empty(), "{:?}", items.items);
    let _ = kube_standin::testing::crd_api(&cluster.client()).delete("gizmos.standin.test", &Default::default()).await;
    cluster.cleanup().await;
}
