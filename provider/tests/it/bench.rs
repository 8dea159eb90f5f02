//! Measurements for `make bench` (ignored in `make test`): the provider's
//! start-to-handshake time, per-RPC overhead from a gRPC client talking to
//! the real binary the way Terraform does, and a no-op `terraform plan` of
//! 50 resources against the same configuration built from Terraform's
//! built-in provider, on both CLIs. Printed, never asserted.
//!
//! Each measurement prints a `bench ...` line; when `SECRETBRIDGE_BENCH_RECORDS`
//! names a file, it also appends one JSON object per figure to it (the
//! `secretbridge-bench` driver reads them into its table). They time the
//! provider binary that `crate::support::provider_bin` names: `make bench`
//! points `SECRETBRIDGE_PREBUILT_BIN_DIR` at its release-built copy. Run alone,
//! after `make bench` has built it, with
//! `SECRETBRIDGE_PREBUILT_BIN_DIR=target/bench-bin cargo test --workspace --test it -- --ignored --nocapture --test-threads=1 bench_`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use terraform_provider_secretbridge::plugin::proto::go_plugin::{Empty, grpc_controller_client::GrpcControllerClient};
use terraform_provider_secretbridge::plugin::proto::tfplugin6::{self as pb, provider_client::ProviderClient};
use terraform_provider_secretbridge::plugin::serve::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use terraform_provider_secretbridge::plugin::value::{Type, Value};
use terraform_provider_secretbridge::resources::test_object::ENABLE_ENV;

use crate::acceptance::Workdir;
use crate::rpc::block_type;
use crate::support::{dv, obj, s};

/// Resources in the no-op plan comparison.
const PLAN_RESOURCES: usize = 50;
/// Timed plans per configuration (the median is reported).
const PLAN_RUNS: usize = 5;

/// Appends one figure to the driver's record file, if one is set.
fn record(name: &str, value: f64, unit: &str, note: &str) {
    let Some(path) = std::env::var_os("SECRETBRIDGE_BENCH_RECORDS") else { return };
    let line = serde_json::json!({ "group": "provider", "name": name, "value": value, "unit": unit, "note": note });
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open bench records");
    writeln!(file, "{line}").expect("write bench record");
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The provider binary started the way Terraform starts it, up to its
/// handshake line.
struct Started {
    child: Child,
    addr: String,
    handshake: Duration,
}

fn start_binary(object_dir: &std::path::Path) -> Started {
    let start = Instant::now();
    let mut child = Command::new(crate::support::provider_bin())
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .env(ENABLE_ENV, "1")
        .env("SECRETBRIDGE_TEST_OBJECT_DIR", object_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn provider");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read handshake");
    let handshake = start.elapsed();
    let addr = line.trim_end().split('|').nth(3).expect("handshake address").to_owned();
    Started { child, addr, handshake }
}

async fn stop_binary(mut started: Started, channel: tonic::transport::Channel) {
    GrpcControllerClient::new(channel).shutdown(Empty {}).await.expect("shutdown");
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "provider did not exit after Shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by make bench"]
async fn bench_provider_start_to_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = 20;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = start_binary(dir.path());
        samples.push(started.handshake);
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", started.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        stop_binary(started, channel).await;
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!("bench provider_start_to_handshake: p50 {p50:?}, max {p99:?} ({runs} starts)");
    record("start to handshake p50", p50.as_secs_f64() * 1e3, "ms", &format!("{runs} starts of the release binary; max {:.1} ms", p99.as_secs_f64() * 1e3));
}

/// Times `rounds` sequential calls of one RPC and reports p50/p99 in µs.
async fn time_rpc<F, Fut>(label: &str, rounds: usize, mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Warm up the connection and the allocator.
    for _ in 0..20 {
        call().await;
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        call().await;
        samples.push(start.elapsed());
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("bench provider_rpc {label}: p50 {:.0} us, p99 {:.0} us ({rounds} calls)", us(p50), us(p99));
    record(&format!("RPC {label} p50"), us(p50), "us", &format!("p99 {:.0} us over {rounds} sequential calls to the release binary", us(p99)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by make bench"]
async fn bench_provider_rpc_overhead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = start_binary(dir.path());
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", started.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let client = ProviderClient::new(channel.clone());
    let schema = client
        .clone()
        .get_provider_schema(pb::get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner();
    let block = schema.resource_schemas["secretbridge_test_object"].block.clone().expect("test object block");
    let ty: Type = block_type(&block);
    let config = obj(&[("name", s("bench")), ("content", s("c")), ("secret", s("hunter2")), ("owner", obj(&[("team", s("core"))]))]);
    let rounds = 2000;

    time_rpc("GetProviderSchema", rounds / 4, || {
        let mut client = client.clone();
        async move {
            client.get_provider_schema(pb::get_provider_schema::Request {}).await.expect("schema");
        }
    })
    .await;
    time_rpc("ValidateResourceConfig", rounds, || {
        let (mut client, config) = (client.clone(), dv(&config, &ty));
        async move {
            let resp = client
                .validate_resource_config(pb::validate_resource_config::Request {
                    type_name: "secretbridge_test_object".into(),
                    config,
                    client_capabilities: None,
                })
                .await
                .expect("validate")
                .into_inner();
            assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        }
    })
    .await;
    time_rpc("PlanResourceChange", rounds, || {
        let (mut client, prior, proposed, config) = (client.clone(), dv(&Value::Null, &ty), dv(&config, &ty), dv(&config, &ty));
        async move {
            let resp = client
                .plan_resource_change(pb::plan_resource_change::Request {
                    type_name: "secretbridge_test_object".into(),
                    prior_state: prior,
                    proposed_new_state: proposed,
                    config,
                    ..Default::default()
                })
                .await
                .expect("plan")
                .into_inner();
            assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        }
    })
    .await;
    stop_binary(started, channel).await;
}

/// 50 of our test resources (file-backed, no network), or the same data in
/// Terraform's built-in provider: `terraform_data` on CLIs that have it
/// (1.4+), `terraform_remote_state` data sources reading a local state on
/// 1.0.3, which predates `terraform_data`.
fn builtin_config(version: &str) -> String {
    if version == "1.0.3" {
        (0..PLAN_RESOURCES)
            .map(|i| format!("data \"terraform_remote_state\" \"o{i}\" {{\n  backend = \"local\"\n  config = {{ path = \"empty.tfstate\" }}\n  defaults = {{ name = \"obj-{i}\", content = \"c{i}\", owner = {{ team = \"core\" }} }}\n}}\n"))
            .collect()
    } else {
        (0..PLAN_RESOURCES)
            .map(|i| format!("resource \"terraform_data\" \"o{i}\" {{\n  input = {{ name = \"obj-{i}\", content = \"c{i}\", owner = {{ team = \"core\" }} }}\n}}\n"))
            .collect()
    }
}

fn timed_noop_plan(w: &Workdir) -> Duration {
    let start = Instant::now();
    let (changes, plan) = w.plan_has_changes();
    let elapsed = start.elapsed();
    assert!(!changes, "no-op plan expected:\n{plan}");
    elapsed
}

fn noop_plan_ratio(version: &str) {
    let ours = Workdir::new(version);
    // `owner` (a block) is set so that both configurations carry the same data.
    let body: String = (0..PLAN_RESOURCES)
        .map(|i| {
            format!(
                "resource \"secretbridge_test_object\" \"o{i}\" {{\n  name    = \"obj-{i}\"\n  content = \"c{i}\"\n  owner {{\n    team = \"core\"\n  }}\n}}\n"
            )
        })
        .collect();
    ours.write_config(&body);
    ours.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);

    let base = Workdir::new(version);
    // Built-in provider only: no provider block, nothing else to start.
    std::fs::write(base.work().join("main.tf"), builtin_config(version)).expect("write main.tf");
    std::fs::write(
        base.work().join("empty.tfstate"),
        "{\"version\": 4, \"terraform_version\": \"1.0.3\", \"serial\": 1, \"lineage\": \"bench\", \"outputs\": {}, \"resources\": []}\n",
    )
    .expect("write empty state");
    base.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);

    // One untimed plan each warms the page cache, then alternate so load
    // changes on a shared machine hit both sides alike.
    timed_noop_plan(&ours);
    timed_noop_plan(&base);
    let (mut ours_samples, mut base_samples) = (Vec::new(), Vec::new());
    for _ in 0..PLAN_RUNS {
        ours_samples.push(timed_noop_plan(&ours));
        base_samples.push(timed_noop_plan(&base));
    }
    let (ours_time, base_time) = (median(&mut ours_samples), median(&mut base_samples));
    let ratio = ours_time.as_secs_f64() / base_time.as_secs_f64();
    let baseline = if version == "1.0.3" { "terraform_remote_state (local)" } else { "terraform_data" };
    println!(
        "bench noop_plan {version}: secretbridge_test_object x{PLAN_RESOURCES} {ours_time:?}, {baseline} x{PLAN_RESOURCES} {base_time:?}, ratio {ratio:.2} (median of {PLAN_RUNS}, alternating)"
    );
    record(
        &format!("no-op plan ratio, terraform {version}"),
        ratio,
        "x",
        &format!(
            "{PLAN_RESOURCES} resources: ours {:.0} ms vs {baseline} {:.0} ms, medians of {PLAN_RUNS} alternating runs",
            ours_time.as_secs_f64() * 1e3,
            base_time.as_secs_f64() * 1e3
        ),
    );
}

#[test]
#[ignore = "benchmark: run by make bench"]
fn bench_noop_plan_ratio_terraform_1_15_5() {
    noop_plan_ratio("1.15.5");
}

#[test]
#[ignore = "benchmark: run by make bench"]
fn bench_noop_plan_ratio_terraform_1_0_3() {
    noop_plan_ratio("1.0.3");
}
