//! Plans and runs the backend calls for one ExternalSecret: collects its
//! remote refs, de-duplicates them, fetches through the coalescing layer and
//! assembles the Secret data (properties, decoding, `dataFrom.extract`).

use super::coalesce::{ParameterBatcher, SingleFlight};
use super::metrics::CallMetrics;
use super::{CallError, CallErrorKind, GcpSecretSource, SecretSource, SecretVersion};
use crate::decode::{self, DecodeError};
use crate::desired::SecretData;
use crate::property::{self, PropertyError};
use secretbridge_shared::rules::{FieldError, gcp_version_name};
use secretbridge_shared::{ExternalSecretSpec, RemoteRef};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Result of one shared Secrets Manager or GCP read.
pub type SharedRead = Result<Vec<u8>, CallError>;

/// Secrets Manager with single-flight sharing of identical reads.
pub struct CoalescedSecrets {
    /// The client (real or fake).
    pub source: Arc<dyn SecretSource>,
    /// Shares concurrent identical reads.
    pub flights: SingleFlight<(String, SecretVersion), SharedRead>,
    /// Call counters.
    pub metrics: Arc<CallMetrics>,
}

impl CoalescedSecrets {
    /// Wraps a source.
    pub fn new(source: Arc<dyn SecretSource>, metrics: Arc<CallMetrics>) -> Self {
        CoalescedSecrets { source, flights: SingleFlight::default(), metrics }
    }

    async fn get(&self, id: &str, version: &SecretVersion) -> SharedRead {
        self.flights
            .run((id.to_string(), version.clone()), || async {
                let result = self.source.get_secret_value(id, version).await;
                self.metrics.record("secretsmanager", "GetSecretValue", status_of(&result));
                result
            })
            .await
    }
}

/// GCP Secret Manager with single-flight sharing of identical reads.
pub struct CoalescedGcpSecrets {
    /// The client (real or fake).
    pub source: Arc<dyn GcpSecretSource>,
    /// Shares concurrent identical reads.
    pub flights: SingleFlight<String, SharedRead>,
    /// Call counters.
    pub metrics: Arc<CallMetrics>,
}

impl CoalescedGcpSecrets {
    /// Wraps a source.
    pub fn new(source: Arc<dyn GcpSecretSource>, metrics: Arc<CallMetrics>) -> Self {
        CoalescedGcpSecrets { source, flights: SingleFlight::default(), metrics }
    }

    async fn get(&self, name: &str) -> SharedRead {
        self.flights
            .run(name.to_string(), || async {
                let result = self.source.access_secret_version(name).await;
                self.metrics.record("gcpsm", "AccessSecretVersion", status_of(&result));
                result
            })
            .await
    }
}

fn status_of<T>(result: &Result<T, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.kind.reason(),
    }
}

/// A store's backend, ready to fetch with the store's credentials.
#[derive(Clone)]
pub enum StoreClient {
    /// SSM Parameter Store.
    ParameterStore {
        /// Region, for error messages.
        region: String,
        /// Prefix added to every key.
        prefix: String,
        /// The shared batcher of this region and identity.
        batcher: ParameterBatcher,
    },
    /// Secrets Manager.
    SecretsManager {
        /// Region, for error messages.
        region: String,
        /// Prefix added to every key.
        prefix: String,
        /// The shared client of this region and identity.
        secrets: Arc<CoalescedSecrets>,
    },
    /// GCP Secret Manager.
    Gcp {
        /// Project holding the secrets.
        project: String,
        /// Location of regional secrets.
        location: Option<String>,
        /// The shared client of this identity.
        secrets: Arc<CoalescedGcpSecrets>,
    },
}

/// Why fetching an ExternalSecret's data failed. One variant per action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// SSM `GetParameters` failed or did not return the parameter.
    #[error("reading SSM parameter {name:?} in {region} failed")]
    FetchParameter {
        /// The selector (`name` or `name:version`).
        name: String,
        /// Region.
        region: String,
        /// The call's error.
        source: CallError,
    },
    /// Secrets Manager `GetSecretValue` failed.
    #[error("reading Secrets Manager secret {secret_id:?} ({version}) in {region} failed")]
    FetchSecret {
        /// Name or ARN.
        secret_id: String,
        /// Which version.
        version: SecretVersion,
        /// Region.
        region: String,
        /// The call's error.
        source: CallError,
    },
    /// GCP `AccessSecretVersion` failed.
    #[error("accessing GCP secret version {name:?} failed")]
    AccessSecretVersion {
        /// Full version name.
        name: String,
        /// The call's error.
        source: CallError,
    },
    /// A `property` could not be read from the fetched value.
    #[error("reading property of remote key {key:?} failed")]
    Property {
        /// The remote key.
        key: String,
        /// What went wrong.
        source: PropertyError,
    },
    /// Decoding or extracting the fetched value failed.
    #[error("decoding remote key {key:?} failed")]
    Decode {
        /// The remote key.
        key: String,
        /// What went wrong.
        source: DecodeError,
    },
    /// A remote ref names something outside the store's scope, or is not a
    /// key the backend can have.
    #[error("{0}")]
    OutOfScope(#[source] FieldError),
}

impl FetchError {
    fn call_error(&self) -> Option<&CallError> {
        match self {
            FetchError::FetchParameter { source, .. }
            | FetchError::FetchSecret { source, .. }
            | FetchError::AccessSecretVersion { source, .. } => Some(source),
            FetchError::Property { .. } | FetchError::Decode { .. } | FetchError::OutOfScope(_) => None,
        }
    }

    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Property { source, .. } => source.reason(),
            FetchError::Decode { source, .. } => source.reason(),
            FetchError::OutOfScope(_) => "RemoteRefOutOfScope",
            other => other.call_error().map_or("FetchFailed", |e| e.kind.reason()),
        }
    }

    /// Whether a retry with backoff may succeed (throttling, 5xx, network).
    pub fn is_transient(&self) -> bool {
        self.call_error().is_some_and(|e| e.kind.is_transient())
    }

    /// Whether the remote key (or version) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.call_error().is_some_and(|e| e.kind == CallErrorKind::NotFound)
    }

    /// The message for a status condition: what failed, then the backend's words.
    pub fn condition_message(&self) -> String {
        match self.call_error() {
            Some(call) => format!("{self}: {call}"),
            None => match self {
                FetchError::Property { source, .. } => format!("{self}: {source}"),
                FetchError::Decode { source, .. } => format!("{self}: {source}"),
                _ => self.to_string(),
            },
        }
    }
}

/// The outcome of fetching every remote ref of an ExternalSecret whose calls
/// did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    /// Secret keys and values assembled from the refs that were found.
    pub data: SecretData,
    /// Refs whose remote key (or version) does not exist.
    pub missing: Vec<FetchError>,
}

impl Fetched {
    /// Whether every remote ref is gone (what `deletionPolicy` acts on).
    pub fn all_missing(&self) -> bool {
        !self.missing.is_empty() && self.data.is_empty()
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Call {
    Parameter(String),
    Secret(String, SecretVersion),
    Gcp(String),
}

/// The read a remote ref needs. `field` is the ref's path in the spec, for
/// the error when the ref leaves the store's scope.
fn call_for(client: &StoreClient, field: &str, remote: &RemoteRef) -> Result<Call, FetchError> {
    Ok(match client {
        StoreClient::ParameterStore { prefix, .. } => {
            let name = format!("{prefix}{}", remote.key);
            match remote.version.as_deref() {
                Some(version) if !version.is_empty() => Call::Parameter(format!("{name}:{version}")),
                _ => Call::Parameter(name),
            }
        }
        StoreClient::SecretsManager { prefix, .. } => Call::Secret(
            format!("{prefix}{}", remote.key),
            SecretVersion::from_remote(remote.version.as_deref()),
        ),
        StoreClient::Gcp { project, location, .. } => Call::Gcp(
            gcp_version_name(field, project, location.as_deref(), &remote.key, remote.version.as_deref()).map_err(FetchError::OutOfScope)?,
        ),
    })
}

fn call_error_of(client: &StoreClient, call: &Call, source: CallError) -> FetchError {
    match (client, call) {
        (StoreClient::ParameterStore { region, .. }, Call::Parameter(name)) => FetchError::FetchParameter {
            name: name.clone(),
            region: region.clone(),
            source,
        },
        (StoreClient::SecretsManager { region, .. }, Call::Secret(id, version)) => FetchError::FetchSecret {
            secret_id: id.clone(),
            version: version.clone(),
            region: region.clone(),
            source,
        },
        (_, Call::Gcp(name)) => FetchError::AccessSecretVersion { name: name.clone(), source },
        (_, Call::Parameter(name)) | (_, Call::Secret(name, _)) => FetchError::AccessSecretVersion { name: name.clone(), source },
    }
}

/// The read of every remote ref, `dataFrom` first and then `data`, in spec
/// order; refused as a whole when any ref leaves the store's scope.
fn plan(spec: &ExternalSecretSpec, client: &StoreClient) -> Result<(Vec<Call>, Vec<Call>), FetchError> {
    let data_from = spec
        .data_from
        .iter()
        .enumerate()
        .map(|(i, d)| call_for(client, &format!("spec.dataFrom[{i}].extract"), &d.extract))
        .collect::<Result<Vec<_>, _>>()?;
    let data = spec
        .data
        .iter()
        .enumerate()
        .map(|(i, d)| call_for(client, &format!("spec.data[{i}].remoteRef"), &d.remote_ref))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((data_from, data))
}

async fn run_calls(client: &StoreClient, calls: &[Call]) -> HashMap<Call, Result<Vec<u8>, CallError>> {
    match client {
        StoreClient::ParameterStore { batcher, .. } => {
            let selectors: Vec<String> = calls
                .iter()
                .filter_map(|c| match c {
                    Call::Parameter(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            let answers = batcher.get(selectors).await;
            answers
                .into_iter()
                .map(|(selector, result)| {
                    let result = result.and_then(|found| {
                        found.ok_or_else(|| CallError::new(CallErrorKind::NotFound, format!("parameter {selector} not found (ParameterNotFound or ParameterVersionNotFound)")))
                    });
                    (Call::Parameter(selector), result)
                })
                .collect()
        }
        StoreClient::SecretsManager { secrets, .. } => {
            let reads = calls.iter().map(|call| async move {
                let result = match call {
                    Call::Secret(id, version) => secrets.get(id, version).await,
                    _ => Err(CallError::new(CallErrorKind::InvalidRequest, "not a Secrets Manager read")),
                };
                (call.clone(), result)
            });
            futures::future::join_all(reads).await.into_iter().collect()
        }
        StoreClient::Gcp { secrets, .. } => {
            let reads = calls.iter().map(|call| async move {
                let result = match call {
                    Call::Gcp(name) => secrets.get(name).await,
                    _ => Err(CallError::new(CallErrorKind::InvalidRequest, "not a GCP read")),
                };
                (call.clone(), result)
            });
            futures::future::join_all(reads).await.into_iter().collect()
        }
    }
}

/// Fetches every remote ref of an ExternalSecret and assembles its data:
/// `dataFrom` first, then `data` (which wins on a shared key). A failed call
/// (other than not-found) fails the whole fetch, so the caller never writes
/// partial data; refs that are not found are listed in [`Fetched::missing`].
pub async fn fetch_external_secret(spec: &ExternalSecretSpec, client: &StoreClient) -> Result<Fetched, FetchError> {
    let (data_from_calls, data_calls) = plan(spec, client)?;
    let unique: BTreeSet<Call> = data_from_calls.iter().chain(&data_calls).cloned().collect();
    let unique: Vec<Call> = unique.into_iter().collect();
    let mut results = run_calls(client, &unique).await;
    let mut fetched = Fetched::default();
    let mut take = |call: &Call| -> Result<Option<Vec<u8>>, FetchError> {
        let result = results
            .get(call)
            .cloned()
            .unwrap_or_else(|| Err(CallError::new(CallErrorKind::Network, "no answer from the backend")));
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) if error.kind == CallErrorKind::NotFound => {
                fetched.missing.push(call_error_of(client, call, error));
                Ok(None)
            }
            Err(error) => Err(call_error_of(client, call, error)),
        }
    };
    let mut data = SecretData::new();
    for (entry, call) in spec.data_from.iter().zip(&data_from_calls) {
        if let Some(raw) = take(call)? {
            let raw = match &entry.extract.property {
                Some(path) => property::extract_property(&raw, path)
                    .map_err(|source| FetchError::Property { key: entry.extract.key.clone(), source })?,
                None => raw,
            };
            let keys = decode::extract_object(&entry.extract.key, &raw, entry.extract.decoding_strategy)
                .map_err(|source| FetchError::Decode { key: entry.extract.key.clone(), source })?;
            data.extend(keys);
        }
    }
    for (entry, call) in spec.data.iter().zip(&data_calls) {
        let remote = &entry.remote_ref;
        if let Some(raw) = take(call)? {
            let value = match &remote.property {
                Some(path) => property::extract_property(&raw, path)
                    .map_err(|source| FetchError::Property { key: remote.key.clone(), source })?,
                None => raw,
            };
            let value = decode::decode(&remote.key, value, remote.decoding_strategy)
                .map_err(|source| FetchError::Decode { key: remote.key.clone(), source })?;
            data.insert(entry.secret_key.clone(), value);
        }
    }
    results.clear();
    fetched.data = data;
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::coalesce::ParameterBatcher;
    use crate::backend::fake::{FakeGcpSecrets, FakeParameters, FakeSecrets};
    use secretbridge_shared::{DecodingStrategy, ExternalSecretData, ExternalSecretDataFrom};
    use std::time::Duration;

    fn remote(key: &str, property: Option<&str>, version: Option<&str>) -> RemoteRef {
        RemoteRef {
            key: key.into(),
            property: property.map(str::to_string),
            version: version.map(str::to_string),
            decoding_strategy: DecodingStrategy::None,
        }
    }

    fn spec(data: Vec<(&str, RemoteRef)>, data_from: Vec<RemoteRef>) -> ExternalSecretSpec {
        serde_json::from_value::<ExternalSecretSpec>(serde_json::json!({"secretStoreRef": {"name": "s"}}))
            .map(|mut s| {
                s.data = data.into_iter().map(|(k, r)| ExternalSecretData { secret_key: k.into(), remote_ref: r }).collect();
                s.data_from = data_from.into_iter().map(|r| ExternalSecretDataFrom { extract: r }).collect();
                s
            })
            .expect("minimal spec parses")
    }

    fn text(fetched: &Fetched, key: &str) -> Option<String> {
        fetched.data.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn ssm(fake: Arc<FakeParameters>, metrics: Arc<CallMetrics>, prefix: &str) -> StoreClient {
        StoreClient::ParameterStore {
            region: "eu-west-1".into(),
            prefix: prefix.into(),
            batcher: ParameterBatcher::spawn(fake, metrics, Duration::from_millis(1)),
        }
    }

    #[tokio::test]
    async fn ssm_keys_versions_properties_and_extract() {
        let fake = Arc::new(FakeParameters::default());
        fake.put("/prod/db/url", "postgres://db");
        fake.put("/prod/db/json", r#"{"user":{"name":"admin"},"ports":[5432,5433]}"#);
        fake.put("/prod/db/json", r#"{"user":{"name":"root"},"ports":[1]}"#);
        let metrics = Arc::new(CallMetrics::default());
        let client = ssm(fake.clone(), metrics.clone(), "/prod/");
        let es = spec(
            vec![
                ("url", remote("db/url", None, None)),
                ("user", remote("db/json", Some("user.name"), None)),
                ("olduser", remote("db/json", Some("user.name"), Some("1"))),
                ("port", remote("db/json", Some("ports.1"), Some("1"))),
            ],
            vec![remote("db/json", None, None)],
        );
        let fetched = fetch_external_secret(&es, &client).await.expect("fetches");
        assert_eq!(text(&fetched, "url").as_deref(), Some("postgres://db"));
        assert_eq!(text(&fetched, "user").as_deref(), Some("root"));
        assert_eq!(text(&fetched, "olduser").as_deref(), Some("admin"));
        assert_eq!(text(&fetched, "port").as_deref(), Some("5433"));
        assert_eq!(text(&fetched, "ports").as_deref(), Some("[1]"));
        assert!(fetched.missing.is_empty());
        // Three unique selectors; two name the same parameter, so they go
        // into different batches (one selector per parameter per batch).
        let mut sizes = fake.batch_sizes();
        sizes.sort();
        assert_eq!(sizes, vec![1, 2]);
    }

    #[tokio::test]
    async fn missing_keys_are_listed_and_denied_keys_fail() {
        let fake = Arc::new(FakeParameters::default());
        fake.put("/a", "1");
        let client = ssm(fake.clone(), Arc::default(), "");
        let es = spec(vec![("a", remote("/a", None, None)), ("b", remote("/b", None, None))], vec![]);
        let fetched = fetch_external_secret(&es, &client).await.expect("fetches");
        assert_eq!(fetched.data.len(), 1);
        assert_eq!(fetched.missing.len(), 1);
        assert!(fetched.missing[0].is_not_found());
        assert!(!fetched.all_missing());
        fake.deny("/a");
        let error = fetch_external_secret(&es, &client).await.expect_err("denied");
        assert_eq!(error.reason(), "AccessDenied");
        assert!(!error.is_transient());
        assert!(error.condition_message().contains("/a"), "{}", error.condition_message());
        fake.fail_next(CallError::new(CallErrorKind::Unavailable, "503"));
        let error = fetch_external_secret(&es, &client).await.expect_err("5xx");
        assert!(error.is_transient());
    }

    #[tokio::test]
    async fn secrets_manager_reads_each_secret_once() {
        let fake = Arc::new(FakeSecrets::default());
        fake.put("db", r#"{"user":"admin","password":"pw"}"#);
        fake.put("db", r#"{"user":"admin","password":"pw2"}"#);
        let metrics = Arc::new(CallMetrics::default());
        let client = StoreClient::SecretsManager {
            region: "eu-west-1".into(),
            prefix: String::new(),
            secrets: Arc::new(CoalescedSecrets::new(fake.clone(), metrics.clone())),
        };
        let es = spec(
            vec![
                ("user", remote("db", Some("user"), None)),
                ("password", remote("db", Some("password"), None)),
                ("old", remote("db", Some("password"), Some("AWSPREVIOUS"))),
            ],
            vec![],
        );
        let fetched = fetch_external_secret(&es, &client).await.expect("fetches");
        assert_eq!(text(&fetched, "password").as_deref(), Some("pw2"));
        assert_eq!(text(&fetched, "old").as_deref(), Some("pw"));
        assert_eq!(fake.calls(), 2, "one call per (secret, version)");
        assert_eq!(metrics.calls("secretsmanager", "GetSecretValue"), 2);
    }

    #[tokio::test]
    async fn gcp_versions_and_regional_names() {
        let fake = Arc::new(FakeGcpSecrets::default());
        fake.add_version("proj", "db-url", "v1");
        fake.add_version("proj", "db-url", "v2");
        let client = StoreClient::Gcp {
            project: "proj".into(),
            location: None,
            secrets: Arc::new(CoalescedGcpSecrets::new(fake.clone(), Arc::default())),
        };
        let es = spec(vec![("latest", remote("db-url", None, None)), ("first", remote("db-url", None, Some("1")))], vec![]);
        let fetched = fetch_external_secret(&es, &client).await.expect("fetches");
        assert_eq!(text(&fetched, "latest").as_deref(), Some("v2"));
        assert_eq!(text(&fetched, "first").as_deref(), Some("v1"));
        let regional = StoreClient::Gcp {
            project: "proj".into(),
            location: Some("europe-west1".into()),
            secrets: Arc::new(CoalescedGcpSecrets::new(fake.clone(), Arc::default())),
        };
        assert_eq!(
            call_for(&regional, "spec.data[0].remoteRef", &remote("s", None, None)),
            Ok(Call::Gcp("projects/proj/locations/europe-west1/secrets/s/versions/latest".into()))
        );
        // A full name outside the store's project is refused before any call.
        let escape = spec(vec![("x", remote("db-url", None, None)), ("y", remote("projects/other/secrets/db-url", None, None))], vec![]);
        let calls_before = fake.calls();
        match fetch_external_secret(&escape, &client).await {
            Err(FetchError::OutOfScope(error)) => assert_eq!(error.field, "spec.data[1].remoteRef.key"),
            other => panic!("expected OutOfScope, got {other:?}"),
        }
        assert_eq!(fake.calls(), calls_before, "nothing was read");
        let everything_gone = spec(vec![("x", remote("gone", None, None))], vec![]);
        let fetched = fetch_external_secret(&everything_gone, &client).await.expect("not-found is not an error");
        assert!(fetched.all_missing());
    }
}
