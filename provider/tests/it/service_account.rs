//! `secretbridge_service_account` on both real Terraform CLIs against the
//! Kubernetes stand-in (or the real cluster named by
//! `SECRETBRIDGE_TEST_KUBECONFIG`): create, empty re-plan, in-place update,
//! drift after `kubectl annotate` and after `kubectl delete`, replace on
//! rename, import with an empty plan, destroy.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube_standin::testing::Cluster;

use crate::acceptance::Workdir;

const APPLY: &[&str] = &["apply", "-auto-approve", "-no-color", "-input=false"];

/// One runtime for the whole test: the stand-in serves from its workers
/// while the test thread runs the blocking CLIs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Writes `main.tf` with the provider pointed at the cluster's kubeconfig.
pub fn write_kube_config(w: &Workdir, kubeconfig: &Path, body: &str) {
    let text = format!(
        "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\nprovider \"secretbridge\" {{\n  kubernetes {{\n    config_path = \"{}\"\n  }}\n}}\n\n{body}",
        kubeconfig.display()
    );
    std::fs::write(w.work().join("main.tf"), text).expect("write main.tf");
}

/// Runs kubectl against the cluster and asserts success.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sa_config(namespace: &str, name: &str, team: &str, gsa: Option<&str>) -> String {
    let gsa = gsa.map(|g| format!("  gcp_service_account = \"{g}\"\n")).unwrap_or_default();
    format!(
        r#"resource "secretbridge_service_account" "app" {{
  namespace    = "{namespace}"
  name         = "{name}"
  labels       = {{ team = "{team}" }}
  annotations  = {{ "example.com/owner" = "platform" }}
  aws_role_arn = "arn:aws:iam::123456789012:role/{name}"
{gsa}}}
"#
    )
}

fn lifecycle(version: &str, rt: &tokio::runtime::Runtime, cluster: &Cluster, namespace: &str) {
    let w = Workdir::new(version);
    let kubeconfig = cluster.kubeconfig_path();
    let api: Api<ServiceAccount> = Api::namespaced(cluster.client(), namespace);
    let get = |name: &str| rt.block_on(api.get_opt(name)).expect("get serviceaccount");

    // Create: the annotations land, written by the Terraform field manager.
    write_kube_config(&w, kubeconfig, &sa_config(namespace, "app", "platform", None));
    w.ok(APPLY);
    let sa = get("app").expect("serviceaccount created");
    let annotations = sa.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some("arn:aws:iam::123456789012:role/app"));
    assert_eq!(annotations.get("example.com/owner").map(String::as_str), Some("platform"));
    assert_eq!(sa.metadata.labels.unwrap_or_default().get("team").map(String::as_str), Some("platform"));
    let managers: Vec<String> = sa.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.iter().any(|m| m == "secretbridge-terraform"), "{managers:?}");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after create not empty:\n{plan}");

    // In-place update of a label and the Workload Identity annotation.
    write_kube_config(&w, kubeconfig, &sa_config(namespace, "app", "core", Some("app@proj.iam.gserviceaccount.com")));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    w.ok(APPLY);
    let sa = get("app").expect("serviceaccount");
    assert_eq!(
        sa.metadata.annotations.unwrap_or_default().get("iam.gke.io/gcp-service-account").map(String::as_str),
        Some("app@proj.iam.gserviceaccount.com")
    );
    assert_eq!(sa.metadata.labels.unwrap_or_default().get("team").map(String::as_str), Some("core"));
    assert!(!w.plan_has_changes().0);

    // Drift: a kubectl edit of a field Terraform owns shows in the plan and apply takes it back.
    kubectl(kubeconfig, &["annotate", "--overwrite", "-n", namespace, "serviceaccount", "app", "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/hijacked"]);
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("hijacked") && plan.contains("aws_role_arn"), "drift not shown:\n{plan}");
    w.ok(APPLY);
    assert!(!w.plan_has_changes().0);

    // Drift: deleted behind Terraform's back, the plan re-creates it.
    kubectl(kubeconfig, &["delete", "-n", namespace, "serviceaccount", "app"]);
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("will be created"), "{plan}");
    w.ok(APPLY);
    assert!(get("app").is_some());

    // Rename replaces.
    write_kube_config(&w, kubeconfig, &sa_config(namespace, "app2", "core", Some("app@proj.iam.gserviceaccount.com")));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("must be replaced"), "{plan}");
    w.ok(APPLY);
    assert!(get("app").is_none(), "old serviceaccount left behind");
    assert!(get("app2").is_some());

    // Import by NAMESPACE/NAME gives an empty plan.
    w.ok(&["state", "rm", "secretbridge_service_account.app"]);
    let id = format!("{namespace}/app2");
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_service_account.app", &id]);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "plan after import not empty:\n{plan}");

    // A malformed import ID names the expected form.
    w.ok(&["state", "rm", "secretbridge_service_account.app"]);
    let out = w.run(&["import", "-no-color", "-input=false", "secretbridge_service_account.app", "app2"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("NAMESPACE/NAME"), "{text}");
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_service_account.app", &id]);

    // Destroy removes it.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(get("app2").is_none(), "serviceaccount left after destroy");
}

#[test]
fn service_account_lifecycle_on_both_clis() {
    let rt = runtime();
    let mut cluster = rt.block_on(Cluster::from_env_or_start()).expect("cluster");
    for version in ["1.0.3", "1.15.5"] {
        let namespace = rt.block_on(cluster.create_namespace("tf-sa")).expect("namespace");
        lifecycle(version, &rt, &cluster, &namespace);
    }
    rt.block_on(cluster.cleanup());
}

/// Creating over an object someone else made is refused (server-side apply
/// would silently adopt it), and the diagnostic gives the import command.
#[test]
fn create_over_an_existing_object_is_refused_with_the_import_id() {
    let rt = runtime();
    let mut cluster = rt.block_on(Cluster::from_env_or_start()).expect("cluster");
    let namespace = rt.block_on(cluster.create_namespace("tf-sa-taken")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path();
    kubectl(kubeconfig, &["-n", &namespace, "create", "serviceaccount", "taken"]);
    let w = Workdir::new("1.15.5");
    write_kube_config(&w, kubeconfig, &sa_config(&namespace, "taken", "core", None));
    let out = w.run(APPLY);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!out.status.success(), "apply should fail:\n{text}");
    assert!(flat.contains("ServiceAccount already exists"), "{text}");
    assert!(flat.contains(&format!("terraform import ADDRESS {namespace}/taken")), "{text}");
    // Nothing was adopted: the object carries none of the configuration's labels.
    let api: Api<ServiceAccount> = Api::namespaced(cluster.client(), &namespace);
    let sa = rt.block_on(api.get("taken")).expect("get");
    assert!(!sa.metadata.labels.unwrap_or_default().contains_key("team"));
    rt.block_on(cluster.cleanup());
}
