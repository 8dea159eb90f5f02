//! Kubernetes helpers: namespaces, ServiceAccounts, server-side apply of
//! multi-document YAML, and polling ExternalSecrets and Secrets.

use crate::{Stack, StackError};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use secretbridge_shared::{Condition, ConditionStatus, ExternalSecret};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Field manager of objects the stack applies (a test or demo user, not the controller).
pub const STACK_FIELD_MANAGER: &str = "secretbridge-stack";

/// How often the wait helpers look again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The `Ready` condition of an ExternalSecret, if it has one.
pub fn ready_condition(external_secret: &ExternalSecret) -> Option<&Condition> {
    external_secret
        .status
        .as_ref()
        .and_then(|status| secretbridge_shared::condition::find_ready(&status.conditions))
}

fn describe_ready(external_secret: Option<&ExternalSecret>) -> String {
    match external_secret {
        None => "the ExternalSecret does not exist".to_string(),
        Some(es) => match ready_condition(es) {
            None => "no Ready condition yet".to_string(),
            Some(c) => format!(
                "Ready={:?} reason={} message={}",
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ),
        },
    }
}

impl Stack {
    /// Creates a namespace named `PREFIX-xxxxx` (generateName); returns its name.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, StackError> {
        let api: Api<Namespace> = Api::all(self.client());
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"generateName": format!("{prefix}-")}}))
            .map_err(|e| StackError::Kube { action: "building a Namespace".into(), source: kube::Error::SerdeError(e) })?;
        let created = api
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(StackError::kube(format!("creating namespace {prefix}-*")))?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    /// Creates a namespace with exactly this name (e.g. the seed's `multicloud`); idempotent.
    pub async fn ensure_namespace(&self, name: &str) -> Result<(), StackError> {
        self.apply_value(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}), None)
            .await
            .map(|_| ())
    }

    /// Creates (applies) a ServiceAccount with the given annotations, e.g.
    /// `eks.amazonaws.com/role-arn` or `iam.gke.io/gcp-service-account`.
    pub async fn create_service_account(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> Result<ServiceAccount, StackError> {
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let account = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        });
        let api: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        api.patch(name, &PatchParams::apply(STACK_FIELD_MANAGER).force(), &Patch::Apply(&account))
            .await
            .map_err(StackError::kube(format!("applying serviceaccount {namespace}/{name}")))
    }

    /// Server-side applies every document of a multi-document YAML string
    /// (field manager `secretbridge-stack`). Namespaced objects need
    /// `metadata.namespace`; see [`Stack::apply_yaml_in`].
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<DynamicObject>, StackError> {
        self.apply_yaml_inner(None, yaml).await
    }

    /// Like [`Stack::apply_yaml`], putting namespaced objects that name no
    /// namespace into `namespace`.
    pub async fn apply_yaml_in(&self, namespace: &str, yaml: &str) -> Result<Vec<DynamicObject>, StackError> {
        self.apply_yaml_inner(Some(namespace), yaml).await
    }

    async fn apply_yaml_inner(&self, namespace: Option<&str>, yaml: &str) -> Result<Vec<DynamicObject>, StackError> {
        let mut applied = Vec::new();
        for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e: serde_yaml::Error| StackError::Manifest { index, message: e.to_string() })?;
            if value.is_null() {
                continue;
            }
            let object = self.apply_value(&value, namespace).await.map_err(|error| match error {
                StackError::Manifest { message, .. } => StackError::Manifest { index, message },
                other => other,
            })?;
            applied.push(object);
        }
        Ok(applied)
    }

    /// Server-side applies one object given as JSON.
    pub async fn apply_value(&self, object: &Value, namespace: Option<&str>) -> Result<DynamicObject, StackError> {
        let manifest = |message: String| StackError::Manifest { index: 0, message };
        let api_version = object["apiVersion"].as_str().ok_or_else(|| manifest("no apiVersion".into()))?;
        let kind = object["kind"].as_str().ok_or_else(|| manifest("no kind".into()))?;
        let name = object["metadata"]["name"].as_str().ok_or_else(|| manifest("no metadata.name".into()))?;
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client(), &gvk)
            .await
            .map_err(StackError::kube(format!("discovering {api_version} {kind}")))?;
        let mut object = object.clone();
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(self.client(), &resource),
            Scope::Namespaced => {
                let ns = match object["metadata"]["namespace"].as_str() {
                    Some(ns) => ns.to_string(),
                    None => {
                        let ns = namespace.ok_or_else(|| manifest(format!("{kind} {name} names no namespace")))?;
                        object["metadata"]["namespace"] = json!(ns);
                        ns.to_string()
                    }
                };
                Api::namespaced_with(self.client(), &ns, &resource)
            }
        };
        api.patch(name, &PatchParams::apply(STACK_FIELD_MANAGER).force(), &Patch::Apply(&object))
            .await
            .map_err(StackError::kube(format!("applying {kind} {name}")))
    }

    /// The ExternalSecret, or `None` if it does not exist.
    pub async fn external_secret(&self, namespace: &str, name: &str) -> Result<Option<ExternalSecret>, StackError> {
        let api: Api<ExternalSecret> = Api::namespaced(self.client(), namespace);
        api.get_opt(name)
            .await
            .map_err(StackError::kube(format!("reading externalsecret {namespace}/{name}")))
    }

    /// Polls until `done` holds for the ExternalSecret (upper bound `timeout`).
    pub async fn wait_external_secret(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&ExternalSecret) -> bool,
    ) -> Result<ExternalSecret, StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.external_secret(namespace, name).await?;
            if let Some(es) = &current
                && done(es)
            {
                return Ok(es.clone());
            }
            if Instant::now() > deadline {
                return Err(StackError::Timeout {
                    what: format!("externalsecret {namespace}/{name}: {what}"),
                    timeout,
                    last: describe_ready(current.as_ref()),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the ExternalSecret is `Ready=True`.
    pub async fn wait_ready(&self, namespace: &str, name: &str, timeout: Duration) -> Result<ExternalSecret, StackError> {
        self.wait_external_secret(namespace, name, timeout, "Ready=True", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::True)
        })
        .await
    }

    /// Waits until the ExternalSecret is `Ready=False` with this reason
    /// (e.g. `SecretSyncedError`); returns it for checking the message.
    pub async fn wait_not_ready(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> Result<ExternalSecret, StackError> {
        self.wait_external_secret(namespace, name, timeout, &format!("Ready=False reason={reason}"), |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False && c.reason.as_deref() == Some(reason))
        })
        .await
    }

    /// The Secret, or `None` if it does not exist.
    pub async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, StackError> {
        let api: Api<Secret> = Api::namespaced(self.client(), namespace);
        api.get_opt(name)
            .await
            .map_err(StackError::kube(format!("reading secret {namespace}/{name}")))
    }

    /// The Secret's data decoded as UTF-8 (lossy), or `None` if it does not exist.
    pub async fn secret_data(&self, namespace: &str, name: &str) -> Result<Option<BTreeMap<String, String>>, StackError> {
        Ok(self.get_secret(namespace, name).await?.map(|secret| secret_strings(&secret)))
    }

    /// Polls until `done` holds for the Secret (`None` when absent).
    pub async fn wait_secret(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(Option<&Secret>) -> bool,
    ) -> Result<Option<Secret>, StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.get_secret(namespace, name).await?;
            if done(current.as_ref()) {
                return Ok(current);
            }
            if Instant::now() > deadline {
                let last = match &current {
                    None => "absent".to_string(),
                    Some(secret) => format!("keys {:?}", secret_strings(secret).keys().collect::<Vec<_>>()),
                };
                return Err(StackError::Timeout { what: format!("secret {namespace}/{name}: {what}"), timeout, last });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the Secret exists and its decoded data equals `expected`.
    pub async fn wait_secret_data(
        &self,
        namespace: &str,
        name: &str,
        expected: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Secret, StackError> {
        let want: BTreeMap<String, String> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let found = self
            .wait_secret(namespace, name, timeout, &format!("data == {:?}", want.keys().collect::<Vec<_>>()), |secret| {
                secret.is_some_and(|s| secret_strings(s) == want)
            })
            .await?;
        found.ok_or_else(|| StackError::Timeout { what: format!("secret {namespace}/{name}"), timeout, last: "absent".into() })
    }
}

/// A Secret's `data` decoded as UTF-8 (lossy).
pub fn secret_strings(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), String::from_utf8_lossy(&value.0).into_owned()))
        .collect()
}
