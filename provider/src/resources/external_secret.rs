//! `secretbridge_external_secret`: an ExternalSecret, written by server-side
//! apply as `secretbridge-terraform`. Terraform holds only the mapping
//! (remote keys to Secret keys); secret values never pass through it.
//! `remote_refs` is derived from the spec at plan time, so IAM can be wired
//! from it in the same plan; `ready`/`reason` come from the controller's
//! status. Import by `NAMESPACE/NAME`. The plan checks that the store it
//! names exists in its namespace (in the cluster or in this plan).
//!
//! `data_map` entries become plain `spec.data` entries in the cluster (after
//! the `data` blocks) and are split back out on read. `labels` and
//! `annotations` hold only Terraform's keys (see [`k::owned_metadata`]).
//! With `wait_for_ready`, apply waits for the controller's Ready condition
//! for the spec it wrote ([`ExternalSecretResourceType::settle`]).

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::Api;
use secretbridge_shared::condition::ConditionStatus;
use secretbridge_shared::external_secret::{DecodingStrategy, ExternalSecret, ExternalSecretData, ExternalSecretSpec, RemoteRef, StoreKind};
use secretbridge_shared::store::{ClusterSecretStore, SecretStore, StoreProvider, remote_names};
use secretbridge_shared::names::API_VERSION;
use secretbridge_shared::terraform::{DEFAULT_READY_TIMEOUT, ExternalSecretResource};
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
        "metadata": {
            "name": e.name,
            "namespace": e.namespace,
            "labels": e.labels.clone().unwrap_or_default(),
            "annotations": e.annotations.clone().unwrap_or_default(),
        },
        "spec": merged_spec(e),
    })
}

/// The spec the cluster holds: the `data` blocks, then one plain entry per
/// `data_map` key (in key order).
pub(crate) fn merged_spec(e: &ExternalSecretResource) -> ExternalSecretSpec {
    let mut spec = e.spec.clone();
    spec.data.extend(e.data_map.iter().flatten().map(|(secret_key, key)| ExternalSecretData { secret_key: secret_key.clone(), remote_ref: plain_ref(key) }));
    spec
}

fn plain_ref(key: &str) -> RemoteRef {
    RemoteRef { key: key.to_owned(), property: None, version: None, decoding_strategy: DecodingStrategy::default() }
}

/// Splits the data the cluster holds back into `data` blocks and
/// `data_map`: an entry whose Secret key `data_map` holds, and that is a
/// plain remote key (no property, version or decoding), goes back to the
/// map; every other entry is a block, so an edit in the cluster shows as
/// drift of whichever the configuration uses.
fn split_data(data_map: &Option<BTreeMap<String, String>>, mut found: ExternalSecretSpec) -> (ExternalSecretSpec, Option<BTreeMap<String, String>>) {
    let mut map = BTreeMap::new();
    if let Some(wanted) = data_map {
        found.data.retain(|d| {
            let plain = d.remote_ref == plain_ref(&d.remote_ref.key);
            if plain && wanted.contains_key(&d.secret_key) && !map.contains_key(&d.secret_key) {
                map.insert(d.secret_key.clone(), d.remote_ref.key.clone());
                false
            } else {
                true
            }
        });
    }
    (found, k::optional_map(data_map, map))
}

/// A Secret key written both by a `data_map` entry and by a `data` block is
/// an error naming both places.
fn data_map_conflicts<'a>(data: &[ExternalSecretData], map_keys: impl Iterator<Item = &'a str>) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for key in map_keys {
        if let Some(i) = data.iter().position(|d| d.secret_key == key) {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("data_map").key(key),
                "Secret key set twice",
                format!(
                    "Secret key {key:?} is set both by data_map[\"{key}\"] and by spec.data[{i}].secret_key; each key of the Secret comes from one place. Remove it from data_map, or delete that data block."
                ),
            ));
        }
    }
    diags
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
    let (blocks, data_map) = split_data(&current.data_map, found.spec.clone());
    let spec = fitted_spec(&current.spec, &blocks, &what(current))?;
    let remote_refs = match remote_refs {
        Some(refs) => Some(refs),
        None => match remote_refs_for(ctx, &current.namespace, &found.spec).await {
            Ok(Some(refs)) => Some(refs),
            _ => Some(found.spec.remote_keys()),
        },
    };
    let (ready, reason) = k::ready_of(found.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default());
    Ok(ExternalSecretResource {
        namespace: current.namespace.clone(),
        name: current.name.clone(),
        labels: k::owned_metadata(&found.metadata, k::MetadataMap::Labels, &current.labels),
        annotations: k::owned_metadata(&found.metadata, k::MetadataMap::Annotations, &current.annotations),
        remote_refs,
        spec,
        data_map,
        wait_for_ready: current.wait_for_ready,
        timeouts: current.timeouts.clone(),
        ready,
        reason,
        id: Some(format!("{}/{}", current.namespace, current.name)),
    })
}

/// Whether `es` is Ready for the spec it holds now: `Ready=True`, and the
/// status's `syncedResourceVersion` (`GENERATION` or `GENERATION-HASH`)
/// names the current `metadata.generation`, so a Ready left from an older
/// spec does not count.
fn ready_for_current_spec(es: &ExternalSecret) -> bool {
    let Some(status) = &es.status else { return false };
    let ready = secretbridge_shared::condition::find_ready(&status.conditions).is_some_and(|c| c.status == ConditionStatus::True);
    let current = match (&status.synced_resource_version, es.metadata.generation) {
        (Some(synced), Some(generation)) => synced.split_once('-').map_or(synced.as_str(), |(g, _)| g).parse::<i64>().ok() == Some(generation),
        _ => true,
    };
    ready && current
}

/// Polls the ExternalSecret until it is Ready for its current spec or
/// `timeout` passes. Returns the last object read and, on timeout, an error
/// with the Ready condition's reason and message (the controller keeps
/// values out of them) and what to do.
async fn wait_ready(api: &Api<ExternalSecret>, es: &ExternalSecretResource, timeout: Duration, timeout_text: &str, attr: &str) -> (Option<ExternalSecret>, Diagnostics) {
    let label = what(es);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<ExternalSecret> = None;
    let mut read_error: Option<Diagnostics>;
    loop {
        match k::get(api, &es.name, &label).await {
            Ok(Some(found)) => {
                read_error = None;
                if ready_for_current_spec(&found) {
                    return (Some(found), Diagnostics::default());
                }
                last = Some(found);
            }
            Ok(None) => {
                let d = Diagnostic::error(
                    format!("{label} was deleted while waiting for Ready"),
                    "Something deleted it right after Terraform wrote it; run `terraform apply` again to re-create it.",
                );
                return (last, d.into());
            }
            Err(d) => read_error = Some(d),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
    }
    if let Some(d) = read_error {
        return (last, d);
    }
    let condition = last.as_ref().and_then(|f| f.status.as_ref()).and_then(|s| secretbridge_shared::condition::find_ready(&s.conditions));
    let observed = match condition {
        Some(c) => {
            let status = serde_json::to_value(c.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            format!(
                "Ready is {status}, reason {}: {}",
                c.reason.as_deref().unwrap_or("(none)"),
                c.message.as_deref().unwrap_or("(no message)")
            )
        }
        None => format!(
            "no Ready condition was reported: is secretbridge-controller running, and does it serve namespace '{}'?",
            es.namespace
        ),
    };
    let detail = format!(
        "{label} was not Ready for its current spec within {timeout_text} (timeouts.{attr}); {observed}. Fix the cause (see `kubectl describe externalsecret -n {} {}`) and apply again, raise timeouts.{attr}, or set wait_for_ready = false.",
        es.namespace, es.name
    );
    (last, Diagnostic::error(format!("{label} did not become Ready"), detail).into())
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
        for (secret_key, key) in config.data_map.iter().flatten() {
            let at = AttrPath::root("data_map").key(secret_key);
            if secret_key.is_empty() || secret_key.len() > 253 || !secret_key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
                diags.push(Diagnostic::attribute_error(
                    at.clone(),
                    "Invalid Secret key",
                    format!("{secret_key:?} is not a valid key of a Secret: use 1 to 253 letters, digits, '-', '.' and '_'."),
                ));
            }
            if key.is_empty() {
                diags.push(Diagnostic::attribute_error(at, "Empty remote key", format!("data_map[{secret_key:?}] names no remote key; set it to e.g. \"/app/db/url\".")));
            }
        }
        diags.extend(data_map_conflicts(&config.spec.data, config.data_map.iter().flatten().map(|(k, _)| k.as_str())));
        if config.spec.data.is_empty() && config.spec.data_from.is_empty() && config.data_map.as_ref().is_none_or(BTreeMap::is_empty) {
            diags.push(Diagnostic::attribute_error(
                spec.clone(),
                "Nothing to sync",
                "spec has neither data nor data_from, and data_map is empty; add at least one mapping so the ExternalSecret writes a key.",
            ));
        }
        for (attr, value) in config.timeouts.iter().flat_map(|t| [("create", &t.create), ("update", &t.update)]) {
            if let Some(text) = value
                && let Err(e) = secretbridge_shared::duration::parse_duration(text)
            {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("timeouts").attr(attr),
                    "Invalid timeout",
                    format!("{text:?} is not a duration ({e}); write it like `2m`, `90s` or `1m30s`."),
                ));
            }
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
        // A data_map whose values are not known yet still has known keys:
        // a key also given in a data block fails the plan already.
        if let (Some(model), Value::Map(map)) = (planned.model(), planned.value().attr("data_map"))
            && !planned.is_unknown(&AttrPath::root("spec").attr("data"))
        {
            diags.extend(data_map_conflicts(&model.spec.data, map.keys().map(String::as_str)));
        }
        let spec = match planned.model() {
            Some(model)
                if !planned.is_unknown(&AttrPath::root("spec").attr("data"))
                    && !planned.is_unknown(&AttrPath::root("data_map"))
                    && !planned.is_unknown(&AttrPath::root("spec").attr("data_from"))
                    && !planned.is_unknown(&AttrPath::root("spec").attr("secret_store_ref")) =>
            {
                Some((model.namespace.clone(), merged_spec(model)))
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
                let keep = current.remote_refs.clone().filter(|_| found.spec.remote_keys() == merged_spec(&current).remote_keys());
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

    async fn settle(&self, ctx: &ProviderContext, written: ExternalSecretResource, creating: bool) -> (ExternalSecretResource, Diagnostics) {
        if !written.wait_for_ready {
            return (written, Diagnostics::default());
        }
        let (attr, configured) = match (&written.timeouts, creating) {
            (Some(t), true) => ("create", t.create.clone()),
            (Some(t), false) => ("update", t.update.clone()),
            (None, true) => ("create", None),
            (None, false) => ("update", None),
        };
        let timeout_text = configured.unwrap_or_else(|| DEFAULT_READY_TIMEOUT.to_owned());
        // validate() refused an unparsable timeout; the fallback only guards
        // against a state written by hand.
        let timeout = secretbridge_shared::duration::parse_duration(&timeout_text).unwrap_or(Duration::from_secs(120));
        let api = match api(ctx, &written.namespace).await {
            Ok(api) => api,
            Err(d) => return (written, d),
        };
        let (last, diags) = wait_ready(&api, &written, timeout, &timeout_text, attr).await;
        let mut state = written;
        if let Some(found) = last {
            let (ready, reason) = k::ready_of(found.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default());
            state.ready = ready;
            state.reason = reason;
        }
        (state, diags)
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
                let key = ExternalSecretResource {
                    namespace,
                    name,
                    labels: None,
                    annotations: None,
                    spec: found.spec.clone(),
                    data_map: None,
                    wait_for_ready: false,
                    timeouts: None,
                    remote_refs: None,
                    ready: None,
                    reason: None,
                    id: None,
                };
                state_of(ctx, &key, found, None).await
            }
            None => Err(Diagnostic::error("Cannot import non-existent ExternalSecret", format!("{label} does not exist; check the ID.")).into()),
        }
    }
}
