//! The reference article's manifests, written for ESO (v1alpha1), converted by
//! `secretbridge-controller convert`, applied to the stand-in and synced by
//! the controller from moto (through the guard) and the GCP stand-in.

use secretbridge_e2e::{READY_TIMEOUT, SEED, seed_clouds};
use secretbridge_harness::repo_root;
use secretbridge_stack::{ControllerOptions, Stack, StackOptions};
use serde::Deserialize;
use serde_json::Value;

const SERVICE_ACCOUNT: &str = "multicloud-app";
const SECRET: &str = "multicloud-db-info";
/// The article runs the GCP half in its own cluster; here it gets its own
/// namespace so its ExternalSecret does not collide with the AWS one.
const GCP_NAMESPACE: &str = "multicloud-gcp";

fn convert(files: &[&str]) -> Vec<Value> {
    let seed = repo_root().join("shared/tests/fixtures/seed");
    let output = std::process::Command::new(crate::controller_binary())
        .arg("convert")
        .args(files.iter().map(|f| seed.join(f)))
        .output()
        .expect("convert runs");
    assert!(output.status.success(), "convert failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).expect("yaml")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_article_manifests_apply_and_sync() {
    let mut documents = convert(&["aws-parameter-store.yaml", "gcp-secret-manager.yaml"]);
    assert_eq!(documents.len(), 4);
    // Move the GCP half to its own namespace (see GCP_NAMESPACE).
    documents[2]["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]["serviceAccountRef"]["namespace"] = Value::from(GCP_NAMESPACE);
    documents[3]["metadata"]["namespace"] = Value::from(GCP_NAMESPACE);

    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    seed_clouds(&stack).await.expect("seed");
    let aws_namespace = documents[0]["metadata"]["namespace"].as_str().expect("namespace").to_string();
    for namespace in [aws_namespace.as_str(), GCP_NAMESPACE] {
        stack.ensure_namespace(namespace).await.expect("namespace");
    }
    // The fifth document of the article: the annotated ServiceAccount (here
    // one per cloud), with the IAM the article sets up by hand.
    stack.create_oidc_provider().await.expect("OIDC provider");
    let parameters: Vec<&str> = SEED.iter().map(|(_, parameter, _, _)| *parameter).collect();
    let role = stack.create_irsa_role("multicloud-app", &aws_namespace, SERVICE_ACCOUNT, &parameters, &[]).await.expect("IRSA role");
    stack
        .create_service_account(&aws_namespace, SERVICE_ACCOUNT, &[(secretbridge_shared::names::AWS_ROLE_ARN_ANNOTATION, &role)])
        .await
        .expect("AWS ServiceAccount");
    let gsa = stack.create_gsa("multicloud-app").expect("GSA");
    stack.grant_workload_identity_user(&gsa, GCP_NAMESPACE, SERVICE_ACCOUNT).expect("WI binding");
    for (_, _, secret, _) in SEED {
        stack.grant_secret_accessor(secret, &format!("serviceAccount:{gsa}")).expect("accessor");
    }
    stack
        .create_service_account(GCP_NAMESPACE, SERVICE_ACCOUNT, &[(secretbridge_shared::names::GCP_SERVICE_ACCOUNT_ANNOTATION, &gsa)])
        .await
        .expect("GCP ServiceAccount");

    for document in &documents {
        stack.apply_value(document, None).await.unwrap_or_else(|e| panic!("applying {document}: {e}"));
    }
    let controller = stack.start_controller(ControllerOptions::new(crate::controller_binary())).await.expect("controller");
    let expected: Vec<(&str, &str)> = SEED.iter().map(|(key, _, _, value)| (*key, *value)).collect();
    for namespace in [aws_namespace.as_str(), GCP_NAMESPACE] {
        if let Err(e) = stack.wait_ready(namespace, SECRET, READY_TIMEOUT).await {
            panic!("{namespace}/{SECRET} not Ready: {e}\ncontroller log:\n{}", controller.log_tail());
        }
        stack.wait_secret_data(namespace, SECRET, &expected, READY_TIMEOUT).await.expect("seeded values synced");
    }
}
