//! The derived IRSA role proven end to end: the Kubernetes stand-in's
//! issuer (HTTPS, its own CA) is registered by `secretbridge_aws_oidc_provider`
//! (thumbprint read from its TLS chain) and trusted by
//! `secretbridge_aws_irsa_role` (wired by reference), applied by real
//! Terraform against moto behind the aws-guard. Then, through the guard,
//! which verifies tokens against the issuer's JWKS and evaluates the trust
//! and identity policies: a TokenRequest token of the right ServiceAccount
//! assumes the role and reads the granted parameter but is denied another
//! one; tokens of another ServiceAccount or another namespace cannot assume
//! the role at all. The trust lookup for plan-time checks
//! (`aws::irsa_trust_subjects`) reads the same role, and nothing after destroy.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_ssm::types::ParameterType;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube_standin::KubeStandin;
use serde_json::json;

use terraform_provider_secretbridge::aws::irsa_trust_subjects;
use terraform_provider_secretbridge::plugin::resource::ProviderContext;

use crate::acceptance::Workdir;
use crate::aws_common::{AwsEnv, REGION, apply, assert_empty_plan};

fn config(issuer: &str) -> String {
    format!(
        r#"resource "secretbridge_aws_oidc_provider" "cluster" {{
  url = "{issuer}"
}}

resource "secretbridge_aws_irsa_role" "reader" {{
  name              = "e2e-reader"
  oidc_provider_arn = secretbridge_aws_oidc_provider.cluster.arn
  namespace         = "apps"
  service_account   = "reader"
  access = {{
    parameters = ["/e2e/granted"]
  }}
}}

output "role_arn" {{
  value = secretbridge_aws_irsa_role.reader.arn
}}
"#
    )
}

/// Creates the ServiceAccount and returns a TokenRequest token for the IRSA audience.
async fn token_for(client: &kube::Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    sas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa"))
        .await
        .expect("create ServiceAccount");
    let request = serde_json::from_value(json!({"spec": {"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600}})).expect("request");
    let response = sas.create_token_request(name, &PostParams::default(), &request).await.expect("TokenRequest");
    response.status.and_then(|s| s.token).expect("token")
}

fn unsigned_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

/// AssumeRoleWithWebIdentity through the guard: the credentials, or the error code.
async fn assume(endpoint: &str, role_arn: &str, token: &str) -> Result<Credentials, String> {
    let sts = aws_sdk_sts::Client::new(&unsigned_config(endpoint));
    match sts.assume_role_with_web_identity().role_arn(role_arn).role_session_name("e2e").web_identity_token(token).send().await {
        Ok(out) => {
            let c = out.credentials().expect("credentials");
            Ok(Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().to_owned()), None, "web-identity"))
        }
        Err(e) => Err(aws_sdk_sts::error::ProvideErrorMetadata::code(&e).unwrap_or("no code").to_owned()),
    }
}

#[test]
fn derived_irsa_role_admits_only_its_service_account_and_grants_only_its_parameter() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let kube = rt.block_on(KubeStandin::start(kube_standin::Options::default())).expect("kube stand-in");
    let env = AwsEnv::start(Some(kube.ca_pem().to_owned()));
    let issuer = kube.issuer().to_owned();
    let admin_ssm = aws_sdk_ssm::Client::new(&env.admin_config());
    for (name, value) in [("/e2e/granted", "granted-value"), ("/e2e/other", "other-value")] {
        env.rt
            .block_on(admin_ssm.put_parameter().name(name).value(value).r#type(ParameterType::String).send())
            .expect("seed parameter");
    }

    let w = Workdir::new("1.15.5");
    env.write_config(&w, &config(&issuer));
    apply(&w);
    assert_empty_plan(&w, "after apply");
    let role_arn = w.ok(&["output", "-raw", "role_arn"]);
    assert_eq!(role_arn, "arn:aws:iam::123456789012:role/e2e-reader");

    let client = rt.block_on(kube.client()).expect("kube client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["apps", "elsewhere"] {
        rt.block_on(namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns")))
            .expect("create namespace");
    }
    let reader = rt.block_on(token_for(&client, "apps", "reader"));
    let other_sa = rt.block_on(token_for(&client, "apps", "other"));
    let other_ns = rt.block_on(token_for(&client, "elsewhere", "reader"));
    let endpoint = env.guard.endpoint();

    // The right ServiceAccount: assumes the role, reads exactly its parameter.
    let credentials = env.rt.block_on(assume(&endpoint, &role_arn, &reader)).expect("apps/reader assumes the role");
    let ssm_config = env
        .admin_config()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build();
    let ssm = aws_sdk_ssm::Client::new(&ssm_config);
    let got = env.rt.block_on(ssm.get_parameter().name("/e2e/granted").send()).expect("the granted parameter is readable");
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("granted-value"));
    let denied = env.rt.block_on(ssm.get_parameter().name("/e2e/other").send()).expect_err("a parameter outside access");
    assert_eq!(aws_sdk_ssm::error::ProvideErrorMetadata::code(&denied), Some("AccessDeniedException"), "{denied:?}");

    // Another ServiceAccount, or the same name in another namespace: refused.
    for (who, token) in [("apps/other", &other_sa), ("elsewhere/reader", &other_ns)] {
        let refused = env.rt.block_on(assume(&endpoint, &role_arn, token)).expect_err(who);
        assert_eq!(refused, "AccessDenied", "{who}");
    }
    assert!(env.guard.stats().denied("AssumeRoleWithWebIdentity") >= 2, "{:?}", env.guard.stats());

    // The plan-time trust lookup other resources use reads the same role.
    let ctx = ProviderContext {
        config: json!({"aws": {"region": REGION, "endpoint": endpoint, "access_key": "testing", "secret_key": "testing"}}),
        ..ProviderContext::default()
    };
    let subjects = env.rt.block_on(irsa_trust_subjects(&ctx, &role_arn)).expect("trust lookup");
    assert_eq!(subjects, Some(vec![("apps".to_owned(), "reader".to_owned())]));

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let gone = env.rt.block_on(irsa_trust_subjects(&ctx, &role_arn)).expect("trust lookup");
    assert_eq!(gone, None, "a deleted role has no trust");
    assert!(env.role_names().is_empty() && env.oidc_provider_arns().is_empty(), "IAM still holds objects after destroy");
}
