//! GCP Secret Manager over REST: `GET v1/{name}:access` with a bearer token,
//! retried as the store's `retrySettings` say.

use super::http::JsonClient;
use super::retry::RetryPolicy;
use super::{CallError, CallErrorKind, GcpSecretSource};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use http::Method;

/// Base URLs of the GCP APIs the controller calls. Real GCP has one host per
/// API; a loopback stand-in serves them all on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpEndpoints {
    /// Secret Manager, e.g. `https://secretmanager.googleapis.com`.
    pub secret_manager: String,
    /// securetoken (identity-binding token exchange).
    pub secure_token: String,
    /// IAM Credentials (`generateAccessToken`).
    pub iam_credentials: String,
}

impl Default for GcpEndpoints {
    fn default() -> Self {
        GcpEndpoints {
            secret_manager: "https://secretmanager.googleapis.com".to_string(),
            secure_token: "https://securetoken.googleapis.com".to_string(),
            iam_credentials: "https://iamcredentials.googleapis.com".to_string(),
        }
    }
}

impl GcpEndpoints {
    /// One base URL for every API (the GCP stand-in).
    pub fn single(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        GcpEndpoints {
            secret_manager: base.clone(),
            secure_token: base.clone(),
            iam_credentials: base,
        }
    }
}

/// Secret Manager reads with one access token.
pub struct GcpRestSecrets {
    /// HTTP client.
    pub http: JsonClient,
    /// Secret Manager base URL.
    pub base: String,
    /// OAuth access token.
    pub access_token: String,
    /// How throttled (429), failed (5xx) and unreachable reads are retried.
    pub retry: RetryPolicy,
}

impl GcpSecretSource for GcpRestSecrets {
    fn access_secret_version<'a>(&'a self, version_name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        Box::pin(async move {
            let url = format!("{}/v1/{version_name}:access", self.base);
            let answer = self
                .retry
                .run(|| self.http.send(Method::GET, &url, Some(&self.access_token), None))
                .await?;
            let encoded = answer["payload"]["data"].as_str().unwrap_or_default();
            STANDARD
                .decode(encoded)
                .map_err(|e| CallError::new(CallErrorKind::InvalidRequest, format!("payload of {version_name} is not base64: {e}")))
        })
    }
}
