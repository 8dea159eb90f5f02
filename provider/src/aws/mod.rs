//! AWS access for the `secretbridge_aws_*` resources: SDK clients built
//! from the provider's `aws {}` block (region, profile or static keys,
//! endpoint override), the caller's account from `sts:GetCallerIdentity`
//! (asked once per provider process), SDK errors turned into Terraform
//! diagnostics, and the trust lookup other resources use to check that a
//! role admits a ServiceAccount.
//!
//! [`policy`] derives the policies (pure), [`thumbprint`] reads an issuer's
//! TLS chain.

pub mod policy;
pub mod thumbprint;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use secretbridge_shared::terraform::{AwsConfig, ProviderConfig};

use crate::plugin::diag::{Diagnostic, Diagnostics};
use crate::plugin::resource::ProviderContext;

pub use policy::trust_subject;

/// The provider's `aws {}` block, or an error telling the user to add it.
pub fn config(ctx: &ProviderContext) -> Result<AwsConfig, Diagnostic> {
    let provider: ProviderConfig = ctx.config()?;
    provider.aws.ok_or_else(|| {
        Diagnostic::error(
            "AWS not configured",
            "secretbridge_aws_* resources need an `aws { region = \"...\" }` block in the provider \"secretbridge\" block.",
        )
    })
}

/// SDK clients for one provider configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// The provider's region: the region of derived parameter and secret ARNs.
    pub region: String,
    cache_key: String,
    sdk: SdkConfig,
}

/// Caller ARNs already asked for, per credentials and endpoint: STS
/// answers the same for the life of the process.
static ACCOUNTS: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn cached_account(key: &str) -> Option<String> {
    let guard = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().and_then(|m| m.get(key).cloned())
}

fn remember_account(key: &str, account: &str) {
    let mut guard = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
    guard.get_or_insert_with(HashMap::new).insert(key.to_owned(), account.to_owned());
}

impl AwsClients {
    /// Builds the SDK configuration from the `aws {}` block: static keys
    /// when set, otherwise the standard chain (environment, `profile`, web
    /// identity, instance role); the endpoint from `endpoint` or `AWS_ENDPOINT_URL`.
    pub async fn new(ctx: &ProviderContext) -> Result<AwsClients, Diagnostics> {
        let aws = config(ctx)?;
        let endpoint = aws.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let region = Region::new(aws.region.clone());
        let sdk = match (&aws.access_key, &aws.secret_key) {
            (Some(access_key), Some(secret_key)) => {
                let mut builder = SdkConfig::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(region)
                    .http_client(http)
                    .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                        access_key,
                        secret_key,
                        None,
                        None,
                        "secretbridge-provider-block",
                    )));
                if let Some(endpoint) = &endpoint {
                    builder = builder.endpoint_url(endpoint.clone());
                }
                builder.build()
            }
            (None, None) => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region).http_client(http);
                if let Some(profile) = &aws.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(endpoint) = &endpoint {
                    loader = loader.endpoint_url(endpoint.clone());
                }
                loader.load().await
            }
            _ => {
                return Err(Diagnostic::error(
                    "Incomplete AWS credentials",
                    "aws.access_key and aws.secret_key must be set together; set both, or neither to use the standard credential chain.",
                )
                .into());
            }
        };
        let cache_key = format!(
            "{}|{}|{}|{}",
            endpoint.unwrap_or_default(),
            aws.access_key.as_deref().unwrap_or_default(),
            aws.profile.as_deref().unwrap_or_default(),
            aws.region
        );
        Ok(AwsClients { region: aws.region, cache_key, sdk })
    }

    /// IAM.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }

    /// STS.
    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }

    /// The caller's account ID (`sts:GetCallerIdentity`), asked once per process.
    pub async fn account_id(&self) -> Result<String, Diagnostics> {
        Ok(self.caller().await?.0)
    }

    /// The caller's account ID and ARN partition (`aws`, `aws-cn`...), from
    /// `sts:GetCallerIdentity`, asked once per process.
    pub async fn caller(&self) -> Result<(String, String), Diagnostics> {
        let caller_arn = match cached_account(&self.cache_key) {
            Some(arn) => arn,
            None => {
                let out = self
                    .sts()
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| api_error("identify the AWS account (sts:GetCallerIdentity)", "the provider's credentials", &e))?;
                let arn = out.arn().unwrap_or_default().to_owned();
                remember_account(&self.cache_key, &arn);
                arn
            }
        };
        match policy::Arn::parse(&caller_arn) {
            Some(arn) if !arn.account.is_empty() => Ok((arn.account, arn.partition)),
            _ => Err(Diagnostic::error(
                "Could not identify the AWS account",
                format!("sts:GetCallerIdentity answered the caller ARN {caller_arn:?}, which names no account; check aws.endpoint points at STS."),
            )
            .into()),
        }
    }
}

/// The error code IAM/STS answered with, e.g. `NoSuchEntity`.
pub fn code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Whether the service answered that the entity does not exist.
pub fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    code(e) == Some("NoSuchEntity")
}

/// Whether the endpoint answered an HTTP 5xx that is not an AWS error
/// document: the operation is not implemented there (moto answers its
/// missing operations with a bare HTML 500 page).
pub fn is_unimplemented<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(service) => service.raw().status().is_server_error() && service.err().code().is_none(),
        _ => false,
    }
}

/// A diagnostic for a failed AWS call: what was attempted, on what, and what to check.
pub fn api_error<E>(action: &str, resource: &str, e: &SdkError<E, HttpResponse>) -> Diagnostics
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let fix = match code(e) {
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => {
            "the credentials lack the IAM permission; grant it to the caller"
        }
        Some("InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "UnrecognizedClientException") => {
            "the credentials were refused; refresh them or check aws.profile / aws.access_key"
        }
        Some("NoSuchEntity") => "check that it exists in this account",
        Some("EntityAlreadyExists") => "import the existing object with `terraform import` instead of creating it",
        Some("MalformedPolicyDocument" | "ValidationError" | "InvalidInput") => "fix the value IAM rejected",
        Some("LimitExceeded" | "Throttling") => "an IAM limit or rate was hit; apply again later",
        Some("DeleteConflict") => "something else still uses it; detach it first",
        _ => "check aws.endpoint, the region and network access, then apply again",
    };
    Diagnostic::error(format!("Could not {action}"), format!("{resource}: {}; {fix}.", DisplayErrorContext(e))).into()
}

/// The `(namespace, service account)` pairs the role's trust policy admits
/// through web identity (`system:serviceaccount:NS:SA` in a `StringEquals`
/// on `ISSUER:sub`); `Ok(None)` when the role does not exist. Used at plan
/// time to check that a ServiceAccount annotated with `role_arn` can
/// actually assume it.
pub async fn irsa_trust_subjects(ctx: &ProviderContext, role_arn: &str) -> Result<Option<Vec<(String, String)>>, Diagnostic> {
    let first = |d: Diagnostics| {
        d.0.into_iter()
            .next()
            .unwrap_or_else(|| Diagnostic::error("Could not read the IAM role", format!("reading {role_arn} failed")))
    };
    let Some(name) = policy::Arn::parse(role_arn)
        .filter(|arn| arn.service == "iam")
        .and_then(|arn| arn.resource.strip_prefix("role/").and_then(|r| r.rsplit('/').next()).map(str::to_owned))
    else {
        return Err(Diagnostic::error(
            "Invalid role ARN",
            format!("{role_arn:?} is not an IAM role ARN; use arn:aws:iam::ACCOUNT:role/NAME, e.g. secretbridge_aws_irsa_role.NAME.arn."),
        ));
    };
    let clients = AwsClients::new(ctx).await.map_err(first)?;
    let role = match clients.iam().get_role().role_name(&name).send().await {
        Ok(out) => out,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(first(api_error("read the IAM role", role_arn, &e))),
    };
    let raw = role.role().and_then(|r| r.assume_role_policy_document()).unwrap_or("{}");
    let doc = policy::canonical_from_iam(raw)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text))
        .map_err(|e| Diagnostic::error("Unreadable trust policy", format!("the trust policy of {role_arn} is not JSON: {e}")))?;
    Ok(Some(subjects_of(&doc)))
}

/// The `(namespace, service account)` pairs of a trust policy, sorted, once each.
pub fn subjects_of(trust: &serde_json::Value) -> Vec<(String, String)> {
    let mut subjects: Vec<(String, String)> = policy::trusted_subjects(trust).into_iter().map(|(_, ns, sa)| (ns, sa)).collect();
    subjects.sort();
    subjects.dedup();
    subjects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_come_from_the_derived_trust() {
        let provider = "arn:aws:iam::123456789012:oidc-provider/127.0.0.1:6443";
        let trust = policy::trust_policy(provider, "apps", "reader");
        assert_eq!(subjects_of(&trust), vec![("apps".to_owned(), "reader".to_owned())]);
        let mut two = trust.clone();
        if let Some(statements) = two["Statement"].as_array_mut() {
            let mut other = statements[0].clone();
            other["Condition"]["StringEquals"]["127.0.0.1:6443:sub"] = serde_json::json!("system:serviceaccount:ops:backup");
            statements.push(other);
        }
        assert_eq!(
            subjects_of(&two),
            vec![("apps".to_owned(), "reader".to_owned()), ("ops".to_owned(), "backup".to_owned())]
        );
        assert_eq!(subjects_of(&serde_json::json!({"Statement": []})), Vec::<(String, String)>::new());
    }
}
