//! `sts:AssumeRole` from a web-identity session (a role chain, as ESO's
//! `provider.aws.role` does): both the caller's identity policy and the
//! target's trust policy must allow it, and the chained session reads what
//! the target role grants, not what the first role grants.

use crate::support::*;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};

const FIRST: &str = "irsa-first";
const TARGET: &str = "chain-target";

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn parameter_arn(name: &str) -> String {
    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{}", name.trim_start_matches('/'))
}

/// An identity policy: `ssm:GetParameter` on `parameter`, plus `sts:AssumeRole` on `assume` if given.
fn policy(parameter: &str, assume: Option<&str>) -> Value {
    let mut statements = vec![json!({"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": parameter_arn(parameter)})];
    if let Some(target) = assume {
        statements.push(json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A role whose trust policy lets the AWS principal `trusted` call `sts:AssumeRole`.
async fn target_role(world: &World, trusted: &str, inline_policy: Value) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]});
    world.role_with(TARGET, &trust, Some(inline_policy)).await
}

async fn put(world: &World, name: &str, value: &str) {
    world
        .admin_ssm()
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
}

/// The first role (IRSA, trusting `app:reader`) with `first_policy`, and an STS
/// client signed with its web-identity session.
async fn first_session(world: &World, first_policy: Value) -> (String, aws_sdk_sts::Client) {
    world.register_issuer(&[AUDIENCE]).await;
    let first = world.irsa_role(FIRST, ("StringEquals", "system:serviceaccount:app:reader"), Some(first_policy)).await;
    let config = world.web_identity_config(&first, &world.issuer.token("app", "reader"));
    (first, aws_sdk_sts::Client::new(&config))
}

/// SDK config signing with the credentials of an `AssumeRole` answer.
fn chained_config(world: &World, credentials: &aws_sdk_sts::types::Credentials) -> SdkConfig {
    let creds = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        None,
        "chain",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(world.guard.endpoint())
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

#[tokio::test]
async fn a_chained_session_reads_what_the_target_grants_and_not_what_the_first_role_grants() {
    let world = World::start().await;
    put(&world, "/app/first", "first-only").await;
    put(&world, "/app/target", "target-only").await;
    let (first, sts) = first_session(&world, policy("/app/first", Some(&role_arn(TARGET)))).await;
    let target = target_role(&world, &first, policy("/app/target", None)).await;

    let too_long = sts.assume_role().role_arn(&target).role_session_name("chain").duration_seconds(7200).send().await;
    let err = too_long.expect_err("a chained session is capped at an hour");
    assert_eq!(error_code(&err).as_deref(), Some("ValidationError"));
    assert!(error_message(&err).contains("1 hour session limit"), "{}", error_message(&err));

    let out = sts.assume_role().role_arn(&target).role_session_name("chain").send().await.expect("the chain is allowed");
    let credentials = out.credentials().expect("AssumeRole answers credentials");
    let session = world.guard.session(credentials.access_key_id()).expect("the guard remembers the chained key");
    assert_eq!(session.role_arn, target);
    assert_eq!(session.assumed_role_arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/{TARGET}/chain"));

    let ssm = aws_sdk_ssm::Client::new(&chained_config(&world, credentials));
    let got = ssm.get_parameter().name("/app/target").send().await.expect("the target role grants /app/target");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("target-only"));
    let err = ssm.get_parameter().name("/app/first").send().await.expect_err("only the first role grants /app/first");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
    assert!(error_message(&err).contains(&session.assumed_role_arn), "{}", error_message(&err));
    let stats = world.guard.stats();
    assert_eq!(stats.calls("AssumeRole"), 2, "{stats:?}");
    assert_eq!(stats.denied("AssumeRole"), 1, "only the over-long request: {stats:?}");
}

#[tokio::test]
async fn refuses_a_chain_the_first_roles_policy_does_not_allow() {
    let world = World::start().await;
    let (first, sts) = first_session(&world, policy("/app/first", None)).await;
    let target = target_role(&world, &first, policy("/app/target", None)).await;
    let err = sts.assume_role().role_arn(&target).role_session_name("chain").send().await.expect_err("no sts:AssumeRole grant");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    assert_eq!(
        error_message(&err),
        format!("User: arn:aws:sts::{ACCOUNT}:assumed-role/{FIRST}/guard-test is not authorized to perform: sts:AssumeRole on resource: {target}")
    );
    assert_eq!(world.guard.stats().denied("AssumeRole"), 1);

    // A trust policy naming the session principal itself needs no identity
    // grant in the same account (AWS's policy evaluation logic).
    let session_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{FIRST}/guard-test");
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": session_arn}, "Action": "sts:AssumeRole"}]});
    world.iam().update_assume_role_policy().role_name(TARGET).policy_document(trust.to_string()).send().await.unwrap();
    sts.assume_role().role_arn(&target).role_session_name("chain").send().await.expect("the trust names the session itself");
}

#[tokio::test]
async fn refuses_a_chain_the_targets_trust_policy_does_not_name() {
    let world = World::start().await;
    let (_first, sts) = first_session(&world, policy("/app/first", Some(&role_arn(TARGET)))).await;
    // IAM only accepts trust principals that exist.
    let someone_else = world.irsa_role("someone-else", ("StringEquals", "system:serviceaccount:app:other"), None).await;
    let target = target_role(&world, &someone_else, policy("/app/target", None)).await;
    let err = sts.assume_role().role_arn(&target).role_session_name("chain").send().await.expect_err("not trusted");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    assert!(error_message(&err).contains(&format!("sts:AssumeRole on resource: {target}")), "{}", error_message(&err));
    let missing = role_arn("no-such-role");
    let err = sts.assume_role().role_arn(&missing).role_session_name("chain").send().await.expect_err("no such role");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"), "a missing role is refused like an untrusting one");
    assert_eq!(world.guard.stats().denied("AssumeRole"), 2);
}
