//! Every Terraform resource model in `shared` converts to a tfplugin6
//! schema, so later resources can register without schema surprises.

use secretbridge_shared::terraform as tf;
use terraform_provider_secretbridge::plugin::schema::{GeneratedSchema, SchemaOptions, generate, schema_to_json};

fn convert<T: schemars::JsonSchema>() -> GeneratedSchema {
    generate::<T>(0, SchemaOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", T::schema_name()))
}

#[test]
fn every_shared_resource_model_converts() {
    let all = [
        ("aws_oidc_provider", convert::<tf::AwsOidcProvider>()),
        ("aws_irsa_role", convert::<tf::AwsIrsaRole>()),
        ("gcp_service_account", convert::<tf::GcpServiceAccount>()),
        ("gcp_workload_identity", convert::<tf::GcpWorkloadIdentityBinding>()),
        ("gcp_secret_access", convert::<tf::GcpSecretAccess>()),
        ("service_account", convert::<tf::KubernetesServiceAccount>()),
        ("secret_store", convert::<tf::SecretStoreResource>()),
        ("cluster_secret_store", convert::<tf::ClusterSecretStoreResource>()),
        ("external_secret", convert::<tf::ExternalSecretResource>()),
    ];
    for (name, g) in &all {
        let block = g.schema.block.as_ref().expect("block");
        assert!(!block.attributes.is_empty(), "{name} has attributes");
        for a in &block.attributes {
            // Terraform rejects an attribute with both a type and a nested type, or neither.
            assert!(a.r#type.is_empty() != a.nested_type.is_none(), "{name}.{}: exactly one of type/nested_type", a.name);
            assert!(a.required ^ (a.optional || a.computed), "{name}.{}: required excludes optional/computed", a.name);
        }
        let text = serde_json::to_string(&schema_to_json(&g.schema)).expect("json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_snake_case(name, &doc["block"]);
        if std::env::var("SECRETBRIDGE_PRINT_SCHEMAS").is_ok() {
            println!("{name}: {}", serde_json::to_string_pretty(&schema_to_json(&g.schema)).expect("json"));
        }
    }
}

/// Terraform attribute names are snake_case even where the model (CRD spec
/// types) is camelCase.
fn assert_snake_case(resource: &str, block: &serde_json::Value) {
    for key in ["attributes", "block_types"] {
        if let Some(map) = block[key].as_object() {
            for (name, inner) in map {
                assert!(
                    name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{resource}: attribute {name} is not snake_case"
                );
                assert_snake_case(resource, &inner["nested_type"]);
                assert_snake_case(resource, &inner["block"]);
            }
        }
    }
}
