//! Terraform resources served by the provider, one file each.

pub mod aws_irsa_role;
pub mod aws_oidc_provider;
pub mod gcp_secret_access;
pub mod gcp_service_account;
pub mod gcp_workload_identity;
pub mod service_account;
pub mod test_object;
