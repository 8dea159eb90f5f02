//! Shapes of the Terraform provider's configuration and resources.
//!
//! The provider turns each type's JSON Schema into a tfplugin6 schema, so the
//! doc comment of a field is its Terraform description. Terraform-only
//! behaviour is marked with JSON Schema extension keys (see [`ext`]); a
//! `default` in the schema is a Terraform default and validation keywords
//! (`pattern`, `minLength`, `enum`, ...) are checked at plan time.
//!
//! Maps and lists that a user may leave out are `Option`s: Terraform tells an
//! omitted map (null) from an empty one (`{}`), and a resource must hand back
//! exactly what was planned.

use crate::external_secret::ExternalSecretSpec;
use crate::store::{ClusterSecretStoreSpec, SecretStoreSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// JSON Schema extension keys that carry Terraform attribute behaviour.
pub mod ext {
    /// Optional and computed: the user may set it, otherwise the provider does.
    pub const COMPUTED: &str = "x-terraform-computed";
    /// Computed only: the provider sets it and the user may not.
    pub const COMPUTED_ONLY: &str = "x-terraform-computed-only";
    /// Hidden in plans and output.
    pub const SENSITIVE: &str = "x-terraform-sensitive";
    /// A change destroys and re-creates the resource.
    pub const REQUIRES_REPLACE: &str = "x-terraform-requires-replace";
    /// Never stored in state or plan (Terraform 1.11+).
    pub const WRITE_ONLY: &str = "x-terraform-write-only";
    /// Unknown in a plan only when it really changes: the prior state's value is kept.
    pub const USE_STATE_FOR_UNKNOWN: &str = "x-terraform-use-state-for-unknown";
    /// Render a nested object as a block rather than a nested attribute.
    pub const BLOCK: &str = "x-terraform-block";
}

/// Local name of the provider (`secretbridge_*` resources).
pub const PROVIDER_NAME: &str = "secretbridge";

/// The provider block: `provider "secretbridge" { aws {} gcp {} kubernetes {} }`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ProviderConfig {
    /// AWS access for the OIDC provider and IRSA role resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-block" = true))]
    pub aws: Option<AwsConfig>,
    /// GCP access for the service account and IAM binding resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-block" = true))]
    pub gcp: Option<GcpConfig>,
    /// The Kubernetes cluster for the ServiceAccount, store and ExternalSecret resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-block" = true))]
    pub kubernetes: Option<KubernetesConfig>,
}

/// AWS settings of the provider. Credentials come from the standard chain (environment, profile, IRSA, instance role).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AwsConfig {
    /// AWS region, e.g. `eu-west-1`. It is also the region of the parameter and secret ARNs in derived policies.
    #[schemars(length(min = 1))]
    pub region: String,
    /// Named profile from the shared AWS config files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Endpoint URL for every AWS API, for emulators such as moto or LocalStack. Defaults to `AWS_ENDPOINT_URL` when that is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Static access key ID, instead of the standard credential chain (for emulators and tests; set together with `secret_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// Static secret access key paired with `access_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-sensitive" = true))]
    pub secret_key: Option<String>,
}

/// GCP settings of the provider. Credentials come from Application Default Credentials unless `access_token` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct GcpConfig {
    /// Default project for GCP resources.
    #[schemars(length(min = 1))]
    pub project: String,
    /// Base URL for every GCP API, for emulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// OAuth2 access token to use instead of Application Default Credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-sensitive" = true))]
    pub access_token: Option<String>,
}

/// Kubernetes settings of the provider. Without `host` or `config_path`, the kubeconfig comes from `KUBE_CONFIG_PATH` or `KUBE_CONFIG_PATHS` (as for the hashicorp/kubernetes provider), else from `KUBECONFIG` or `~/.kube/config`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KubernetesConfig {
    /// Path to a kubeconfig file; a leading `~` is the home directory. Defaults to `KUBE_CONFIG_PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// Context to use from the kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_context: Option<String>,
    /// API server URL, instead of a kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Bearer token for the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-sensitive" = true))]
    pub token: Option<String>,
    /// PEM-encoded CA certificate of the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ca_certificate: Option<String>,
    /// Skip TLS verification of the API server. Only for throwaway test clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// A command that prints an ExecCredential, run for each token: `aws eks get-token` on EKS, `gke-gcloud-auth-plugin` on GKE. It replaces the kubeconfig user's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-block" = true))]
    pub exec: Option<KubernetesExec>,
}

/// A client-go credential plugin (the kubeconfig `exec` user).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KubernetesExec {
    /// API version of the ExecCredential the command prints, e.g. `client.authentication.k8s.io/v1beta1`.
    #[schemars(length(min = 1))]
    pub api_version: String,
    /// The command, found on `PATH` or as a path, e.g. `aws`.
    #[schemars(length(min = 1))]
    pub command: String,
    /// Its arguments, e.g. `["eks", "get-token", "--cluster-name", "prod"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Extra environment variables for the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
}

/// `secretbridge_aws_oidc_provider`: the IAM OIDC identity provider for an EKS cluster's issuer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AwsOidcProvider {
    /// The cluster's OIDC issuer URL (`https://...`), e.g. the EKS cluster's `identity[0].oidc[0].issuer`. Changing it replaces the provider.
    #[schemars(regex(pattern = r"^https://"), extend("x-terraform-requires-replace" = true))]
    pub url: String,
    /// Audiences (client IDs) that may use the provider; defaults to `["sts.amazonaws.com"]`, the audience of IRSA tokens.
    #[serde(default = "default_client_ids")]
    #[schemars(extend("x-terraform-computed" = true))]
    pub client_ids: Vec<String>,
    /// SHA-1 thumbprints (40 hex digits) of the issuer's top certificate. Computed from the issuer's TLS chain when not set; set them for air-gapped setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed" = true))]
    pub thumbprints: Option<Vec<String>>,
    /// Tags on the IAM OIDC provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// ARN of the IAM OIDC provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub arn: Option<String>,
    /// Same as `arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

fn default_client_ids() -> Vec<String> {
    vec![crate::names::AWS_DEFAULT_AUDIENCE.to_string()]
}

/// `secretbridge_aws_irsa_role`: an IAM role that exactly one Kubernetes ServiceAccount can assume, with a least-privilege policy derived from `access`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AwsIrsaRole {
    /// Role name. Changing it replaces the role.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[\w+=,.@-]+$"), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// IAM path of the role. Changing it replaces the role.
    #[serde(default = "default_iam_path")]
    #[schemars(regex(pattern = r"^/(.*/)?$"), extend("x-terraform-requires-replace" = true))]
    pub path: String,
    /// Description of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags on the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Longest session, in seconds (3600 to 43200).
    #[serde(default = "default_max_session_duration")]
    #[schemars(range(min = 3600, max = 43200))]
    pub max_session_duration: i64,
    /// ARN of a managed policy that bounds the role's permissions, e.g. `arn:aws:iam::123456789012:policy/boundary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    /// ARN of the cluster's IAM OIDC provider, e.g. `secretbridge_aws_oidc_provider.eks.arn`. The trust policy's federated principal; its account is the role's account.
    pub oidc_provider_arn: String,
    /// Namespace of the ServiceAccount allowed to assume the role (a DNS-1123 label).
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the ServiceAccount allowed to assume the role (a DNS-1123 label).
    #[schemars(length(min = 1, max = 63))]
    pub service_account: String,
    /// What the role may read; exactly these become the role's only inline policy.
    pub access: IrsaAccess,
    /// ARN of the role, for the ServiceAccount's `eks.amazonaws.com/role-arn` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub arn: Option<String>,
    /// The derived trust policy, as canonical JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub trust_policy_json: Option<String>,
    /// The derived access policy, as canonical JSON: the role's only inline policy, `secretbridge-access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub access_policy_json: Option<String>,
    /// Whether IAM holds exactly the derived trust policy and the one derived inline policy. A refresh sets it to `false` after an out-of-band edit (an edited trust or inline policy, an extra inline policy); the next apply rewrites them.
    #[serde(default = "default_true")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub policies_in_sync: bool,
    /// Same as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_iam_path() -> String {
    "/".to_string()
}

fn default_max_session_duration() -> i64 {
    3600
}

/// The remote keys an IRSA role may read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct IrsaAccess {
    /// SSM parameter names (`/app/db/url`) or path prefixes (`/app/*`, which also grants `ssm:GetParametersByPath` on `/app`), each starting with `/`. Wire them from `secretbridge_external_secret.NAME.remote_refs`.
    #[serde(default)]
    pub parameters: Vec<String>,
    /// Secrets Manager secret names (granted with the 6-character suffix wildcard, `NAME-??????`) or full ARNs (used as they are).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// ARNs of customer-managed KMS keys that encrypt those parameters or secrets (`kms:Decrypt`).
    #[serde(default)]
    pub kms_keys: Vec<String>,
}

/// `secretbridge_gcp_service_account`: a Google service account (GSA) for a workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct GcpServiceAccount {
    /// Project of the service account; defaults to the provider's project. Changing it replaces the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed" = true, "x-terraform-requires-replace" = true))]
    pub project: Option<String>,
    /// Account ID, the part of the email before `@`: 6 to 30 lowercase letters, digits and hyphens, starting with a letter. Changing it replaces the account.
    #[schemars(length(min = 6, max = 30), regex(pattern = r"^[a-z][a-z0-9-]*[a-z0-9]$"), extend("x-terraform-requires-replace" = true))]
    pub account_id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Email of the service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub email: Option<String>,
    /// Resource name, `projects/P/serviceAccounts/EMAIL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub name: Option<String>,
    /// Numeric unique ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub unique_id: Option<String>,
    /// IAM member string, `serviceAccount:EMAIL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub member: Option<String>,
    /// Same as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// `secretbridge_gcp_workload_identity`: lets one Kubernetes ServiceAccount act as a GSA (`roles/iam.workloadIdentityUser`), without touching other members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct GcpWorkloadIdentityBinding {
    /// The GSA, by email or `projects/P/serviceAccounts/EMAIL`. Changing it replaces the binding.
    #[schemars(length(min = 1), extend("x-terraform-requires-replace" = true))]
    pub service_account: String,
    /// Namespace of the Kubernetes ServiceAccount.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Kubernetes ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub kubernetes_service_account: String,
    /// Workload identity pool; defaults to `PROJECT.svc.id.goog` for the GSA's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed" = true))]
    pub workload_pool: Option<String>,
    /// The member granted, `serviceAccount:POOL[NAMESPACE/KSA]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub member: Option<String>,
    /// Identifies the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// Where `secretbridge_gcp_secret_access` grants the role.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretAccessScope {
    /// On each listed secret only (least privilege).
    #[default]
    Secret,
    /// On the whole project: every secret in it, present and future. Broader; prefer `secret`.
    Project,
}

/// `secretbridge_gcp_secret_access`: grants `roles/secretmanager.secretAccessor` on exactly the listed secrets, without touching other members.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct GcpSecretAccess {
    /// IAM member, e.g. `serviceAccount:app@P.iam.gserviceaccount.com`. Changing it replaces the grant.
    #[schemars(regex(pattern = r"^[a-zA-Z]+:.+$"), extend("x-terraform-requires-replace" = true))]
    pub member: String,
    /// Project of the secrets; defaults to the provider's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed" = true, "x-terraform-requires-replace" = true))]
    pub project: Option<String>,
    /// Secret names or `projects/P/secrets/NAME`. Wire them from `secretbridge_external_secret.NAME.remote_refs`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// `secret` (the default) grants on each listed secret; `project` grants on the whole project, which is broader.
    #[serde(default)]
    pub scope: SecretAccessScope,
    /// Identifies the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// `secretbridge_service_account`: a Kubernetes ServiceAccount annotated for IRSA or Workload Identity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KubernetesServiceAccount {
    /// Namespace. Changing it replaces the ServiceAccount.
    #[schemars(length(min = 1, max = 63), extend("x-terraform-requires-replace" = true))]
    pub namespace: String,
    /// Name. Changing it replaces the ServiceAccount.
    #[schemars(length(min = 1, max = 253), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations, besides the two below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// IAM role ARN for IRSA; sets `eks.amazonaws.com/role-arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_role_arn: Option<String>,
    /// GSA email for Workload Identity; sets `iam.gke.io/gcp-service-account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_service_account: Option<String>,
    /// `NAMESPACE/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// `secretbridge_secret_store`: a namespaced SecretStore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretStoreResource {
    /// Namespace. Changing it replaces the store.
    #[schemars(length(min = 1, max = 63), extend("x-terraform-requires-replace" = true))]
    pub namespace: String,
    /// Name. Changing it replaces the store.
    #[schemars(length(min = 1, max = 253), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// Labels on the object's metadata. Only these keys are Terraform's: a label someone else adds in the cluster is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations on the object's metadata. Only these keys are Terraform's: an annotation someone else adds (e.g. `kubectl annotate ... force-sync=...`) is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The store's spec, as in the CRD.
    #[schemars(extend("x-terraform-block" = true))]
    pub spec: SecretStoreSpec,
    /// Whether the controller reports the store Ready (`True`, `False` or empty before the first reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub ready: Option<String>,
    /// `NAMESPACE/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// `secretbridge_cluster_secret_store`: a cluster-wide ClusterSecretStore.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ClusterSecretStoreResource {
    /// Name. Changing it replaces the store.
    #[schemars(length(min = 1, max = 253), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// Labels on the object's metadata. Only these keys are Terraform's: a label someone else adds in the cluster is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations on the object's metadata. Only these keys are Terraform's: an annotation someone else adds (e.g. `kubectl annotate ... force-sync=...`) is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The store's spec, as in the CRD.
    #[schemars(extend("x-terraform-block" = true))]
    pub spec: ClusterSecretStoreSpec,
    /// Whether the controller reports the store Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub ready: Option<String>,
    /// Same as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// `secretbridge_external_secret`: an ExternalSecret. Terraform holds the mapping; secret values never enter Terraform.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ExternalSecretResource {
    /// Namespace. Changing it replaces the ExternalSecret.
    #[schemars(length(min = 1, max = 63), extend("x-terraform-requires-replace" = true))]
    pub namespace: String,
    /// Name. Changing it replaces the ExternalSecret.
    #[schemars(length(min = 1, max = 253), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// Labels on the object's metadata. Only these keys are Terraform's: a label someone else adds in the cluster is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations on the object's metadata. Only these keys are Terraform's: an annotation someone else adds (e.g. `kubectl annotate ... force-sync=...`) is left alone and is not drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The ExternalSecret's spec, as in the CRD.
    #[schemars(extend("x-terraform-block" = true))]
    pub spec: ExternalSecretSpec,
    /// More `spec.data` entries without `data` blocks: Secret key to remote key, e.g. `{ DB_URL = "/app/db/url" }` (each as `data { secret_key = "DB_URL" remote_ref = { key = "/app/db/url" } }`). Merged with the `data` blocks; a Secret key given in both is a plan error. Use a `data` block for `property`, `version` or `decoding_strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_map: Option<BTreeMap<String, String>>,
    /// Make `terraform apply` wait until the controller reports the ExternalSecret Ready for this spec, and fail with the Ready condition's reason and message when it does not within `timeouts`.
    #[serde(default)]
    pub wait_for_ready: bool,
    /// How long `wait_for_ready` waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-block" = true))]
    pub timeouts: Option<ReadyTimeouts>,
    /// Every remote key this ExternalSecret reads, for wiring least-privilege IAM (`access.parameters`, `secrets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub remote_refs: Option<Vec<String>>,
    /// Whether the controller reports the ExternalSecret Ready (`True`, `False` or empty before the first sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub ready: Option<String>,
    /// Reason of the Ready condition, e.g. `SecretSynced`. Never holds secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub reason: Option<String>,
    /// `NAMESPACE/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
}

/// Terraform's `timeouts {}` block of `secretbridge_external_secret`: how long `wait_for_ready` waits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ReadyTimeouts {
    /// Longest wait for Ready after creating, a duration like `2m` (the default) or `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<String>,
    /// Longest wait for Ready after an update, a duration like `2m` (the default) or `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
}

/// How long `wait_for_ready` waits when `timeouts` does not say.
pub const DEFAULT_READY_TIMEOUT: &str = "2m";

/// One Terraform resource type: its name and the Rust type of its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKind {
    /// Terraform type name, e.g. `secretbridge_aws_irsa_role`.
    pub type_name: &'static str,
    /// Short description for docs.
    pub summary: &'static str,
}

/// Every resource the provider serves, in the order the docs list them.
pub const RESOURCES: &[ResourceKind] = &[
    ResourceKind { type_name: "secretbridge_aws_oidc_provider", summary: "IAM OIDC identity provider for an EKS cluster, thumbprint computed." },
    ResourceKind { type_name: "secretbridge_aws_irsa_role", summary: "IAM role for one ServiceAccount, trust and least-privilege policy derived." },
    ResourceKind { type_name: "secretbridge_gcp_service_account", summary: "Google service account for a workload." },
    ResourceKind { type_name: "secretbridge_gcp_workload_identity", summary: "Workload Identity binding of a Kubernetes ServiceAccount to a GSA." },
    ResourceKind { type_name: "secretbridge_gcp_secret_access", summary: "secretAccessor on exactly the listed secrets." },
    ResourceKind { type_name: "secretbridge_service_account", summary: "Kubernetes ServiceAccount annotated for IRSA or Workload Identity." },
    ResourceKind { type_name: "secretbridge_secret_store", summary: "Namespaced SecretStore." },
    ResourceKind { type_name: "secretbridge_cluster_secret_store", summary: "Cluster-wide ClusterSecretStore." },
    ResourceKind { type_name: "secretbridge_external_secret", summary: "ExternalSecret mapping remote keys to a Kubernetes Secret." },
];
