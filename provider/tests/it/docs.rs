//! The Terraform Registry docs under `docs/` are generated from the provider
//! schema and `examples-terraform/`; `make gen` (SECRETBRIDGE_GEN=1) writes
//! them and this test fails when the committed pages drift.

use std::path::{Path, PathBuf};
use terraform_provider_secretbridge::docs;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pages() -> Vec<(String, String)> {
    let provider = terraform_provider_secretbridge::provider(false).expect("provider schema generates");
    docs::render(&docs::schema_json(&provider), &repo_root().join("examples-terraform")).expect("docs render")
}

#[test]
fn generated_docs_match() {
    let docs_dir = repo_root().join("docs");
    let generate = std::env::var("SECRETBRIDGE_GEN").is_ok_and(|v| v == "1");
    for (name, text) in pages() {
        let path = docs_dir.join(&name);
        if generate {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create docs dir");
            std::fs::write(&path, &text).expect("write page");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}; run `make gen`", path.display()));
        assert!(committed == text, "{} is stale; run `make gen` and commit the result", path.display());
    }
}

#[test]
fn every_resource_has_a_page_with_its_arguments() {
    let pages = pages();
    for kind in secretbridge_shared::terraform::RESOURCES {
        let short = kind.type_name.trim_start_matches("secretbridge_");
        let (_, page) = pages.iter().find(|(name, _)| *name == format!("resources/{short}.md")).unwrap_or_else(|| panic!("no page for {}", kind.type_name));
        assert!(page.contains(&format!("# {} (Resource)", kind.type_name)));
        assert!(page.contains(kind.summary), "{} page lacks its summary", kind.type_name);
        assert!(page.contains("terraform import"), "{} page lacks import syntax", kind.type_name);
    }
    let (_, service_account) = pages.iter().find(|(name, _)| name == "resources/service_account.md").expect("page");
    assert!(service_account.contains("| `namespace` | String | Required |"), "{service_account}");
    assert!(service_account.contains("| `id` | String | Computed | `NAMESPACE/NAME`. |"), "{service_account}");
    let (_, index) = pages.iter().find(|(name, _)| name == "index.md").expect("index");
    assert!(index.contains("| `aws` | block (single)"), "{index}");
    assert!(index.contains("| `region` | String | Required |"), "{index}");
}
