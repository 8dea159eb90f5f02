//! `SecretStore` and `ClusterSecretStore`: where secrets come from and how the
//! controller authenticates there. Field names follow ESO's v1 API.

use crate::condition::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A namespaced store: ExternalSecrets in the same namespace may use it.
// Clippy reads each `printcolumn(type_ = "string")` as a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretbridge.io",
    version = "v1",
    kind = "SecretStore",
    namespaced,
    status = "SecretStoreStatus",
    derive = "PartialEq",
    shortname = "sbss",
    category = "secretbridge",
    doc = "A SecretStore says where an ExternalSecret's remote keys live (AWS SSM Parameter Store, AWS Secrets Manager or GCP Secret Manager) and which ServiceAccount's identity reads them. Only ExternalSecrets in its own namespace may use it.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// The backend and how to authenticate to it: exactly one of `aws` or `gcpsm`.
    pub provider: StoreProvider,
    /// How often, in seconds, the controller re-validates the store, at most 31536000 (a year). Empty or 0 uses the controller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31_536_000))]
    pub refresh_interval: Option<i64>,
    /// How often and how fast a failed backend call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
}

/// A cluster-wide store: ExternalSecrets in the namespaces its `conditions` admit may use it.
// Clippy reads each `printcolumn(type_ = "string")` as a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretbridge.io",
    version = "v1",
    kind = "ClusterSecretStore",
    status = "SecretStoreStatus",
    derive = "PartialEq",
    shortname = "sbcss",
    category = "secretbridge",
    doc = "A ClusterSecretStore is a SecretStore that ExternalSecrets in any namespace admitted by its conditions may use. A serviceAccountRef without a namespace means the ExternalSecret's own namespace.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreSpec {
    /// The backend and how to authenticate to it: exactly one of `aws` or `gcpsm`.
    pub provider: StoreProvider,
    /// How often, in seconds, the controller re-validates the store, at most 31536000 (a year). Empty or 0 uses the controller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31_536_000))]
    pub refresh_interval: Option<i64>,
    /// How often and how fast a failed backend call is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_settings: Option<RetrySettings>,
    /// Which namespaces may use this store. Empty admits every namespace; otherwise a namespace is admitted when any one condition matches it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

/// The backend of a store. Exactly one variant is set; the controller and the
/// provider `match` on it exhaustively.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub enum StoreProvider {
    /// AWS Systems Manager Parameter Store or AWS Secrets Manager.
    #[serde(rename = "aws")]
    Aws(AwsProvider),
    /// Google Cloud Secret Manager.
    #[serde(rename = "gcpsm")]
    Gcpsm(GcpSmProvider),
}

/// Which AWS service holds the secrets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum AwsService {
    /// AWS Secrets Manager: `GetSecretValue`.
    SecretsManager,
    /// AWS Systems Manager Parameter Store: `GetParameters`.
    ParameterStore,
}

/// AWS backend settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// `ParameterStore` or `SecretsManager`.
    pub service: AwsService,
    /// AWS region of the parameters or secrets, e.g. `eu-west-1`.
    #[schemars(length(min = 1))]
    pub region: String,
    /// IAM role ARN to assume after authenticating, for cross-account reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Prefix added to every remote key, e.g. `/prod/` so ExternalSecrets can say `db/url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// How to authenticate. Without it the controller uses its own credentials (IRSA when it runs on EKS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AwsAuth>,
}

/// AWS authentication. Admission refuses an `auth` that names no method we
/// implement: ESO's `secretRef` would otherwise be pruned into `auth: {}` and
/// fall back to the controller's own identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "x-kubernetes-validations" = [{
    "rule": "has(self.jwt)",
    "message": "auth names no supported method: secretbridge implements auth.jwt (IRSA) only; static keys (auth.secretRef) are not supported. Use jwt, or remove auth to use the controller's own identity"
}]))]
pub struct AwsAuth {
    /// Authenticate as a Kubernetes ServiceAccount through IRSA: a projected token is exchanged with `sts:AssumeRoleWithWebIdentity` for the role in the ServiceAccount's `eks.amazonaws.com/role-arn` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<AwsJwtAuth>,
}

/// IRSA authentication through a ServiceAccount token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwtAuth {
    /// The ServiceAccount whose identity reads the secrets.
    pub service_account_ref: ServiceAccountSelector,
}

/// A reference to a Kubernetes ServiceAccount.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSelector {
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the ServiceAccount. A SecretStore may only name its own namespace; for a ClusterSecretStore, empty means the ExternalSecret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Audiences of the requested token. Empty means the cloud's default (`sts.amazonaws.com` for AWS, the workload identity pool for GCP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// GCP Secret Manager backend settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSmProvider {
    /// Project that holds the secrets.
    #[serde(default, rename = "projectID", skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Location of regional secrets; empty for global secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// How to authenticate. Without it the controller uses Application Default Credentials (the GKE metadata server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<GcpSmAuth>,
}

/// GCP authentication. Admission refuses an `auth` that names no method we
/// implement (ESO's `secretRef`, `workloadIdentityFederation`), for the same
/// reason as [`AwsAuth`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "x-kubernetes-validations" = [{
    "rule": "has(self.workloadIdentity)",
    "message": "auth names no supported method: secretbridge implements auth.workloadIdentity only; static keys (auth.secretRef) and workloadIdentityFederation are not supported. Use workloadIdentity, or remove auth to use Application Default Credentials"
}]))]
pub struct GcpSmAuth {
    /// Authenticate as a Kubernetes ServiceAccount through GKE Workload Identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<GcpWorkloadIdentity>,
}

/// GKE Workload Identity: the KSA's token is exchanged for a Google access token, then for the GSA in its `iam.gke.io/gcp-service-account` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpWorkloadIdentity {
    /// The Kubernetes ServiceAccount (KSA) whose identity reads the secrets.
    pub service_account_ref: ServiceAccountSelector,
    /// Location of the GKE cluster, e.g. `europe-west1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_location: Option<String>,
    /// Name of the GKE cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// Project of the GKE cluster, when it differs from `projectID`.
    #[serde(default, rename = "clusterProjectID", skip_serializing_if = "Option::is_none")]
    pub cluster_project_id: Option<String>,
}

/// Most retries `retrySettings.maxRetries` may ask for: a call retried for
/// ever would hold one of the controller's sync slots.
pub const MAX_RETRIES: u32 = 20;

/// Retry behaviour for failed backend calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// How many times a failed call is retried before the sync fails, at most 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub max_retries: Option<i32>,
    /// First wait between retries, as a duration such as `1s`, at most `8760h`; it grows with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = crate::duration::DURATION_PATTERN), extend("x-kubernetes-validations" = [{
        "rule": "self == '0' || self == '-0' || duration(self) <= duration('8760h')",
        "message": "retryInterval must be at most 8760h (one year)"
    }]))]
    pub retry_interval: Option<String>,
}

/// Which namespaces may use a ClusterSecretStore. All fields set in one condition must match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Namespaces whose labels match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces whose name matches one of these regular expressions (whole-name match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_regexes: Vec<String>,
}

/// Observed state of a store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// `Ready` with reason `Valid` once the config was validated and credentials obtained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The parts of a store that do not depend on its scope, so code that uses a
/// store handles both kinds alike.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreView<'a> {
    /// The backend.
    pub provider: &'a StoreProvider,
    /// Retry behaviour.
    pub retry_settings: Option<&'a RetrySettings>,
    /// Re-validation interval in seconds.
    pub refresh_interval: Option<i64>,
    /// Namespace conditions (always empty for a SecretStore).
    pub conditions: &'a [ClusterSecretStoreCondition],
}

impl SecretStoreSpec {
    /// The scope-independent view of this store.
    pub fn view(&self) -> StoreView<'_> {
        StoreView {
            provider: &self.provider,
            retry_settings: self.retry_settings.as_ref(),
            refresh_interval: self.refresh_interval,
            conditions: &[],
        }
    }
}

impl ClusterSecretStoreSpec {
    /// The scope-independent view of this store.
    pub fn view(&self) -> StoreView<'_> {
        StoreView {
            provider: &self.provider,
            retry_settings: self.retry_settings.as_ref(),
            refresh_interval: self.refresh_interval,
            conditions: &self.conditions,
        }
    }
}

impl StoreProvider {
    /// The ServiceAccount this store authenticates as, if any.
    pub fn service_account_ref(&self) -> Option<&ServiceAccountSelector> {
        match self {
            StoreProvider::Aws(aws) => aws
                .auth
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .map(|j| &j.service_account_ref),
            StoreProvider::Gcpsm(gcp) => gcp
                .auth
                .as_ref()
                .and_then(|a| a.workload_identity.as_ref())
                .map(|w| &w.service_account_ref),
        }
    }

    /// The ServiceAccount annotation this store's identity cannot work without.
    /// IRSA needs the role ARN; GKE Workload Identity works without a GSA
    /// (the federated identity itself is then granted access), so none is required.
    pub fn required_service_account_annotation(&self) -> Option<&'static str> {
        match self {
            StoreProvider::Aws(_) => self
                .service_account_ref()
                .map(|_| crate::names::AWS_ROLE_ARN_ANNOTATION),
            StoreProvider::Gcpsm(_) => None,
        }
    }
}

impl StoreProvider {
    /// The name the controller reads for `key`: the AWS store's `prefix`
    /// followed by the key (GCP Secret Manager has no prefix). IAM must grant
    /// exactly these names, so the provider derives `remote_refs` with it.
    pub fn remote_name(&self, key: &str) -> String {
        match self {
            StoreProvider::Aws(aws) => remote_name_with_prefix(aws.prefix.as_deref(), key),
            StoreProvider::Gcpsm(_) => key.to_owned(),
        }
    }
}

/// `prefix + key`, as the controller reads it (`None` and `""` add nothing).
pub fn remote_name_with_prefix(prefix: Option<&str>, key: &str) -> String {
    format!("{}{key}", prefix.unwrap_or_default())
}

/// Every name the controller reads for `keys` through a store with `prefix`:
/// sorted, without duplicates.
pub fn remote_names(prefix: Option<&str>, keys: &[String]) -> Vec<String> {
    let mut names: Vec<String> = keys.iter().map(|k| remote_name_with_prefix(prefix, k)).collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a ClusterSecretStore with these `conditions` admits every
/// namespace (no condition at all, or one that restricts nothing).
pub fn admits_every_namespace(conditions: &[ClusterSecretStoreCondition]) -> bool {
    conditions.is_empty()
        || conditions.iter().any(|c| {
            c.namespaces.is_empty()
                && c.namespace_regexes.is_empty()
                && c.namespace_selector.as_ref().is_none_or(|s| {
                    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
                })
        })
}

#[cfg(test)]
mod remote_name_tests {
    use super::*;

    #[test]
    fn the_prefix_comes_first_and_only_for_aws() {
        let aws = StoreProvider::Aws(AwsProvider {
            service: AwsService::ParameterStore,
            region: "eu-west-1".into(),
            role: None,
            prefix: Some("/prod/".into()),
            auth: None,
        });
        assert_eq!(aws.remote_name("db/url"), "/prod/db/url");
        let gcp = StoreProvider::Gcpsm(GcpSmProvider { project_id: None, location: None, auth: None });
        assert_eq!(gcp.remote_name("db-url"), "db-url");
        assert_eq!(remote_names(Some("/p/"), &["b".into(), "a".into(), "a".into()]), ["/p/a", "/p/b"]);
        assert_eq!(remote_names(None, &["a".into()]), ["a"]);
    }

    #[test]
    fn only_a_restricting_condition_limits_a_cluster_store() {
        assert!(admits_every_namespace(&[]));
        let empty = ClusterSecretStoreCondition { namespace_selector: None, namespaces: vec![], namespace_regexes: vec![] };
        assert!(admits_every_namespace(std::slice::from_ref(&empty)));
        let named = ClusterSecretStoreCondition { namespaces: vec!["app".into()], ..empty.clone() };
        assert!(!admits_every_namespace(std::slice::from_ref(&named)));
        assert!(admits_every_namespace(&[named, empty]), "any one condition matching admits");
    }
}
