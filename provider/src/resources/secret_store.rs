//! `secretbridge_secret_store`: a namespaced SecretStore, written by
//! server-side apply as `secretbridge-terraform`. Read returns the spec the
//! cluster holds (drift shows in the plan) and the controller's Ready
//! status; import by `NAMESPACE/NAME`. `labels` and `annotations` hold only
//! Terraform's keys (see [`k::owned_metadata`]). The plan checks that the store's
//! ServiceAccount lives in the store's namespace and carries the annotation
//! its provider needs.

use ::kube::Api;
use secretbridge_shared::names::API_VERSION;
use secretbridge_shared::store::{SecretStore, StoreProvider};
use secretbridge_shared::terraform::SecretStoreResource;
use serde_json::json;

use super::k8s_checks;
use crate::kube as k;
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{PlannedState, ProviderContext, Resource};

/// The `secretbridge_secret_store` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct SecretStoreResourceType;

fn what(s: &SecretStoreResource) -> String {
    format!("SecretStore {}/{}", s.namespace, s.name)
}

fn manifest(s: &SecretStoreResource) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "SecretStore",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "labels": s.labels.clone().unwrap_or_default(),
            "annotations": s.annotations.clone().unwrap_or_default(),
        },
        "spec": s.spec,
    })
}

/// A spec as the cluster holds it, shaped like `current`'s (see [`k::fit_to`]).
pub(crate) fn fitted_spec<T: serde::Serialize + serde::de::DeserializeOwned>(current: &T, found: &T, what: &str) -> Result<T, Diagnostics> {
    let to_json = |v: &T| serde_json::to_value(v);
    let decode_error = |e: serde_json::Error| {
        Diagnostics::from(Diagnostic::error(
            format!("Could not read {what}"),
            format!("the spec in the cluster does not fit the provider's model ({e}); check the CRD version installed in the cluster."),
        ))
    };
    let fitted = k::fit_to(&to_json(current).map_err(decode_error)?, to_json(found).map_err(decode_error)?);
    serde_json::from_value(fitted).map_err(decode_error)
}

fn state_of(current: &SecretStoreResource, found: SecretStore) -> Result<SecretStoreResource, Diagnostics> {
    let spec = fitted_spec(&current.spec, &found.spec, &what(current))?;
    let (ready, _) = k::ready_of(found.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default());
    Ok(SecretStoreResource {
        namespace: current.namespace.clone(),
        name: current.name.clone(),
        labels: k::owned_metadata(&found.metadata, k::MetadataMap::Labels, &current.labels),
        annotations: k::owned_metadata(&found.metadata, k::MetadataMap::Annotations, &current.annotations),
        spec,
        ready,
        id: Some(format!("{}/{}", current.namespace, current.name)),
    })
}

async fn api(ctx: &ProviderContext, namespace: &str) -> Result<Api<SecretStore>, Diagnostics> {
    Ok(Api::namespaced(k::client(ctx).await?, namespace))
}

/// Validation shared by both store kinds.
pub(crate) fn validate_provider(provider: &StoreProvider, retry_interval: Option<&str>, diags: &mut Diagnostics) {
    let provider_path = AttrPath::root("spec").attr("provider");
    if let Some(sa) = provider.service_account_ref() {
        let path = match provider {
            StoreProvider::Aws(_) => provider_path.attr("aws").attr("auth").attr("jwt"),
            StoreProvider::Gcpsm(_) => provider_path.attr("gcpsm").attr("auth").attr("workload_identity"),
        }
        .attr("service_account_ref");
        if !k::is_dns1123_subdomain(&sa.name) {
            diags.push(Diagnostic::attribute_error(
                path.attr("name"),
                "Invalid ServiceAccount name",
                format!("{:?} is not a valid Kubernetes object name (DNS-1123 subdomain: lower-case letters, digits, '-' and '.').", sa.name),
            ));
        }
    }
    if let Some(interval) = retry_interval
        && let Err(e) = secretbridge_shared::duration::parse_duration(interval)
    {
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("spec").attr("retry_settings").attr("retry_interval"),
            "Invalid retry_interval",
            format!("{interval:?} is not a duration ({e}); write it like `1s`, `500ms` or `1m30s`."),
        ));
    }
}

impl Resource for SecretStoreResourceType {
    type State = SecretStoreResource;

    fn type_name(&self) -> &'static str {
        "secretbridge_secret_store"
    }

    fn validate(&self, config: &SecretStoreResource) -> Diagnostics {
        let mut diags = Diagnostics::default();
        k::check_names(Some(&config.namespace), &config.name, &mut diags);
        let retry = config.spec.retry_settings.as_ref().and_then(|r| r.retry_interval.as_deref());
        validate_provider(&config.spec.provider, retry, &mut diags);
        diags
    }

    async fn modify_plan(&self, ctx: &ProviderContext, _prior: Option<&SecretStoreResource>, planned: &mut PlannedState<'_, SecretStoreResource>) -> Diagnostics {
        let mut diags = k8s_checks::require_cluster(ctx).await;
        if !diags.has_errors() {
            diags.extend(k8s_checks::plan_store(ctx, planned.value(), true).await);
        }
        diags
    }

    async fn create(&self, ctx: &ProviderContext, planned: SecretStoreResource) -> Result<SecretStoreResource, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::create_new(&api, &planned.name, &manifest(&planned), &what(&planned), "SecretStore", &format!("{}/{}", planned.namespace, planned.name)).await?;
        state_of(&planned, stored)
    }

    async fn read(&self, ctx: &ProviderContext, current: SecretStoreResource) -> Result<Option<SecretStoreResource>, Diagnostics> {
        let api = api(ctx, &current.namespace).await?;
        match k::get(&api, &current.name, &what(&current)).await? {
            Some(found) => Ok(Some(state_of(&current, found)?)),
            None => Ok(None),
        }
    }

    async fn update(&self, ctx: &ProviderContext, _prior: SecretStoreResource, planned: SecretStoreResource) -> Result<SecretStoreResource, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::apply_exact_spec(&api, &planned.name, &manifest(&planned), &what(&planned)).await?;
        state_of(&planned, stored)
    }

    async fn delete(&self, ctx: &ProviderContext, prior: SecretStoreResource) -> Result<(), Diagnostics> {
        let api = api(ctx, &prior.namespace).await?;
        k::delete(&api, &prior.name, &what(&prior)).await
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<SecretStoreResource, Diagnostics> {
        let (namespace, name) = k::split_namespaced_id("SecretStore", &id)?;
        let api = api(ctx, &namespace).await?;
        let label = format!("SecretStore {namespace}/{name}");
        match k::get(&api, &name, &label).await? {
            Some(found) => {
                let key = SecretStoreResource { namespace, name, labels: None, annotations: None, spec: found.spec.clone(), ready: None, id: None };
                state_of(&key, found)
            }
            None => Err(Diagnostic::error("Cannot import non-existent SecretStore", format!("{label} does not exist; check the ID.")).into()),
        }
    }
}
