//! Kubernetes access for the ServiceAccount, store and ExternalSecret
//! resources: the client built from the provider's `kubernetes {}` block,
//! and the small helpers every Kubernetes resource file shares (server-side
//! apply with the Terraform field manager, `ns/name` import IDs, error text).

use std::collections::BTreeMap;

use ::kube::api::{DeleteParams, Patch, PatchParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Api, Client, Config};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secretbridge_shared::names::TERRAFORM_FIELD_MANAGER;
use secretbridge_shared::terraform::{KubernetesConfig, ProviderConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::plugin::diag::{Diagnostic, Diagnostics};
use crate::plugin::resource::ProviderContext;

/// Builds a client from the provider's `kubernetes {}` block: `host` (with
/// `token`, `cluster_ca_certificate`, `insecure`) when set, else the
/// kubeconfig at `config_path` (or the default one) with `config_context`.
pub async fn client(ctx: &ProviderContext) -> Result<Client, Diagnostics> {
    let provider: ProviderConfig = ctx.config()?;
    let settings = provider.kubernetes.unwrap_or_default();
    // The workspace enables both rustls backends; name one so building the
    // TLS config never has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = config_from(&settings).await?;
    Client::try_from(config).map_err(|e| {
        Diagnostic::error(
            "Could not build the Kubernetes client",
            format!("{e}. Check the provider's kubernetes {{}} block (host, cluster_ca_certificate, insecure)."),
        )
        .into()
    })
}

async fn config_from(settings: &KubernetesConfig) -> Result<Config, Diagnostics> {
    let paths = {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let home = env("HOME");
        kubeconfig_paths(settings.config_path.as_deref(), &env, home.as_deref())
    };
    let mut config = config_without_exec(settings, paths).await?;
    if let Some(exec) = &settings.exec {
        config.auth_info = exec_auth(exec)?;
    }
    Ok(config)
}

/// The kubeconfig files to read: `kubernetes.config_path`, else
/// `KUBE_CONFIG_PATH`, else every path in `KUBE_CONFIG_PATHS` (merged in
/// order, as the hashicorp/kubernetes provider does), each with `~`
/// expanded; empty when none is set (the default kubeconfig is used).
pub fn kubeconfig_paths(config_path: Option<&str>, env: &dyn Fn(&str) -> Option<String>, home: Option<&str>) -> Vec<(String, std::path::PathBuf)> {
    let (setting, raw): (&str, Vec<String>) = if let Some(path) = config_path {
        ("kubernetes.config_path", vec![path.to_owned()])
    } else if let Some(path) = env("KUBE_CONFIG_PATH") {
        ("KUBE_CONFIG_PATH", vec![path])
    } else if let Some(paths) = env("KUBE_CONFIG_PATHS") {
        ("KUBE_CONFIG_PATHS", std::env::split_paths(&paths).map(|p| p.to_string_lossy().into_owned()).filter(|p| !p.is_empty()).collect())
    } else {
        ("", Vec::new())
    };
    raw.into_iter().map(|p| (format!("{setting} {p:?}"), expand_home(&p, home))).collect()
}

/// `~` and `~/...` are the home directory, as a shell would expand them.
pub fn expand_home(path: &str, home: Option<&str>) -> std::path::PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => std::path::PathBuf::from(home),
        (Some(rest), Some(home)) if rest.starts_with('/') => std::path::Path::new(home).join(rest.trim_start_matches('/')),
        _ => std::path::PathBuf::from(path),
    }
}

async fn config_without_exec(settings: &KubernetesConfig, paths: Vec<(String, std::path::PathBuf)>) -> Result<Config, Diagnostics> {
    let options = KubeConfigOptions { context: settings.config_context.clone(), ..KubeConfigOptions::default() };
    if let Some(host) = &settings.host {
        let url = host.parse().map_err(|e| {
            Diagnostics::from(Diagnostic::error(
                "Invalid kubernetes host",
                format!("kubernetes.host {host:?} is not a URL: {e}. Set it to the API server URL, e.g. https://10.0.0.1:6443."),
            ))
        })?;
        let mut config = Config::new(url);
        if let Some(token) = &settings.token {
            config.auth_info.token = Some(token.clone().into());
        }
        if let Some(pem) = &settings.cluster_ca_certificate {
            let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
                .map(|c| c.map(|c| c.as_ref().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    Diagnostics::from(Diagnostic::error(
                        "Invalid kubernetes cluster_ca_certificate",
                        format!("kubernetes.cluster_ca_certificate is not PEM: {e}. Paste the PEM certificate, e.g. from base64decode(cluster.certificate_authority_data)."),
                    ))
                })?;
            config.root_cert = Some(certs);
        }
        config.accept_invalid_certs = settings.insecure.unwrap_or(false);
        return Ok(config);
    }
    let loaded = if paths.is_empty() {
        Config::from_kubeconfig(&options).await
    } else {
        let mut merged: Option<Kubeconfig> = None;
        for (setting, path) in &paths {
            let read = Kubeconfig::read_from(path).map_err(|e| {
                Diagnostics::from(Diagnostic::error(
                    "Could not read the kubeconfig",
                    format!("{setting} (read as {}): {e}. Point kubernetes.config_path (or KUBE_CONFIG_PATH) at a readable kubeconfig file.", path.display()),
                ))
            })?;
            merged = Some(match merged {
                None => read,
                Some(m) => m.merge(read).map_err(|e| {
                    Diagnostics::from(Diagnostic::error("Could not merge the kubeconfigs", format!("{setting}: {e}. Check the files named in KUBE_CONFIG_PATHS.")))
                })?,
            });
        }
        match merged {
            Some(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await,
            None => Config::from_kubeconfig(&options).await,
        }
    };
    loaded.map_err(|e| {
        Diagnostic::error(
            "Could not load the kubeconfig",
            format!("{e}. Set kubernetes.config_path (and config_context) or kubernetes.host in the provider block."),
        )
        .into()
    })
}

/// The kubeconfig user for an `exec {}` block: the command's
/// ExecCredential replaces any other credential.
fn exec_auth(exec: &secretbridge_shared::terraform::KubernetesExec) -> Result<::kube::config::AuthInfo, Diagnostics> {
    let env: Vec<serde_json::Value> = exec.env.iter().flatten().map(|(name, value)| serde_json::json!({ "name": name, "value": value })).collect();
    let value = serde_json::json!({
        "exec": {
            "apiVersion": exec.api_version,
            "command": exec.command,
            "args": exec.args.clone().unwrap_or_default(),
            "env": env,
        }
    });
    serde_json::from_value(value).map_err(|e| {
        Diagnostic::error("Invalid kubernetes exec block", format!("{e}. Set exec {{ api_version, command, args, env }} as for a kubeconfig exec user.")).into()
    })
}

/// Splits an import ID `NAMESPACE/NAME`; the error names the expected form.
pub fn split_namespaced_id(kind: &str, id: &str) -> Result<(String, String), Diagnostics> {
    match id.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((ns.to_owned(), name.to_owned())),
        _ => Err(Diagnostic::error(
            format!("Invalid {kind} import ID"),
            format!("{id:?} is not NAMESPACE/NAME; import with e.g. `terraform import ADDRESS default/my-{}`.", kind.to_lowercase()),
        )
        .into()),
    }
}

/// An API error as a diagnostic saying what was being done to which object.
pub fn api_error(action: &str, what: &str, e: &::kube::Error) -> Diagnostics {
    let hint = match e {
        ::kube::Error::Api(s) if s.code == 403 => " The provider's Kubernetes identity lacks RBAC for this; grant it or use another context.",
        ::kube::Error::Api(s) if s.code == 404 => " The API or namespace does not exist; install the secretbridge CRDs and create the namespace first.",
        _ => "",
    };
    Diagnostic::error(format!("Could not {action} {what}"), format!("{e}.{hint}")).into()
}

/// Server-side applies `object` as the Terraform field manager (forcing
/// conflicts: Terraform's configuration is the source of truth for the
/// fields it sets) and returns what the server stored.
pub async fn apply<K>(api: &Api<K>, name: &str, object: &serde_json::Value, what: &str) -> Result<K, Diagnostics>
where
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let params = PatchParams::apply(TERRAFORM_FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(object)).await.map_err(|e| api_error("apply", what, &e))
}

/// Creates an object Terraform is about to own: refuses one that already
/// exists (server-side apply would silently adopt it) and says how to
/// import it instead. `kind` names the object in the summary, `import_id`
/// is what `terraform import` takes for it.
pub async fn create_new<K>(api: &Api<K>, name: &str, object: &serde_json::Value, what: &str, kind: &str, import_id: &str) -> Result<K, Diagnostics>
where
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    if get(api, name, what).await?.is_some() {
        return Err(Diagnostic::error(
            format!("{kind} already exists"),
            format!("{what} already exists in the cluster; import it with `terraform import ADDRESS {import_id}` or choose another name."),
        )
        .into());
    }
    apply(api, name, object, what).await
}

/// Server-side applies `object` like [`apply`], then makes the stored
/// `spec` exactly `object.spec`: a field that someone else added (a
/// `kubectl patch` of a field Terraform leaves unset) is owned by their
/// field manager, so apply alone would keep it. Terraform owns the whole
/// spec of the objects it declares, so such fields are removed with a
/// replace of the object (conflict-checked by its resourceVersion).
pub async fn apply_exact_spec<K>(api: &Api<K>, name: &str, object: &serde_json::Value, what: &str) -> Result<K, Diagnostics>
where
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let stored = apply(api, name, object, what).await?;
    let mut current = serde_json::to_value(&stored).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
    let desired_spec = object.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    if current.get("spec") == Some(&desired_spec) {
        return Ok(stored);
    }
    if let Some(fields) = current.as_object_mut() {
        fields.insert("spec".to_owned(), desired_spec);
        // Status belongs to the controller and its own subresource.
        fields.remove("status");
    }
    let replacement: K = serde_json::from_value(current).map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
    let params = ::kube::api::PostParams { dry_run: false, field_manager: Some(TERRAFORM_FIELD_MANAGER.to_owned()) };
    api.replace(name, &params, &replacement).await.map_err(|e| api_error("replace", what, &e))
}

/// Deletes an object; already gone is success.
pub async fn delete<K>(api: &Api<K>, name: &str, what: &str) -> Result<(), Diagnostics>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(::kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_error("delete", what, &e)),
    }
}

/// Reads an object; `None` when it does not exist.
pub async fn get<K>(api: &Api<K>, name: &str, what: &str) -> Result<Option<K>, Diagnostics>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(|e| api_error("read", what, &e))
}

/// A cluster map as a Terraform optional map: an empty map stays `{}` when
/// the configuration said `{}`, and is null otherwise, so neither form
/// shows a diff against a cluster that has no entries.
pub fn optional_map(current: &Option<BTreeMap<String, String>>, found: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    if found.is_empty() && current.as_ref().is_none_or(|m| !m.is_empty()) { None } else { Some(found) }
}

/// Which metadata map of an object [`owned_metadata`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMap {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

/// The labels (or annotations) of `meta` that are Terraform's, as a
/// Terraform optional map: the keys `configured` holds (so a value someone
/// changed or removed shows as drift) and the keys the Terraform field
/// manager owns in `managedFields` (so an import finds them). A key someone
/// else added is theirs: not in the state, so not drift, and left alone by
/// server-side apply.
pub fn owned_metadata(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    which: MetadataMap,
    configured: &Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let (found, field) = match which {
        MetadataMap::Labels => (meta.labels.as_ref(), "f:labels"),
        MetadataMap::Annotations => (meta.annotations.as_ref(), "f:annotations"),
    };
    let ours: std::collections::BTreeSet<String> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.manager.as_deref() == Some(TERRAFORM_FIELD_MANAGER))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .filter_map(|fields| fields.0.get("f:metadata")?.get(field)?.as_object())
        .flat_map(|keys| keys.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_owned))
        .chain(configured.iter().flat_map(|m| m.keys().cloned()))
        .collect();
    let owned = found.map(|all| all.iter().filter(|(k, _)| ours.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    optional_map(configured, owned)
}

/// Shapes what the cluster returned like what Terraform holds, so that a
/// value the API server writes out in its zero form (`false`, `[]`, `{}`,
/// `""`, `0`) but the configuration left unset (or the other way round)
/// does not read as drift. Anything else the cluster holds is kept, so
/// real drift still shows.
pub fn fit_to(current: &serde_json::Value, found: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    fn zero(v: &J) -> bool {
        match v {
            J::Null => true,
            J::Bool(b) => !b,
            J::Number(n) => n.as_f64() == Some(0.0),
            J::String(s) => s.is_empty(),
            J::Array(a) => a.is_empty(),
            J::Object(o) => o.is_empty(),
        }
    }
    match (current, found) {
        (J::Object(cur), J::Object(mut found)) => {
            found.retain(|k, v| !(zero(v) && cur.get(k).is_none_or(J::is_null)));
            for (k, cv) in cur {
                if !found.contains_key(k) && zero(cv) && !cv.is_null() {
                    found.insert(k.clone(), cv.clone());
                }
            }
            J::Object(
                found
                    .into_iter()
                    .map(|(k, v)| {
                        let fitted = match cur.get(k.as_str()) {
                            Some(cv) => fit_to(cv, v),
                            None => v,
                        };
                        (k, fitted)
                    })
                    .collect(),
            )
        }
        (J::Array(cur), J::Array(found)) if cur.len() == found.len() => J::Array(cur.iter().zip(found).map(|(c, f)| fit_to(c, f)).collect()),
        (_, found) => found,
    }
}

/// Whether `name` is a DNS-1123 label (namespaces): lower-case
/// alphanumerics and `-`, starting and ending alphanumeric, at most 63.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `name` is a DNS-1123 subdomain (object names): dot-separated
/// labels, at most 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// Diagnostics for a namespace and a name that Kubernetes would reject.
pub fn check_names(namespace: Option<&str>, name: &str, diags: &mut Diagnostics) {
    use crate::plugin::diag::AttrPath;
    if let Some(ns) = namespace
        && !is_dns1123_label(ns)
    {
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("namespace"),
            "Invalid namespace",
            format!("namespace {ns:?} is not a DNS-1123 label: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit."),
        ));
    }
    if !is_dns1123_subdomain(name) {
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("name"),
            "Invalid name",
            format!("name {name:?} is not a DNS-1123 subdomain: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters."),
        ));
    }
}

/// The `Ready` condition's status and reason (`True`/`False`/`Unknown`).
pub fn ready_of(conditions: &[secretbridge_shared::Condition]) -> (Option<String>, Option<String>) {
    match secretbridge_shared::condition::find_ready(conditions) {
        Some(c) => {
            let status = serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_owned));
            (status, c.reason.clone())
        }
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_zero_values_fit_the_configured_form() {
        use serde_json::json;
        let current = json!({"target": {"name": "x"}, "audiences": [], "data": [{"k": "a"}]});
        let found = json!({"target": {"name": "x", "immutable": false}, "data": [{"k": "a", "p": ""}], "extra": "drift"});
        assert_eq!(fit_to(&current, found), json!({"target": {"name": "x"}, "audiences": [], "data": [{"k": "a"}], "extra": "drift"}));
        let found = json!({"target": {"name": "y", "immutable": true}});
        assert_eq!(fit_to(&current, found), json!({"target": {"name": "y", "immutable": true}, "audiences": []}), "real values stay");
    }

    #[test]
    fn kubeconfig_paths_expand_home_and_follow_the_hashicorp_variables() {
        let none = |_: &str| None;
        let home = Some("/home/u");
        assert_eq!(kubeconfig_paths(Some("~/.kube/config"), &none, home)[0].1, std::path::PathBuf::from("/home/u/.kube/config"));
        assert_eq!(expand_home("~", home), std::path::PathBuf::from("/home/u"));
        assert_eq!(expand_home("~other/x", home), std::path::PathBuf::from("~other/x"), "another user's home is not ours");
        assert_eq!(expand_home("/abs", home), std::path::PathBuf::from("/abs"));
        let one = |n: &str| (n == "KUBE_CONFIG_PATH").then(|| "~/k1".to_owned());
        let paths = kubeconfig_paths(None, &one, home);
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].1, std::path::PathBuf::from("/home/u/k1"));
        assert!(paths[0].0.starts_with("KUBE_CONFIG_PATH "), "{}", paths[0].0);
        let many = |n: &str| (n == "KUBE_CONFIG_PATHS").then(|| "/a:~/b".to_owned());
        let got: Vec<_> = kubeconfig_paths(None, &many, home).into_iter().map(|(_, p)| p).collect();
        assert_eq!(got, [std::path::PathBuf::from("/a"), std::path::PathBuf::from("/home/u/b")]);
        // The explicit setting wins over the environment.
        assert_eq!(kubeconfig_paths(Some("/x"), &one, home)[0].1, std::path::PathBuf::from("/x"));
        assert!(kubeconfig_paths(None, &none, home).is_empty());
    }

    #[test]
    fn exec_block_becomes_the_kubeconfig_exec_user() {
        let exec = secretbridge_shared::terraform::KubernetesExec {
            api_version: "client.authentication.k8s.io/v1beta1".into(),
            command: "aws".into(),
            args: Some(vec!["eks".into(), "get-token".into()]),
            env: Some([("AWS_PROFILE".to_string(), "prod".to_string())].into()),
        };
        let auth = exec_auth(&exec).expect("valid");
        let e = auth.exec.expect("exec set");
        assert_eq!(e.command.as_deref(), Some("aws"));
        assert_eq!(e.args, Some(vec!["eks".to_string(), "get-token".to_string()]));
        let env = e.env.expect("env");
        assert_eq!(env[0].get("name").map(String::as_str), Some("AWS_PROFILE"));
    }

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("app-1"));
        assert!(!is_dns1123_label("App"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("db.creds"));
        assert!(!is_dns1123_subdomain("db_creds"));
    }

    #[test]
    fn import_id_needs_namespace_and_name() {
        assert_eq!(split_namespaced_id("ServiceAccount", "app/db").ok(), Some(("app".into(), "db".into())));
        for bad in ["db", "/db", "app/", "a/b/c"] {
            assert!(split_namespaced_id("ServiceAccount", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_someone_else_added_is_not_ours() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
        let entry = |manager: &str, keys: &[&str]| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Apply".to_owned()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:metadata": { "f:labels": keys.iter().map(|k| (format!("f:{k}"), serde_json::json!({}))).collect::<serde_json::Map<_, _>>() }
            }))),
            ..ManagedFieldsEntry::default()
        };
        let labels: BTreeMap<String, String> = [("team", "a"), ("imported", "b"), ("theirs", "c")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let meta = ObjectMeta {
            labels: Some(labels),
            managed_fields: Some(vec![entry(TERRAFORM_FIELD_MANAGER, &["imported"]), entry("kubectl-label", &["theirs"])]),
            ..ObjectMeta::default()
        };
        let configured = Some([("team".to_owned(), "a".to_owned()), ("gone".to_owned(), "x".to_owned())].into());
        let got = owned_metadata(&meta, MetadataMap::Labels, &configured).expect("some");
        assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), ["imported", "team"], "configured and managed keys only; a removed one is absent");
        assert_eq!(owned_metadata(&meta, MetadataMap::Annotations, &None), None);
    }

    #[test]
    fn empty_cluster_map_follows_the_configuration_form() {
        let empty = BTreeMap::new();
        assert_eq!(optional_map(&None, empty.clone()), None);
        assert_eq!(optional_map(&Some(BTreeMap::new()), empty.clone()), Some(BTreeMap::new()));
        let one: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert_eq!(optional_map(&None, one.clone()), Some(one));
    }
}
