//! The provider's benchmarks live beside its integration tests
//! (`provider/tests/it/bench.rs`, ignored `bench_*` tests) because they use
//! its test helpers; this runs them from the `make test` build and reads the
//! figures they append to a record file. They time the release-built
//! provider binary named by `SECRETBRIDGE_PREBUILT_BIN_DIR`; only their
//! client side (Terraform for the plans, a gRPC client for the RPCs) comes
//! from the debug test build.

use std::path::Path;
use std::process::Command;

use crate::error::BenchError;
use crate::report::Row;

/// Anchors the recorded figures are compared with (the driver's own RPC and
/// start figures carry theirs, from `provider_rpc`).
fn anchor(name: &str) -> &'static str {
    if name.starts_with("RPC") {
        crate::provider_rpc::ANCHOR_RPC
    } else if name.starts_with("no-op plan") {
        "1.00 = as fast as Terraform's built-in provider"
    } else {
        crate::provider_rpc::ANCHOR_START
    }
}

/// Runs `cargo test --workspace --test it ... bench_`, the shape of `make
/// test`'s build (so it finds it fresh after `make setup`), and turns the
/// provider's records into rows. The rows of the benchmarks that passed are kept
/// when another one fails; the failure comes back beside them.
pub fn run(scratch: &Path) -> (Vec<Row>, Option<BenchError>) {
    match run_benches(scratch) {
        Ok((rows, failure)) => (rows, failure),
        Err(error) => (Vec::new(), Some(error)),
    }
}

fn run_benches(scratch: &Path) -> Result<(Vec<Row>, Option<BenchError>), BenchError> {
    let records = scratch.join("provider-records.jsonl");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(secretbridge_harness::repo_root())
        .args(["test", "--workspace", "--locked", "--test", "it", "--"])
        // One at a time: they measure, so they must not compete with each other.
        .args(["--ignored", "--nocapture", "--test-threads=1", "bench_"])
        .env("SECRETBRIDGE_BENCH_RECORDS", &records);
    let program = format!("{command:?}");
    println!("running the provider benchmarks: {program}");
    let status = command.status().map_err(|source| BenchError::Spawn { program, source })?;
    let failure = (!status.success()).then(|| BenchError::ProviderBenches { status: status.to_string() });
    let text = match std::fs::read_to_string(&records) {
        Ok(text) => text,
        // No benchmark got as far as recording: report why it failed.
        Err(_) if failure.is_some() => String::new(),
        Err(source) => return Err(BenchError::File { action: "reading", path: records.clone(), source }),
    };
    Ok((parse_records(&text), failure))
}

/// One row per JSON record line; lines that do not parse are skipped.
fn parse_records(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|record| {
            let name = record["name"].as_str().unwrap_or("?").to_string();
            let value = record["value"].as_f64().unwrap_or(f64::NAN);
            let unit = record["unit"].as_str().unwrap_or("");
            let value = match unit {
                "x" => format!("{value:.2}x"),
                "us" => format!("{value:.0} µs"),
                "ms" => format!("{value:.1} ms"),
                other => format!("{value:.3} {other}"),
            };
            let note = record["note"].as_str().unwrap_or("");
            Row::new("provider", name.clone(), value, format!("{} ({note})", anchor(&name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_rows_with_units_and_anchors() {
        let text = "{\"group\":\"provider\",\"name\":\"RPC PlanResourceChange p50\",\"value\":123.4,\"unit\":\"us\",\"note\":\"p99 300 us\"}\n\
not json\n\
{\"group\":\"provider\",\"name\":\"no-op plan ratio, terraform 1.15.5\",\"value\":1.234,\"unit\":\"x\",\"note\":\"n\"}\n";
        let rows = parse_records(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].value, "123 µs");
        assert!(rows[0].anchor.starts_with("tf-provider 0.2.2"), "{:?}", rows[0]);
        assert_eq!(rows[1].value, "1.23x");
    }
}
