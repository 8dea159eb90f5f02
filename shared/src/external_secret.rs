//! `ExternalSecret`: which remote keys become which keys of a Kubernetes
//! Secret, and how that Secret is kept. Field names follow ESO's v1 API.

use crate::condition::Condition;
use crate::duration::{DURATION_PATTERN, DurationError, MAX_INTERVAL, parse_bounded_duration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default of `spec.refreshInterval`.
pub const DEFAULT_REFRESH_INTERVAL: &str = "1h";

/// Maps remote keys of a store into a Kubernetes Secret in the ExternalSecret's namespace.
// Clippy reads each `printcolumn(type_ = "string")` as a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretbridge.io",
    version = "v1",
    kind = "ExternalSecret",
    namespaced,
    status = "ExternalSecretStatus",
    derive = "PartialEq",
    shortname = "sbes",
    category = "secretbridge",
    doc = "An ExternalSecret copies remote keys from a SecretStore or ClusterSecretStore into a Kubernetes Secret in its own namespace and keeps it refreshed.",
    printcolumn(name = "Store", type_ = "string", json_path = ".spec.secretStoreRef.name"),
    printcolumn(name = "Refresh Interval", type_ = "string", json_path = ".spec.refreshInterval"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status")
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The store to read from.
    pub secret_store_ref: SecretStoreRef,
    /// The Secret to write and how to own it.
    #[serde(default)]
    pub target: ExternalSecretTarget,
    /// How often the Secret is refreshed from the store, as a duration such as `1h` or `15m`, at most `8760h`. `0` syncs once.
    #[serde(default = "default_refresh_interval")]
    #[schemars(length(max = 64), regex(pattern = DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "self == '0' || self == '-0' || duration(self) <= duration('8760h')",
        "message": "refreshInterval must be at most 8760h (one year); use \"0\" to sync once"
    }]))]
    pub refresh_interval: String,
    /// When to refresh: `Periodic` (every refreshInterval, the default), `CreatedOnce` (only when the Secret is missing) or `OnChange` (only when this ExternalSecret changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,
    /// Single keys: each entry writes one key of the Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ExternalSecretData>,
    /// Whole remote values: each entry writes every key of a JSON object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<ExternalSecretDataFrom>,
}

fn default_refresh_interval() -> String {
    DEFAULT_REFRESH_INTERVAL.to_string()
}

/// Names the store an ExternalSecret reads from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Name of the SecretStore (in this namespace) or ClusterSecretStore.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `SecretStore` (the default) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: StoreKind,
}

/// The two kinds of store.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum StoreKind {
    /// A namespaced store in the ExternalSecret's namespace.
    #[default]
    SecretStore,
    /// A cluster-wide store.
    ClusterSecretStore,
}

/// When an ExternalSecret is refreshed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RefreshPolicy {
    /// Every refreshInterval.
    #[default]
    Periodic,
    /// Once, when the Secret does not exist yet.
    CreatedOnce,
    /// Only when the ExternalSecret itself changes.
    OnChange,
}

/// The Secret an ExternalSecret writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    /// Name of the Secret; defaults to the ExternalSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who owns the Secret: `Owner` (the default: owned and garbage-collected with the ExternalSecret), `Orphan` (created, not owned), `Merge` (keys merged into an existing Secret) or `None` (nothing is written).
    #[serde(default)]
    pub creation_policy: CreationPolicy,
    /// What happens when every remote key is gone: `Retain` (the default: keep the Secret), `Delete` (delete it) or `Merge` (remove only the keys this ExternalSecret wrote).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Marks the Secret immutable once written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
    /// Shapes the Secret: its type, labels and annotations, and keys rendered from the fetched values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
}

/// Who owns the target Secret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// Created and owned: deleted with the ExternalSecret.
    #[default]
    Owner,
    /// Created but not owned: kept when the ExternalSecret is deleted.
    Orphan,
    /// Merged into a Secret that must already exist.
    Merge,
    /// Nothing is written.
    None,
}

/// What happens to the target Secret when the remote keys are gone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the Secret as it is.
    #[default]
    Retain,
    /// Delete the Secret.
    Delete,
    /// Remove only the keys this ExternalSecret wrote.
    Merge,
}

/// Shapes the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret type, e.g. `Opaque` (the default) or `kubernetes.io/dockerconfigjson`. Service-account and bootstrap token types are refused.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Labels and annotations of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Secret keys rendered from templates such as `postgres://{{ .user }}@{{ .host }}`; the template language is a small safe subset that reads only the fetched keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

/// Labels and annotations of the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One key of the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the target Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub secret_key: String,
    /// The remote value it comes from.
    pub remote_ref: RemoteRef,
}

/// Whole remote values whose JSON keys become Secret keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFrom {
    /// A remote value holding a JSON object; each top-level key becomes a Secret key (nested values as compact JSON).
    pub extract: RemoteRef,
}

/// A remote value: a parameter, a secret, or a property inside one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// Parameter name (e.g. `/app/db/url`), Secrets Manager name or ARN, or GCP secret name.
    #[schemars(length(min = 1))]
    pub key: String,
    /// A dotted path into a JSON value, e.g. `password` or `users.0.name`; non-string leaves are written as compact JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Version: an SSM version number or label, a Secrets Manager version stage or id (default `AWSCURRENT`), or a GCP version number (default `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How the value is decoded before it is written: `None` (the default), `Base64`, `Base64URL` or `Auto` (base64 if it decodes, else as is).
    #[serde(default)]
    pub decoding_strategy: DecodingStrategy,
}

/// How a fetched value is decoded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DecodingStrategy {
    /// Written as fetched.
    #[default]
    None,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Base64 or URL-safe base64 when the value decodes, otherwise as fetched.
    Auto,
}

/// Observed state of an ExternalSecret. It never holds secret values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// `Ready`, with reason `SecretSynced`, `SecretSyncedError` or `SecretDeleted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the Secret was last synced from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,
    /// What was synced last: the ExternalSecret's `metadata.generation`, followed by `-` and a short hash of the `secretbridge.io/force-sync` annotation when it is set, so a spec change or a new force-sync value is seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// The Secret this ExternalSecret writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<SecretBinding>,
}

/// A reference to the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretBinding {
    /// Name of the Secret in the ExternalSecret's namespace.
    #[serde(default)]
    pub name: String,
}

impl ExternalSecretSpec {
    /// `refreshInterval` as a duration, at most [`MAX_INTERVAL`]; zero means sync once.
    pub fn refresh_interval(&self) -> Result<Duration, DurationError> {
        parse_bounded_duration(&self.refresh_interval, MAX_INTERVAL)
    }

    /// The refresh policy, with ESO's default.
    pub fn refresh_policy(&self) -> RefreshPolicy {
        self.refresh_policy.unwrap_or_default()
    }

    /// Every remote key this ExternalSecret reads, sorted and without
    /// duplicates: the set IAM must grant (Terraform's `remote_refs`).
    pub fn remote_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .data
            .iter()
            .map(|d| d.remote_ref.key.clone())
            .chain(self.data_from.iter().map(|d| d.extract.key.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl ExternalSecret {
    /// Name of the target Secret: `spec.target.name`, or the ExternalSecret's own name.
    pub fn target_secret_name(&self) -> Option<&str> {
        self.spec
            .target
            .name
            .as_deref()
            .or(self.metadata.name.as_deref())
    }
}
