//! The binary itself: a helpful message by hand, the go-plugin handshake
//! line and a clean shutdown when started the way Terraform starts it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terraform_provider_secretbridge::plugin::proto::go_plugin::{Empty, grpc_controller_client::GrpcControllerClient};
use terraform_provider_secretbridge::plugin::proto::health::{HealthCheckRequest, health_client::HealthClient};
use terraform_provider_secretbridge::plugin::proto::tfplugin6::{get_provider_schema, provider_client::ProviderClient};
use terraform_provider_secretbridge::plugin::serve::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-secretbridge");

#[test]
fn running_by_hand_prints_a_helpful_message() {
    let out = Command::new(BIN).env_remove(MAGIC_COOKIE_KEY).output().expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugin for Terraform and is not meant to be run directly"), "{stderr}");
    assert!(stderr.contains("dev_overrides"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: no handshake");
}

#[test]
fn refuses_protocol_five_only() {
    let out = Command::new(BIN)
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("speaks only version 6"));
}

#[tokio::test]
async fn handshake_line_then_grpc_then_controller_shutdown() {
    let mut child = Command::new(BIN)
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn provider");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read handshake");
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 6, "{line:?}");
    assert_eq!(&parts[..3], ["1", "6", "tcp"]);
    assert!(parts[3].starts_with("127.0.0.1:"));
    assert_eq!(parts[4], "grpc");
    assert_eq!(parts[5], "", "no certificate without PLUGIN_CLIENT_CERT");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", parts[3]))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let health = HealthClient::new(channel.clone()).check(HealthCheckRequest { service: "plugin".into() }).await.expect("health");
    assert_eq!(health.into_inner().status, 1);
    let schema = ProviderClient::new(channel.clone())
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner();
    assert!(schema.provider.is_some());
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.expect("shutdown");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "clean exit: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "provider did not exit after Shutdown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Terraform that dies without calling Shutdown must not leave the
/// provider running (and holding the pipes of whoever started Terraform):
/// a shell stands in for Terraform, starts the provider and exits.
#[test]
fn exits_when_terraform_dies_without_stopping_it() {
    let script = format!("'{BIN}' > /dev/null 2>&1 & echo $!; sleep 1");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .output()
        .expect("run sh");
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("provider pid");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    // Generous: the provider checks its parent every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_dir.exists() && Instant::now() < deadline {
        // A zombie (exited, not yet reaped by init) counts as gone.
        if std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive = proc_dir.exists() && !std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"));
    if alive {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(!alive, "the orphaned provider (pid {pid}) kept running");
}
