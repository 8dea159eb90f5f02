use crate::common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube_standin::Options;
use kube_standin::testing::Cluster;
use serde_json::json;
use std::time::Duration;

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": value}})).unwrap()
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_in_order() {
    let (mut cluster, ns) = cluster_with_namespace("watch").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let a = api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
    let from = a.metadata.resource_version.clone().unwrap();
    let mut a2 = a.clone();
    a2.data = Some([("v".to_string(), "2".to_string())].into());
    api.replace("a", &PostParams::default(), &a2).await.unwrap();
    api.create(&PostParams::default(), &cm("b", "1")).await.unwrap();
    api.delete("a", &Default::default()).await.unwrap();

    let stream = api.watch(&WatchParams::default().timeout(30), &from).await.unwrap();
    let mut stream = stream.boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        match event {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {} {}", o.metadata.name.unwrap(), o.data.unwrap()["v"])),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["MODIFIED a 2", "ADDED b", "DELETED a"]);
    cluster.cleanup().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_gone_410() {
    let options = Options { watch_history: 8, ..Options::default() };
    let mut cluster = Cluster::from_env_or_start_with(options).await.unwrap();
    let ns = cluster.create_namespace("gone").await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), "x")).await.unwrap();
    }
    // "1" is older than any retained history (the stand-in keeps 8 events; real clusters compact).
    match api.watch(&WatchParams::default().timeout(10), "1").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        Ok(stream) => {
            let mut stream = stream.boxed();
            let first = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
                .await
                .expect("event in time")
                .unwrap()
                .expect("an event");
            match first {
                WatchEvent::Error(e) => {
                    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
                    assert!(e.message.starts_with("too old resource version: 1"), "{}", e.message);
                }
                other => panic!("expected 410 ERROR event, got {other:?}"),
            }
        }
        Err(other) => panic!("unexpected error {other}"),
    }
    cluster.cleanup().await;
}

#[tokio::test]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let (mut cluster, ns) = cluster_with_namespace("bookmark").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    api.create(&PostParams::default(), &cm("one", "1")).await.unwrap();
    let stream = api.watch(&WatchParams::streaming_lists().timeout(30), "").await.unwrap();
    let mut stream = stream.boxed();
    let mut added = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        match event {
            WatchEvent::Added(o) => added.push(o.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                if b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str) == Some("true") {
                    assert!(!b.metadata.resource_version.is_empty());
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(added.contains(&"one".to_string()), "{added:?}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_label_selected_watch_sees_objects_enter_and_leave_the_selection() {
    let (mut cluster, ns) = cluster_with_namespace("watchsel").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let created = api.create(&PostParams::default(), &cm("sel", "1")).await.unwrap();
    let from = created.metadata.resource_version.clone().unwrap();
    let label = |on: bool| json!({"metadata": {"labels": {"picked": if on { "yes" } else { "no" }}}});
    api.patch("sel", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(label(true))).await.unwrap();
    api.patch("sel", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(label(false))).await.unwrap();

    let stream = api.watch(&WatchParams::default().labels("picked=yes").timeout(30), &from).await.unwrap();
    let mut stream = stream.boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        match event {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED sel", "DELETED sel"]);
    cluster.cleanup().await;
}
