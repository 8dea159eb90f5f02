//! Names that every part of secretbridge must spell the same way: the API
//! group, annotations and labels that the provider writes and the controller
//! reads, and the field managers of server-side apply.

/// API group of the secretbridge CRDs.
pub const GROUP: &str = "secretbridge.io";
/// API version of the secretbridge CRDs.
pub const VERSION: &str = "v1";
/// `apiVersion` of every secretbridge object.
pub const API_VERSION: &str = "secretbridge.io/v1";

/// Field manager of the in-cluster controller.
pub const CONTROLLER_FIELD_MANAGER: &str = "secretbridge";
/// Field manager of the Terraform provider.
pub const TERRAFORM_FIELD_MANAGER: &str = "secretbridge-terraform";

/// ServiceAccount annotation naming the IAM role that IRSA assumes (EKS).
pub const AWS_ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// ServiceAccount annotation overriding the token audience for IRSA (EKS).
pub const AWS_AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";
/// Default audience of web-identity tokens for AWS STS.
pub const AWS_DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// KSA annotation naming the GCP service account to impersonate (GKE).
pub const GCP_SERVICE_ACCOUNT_ANNOTATION: &str = "iam.gke.io/gcp-service-account";

/// Label put on every Secret the controller manages; its watch filters on it
/// so the controller does not cache every Secret in the cluster.
pub const MANAGED_LABEL: &str = "secretbridge.io/managed";
/// Annotation holding the hash of the data the controller last wrote, used to
/// detect a Secret edited by someone else.
pub const DATA_HASH_ANNOTATION: &str = "secretbridge.io/data-hash";
/// Annotation whose change asks the controller to re-sync at once.
pub const FORCE_SYNC_ANNOTATION: &str = "secretbridge.io/force-sync";
/// ESO's force-sync annotation (`kubectl annotate es NAME force-sync=$(date +%s)
/// --overwrite`), honoured as well so ESO runbooks keep working.
pub const ESO_FORCE_SYNC_ANNOTATION: &str = "force-sync";
/// Annotation the controller puts on every Secret it creates, naming the
/// ExternalSecret that created it. The controller rewrites whole, strips,
/// owns or deletes only Secrets that carry it for the ExternalSecret at hand
/// (or an owner reference to it); any other existing Secret is only ever
/// merged into, under that ExternalSecret's own field manager.
pub const CREATED_BY_ANNOTATION: &str = "secretbridge.io/created-by";
/// Prefix of the field manager a `creationPolicy: Merge` ExternalSecret
/// writes with, followed by its name: each ExternalSecret owns only its own
/// keys, so two merging into one Secret never remove each other's.
pub const MERGE_FIELD_MANAGER_PREFIX: &str = "secretbridge/";

/// Secret types that an ExternalSecret may never create or merge into: they
/// carry cluster credentials (ESO CVE-2026-42876).
pub const FORBIDDEN_SECRET_TYPES: &[&str] = &[
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
];
