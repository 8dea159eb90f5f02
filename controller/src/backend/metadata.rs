//! Application Default Credentials for GCP stores without an auth block: an
//! access token from the GCE/GKE metadata server, acting as the controller's
//! own identity (the node's service account, or on GKE with Workload Identity
//! the GSA its ServiceAccount is bound to). ADC would read
//! `GOOGLE_APPLICATION_CREDENTIALS` first; this controller does not read key
//! files, so it refuses to run with that variable set rather than ignore it.

use super::gcp::CLOUD_PLATFORM_SCOPE;
use super::http::JsonClient;
use super::{CallError, CallErrorKind};
use http::Method;
use std::time::Duration;

/// The metadata server on GCE and GKE.
pub const DEFAULT_METADATA_BASE: &str = "http://metadata.google.internal";
/// The standard variable naming another metadata server, as `HOST[:PORT]`.
pub const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";
/// The standard variable naming a credentials file, which ADC reads first.
pub const CREDENTIALS_FILE_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// Used when the metadata server's answer has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Where a GCP store without an auth block gets its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdcSource {
    /// The metadata server at this base URL.
    MetadataServer(String),
    /// `GOOGLE_APPLICATION_CREDENTIALS` names this file. The controller does
    /// not read credential files, so stores relying on ADC fail, naming it.
    CredentialsFile(String),
}

impl AdcSource {
    /// The source ADC would pick from the environment: a credentials file
    /// first, then the metadata server at `GCE_METADATA_HOST`, else at
    /// `metadata_base` (the default, or `--gcp-endpoint` for tests).
    pub fn from_environment(credentials_file: Option<&str>, metadata_host: Option<&str>, metadata_base: &str) -> Self {
        match (credentials_file, metadata_host) {
            (Some(file), _) => AdcSource::CredentialsFile(file.to_string()),
            (None, Some(host)) => AdcSource::MetadataServer(base_from_host(host)),
            (None, None) => AdcSource::MetadataServer(metadata_base.trim_end_matches('/').to_string()),
        }
    }
}

/// The base URL for a `GCE_METADATA_HOST` value: `HOST[:PORT]` has no scheme
/// and means `http://HOST[:PORT]`; a value with a scheme is kept.
pub fn base_from_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

/// An access token issued by the metadata server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataToken {
    /// The OAuth access token.
    pub access_token: String,
    /// How long it is valid from now.
    pub expires_in: Duration,
}

/// Asks the metadata server at `base` for a cloud-platform access token of
/// the default service account. Errors say what to change.
pub async fn default_token(http: &JsonClient, base: &str) -> Result<MetadataToken, CallError> {
    let url = format!("{base}{TOKEN_PATH}?scopes={CLOUD_PLATFORM_SCOPE}");
    let answer = http
        .send_with_headers(Method::GET, &url, None, &[("metadata-flavor", "Google")], None)
        .await
        .map_err(|error| with_advice(base, error))?;
    let access_token = answer["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
        CallError::new(CallErrorKind::InvalidRequest, format!("the metadata server at {base} answered without an access_token"))
    })?;
    Ok(MetadataToken {
        access_token: access_token.to_string(),
        expires_in: answer["expires_in"].as_u64().map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME),
    })
}

/// Keeps the kind (so retries stay right) and says what failed and what to do.
fn with_advice(base: &str, error: CallError) -> CallError {
    let CallError { kind, message } = error;
    let message = match kind {
        CallErrorKind::Network => format!(
            "no metadata server reachable at {base} ({message}); run the controller on GKE or GCE \
             (on GKE with Workload Identity), set {METADATA_HOST_VAR}, or give the store auth.workloadIdentity"
        ),
        CallErrorKind::NotFound => format!(
            "the metadata server at {base} has no default service account ({message}); attach a service account \
             to the node or instance, or give the store auth.workloadIdentity"
        ),
        _ => format!("the metadata server at {base} issued no token ({message})"),
    };
    CallError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_host_has_no_scheme() {
        assert_eq!(base_from_host("169.254.169.254"), "http://169.254.169.254");
        assert_eq!(base_from_host("127.0.0.1:8085"), "http://127.0.0.1:8085");
        assert_eq!(base_from_host("http://127.0.0.1:8085/"), "http://127.0.0.1:8085");
    }

    #[test]
    fn credentials_file_then_metadata_host_then_base() {
        let file = Some("/var/run/key.json");
        assert_eq!(
            AdcSource::from_environment(file, Some("127.0.0.1:1"), DEFAULT_METADATA_BASE),
            AdcSource::CredentialsFile("/var/run/key.json".into())
        );
        assert_eq!(
            AdcSource::from_environment(None, Some("127.0.0.1:1"), "http://127.0.0.1:2"),
            AdcSource::MetadataServer("http://127.0.0.1:1".into()),
            "GCE_METADATA_HOST wins over --gcp-endpoint"
        );
        assert_eq!(
            AdcSource::from_environment(None, None, "http://127.0.0.1:2/"),
            AdcSource::MetadataServer("http://127.0.0.1:2".into())
        );
    }

    #[test]
    fn failures_keep_their_kind_and_say_what_to_do() {
        let unreachable = with_advice(DEFAULT_METADATA_BASE, CallError::new(CallErrorKind::Network, "dns error"));
        assert_eq!(unreachable.kind, CallErrorKind::Network);
        assert!(unreachable.message.starts_with("no metadata server reachable at http://metadata.google.internal (dns error)"), "{}", unreachable.message);
        assert!(unreachable.message.contains(METADATA_HOST_VAR) && unreachable.message.contains("auth.workloadIdentity"));
        let missing = with_advice(DEFAULT_METADATA_BASE, CallError::new(CallErrorKind::NotFound, "HTTP 404"));
        assert_eq!(missing.kind, CallErrorKind::NotFound);
        assert!(missing.message.contains("no default service account"), "{}", missing.message);
    }
}
