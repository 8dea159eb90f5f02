//! Terraform resources served by the provider, one file each.

pub mod aws_irsa_role;
pub mod aws_oidc_provider;
pub mod cluster_secret_store;
pub mod external_secret;
pub mod gcp_secret_access;
pub mod gcp_service_account;
pub mod gcp_workload_identity;
pub mod k8s_checks;
pub mod secret_store;
pub mod service_account;
pub mod test_object;
