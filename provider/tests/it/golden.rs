//! The generated provider schema is pinned by a golden file; `make gen`
//! (SECRETBRIDGE_GEN=1) rewrites it.

use std::path::PathBuf;

use terraform_provider_secretbridge::plugin::schema::schema_to_json;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema").join("provider-schema.json")
}

/// The schema document in the shape of `terraform providers schema -json`
/// (one provider), without the test-only resources.
fn rendered() -> String {
    let provider = terraform_provider_secretbridge::provider(false).expect("provider schema generates");
    let resp = provider.schema_response();
    let mut resources = serde_json::Map::new();
    let mut names: Vec<&String> = resp.resource_schemas.keys().collect();
    names.sort();
    for name in names {
        resources.insert(name.clone(), schema_to_json(&resp.resource_schemas[name]));
    }
    let doc = serde_json::json!({
        "format_version": "1.0",
        "provider_schemas": {
            "registry.terraform.io/secretbridge/secretbridge": {
                "provider": schema_to_json(resp.provider.as_ref().expect("provider schema present")),
                "resource_schemas": resources,
            }
        }
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("serialises");
    text.push('\n');
    text
}

#[test]
fn generated_provider_schema_matches() {
    let text = rendered();
    let path = golden_path();
    if std::env::var("SECRETBRIDGE_GEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("create schema dir");
        std::fs::write(&path, &text).expect("write golden schema");
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}; run `make gen` to create it", path.display()));
    assert!(golden == text, "{} is stale; run `make gen` and commit the result", path.display());
}

#[test]
fn golden_schema_excludes_test_resources_and_has_provider_blocks() {
    let text = rendered();
    assert!(!text.contains("secretbridge_test_object"));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let provider = &doc["provider_schemas"]["registry.terraform.io/secretbridge/secretbridge"]["provider"]["block"];
    for block in ["aws", "gcp", "kubernetes"] {
        assert_eq!(provider["block_types"][block]["nesting_mode"], "single", "{block} is a block");
    }
    assert_eq!(provider["block_types"]["aws"]["block"]["attributes"]["region"]["required"], true);
    assert_eq!(provider["block_types"]["kubernetes"]["block"]["attributes"]["token"]["sensitive"], true);
}
