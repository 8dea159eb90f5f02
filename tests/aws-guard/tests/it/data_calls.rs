//! SSM and Secrets Manager reads by a web-identity role: resource-level
//! Allow/Deny with the real ARNs, kms:Decrypt for customer keys.

use crate::support::*;
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};

const SA: (&str, &str) = ("StringEquals", "system:serviceaccount:app:reader");

async fn world_with_role(policy: Value) -> (World, aws_config::SdkConfig) {
    let world = World::start().await;
    world.register_issuer(&[AUDIENCE]).await;
    let role_arn = world.irsa_role("reader", SA, Some(policy)).await;
    let config = world.web_identity_config(&role_arn, &world.issuer.token("app", "reader"));
    (world, config)
}

fn parameter_arn(name: &str) -> String {
    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{}", name.trim_start_matches('/'))
}

#[tokio::test]
async fn a_role_granting_parameter_a_cannot_read_parameter_b() {
    let policy = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["ssm:GetParameter","ssm:GetParameters"], "Resource": parameter_arn("/app/a")}]});
    let (world, config) = world_with_role(policy).await;
    for (name, value) in [("/app/a", "alpha"), ("/app/b", "bravo")] {
        world.admin_ssm().put_parameter().name(name).value(value).r#type(ParameterType::String).send().await.unwrap();
    }
    let ssm = aws_sdk_ssm::Client::new(&config);

    let a = ssm.get_parameter().name("/app/a").send().await.expect("A is granted");
    assert_eq!(a.parameter().and_then(|p| p.value()), Some("alpha"));

    let err = ssm.get_parameter().name("/app/b").send().await.expect_err("B is not granted");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
    let message = error_message(&err);
    assert!(message.contains(":assumed-role/reader/"), "{message}");
    assert!(message.contains(&format!("ssm:GetParameter on resource: {}", parameter_arn("/app/b"))), "{message}");
    assert!(message.contains("because no identity-based policy allows the ssm:GetParameter action"), "{message}");

    // GetParameters is authorized per name, and one refused name fails the whole call.
    let both = ssm.get_parameters().names("/app/a").names("/app/b").send().await.expect_err("B poisons the batch");
    assert_eq!(error_code(&both).as_deref(), Some("AccessDeniedException"));
    assert!(error_message(&both).contains(&parameter_arn("/app/b")));
    let only_a = ssm.get_parameters().names("/app/a").send().await.expect("A alone is fine");
    assert_eq!(only_a.parameters().len(), 1);

    let stats = world.guard.stats();
    assert_eq!(stats.denied("GetParameter"), 1);
    assert_eq!(stats.denied("GetParameters"), 1);
    assert_eq!(stats.calls("GetParameters"), 2);
}

#[tokio::test]
async fn explicit_deny_in_an_attached_policy_beats_a_wildcard_allow() {
    let allow_all = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter*","Resource":"*"}]});
    let (world, config) = world_with_role(allow_all).await;
    let deny = json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ssm:*",
        "Resource": format!("arn:aws:ssm:*:{ACCOUNT}:parameter/app/secret*")}]});
    let policy = world.iam().create_policy().policy_name("deny-secret").policy_document(deny.to_string()).send().await.unwrap();
    let policy_arn = policy.policy().and_then(|p| p.arn()).unwrap().to_string();
    world.iam().attach_role_policy().role_name("reader").policy_arn(&policy_arn).send().await.unwrap();
    for name in ["/app/open", "/app/secret-key"] {
        world.admin_ssm().put_parameter().name(name).value("v").r#type(ParameterType::String).send().await.unwrap();
    }
    let ssm = aws_sdk_ssm::Client::new(&config);
    ssm.get_parameter().name("/app/open").send().await.expect("allowed by the wildcard");
    let err = ssm.get_parameter().name("/app/secret-key").send().await.expect_err("explicitly denied");
    assert!(error_message(&err).contains("with an explicit deny"), "{}", error_message(&err));
}

#[tokio::test]
async fn get_parameters_by_path_is_authorized_on_the_path() {
    let policy = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParametersByPath",
        "Resource": parameter_arn("/app")}]});
    let (world, config) = world_with_role(policy).await;
    for name in ["/app/x", "/app/y", "/other/z"] {
        world.admin_ssm().put_parameter().name(name).value("v").r#type(ParameterType::String).send().await.unwrap();
    }
    let ssm = aws_sdk_ssm::Client::new(&config);
    let got = ssm.get_parameters_by_path().path("/app").recursive(true).send().await.expect("path /app is granted");
    assert_eq!(got.parameters().len(), 2);
    let err = ssm.get_parameters_by_path().path("/other").send().await.expect_err("path /other is not");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn secure_string_with_a_customer_key_needs_kms_decrypt() {
    let read = json!({"Effect":"Allow","Action":"ssm:GetParameter","Resource": parameter_arn("/app/*")});
    let (world, config) = world_with_role(json!({"Version":"2012-10-17","Statement":[read]})).await;
    let key = world.kms().create_key().send().await.unwrap();
    let key_meta = key.key_metadata().unwrap();
    let (key_id, key_arn) = (key_meta.key_id().to_string(), key_meta.arn().unwrap().to_string());
    world.admin_ssm().put_parameter().name("/app/cmk").value("s3cret").r#type(ParameterType::SecureString).key_id(&key_id).send().await.unwrap();
    world.admin_ssm().put_parameter().name("/app/managed").value("m").r#type(ParameterType::SecureString).send().await.unwrap();
    let ssm = aws_sdk_ssm::Client::new(&config);

    let managed = ssm.get_parameter().name("/app/managed").with_decryption(true).send().await.expect("aws/ssm needs no grant");
    assert_eq!(managed.parameter().and_then(|p| p.value()), Some("m"));
    let err = ssm.get_parameter().name("/app/cmk").with_decryption(true).send().await.expect_err("no kms:Decrypt");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
    assert!(error_message(&err).contains(&format!("kms:Decrypt on resource: {key_arn}")), "{}", error_message(&err));
    // Without decryption the ciphertext read needs no key grant.
    ssm.get_parameter().name("/app/cmk").with_decryption(false).send().await.expect("no decryption, no kms check");

    let with_kms = json!({"Version":"2012-10-17","Statement":[read, {"Effect":"Allow","Action":"kms:Decrypt","Resource": key_arn}]});
    world.iam().put_role_policy().role_name("reader").policy_name("reader-read").policy_document(with_kms.to_string()).send().await.unwrap();
    let got = ssm.get_parameter().name("/app/cmk").with_decryption(true).send().await.expect("granted now");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("s3cret"));
}

#[tokio::test]
async fn secrets_manager_reads_follow_the_real_secret_arn() {
    let policy = json!({"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue",
         "Resource": format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-??????")},
        {"Effect":"Allow","Action":"secretsmanager:BatchGetSecretValue","Resource":"*"}]});
    let (world, config) = world_with_role(policy).await;
    let admin = world.admin_secrets();
    admin.create_secret().name("db").secret_string("pw").send().await.unwrap();
    admin.create_secret().name("dbx").secret_string("other").send().await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&config);

    let got = sm.get_secret_value().secret_id("db").send().await.expect("db-?????? matches db's ARN");
    assert_eq!(got.secret_string(), Some("pw"));
    let err = sm.get_secret_value().secret_id("dbx").send().await.expect_err("dbx-?????? is not db-??????");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));
    assert!(error_message(&err).contains(":secret:dbx-"), "{}", error_message(&err));
    let err = sm.describe_secret().secret_id("db").send().await.expect_err("DescribeSecret is not granted");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDeniedException"));

    // The batch answers what may be read and reports the rest per secret.
    let batch = sm.batch_get_secret_value().secret_id_list("db").secret_id_list("dbx").send().await.expect("batch call allowed");
    let names: Vec<_> = batch.secret_values().iter().filter_map(|v| v.name()).collect();
    assert_eq!(names, vec!["db"]);
    let errors: Vec<_> = batch.errors().iter().map(|e| (e.secret_id().unwrap_or_default(), e.error_code().unwrap_or_default())).collect();
    assert_eq!(errors, vec![("dbx", "AccessDeniedException")]);
}

#[tokio::test]
async fn secret_with_a_customer_key_needs_kms_decrypt() {
    let policy = json!({"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]});
    let (world, config) = world_with_role(policy).await;
    let key = world.kms().create_key().send().await.unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    world.admin_secrets().create_secret().name("cmk").secret_string("pw").kms_key_id(&key_arn).send().await.unwrap();
    world.admin_secrets().create_secret().name("plain").secret_string("pw2").send().await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    sm.get_secret_value().secret_id("plain").send().await.expect("default key needs no grant");
    let err = sm.get_secret_value().secret_id("cmk").send().await.expect_err("no kms:Decrypt on the customer key");
    assert!(error_message(&err).contains(&format!("kms:Decrypt on resource: {key_arn}")), "{}", error_message(&err));
}

#[tokio::test]
async fn batch_by_filter_withholds_values_the_role_may_not_read() {
    let policy = json!({"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue",
         "Resource": format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team/db-*")},
        {"Effect":"Allow","Action":["secretsmanager:BatchGetSecretValue","secretsmanager:ListSecrets"],"Resource":"*"}]});
    let (world, config) = world_with_role(policy).await;
    world.admin_secrets().create_secret().name("team/db").secret_string("pw").send().await.unwrap();
    world.admin_secrets().create_secret().name("team/root").secret_string("root").send().await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let filter = aws_sdk_secretsmanager::types::Filter::builder()
        .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
        .values("team/")
        .build();
    let batch = sm.batch_get_secret_value().filters(filter).send().await.expect("batch with filters allowed");
    let names: Vec<_> = batch.secret_values().iter().filter_map(|v| v.name()).collect();
    assert_eq!(names, vec!["team/db"]);
    assert_eq!(batch.errors().len(), 1);
    assert!(batch.errors()[0].secret_id().unwrap_or_default().contains(":secret:team/root-"));
}

#[tokio::test]
async fn policy_cache_is_dropped_by_iam_writes_through_the_guard() {
    let world = World::start_with(|mut options| {
        options.policy_cache_ttl = Some(std::time::Duration::from_secs(3600));
        options
    })
    .await;
    world.register_issuer(&[AUDIENCE]).await;
    let only_a = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource": parameter_arn("/app/a")}]});
    let role_arn = world.irsa_role("reader", SA, Some(only_a)).await;
    for name in ["/app/a", "/app/b"] {
        world.admin_ssm().put_parameter().name(name).value("v").r#type(ParameterType::String).send().await.unwrap();
    }
    let ssm = aws_sdk_ssm::Client::new(&world.web_identity_config(&role_arn, &world.issuer.token("app", "reader")));
    ssm.get_parameter().name("/app/a").send().await.expect("A granted");
    ssm.get_parameter().name("/app/b").send().await.expect_err("B not granted");

    let a_and_b = json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource": parameter_arn("/app/*")}]});
    // Written straight into moto: the guard cannot know, so the cached policy still applies.
    world.iam_direct().put_role_policy().role_name("reader").policy_name("reader-read").policy_document(a_and_b.to_string()).send().await.unwrap();
    ssm.get_parameter().name("/app/b").send().await.expect_err("cached policy still denies B");
    // Any IAM write through the guard drops the cache.
    world.iam().put_role_policy().role_name("reader").policy_name("reader-read").policy_document(a_and_b.to_string()).send().await.unwrap();
    ssm.get_parameter().name("/app/b").send().await.expect("fresh policy grants B");
}

#[tokio::test]
async fn static_credentials_pass_through_as_moto_admin() {
    let world = World::start().await;
    world.admin_ssm().put_parameter().name("/any").value("v").r#type(ParameterType::String).send().await.unwrap();
    let got = world.admin_ssm().get_parameter().name("/any").send().await.expect("admin reads anything");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("v"));
    assert_eq!(world.guard.stats().calls("GetParameter"), 1);
    assert_eq!(world.guard.stats().calls("PutParameter"), 1);
}
