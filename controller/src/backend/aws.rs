//! The real AWS clients behind [`ParameterSource`] and [`SecretSource`], and
//! the STS calls that turn a ServiceAccount token into credentials.

use super::{CallError, CallErrorKind, ParameterBatch, ParameterSource, SecretSource, SecretVersion};
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider, SharedHttpClient};
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use futures::future::BoxFuture;
use std::time::SystemTime;

/// Where and how the controller talks to AWS.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// `AWS_ENDPOINT_URL`, if set: one endpoint for every AWS service (tests).
    pub endpoint: Option<String>,
    /// The HTTP client (rustls with ring).
    pub http: SharedHttpClient,
}

impl AwsSettings {
    /// Settings from the environment (`AWS_ENDPOINT_URL`).
    pub fn from_env() -> Self {
        AwsSettings {
            endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()),
            http: aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                .build_https(),
        }
    }

    fn base(&self, region: &str, credentials: Option<Credentials>, retry: Option<RetryConfig>) -> SdkConfig {
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .http_client(self.http.clone());
        if let Some(endpoint) = &self.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        if let Some(credentials) = credentials {
            builder = builder.credentials_provider(SharedCredentialsProvider::new(credentials));
        }
        if let Some(retry) = retry {
            builder = builder.retry_config(retry);
        }
        builder.build()
    }

    /// The SDK config for a region with the given credentials, or the
    /// controller's default chain (IRSA on EKS) when `None`; `retry` is the
    /// store's retry strategy (`None`: the SDK's default).
    pub async fn config(&self, region: &str, credentials: Option<Credentials>, retry: Option<RetryConfig>) -> SdkConfig {
        match credentials {
            Some(credentials) => self.base(region, Some(credentials), retry),
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(region.to_string()))
                    .http_client(self.http.clone());
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint.clone());
                }
                if let Some(retry) = retry {
                    loader = loader.retry_config(retry);
                }
                loader.load().await
            }
        }
    }

    /// `AssumeRoleWithWebIdentity` (unsigned), returning the credentials and their expiry.
    pub async fn assume_role_with_web_identity(&self, region: &str, role_arn: &str, session: &str, token: &str) -> Result<(Credentials, Option<SystemTime>), CallError> {
        let sts = aws_sdk_sts::Client::new(&self.base(region, None, None));
        let answer = sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session)
            .web_identity_token(token)
            .send()
            .await
            .map_err(classify)?;
        sts_credentials(answer.credentials())
    }

    /// `AssumeRole` with existing credentials (the store's `role`).
    pub async fn assume_role(&self, region: &str, credentials: Credentials, role_arn: &str, session: &str) -> Result<(Credentials, Option<SystemTime>), CallError> {
        let sts = aws_sdk_sts::Client::new(&self.base(region, Some(credentials), None));
        let answer = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .send()
            .await
            .map_err(classify)?;
        sts_credentials(answer.credentials())
    }
}

fn sts_credentials(credentials: Option<&aws_sdk_sts::types::Credentials>) -> Result<(Credentials, Option<SystemTime>), CallError> {
    let credentials = credentials.ok_or_else(|| CallError::new(CallErrorKind::InvalidRequest, "STS answered without credentials"))?;
    let expiry = SystemTime::try_from(*credentials.expiration()).ok();
    Ok((
        Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            expiry,
            "secretbridge-sts",
        ),
        expiry,
    ))
}

/// Classifies an SDK error: the service's error code first, then the HTTP
/// status, then the transport.
pub fn classify<E, R>(error: SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let mut message = DisplayErrorContext(&error).to_string();
    let kind = match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            // The service's own code and message, not the raw response dump.
            message = format!("{code}: {}", service.err().message().unwrap_or("no message"));
            kind_of_code(code).unwrap_or(CallErrorKind::InvalidRequest)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => CallErrorKind::Network,
        _ => CallErrorKind::InvalidRequest,
    };
    CallError::new(kind, message)
}

/// Maps an AWS error code to a kind.
pub fn kind_of_code(code: &str) -> Option<CallErrorKind> {
    Some(match code {
        "AccessDeniedException" | "AccessDenied" | "UnrecognizedClientException" | "InvalidClientTokenId"
        | "ExpiredTokenException" | "ExpiredToken" | "IDPRejectedClaim" | "InvalidIdentityToken" => CallErrorKind::AccessDenied,
        "ParameterNotFound" | "ParameterVersionNotFound" | "ResourceNotFoundException" => CallErrorKind::NotFound,
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => CallErrorKind::Throttled,
        "InternalServerError" | "InternalFailure" | "InternalServiceError" | "ServiceUnavailable" | "IDPCommunicationError" => {
            CallErrorKind::Unavailable
        }
        _ => return None,
    })
}

/// SSM Parameter Store via the SDK.
pub struct AwsParameters {
    /// The SDK client (region and credentials bound).
    pub client: aws_sdk_ssm::Client,
}

impl ParameterSource for AwsParameters {
    fn get_parameters<'a>(&'a self, selectors: &'a [String]) -> BoxFuture<'a, Result<ParameterBatch, CallError>> {
        Box::pin(async move {
            let answer = self
                .client
                .get_parameters()
                .set_names(Some(selectors.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .map_err(classify)?;
            let mut batch = ParameterBatch::default();
            for parameter in answer.parameters() {
                let name = parameter.name().unwrap_or_default();
                let requested = match parameter.selector() {
                    Some(selector) if !selector.is_empty() => format!("{name}{selector}"),
                    _ => name.to_string(),
                };
                let Some(value) = parameter.value().map(|v| v.as_bytes().to_vec()) else {
                    return Err(CallError::new(CallErrorKind::MalformedAnswer, format!("GetParameters answered {name} without a Value")));
                };
                // SSM may echo an ARN-requested parameter by name, and not
                // every implementation returns `Selector` (moto does not);
                // batches hold one selector per parameter, so the name decides.
                let key = if selectors.contains(&requested) {
                    requested
                } else {
                    selectors
                        .iter()
                        .find(|s| {
                            let wanted = super::parameter_name(s);
                            wanted == name || wanted.ends_with(&format!("parameter{name}")) || wanted.ends_with(&format!("parameter/{name}"))
                        })
                        .cloned()
                        .unwrap_or(requested)
                };
                batch.values.insert(key, value);
            }
            batch.invalid = answer.invalid_parameters().to_vec();
            Ok(batch)
        })
    }
}

/// Secrets Manager via the SDK.
pub struct AwsSecrets {
    /// The SDK client (region and credentials bound).
    pub client: aws_sdk_secretsmanager::Client,
}

impl SecretSource for AwsSecrets {
    fn get_secret_value<'a>(&'a self, secret_id: &'a str, version: &'a SecretVersion) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        Box::pin(async move {
            let mut request = self.client.get_secret_value().secret_id(secret_id);
            request = match version {
                SecretVersion::Stage(stage) => request.version_stage(stage),
                SecretVersion::Id(id) => request.version_id(id),
            };
            let answer = request.send().await.map_err(classify)?;
            if let Some(text) = answer.secret_string() {
                return Ok(text.as_bytes().to_vec());
            }
            if let Some(binary) = answer.secret_binary() {
                return Ok(binary.as_ref().to_vec());
            }
            Err(CallError::new(
                CallErrorKind::MalformedAnswer,
                format!("GetSecretValue answered {secret_id} at {version} with neither SecretString nor SecretBinary"),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_classify() {
        assert_eq!(kind_of_code("AccessDeniedException"), Some(CallErrorKind::AccessDenied));
        assert_eq!(kind_of_code("ParameterNotFound"), Some(CallErrorKind::NotFound));
        assert_eq!(kind_of_code("ResourceNotFoundException"), Some(CallErrorKind::NotFound));
        assert_eq!(kind_of_code("ThrottlingException"), Some(CallErrorKind::Throttled));
        assert_eq!(kind_of_code("InternalServerError"), Some(CallErrorKind::Unavailable));
        assert_eq!(kind_of_code("ValidationException"), None);
    }
}
