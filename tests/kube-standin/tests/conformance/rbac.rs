use crate::common::*;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn rbac_allows_bound_verbs_and_denies_everything_else_with_real_messages() {
    let (mut cluster, home) = cluster_with_namespace("rbac-home").await;
    let other = cluster.create_namespace("rbac-other").await.unwrap();
    let client = cluster.client();
    create_secret(&client, &home, json!({"metadata": {"name": "mine"}})).await;
    create_secret(&client, &other, json!({"metadata": {"name": "theirs"}})).await;

    let roles: Api<Role> = Api::namespaced(client.clone(), &home);
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]
        })).unwrap())
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &home);
    bindings
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": home}]
        })).unwrap())
        .await
        .unwrap();
    let token = service_account_token(&client, &home, "reader").await;
    let user = format!("system:serviceaccount:{home}:reader");
    let as_reader = cluster.client_for_token(&token).await.unwrap();

    // RBAC is evaluated asynchronously from the informer cache on real clusters: poll for the grant.
    let home_secrets: Api<Secret> = Api::namespaced(as_reader.clone(), &home);
    eventually("the role binding to take effect", || {
        let home_secrets = home_secrets.clone();
        async move { home_secrets.get("mine").await.ok() }
    })
    .await;
    assert!(home_secrets.list(&ListParams::default()).await.is_ok());

    let other_secrets: Api<Secret> = Api::namespaced(as_reader.clone(), &other);
    let denied = api_error(other_secrets.get("theirs").await);
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        format!("secrets \"theirs\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{other}\"")
    );

    let cms: Api<ConfigMap> = Api::namespaced(as_reader.clone(), &home);
    let denied = api_error(cms.list(&ListParams::default()).await);
    assert_eq!(
        denied.message,
        format!("configmaps is forbidden: User \"{user}\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"{home}\"")
    );

    let sas: Api<ServiceAccount> = Api::namespaced(as_reader.clone(), &home);
    let request = serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap();
    let denied = api_error(sas.create_token_request("reader", &PostParams::default(), &request).await);
    assert_eq!(
        denied.message,
        format!("serviceaccounts \"reader\" is forbidden: User \"{user}\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"{home}\"")
    );

    let crs: Api<ClusterRole> = Api::all(as_reader.clone());
    let denied = api_error(crs.list(&ListParams::default()).await);
    assert_eq!(
        denied.message,
        format!("clusterroles.rbac.authorization.k8s.io is forbidden: User \"{user}\" cannot list resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope")
    );

    // Self-subject access reviews answer the same question without trying.
    let ssar: Api<SelfSubjectAccessReview> = Api::all(as_reader.clone());
    let ask = |ns: &str| {
        serde_json::from_value::<SelfSubjectAccessReview>(json!({"spec": {"resourceAttributes": {"namespace": ns, "verb": "get", "resource": "secrets"}}})).unwrap()
    };
    assert!(ssar.create(&PostParams::default(), &ask(&home)).await.unwrap().status.unwrap().allowed);
    assert!(!ssar.create(&PostParams::default(), &ask(&other)).await.unwrap().status.unwrap().allowed);

    // A ClusterRoleBinding grants across namespaces.
    let name = format!("standin-ns-reader-{home}");
    let crs_admin: Api<ClusterRole> = Api::all(client.clone());
    crs_admin
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]
        })).unwrap())
        .await
        .unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    crbs.create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": home}]
        })).unwrap())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(as_reader.clone());
    eventually("the cluster role binding to take effect", || {
        let namespaces = namespaces.clone();
        let other = other.clone();
        async move { namespaces.get(&other).await.ok() }
    })
    .await;
    let _ = crbs.delete(&name, &Default::default()).await;
    let _ = crs_admin.delete(&name, &Default::default()).await;
    cluster.cleanup().await;
}

/// GETs a path and answers the HTTP status code (the client's error mapping folded back).
async fn get_status(client: &kube::Client, path: &str) -> (u16, String) {
    let request = hyper::http::Request::get(path).body(Vec::new()).unwrap();
    match client.request_text(request).await {
        Ok(_) => (200, String::new()),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("GET {path}: {other:?}"),
    }
}

#[tokio::test]
async fn non_resource_urls_follow_the_bootstrap_roles_and_non_resource_rules() {
    let (mut cluster, ns) = cluster_with_namespace("rbac-paths").await;
    let client = cluster.client();
    let anonymous = cluster.anonymous_client().await.unwrap();
    // system:public-info-viewer is bound to system:unauthenticated; system:discovery is not.
    assert_eq!(get_status(&anonymous, "/version").await.0, 200);
    assert_eq!(get_status(&anonymous, "/healthz").await.0, 200);
    let (code, message) = get_status(&anonymous, "/api").await;
    assert_eq!(code, 403);
    assert_eq!(message, "forbidden: User \"system:anonymous\" cannot get path \"/api\"");
    assert_eq!(get_status(&anonymous, "/apis").await.0, 403);
    // Without credentials, resources are forbidden, not unauthorized.
    let (code, _) = get_status(&anonymous, &format!("/api/v1/namespaces/{ns}/secrets")).await;
    assert_eq!(code, 403);

    // Any authenticated user reads discovery (system:discovery) and a ServiceAccount reads the
    // issuer's keys (system:service-account-issuer-discovery); nothing else without a grant.
    let token = service_account_token(&client, &ns, "prober").await;
    let user = format!("system:serviceaccount:{ns}:prober");
    let prober = cluster.client_for_token(&token).await.unwrap();
    for path in ["/api", "/apis", "/version", "/.well-known/openid-configuration", "/openid/v1/jwks"] {
        assert_eq!(get_status(&prober, path).await.0, 200, "{path}");
    }
    // A path no role grants is refused before routing: 403 whether or not it exists.
    let probe = "/secretbridge-conformance/probe";
    let (code, message) = get_status(&prober, probe).await;
    assert_eq!((code, message), (403, format!("forbidden: User \"{user}\" cannot get path \"{probe}\"")));

    // A ClusterRole with nonResourceURLs grants it (and only for the verbs it lists): the path
    // then answers what the server has there, 404.
    let name = format!("standin-probe-{ns}");
    let crs: Api<ClusterRole> = Api::all(client.clone());
    crs.create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"nonResourceURLs": ["/secretbridge-conformance/*"], "verbs": ["get"]}]
        })).unwrap())
        .await
        .unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    crbs.create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "prober", "namespace": ns}]
        })).unwrap())
        .await
        .unwrap();
    eventually("the non-resource grant to take effect", || {
        let prober = prober.clone();
        async move { (get_status(&prober, probe).await.0 == 404).then_some(()) }
    })
    .await;
    assert_eq!(get_status(&anonymous, probe).await.0, 403);
    let _ = crbs.delete(&name, &Default::default()).await;
    let _ = crs.delete(&name, &Default::default()).await;
    cluster.cleanup().await;
}
