//! AssumeRoleWithWebIdentity through the SDK's normal web-identity chain:
//! the right service account gets in; wrong sub/aud, forged or expired tokens
//! and unregistered issuers do not.

use crate::support::*;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use aws_sdk_iam::config::ProvideCredentials;
use serde_json::json;

fn read_a_policy() -> serde_json::Value {
    json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter",
        "Resource": format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/a")}]})
}

/// The STS error code and message behind a failed credentials load.
pub fn sts_refusal(err: &(dyn std::error::Error + 'static)) -> (String, String) {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(sdk) = e.downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>()
            && let Some(service) = sdk.as_service_error()
        {
            return (service.code().unwrap_or_default().into(), service.message().unwrap_or_default().into());
        }
        current = e.source();
    }
    panic!("no STS service error in {}", aws_sdk_sts::error::DisplayErrorContext(err));
}

async fn refused(world: &World, role_arn: &str, token: &str) -> (String, String) {
    let provider = world.web_identity_provider(role_arn, token);
    let err = provider.provide_credentials().await.expect_err("the guard must refuse this token");
    sts_refusal(&err)
}

#[tokio::test]
async fn admits_the_trusted_service_account_and_attributes_its_calls_to_the_role() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), Some(read_a_policy())).await;
    world.admin_ssm().put_parameter().name("/app/a").value("alpha").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap();

    let config = world.web_identity_config(&role_arn, &world.issuer.token("app", "reader"));
    let creds = config.credentials_provider().unwrap().provide_credentials().await.expect("trusted SA is admitted");
    let session = world.guard.session(creds.access_key_id()).expect("guard remembers the issued key");
    assert_eq!(session.role_arn, role_arn);
    assert!(session.assumed_role_arn.contains(":assumed-role/reader/"), "{}", session.assumed_role_arn);

    let ssm = aws_sdk_ssm::Client::new(&config);
    let got = ssm.get_parameter().name("/app/a").send().await.expect("role grants /app/a");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("alpha"));
    let stats = world.guard.stats();
    assert!(stats.calls("AssumeRoleWithWebIdentity") >= 1);
    assert_eq!(stats.denied("AssumeRoleWithWebIdentity"), 0);
}

#[tokio::test]
async fn refuses_a_service_account_the_trust_policy_does_not_name() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), None).await;
    let (code, message) = refused(&world, &role_arn, &world.issuer.token("app", "intruder")).await;
    assert_eq!(code, "AccessDenied");
    assert!(message.contains("sts:AssumeRoleWithWebIdentity"), "{message}");
    assert_eq!(world.guard.stats().denied("AssumeRoleWithWebIdentity"), 1);
}

#[tokio::test]
async fn string_like_trust_admits_the_namespace_and_nothing_else() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("ns-reader", ("StringLike", "system:serviceaccount:app:*"), None).await;
    let ok = world.web_identity_provider(&role_arn, &world.issuer.token("app", "anyone"));
    ok.provide_credentials().await.expect("any SA in namespace app is trusted");
    let (code, _) = refused(&world, &role_arn, &world.issuer.token("other", "anyone")).await;
    assert_eq!(code, "AccessDenied");
}

#[tokio::test]
async fn refuses_a_token_for_another_audience() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), None).await;
    let token = world.issuer.key.sign(&world.issuer.claims("app", "reader", "vault", 3600));
    let (code, message) = refused(&world, &role_arn, &token).await;
    assert_eq!(code, "InvalidIdentityToken");
    assert!(message.contains("audience"), "{message}");
}

#[tokio::test]
async fn refuses_a_token_signed_with_another_key() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), None).await;
    // Same kid, same claims, wrong private key.
    let forged = world.issuer.forger.sign(&world.issuer.claims("app", "reader", AUDIENCE, 3600));
    let (code, message) = refused(&world, &role_arn, &forged).await;
    assert_eq!(code, "InvalidIdentityToken");
    assert!(message.contains("signature"), "{message}");
    // A tampered payload with the genuine signature fails the same way.
    let genuine = world.issuer.token("app", "reader");
    let parts: Vec<&str> = genuine.split('.').collect();
    let other_payload = world.issuer.token("app", "admin");
    let tampered = format!("{}.{}.{}", parts[0], other_payload.split('.').nth(1).unwrap(), parts[2]);
    let (code, _) = refused(&world, &role_arn, &tampered).await;
    assert_eq!(code, "InvalidIdentityToken");
}

#[tokio::test]
async fn refuses_an_expired_token() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), None).await;
    let expired = world.issuer.key.sign(&world.issuer.claims("app", "reader", AUDIENCE, -120));
    let (code, message) = refused(&world, &role_arn, &expired).await;
    assert_eq!(code, "ExpiredTokenException");
    assert!(message.contains("expir"), "{message}");
}

#[tokio::test]
async fn refuses_an_issuer_that_is_not_an_iam_oidc_provider() {
    let world = World::start().await;
    let role_arn = world.irsa_role("reader", ("StringEquals", "system:serviceaccount:app:reader"), None).await;
    let (code, message) = refused(&world, &role_arn, &world.issuer.token("app", "reader")).await;
    assert_eq!(code, "InvalidIdentityToken");
    assert!(message.contains("No OpenIDConnect provider"), "{message}");
}

/// The provider's client ids as IAM (moto, behind the guard) reports them.
async fn client_ids(world: &World, arn: &str) -> Vec<String> {
    let got = world.iam().get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.unwrap();
    got.client_id_list().to_vec()
}

#[tokio::test]
async fn client_ids_added_and_removed_through_the_guard_change_who_may_assume() {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{}", world.issuer.url.trim_start_matches("https://"));
    let host_path = world.issuer.url.trim_start_matches("https://").to_string();
    // Trust without an aud condition: only the provider's client id list decides the audience.
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{host_path}:sub"): "system:serviceaccount:app:reader"}}
    }]});
    let role_arn = world.role_with("reader", &trust, None).await;
    let vault_token = world.issuer.key.sign(&world.issuer.claims("app", "reader", "vault", 3600));
    let (code, _) = refused(&world, &role_arn, &vault_token).await;
    assert_eq!(code, "InvalidIdentityToken");

    let iam = world.iam();
    iam.add_client_id_to_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id("vault").send().await.expect("add");
    // Idempotent, like IAM: adding it again changes nothing.
    iam.add_client_id_to_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id("vault").send().await.expect("add again");
    assert_eq!(client_ids(&world, &arn).await, [AUDIENCE, "vault"]);
    // moto itself holds the list (reads that bypass the guard agree), thumbprints kept.
    let direct = world.iam_direct().get_open_id_connect_provider().open_id_connect_provider_arn(&arn).send().await.unwrap();
    assert_eq!(direct.client_id_list(), [AUDIENCE, "vault"]);
    assert_eq!(direct.thumbprint_list(), ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]);
    // The audience check uses the new list.
    world.web_identity_provider(&role_arn, &vault_token).provide_credentials().await.expect("vault audience admitted");

    iam.remove_client_id_from_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id(AUDIENCE).send().await.expect("remove");
    iam.remove_client_id_from_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id("absent").send().await.expect("remove absent");
    assert_eq!(client_ids(&world, &arn).await, ["vault"]);

    let missing = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/nowhere.example.com");
    let err = iam.add_client_id_to_open_id_connect_provider().open_id_connect_provider_arn(&missing).client_id("x").send().await.unwrap_err();
    assert_eq!(aws_sdk_iam::error::ProvideErrorMetadata::code(&err), Some("NoSuchEntity"));
    assert_eq!(world.guard.stats().calls("AddClientIDToOpenIDConnectProvider"), 3);
}
