use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn create_get_update_with_optimistic_concurrency_and_status_errors() {
    let (mut cluster, ns) = cluster_with_namespace("crud").await;
    let client = cluster.client();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);

    let created = create_secret(&client, &ns, json!({"metadata": {"name": "one"}, "stringData": {"k": "v"}})).await;
    // stringData is write-only and merged into data; type defaults to Opaque.
    assert!(created.string_data.is_none());
    assert_eq!(created.data.as_ref().unwrap()["k"].0, b"v");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let uid = created.metadata.uid.clone().unwrap();
    assert!(!uid.is_empty());

    let again = api.create(&PostParams::default(), &created).await;
    let err = api_error(again);
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "secrets \"one\" already exists");

    let missing = api_error(api.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "secrets \"nope\" not found");

    let mut fresh = api.get("one").await.unwrap();
    let stale = fresh.clone();
    fresh.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let updated = api.replace("one", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(updated.metadata.resource_version, stale.metadata.resource_version);
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));

    let conflict = api_error(api.replace("one", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains("the object has been modified"), "{}", conflict.message);

    // generateName appends a random suffix.
    let generated = create_secret(&client, &ns, json!({"metadata": {"generateName": "gen-"}})).await;
    let name = generated.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() > 4, "{name}");

    // Invalid names are rejected with the field path.
    let bad = api_error(
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap())
            .await,
    );
    assert_eq!((bad.code, bad.reason.as_str()), (422, "Invalid"));
    assert!(bad.message.starts_with("Secret \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""), "{}", bad.message);
    cluster.cleanup().await;
}

#[tokio::test]
async fn list_with_selectors_and_pagination() {
    let (mut cluster, ns) = cluster_with_namespace("list").await;
    let client = cluster.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier}}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        let mut v: Vec<String> = l.items.into_iter().filter_map(|c| c.metadata.name).filter(|n| n.starts_with("cm-")).collect();
        v.sort();
        v
    };
    let even = api.list(&ListParams::default().labels("tier=even")).await.unwrap();
    assert_eq!(names(even), ["cm-0", "cm-2", "cm-4"]);
    let set = api.list(&ListParams::default().labels("tier in (odd),tier!=even")).await.unwrap();
    assert_eq!(names(set), ["cm-1", "cm-3"]);
    let by_name = api.list(&ListParams::default().fields("metadata.name=cm-3")).await.unwrap();
    assert_eq!(names(by_name), ["cm-3"]);
    let by_ns = api.list(&ListParams::default().fields(&format!("metadata.namespace={ns}")).labels("tier")).await.unwrap();
    assert_eq!(names(by_ns).len(), 5);
    let unsupported = api_error(api.list(&ListParams::default().fields("data.x=y")).await);
    assert_eq!((unsupported.code, unsupported.reason.as_str()), (400, "BadRequest"));

    // Pages of two with continue tokens cover everything exactly once.
    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("tier").limit(2);
    loop {
        let page = api.list(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        let token = page.metadata.continue_.clone();
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match token {
            Some(t) if !t.is_empty() => params = params.continue_token(&t),
            _ => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    cluster.cleanup().await;
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found() {
    let (mut cluster, _ns) = cluster_with_namespace("nsmissing").await;
    let api: Api<Secret> = Api::namespaced(cluster.client(), "does-not-exist-4f2a");
    let err = api_error(
        api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap())
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "namespaces \"does-not-exist-4f2a\" not found");
    cluster.cleanup().await;
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_content_and_then_itself() {
    let mut cluster = kube_standin::testing::Cluster::from_env_or_start().await.unwrap();
    let ns = cluster.create_namespace("nsdel").await.unwrap();
    let client = cluster.client();
    create_secret(&client, &ns, json!({"metadata": {"name": "inside"}})).await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let got = namespaces.get(&ns).await.unwrap();
    assert_eq!(got.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(got.metadata.labels.unwrap()["kubernetes.io/metadata.name"], ns);
    namespaces.delete(&ns, &Default::default()).await.unwrap();
    eventually("namespace to disappear", || {
        let namespaces = namespaces.clone();
        let ns = ns.clone();
        async move { matches!(namespaces.get(&ns).await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    assert_eq!(api_error(secrets.get("inside").await).code, 404);
}

/// Stand-in only: fault tests stop and restart the server on the same port, keeping state.
#[tokio::test]
async fn the_standin_restarts_on_the_same_port_with_its_state() {
    let mut cluster = kube_standin::testing::Cluster::from_env_or_start().await.unwrap();
    if cluster.is_real() {
        return;
    }
    let ns = cluster.create_namespace("restart").await.unwrap();
    let client = cluster.client();
    create_secret(&client, &ns, json!({"metadata": {"name": "kept"}})).await;
    let standin = cluster.standin_mut().unwrap();
    let url = standin.url();
    standin.stop();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    assert!(api.get("kept").await.is_err(), "a stopped stand-in does not answer");
    standin.restart().await.unwrap();
    assert_eq!(standin.url(), url);
    eventually("the restarted stand-in to answer", || {
        let api = api.clone();
        async move { api.get("kept").await.ok() }
    })
    .await;
}

#[tokio::test]
async fn secret_keys_labels_and_immutability_are_validated() {
    let (mut cluster, ns) = cluster_with_namespace("secretval").await;
    let api: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let post = |body: serde_json::Value| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &serde_json::from_value(body).unwrap()).await }
    };
    let bad_key = api_error(post(json!({"metadata": {"name": "k"}, "stringData": {"bad key": "v"}})).await);
    assert_eq!((bad_key.code, bad_key.reason.as_str()), (422, "Invalid"));
    assert!(bad_key.message.contains("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters"), "{}", bad_key.message);

    let bad_label = api_error(post(json!({"metadata": {"name": "l", "labels": {"app": "not valid!"}}})).await);
    assert_eq!(bad_label.code, 422);
    assert!(bad_label.message.contains("metadata.labels: Invalid value: \"not valid!\""), "{}", bad_label.message);

    post(json!({"metadata": {"name": "frozen"}, "stringData": {"k": "v"}, "immutable": true})).await.unwrap();
    let change = api_error(
        api.patch("frozen", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"stringData": {"k": "w"}})))
            .await,
    );
    assert_eq!(change.code, 422);
    assert!(change.message.contains("data: Forbidden: field is immutable when `immutable` is set"), "{}", change.message);
    // Metadata of an immutable Secret may still change.
    api.patch("frozen", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    cluster.cleanup().await;
}

#[tokio::test]
async fn server_side_dry_run_validates_without_storing() {
    let (mut cluster, ns) = cluster_with_namespace("dryrun").await;
    let api: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let answered = api.create(&dry, &serde_json::from_value(json!({"metadata": {"name": "ghost"}, "stringData": {"k": "v"}})).unwrap()).await.unwrap();
    assert_eq!(answered.data.unwrap()["k"].0, b"v");
    assert_eq!(api_error(api.get("ghost").await).code, 404);
    let invalid = api_error(api.create(&dry, &serde_json::from_value(json!({"metadata": {"name": "Ghost"}})).unwrap()).await);
    assert_eq!(invalid.code, 422);
    let kc = cluster.kubeconfig_path().to_path_buf();
    let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: {ns}\ndata:\n  k: v\n");
    let (ok, out, err) = kubectl(&kc, &["apply", "--server-side", "--dry-run=server", "-f", "-"], Some(&manifest)).await;
    assert!(ok, "{out}{err}");
    let (ok, _, _) = kubectl(&kc, &["get", "configmap", "dry", "-n", &ns], None).await;
    assert!(!ok, "a dry-run apply stores nothing");
    cluster.cleanup().await;
}
