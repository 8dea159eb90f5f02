//! Measurements for `make bench` (ignored in `make test`): per-RPC overhead
//! of the provider over gRPC, and the time of a no-op plan with our resource
//! against the same configuration built from `terraform_data`. Printed, not
//! asserted. Run with
//! `cargo test -p terraform-provider-secretbridge --release --test it -- --ignored --nocapture bench_`.

use std::time::{Duration, Instant};

use terraform_provider_secretbridge::plugin::proto::tfplugin6::{get_provider_schema, provider_client::ProviderClient};
use terraform_provider_secretbridge::plugin::serve::serve;

use crate::acceptance::Workdir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by make bench"]
async fn bench_provider_rpc_overhead() {
    let provider = terraform_provider_secretbridge::provider(true).expect("provider");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { serve(listener, None, provider).await });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
    let mut client = ProviderClient::new(channel);
    let rounds = 500u32;
    // Warm up the connection.
    client.get_provider_schema(get_provider_schema::Request {}).await.expect("schema");
    let start = Instant::now();
    for _ in 0..rounds {
        client.get_provider_schema(get_provider_schema::Request {}).await.expect("schema");
    }
    let per_rpc = start.elapsed() / rounds;
    println!("bench provider_rpc_overhead: GetProviderSchema round trip {per_rpc:?} (mean of {rounds})");
    server.abort();
}

fn time_plan(w: &Workdir, runs: u32) -> Duration {
    // First plan warms the page cache and the plugin binary.
    w.plan_has_changes();
    let start = Instant::now();
    for _ in 0..runs {
        let (changes, plan) = w.plan_has_changes();
        assert!(!changes, "{plan}");
    }
    start.elapsed() / runs
}

#[test]
#[ignore = "benchmark: run by make bench"]
fn bench_noop_plan_ratio_against_terraform_data() {
    let count = 10;
    let runs = 5;
    let ours = Workdir::new("1.15.5");
    let body: String = (0..count)
        .map(|i| format!("resource \"secretbridge_test_object\" \"o{i}\" {{\n  name    = \"obj-{i}\"\n  content = \"c{i}\"\n}}\n"))
        .collect();
    ours.write_config(&body);
    ours.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let ours_time = time_plan(&ours, runs);

    let base = Workdir::new("1.15.5");
    let body: String = (0..count)
        .map(|i| format!("resource \"terraform_data\" \"o{i}\" {{\n  input = {{ name = \"obj-{i}\", content = \"c{i}\" }}\n}}\n"))
        .collect();
    // Built-in provider only: no provider block, nothing else to start.
    std::fs::write(base.work().join("main.tf"), body).expect("write main.tf");
    base.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let base_time = time_plan(&base, runs);

    println!(
        "bench noop_plan: secretbridge_test_object x{count} {ours_time:?}, terraform_data x{count} {base_time:?}, ratio {:.2}",
        ours_time.as_secs_f64() / base_time.as_secs_f64()
    );
}
