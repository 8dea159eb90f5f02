//! The cloud examples, applied as written (their `kubeconfig_path` default
//! `~/.kube/config` is a file in a temporary HOME) against the emulators by
//! overriding the provider endpoints, then re-planned empty; the controller then syncs the
//! ExternalSecret they declare. (`examples-terraform/local` is covered by the
//! demo test, and the modules through it.)

use secretbridge_e2e::{READY_TIMEOUT, SEED, blocking, example_terraform, seed_clouds};
use secretbridge_harness::TfVersion;
use secretbridge_stack::{ControllerOptions, Stack, StackOptions};
use std::collections::BTreeMap;

const NAMESPACE: &str = "multicloud";
const SECRET: &str = "multicloud-db-info";

fn seeded() -> Vec<(&'static str, &'static str)> {
    SEED.iter().map(|(key, _, _, value)| (*key, *value)).collect()
}

async fn apply_and_replan(stack: &Stack, version: TfVersion, folder: &str, vars: BTreeMap<&'static str, String>) {
    let mut run = example_terraform(version, &crate::provider(), folder).expect("terraform set-up");
    // A first run as a user makes it: the kubeconfig where kubectl keeps it,
    // no kubeconfig variable, no KUBE_CONFIG_PATH.
    let home = std::env::temp_dir().join(format!("secretbridge-home-{}-{folder}-{version}", std::process::id()));
    std::fs::create_dir_all(home.join(".kube")).expect(".kube");
    std::fs::copy(stack.kubeconfig_path(), home.join(".kube").join("config")).expect("copy the kubeconfig");
    run.env("HOME", &home);
    run.env("KUBE_CONFIG_PATH", "");
    run.env("KUBE_CONFIG_PATHS", "");
    for (name, value) in vars {
        run.var(name, value);
    }
    blocking(move || -> Result<(), secretbridge_e2e::DemoError> {
        run.init()?;
        run.apply()?;
        run.expect_empty_plan()
    })
    .await
    .expect("terraform task")
    .unwrap_or_else(|e| panic!("{folder} on terraform {version}: {e}"));
    let _ = std::fs::remove_dir_all(&home);
}

async fn expect_synced(stack: &Stack) {
    let controller = stack
        .start_controller(ControllerOptions::new(crate::controller_binary()))
        .await
        .expect("controller starts");
    if let Err(e) = stack.wait_ready(NAMESPACE, SECRET, READY_TIMEOUT).await {
        panic!("{NAMESPACE}/{SECRET} not Ready: {e}\ncontroller log:\n{}", controller.log_tail());
    }
    stack.wait_secret_data(NAMESPACE, SECRET, &seeded(), READY_TIMEOUT).await.expect("seeded values synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_fargate_parameter_store_example_applies_replans_empty_and_syncs() {
    let stack = Stack::start(StackOptions { gcp: false, ..StackOptions::default() }).await.expect("stack");
    for (_, parameter, _, value) in SEED {
        stack.put_parameter(parameter, value).await.expect("seed parameter");
    }
    stack.ensure_namespace(NAMESPACE).await.expect("namespace");
    let vars = BTreeMap::from([
        ("cluster_name", "e2e".to_string()),
        ("cluster_oidc_issuer_url", stack.issuer().to_string()),
        ("region", stack.aws_region().to_string()),
        ("namespace", NAMESPACE.to_string()),
        ("aws_endpoint", stack.moto_endpoint().expect("moto")),
    ]);
    apply_and_replan(&stack, TfVersion::V1_15_5, "eks-fargate-parameter-store", vars).await;
    expect_synced(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gke_autopilot_secret_manager_example_applies_replans_empty_and_syncs() {
    let stack = Stack::start(StackOptions { aws: false, ..StackOptions::default() }).await.expect("stack");
    for (_, _, secret, value) in SEED {
        stack.seed_secret(secret, &[value.as_bytes()]).expect("seed secret");
    }
    stack.ensure_namespace(NAMESPACE).await.expect("namespace");
    let vars = BTreeMap::from([
        ("project", stack.gcp_project().to_string()),
        ("namespace", NAMESPACE.to_string()),
        ("gcp_endpoint", stack.gcp_endpoint().expect("gcp endpoint")),
        ("gcp_access_token", stack.gcp().expect("gcp").admin_token().to_string()),
    ]);
    apply_and_replan(&stack, TfVersion::V1_15_5, "gke-autopilot-secret-manager", vars).await;
    expect_synced(&stack).await;
}

/// The oldest supported CLI runs the modules (through `local/`) too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_example_applies_and_replans_empty_on_terraform_1_0_3() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    seed_clouds(&stack).await.expect("seed");
    for namespace in [secretbridge_e2e::AWS_NAMESPACE, secretbridge_e2e::GCP_NAMESPACE] {
        stack.ensure_namespace(namespace).await.expect("namespace");
    }
    let mut run = example_terraform(TfVersion::V1_0_3, &crate::provider(), "local").expect("terraform set-up");
    secretbridge_e2e::local_variables(&mut run, &stack).expect("variables");
    blocking(move || -> Result<(), secretbridge_e2e::DemoError> {
        run.init()?;
        run.apply()?;
        run.expect_empty_plan()
    })
    .await
    .expect("terraform task")
    .unwrap_or_else(|e| panic!("local on terraform 1.0.3: {e}"));
}
