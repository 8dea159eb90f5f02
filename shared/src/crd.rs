//! The CRDs as Kubernetes objects and as the YAML committed in `deploy/crds/`.
//!
//! Rendering is pure; `make gen` writes the files and a test fails when the
//! committed YAML drifts from what these types generate.

use crate::{ClusterSecretStore, ExternalSecret, SecretStore};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Header of every generated CRD file.
pub const GENERATED_HEADER: &str =
    "# Generated from shared/ by `make gen`. Do not edit: change the Rust types instead.\n";

/// Every secretbridge CRD, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        SecretStore::crd(),
        ClusterSecretStore::crd(),
        ExternalSecret::crd(),
    ]
}

/// The file name a CRD is committed under, e.g. `secretbridge.io_externalsecrets.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as committed YAML: the header, then one YAML document.
pub fn render_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    Ok(format!("{GENERATED_HEADER}{}", serde_yaml::to_string(crd)?))
}

/// Every CRD as `(file name, YAML)`, plus the `kustomization.yaml` that lists
/// them so `deploy/` can include the folder as one kustomize resource.
pub fn rendered_files() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    let mut files = crds()
        .iter()
        .map(|crd| Ok((file_name(crd), render_yaml(crd)?)))
        .collect::<Result<Vec<_>, serde_yaml::Error>>()?;
    let mut kustomization = format!(
        "{GENERATED_HEADER}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
    );
    for (name, _) in &files {
        kustomization.push_str(&format!("  - {name}\n"));
    }
    files.push(("kustomization.yaml".to_string(), kustomization));
    Ok(files)
}

/// All CRDs as one multi-document YAML stream (`secretbridge-controller crd`).
pub fn render_all_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::from(GENERATED_HEADER);
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// Header of the generated CRD reference (an HTML comment, invisible when rendered).
pub const REFERENCE_HEADER: &str =
    "<!-- Generated from shared/ by `make gen`. Do not edit: change the Rust doc comments instead. -->\n";

/// The CRD reference (`docs/crds.md`): per kind, its description and a table
/// of every field under `spec` and `status` with type, whether it is required,
/// and its description, all read from the generated CRD schemas.
pub fn render_reference_markdown() -> Result<String, serde_json::Error> {
    let mut out = format!(
        "{REFERENCE_HEADER}\n# Custom resources (`secretbridge.io/v1`)\n\nThe controller reconciles three kinds. Their fields follow External Secrets Operator's `external-secrets.io/v1` API, so `secretbridge-controller convert` maps ESO manifests one to one; fields ESO has and secretbridge lacks are listed by `convert` when it refuses them.\n\n"
    );
    for crd in crds() {
        out.push_str(&format!("- [{kind}](#{anchor})\n", kind = crd.spec.names.kind, anchor = crd.spec.names.kind.to_lowercase()));
    }
    out.push('\n');
    for crd in crds() {
        let names = &crd.spec.names;
        let version = crd.spec.versions.first();
        let schema = version
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .map(serde_json::to_value)
            .transpose()?
            .unwrap_or(serde_json::Value::Null);
        out.push_str(&format!("## {}\n\n", names.kind));
        if let Some(description) = schema.get("description").and_then(serde_json::Value::as_str) {
            out.push_str(description);
            out.push_str("\n\n");
        }
        let short_names = names.short_names.clone().unwrap_or_default().join(", ");
        out.push_str(&format!(
            "`apiVersion: {}/{}`, `kind: {}`; {}; short name `{}`.\n\n",
            crd.spec.group,
            version.map(|v| v.name.as_str()).unwrap_or(""),
            names.kind,
            if crd.spec.scope == "Namespaced" { "namespaced" } else { "cluster-scoped" },
            short_names
        ));
        for part in ["spec", "status"] {
            let Some(node) = schema.pointer(&format!("/properties/{part}")) else { continue };
            out.push_str(&format!("### `{part}`\n\n| Field | Type | Required | Description |\n|---|---|---|---|\n"));
            let mut rows = Vec::new();
            field_rows(node, part, &mut rows);
            for (path, kind, required, description) in rows {
                let description = description.replace('|', "\\|").replace('\n', " ");
                out.push_str(&format!("| `{path}` | {kind} | {} | {description} |\n", if required { "yes" } else { "" }));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// Flattens the properties under `node` into `(path, type, required, description)` rows.
fn field_rows(node: &serde_json::Value, path: &str, rows: &mut Vec<(String, String, bool, String)>) {
    use serde_json::Value;
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = node.get("properties").and_then(Value::as_object) else { return };
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    for name in names {
        let child = &properties[name];
        let child_path = format!("{path}.{name}");
        let mut kind = child.get("type").and_then(Value::as_str).unwrap_or("object").to_string();
        let mut inner = child;
        if kind == "array"
            && let Some(items) = child.get("items")
        {
            kind = format!("array of {}", items.get("type").and_then(Value::as_str).unwrap_or("object"));
            inner = items;
        }
        if let Some(values) = child.get("enum").and_then(Value::as_array) {
            let values: Vec<String> = values.iter().filter_map(Value::as_str).map(|v| format!("`{v}`")).collect();
            kind = format!("{kind}: {}", values.join(", "));
        }
        let description = child.get("description").and_then(Value::as_str).unwrap_or("").to_string();
        rows.push((child_path.clone(), kind, required.contains(&name.as_str()), description));
        let nested_path = if inner.get("type").and_then(Value::as_str) == Some("object") && !std::ptr::eq(inner, child) {
            format!("{child_path}[]")
        } else {
            child_path
        };
        field_rows(inner, &nested_path, rows);
    }
}
