//! `secretbridge_external_secret`: an ExternalSecret, written by server-side
//! apply as `secretbridge-terraform`. Terraform holds only the mapping
//! (remote keys to Secret keys); secret values never pass through it.
//! `remote_refs` is derived from the spec at plan time, so IAM can be wired
//! from it in the same plan; `ready`/`reason` come from the controller's
//! status. Import by `NAMESPACE/NAME`. The plan checks that the store it
//! names exists in its namespace (in the cluster or in this plan).

use ::kube::Api;
use secretbridge_shared::external_secret::{ExternalSecret, ExternalSecretSpec, StoreKind};
use secretbridge_shared::store::{ClusterSecretStore, SecretStore, StoreProvider, remote_names};
use secretbridge_shared::names::API_VERSION;
use secretbridge_shared::terraform::ExternalSecretResource;
use serde_json::json;

use super::k8s_checks;
use super::secret_store::fitted_spec;
use crate::kube as k;
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{PlannedState, ProviderContext, Resource};
use crate::planned::Known;
use crate::plugin::value::Value;

/// The `secretbridge_external_secret` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExternalSecretResourceType;

fn what(e: &ExternalSecretResource) -> String {
    format!("ExternalSecret {}/{}", e.namespace, e.name)
}

fn manifest(e: &ExternalSecretResource) -> serde_json::Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "ExternalSecret",
        "metadata": { "name": e.name, "namespace": e.namespace },
        "spec": e.spec,
    })
}

/// What the controller will read for `spec`: every remote key behind the
/// prefix of the store it names (the same pure function the controller's
/// fetch applies, [`secretbridge_shared::store::remote_names`]). The store
/// is looked up in this plan first, then in the cluster; `None` while its
/// prefix is unknown. A store found nowhere adds no prefix (its absence is
/// reported by the namespace checks).
async fn remote_refs_for(ctx: &ProviderContext, namespace: &str, spec: &ExternalSecretSpec) -> Result<Option<Vec<String>>, Diagnostics> {
    let keys = spec.remote_keys();
    let store = &spec.secret_store_ref.name;
    let store_ns = match spec.secret_store_ref.kind {
        StoreKind::SecretStore => Some(namespace),
        StoreKind::ClusterSecretStore => None,
    };
    let prefix = match ctx.planned.store_prefix(store_ns, store) {
        Some(Known::Value(p)) => p,
        Some(Known::Unknown) => return Ok(None),
        None if !has_cluster(ctx) => None,
        None => {
            let client = k::client(ctx).await?;
            let provider = match store_ns {
                Some(ns) => {
                    let api: Api<SecretStore> = Api::namespaced(client, ns);
                    k::get(&api, store, &format!("SecretStore {ns}/{store}")).await?.map(|s| s.spec.provider)
                }
                None => {
                    let api: Api<ClusterSecretStore> = Api::all(client);
                    k::get(&api, store, &format!("ClusterSecretStore {store}")).await?.map(|s| s.spec.provider)
                }
            };
            match provider {
                Some(StoreProvider::Aws(aws)) => aws.prefix,
                _ => None,
            }
        }
    };
    Ok(Some(remote_names(prefix.as_deref(), &keys)))
}

/// Whether the provider has a `kubernetes {}` block to look stores up in.
fn has_cluster(ctx: &ProviderContext) -> bool {
    ctx.config.get("kubernetes").is_some_and(|k| !k.is_null())
}

/// The state for what the cluster holds. `remote_refs` is what was planned
/// (create, update) or, on read, kept while the mapping keys are unchanged
/// (the store's prefix is re-derived at plan), else re-derived.
async fn state_of(ctx: &ProviderContext, current: &ExternalSecretResource, found: ExternalSecret, remote_refs: Option<Vec<String>>) -> Result<ExternalSecretResource, Diagnostics> {
    let spec = fitted_spec(&current.spec, &found.spec, &what(current))?;
    let remote_refs = match remote_refs {
        Some(refs) => Some(refs),
        None => match remote_refs_for(ctx, &current.namespace, &spec).await {
            Ok(Some(refs)) => Some(refs),
            _ => Some(spec.remote_keys()),
        },
    };
    let (ready, reason) = k::ready_of(found.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default());
    Ok(ExternalSecretResource {
        namespace: current.namespace.clone(),
        name: current.name.clone(),
        remote_refs,
        spec,
        ready,
        reason,
        id: Some(format!("{}/{}", current.namespace, current.name)),
    })
}

async fn api(ctx: &ProviderContext, namespace: &str) -> Result<Api<ExternalSecret>, Diagnostics> {
    Ok(Api::namespaced(k::client(ctx).await?, namespace))
}

impl Resource for ExternalSecretResourceType {
    type State = ExternalSecretResource;

    fn type_name(&self) -> &'static str {
        "secretbridge_external_secret"
    }

    fn validate(&self, config: &ExternalSecretResource) -> Diagnostics {
        let mut diags = Diagnostics::default();
        k::check_names(Some(&config.namespace), &config.name, &mut diags);
        let spec = AttrPath::root("spec");
        if let Err(e) = config.spec.refresh_interval() {
            diags.push(Diagnostic::attribute_error(
                spec.attr("refresh_interval"),
                "Invalid refresh_interval",
                format!("{:?} is not a duration ({e}); write it like `1h`, `15m` or `1h30m`, or `0` to sync once.", config.spec.refresh_interval),
            ));
        }
        if !k::is_dns1123_subdomain(&config.spec.secret_store_ref.name) {
            diags.push(Diagnostic::attribute_error(
                spec.attr("secret_store_ref").attr("name"),
                "Invalid store name",
                format!("{:?} is not a valid Kubernetes object name; use the store's metadata name.", config.spec.secret_store_ref.name),
            ));
        }
        if let Some(target) = &config.spec.target.name
            && !k::is_dns1123_subdomain(target)
        {
            diags.push(Diagnostic::attribute_error(
                spec.attr("target").attr("name"),
                "Invalid target Secret name",
                format!("{target:?} is not a valid Secret name (DNS-1123 subdomain: lower-case letters, digits, '-' and '.')."),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in config.spec.data.iter().enumerate() {
            if !seen.insert(d.secret_key.as_str()) {
                diags.push(Diagnostic::attribute_error(
                    spec.attr("data").index(i).attr("secret_key"),
                    "Duplicate secret_key",
                    format!("secret_key {:?} is written by an earlier data entry too; each key of the Secret may come from one entry only.", d.secret_key),
                ));
            }
        }
        if config.spec.data.is_empty() && config.spec.data_from.is_empty() {
            diags.push(Diagnostic::attribute_error(
                spec.clone(),
                "Nothing to sync",
                "spec has neither data nor data_from; add at least one mapping so the ExternalSecret writes a key.",
            ));
        }
        diags
    }

    async fn modify_plan(
        &self,
        ctx: &ProviderContext,
        _prior: Option<&ExternalSecretResource>,
        planned: &mut PlannedState<'_, ExternalSecretResource>,
    ) -> Diagnostics {
        // The defaults inside a `target` block (creation and deletion policy)
        // come from the model; a `target` left out stays out of the plan.
        let mut diags = match planned.fill_defaults_from_model() {
            Ok(()) => Diagnostics::default(),
            Err(d) => return d,
        };
        // remote_refs is a pure function of the spec: known at plan time
        // whenever the mappings are, so IAM can be derived in the same plan.
        // It names what the controller will read: the store's prefix
        // followed by each key.
        diags.extend(k8s_checks::require_cluster(ctx).await);
        let spec = match planned.model() {
            Some(model)
                if !planned.is_unknown(&AttrPath::root("spec").attr("data"))
                    && !planned.is_unknown(&AttrPath::root("spec").attr("data_from"))
                    && !planned.is_unknown(&AttrPath::root("spec").attr("secret_store_ref")) =>
            {
                Some((model.namespace.clone(), model.spec.clone()))
            }
            _ => None,
        };
        if let Some((namespace, spec)) = spec
            && !diags.has_errors()
        {
            // Left unknown until apply when the store's prefix is, or when
            // the cluster lookup failed (the namespace checks below say why).
            if let Ok(Some(refs)) = remote_refs_for(ctx, &namespace, &spec).await {
                planned.set_attr("remote_refs", Value::List(refs.into_iter().map(Value::String).collect()));
            }
        }
        if diags.has_errors() {
            return diags;
        }
        diags.extend(k8s_checks::plan_external_secret(ctx, planned.value()).await);
        diags
    }

    async fn create(&self, ctx: &ProviderContext, planned: ExternalSecretResource) -> Result<ExternalSecretResource, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::create_new(&api, &planned.name, &manifest(&planned), &what(&planned), "ExternalSecret", &format!("{}/{}", planned.namespace, planned.name)).await?;
        let refs = planned.remote_refs.clone();
        state_of(ctx, &planned, stored, refs).await
    }

    async fn read(&self, ctx: &ProviderContext, current: ExternalSecretResource) -> Result<Option<ExternalSecretResource>, Diagnostics> {
        let api = api(ctx, &current.namespace).await?;
        match k::get(&api, &current.name, &what(&current)).await? {
            Some(found) => {
                let keep = current.remote_refs.clone().filter(|_| found.spec.remote_keys() == current.spec.remote_keys());
                Ok(Some(state_of(ctx, &current, found, keep).await?))
            }
            None => Ok(None),
        }
    }

    async fn update(&self, ctx: &ProviderContext, _prior: ExternalSecretResource, planned: ExternalSecretResource) -> Result<ExternalSecretResource, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::apply_exact_spec(&api, &planned.name, &manifest(&planned), &what(&planned)).await?;
        let refs = planned.remote_refs.clone();
        state_of(ctx, &planned, stored, refs).await
    }

    async fn delete(&self, ctx: &ProviderContext, prior: ExternalSecretResource) -> Result<(), Diagnostics> {
        let api = api(ctx, &prior.namespace).await?;
        k::delete(&api, &prior.name, &what(&prior)).await
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<ExternalSecretResource, Diagnostics> {
        let (namespace, name) = k::split_namespaced_id("ExternalSecret", &id)?;
        let api = api(ctx, &namespace).await?;
        let label = format!("ExternalSecret {namespace}/{name}");
        match k::get(&api, &name, &label).await? {
            Some(found) => {
                let key = ExternalSecretResource { namespace, name, spec: found.spec.clone(), remote_refs: None, ready: None, reason: None, id: None };
                state_of(ctx, &key, found, None).await
            }
            None => Err(Diagnostic::error("Cannot import non-existent ExternalSecret", format!("{label} does not exist; check the ID.")).into()),
        }
    }
}
