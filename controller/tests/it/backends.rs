//! Issue 9's "Done when" list, for each backend (SSM Parameter Store,
//! Secrets Manager, GCP Secret Manager): one stack and one controller per
//! cloud, one namespace per backend, one ExternalSecret (and remote keys) per
//! case, all cases running concurrently.

use crate::support::*;
use futures::future::{BoxFuture, FutureExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use secretbridge_shared::ConditionStatus;
use secretbridge_shared::names::{AWS_ROLE_ARN_ANNOTATION, FORCE_SYNC_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION};
use secretbridge_stack::{ControllerProcess, Stack, StackError, ready_condition, secret_strings};
use serde_json::{Value, json};

/// The backend a world reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Ssm,
    SecretsManager,
    Gcp,
}

/// One backend's namespace, ServiceAccount and store.
struct World<'a> {
    stack: &'a Stack,
    cloud: Cloud,
    ns: String,
    gsa: Option<String>,
}

const STORE: &str = "backend";
const KSA: &str = "app";
/// GCP only: a store whose GSA may read every secret of the project.
const WIDE_STORE: &str = "backend-wide";
const WIDE_KSA: &str = "wide";

type CaseResult = Result<(), String>;

fn fail(what: &str) -> impl FnOnce(StackError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl<'a> World<'a> {
    /// Creates the namespace, the cloud identity, the ServiceAccount and the store.
    async fn setup(stack: &'a Stack, cloud: Cloud) -> World<'a> {
        let prefix = match cloud {
            Cloud::Ssm => "e2e-ssm",
            Cloud::SecretsManager => "e2e-sm",
            Cloud::Gcp => "e2e-gcp",
        };
        let ns = stack.create_namespace(prefix).await.unwrap();
        let mut world = World { stack, cloud, ns, gsa: None };
        let region = stack.aws_region().to_string();
        let provider = match cloud {
            Cloud::Ssm | Cloud::SecretsManager => {
                stack.create_oidc_provider().await.unwrap();
                let parameters = format!("arn:aws:ssm:{region}:{}:parameter/{}/*", secretbridge_stack::AWS_ACCOUNT, world.ns);
                let secrets = format!("arn:aws:secretsmanager:{region}:{}:secret:{}-*", secretbridge_stack::AWS_ACCOUNT, world.ns);
                let role = stack.create_irsa_role(&world.ns, &world.ns, KSA, &[&parameters], &[&secrets]).await.unwrap();
                stack.create_service_account(&world.ns, KSA, &[(AWS_ROLE_ARN_ANNOTATION, &role)]).await.unwrap();
                let service = if cloud == Cloud::Ssm { "ParameterStore" } else { "SecretsManager" };
                json!({"aws": {"service": service, "region": region, "auth": {"jwt": {"serviceAccountRef": {"name": KSA}}}}})
            }
            Cloud::Gcp => {
                let gsa = stack.create_gsa(&format!("sb-{}", world.ns)).unwrap();
                stack.grant_workload_identity_user(&gsa, &world.ns, KSA).unwrap();
                stack.create_service_account(&world.ns, KSA, &[(GCP_SERVICE_ACCOUNT_ANNOTATION, &gsa)]).await.unwrap();
                world.gsa = Some(gsa);
                json!({"gcpsm": {"projectID": stack.gcp_project(), "auth": {"workloadIdentity": {
                    "clusterLocation": "europe-west1", "clusterName": "e2e", "clusterProjectID": stack.gcp_project(),
                    "serviceAccountRef": {"name": KSA}}}}})
            }
        };
        let store = json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore",
            "metadata": {"name": STORE, "namespace": world.ns}, "spec": {"provider": provider}});
        stack.apply_value(&store, None).await.unwrap();
        if cloud == Cloud::Gcp {
            // GCP answers 403, not 404, for a deleted secret unless the caller
            // may read secrets project-wide ("or it may not exist"); the
            // deletionPolicy case reads through a GSA with a project-level grant.
            let wide = stack.create_gsa(&format!("sbw-{}", world.ns)).unwrap();
            stack.grant_workload_identity_user(&wide, &world.ns, WIDE_KSA).unwrap();
            let project = format!("projects/{}", stack.gcp_project());
            stack.gcp().unwrap().grant(&project, secretbridge_stack::SECRET_ACCESSOR, &format!("serviceAccount:{wide}")).unwrap();
            stack.create_service_account(&world.ns, WIDE_KSA, &[(GCP_SERVICE_ACCOUNT_ANNOTATION, &wide)]).await.unwrap();
            let store = json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore",
                "metadata": {"name": WIDE_STORE, "namespace": world.ns}, "spec": {"provider": {"gcpsm": {
                    "projectID": stack.gcp_project(), "auth": {"workloadIdentity": {
                    "clusterLocation": "europe-west1", "clusterName": "e2e", "serviceAccountRef": {"name": WIDE_KSA}}}}}}});
            stack.apply_value(&store, None).await.unwrap();
        }
        world
    }

    /// The remote key of a case, inside what the identity may read.
    fn key(&self, case: &str) -> String {
        match self.cloud {
            Cloud::Ssm => format!("/{}/{case}", self.ns),
            Cloud::SecretsManager | Cloud::Gcp => format!("{}-{case}", self.ns),
        }
    }

    /// A remote key the identity may not read.
    fn denied_key(&self) -> String {
        match self.cloud {
            Cloud::Ssm => format!("/denied-{}/x", self.ns),
            Cloud::SecretsManager | Cloud::Gcp => format!("denied-{}-x", self.ns),
        }
    }

    /// Writes a new value (version) of a key; returns the version handle
    /// (SSM version number, Secrets Manager version id, GCP version number).
    async fn put_raw(&self, key: &str, value: &str, grant: bool) -> Result<String, String> {
        match self.cloud {
            Cloud::Ssm => self.stack.put_parameter(key, value).await.map(|v| v.to_string()).map_err(fail("put parameter")),
            Cloud::SecretsManager => self.stack.put_secret(key, value).await.map_err(fail("put secret")),
            Cloud::Gcp => match self.stack.add_secret_version(key, value.as_bytes()).await {
                Ok(name) => Ok(name.rsplit('/').next().unwrap_or_default().to_string()),
                Err(_) => {
                    self.stack.seed_secret(key, &[value.as_bytes()]).map_err(fail("seed secret"))?;
                    if grant {
                        let member = format!("serviceAccount:{}", self.gsa.clone().unwrap_or_default());
                        self.stack.grant_secret_accessor(key, &member).map_err(fail("grant accessor"))?;
                    }
                    Ok("1".to_string())
                }
            },
        }
    }

    async fn put(&self, case: &str, value: &str) -> Result<String, String> {
        self.put_raw(&self.key(case), value, true).await
    }

    async fn delete(&self, case: &str) -> CaseResult {
        let key = self.key(case);
        match self.cloud {
            Cloud::Ssm => self.stack.delete_parameter(&key).await.map_err(fail("delete parameter")),
            Cloud::SecretsManager => self.stack.delete_secret(&key).await.map_err(fail("delete secret")),
            Cloud::Gcp => self.stack.delete_gcp_secret(&key).await.map_err(fail("delete gcp secret")),
        }
    }

    /// Applies an ExternalSecret `name` (target Secret of the same name) on the backend store.
    async fn apply_es(&self, name: &str, refresh: &str, spec: Value) -> CaseResult {
        self.apply_es_in(&self.ns, name, refresh, spec).await
    }

    async fn apply_es_in(&self, ns: &str, name: &str, refresh: &str, spec: Value) -> CaseResult {
        let mut full = json!({"secretStoreRef": {"name": STORE, "kind": "SecretStore"},
            "refreshInterval": refresh, "target": {"name": name}});
        if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                full.insert(k.clone(), v.clone());
            }
        }
        let es = json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": ns}, "spec": full});
        self.stack.apply_value(&es, None).await.map(|_| ()).map_err(fail("apply ExternalSecret"))
    }

    async fn wait_data(&self, name: &str, expected: &[(&str, &str)]) -> Result<Secret, String> {
        match self.stack.wait_secret_data(&self.ns, name, expected, SYNC_TIMEOUT).await {
            Ok(secret) => Ok(secret),
            Err(error) => Err(format!("{error}; ExternalSecret: {}", self.es_state(name).await)),
        }
    }

    /// The ExternalSecret's Ready condition, for failure messages.
    async fn es_state(&self, name: &str) -> String {
        match self.stack.external_secret(&self.ns, name).await {
            Ok(Some(es)) => format!("{:?}", ready_condition(&es)),
            Ok(None) => "absent".into(),
            Err(e) => e.to_string(),
        }
    }

    async fn wait_ready(&self, name: &str) -> CaseResult {
        self.stack.wait_ready(&self.ns, name, SYNC_TIMEOUT).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Waits for `Ready=False` whose message contains `needle`; returns the message.
    async fn wait_failed(&self, ns: &str, name: &str, needle: &str) -> Result<String, String> {
        let es = self
            .stack
            .wait_external_secret(ns, name, SYNC_TIMEOUT, &format!("Ready=False mentioning {needle:?}"), |es| {
                ready_condition(es).is_some_and(|c| {
                    c.status == ConditionStatus::False && c.message.as_deref().unwrap_or_default().contains(needle)
                })
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(ready_condition(&es).and_then(|c| c.message.clone()).unwrap_or_default())
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.stack.client(), &self.ns)
    }

    async fn secret_absent(&self, name: &str) -> CaseResult {
        let found = self.stack.get_secret(&self.ns, name).await.map_err(|e| e.to_string())?;
        match found {
            None => Ok(()),
            Some(secret) => Err(format!("Secret {name} exists but must not: {:?}", secret_strings(&secret))),
        }
    }

    // ---- the cases ----------------------------------------------------

    async fn case_sync(&self) -> CaseResult {
        self.put("sync-a", "alpha").await?;
        self.put("sync-b", "bravo").await?;
        self.apply_es("sync", "1h", json!({"data": [
            {"secretKey": "a", "remoteRef": {"key": self.key("sync-a")}},
            {"secretKey": "b", "remoteRef": {"key": self.key("sync-b")}}]}))
        .await?;
        self.wait_ready("sync").await?;
        self.wait_data("sync", &[("a", "alpha"), ("b", "bravo")]).await.map(|_| ())
    }

    async fn case_version(&self) -> CaseResult {
        let first = self.put("ver", "one").await?;
        let _second = self.put("ver", "two").await?;
        let key = self.key("ver");
        // The selector that names the first version in each backend's own terms.
        let (by_label, by_id) = match self.cloud {
            Cloud::Ssm => {
                self.stack.label_parameter_version(&key, 1, "stable").await.map_err(fail("label"))?;
                ("stable".to_string(), first.clone())
            }
            Cloud::SecretsManager => ("AWSPREVIOUS".to_string(), first.clone()),
            Cloud::Gcp => ("1".to_string(), first.clone()),
        };
        self.apply_es("version", "1h", json!({"data": [
            {"secretKey": "latest", "remoteRef": {"key": key}},
            {"secretKey": "label", "remoteRef": {"key": key, "version": by_label}},
            {"secretKey": "id", "remoteRef": {"key": key, "version": by_id}}]}))
        .await?;
        self.wait_data("version", &[("latest", "two"), ("label", "one"), ("id", "one")]).await.map(|_| ())
    }

    async fn case_property(&self) -> CaseResult {
        let doc = json!({"db": {"user": "u1", "hosts": ["h0", "h1"], "port": 5432}, "name": {"first": "Ada"}});
        self.put("json", &doc.to_string()).await?;
        let key = self.key("json");
        self.apply_es("property", "1h", json!({"data": [
            {"secretKey": "first", "remoteRef": {"key": key, "property": "name.first"}},
            {"secretKey": "user", "remoteRef": {"key": key, "property": "db.user"}},
            {"secretKey": "host", "remoteRef": {"key": key, "property": "db.hosts.1"}},
            {"secretKey": "port", "remoteRef": {"key": key, "property": "db.port"}},
            {"secretKey": "hosts", "remoteRef": {"key": key, "property": "db.hosts"}}]}))
        .await?;
        self.wait_data(
            "property",
            &[("first", "Ada"), ("user", "u1"), ("host", "h1"), ("port", "5432"), ("hosts", r#"["h0","h1"]"#)],
        )
        .await
        .map(|_| ())
    }

    async fn case_extract(&self) -> CaseResult {
        self.put("flat", &json!({"username": "admin", "password": "pw", "port": 5432}).to_string()).await?;
        self.apply_es("extract", "1h", json!({"dataFrom": [{"extract": {"key": self.key("flat")}}]})).await?;
        self.wait_data("extract", &[("username", "admin"), ("password", "pw"), ("port", "5432")]).await.map(|_| ())
    }

    async fn case_refresh(&self) -> CaseResult {
        self.put("refresh", "v1").await?;
        self.apply_es("refresh", "1s", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.key("refresh")}}]}))
            .await?;
        self.wait_data("refresh", &[("v", "v1")]).await?;
        self.put("refresh", "v2").await?;
        self.wait_data("refresh", &[("v", "v2")]).await.map(|_| ())
    }

    async fn case_force_sync(&self) -> CaseResult {
        self.put("force", "v1").await?;
        self.apply_es("force", "1h", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.key("force")}}]})).await?;
        self.wait_data("force", &[("v", "v1")]).await?;
        self.put("force", "v2").await?;
        let es = json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "force", "namespace": self.ns, "annotations": {FORCE_SYNC_ANNOTATION: "1"}}});
        let api: Api<secretbridge_shared::ExternalSecret> = Api::namespaced(self.stack.client(), &self.ns);
        api.patch("force", &PatchParams::default(), &Patch::Merge(&es)).await.map_err(|e| format!("annotate: {e}"))?;
        self.wait_data("force", &[("v", "v2")]).await.map(|_| ())
    }

    async fn case_tamper(&self) -> CaseResult {
        self.put("tamper", "original").await?;
        self.apply_es("tamper", "1h", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.key("tamper")}}]})).await?;
        self.wait_data("tamper", &[("v", "original")]).await?;
        // Someone edits the data with another field manager...
        let edit = json!({"data": {"v": base64_of("tampered"), "extra": base64_of("x")}});
        self.secrets()
            .patch("tamper", &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .map_err(|e| format!("tamper with the Secret: {e}"))?;
        self.wait_data("tamper", &[("v", "original")]).await?;
        // ...and then deletes it.
        self.secrets()
            .delete("tamper", &DeleteParams::default())
            .await
            .map_err(|e| format!("delete the Secret: {e}"))?;
        self.wait_data("tamper", &[("v", "original")]).await.map(|_| ())
    }

    async fn case_owner_gc(&self) -> CaseResult {
        self.put("gc", "v").await?;
        self.apply_es("gc", "1h", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.key("gc")}}]})).await?;
        self.wait_data("gc", &[("v", "v")]).await?;
        let api: Api<secretbridge_shared::ExternalSecret> = Api::namespaced(self.stack.client(), &self.ns);
        api.delete("gc", &DeleteParams::default()).await.map_err(|e| format!("delete the ExternalSecret: {e}"))?;
        self.stack
            .wait_secret(&self.ns, "gc", SYNC_TIMEOUT, "garbage-collected", |s| s.is_none())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn case_deletion_policy_delete(&self) -> CaseResult {
        self.put("gone", "v").await?;
        let store = if self.cloud == Cloud::Gcp { WIDE_STORE } else { STORE };
        self.apply_es("gone", "1s", json!({"secretStoreRef": {"name": store, "kind": "SecretStore"},
            "target": {"name": "gone", "deletionPolicy": "Delete"},
            "data": [{"secretKey": "v", "remoteRef": {"key": self.key("gone")}}]}))
        .await?;
        self.wait_data("gone", &[("v", "v")]).await?;
        self.delete("gone").await?;
        self.stack
            .wait_secret(&self.ns, "gone", SYNC_TIMEOUT, "deleted with the remote key", |s| s.is_none())
            .await
            .map_err(|e| e.to_string())?;
        // The status is written after the delete: wait for it too.
        match self.stack.wait_not_ready(&self.ns, "gone", "SecretDeleted", SYNC_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e}; ExternalSecret: {}", self.es_state("gone").await)),
        }
    }

    async fn case_failed_fetch_keeps_data(&self) -> CaseResult {
        self.put("keep-a", "a1").await?;
        self.put("keep-b", "b1").await?;
        self.apply_es("keep", "1s", json!({"data": [
            {"secretKey": "a", "remoteRef": {"key": self.key("keep-a")}},
            {"secretKey": "b", "remoteRef": {"key": self.key("keep-b")}}]}))
        .await?;
        let before = self.wait_data("keep", &[("a", "a1"), ("b", "b1")]).await?;
        self.put("keep-a", "a2").await?;
        self.delete("keep-b").await?;
        let message = self.wait_failed(&self.ns, "keep", &self.key("keep-b")).await?;
        let after = self.stack.get_secret(&self.ns, "keep").await.map_err(|e| e.to_string())?;
        let after = after.ok_or("the Secret vanished after a failed fetch")?;
        if secret_strings(&after) != secret_strings(&before) || after.metadata.resource_version != before.metadata.resource_version {
            return Err(format!(
                "a failed fetch changed the Secret ({message}): before {:?}, after {:?}",
                secret_strings(&before),
                secret_strings(&after)
            ));
        }
        Ok(())
    }

    async fn case_access_denied(&self) -> CaseResult {
        self.put_raw(&self.denied_key(), "forbidden", false).await?;
        self.apply_es("denied", "1h", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.denied_key()}}]})).await?;
        let needle = match self.cloud {
            Cloud::Ssm | Cloud::SecretsManager => "AccessDenied",
            Cloud::Gcp => "PERMISSION_DENIED",
        };
        self.wait_failed(&self.ns, "denied", needle).await?;
        self.secret_absent("denied").await
    }

    async fn case_wrong_namespace(&self) -> CaseResult {
        self.put("other-ns", "v").await?;
        let other = self.stack.create_namespace("e2e-other").await.map_err(|e| e.to_string())?;
        // The store named by the ExternalSecret lives only in self.ns.
        self.apply_es_in(&other, "borrow", "1h", json!({"data": [{"secretKey": "v", "remoteRef": {"key": self.key("other-ns")}}]}))
            .await?;
        let message = self.wait_failed(&other, "borrow", STORE).await?;
        if !message.contains("not found") && !message.contains("does not exist") {
            return Err(format!("the refusal should say the store is not in this namespace: {message}"));
        }
        match self.stack.get_secret(&other, "borrow").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("a Secret was written from another namespace's store".into()),
        }
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Runs every case of a world concurrently and reports all failures at once.
async fn run_cases(world: &World<'_>, controller: &ControllerProcess) {
    let cases: Vec<(&str, BoxFuture<'_, CaseResult>)> = vec![
        ("sync", world.case_sync().boxed()),
        ("version selection", world.case_version().boxed()),
        ("property + nested property", world.case_property().boxed()),
        ("dataFrom extract", world.case_extract().boxed()),
        ("refresh after a remote change", world.case_refresh().boxed()),
        ("force-sync", world.case_force_sync().boxed()),
        ("tamper restoration", world.case_tamper().boxed()),
        ("owner GC", world.case_owner_gc().boxed()),
        ("deletionPolicy Delete", world.case_deletion_policy_delete().boxed()),
        ("failed fetch keeps old data", world.case_failed_fetch_keeps_data().boxed()),
        ("AccessDenied in status", world.case_access_denied().boxed()),
        ("wrong-namespace store refused", world.case_wrong_namespace().boxed()),
    ];
    let (names, futures): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let results = futures::future::join_all(futures).await;
    let failures: Vec<String> = names
        .iter()
        .zip(results)
        .filter_map(|(name, result)| result.err().map(|e| format!("[{:?}] {name}: {e}", world.cloud)))
        .collect();
    assert!(failures.is_empty(), "{}\n--- controller log tail ---\n{}", failures.join("\n"), controller.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_parameter_store_and_secrets_manager_end_to_end() {
    let stack = stack(true, false).await;
    let controller = controller(&stack).await;
    let (ssm, sm) = tokio::join!(World::setup(&stack, Cloud::Ssm), World::setup(&stack, Cloud::SecretsManager));
    tokio::join!(run_cases(&ssm, &controller), run_cases(&sm, &controller));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_secret_manager_end_to_end() {
    let stack = stack(false, true).await;
    let controller = controller(&stack).await;
    let world = World::setup(&stack, Cloud::Gcp).await;
    run_cases(&world, &controller).await;
}
