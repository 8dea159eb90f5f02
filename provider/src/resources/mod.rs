//! Terraform resources served by the provider, one file each.

pub mod test_object;
