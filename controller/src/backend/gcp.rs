//! GCP Secret Manager over REST: `GET v1/{name}:access` with a bearer token,
//! retried as the store's `retrySettings` say.

use super::http::JsonClient;
use super::metadata::{AdcSource, DEFAULT_METADATA_BASE};
use super::retry::RetryPolicy;
use super::{CallError, CallErrorKind, GcpSecretSource};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use http::Method;

/// The OAuth scope of every token the controller asks for.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

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
    /// Application Default Credentials, for stores without an auth block:
    /// the metadata server, e.g. `http://metadata.google.internal`.
    pub adc: AdcSource,
}

impl Default for GcpEndpoints {
    fn default() -> Self {
        GcpEndpoints {
            secret_manager: "https://secretmanager.googleapis.com".to_string(),
            secure_token: "https://securetoken.googleapis.com".to_string(),
            iam_credentials: "https://iamcredentials.googleapis.com".to_string(),
            adc: AdcSource::MetadataServer(DEFAULT_METADATA_BASE.to_string()),
        }
    }
}

impl GcpEndpoints {
    /// One base URL for every API, the metadata server included (the GCP stand-in).
    pub fn single(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_string();
        GcpEndpoints {
            secret_manager: base.clone(),
            secure_token: base.clone(),
            iam_credentials: base.clone(),
            adc: AdcSource::MetadataServer(base),
        }
    }

    /// Applies the ADC environment: `GOOGLE_APPLICATION_CREDENTIALS` (refused
    /// later, by name) and `GCE_METADATA_HOST`, which wins over the base URL.
    pub fn with_adc_environment(mut self, credentials_file: Option<&str>, metadata_host: Option<&str>) -> Self {
        let base = match &self.adc {
            AdcSource::MetadataServer(base) => base.clone(),
            AdcSource::CredentialsFile(_) => DEFAULT_METADATA_BASE.to_string(),
        };
        self.adc = AdcSource::from_environment(credentials_file, metadata_host, &base);
        self
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
                .await
                .map_err(|error| definite_not_found(version_name, error))?;
            // Secret Manager refuses empty payloads, so a success without
            // `payload.data` is a broken answer, never an empty value.
            let encoded = answer["payload"]["data"].as_str().ok_or_else(|| {
                CallError::new(CallErrorKind::MalformedAnswer, format!("AccessSecretVersion answered {version_name} without payload.data"))
            })?;
            STANDARD
                .decode(encoded)
                .map_err(|_| CallError::new(CallErrorKind::MalformedAnswer, format!("the payload of {version_name} is not base64")))
        })
    }
}

/// A 404 counts as "this secret or version does not exist" only when Secret
/// Manager says so of the secret asked for (`Secret [projects/…/secrets/S]
/// not found…`, `Secret Version […/secrets/S/versions/V] not found.`). Any
/// other 404 (a proxy, a wrong endpoint) is not evidence that the key is
/// gone, and must not feed `deletionPolicy: Delete`.
fn definite_not_found(version_name: &str, error: CallError) -> CallError {
    if error.kind != CallErrorKind::NotFound {
        return error;
    }
    let secret = version_name.split("/versions/").next().unwrap_or(version_name);
    let secret_id = secret.rsplit('/').next().unwrap_or(secret);
    let named = error.message.contains(&format!("/secrets/{secret_id}]")) || error.message.contains(&format!("/secrets/{secret_id}/versions/"));
    if named {
        error
    } else {
        CallError::new(CallErrorKind::InvalidRequest, format!("{} (a 404 that does not name {secret}, so it is not read as deleted)", error.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_404_naming_the_secret_means_it_is_gone() {
        let name = "projects/p/secrets/db/versions/latest";
        let gone = CallError::new(CallErrorKind::NotFound, "HTTP 404 NOT_FOUND: Secret [projects/123/secrets/db] not found or has no versions.");
        assert_eq!(definite_not_found(name, gone.clone()).kind, CallErrorKind::NotFound);
        let version = CallError::new(CallErrorKind::NotFound, "HTTP 404 NOT_FOUND: Secret Version [projects/123/secrets/db/versions/7] not found.");
        assert_eq!(definite_not_found("projects/p/secrets/db/versions/7", version).kind, CallErrorKind::NotFound);
        let other_secret = CallError::new(CallErrorKind::NotFound, "HTTP 404 NOT_FOUND: Secret [projects/123/secrets/db-old] not found or has no versions.");
        assert_eq!(definite_not_found(name, other_secret).kind, CallErrorKind::InvalidRequest);
        let proxy = CallError::new(CallErrorKind::NotFound, "HTTP 404: <html>no such route</html>");
        assert_eq!(definite_not_found(name, proxy).kind, CallErrorKind::InvalidRequest);
        let denied = CallError::new(CallErrorKind::AccessDenied, "HTTP 403");
        assert_eq!(definite_not_found(name, denied).kind, CallErrorKind::AccessDenied);
    }

    #[test]
    fn one_base_url_serves_the_metadata_server_too_unless_gce_metadata_host_is_set() {
        let standin = GcpEndpoints::single("http://127.0.0.1:9/");
        assert_eq!(standin.adc, AdcSource::MetadataServer("http://127.0.0.1:9".into()));
        assert_eq!(standin.clone().with_adc_environment(None, None), standin);
        let overridden = standin.with_adc_environment(None, Some("127.0.0.1:10"));
        assert_eq!(overridden.adc, AdcSource::MetadataServer("http://127.0.0.1:10".into()));
        assert_eq!(overridden.secret_manager, "http://127.0.0.1:9", "only the metadata server moves");
        let refused = GcpEndpoints::default().with_adc_environment(Some("/key.json"), Some("127.0.0.1:10"));
        assert_eq!(refused.adc, AdcSource::CredentialsFile("/key.json".into()));
        assert_eq!(GcpEndpoints::default().adc, AdcSource::MetadataServer("http://metadata.google.internal".into()));
    }
}
