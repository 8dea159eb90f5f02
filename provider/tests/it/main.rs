//! Integration tests of the provider: in-process gRPC, the golden schema,
//! the binary's handshake, and the acceptance lifecycle on real Terraform.

mod acceptance;
mod aws_common;
mod aws_end_to_end;
mod aws_irsa_role;
mod aws_oidc_provider;
mod bench;
mod docs;
mod gcp_common;
mod gcp_end_to_end;
mod gcp_secret_access;
mod gcp_service_account;
mod gcp_validation;
mod gcp_workload_identity;
mod golden;
mod handshake;
mod hcl_shapes;
mod first_run;
mod k8s_objects;
mod mtls;
mod plan_hook;
mod rpc;
mod service_account;
mod shared_schemas;
mod support;
mod unknown_references;
