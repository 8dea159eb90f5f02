//! `secretbridge_service_account`: a Kubernetes ServiceAccount with the
//! IRSA (`aws_role_arn`) and Workload Identity (`gcp_service_account`)
//! annotations, written by server-side apply as `secretbridge-terraform`.
//! Read returns the cluster's labels and annotations, so `kubectl` edits
//! show as drift; import by `NAMESPACE/NAME`.

use std::collections::BTreeMap;

use ::kube::Api;
use k8s_openapi::api::core::v1::ServiceAccount;
use secretbridge_shared::names::{AWS_ROLE_ARN_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION};
use secretbridge_shared::terraform::KubernetesServiceAccount;
use serde_json::json;

use crate::kube as k;
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{ProviderContext, Resource};

/// The `secretbridge_service_account` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServiceAccountResource;

/// The annotations the object carries: `annotations` plus the two cloud ones.
pub fn desired_annotations(sa: &KubernetesServiceAccount) -> BTreeMap<String, String> {
    let mut all = sa.annotations.clone().unwrap_or_default();
    if let Some(arn) = &sa.aws_role_arn {
        all.insert(AWS_ROLE_ARN_ANNOTATION.to_owned(), arn.clone());
    }
    if let Some(gsa) = &sa.gcp_service_account {
        all.insert(GCP_SERVICE_ACCOUNT_ANNOTATION.to_owned(), gsa.clone());
    }
    all
}

fn manifest(sa: &KubernetesServiceAccount) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": sa.name,
            "namespace": sa.namespace,
            "labels": sa.labels.clone().unwrap_or_default(),
            "annotations": desired_annotations(sa),
        },
    })
}

/// The state for what the cluster holds; `current` decides `{}` versus null.
fn state_of(current: &KubernetesServiceAccount, found: ServiceAccount) -> KubernetesServiceAccount {
    let mut annotations = found.metadata.annotations.unwrap_or_default();
    let aws_role_arn = annotations.remove(AWS_ROLE_ARN_ANNOTATION);
    let gcp_service_account = annotations.remove(GCP_SERVICE_ACCOUNT_ANNOTATION);
    KubernetesServiceAccount {
        namespace: current.namespace.clone(),
        name: current.name.clone(),
        labels: k::optional_map(&current.labels, found.metadata.labels.unwrap_or_default()),
        annotations: k::optional_map(&current.annotations, annotations),
        aws_role_arn,
        gcp_service_account,
        id: Some(format!("{}/{}", current.namespace, current.name)),
    }
}

fn what(sa: &KubernetesServiceAccount) -> String {
    format!("ServiceAccount {}/{}", sa.namespace, sa.name)
}

async fn api(ctx: &ProviderContext, namespace: &str) -> Result<Api<ServiceAccount>, Diagnostics> {
    Ok(Api::namespaced(k::client(ctx).await?, namespace))
}

impl Resource for ServiceAccountResource {
    type State = KubernetesServiceAccount;

    fn type_name(&self) -> &'static str {
        "secretbridge_service_account"
    }

    fn validate(&self, config: &KubernetesServiceAccount) -> Diagnostics {
        let mut diags = Diagnostics::default();
        for (key, attr) in [(AWS_ROLE_ARN_ANNOTATION, "aws_role_arn"), (GCP_SERVICE_ACCOUNT_ANNOTATION, "gcp_service_account")] {
            if config.annotations.as_ref().is_some_and(|a| a.contains_key(key)) {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("annotations").key(key),
                    "Annotation set twice",
                    format!("{key} is managed by the {attr} argument; remove it from annotations and set {attr} instead."),
                ));
            }
        }
        diags
    }

    async fn modify_plan(
        &self,
        ctx: &ProviderContext,
        _prior: Option<&KubernetesServiceAccount>,
        planned: &mut crate::plugin::resource::PlannedState<'_, KubernetesServiceAccount>,
    ) -> Diagnostics {
        let mut diags = super::k8s_checks::require_cluster(ctx).await;
        if !diags.has_errors() {
            diags.extend(super::k8s_checks::plan_service_account(ctx, planned.value()).await);
        }
        diags
    }

    async fn create(&self, ctx: &ProviderContext, planned: KubernetesServiceAccount) -> Result<KubernetesServiceAccount, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::create_new(&api, &planned.name, &manifest(&planned), &what(&planned), "ServiceAccount", &format!("{}/{}", planned.namespace, planned.name)).await?;
        Ok(state_of(&planned, stored))
    }

    async fn read(&self, ctx: &ProviderContext, current: KubernetesServiceAccount) -> Result<Option<KubernetesServiceAccount>, Diagnostics> {
        let api = api(ctx, &current.namespace).await?;
        Ok(k::get(&api, &current.name, &what(&current)).await?.map(|found| state_of(&current, found)))
    }

    async fn update(
        &self,
        ctx: &ProviderContext,
        _prior: KubernetesServiceAccount,
        planned: KubernetesServiceAccount,
    ) -> Result<KubernetesServiceAccount, Diagnostics> {
        let api = api(ctx, &planned.namespace).await?;
        let stored = k::apply(&api, &planned.name, &manifest(&planned), &what(&planned)).await?;
        Ok(state_of(&planned, stored))
    }

    async fn delete(&self, ctx: &ProviderContext, prior: KubernetesServiceAccount) -> Result<(), Diagnostics> {
        let api = api(ctx, &prior.namespace).await?;
        k::delete(&api, &prior.name, &what(&prior)).await
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<KubernetesServiceAccount, Diagnostics> {
        let (namespace, name) = k::split_namespaced_id("ServiceAccount", &id)?;
        let key = KubernetesServiceAccount { namespace, name, ..KubernetesServiceAccount::default() };
        let api = api(ctx, &key.namespace).await?;
        match k::get(&api, &key.name, &what(&key)).await? {
            Some(found) => Ok(state_of(&key, found)),
            None => Err(Diagnostic::error("Cannot import non-existent ServiceAccount", format!("{} does not exist; check the ID.", what(&key))).into()),
        }
    }
}
