//! `secretbridge_cluster_secret_store`: a ClusterSecretStore, written by
//! server-side apply as `secretbridge-terraform`. Read returns the spec the
//! cluster holds and the controller's Ready status; import by `NAME`.
//! `labels` and `annotations` hold only Terraform's keys (see
//! [`k::owned_metadata`]).

use ::kube::Api;
use secretbridge_shared::names::API_VERSION;
use secretbridge_shared::store::{ClusterSecretStore, admits_every_namespace};
use secretbridge_shared::terraform::ClusterSecretStoreResource;
use serde_json::json;

use super::k8s_checks;
use super::secret_store::{fitted_spec, validate_provider};
use crate::kube as k;
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{PlannedState, ProviderContext, Resource};

/// The `secretbridge_cluster_secret_store` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterSecretStoreResourceType;

fn what(name: &str) -> String {
    format!("ClusterSecretStore {name}")
}

fn manifest(s: &ClusterSecretStoreResource) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "ClusterSecretStore",
        "metadata": {
            "name": s.name,
            "labels": s.labels.clone().unwrap_or_default(),
            "annotations": s.annotations.clone().unwrap_or_default(),
        },
        "spec": s.spec,
    })
}

fn state_of(current: &ClusterSecretStoreResource, found: ClusterSecretStore) -> Result<ClusterSecretStoreResource, Diagnostics> {
    let spec = fitted_spec(&current.spec, &found.spec, &what(&current.name))?;
    let (ready, _) = k::ready_of(found.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default());
    Ok(ClusterSecretStoreResource {
        name: current.name.clone(),
        labels: k::owned_metadata(&found.metadata, k::MetadataMap::Labels, &current.labels),
        annotations: k::owned_metadata(&found.metadata, k::MetadataMap::Annotations, &current.annotations),
        spec,
        ready,
        id: Some(current.name.clone()),
    })
}

async fn api(ctx: &ProviderContext) -> Result<Api<ClusterSecretStore>, Diagnostics> {
    Ok(Api::all(k::client(ctx).await?))
}

impl Resource for ClusterSecretStoreResourceType {
    type State = ClusterSecretStoreResource;

    fn type_name(&self) -> &'static str {
        "secretbridge_cluster_secret_store"
    }

    fn validate(&self, config: &ClusterSecretStoreResource) -> Diagnostics {
        let mut diags = Diagnostics::default();
        k::check_names(None, &config.name, &mut diags);
        let retry = config.spec.retry_settings.as_ref().and_then(|r| r.retry_interval.as_deref());
        validate_provider(&config.spec.provider, retry, &mut diags);
        diags
    }

    async fn modify_plan(
        &self,
        ctx: &ProviderContext,
        _prior: Option<&ClusterSecretStoreResource>,
        planned: &mut PlannedState<'_, ClusterSecretStoreResource>,
    ) -> Diagnostics {
        let mut diags = k8s_checks::require_cluster(ctx).await;
        if diags.has_errors() {
            return diags;
        }
        if let Some(model) = planned.model()
            && !planned.is_unknown(&AttrPath::root("spec").attr("conditions"))
            && admits_every_namespace(&model.spec.conditions)
            && let Some(sa) = model.spec.provider.service_account_ref()
            && let Some(sa_ns) = &sa.namespace
        {
            diags.push(Diagnostic::attribute_warning(
                AttrPath::root("spec").attr("conditions"),
                "ClusterSecretStore lends one ServiceAccount to every namespace",
                format!(
                    "ClusterSecretStore {} authenticates as ServiceAccount {sa_ns}/{} for every ExternalSecret, and it has no conditions, so an ExternalSecret in any namespace can read everything that ServiceAccount's cloud identity may read. Add conditions naming the namespaces that may use it (e.g. conditions {{ namespaces = [\"{sa_ns}\"] }}), or drop service_account_ref.namespace so each namespace uses its own ServiceAccount.",
                    model.name, sa.name
                ),
            ));
        }
        diags.extend(k8s_checks::plan_store(ctx, planned.value(), false).await);
        diags
    }

    async fn create(&self, ctx: &ProviderContext, planned: ClusterSecretStoreResource) -> Result<ClusterSecretStoreResource, Diagnostics> {
        let api = api(ctx).await?;
        let stored = k::create_new(&api, &planned.name, &manifest(&planned), &what(&planned.name), "ClusterSecretStore", &planned.name).await?;
        state_of(&planned, stored)
    }

    async fn read(&self, ctx: &ProviderContext, current: ClusterSecretStoreResource) -> Result<Option<ClusterSecretStoreResource>, Diagnostics> {
        let api = api(ctx).await?;
        match k::get(&api, &current.name, &what(&current.name)).await? {
            Some(found) => Ok(Some(state_of(&current, found)?)),
            None => Ok(None),
        }
    }

    async fn update(
        &self,
        ctx: &ProviderContext,
        _prior: ClusterSecretStoreResource,
        planned: ClusterSecretStoreResource,
    ) -> Result<ClusterSecretStoreResource, Diagnostics> {
        let api = api(ctx).await?;
        let stored = k::apply_exact_spec(&api, &planned.name, &manifest(&planned), &what(&planned.name)).await?;
        state_of(&planned, stored)
    }

    async fn delete(&self, ctx: &ProviderContext, prior: ClusterSecretStoreResource) -> Result<(), Diagnostics> {
        let api = api(ctx).await?;
        k::delete(&api, &prior.name, &what(&prior.name)).await
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<ClusterSecretStoreResource, Diagnostics> {
        if id.is_empty() || id.contains('/') {
            return Err(Diagnostic::error(
                "Invalid ClusterSecretStore import ID",
                format!("{id:?} is not NAME; a ClusterSecretStore has no namespace, import with e.g. `terraform import ADDRESS my-store`."),
            )
            .into());
        }
        let api = api(ctx).await?;
        match k::get(&api, &id, &what(&id)).await? {
            Some(found) => {
                let key = ClusterSecretStoreResource { name: id, labels: None, annotations: None, spec: found.spec.clone(), ready: None, id: None };
                state_of(&key, found)
            }
            None => Err(Diagnostic::error("Cannot import non-existent ClusterSecretStore", format!("{} does not exist; check the ID.", what(&id))).into()),
        }
    }
}
