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
