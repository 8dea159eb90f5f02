//! `secretbridge_secret_store`, `secretbridge_cluster_secret_store` and
//! `secretbridge_external_secret` on both real Terraform CLIs against the
//! Kubernetes stand-in (or the real cluster named by
//! `SECRETBRIDGE_TEST_KUBECONFIG`), with the secretbridge CRDs installed:
//! create, empty re-plan, in-place update (with the mapping key diff
//! readable in the plan), drift after a kubectl edit detected and repaired,
//! replace on rename, import with an empty plan, destroy. Then the
//! article's namespace mismatch failing `terraform plan`, and secret values
//! never reaching state or the trace log.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube_standin::testing::Cluster;
use secretbridge_shared::{ClusterSecretStore, ExternalSecret, SecretStore};

use crate::acceptance::Workdir;
use crate::service_account::{kubectl, runtime, write_kube_config};

pub(crate) const APPLY: &[&str] = &["apply", "-auto-approve", "-no-color", "-input=false"];

fn crds_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("deploy").join("crds")
}

/// A cluster with the secretbridge CRDs installed.
pub(crate) fn cluster(rt: &tokio::runtime::Runtime) -> Cluster {
    let cluster = rt.block_on(Cluster::from_env_or_start()).expect("cluster");
    rt.block_on(cluster.install_crds(&crds_dir())).expect("install CRDs");
    cluster
}

/// The three objects plus the ServiceAccount the store authenticates as.
/// `store` and `es` are the object names, `remote_key` the first mapping's
/// remote key, `region` the store's region.
fn objects_config(ns: &str, store: &str, es: &str, cluster_store: &str, remote_key: &str, region: &str) -> String {
    format!(
        r#"resource "secretbridge_service_account" "reader" {{
  namespace    = "{ns}"
  name         = "reader"
  aws_role_arn = "arn:aws:iam::123456789012:role/reader"
}}

resource "secretbridge_secret_store" "aws" {{
  namespace = "{ns}"
  name      = "{store}"
  spec {{
    provider {{
      aws {{
        service = "ParameterStore"
        region  = "{region}"
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
  name = "{cluster_store}"
  spec {{
    provider {{
      aws {{
        service = "SecretsManager"
        region  = "{region}"
      }}
    }}
  }}
}}

resource "secretbridge_external_secret" "db" {{
  namespace = "{ns}"
  name      = "{es}"
  spec {{
    secret_store_ref = {{
      name = secretbridge_secret_store.aws.name
    }}
    target {{
      name = "db-creds"
    }}
    data {{
      secret_key = "url"
      remote_ref = {{
        key = "{remote_key}"
      }}
    }}
    data {{
      secret_key = "password"
      remote_ref = {{
        key      = "/app/db/creds"
        property = "password"
      }}
    }}
  }}
}}

output "remote_refs" {{
  value = secretbridge_external_secret.db.remote_refs
}}
"#
    )
}

fn lifecycle(version: &str, rt: &tokio::runtime::Runtime, cluster: &mut Cluster) {
    let ns = rt.block_on(cluster.create_namespace("tf-objs")).expect("namespace");
    let w = Workdir::new(version);
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let stores: Api<SecretStore> = Api::namespaced(cluster.client(), &ns);
    let cluster_stores: Api<ClusterSecretStore> = Api::all(cluster.client());
    let externals: Api<ExternalSecret> = Api::namespaced(cluster.client(), &ns);
    let global = format!("{ns}-global");
    let global2 = format!("{ns}-global2");

    // Create: written by the Terraform field manager; remote_refs known.
    write_kube_config(&w, &kubeconfig, &objects_config(&ns, "aws", "db", &global, "/app/db/url", "eu-west-1"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes, "{plan}");
    // remote_refs is derived at plan time, so IAM can be wired from it in the same plan.
    assert!(plan.contains("\"/app/db/creds\"") && plan.contains("\"/app/db/url\""), "remote_refs known at plan:\n{plan}");
    w.ok(APPLY);
    let es = rt.block_on(externals.get_opt("db")).expect("get").expect("ExternalSecret created");
    assert_eq!(es.spec.data[0].remote_ref.key, "/app/db/url");
    assert_eq!(es.spec.secret_store_ref.name, "aws");
    let managers: Vec<String> = es.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.iter().any(|m| m == "secretbridge-terraform"), "{managers:?}");
    assert!(rt.block_on(stores.get_opt("aws")).expect("get").is_some());
    assert!(rt.block_on(cluster_stores.get_opt(&global)).expect("get").is_some());
    let refs = w.ok(&["output", "-json", "remote_refs"]);
    let refs: Vec<String> = serde_json::from_str(&refs).expect("remote_refs json");
    assert_eq!(refs, ["/app/db/creds", "/app/db/url"]);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after create not empty:\n{plan}");

    // Update: a changed mapping key is an in-place update whose key diff reads in the plan.
    write_kube_config(&w, &kubeconfig, &objects_config(&ns, "aws", "db", &global, "/app/db/url-v2", "eu-central-1"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    assert!(plan.contains("\"/app/db/url\" -> \"/app/db/url-v2\""), "key diff not readable:\n{plan}");
    assert!(plan.contains("\"eu-west-1\" -> \"eu-central-1\""), "{plan}");
    w.ok(APPLY);
    let es = rt.block_on(externals.get("db")).expect("get");
    assert_eq!(es.spec.data[0].remote_ref.key, "/app/db/url-v2");
    let store = rt.block_on(stores.get("aws")).expect("get");
    let secretbridge_shared::StoreProvider::Aws(aws) = &store.spec.provider else { panic!("aws store") };
    assert_eq!(aws.region, "eu-central-1");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after update not empty:\n{plan}");

    // Drift: kubectl edits of fields Terraform owns show in the plan and apply takes them back.
    kubectl(&kubeconfig, &["patch", "-n", &ns, "externalsecrets.secretbridge.io", "db", "--type", "merge", "-p", r#"{"spec":{"refreshInterval":"5m"}}"#]);
    kubectl(&kubeconfig, &["patch", "-n", &ns, "secretstores.secretbridge.io", "aws", "--type", "merge", "-p", r#"{"spec":{"provider":{"aws":{"prefix":"/hijacked/"}}}}"#]);
    kubectl(&kubeconfig, &["patch", "clustersecretstores.secretbridge.io", &global, "--type", "merge", "-p", r#"{"spec":{"provider":{"aws":{"region":"us-east-1"}}}}"#]);
    let (changes, plan) = w.plan_has_changes();
    assert!(changes, "drift not shown:\n{plan}");
    assert!(plan.contains("\"5m\" -> \"1h\""), "ExternalSecret drift:\n{plan}");
    assert!(plan.contains("/hijacked/"), "SecretStore drift:\n{plan}");
    assert!(plan.contains("\"us-east-1\" -> \"eu-central-1\""), "ClusterSecretStore drift:\n{plan}");
    w.ok(APPLY);
    assert_eq!(rt.block_on(externals.get("db")).expect("get").spec.refresh_interval, "1h");
    let store = rt.block_on(stores.get("aws")).expect("get");
    let secretbridge_shared::StoreProvider::Aws(aws) = &store.spec.provider else { panic!("aws store") };
    assert_eq!(aws.prefix, None, "drifted prefix removed");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after repair not empty:\n{plan}");

    // Drift: deleted behind Terraform's back, the plan re-creates it.
    kubectl(&kubeconfig, &["delete", "-n", &ns, "externalsecrets.secretbridge.io", "db"]);
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("will be created"), "{plan}");
    w.ok(APPLY);

    // Rename replaces each of the three.
    write_kube_config(&w, &kubeconfig, &objects_config(&ns, "aws2", "db2", &global2, "/app/db/url-v2", "eu-central-1"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.matches("must be replaced").count() == 3, "{plan}");
    w.ok(APPLY);
    assert!(rt.block_on(externals.get_opt("db")).expect("get").is_none(), "old ExternalSecret left behind");
    assert!(rt.block_on(stores.get_opt("aws")).expect("get").is_none(), "old SecretStore left behind");
    assert!(rt.block_on(cluster_stores.get_opt(&global)).expect("get").is_none(), "old ClusterSecretStore left behind");
    assert_eq!(rt.block_on(externals.get("db2")).expect("get").spec.secret_store_ref.name, "aws2");

    // Import by NAMESPACE/NAME (NAME for the cluster store) gives an empty plan.
    for address in ["secretbridge_external_secret.db", "secretbridge_secret_store.aws", "secretbridge_cluster_secret_store.global"] {
        w.ok(&["state", "rm", address]);
    }
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_external_secret.db", &format!("{ns}/db2")]);
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_secret_store.aws", &format!("{ns}/aws2")]);
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_cluster_secret_store.global", &global2]);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "plan after import not empty:\n{plan}");
    // A namespaced ID for the cluster store names the expected form.
    w.ok(&["state", "rm", "secretbridge_cluster_secret_store.global"]);
    let out = w.run(&["import", "-no-color", "-input=false", "secretbridge_cluster_secret_store.global", &format!("{ns}/{global2}")]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("is not NAME"), "{text}");
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_cluster_secret_store.global", &global2]);

    // Destroy removes them.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(rt.block_on(externals.get_opt("db2")).expect("get").is_none());
    assert!(rt.block_on(stores.get_opt("aws2")).expect("get").is_none());
    assert!(rt.block_on(cluster_stores.get_opt(&global2)).expect("get").is_none());
}

/// Both CLIs. Terraform 1.0.x crashes planning a nested attribute inside a
/// nested attribute, so the schema renders every object that holds objects
/// as a block (`spec { provider { aws { auth { jwt { ... } } } } }`).
pub(crate) const CLIS: &[&str] = &["1.0.3", "1.15.5"];

#[test]
fn store_and_external_secret_lifecycle() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    for version in CLIS {
        lifecycle(version, &rt, &mut cluster);
    }
    rt.block_on(cluster.cleanup());
}

/// The article's layout: ServiceAccount and SecretStore in `store_ns`,
/// the ExternalSecret in `es_ns`, the store named by reference (so
/// Terraform plans it first).
fn article_config(store_ns: &str, es_ns: &str, sa_ref_namespace: Option<&str>, role_arn: bool) -> String {
    let sa_ns_line = sa_ref_namespace.map(|n| format!("              namespace = \"{n}\"\n")).unwrap_or_default();
    let arn_line = if role_arn { "  aws_role_arn = \"arn:aws:iam::123456789012:role/eso\"\n" } else { "" };
    format!(
        r#"resource "secretbridge_service_account" "eso" {{
  namespace = "{store_ns}"
  name      = "eso"
{arn_line}}}

resource "secretbridge_secret_store" "aws" {{
  namespace = "{store_ns}"
  name      = "aws"
  spec {{
    provider {{
      aws {{
        service = "ParameterStore"
        region  = "eu-west-1"
        auth {{
          jwt {{
            service_account_ref = {{
              name = secretbridge_service_account.eso.name
{sa_ns_line}            }}
          }}
        }}
      }}
    }}
  }}
}}

resource "secretbridge_external_secret" "db" {{
  namespace = "{es_ns}"
  name      = "db"
  spec {{
    secret_store_ref = {{
      name = secretbridge_secret_store.aws.name
    }}
    data {{
      secret_key = "url"
      remote_ref = {{
        key = "/app/db/url"
      }}
    }}
  }}
}}
"#
    )
}

pub(crate) fn plan_fails_with(w: &Workdir, needles: &[&str]) {
    let out = w.run(&["plan", "-no-color", "-input=false"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Terraform wraps long diagnostic lines; compare with whitespace collapsed.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!out.status.success(), "plan should fail:\n{text}");
    for needle in needles {
        assert!(flat.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

fn namespace_mismatch(version: &str, rt: &tokio::runtime::Runtime, cluster: &mut Cluster) {
    let default_ns = rt.block_on(cluster.create_namespace("tf-default")).expect("namespace");
    let app_ns = rt.block_on(cluster.create_namespace("tf-app")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let w = Workdir::new(version);

    // SecretStore and ServiceAccount in one namespace, ExternalSecret in another.
    write_kube_config(&w, &kubeconfig, &article_config(&default_ns, &app_ns, None, true));
    let mismatch = format!("ExternalSecret {app_ns}/db uses SecretStore 'aws' but it exists only in namespace '{default_ns}'");
    let mut needles = vec![mismatch.as_str(), "in resource \"secretbridge_external_secret\" \"db\""];
    // Terraform points at the attribute; 1.0.x only as far as the enclosing
    // block (it cannot resolve paths into nested attributes).
    if version != "1.0.3" {
        needles.push("name = secretbridge_secret_store.aws.name");
    }
    plan_fails_with(&w, &needles);

    // The store in the app namespace, pointing at the ServiceAccount in the other one.
    let mut text = article_config(&default_ns, &app_ns, Some(&default_ns), true);
    text = text.replacen(&format!("namespace = \"{default_ns}\"\n  name      = \"aws\""), &format!("namespace = \"{app_ns}\"\n  name      = \"aws\""), 1);
    write_kube_config(&w, &kubeconfig, &text);
    plan_fails_with(&w, &[&format!("SecretStore {app_ns}/aws authenticates as ServiceAccount {default_ns}/eso"), &format!("its own namespace '{app_ns}'")]);

    // Everything in one namespace, but the ServiceAccount lacks the role annotation.
    write_kube_config(&w, &kubeconfig, &article_config(&app_ns, &app_ns, None, false));
    plan_fails_with(&w, &[&format!("ServiceAccount {app_ns}/eso through IRSA"), "eks.amazonaws.com/role-arn"]);

    // A store that exists nowhere: the diagnostic says how to order the plan.
    let missing = article_config(&app_ns, &app_ns, None, true).replace("name = secretbridge_secret_store.aws.name", "name = \"nope\"");
    write_kube_config(&w, &kubeconfig, &missing);
    plan_fails_with(&w, &[&format!("uses SecretStore 'nope', which is neither in namespace '{app_ns}'"), "reference it"]);

    // Fixed: the same config with one namespace applies cleanly.
    write_kube_config(&w, &kubeconfig, &article_config(&app_ns, &app_ns, None, true));
    w.ok(APPLY);
    let (changes, plan) = w.plan_has_changes();
    if changes {
        // The text plan hides unchanged nested values: show the JSON diff.
        w.ok(&["plan", "-out", "debug.plan", "-no-color"]);
        let json = w.ok(&["show", "-json", "debug.plan"]);
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        for rc in v["resource_changes"].as_array().expect("changes") {
            eprintln!("unexpected change of {}: before={} after={}", rc["address"], rc["change"]["before"], rc["change"]["after"]);
        }
    }
    assert!(!changes, "re-plan not empty:\n{plan}");
    // The ExternalSecret now finds its store in the cluster without the plan's help.
    let unordered = article_config(&app_ns, &app_ns, None, true).replace("name = secretbridge_secret_store.aws.name", "name = \"aws\"");
    write_kube_config(&w, &kubeconfig, &unordered);
    assert!(!w.plan_has_changes().0);
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
}

#[test]
fn namespace_mismatch_fails_plan() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    for version in CLIS {
        namespace_mismatch(version, &rt, &mut cluster);
    }
    rt.block_on(cluster.cleanup());
}

/// Values that only exist in the cluster's Secret, as if the controller had synced them.
const SEEDED: &[&str] = &["s3cr3t-Pa55word-7f1c9", "postgres://admin:hunter2-9d2e@db:5432/app"];

#[test]
fn secret_values_never_reach_state_or_trace_log() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let ns = rt.block_on(cluster.create_namespace("tf-values")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let version = "1.15.5";
    let w = Workdir::new(version);

    // The target Secret exists with real values; the controller is not running.
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let seeded: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "db-creds", "namespace": ns },
        "stringData": { "password": SEEDED[0], "url": SEEDED[1] },
    }))
    .expect("secret");
    rt.block_on(secrets.create(&Default::default(), &seeded)).expect("seed the Secret");

    // A non-secret marker that must show up, so the scan is known to work.
    let marker = "/marker/remote-key-4b8e";
    // And a value handed to Terraform on the command line, which the trace log records.
    let scan_marker = "scan-marker-6a1d";
    let config = format!(
        "{}\nvariable \"scan_marker\" {{\n  type = string\n}}\n\noutput \"scan_marker\" {{\n  value = var.scan_marker\n}}\n",
        objects_config(&ns, "aws", "db", &format!("{ns}-global"), marker, "eu-west-1")
    );
    write_kube_config(&w, &kubeconfig, &config);
    let log = w.work().join("trace.log");
    let log_str = log.to_str().expect("utf-8 path").to_owned();
    let var = format!("-var=scan_marker={scan_marker}");
    let traced = |args: &[&str]| {
        let mut args = args.to_vec();
        if args[0] != "state" {
            args.push(&var);
        }
        let out = w.run_with_env(&args, &[("TF_LOG", "trace"), ("TF_LOG_PATH", &log_str)]);
        assert!(out.status.success(), "terraform {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let mut console = traced(APPLY);
    console += &traced(&["plan", "-no-color", "-input=false"]);
    console += &traced(&["apply", "-refresh-only", "-auto-approve", "-no-color", "-input=false"]);
    console += &traced(&["state", "pull"]);

    let state = std::fs::read_to_string(w.work().join("terraform.tfstate")).expect("state file");
    let trace = std::fs::read_to_string(&log).expect("trace log");
    assert!(trace.len() > 10_000, "the trace log was written ({} bytes)", trace.len());
    // What the scan must see in each, so a scan that finds nothing is known
    // to work: the value given to Terraform everywhere, the remote key of
    // the mapping in the state and the console.
    assert!(state.contains(marker) && console.contains(marker), "the mapping's remote key is in state and output");
    for (what, text) in [("state", &state), ("trace log", &trace), ("console", &console)] {
        assert!(text.contains(scan_marker), "the scan sees the value given to Terraform in the {what}");
        for value in SEEDED {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            assert!(!text.contains(value), "secret value found in the {what}");
            assert!(!text.contains(&encoded), "base64 secret value found in the {what}");
        }
    }
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false", &var]);
    // The Secret is the controller's business, not Terraform's: still there.
    assert!(rt.block_on(secrets.get_opt("db-creds")).expect("get").is_some());
    rt.block_on(cluster.cleanup());
}

/// The provider's own credentials, as the platform team writes them in the
/// provider block: `aws.secret_key`, `gcp.access_token` and
/// `kubernetes.token`. Each is a fresh unique string the endpoints accept
/// (moto does not check signatures; the GCP stand-in's admin token and a
/// `system:masters` user token of the Kubernetes stand-in are set to them), so
/// the provider really uses them. None may appear in the state, the console
/// output of apply/plan/refresh/show, or the `TF_LOG=trace` log. A planted
/// marker (a variable on the command line, echoed by an output) must appear in
/// all three, so the scan is known to look in the right place.
#[test]
fn provider_credentials_never_reach_state_plan_or_trace_log() {
    let unique = |what: &str| format!("{what}-{:016x}", rand::random::<u64>());
    let aws_secret_key = unique("aws-secret-key");
    let gcp_access_token = unique("gcp-access-token");
    let aws = crate::aws_common::AwsEnv::start(None);
    let gcp = crate::gcp_common::GcpEnv::start_with(gcp_standin::Options {
        admin_token: gcp_access_token.clone(),
        projects: vec![gcp_standin::ProjectSpec::new(crate::gcp_common::PROJECT)],
        ..gcp_standin::Options::default()
    });
    let kube = aws.rt.block_on(kube_standin::KubeStandin::start(kube_standin::Options::default())).expect("kube stand-in");
    let kube_token = kube.token_for_user("platform-team", &["system:masters"]);
    let credentials = [("aws.secret_key", aws_secret_key.as_str()), ("gcp.access_token", gcp_access_token.as_str()), ("kubernetes.token", kube_token.as_str())];
    let w = Workdir::new("1.15.5");
    let pinned = "0123456789abcdef0123456789abcdef01234567";
    let config = format!(
        r#"terraform {{
  required_providers {{
    secretbridge = {{
      source = "secretbridge/secretbridge"
    }}
  }}
}}

variable "scan_marker" {{
  type = string
}}

provider "secretbridge" {{
  aws {{
    region     = "{region}"
    endpoint   = "{aws_endpoint}"
    access_key = "testing"
    secret_key = "{aws_secret_key}"
  }}
  gcp {{
    project      = "{project}"
    endpoint     = "{gcp_endpoint}"
    access_token = "{gcp_access_token}"
  }}
  kubernetes {{
    host                   = "{kube_host}"
    token                  = "{kube_token}"
    cluster_ca_certificate = <<-PEM
{ca}    PEM
  }}
}}

resource "secretbridge_aws_oidc_provider" "scan" {{
  url         = "https://oidc.scan.example.com/id/LEAKSCAN"
  thumbprints = ["{pinned}"]
}}

resource "secretbridge_gcp_service_account" "scan" {{
  account_id   = "leak-scan"
  display_name = "leak scan"
}}

resource "secretbridge_service_account" "scan" {{
  namespace = "default"
  name      = "leak-scan"
}}

output "scan_marker" {{
  value = var.scan_marker
}}
"#,
        region = crate::aws_common::REGION,
        aws_endpoint = aws.guard.endpoint(),
        project = crate::gcp_common::PROJECT,
        gcp_endpoint = gcp.standin.endpoint(),
        kube_host = kube.url(),
        ca = kube.ca_pem(),
    );
    std::fs::write(w.work().join("main.tf"), config).expect("write main.tf");
    let scan_marker = unique("scan-marker");
    // Only the marker goes on the command line (Terraform logs its arguments);
    // the credentials are in the provider block, where a platform team puts them.
    let vars = [format!("-var=scan_marker={scan_marker}")];
    let log = w.work().join("trace.log");
    let log_str = log.to_str().expect("utf-8 path").to_owned();
    let traced = |args: &[&str]| {
        let mut args: Vec<&str> = args.to_vec();
        if !["state", "show"].contains(&args[0]) {
            args.extend(vars.iter().map(String::as_str));
        }
        let out = w.run_with_env(&args, &[("TF_LOG", "trace"), ("TF_LOG_PATH", &log_str)]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "terraform {:?}:\n{text}", &args[..1]);
        text
    };
    let mut console = traced(APPLY);
    console += &traced(&["plan", "-no-color", "-input=false"]);
    console += &traced(&["apply", "-refresh-only", "-auto-approve", "-no-color", "-input=false"]);
    console += &traced(&["state", "pull"]);
    console += &traced(&["show", "-json"]);

    // The credentials were used: each endpoint accepts only its own.
    assert!(gcp.standin.call_count("CreateServiceAccount") >= 1, "the GCP resource was created with gcp.access_token: {:?}", gcp.standin.call_counts());
    assert!(aws.guard.stats().calls("CreateOpenIDConnectProvider") >= 1, "the AWS resource was created: {:?}", aws.guard.stats());
    let state = std::fs::read_to_string(w.work().join("terraform.tfstate")).expect("state file");
    let trace = std::fs::read_to_string(&log).expect("trace log");
    assert!(trace.len() > 10_000, "the trace log was written ({} bytes)", trace.len());
    assert!(state.contains("leak-scan") && console.contains("leak-scan"), "the resources are in state and output");
    for (what, text) in [("state", &state), ("trace log", &trace), ("console", &console)] {
        assert!(text.contains(&scan_marker), "the scan sees a value given to Terraform as a variable in the {what}");
        for (name, credential) in credentials {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(credential);
            assert!(!text.contains(credential), "the provider's {name} found in the {what}");
            assert!(!text.contains(&encoded), "the provider's {name}, base64, found in the {what}");
        }
    }
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false", &vars[0]]);
}

/// An IRSA role and the ServiceAccount carrying its ARN, with both the
/// `aws {}` (moto behind the guard) and `kubernetes {}` blocks.
pub(crate) fn trust_config(env: &crate::aws_common::AwsEnv, kubeconfig: &Path, body: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\nprovider \"secretbridge\" {{\n  aws {{\n    region     = \"{}\"\n    endpoint   = \"{}\"\n    access_key = \"testing\"\n    secret_key = \"testing\"\n  }}\n  kubernetes {{\n    config_path = \"{}\"\n  }}\n}}\n\n{body}",
        crate::aws_common::REGION,
        env.guard.endpoint(),
        kubeconfig.display()
    )
}

fn role_and_sa(role: &str, provider_arn: &str, trusted_ns: &str, sa_ns: &str) -> String {
    format!(
        r#"resource "secretbridge_aws_irsa_role" "reader" {{
  name              = "{role}"
  oidc_provider_arn = "{provider_arn}"
  namespace         = "{trusted_ns}"
  service_account   = "reader"
  access = {{
    parameters = ["/trust/db"]
  }}
}}

resource "secretbridge_service_account" "reader" {{
  namespace    = "{sa_ns}"
  name         = "reader"
  aws_role_arn = secretbridge_aws_irsa_role.reader.arn
}}
"#
    )
}

#[test]
fn irsa_trust_mismatch_fails_plan_from_the_plan_and_from_iam() {
    let env = crate::aws_common::AwsEnv::start(None);
    let mut cluster = env.rt.block_on(Cluster::from_env_or_start()).expect("cluster");
    let ns = env.rt.block_on(cluster.create_namespace("tf-trust")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let issuer = "oidc.example.test/id/TRUSTCHECK";
    env.rt
        .block_on(
            env.iam()
                .create_open_id_connect_provider()
                .url(format!("https://{issuer}"))
                .client_id_list("sts.amazonaws.com")
                .thumbprint_list("0123456789abcdef0123456789abcdef01234567")
                .send(),
        )
        .expect("seed the OIDC provider");
    let provider_arn = format!("arn:aws:iam::{}:oidc-provider/{issuer}", crate::aws_common::ACCOUNT);
    let role = format!("trust-{ns}");
    let w = Workdir::new("1.15.5");
    let write = |w: &Workdir, body: &str| std::fs::write(w.work().join("main.tf"), trust_config(&env, &kubeconfig, body)).expect("main.tf");

    // Both ends planned: the role trusts apps/reader, the ServiceAccount is ns/reader.
    write(&w, &role_and_sa(&role, &provider_arn, "apps", &ns));
    plan_fails_with(&w, &[&format!("ServiceAccount {ns}/reader carries the ARN of IRSA role '{role}'"), "admits only ServiceAccount apps/reader", "aws_role_arn"]);

    // Fixed: the trust names the ServiceAccount's namespace.
    write(&w, &role_and_sa(&role, &provider_arn, &ns, &ns));
    w.ok(APPLY);
    assert!(!w.plan_has_changes().0);

    // The role outside this configuration: its trust is read from IAM.
    let other = Workdir::new("1.15.5");
    let arn = format!("arn:aws:iam::{}:role/{role}", crate::aws_common::ACCOUNT);
    write(
        &other,
        &format!("resource \"secretbridge_service_account\" \"intruder\" {{\n  namespace    = \"{ns}\"\n  name         = \"intruder\"\n  aws_role_arn = \"{arn}\"\n}}\n"),
    );
    plan_fails_with(&other, &[&format!("ServiceAccount {ns}/intruder carries the ARN {arn}"), &format!("admits only {ns}/reader")]);

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    env.rt.block_on(cluster.cleanup());
}
