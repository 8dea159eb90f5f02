use crate::common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn a_runtime_controller_sees_create_update_and_delete() {
    let (mut cluster, ns) = cluster_with_namespace("ctrl").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();

    let reconciled = tx.clone();
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            move |cm: Arc<ConfigMap>, _ctx: Arc<()>| {
                let reconciled = reconciled.clone();
                async move {
                    let v = cm.data.as_ref().and_then(|d| d.get("v")).cloned().unwrap_or_default();
                    let _ = reconciled.send(format!("reconcile {} {v}", cm.metadata.name.clone().unwrap_or_default()));
                    Ok::<_, Never>(Action::await_change())
                }
            },
            |_cm, _err: &Never, _ctx| Action::await_change(),
            Arc::new(()),
        )
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);
    let deletes = tx.clone();
    let watch_api = api.clone();
    let delete_watcher = tokio::spawn(async move {
        let mut events = watcher(watch_api, watcher::Config::default()).boxed();
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Delete(cm) = event {
                let _ = deletes.send(format!("delete {}", cm.metadata.name.unwrap_or_default()));
            }
        }
    });

    let mut wait_for = async |expected: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let line = tokio::time::timeout_at(deadline, rx.recv()).await.expect("event in time").unwrap();
            if line == expected {
                return;
            }
        }
    };

    let created = api
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "watched"}, "data": {"v": "1"}})).unwrap())
        .await
        .unwrap();
    wait_for("reconcile watched 1").await;
    let mut changed = created.clone();
    changed.data = Some([("v".to_string(), "2".to_string())].into());
    api.replace("watched", &PostParams::default(), &changed).await.unwrap();
    wait_for("reconcile watched 2").await;
    api.delete("watched", &Default::default()).await.unwrap();
    wait_for("delete watched").await;

    controller.abort();
    delete_watcher.abort();
    cluster.cleanup().await;
}
