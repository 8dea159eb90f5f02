//! Issue 18 on both real Terraform CLIs: the reference article's namespace
//! pitfall (the store in namespace A, its ServiceAccount in B) failing
//! `terraform plan` in every planning order, and the bugs a first run of
//! the examples hit: `~` in `kubernetes.config_path`, `KUBE_CONFIG_PATH`,
//! an unreachable cluster passing the plan, `remote_refs` without the
//! store's prefix, and a ClusterSecretStore lending one ServiceAccount to
//! every namespace.

use std::path::Path;

use kube_standin::testing::Cluster;

use crate::acceptance::Workdir;
use crate::k8s_objects::{APPLY, CLIS, cluster, trust_config};
use crate::service_account::{runtime, write_kube_config};

const SA: &str = "test-eso-sa";

/// The blocks of the article's AWS layout, in file order. `direct`: the
/// cycle-free layout (the store references the ServiceAccount, the role
/// references its trusted ServiceAccount, the ServiceAccount's ARN is
/// built from the role's name); otherwise the layout of the issue (literal
/// ServiceAccount name in the store, the ServiceAccount reading the role's ARN).
fn pitfall_blocks(sa_ns: &str, app_ns: &str, role: &str, provider_arn: &str, direct: bool) -> Vec<String> {
    let account = crate::aws_common::ACCOUNT;
    let (sa_arn, role_ns, role_sa, store_sa) = if direct {
        (
            format!("\"arn:aws:iam::{account}:role/{role}\""),
            "secretbridge_service_account.eso.namespace".to_owned(),
            "secretbridge_service_account.eso.name".to_owned(),
            "secretbridge_service_account.eso.name".to_owned(),
        )
    } else {
        ("secretbridge_aws_irsa_role.eso.arn".to_owned(), format!("\"{sa_ns}\""), format!("\"{SA}\""), format!("\"{SA}\""))
    };
    vec![
        format!("resource \"secretbridge_service_account\" \"eso\" {{\n  namespace    = \"{sa_ns}\"\n  name         = \"{SA}\"\n  aws_role_arn = {sa_arn}\n}}\n"),
        format!(
            "resource \"secretbridge_aws_irsa_role\" \"eso\" {{\n  name              = \"{role}\"\n  oidc_provider_arn = \"{provider_arn}\"\n  namespace         = {role_ns}\n  service_account   = {role_sa}\n  access = {{\n    parameters = secretbridge_external_secret.db.remote_refs\n  }}\n}}\n"
        ),
        format!(
            "resource \"secretbridge_secret_store\" \"aws\" {{\n  namespace = \"{app_ns}\"\n  name      = \"aws\"\n  spec {{\n    provider {{\n      aws {{\n        service = \"ParameterStore\"\n        region  = \"{}\"\n        auth {{\n          jwt {{\n            service_account_ref = {{\n              name = {store_sa}\n            }}\n          }}\n        }}\n      }}\n    }}\n  }}\n}}\n",
            crate::aws_common::REGION
        ),
        format!(
            "resource \"secretbridge_external_secret\" \"db\" {{\n  namespace = \"{app_ns}\"\n  name      = \"db\"\n  spec {{\n    secret_store_ref = {{\n      name = secretbridge_secret_store.aws.name\n    }}\n    data {{\n      secret_key = \"url\"\n      remote_ref = {{\n        key = \"/app/db/url\"\n      }}\n    }}\n  }}\n}}\n"
        ),
    ]
}

/// Runs `terraform plan` with `extra` arguments; asserts it fails with every needle.
fn plan_fails(w: &Workdir, extra: &[&str], needles: &[&str], what: &str) {
    let mut args = vec!["plan", "-no-color", "-input=false"];
    args.extend_from_slice(extra);
    let text = crate::aws_common::fails(w, &args);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in needles {
        assert!(flat.contains(needle), "{what}: missing {needle:?} in:\n{text}");
    }
}


/// Writes the blocks as one file (in `order`), or split over two local
/// modules (ServiceAccount and role in one, store and ExternalSecret in the
/// other) wired through variables and outputs.
fn write_layout(w: &Workdir, env: &crate::aws_common::AwsEnv, kubeconfig: &Path, blocks: &[String], reversed: bool, modules: bool) {
    let mut ordered: Vec<String> = blocks.to_vec();
    if reversed {
        ordered.reverse();
    }
    if !modules {
        std::fs::write(w.work().join("main.tf"), trust_config(env, kubeconfig, &ordered.join("\n"))).expect("main.tf");
        return;
    }
    let required = "terraform {\n  required_providers {\n    secretbridge = {\n      source = \"secretbridge/secretbridge\"\n    }\n  }\n}\n";
    let identity: Vec<String> = ordered
        .iter()
        .filter(|b| b.contains("\"secretbridge_service_account\"") || b.contains("\"secretbridge_aws_irsa_role\""))
        .map(|b| b.replace("secretbridge_external_secret.db.remote_refs", "var.remote_refs"))
        .collect();
    let app: Vec<String> = ordered
        .iter()
        .filter(|b| b.contains("\"secretbridge_secret_store\"") || b.contains("\"secretbridge_external_secret\""))
        .map(|b| b.replace("secretbridge_service_account.eso.name", "var.service_account"))
        .collect();
    for (dir, body, io) in [
        (
            "identity",
            identity.join("\n"),
            "variable \"remote_refs\" {\n  type = list(string)\n}\noutput \"service_account\" {\n  value = secretbridge_service_account.eso.name\n}\n",
        ),
        ("app", app.join("\n"), "variable \"service_account\" {\n  type = string\n}\noutput \"remote_refs\" {\n  value = secretbridge_external_secret.db.remote_refs\n}\n"),
    ] {
        let path = w.work().join(dir);
        std::fs::create_dir_all(&path).expect("module dir");
        std::fs::write(path.join("main.tf"), format!("{required}\n{io}\n{body}")).expect("module main.tf");
    }
    // The app module takes the ServiceAccount's name from the identity
    // module when the layout references it, else repeats it.
    let direct = blocks[2].contains("secretbridge_service_account.eso.name");
    let sa_value = if direct { "module.identity.service_account".to_owned() } else { format!("\"{SA}\"") };
    let mut calls = [
        "module \"identity\" {\n  source      = \"./identity\"\n  remote_refs = module.app.remote_refs\n}\n".to_owned(),
        format!("module \"app\" {{\n  source          = \"./app\"\n  service_account = {sa_value}\n}}\n"),
    ];
    if reversed {
        calls.reverse();
    }
    std::fs::write(w.work().join("main.tf"), trust_config(env, kubeconfig, &calls.join("\n"))).expect("main.tf");
}

fn namespace_pitfall(version: &str, env: &crate::aws_common::AwsEnv, cluster: &mut Cluster, provider_arn: &str) {
    let sa_ns = env.rt.block_on(cluster.create_namespace("tf-sa-b")).expect("namespace");
    let app_ns = env.rt.block_on(cluster.create_namespace("tf-app-a")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let role = format!("pitfall-{app_ns}");
    let w = Workdir::new(version);
    let both_ends = format!("ServiceAccount {app_ns}/{SA}");
    let elsewhere = format!("namespace '{sa_ns}'");
    let fix = format!("declare the ServiceAccount in namespace '{app_ns}'");
    let fix_sa_side = format!("declare this ServiceAccount in namespace '{app_ns}'");
    for direct in [true, false] {
        let blocks = pitfall_blocks(&sa_ns, &app_ns, &role, provider_arn, direct);
        for modules in [false, true] {
            for reversed in [false, true] {
                write_layout(&w, env, &kubeconfig, &blocks, reversed, modules);
                if modules {
                    // Installs the local modules (init would look the provider up in the registry).
                    w.ok(&["get", "-no-color"]);
                }
                for extra in [&["-parallelism=1"][..], &[][..]] {
                    let what = format!("terraform {version}, direct={direct}, modules={modules}, reversed={reversed}, {extra:?}");
                    let out = w.run(&[&["plan", "-no-color", "-input=false"][..], extra].concat());
                    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    assert!(!out.status.success(), "{what}: plan should fail:\n{text}");
                    assert!(flat.contains(&both_ends) && flat.contains(&elsewhere), "{what}: both namespaces named:\n{text}");
                    assert!(flat.contains(&fix) || flat.contains(&fix_sa_side), "{what}: the fix named:\n{text}");
                }
            }
        }
    }
    // The correct configuration (everything in namespace A, cycle-free
    // layout) plans, applies and re-plans empty, in both file orders.
    let blocks = pitfall_blocks(&app_ns, &app_ns, &role, provider_arn, true);
    write_layout(&w, env, &kubeconfig, &blocks, false, false);
    let _ = std::fs::remove_dir_all(w.work().join("identity"));
    let _ = std::fs::remove_dir_all(w.work().join("app"));
    w.ok(APPLY);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "terraform {version}: re-plan of the correct configuration not empty:\n{plan}");
    write_layout(&w, env, &kubeconfig, &blocks, true, false);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "terraform {version}: re-plan in the other file order not empty:\n{plan}");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
}

#[test]
fn store_and_service_account_in_different_namespaces_fail_plan_in_every_order() {
    let env = crate::aws_common::AwsEnv::start(None);
    let mut cluster = env.rt.block_on(Cluster::from_env_or_start()).expect("cluster");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").join("deploy").join("crds");
    env.rt.block_on(cluster.install_crds(&crds)).expect("install CRDs");
    let provider_arn = crate::aws_common::seed_oidc_provider(&env, "oidc.example.test/id/PITFALL");
    for version in CLIS {
        namespace_pitfall(version, &env, &mut cluster, &provider_arn);
    }
    env.rt.block_on(cluster.cleanup());
}

fn sa_body(ns: &str) -> String {
    format!("resource \"secretbridge_service_account\" \"app\" {{\n  namespace = \"{ns}\"\n  name      = \"first-run\"\n}}\n")
}

fn provider_with(kubernetes: &str, body: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\nprovider \"secretbridge\" {{\n  kubernetes {{\n{kubernetes}  }}\n}}\n\n{body}"
    )
}

/// `config_path = "~/.kube/config"` (the examples' default) and
/// `KUBE_CONFIG_PATH` both find the kubeconfig in a fresh HOME.
#[test]
fn kubeconfig_path_with_tilde_and_kube_config_path_are_honoured() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let ns = rt.block_on(cluster.create_namespace("tf-home")).expect("namespace");
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".kube")).expect(".kube");
    std::fs::copy(cluster.kubeconfig_path(), home.path().join(".kube").join("config")).expect("copy kubeconfig");
    let home_str = home.path().to_str().expect("utf-8").to_owned();
    for version in CLIS {
        let w = Workdir::new(version);
        let env = [("HOME", home_str.as_str()), ("KUBE_CONFIG_PATH", ""), ("KUBE_CONFIG_PATHS", "")];
        std::fs::write(w.work().join("main.tf"), provider_with("    config_path = \"~/.kube/config\"\n", &sa_body(&ns))).expect("main.tf");
        let run = |args: &[&str], env: &[(&str, &str)]| {
            let out = w.run_with_env(args, env);
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "terraform {version} {args:?}:\n{text}");
        };
        run(APPLY, &env);
        run(&["destroy", "-auto-approve", "-no-color", "-input=false"], &env);
        // No config_path: KUBE_CONFIG_PATH names the file (HOME has none).
        let empty_home = tempfile::tempdir().expect("empty home");
        let kubeconfig = cluster.kubeconfig_path().to_str().expect("utf-8").to_owned();
        let env = [("HOME", empty_home.path().to_str().expect("utf-8")), ("KUBE_CONFIG_PATH", kubeconfig.as_str()), ("KUBECONFIG", "/nonexistent/kubeconfig")];
        std::fs::write(w.work().join("main.tf"), provider_with("", &sa_body(&ns))).expect("main.tf");
        run(APPLY, &env);
        run(&["destroy", "-auto-approve", "-no-color", "-input=false"], &env);
    }
    rt.block_on(cluster.cleanup());
}

/// A cluster that does not answer fails the plan, naming the settings;
/// before, the plan passed and only the apply failed.
#[test]
fn unreachable_cluster_fails_plan_naming_the_setting() {
    let port = secretbridge_harness::free_port().expect("port");
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\ncurrent-context: gone\nusers:\n- name: gone\n  user:\n    token: x\n"
        ),
    )
    .expect("kubeconfig");
    for version in CLIS {
        let w = Workdir::new(version);
        write_kube_config(&w, &kubeconfig, &sa_body("default"));
        plan_fails(&w, &[], &["Cannot reach the Kubernetes cluster", "kubernetes.config_path"], version);
        // A kubeconfig path that does not exist names the setting too.
        write_kube_config(&w, Path::new("/nonexistent/kubeconfig"), &sa_body("default"));
        plan_fails(&w, &[], &["Cannot reach the Kubernetes cluster", "kubernetes.config_path \"/nonexistent/kubeconfig\""], version);
    }
}

fn prefixed_config(ns: &str) -> String {
    format!(
        r#"resource "secretbridge_service_account" "reader" {{
  namespace    = "{ns}"
  name         = "reader"
  aws_role_arn = "arn:aws:iam::123456789012:role/reader"
}}

resource "secretbridge_secret_store" "aws" {{
  namespace = "{ns}"
  name      = "aws"
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

resource "secretbridge_external_secret" "db" {{
  namespace = "{ns}"
  name      = "db"
  spec {{
    secret_store_ref = {{
      name = secretbridge_secret_store.aws.name
    }}
    data {{
      secret_key = "url"
      remote_ref = {{
        key = "db/url"
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

/// `remote_refs` names what the controller reads: the store's prefix
/// followed by the key, known at plan, kept through apply and re-plan.
#[test]
fn remote_refs_include_the_store_prefix() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let ns = rt.block_on(cluster.create_namespace("tf-prefix")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    for version in CLIS {
        let w = Workdir::new(version);
        write_kube_config(&w, &kubeconfig, &prefixed_config(&ns));
        let (_, plan) = w.plan_has_changes();
        assert!(plan.contains("\"/prod/db/url\""), "terraform {version}: prefixed remote_refs at plan:\n{plan}");
        w.ok(APPLY);
        let refs: Vec<String> = serde_json::from_str(&w.ok(&["output", "-json", "remote_refs"])).expect("json");
        assert_eq!(refs, ["/prod/db/url"], "terraform {version}");
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "terraform {version}: re-plan not empty:\n{plan}");
        w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    }
    rt.block_on(cluster.cleanup());
}

fn cluster_store_config(ns: &str, name: &str, conditions: &str) -> String {
    format!(
        r#"resource "secretbridge_service_account" "app" {{
  namespace           = "{ns}"
  name                = "app"
  gcp_service_account = "app@proj.iam.gserviceaccount.com"
}}

resource "secretbridge_cluster_secret_store" "gcp" {{
  name = "{name}"
  spec {{
{conditions}    provider {{
      gcpsm {{
        project_id = "proj"
        auth {{
          workload_identity {{
            service_account_ref = {{
              name      = secretbridge_service_account.app.name
              namespace = secretbridge_service_account.app.namespace
            }}
          }}
        }}
      }}
    }}
  }}
}}
"#
    )
}

/// A ClusterSecretStore that pins one ServiceAccount and admits every
/// namespace warns; with conditions it does not.
#[test]
fn cluster_store_lending_one_service_account_to_every_namespace_warns() {
    let rt = runtime();
    let mut cluster = cluster(&rt);
    let ns = rt.block_on(cluster.create_namespace("tf-css")).expect("namespace");
    let kubeconfig = cluster.kubeconfig_path().to_owned();
    let warning = "ClusterSecretStore lends one ServiceAccount to every namespace";
    for version in CLIS {
        let w = Workdir::new(version);
        write_kube_config(&w, &kubeconfig, &cluster_store_config(&ns, &format!("{ns}-gcp"), ""));
        let (_, plan) = w.plan_has_changes();
        let flat = plan.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(warning) && flat.contains(&format!("ServiceAccount {ns}/app")), "terraform {version}: warning expected:\n{plan}");
        let scoped = format!("    conditions {{\n      namespaces = [\"{ns}\"]\n    }}\n");
        write_kube_config(&w, &kubeconfig, &cluster_store_config(&ns, &format!("{ns}-gcp"), &scoped));
        let (_, plan) = w.plan_has_changes();
        assert!(!plan.contains(warning), "terraform {version}: no warning with conditions:\n{plan}");
    }
    rt.block_on(cluster.cleanup());
}

/// An `exec {}` block (what `aws eks get-token` and `gke-gcloud-auth-plugin`
/// plug into) authenticates the provider: the kubeconfig's own user holds a
/// token the API server refuses, so only the command's credential, passed
/// through the block's `env`, can make the apply succeed; a command printing
/// a wrong token fails the plan. The credential is a TokenRequest token of a
/// ServiceAccount the test binds to a ClusterRole of its own, so the test
/// needs no admin token and runs the same on a real cluster.
#[test]
fn exec_block_authenticates_the_provider() {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
    use kube::Api;
    use kube::api::{DeleteParams, ObjectMeta, PostParams};

    let rt = runtime();
    let mut cluster = cluster(&rt);
    let ns = rt.block_on(cluster.create_namespace("tf-exec")).expect("namespace");
    let client = cluster.client();
    let sa = ServiceAccount { metadata: ObjectMeta { name: Some("exec-user".into()), ..ObjectMeta::default() }, ..ServiceAccount::default() };
    rt.block_on(Api::<ServiceAccount>::namespaced(client.clone(), &ns).create(&PostParams::default(), &sa)).expect("ServiceAccount");
    let binding_name = format!("{ns}-exec-user");
    let role = ClusterRole {
        metadata: ObjectMeta { name: Some(binding_name.clone()), ..ObjectMeta::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    rt.block_on(Api::<ClusterRole>::all(client.clone()).create(&PostParams::default(), &role)).expect("ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(binding_name.clone()), ..ObjectMeta::default() },
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: binding_name.clone() },
        subjects: Some(vec![Subject { kind: "ServiceAccount".into(), name: "exec-user".into(), namespace: Some(ns.clone()), ..Subject::default() }]),
    };
    rt.block_on(Api::<ClusterRoleBinding>::all(client.clone()).create(&PostParams::default(), &binding)).expect("ClusterRoleBinding");
    let token = rt.block_on(cluster.service_account_token(&ns, "exec-user", &[], 3600)).expect("token");
    assert!(!token.is_empty());

    // The kubeconfig's user gets a token nobody issued.
    let dir = tempfile::tempdir().expect("dir");
    let mut kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    for user in &mut kubeconfig.auth_infos {
        user.auth_info = Some(serde_json::from_value(serde_json::json!({"token": "not-a-valid-token"})).expect("auth info"));
    }
    let refused_kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&refused_kubeconfig, serde_json::to_string(&kubeconfig).expect("kubeconfig serialises")).expect("kubeconfig");
    let script = dir.path().join("get-token.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' \"$SB_TOKEN\"\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let kubernetes = |token: &str| {
        format!(
            "    config_path = \"{}\"\n    exec {{\n      api_version = \"client.authentication.k8s.io/v1beta1\"\n      command     = \"{}\"\n      args        = []\n      env         = {{ SB_TOKEN = \"{token}\" }}\n    }}\n",
            refused_kubeconfig.display(),
            script.display()
        )
    };
    for version in CLIS {
        let w = Workdir::new(version);
        std::fs::write(w.work().join("main.tf"), provider_with(&kubernetes(&token), &sa_body(&ns))).expect("main.tf");
        let out = w.run(APPLY);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "terraform {version} apply through exec:\n{text}");
        let created = rt.block_on(Api::<ServiceAccount>::namespaced(client.clone(), &ns).get_opt("first-run")).expect("read");
        assert!(created.is_some(), "{version}: the ServiceAccount was created through the exec credential");
        let out = w.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert!(out.status.success(), "terraform {version} destroy: {}", String::from_utf8_lossy(&out.stderr));
        // A command that prints a credential the server refuses fails the plan.
        std::fs::write(w.work().join("main.tf"), provider_with(&kubernetes("wrong-token"), &sa_body(&ns))).expect("main.tf");
        plan_fails(&w, &[], &["Cannot reach the Kubernetes cluster", "401 Unauthorized", "exec {} command"], version);
    }
    let _ = rt.block_on(Api::<ClusterRoleBinding>::all(client.clone()).delete(&binding_name, &DeleteParams::default()));
    let _ = rt.block_on(Api::<ClusterRole>::all(client.clone()).delete(&binding_name, &DeleteParams::default()));
    let _ = rt.block_on(Api::<Namespace>::all(client).delete(&ns, &DeleteParams::default()));
    rt.block_on(cluster.cleanup());
}
