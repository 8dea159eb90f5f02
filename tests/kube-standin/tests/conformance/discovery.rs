use crate::common::*;
use kube_standin::testing::Cluster;

#[tokio::test]
async fn kubectl_gets_applies_and_creates_tokens() {
    let (mut cluster, ns) = cluster_with_namespace("kubectl").await;
    let kc = cluster.kubeconfig_path().to_path_buf();
    let (ok, out, err) = kubectl(&kc, &["get", "namespaces", "-o", "name"], None).await;
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == format!("namespace/{ns}")), "{out}");

    let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: {ns}\ndata:\n  k: one\n");
    let (ok, out, err) = kubectl(&kc, &["apply", "-f", "-"], Some(&manifest)).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("configmap/applied created"), "{out}");
    let (ok, out, err) = kubectl(&kc, &["apply", "-f", "-"], Some(&manifest.replace("k: one", "k: two"))).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("configmap/applied configured"), "{out}");
    let (ok, out, err) = kubectl(&kc, &["get", "configmap", "applied", "-n", &ns, "-o", "jsonpath={.data.k}"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out, "two");

    let (ok, out, err) = kubectl(&kc, &["apply", "--server-side", "-f", "-"], Some(&manifest.replace("k: one", "k: three").replace("name: applied", "name: ssa"))).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");

    let (ok, _, err) = kubectl(&kc, &["create", "serviceaccount", "bot", "-n", &ns], None).await;
    assert!(ok, "{err}");
    let (ok, out, err) = kubectl(&kc, &["create", "token", "bot", "-n", &ns], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim().split('.').count(), 3, "{out}");

    let (ok, out, err) = kubectl(&kc, &["get", "configmaps", "-n", &ns], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("applied"), "{out}");
    cluster.cleanup().await;
}

#[tokio::test]
async fn discovery_lists_core_and_group_resources() {
    let cluster = Cluster::from_env_or_start().await.unwrap();
    let discovery = kube::Discovery::new(cluster.client()).run().await.unwrap();
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, _) in group.recommended_resources() {
            found.push(format!("{}/{}", resource.group, resource.plural));
        }
    }
    for expected in ["/secrets", "/serviceaccounts", "/configmaps", "/namespaces", "coordination.k8s.io/leases", "events.k8s.io/events", "apiextensions.k8s.io/customresourcedefinitions", "rbac.authorization.k8s.io/roles"] {
        assert!(found.iter().any(|f| f == expected), "{expected} missing from {found:?}");
    }
}

#[tokio::test]
async fn aggregated_discovery_serves_the_same_resources() {
    let (mut cluster, _ns) = cluster_with_namespace("aggdisc").await;
    crate::crd::install_widgets(&cluster).await;
    let discovery = kube::Discovery::new(cluster.client()).run_aggregated().await.unwrap();
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            found.push((format!("{}/{}", resource.group, resource.plural), caps.scope.clone()));
        }
    }
    let scope_of = |name: &str| found.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
    assert_eq!(scope_of("/secrets"), Some(kube::discovery::Scope::Namespaced));
    assert_eq!(scope_of("/namespaces"), Some(kube::discovery::Scope::Cluster));
    assert_eq!(scope_of("standin.test/widgets"), Some(kube::discovery::Scope::Namespaced));
    assert_eq!(scope_of("coordination.k8s.io/leases"), Some(kube::discovery::Scope::Namespaced));
    let (_, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk("standin.test", "v1", "Widget"))
        .unwrap();
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "status" || r.plural.ends_with("/status")), "{:?}", caps.subresources);
    cluster.cleanup().await;
}
