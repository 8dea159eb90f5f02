use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn owner_and_dependent(client: &kube::Client, ns: &str, owner: &str, dependent_finalizer: bool) -> (ConfigMap, Secret) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let owner_cm = cms
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": owner}})).unwrap())
        .await
        .unwrap();
    let mut meta = json!({
        "name": format!("{owner}-dep"),
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": owner,
            "uid": owner_cm.metadata.uid.clone().unwrap(), "blockOwnerDeletion": true
        }]
    });
    if dependent_finalizer {
        meta["finalizers"] = json!(["standin.test/hold"]);
    }
    let dep = create_secret(client, ns, json!({"metadata": meta})).await;
    (owner_cm, dep)
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (mut cluster, ns) = cluster_with_namespace("fin").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    api.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["standin.test/hold"]}})).unwrap())
        .await
        .unwrap();
    let response = api.delete("held", &DeleteParams::default()).await.unwrap();
    let still = response.left().expect("object still exists while a finalizer remains");
    assert!(still.metadata.deletion_timestamp.is_some());
    let got = api.get("held").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    eventually("finalized object to disappear", || {
        let api = api.clone();
        async move { matches!(api.get("held").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let (mut cluster, ns) = cluster_with_namespace("gcbg").await;
    let client = cluster.client();
    owner_and_dependent(&client, &ns, "bg", false).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.delete("bg", &DeleteParams::background()).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    eventually("dependent to be collected", || {
        let secrets = secrets.clone();
        async move { matches!(secrets.get("bg-dep").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let (mut cluster, ns) = cluster_with_namespace("gcfg").await;
    let client = cluster.client();
    owner_and_dependent(&client, &ns, "fg", true).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    // The owner waits (foregroundDeletion finalizer) while its blocking dependent is being deleted.
    eventually("dependent to be marked for deletion", || {
        let secrets = secrets.clone();
        async move { secrets.get("fg-dep").await.ok()?.metadata.deletion_timestamp.map(|_| ()) }
    })
    .await;
    let owner = cms.get("fg").await.unwrap();
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(owner.metadata.finalizers.unwrap_or_default().contains(&"foregroundDeletion".to_string()));
    secrets
        .patch("fg-dep", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    eventually("owner to be deleted after its dependent", || {
        let cms = cms.clone();
        async move { matches!(cms.get("fg").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_owner_reference() {
    let (mut cluster, ns) = cluster_with_namespace("gcorphan").await;
    let client = cluster.client();
    owner_and_dependent(&client, &ns, "orph", false).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    cms.delete("orph", &DeleteParams::orphan()).await.unwrap();
    eventually("owner to be deleted", || {
        let cms = cms.clone();
        async move { matches!(cms.get("orph").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    let dep = secrets.get("orph-dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    cluster.cleanup().await;
}
