//! Hostile and careless tenants. One controller serves every namespace; a
//! tenant is anyone who may create ExternalSecrets in one of them. Each test
//! applies what such a tenant would apply, then asserts that the controller
//! is still up, that a bystander in another namespace keeps syncing, that
//! the victim Secrets are exactly as they were (same resourceVersion, so not
//! even rewritten), and that no remote value reached status, events, logs
//! or metrics.
//!
//! The same tests run against a real cluster (`SECRETBRIDGE_TEST_KUBECONFIG`):
//! where a real API server refuses a hostile object at admission (CEL rules
//! the stand-in does not evaluate), the test accepts that refusal instead,
//! provided it names the field.

use crate::security::find_leaks;
use crate::support::{SYNC_TIMEOUT, controller_options, error_chain};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use secretbridge_shared::{ExternalSecret, names::MANAGED_LABEL};
use secretbridge_stack::{ControllerProcess, Stack, StackOptions, metric_value, ready_condition};

/// Where the shared identity lives: a platform namespace holding the one
/// ServiceAccount the ClusterSecretStores authenticate as.
const PLATFORM_SA: &str = "reader";

/// A stack with an IRSA role and a GSA for `platform/reader`, and three
/// ClusterSecretStores using them: `ssm`, `sm` and `gcp`.
struct Tenancy {
    stack: Stack,
    platform: String,
    /// Random values seeded remotely; none may ever appear outside a Secret.
    values: Vec<String>,
}

impl Tenancy {
    /// Seeds `parameters`, `aws_secrets` and `gcp_secrets` and grants them to
    /// the shared identity; `absent` parameters are granted but never
    /// created, so reading them is a definite NotFound.
    async fn start(parameters: &[&str], absent: &[&str], aws_secrets: &[&str], gcp_secrets: &[&str]) -> Tenancy {
        let stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
        let platform = stack.create_namespace("platform").await.expect("platform namespace");
        stack.create_oidc_provider().await.expect("OIDC provider");
        let mut values = Vec::new();
        for name in parameters {
            let value = format!("ssm-value-{}", rand::random::<u64>());
            stack.put_parameter(name, &value).await.expect("parameter");
            values.push(value);
        }
        for name in aws_secrets {
            let value = format!("sm-value-{}", rand::random::<u64>());
            stack.put_secret(name, &value).await.expect("AWS secret");
            values.push(value);
        }
        let granted: Vec<&str> = parameters.iter().chain(absent).copied().collect();
        let role = stack.create_irsa_role("tenants-reader", &platform, PLATFORM_SA, &granted, aws_secrets).await.expect("IRSA role");
        let gsa = stack.create_gsa("tenants-reader").expect("GSA");
        stack.grant_workload_identity_user(&gsa, &platform, PLATFORM_SA).expect("workloadIdentityUser");
        for name in gcp_secrets {
            let value = format!("gcp-value-{}", rand::random::<u64>());
            stack.seed_secret(name, &[value.as_bytes()]).expect("GCP secret");
            stack.grant_secret_accessor(name, &format!("serviceAccount:{gsa}")).expect("secretAccessor");
            values.push(value);
        }
        stack
            .create_service_account(&platform, PLATFORM_SA, &[("eks.amazonaws.com/role-arn", role.as_str()), ("iam.gke.io/gcp-service-account", gsa.as_str())])
            .await
            .expect("ServiceAccount");
        let region = stack.aws_region().to_string();
        let project = stack.gcp_project().to_string();
        let jwt = format!("{{jwt: {{serviceAccountRef: {{name: {PLATFORM_SA}, namespace: {platform}}}}}}}");
        let stores = [
            format!("apiVersion: secretbridge.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {platform}-ssm}}\nspec: {{provider: {{aws: {{service: ParameterStore, region: {region}, auth: {jwt}}}}}}}\n"),
            format!("apiVersion: secretbridge.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {platform}-sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: {region}, auth: {jwt}}}}}}}\n"),
            format!(
                "apiVersion: secretbridge.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {platform}-gcp}}\nspec: {{provider: {{gcpsm: {{projectID: {project}, auth: {{workloadIdentity: {{clusterLocation: europe-west1, clusterName: e2e, serviceAccountRef: {{name: {PLATFORM_SA}, namespace: {platform}}}}}}}}}}}}}\n"
            ),
        ];
        stack.apply_yaml(&stores.join("---\n")).await.expect("ClusterSecretStores apply");
        Tenancy { stack, platform, values }
    }

    /// The name of one of the three ClusterSecretStores (`ssm`, `sm`, `gcp`).
    fn store(&self, kind: &str) -> String {
        format!("{}-{kind}", self.platform)
    }

    async fn controller(&self) -> ControllerProcess {
        self.stack
            .start_controller(controller_options().with_args(["--leader-elect=false", "--log-level=debug"]))
            .await
            .expect("the controller starts")
    }

    /// An ExternalSecret reading `key` of store `kind` into Secret key `secret_key`, with `extra` spec lines.
    fn external_secret(&self, name: &str, kind: &str, secret_key: &str, key: &str, extra: &str) -> String {
        format!(
            "apiVersion: secretbridge.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}}}\nspec:\n  secretStoreRef: {{name: {}, kind: ClusterSecretStore}}\n  data: [{{secretKey: {secret_key}, remoteRef: {{key: '{key}'}}}}]\n{extra}",
            self.store(kind)
        )
    }

    /// A bystander tenant syncing one parameter every 2 seconds.
    async fn bystander(&self, parameter: &str) -> String {
        let namespace = self.stack.create_namespace("bystander").await.expect("bystander namespace");
        let es = self.external_secret("app", "ssm", "value", parameter, "  refreshInterval: 2s\n");
        self.stack.apply_yaml_in(&namespace, &es).await.expect("bystander ExternalSecret");
        namespace
    }

    /// Changes the bystander's parameter and waits for its Secret to follow:
    /// the controller still syncs other tenants after the attack.
    async fn bystander_still_syncs(&mut self, namespace: &str, parameter: &str, controller: &mut ControllerProcess) {
        assert!(controller.is_running(), "the controller died:\n{}", controller.log_tail());
        let value = format!("ssm-value-{}", rand::random::<u64>());
        self.stack.put_parameter(parameter, &value).await.expect("new value");
        self.values.push(value.clone());
        if let Err(error) = self.stack.wait_secret_data(namespace, "app", &[("value", value.as_str())], SYNC_TIMEOUT).await {
            panic!("the bystander stopped syncing: {error}\n{}", controller.log_tail());
        }
        assert!(controller.is_running(), "the controller died:\n{}", controller.log_tail());
    }

    /// No seeded value in the status of any ExternalSecret, any Event, the
    /// controller's logs or its metrics.
    async fn assert_no_value_leaked(&self, controller: &ControllerProcess, namespaces: &[&str]) {
        let client = self.stack.client();
        let mut events = String::new();
        let mut statuses = String::new();
        for namespace in namespaces {
            let listed = Api::<Event>::namespaced(client.clone(), namespace).list(&ListParams::default()).await.expect("events");
            events.push_str(&serde_json::to_string(&listed.items).unwrap_or_default());
            let listed = Api::<ExternalSecret>::namespaced(client.clone(), namespace).list(&ListParams::default()).await.expect("ExternalSecrets");
            statuses.push_str(&serde_json::to_string(&listed.items.iter().map(|e| &e.status).collect::<Vec<_>>()).unwrap_or_default());
        }
        let metrics = controller.metrics_text().await.expect("metrics");
        let logs = controller.logs();
        let sources = [("logs", logs.as_str()), ("events", events.as_str()), ("status", statuses.as_str()), ("metrics", metrics.as_str())];
        let values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        let leaks = find_leaks(&sources, &values);
        let lines: Vec<&str> = logs.lines().filter(|line| values.iter().any(|value| line.contains(value))).collect();
        assert!(leaks.is_empty(), "values leaked: {leaks:?}\nlog lines:\n{}", lines.join("\n"));
    }
}

/// A Secret someone else made (a Helm release, a TLS certificate), in the
/// tenant's namespace, created before any ExternalSecret names it.
async fn victim(stack: &Stack, namespace: &str, name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.to_string()), labels: Some([("owner".to_string(), "helm".to_string())].into_iter().collect()), ..Default::default() },
        type_: Some(type_.to_string()),
        data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(stack.client(), namespace).create(&PostParams::default(), &secret).await.expect("victim Secret")
}

/// The victim is exactly as it was: not deleted, not written at all.
async fn assert_unchanged(stack: &Stack, namespace: &str, before: &Secret) {
    let name = before.metadata.name.clone().unwrap_or_default();
    let after = stack.get_secret(namespace, &name).await.expect("read").unwrap_or_else(|| panic!("victim {name} was deleted"));
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "victim {name} was written: {after:?}");
    assert_eq!(after.data, before.data, "victim {name}'s data changed");
    assert_eq!(after.metadata.owner_references, before.metadata.owner_references, "victim {name} got owners");
    assert_eq!(after.metadata.labels, before.metadata.labels, "victim {name}'s labels changed");
}

/// Applies a hostile object; `Ok(())` when admitted, `Err(message)` when the
/// API server refused it (a real server evaluates the CEL rules).
async fn apply_hostile(stack: &Stack, namespace: &str, yaml: &str) -> Result<(), String> {
    stack.apply_yaml_in(namespace, yaml).await.map(|_| ()).map_err(|error| error_chain(&error))
}

/// Waits for `Ready=False` with this reason and returns the condition message.
async fn refused(stack: &Stack, controller: &ControllerProcess, namespace: &str, name: &str, reason: &str) -> String {
    let es = stack
        .wait_external_secret(namespace, name, SYNC_TIMEOUT, &format!("Ready=False, {reason}"), |es| {
            ready_condition(es).is_some_and(|c| c.reason.as_deref() == Some("SecretSyncedError") && c.message.as_deref().is_some_and(|m| m.contains(reason)))
        })
        .await;
    match es {
        Ok(es) => ready_condition(&es).and_then(|c| c.message.clone()).unwrap_or_default(),
        Err(error) => panic!("{namespace}/{name} was not refused with {reason:?}: {error}\n{}", controller.log_tail()),
    }
}

/// Peak resident memory of the controller process, from the kernel.
fn peak_rss_kib(controller: &ControllerProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", controller.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The rows of the crash and memory attacks: a refresh interval that
/// overflowed `interval + jitter` and panicked the process, and a template
/// of sixty `b64enc` stages that took 1.2 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_crash_or_exhaust_the_controller() {
    let mut tenancy = Tenancy::start(&["/tenants/bystander", "/tenants/hostile"], &[], &[], &[]).await;
    let bystander = tenancy.bystander("/tenants/bystander").await;
    let mut controller = tenancy.controller().await;
    tenancy.stack.wait_ready(&bystander, "app", SYNC_TIMEOUT).await.expect("bystander syncs");
    let stack = &tenancy.stack;
    let hostile = stack.create_namespace("hostile").await.expect("namespace");

    let forever = tenancy.external_secret("forever", "ssm", "v", "/tenants/hostile", "  refreshInterval: 5124095576030431h\n");
    match apply_hostile(stack, &hostile, &forever).await {
        Ok(()) => {
            let message = refused(stack, &controller, &hostile, "forever", "spec.refreshInterval").await;
            assert!(message.contains("8760h"), "{message}");
        }
        Err(refusal) => assert!(refusal.contains("refreshInterval"), "the API server's refusal names the field: {refusal}"),
    }

    let tower = format!("{{{{ \"x\"{} }}}}", " | b64enc".repeat(60));
    let exhaust = tenancy.external_secret(
        "exhaust",
        "ssm",
        "v",
        "/tenants/hostile",
        &format!("  target:\n    template:\n      data:\n        k: '{tower}'\n"),
    );
    apply_hostile(stack, &hostile, &exhaust).await.expect("a long template is admitted");
    let message = refused(stack, &controller, &hostile, "exhaust", "template.data.k").await;
    assert!(message.contains("1048576"), "{message}");
    assert!(stack.get_secret(&hostile, "exhaust").await.expect("read").is_none(), "nothing was written");
    // The Deployment's limit is 256Mi; the attack took 1.2 GiB.
    let peak = peak_rss_kib(&controller);
    assert!(peak > 0 && peak < 256 * 1024, "peak RSS {peak} KiB");

    tenancy.bystander_still_syncs(&bystander, "/tenants/bystander", &mut controller).await;
    let metrics = controller.metrics_text().await.expect("metrics");
    assert_eq!(metric_value(&metrics, "secretbridge_sync_total", &[("result", "InternalError")]), None, "nothing panicked:\n{metrics}");
    tenancy.assert_no_value_leaked(&controller, &[&hostile, &bystander]).await;
}

/// The rows of the ownership attacks: `Orphan` + `deletionPolicy: Delete`
/// with a missing key deleted a Secret nobody made through us; `Owner` took
/// over a TLS Secret (keys replaced, an owner reference added, and deleting
/// the ExternalSecret garbage-collected it); two `Merge` ExternalSecrets
/// shared a field manager and removed each other's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_delete_take_over_or_strip_secrets_it_did_not_create() {
    let mut tenancy = Tenancy::start(&["/tenants/bystander", "/tenants/a", "/tenants/b"], &["/tenants/missing"], &[], &[]).await;
    let bystander = tenancy.bystander("/tenants/bystander").await;
    let mut controller = tenancy.controller().await;
    let stack = &tenancy.stack;
    let hostile = stack.create_namespace("hostile").await.expect("namespace");
    let release = victim(stack, &hostile, "helm-release", "Opaque", &[("release", "v1-manifest")]).await;
    let tls = victim(stack, &hostile, "tls-cert", "kubernetes.io/tls", &[("tls.crt", "CERT"), ("tls.key", "KEY")]).await;
    let shared = victim(stack, &hostile, "shared-config", "Opaque", &[("existing", "kept")]).await;

    let deleter = tenancy.external_secret(
        "deleter",
        "ssm",
        "v",
        "/tenants/missing",
        "  refreshInterval: 2s\n  target: {name: helm-release, creationPolicy: Orphan, deletionPolicy: Delete}\n",
    );
    let taker = tenancy.external_secret("taker", "ssm", "tls.crt", "/tenants/a", "  target: {name: tls-cert, creationPolicy: Owner}\n");
    let merge = |name: &str, key: &str| {
        tenancy.external_secret(name, "ssm", key, &format!("/tenants/{key}"), "  refreshInterval: 1s\n  target: {name: shared-config, creationPolicy: Merge}\n")
    };
    let manifests = [deleter, taker, merge("merge-a", "a"), merge("merge-b", "b")];
    stack.apply_yaml_in(&hostile, &manifests.join("---\n")).await.expect("the hostile ExternalSecrets apply");

    for name in ["deleter", "taker"] {
        let message = refused(stack, &controller, &hostile, name, "was not created by this ExternalSecret").await;
        assert!(message.contains("creationPolicy Merge"), "{message}");
    }
    // Both Merge writers refresh every second; with one shared field
    // manager each refresh removed the other's key. Wait for both to
    // refresh twice after both keys first appeared.
    let want: Vec<(&str, &str)> = vec![("existing", "kept"), ("a", tenancy.values[1].as_str()), ("b", tenancy.values[2].as_str())];
    if let Err(error) = stack.wait_secret_data(&hostile, "shared-config", &want, SYNC_TIMEOUT).await {
        panic!("both keys were not merged: {error}\n{}", controller.log_tail());
    }
    let since = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    for name in ["merge-a", "merge-b"] {
        stack
            .wait_external_secret(&hostile, name, SYNC_TIMEOUT, "refreshed again", |es| {
                es.status.as_ref().and_then(|s| s.refresh_time.as_ref()).is_some_and(|t| t.0 > since + jiff::SignedDuration::from_secs(1))
            })
            .await
            .expect("refreshes go on");
    }
    let merged = stack.secret_data(&hostile, "shared-config").await.expect("read").expect("exists");
    for (key, value) in &want {
        assert_eq!(merged.get(*key).map(String::as_str), Some(*value), "key {key} after both refreshed: {merged:?}");
    }
    let shared_now = stack.get_secret(&hostile, "shared-config").await.expect("read").expect("exists");
    assert!(shared_now.metadata.owner_references.is_none(), "a Merge target gets no owner");
    assert_eq!(shared_now.type_, shared.type_);

    // Deleting the ExternalSecret that tried to take the TLS Secret over
    // must not garbage-collect it.
    Api::<ExternalSecret>::namespaced(stack.client(), &hostile).delete("taker", &DeleteParams::default()).await.expect("delete taker");
    tenancy.bystander_still_syncs(&bystander, "/tenants/bystander", &mut controller).await;
    let stack = &tenancy.stack;
    assert_unchanged(stack, &hostile, &release).await;
    assert_unchanged(stack, &hostile, &tls).await;
    tenancy.assert_no_value_leaked(&controller, &[&hostile, &bystander]).await;
}

/// The row of the status leak: a remote value templated into a label the
/// API server rejects; the server's message quotes it. And the bullets on
/// scope and admission: a GCP key naming another project, and ESO's
/// `auth.secretRef`, which pruning turned into `auth: {}` and so into the
/// controller's own identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_read_through_status_another_project_or_a_pruned_auth() {
    let mut tenancy = Tenancy::start(&["/tenants/bystander", "/tenants/label"], &[], &[], &["tenant-token"]).await;
    // A value that is not a valid label value, as remote values usually are not.
    let label_value = format!("not a label {}", rand::random::<u64>());
    tenancy.stack.put_parameter("/tenants/label", &label_value).await.expect("parameter");
    tenancy.values.push(label_value);
    let bystander = tenancy.bystander("/tenants/bystander").await;
    let mut controller = tenancy.controller().await;
    let stack = &tenancy.stack;
    let hostile = stack.create_namespace("hostile").await.expect("namespace");

    let labelled = tenancy.external_secret(
        "labelled",
        "ssm",
        "v",
        "/tenants/label",
        "  target:\n    template:\n      metadata:\n        labels: {leak: '{{ .v }}'}\n",
    );
    let other_project = tenancy.external_secret("other-project", "gcp", "v", "projects/someone-elses-project/secrets/tenant-token", "");
    stack.apply_yaml_in(&hostile, &[labelled, other_project].join("---\n")).await.expect("apply");
    let message = refused(stack, &controller, &hostile, "labelled", "writing Secret").await;
    assert!(message.contains("metadata.labels"), "the field is named: {message}");
    refused(stack, &controller, &hostile, "other-project", "outside the store").await;
    assert!(stack.get_secret(&hostile, "other-project").await.expect("read").is_none());

    // ESO's static-key auth, which secretbridge does not implement.
    let pruned = format!(
        "apiVersion: secretbridge.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {}-static}}\nspec: {{provider: {{aws: {{service: ParameterStore, region: {}, auth: {{secretRef: {{accessKeyIDSecretRef: {{name: awssm-secret, key: access-key}}}}}}}}}}}}\n",
        tenancy.platform,
        stack.aws_region()
    );
    let refusal = apply_hostile(stack, &hostile, &pruned).await.expect_err("an auth naming no supported method is refused at admission");
    assert!(refusal.contains("spec.provider.aws.auth"), "the refusal names the field: {refusal}");

    tenancy.bystander_still_syncs(&bystander, "/tenants/bystander", &mut controller).await;
    tenancy.assert_no_value_leaked(&controller, &[&hostile, &bystander]).await;
}

/// "Nothing is lost" on the clouds' real answers: a GCP version disabled
/// (400 FAILED_PRECONDITION) and a Secrets Manager secret scheduled for
/// deletion (InvalidRequestException during the recovery window) are
/// errors, not "every key is gone": with `deletionPolicy: Delete` the
/// Secret stays, value intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_gcp_version_or_a_scheduled_aws_deletion_keeps_the_secret() {
    let tenancy = Tenancy::start(&[], &[], &["tenants/scheduled"], &["disabled-token"]).await;
    let controller = tenancy.controller().await;
    let stack = &tenancy.stack;
    let namespace = stack.create_namespace("tenant").await.expect("namespace");
    let delete_policy = "  refreshInterval: 1h\n  target: {deletionPolicy: Delete}\n";
    let manifests = [
        tenancy.external_secret("gcp", "gcp", "v", "disabled-token", delete_policy),
        tenancy.external_secret("aws", "sm", "v", "tenants/scheduled", delete_policy),
    ];
    stack.apply_yaml_in(&namespace, &manifests.join("---\n")).await.expect("apply");
    let (sm_value, gcp_value) = (tenancy.values[0].clone(), tenancy.values[1].clone());
    for (name, value) in [("gcp", &gcp_value), ("aws", &sm_value)] {
        if let Err(error) = stack.wait_secret_data(&namespace, name, &[("v", value.as_str())], SYNC_TIMEOUT).await {
            panic!("{name} did not sync: {error}\n{}", controller.log_tail());
        }
    }
    stack.disable_secret_version("disabled-token", 1).await.expect("disable");
    stack
        .secrets_admin()
        .expect("admin")
        .delete_secret()
        .secret_id("tenants/scheduled")
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("schedule the deletion");
    // Ask for a sync now rather than waiting an hour.
    for name in ["gcp", "aws"] {
        let patch = serde_json::json!({"metadata": {"annotations": {"force-sync": "1"}}});
        Api::<ExternalSecret>::namespaced(stack.client(), &namespace)
            .patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("force-sync");
    }
    refused(stack, &controller, &namespace, "gcp", "FAILED_PRECONDITION").await;
    refused(stack, &controller, &namespace, "aws", "InvalidRequest").await;
    for (name, value) in [("gcp", &gcp_value), ("aws", &sm_value)] {
        let data = stack.secret_data(&namespace, name).await.expect("read").unwrap_or_else(|| panic!("{name}'s Secret was deleted"));
        assert_eq!(data.get("v"), Some(value), "{name}'s value was kept");
        let secret = stack.get_secret(&namespace, name).await.expect("read").expect("exists");
        assert!(secret.metadata.labels.as_ref().is_some_and(|l| l.contains_key(MANAGED_LABEL)));
    }
}

/// Forty ExternalSecrets failing every five seconds, then deleted at once,
/// do not starve a bystander nor grow the process. (What the controller keeps
/// per ExternalSecret is bounded by a sweep unit-tested in `reconcile.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_failing_external_secrets_does_not_stall_a_bystander() {
    let mut tenancy = Tenancy::start(&["/tenants/bystander"], &[], &[], &[]).await;
    let bystander = tenancy.bystander("/tenants/bystander").await;
    let mut controller = tenancy.controller().await;
    let stack = &tenancy.stack;
    let hostile = stack.create_namespace("hostile").await.expect("namespace");
    let many: Vec<String> = (0..40)
        .map(|i| tenancy.external_secret(&format!("churn-{i}"), "ssm", "v", &format!("/tenants/missing-{i}"), "  refreshInterval: 5s\n"))
        .collect();
    stack.apply_yaml_in(&hostile, &many.join("---\n")).await.expect("apply");
    refused(stack, &controller, &hostile, "churn-39", "/tenants/missing-39").await;
    let api = Api::<ExternalSecret>::namespaced(stack.client(), &hostile);
    api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.expect("delete all");
    tenancy.bystander_still_syncs(&bystander, "/tenants/bystander", &mut controller).await;
    let peak = peak_rss_kib(&controller);
    assert!(peak > 0 && peak < 256 * 1024, "peak RSS {peak} KiB");
}
