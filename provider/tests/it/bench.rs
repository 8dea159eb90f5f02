//! A measurement for `make bench` (ignored in `make test`): a no-op
//! `terraform plan` of 50 resources against the same configuration built
//! from Terraform's built-in provider, on both CLIs. Printed, never asserted.
//! (The provider's start-to-handshake time and per-RPC overhead are timed by
//! the `secretbridge-bench` driver itself, in `bench/src/provider_rpc.rs`, so
//! that the client side is a release build too.)
//!
//! Each measurement prints a `bench ...` line; when `SECRETBRIDGE_BENCH_RECORDS`
//! names a file, it also appends one JSON object per figure to it (the
//! driver reads them into its table). They time the provider binary that
//! `crate::support::provider_bin` names: `make bench` points
//! `SECRETBRIDGE_PREBUILT_BIN_DIR` at its release-built copy. Run alone,
//! after `make bench` has built it, with
//! `SECRETBRIDGE_PREBUILT_BIN_DIR=target/bench-bin cargo test --workspace --test it -- --ignored --nocapture --test-threads=1 bench_`.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::acceptance::Workdir;

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
