//! Terraform resources served by the provider, one file each.

pub mod gcp_service_account;
pub mod test_object;
