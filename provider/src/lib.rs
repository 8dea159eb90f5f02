//! Terraform provider (tfplugin6) that wires cloud access for secretbridge.
//!
//! [`plugin`] is the protocol layer (handshake, gRPC server, value codec,
//! schema generation, the [`plugin::resource::Resource`] trait); resources
//! live in [`resources`], one file each.

pub mod aws;
pub mod docs;
pub mod gcp;
pub mod kube;
pub mod planned;
pub mod plugin;
pub mod resources;

use plugin::schema::SchemaError;
use plugin::server::ProviderServer;
use secretbridge_shared::terraform::ProviderConfig;

/// Builds the provider with every production resource, plus the test-only
/// resources when `include_test_resources` is set.
pub fn provider(include_test_resources: bool) -> Result<ProviderServer, SchemaError> {
    let mut builder = ProviderServer::builder::<ProviderConfig>()?;
    builder = builder.resource(resources::service_account::ServiceAccountResource)?;
    builder = builder.resource(resources::aws_oidc_provider::AwsOidcProviderResource)?;
    builder = builder.resource(resources::aws_irsa_role::AwsIrsaRoleResource)?;
    builder = builder.resource(resources::secret_store::SecretStoreResourceType)?;
    builder = builder.resource(resources::cluster_secret_store::ClusterSecretStoreResourceType)?;
    builder = builder.resource(resources::external_secret::ExternalSecretResourceType)?;
    builder = builder.resource(resources::gcp_service_account::GcpServiceAccountResource)?;
    builder = builder.resource(resources::gcp_secret_access::GcpSecretAccessResource)?;
    builder = builder.resource(resources::gcp_workload_identity::GcpWorkloadIdentityResource)?;
    if include_test_resources {
        builder = builder
            .resource(resources::test_object::TestObjectResource::from_env())?
            .data_source(resources::test_object::TestObjectDataSource::from_env())?
            .ephemeral(resources::test_object::TestTokenEphemeral)?;
    }
    Ok(builder.build())
}

/// Whether the environment asks for the test-only resources.
pub fn test_resources_enabled() -> bool {
    std::env::var(resources::test_object::ENABLE_ENV).is_ok_and(|v| v == "1")
}
