//! Issue 18, "The HCL users expect", on both real Terraform CLIs against the
//! Kubernetes stand-in (or the real cluster named by
//! `SECRETBRIDGE_TEST_KUBECONFIG`): `labels` and `annotations` on stores
//! and ExternalSecrets (ours applied, someone else's not drift), `data_map`
//! beside the `data` blocks (merged, prefixed in `remote_refs`, a key in
//! both a plan error), and `wait_for_ready` with `timeouts`.

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use secretbridge_shared::{ClusterSecretStore, ExternalSecret, SecretStore};

use crate::acceptance::Workdir;
use crate::k8s_objects::{APPLY, CLIS, cluster};
use crate::service_account::{kubectl, runtime, write_kube_config};

const DESTROY: &[&str] = &["destroy", "-auto-approve", "-no-color", "-input=false"];

/// A store (prefix `/prod/`) with its ServiceAccount, a ClusterSecretStore
/// and an ExternalSecret; `meta` goes into the three objects, `es_extra`
/// into the ExternalSecret only, `data_blocks` inside its spec.
fn config(ns: &str, meta: &str, es_extra: &str, data_blocks: &str) -> String {
    format!(
        r#"resource "secretbridge_service_account" "reader" {{
  namespace    = "{ns}"
  name         = "reader"
  aws_role_arn = "arn:aws:iam::123456789012:role/reader"
}}

resource "secretbridge_secret_store" "aws" {{
  namespace = "{ns}"
  name      = "aws"
{meta}
  spec {{
    provider {{
      aws {{
        service = "ParameterStore"
        region  = "eu-west-1"
        prefix  = "/prod/"
        auth {{
          jwt {{
            service_account_ref = {{
              name = secretbridge_service_account.reader.name
            }}
          }}
        }}
      }}
    }}
  }}
}}

resource "secretbridge_cluster_secret_store" "global" {{
  name = "{ns}-global"
{meta}
  spec {{
    provider {{
      aws {{
        service = "SecretsManager"
        region  = "eu-west-1"
      }}
    }}
  }}
}}

resource "secretbridge_external_secret" "db" {{
  namespace = "{ns}"
  name      = "db"
{meta}
{es_extra}
  spec {{
    secret_store_ref = {{
      name = secretbridge_secret_store.aws.name
    }}
{data_blocks}  }}
}}

output "remote_refs" {{
  value = secretbridge_external_secret.db.remote_refs
}}

output "ready" {{
  value = secretbridge_external_secret.db.ready
}}
"#
    )
}

const URL_BLOCK: &str = "    data {\n      secret_key = \"url\"\n      remote_ref = {\n        key = \"db/url\"\n      }\n    }\n";

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Labels and annotations land on all three objects through the Terraform
/// field manager and re-plan empty; a label and an annotation someone else
/// adds with kubectl are neither drift nor removed by the next apply; a
/// change to one of ours is drift and repaired; dropping ours from the
/// configuration removes them from the cluster.
#[test]
fn labels_and_annotations_are_ours_only() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    for version in CLIS {
        let ns = rt.block_on(cluster.create_namespace("tf-meta")).expect("namespace");
        let global = format!("{ns}-global");
        let stores: Api<SecretStore> = Api::namespaced(cluster.client(), &ns);
        let cluster_stores: Api<ClusterSecretStore> = Api::all(cluster.client());
        let externals: Api<ExternalSecret> = Api::namespaced(cluster.client(), &ns);
        let metadata = |which: &str| -> Vec<std::collections::BTreeMap<String, String>> {
            let pick = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                if which == "labels" { m.labels.clone() } else { m.annotations.clone() }.unwrap_or_default()
            };
            vec![
                pick(&rt.block_on(stores.get("aws")).expect("store").metadata),
                pick(&rt.block_on(cluster_stores.get(&global)).expect("cluster store").metadata),
                pick(&rt.block_on(externals.get("db")).expect("ExternalSecret").metadata),
            ]
        };
        let w = Workdir::new(version);
        let meta = "  labels      = { team = \"payments\" }\n  annotations = { \"example.com/owner\" = \"platform\" }\n";
        write_kube_config(&w, &kubeconfig, &config(&ns, meta, "", URL_BLOCK));
        w.ok(APPLY);
        for (labels, annotations) in metadata("labels").iter().zip(metadata("annotations")) {
            assert_eq!(labels.get("team").map(String::as_str), Some("payments"), "terraform {version}: {labels:?}");
            assert_eq!(annotations.get("example.com/owner").map(String::as_str), Some("platform"), "terraform {version}: {annotations:?}");
        }
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan after apply not empty:\n{plan}");

        // Someone else's label and annotation (ESO's documented force-sync among them).
        for object in [vec!["-n", ns.as_str(), "secretstore", "aws"], vec!["clustersecretstore", global.as_str()], vec!["-n", ns.as_str(), "externalsecret", "db"]] {
            kubectl(&kubeconfig, &[&["label"][..], &object, &["audit=yes"]].concat());
            kubectl(&kubeconfig, &[&["annotate"][..], &object, &["force-sync=1700000000"]].concat());
        }
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: a label someone else added showed as drift:\n{plan}");

        // One of ours changed in the cluster: drift, repaired by apply, theirs kept.
        kubectl(&kubeconfig, &["-n", &ns, "label", "--overwrite", "externalsecret", "db", "team=other"]);
        let (changes, plan) = w.plan_has_changes();
        assert!(changes && plan.contains("payments"), "terraform {version}: changed label not drift:\n{plan}");
        w.ok(APPLY);
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan after repair not empty:\n{plan}");
        for labels in metadata("labels") {
            assert_eq!(labels.get("team").map(String::as_str), Some("payments"), "terraform {version}: {labels:?}");
            assert_eq!(labels.get("audit").map(String::as_str), Some("yes"), "terraform {version}: theirs kept: {labels:?}");
        }

        // Ours dropped from the configuration: removed from the cluster, theirs kept.
        write_kube_config(&w, &kubeconfig, &config(&ns, "", "", URL_BLOCK));
        w.ok(APPLY);
        for (labels, annotations) in metadata("labels").iter().zip(metadata("annotations")) {
            assert!(!labels.contains_key("team") && labels.contains_key("audit"), "terraform {version}: {labels:?}");
            assert!(!annotations.contains_key("example.com/owner") && annotations.contains_key("force-sync"), "terraform {version}: {annotations:?}");
        }
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan without labels not empty:\n{plan}");
        w.ok(DESTROY);
    }
    rt.block_on(cluster.cleanup());
}

/// `data_map` entries join the `data` blocks in the cluster's spec, appear
/// in `remote_refs` behind the store's prefix at plan, and re-plan empty;
/// a Secret key in both fails the plan naming both paths and the fix.
#[test]
fn data_map_merges_with_data_blocks() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    for version in CLIS {
        let ns = rt.block_on(cluster.create_namespace("tf-datamap")).expect("namespace");
        let externals: Api<ExternalSecret> = Api::namespaced(cluster.client(), &ns);
        let w = Workdir::new(version);
        let map = "  data_map = {\n    DB_USER = \"db/user\"\n    API_KEY = \"api/key\"\n  }\n";
        write_kube_config(&w, &kubeconfig, &config(&ns, "", map, URL_BLOCK));
        let (_, plan) = w.plan_has_changes();
        for key in ["\"/prod/api/key\"", "\"/prod/db/url\"", "\"/prod/db/user\""] {
            assert!(plan.contains(key), "terraform {version}: {key} in remote_refs at plan:\n{plan}");
        }
        w.ok(APPLY);
        let es = rt.block_on(externals.get("db")).expect("ExternalSecret");
        let data: Vec<(&str, &str)> = es.spec.data.iter().map(|d| (d.secret_key.as_str(), d.remote_ref.key.as_str())).collect();
        assert_eq!(data, [("url", "db/url"), ("API_KEY", "api/key"), ("DB_USER", "db/user")], "terraform {version}");
        let refs: Vec<String> = serde_json::from_str(&w.ok(&["output", "-json", "remote_refs"])).expect("json");
        assert_eq!(refs, ["/prod/api/key", "/prod/db/url", "/prod/db/user"], "terraform {version}");
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan not empty:\n{plan}");

        // Only a data_map: no data block needed at all.
        write_kube_config(&w, &kubeconfig, &config(&ns, "", map, ""));
        w.ok(APPLY);
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan of a data_map-only ExternalSecret not empty:\n{plan}");

        // The same Secret key in a block and in the map.
        let clash = "  data_map = {\n    url = \"db/other\"\n  }\n";
        write_kube_config(&w, &kubeconfig, &config(&ns, "", clash, URL_BLOCK));
        let out = w.run(&["plan", "-no-color", "-input=false"]);
        let text = text_of(&out);
        assert!(!out.status.success(), "terraform {version}: plan should fail:\n{text}");
        let text = flat(&text);
        for needle in ["Secret key set twice", "data_map[\"url\"]", "spec.data[0].secret_key", "Remove it from data_map"] {
            assert!(text.contains(needle), "terraform {version}: missing {needle:?} in:\n{text}");
        }
        write_kube_config(&w, &kubeconfig, &config(&ns, "", map, ""));
        w.ok(DESTROY);
    }
    rt.block_on(cluster.cleanup());
}

/// Writes the ExternalSecret's status as the controller would, once a new
/// object exists (not the one there now, which a replace deletes first):
/// `Ready` with `status`, `reason` and `message`, synced for its current
/// generation. Runs on the test's runtime while terraform runs.
fn write_status_when_created(rt: &tokio::runtime::Runtime, api: Api<ExternalSecret>, status: &'static str, reason: &'static str, message: &'static str) -> tokio::task::JoinHandle<()> {
    let old_uid = rt.block_on(api.get_opt("db")).expect("get").and_then(|es| es.metadata.uid);
    rt.spawn(async move {
        for _ in 0..600 {
            if let Ok(Some(es)) = api.get_opt("db").await
                && es.metadata.uid != old_uid
            {
                let generation = es.metadata.generation.unwrap_or(1);
                let patch = serde_json::json!({
                    "status": {
                        "conditions": [{ "type": "Ready", "status": status, "reason": reason, "message": message }],
                        "syncedResourceVersion": generation.to_string(),
                    }
                });
                api.patch_status("db", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch status");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the ExternalSecret was never created");
    })
}

/// `wait_for_ready`: no controller runs in this test, so the test plays
/// its part and writes the status subresource through the API. With no
/// status at all, and then with `Ready=False`, apply fails after
/// `timeouts.create`, naming the reason and message (or the missing
/// controller) and the settings to change; the object stays in state and
/// is tainted, so the next apply replaces it. With `Ready=True` for the
/// current generation, apply succeeds and re-plans empty.
#[test]
fn wait_for_ready_fails_apply_with_the_reason_and_passes_when_ready() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let wait = "  wait_for_ready = true\n  timeouts {\n    create = \"3s\"\n    update = \"3s\"\n  }\n";
    for version in CLIS {
        let ns = rt.block_on(cluster.create_namespace("tf-wait")).expect("namespace");
        let externals: Api<ExternalSecret> = Api::namespaced(cluster.client(), &ns);
        let w = Workdir::new(version);
        write_kube_config(&w, &kubeconfig, &config(&ns, "", wait, URL_BLOCK));

        // Nobody reports: the diagnostic points at the controller.
        let started = std::time::Instant::now();
        let out = w.run(APPLY);
        let text = text_of(&out);
        assert!(!out.status.success(), "terraform {version}: apply should fail:\n{text}");
        assert!(started.elapsed() >= Duration::from_secs(3), "terraform {version}: failed before the timeout");
        let text = flat(&text);
        let summary = format!("ExternalSecret {ns}/db did not become Ready");
        for needle in [summary.as_str(), "within 3s (timeouts.create)", "no Ready condition was reported", "wait_for_ready = false"] {
            assert!(text.contains(needle), "terraform {version}: missing {needle:?} in:\n{text}");
        }
        let (changes, plan) = w.plan_has_changes();
        assert!(changes && plan.contains("tainted"), "terraform {version}: the failed ExternalSecret is tainted:\n{plan}");

        // The controller says why: its reason and message reach the diagnostic.
        let message = "fetching /prod/db/url from the store failed: AccessDenied";
        let writer = write_status_when_created(&rt, externals.clone(), "False", "SecretSyncedError", message);
        let out = w.run(APPLY);
        rt.block_on(writer).expect("status writer");
        let text = text_of(&out);
        assert!(!out.status.success(), "terraform {version}: apply should fail:\n{text}");
        let text = flat(&text);
        for needle in ["Ready is False, reason SecretSyncedError", message] {
            assert!(text.contains(needle), "terraform {version}: missing {needle:?} in:\n{text}");
        }

        // Ready for the current generation: apply (replacing the tainted one) succeeds.
        let writer = write_status_when_created(&rt, externals.clone(), "True", "SecretSynced", "secret synced");
        w.ok(APPLY);
        rt.block_on(writer).expect("status writer");
        let ready: String = serde_json::from_str(&w.ok(&["output", "-json", "ready"])).expect("json");
        assert_eq!(ready, "True", "terraform {version}");
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan after a Ready apply not empty:\n{plan}");
        w.ok(DESTROY);
    }
    rt.block_on(cluster.cleanup());
}
