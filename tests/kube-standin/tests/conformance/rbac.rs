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
