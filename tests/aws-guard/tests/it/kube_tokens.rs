//! Tokens from the Kubernetes stand-in's real TokenRequest API, as the
//! controller gets them: the guard fetches the stand-in's discovery and JWKS
//! over HTTPS (trusting its CA) and admits only the trusted service account.

use crate::support::*;
use crate::web_identity::sts_refusal;
use aws_sdk_iam::config::ProvideCredentials;
use aws_sdk_ssm::types::ParameterType;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube_standin::KubeStandin;
use serde_json::json;

async fn token_request(client: &kube::Client, ns: &str, name: &str, audience: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
        .await
        .unwrap();
    let request = serde_json::from_value(json!({"spec": {"audiences": [audience], "expirationSeconds": 3600}})).unwrap();
    let response = sas.create_token_request(name, &PostParams::default(), &request).await.unwrap();
    response.status.unwrap().token.unwrap()
}

#[tokio::test]
async fn kube_standin_token_request_tokens_assume_only_the_trusted_role() {
    let kube = KubeStandin::start(kube_standin::Options::default()).await.unwrap();
    let kube_ca = kube.ca_pem().to_string();
    let world = World::start_with(|mut options| {
        options.extra_ca_pem = Some(format!("{}\n{kube_ca}", options.extra_ca_pem.unwrap_or_default()));
        options
    })
    .await;
    let issuer = kube.issuer().to_string();
    world.register_issuer_url(&issuer, &[AUDIENCE]).await;
    let policy = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter",
        "Resource": format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/a")}]});
    let role_arn = world
        .irsa_role_for(&issuer, "kube-reader", ("StringEquals", "system:serviceaccount:app:reader"), Some(policy))
        .await;
    world.admin_ssm().put_parameter().name("/app/a").value("alpha").r#type(ParameterType::String).send().await.unwrap();
    world.admin_ssm().put_parameter().name("/app/b").value("bravo").r#type(ParameterType::String).send().await.unwrap();

    let client = kube.client().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "app"}})).unwrap())
        .await
        .unwrap();
    let reader = token_request(&client, "app", "reader", AUDIENCE).await;
    let ssm = aws_sdk_ssm::Client::new(&world.web_identity_config(&role_arn, &reader));
    let got = ssm.get_parameter().name("/app/a").send().await.expect("the trusted SA reads A");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("alpha"));
    let err = ssm.get_parameter().name("/app/b").send().await.expect_err("but not B");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));

    // Another service account of the same cluster is not trusted by the role.
    let other = token_request(&client, "app", "other", AUDIENCE).await;
    let provider = world.web_identity_provider(&role_arn, &other);
    let err = provider.provide_credentials().await.expect_err("untrusted SA is refused");
    assert_eq!(sts_refusal(&err).0, "AccessDenied");
    // A token for the API server's own audience is not accepted by STS.
    let api_audience = token_request(&client, "app", "apiuser", "https://kubernetes.default.svc").await;
    let provider = world.web_identity_provider(&role_arn, &api_audience);
    let err = provider.provide_credentials().await.expect_err("wrong audience is refused");
    assert_eq!(sts_refusal(&err).0, "InvalidIdentityToken");
}
