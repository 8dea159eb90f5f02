//! `secretbridge-controller convert` as a user runs it: files or stdin in,
//! YAML on stdout, problems on stderr with a non-zero exit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn controller() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secretbridge-controller"))
}

fn seed(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/fixtures/seed").join(file)
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = controller()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("controller starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("controller exits")
}

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml).map(|d| serde_json::Value::deserialize(d).expect("yaml document")).collect()
}

#[test]
fn convert_reads_files_and_writes_secretbridge_manifests() {
    let output = controller()
        .arg("convert")
        .arg(seed("aws-parameter-store.yaml"))
        .arg(seed("gcp-secret-manager.yaml"))
        .output()
        .expect("convert runs");
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty());
    let docs = documents(&String::from_utf8_lossy(&output.stdout));
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["SecretStore", "ExternalSecret", "ClusterSecretStore", "ExternalSecret"]);
    assert!(docs.iter().all(|d| d["apiVersion"] == "secretbridge.io/v1"));
    assert_eq!(docs[2]["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]["clusterName"], "multicloud-autopilot");
}

#[test]
fn convert_reads_stdin_when_no_file_is_given() {
    let text = std::fs::read_to_string(seed("aws-parameter-store.yaml")).expect("seed");
    let text = text.replace("external-secrets.io/v1alpha1", "external-secrets.io/v1beta1");
    let output = run_with_stdin(&["convert"], &text);
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let docs = documents(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["spec"]["data"][2]["remoteRef"]["key"], "/multicloud/db/password");
}

#[test]
fn convert_unsupported_field_exits_non_zero_and_writes_nothing() {
    let manifest = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: vault, namespace: team}\nspec:\n  provider:\n    vault: {server: 'https://vault:8200'}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: ok, namespace: team}\nspec:\n  secretStoreRef: {name: vault}\n  data: [{secretKey: a, remoteRef: {key: a}}]\n";
    let output = run_with_stdin(&["convert"], manifest);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "a partial conversion was written: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("<stdin>: document 1 (SecretStore team/vault): spec.provider.vault: provider not supported by secretbridge (supported: aws, gcpsm)"),
        "{stderr}"
    );
}

#[test]
fn convert_missing_file_says_which() {
    let output = controller().args(["convert", "/nonexistent/eso.yaml"]).output().expect("convert runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reading /nonexistent/eso.yaml failed"));
}
