//! Cloud backends behind narrow traits, with a fake beside each:
//! [`ParameterSource`] (SSM `GetParameters`), [`SecretSource`] (Secrets
//! Manager `GetSecretValue`) and [`GcpSecretSource`] (GCP
//! `AccessSecretVersion`). The coalescing layer in [`coalesce`] shares calls
//! between concurrent reconciles, and [`fetch`] plans and runs the calls for
//! one ExternalSecret.

pub mod aws;
pub mod coalesce;
pub mod fake;
pub mod fetch;
pub mod gcp;
pub mod http;
pub mod metadata;
pub mod metrics;
pub mod retry;

use futures::future::BoxFuture;
use std::collections::HashMap;

/// Most names SSM `GetParameters` accepts in one call.
pub const SSM_BATCH_LIMIT: usize = 10;

/// The parameter an SSM selector names: `name` of `name`, `name:3` or
/// `name:label`, also for ARNs (`arn:aws:ssm:R:A:parameter/name:3`).
pub fn parameter_name(selector: &str) -> &str {
    let start = match selector.find(":parameter/") {
        Some(at) if selector.starts_with("arn:") => at + ":parameter/".len(),
        _ => 0,
    };
    match selector[start..].find(':') {
        Some(colon) => &selector[..start + colon],
        None => selector,
    }
}

/// What kind of failure a backend call had; decides retry and reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallErrorKind {
    /// The key or version does not exist.
    NotFound,
    /// The identity may not read the key.
    AccessDenied,
    /// The backend throttled the call.
    Throttled,
    /// The backend answered with a server error (5xx).
    Unavailable,
    /// The backend could not be reached (connect, TLS, timeout).
    Network,
    /// The backend refused the request as malformed (other 4xx).
    InvalidRequest,
    /// The backend answered success without the value (no payload, no
    /// `Value`, neither `SecretString` nor `SecretBinary`). Never read as an
    /// empty value, and never as "deleted".
    MalformedAnswer,
}

impl CallErrorKind {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(self) -> &'static str {
        match self {
            CallErrorKind::NotFound => "NotFound",
            CallErrorKind::AccessDenied => "AccessDenied",
            CallErrorKind::Throttled => "Throttled",
            CallErrorKind::Unavailable => "BackendUnavailable",
            CallErrorKind::Network => "NetworkError",
            CallErrorKind::InvalidRequest => "InvalidRequest",
            CallErrorKind::MalformedAnswer => "MalformedAnswer",
        }
    }

    /// Transient failures are retried with backoff; permanent ones wait for a
    /// change or for the refresh interval.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            CallErrorKind::Throttled | CallErrorKind::Unavailable | CallErrorKind::Network | CallErrorKind::MalformedAnswer
        )
    }
}

/// One failed backend call: its kind and the backend's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.reason())]
pub struct CallError {
    /// The kind of failure.
    pub kind: CallErrorKind,
    /// The backend's message (never a secret value).
    pub message: String,
}

impl CallError {
    /// A call error of the given kind.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            message: message.into(),
        }
    }
}

/// The answer to one `GetParameters` call, keyed by the selector as requested
/// (`/name` or `/name:version`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterBatch {
    /// Values found, by requested selector.
    pub values: HashMap<String, Vec<u8>>,
    /// Selectors the backend reported as invalid (missing or no such version).
    pub invalid: Vec<String>,
}

/// AWS SSM Parameter Store, bound to one region and one identity.
pub trait ParameterSource: Send + Sync {
    /// `GetParameters` with `WithDecryption` for at most [`SSM_BATCH_LIMIT`]
    /// selectors (`name` or `name:version`).
    fn get_parameters<'a>(&'a self, selectors: &'a [String]) -> BoxFuture<'a, Result<ParameterBatch, CallError>>;
}

/// Which version of a Secrets Manager secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretVersion {
    /// A version stage such as `AWSCURRENT` (the default) or `AWSPREVIOUS`.
    Stage(String),
    /// A version id.
    Id(String),
}

impl SecretVersion {
    /// Reads `remoteRef.version` as ESO does: `uuid/<id>` or a bare UUID is a
    /// version id, anything else a stage, none `AWSCURRENT`.
    pub fn from_remote(version: Option<&str>) -> Self {
        match version {
            None | Some("") => SecretVersion::Stage("AWSCURRENT".to_string()),
            Some(v) => match v.strip_prefix("uuid/") {
                Some(id) => SecretVersion::Id(id.to_string()),
                None if looks_like_uuid(v) => SecretVersion::Id(v.to_string()),
                None => SecretVersion::Stage(v.to_string()),
            },
        }
    }
}

fn looks_like_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

impl std::fmt::Display for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretVersion::Stage(stage) => write!(f, "stage {stage}"),
            SecretVersion::Id(id) => write!(f, "version id {id}"),
        }
    }
}

/// AWS Secrets Manager, bound to one region and one identity.
pub trait SecretSource: Send + Sync {
    /// `GetSecretValue` of a secret name or ARN at a version; returns
    /// `SecretString` as UTF-8 or `SecretBinary` as is.
    fn get_secret_value<'a>(&'a self, secret_id: &'a str, version: &'a SecretVersion) -> BoxFuture<'a, Result<Vec<u8>, CallError>>;
}

/// GCP Secret Manager, bound to one identity.
pub trait GcpSecretSource: Send + Sync {
    /// `AccessSecretVersion` of `projects/P/secrets/S/versions/V` (or the
    /// `locations/L` form for regional secrets); returns the payload.
    fn access_secret_version<'a>(&'a self, version_name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CallError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_eso_does() {
        assert_eq!(SecretVersion::from_remote(None), SecretVersion::Stage("AWSCURRENT".into()));
        assert_eq!(SecretVersion::from_remote(Some("AWSPREVIOUS")), SecretVersion::Stage("AWSPREVIOUS".into()));
        assert_eq!(SecretVersion::from_remote(Some("uuid/abc")), SecretVersion::Id("abc".into()));
        let uuid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        assert_eq!(SecretVersion::from_remote(Some(uuid)), SecretVersion::Id(uuid.into()));
    }

    #[test]
    fn transient_and_permanent_kinds() {
        assert!(!CallErrorKind::AccessDenied.is_transient());
        assert!(!CallErrorKind::NotFound.is_transient());
        assert!(CallErrorKind::Throttled.is_transient());
        assert!(CallErrorKind::Unavailable.is_transient());
        assert!(CallErrorKind::Network.is_transient());
    }
}
