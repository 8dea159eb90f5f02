//! `secretbridge-bench`: the driver of `make bench`. Runs the provider's
//! benchmarks, the controller's cold-sync, steady-state and scaling
//! scenarios on the loopback stack, prints one table and appends it to
//! `bench/results.md`. Measurements only: nothing here asserts a number.

mod controller;
mod error;
mod metrics;
mod procfs;
mod provider;
mod provider_rpc;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use controller::{Backend, ColdSync, Plan, Steady};
use error::BenchError;
use report::{Machine, Row, mib, secs};

/// What to run, from the command line.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    sizes: Vec<usize>,
    backends: Vec<Backend>,
    steady_n: Option<usize>,
    steady_minutes: u64,
    provider: bool,
    controller: bool,
    results: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            // The set: N = 100, 1,000 and 5,000, and a 3-minute
            // steady state (of 1,000 objects).
            sizes: vec![100, 1000, 5000],
            backends: vec![Backend::Aws, Backend::Gcp],
            steady_n: Some(1000),
            steady_minutes: 3,
            provider: true,
            controller: true,
            results: secretbridge_harness::repo_root().join("bench").join("results.md"),
        }
    }
}

fn parse_args(args: &[String]) -> Result<Options, BenchError> {
    let mut options = Options::default();
    let mut iter = args.iter();
    let number = |flag: &str, text: &str| text.parse::<usize>().map_err(|_| BenchError::Usage(format!("{flag} takes a number, got {text:?}")));
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().cloned().ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")));
        match flag.as_str() {
            "--sizes" => options.sizes = value()?.split(',').map(|s| number("--sizes", s.trim())).collect::<Result<_, _>>()?,
            "--backends" => {
                options.backends = value()?
                    .split(',')
                    .map(|b| match b.trim() {
                        "aws" => Ok(Backend::Aws),
                        "gcp" => Ok(Backend::Gcp),
                        other => Err(BenchError::Usage(format!("--backends takes aws and/or gcp, got {other:?}"))),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--steady-n" => {
                let n = number("--steady-n", &value()?)?;
                options.steady_n = (n > 0).then_some(n);
            }
            "--steady-minutes" => options.steady_minutes = number("--steady-minutes", &value()?)? as u64,
            "--skip-provider" => options.provider = false,
            "--skip-controller" => options.controller = false,
            "--results" => options.results = PathBuf::from(value()?),
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    if options.sizes.contains(&0) {
        return Err(BenchError::Usage("--sizes must be positive".into()));
    }
    Ok(options)
}

fn cold_rows(cold: &ColdSync) -> Vec<Row> {
    let scenario = format!("cold {} N={} K={}", cold.backend.name(), cold.n, cold.k);
    let mut wall = secs(cold.wall.as_secs_f64());
    if cold.ready < cold.n {
        wall.push_str(&format!(" (TIMED OUT: {}/{} Ready)", cold.ready, cold.n));
    }
    let (floor, floor_note) = match cold.backend {
        Backend::Aws => (cold.k.div_ceil(10), "floor ⌈K/10⌉ (GetParameters takes 10 names)"),
        Backend::Gcp => (cold.k, "floor K (AccessSecretVersion reads one secret; no batch API)"),
    };
    vec![
        Row::new(
            &scenario,
            "creation → all Ready",
            wall,
            format!("creates took {}; ESO: 600 ExternalSecrets took ~180 s (user report)", secs(cold.create_wall.as_secs_f64())),
        ),
        Row::new(
            &scenario,
            "per object p50 / p99",
            format!("{} / {}", secs(cold.p50.as_secs_f64()), secs(cold.p99.as_secs_f64())),
            "create answered → Ready seen by a watch",
        ),
        Row::new(
            &scenario,
            "data calls",
            format!("{}", cold.calls.data_calls()),
            format!("{floor_note} = {floor}; ESO: {} (one per key per ExternalSecret)", cold.n),
        ),
        Row::new(&scenario, "auth calls", format!("{}", cold.calls.auth_calls()), format!("ESO: {} (one exchange per sync)", cold.n)),
        Row::new(
            &scenario,
            "peak RSS",
            mib(cold.at_ready.peak_rss_kib),
            format!("idle {}; ESO ~100 MB idle, 0.9–2 GiB at scale", mib(cold.idle.rss_kib)),
        ),
        Row::new(
            &scenario,
            "CPU (user+system)",
            secs(cold.at_ready.cpu_seconds),
            format!("driver + in-process kube stand-in: {}; calls: {}", secs(cold.driver_cpu_seconds), cold.calls.summary()),
        ),
    ]
}

fn steady_rows(steady: &Steady) -> Vec<Row> {
    let minutes = steady.observed.as_secs_f64() / 60.0;
    let scenario = format!("steady {} N={} K={} 1m, {minutes:.1} min", steady.cold.backend.name(), steady.cold.n, steady.cold.k);
    let per_minute = (steady.calls.data_calls() + steady.calls.auth_calls()) / minutes;
    let drift = steady.end.rss_kib as i64 - steady.start.rss_kib as i64;
    let floor = match steady.cold.backend {
        Backend::Aws => steady.cold.k.div_ceil(10),
        Backend::Gcp => steady.cold.k,
    };
    vec![
        Row::new(
            &scenario,
            "calls / minute",
            format!("{per_minute:.1}"),
            format!(
                "data {:.1}/min, auth {:.1}/min; floor {floor}/min; ESO: {}/min ({} data + {} STS)",
                steady.calls.data_calls() / minutes,
                steady.calls.auth_calls() / minutes,
                2 * steady.cold.n,
                steady.cold.n,
                steady.cold.n
            ),
        ),
        Row::new(
            &scenario,
            "RSS drift",
            format!("{:+.1} MiB", drift as f64 / 1024.0),
            format!("{} → {} (max {})", mib(steady.start.rss_kib), mib(steady.end.rss_kib), mib(steady.max_rss_kib)),
        ),
        Row::new(
            &scenario,
            "CPU (user+system)",
            secs(steady.end.cpu_seconds - steady.start.cpu_seconds),
            format!("{:.2} s per minute; calls: {}", (steady.end.cpu_seconds - steady.start.cpu_seconds) / minutes, steady.calls.summary()),
        ),
    ]
}

/// How time and memory grow with N, from the cold runs of one backend.
fn scaling_rows(colds: &[ColdSync]) -> Vec<Row> {
    let complete: Vec<&ColdSync> = colds.iter().filter(|c| c.ready == c.n).collect();
    let (Some(first), true) = (complete.first(), complete.len() >= 2) else { return Vec::new() };
    let scenario = format!("scaling {} N={}", first.backend.name(), complete.iter().map(|c| c.n.to_string()).collect::<Vec<_>>().join("→"));
    let time: Vec<(f64, f64)> = complete.iter().map(|c| (c.n as f64, c.wall.as_secs_f64())).collect();
    let per_object: Vec<String> =
        complete.iter().map(|c| format!("{}: {:.1} ms", c.n, c.wall.as_secs_f64() * 1e3 / c.n as f64)).collect();
    let memory: Vec<(f64, f64)> =
        complete.iter().map(|c| (c.n as f64, c.at_ready.peak_rss_kib.saturating_sub(c.idle.rss_kib) as f64)).collect();
    let memory_levels: Vec<String> = complete.iter().map(|c| format!("{}: {}", c.n, mib(c.at_ready.peak_rss_kib))).collect();
    let cpu: Vec<(f64, f64)> = complete.iter().map(|c| (c.n as f64, c.at_ready.cpu_seconds)).collect();
    let mut rows = Vec::new();
    if let Some(b) = stats::power_law_exponent(&time) {
        rows.push(Row::new(
            &scenario,
            "wall time ∝ N^b",
            format!("b = {b:.2}, {}", stats::growth_verdict(b)),
            format!("per object {}", per_object.join(", ")),
        ));
    }
    if let Some(b) = stats::power_law_exponent(&cpu) {
        rows.push(Row::new(&scenario, "CPU ∝ N^b", format!("b = {b:.2}, {}", stats::growth_verdict(b)), ""));
    }
    if let Some(slope) = stats::linear_slope(&memory) {
        let exponent = stats::power_law_exponent(&memory).map(|b| format!("; (peak − idle) ∝ N^{b:.2}, {}", stats::growth_verdict(b))).unwrap_or_default();
        rows.push(Row::new(
            &scenario,
            "peak RSS per object",
            format!("{slope:.1} KiB"),
            format!("peak {}{exponent}", memory_levels.join(", ")),
        ));
    }
    rows
}

/// The 1-minute load average from `/proc/loadavg`: how busy the machine
/// was, since other work on it slows every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(secretbridge_harness::repo_root())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

async fn run(options: Options) -> Result<(), BenchError> {
    let scratch = tempfile::tempdir().map_err(|source| BenchError::File { action: "creating", path: std::env::temp_dir(), source })?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let began = std::time::Instant::now();
    let load_at_start = load_average();
    if options.provider {
        match secretbridge_harness::provider_binary() {
            Ok(binary) => {
                let (rpc_rows, failure) = provider_rpc::run(&binary, scratch.path()).await;
                rows.extend(rpc_rows);
                failures.extend(failure.map(|error| format!("provider: {error}")));
            }
            Err(error) => failures.push(format!("provider: no binary to time: {error}")),
        }
        let (provider_rows, failure) = provider::run(scratch.path());
        rows.extend(provider_rows);
        failures.extend(failure.map(|error| format!("provider: {error}")));
    }
    if options.controller {
        let binary = secretbridge_harness::try_workspace_bin("secretbridge-controller", "secretbridge-controller")
            .map_err(|source| BenchError::BuildController { source: Box::new(source) })?;
        let plan = Plan {
            sizes: options.sizes.clone(),
            steady_n: options.steady_n,
            steady_for: Duration::from_secs(options.steady_minutes * 60),
        };
        for (index, backend) in options.backends.iter().enumerate() {
            // The steady state runs once, on the first backend, to keep the
            // whole run inside its time budget.
            let plan = Plan { steady_n: if index == 0 { plan.steady_n } else { None }, ..plan.clone() };
            match controller::run(*backend, &plan, &binary).await {
                Ok((colds, steady)) => {
                    rows.extend(colds.iter().flat_map(cold_rows));
                    rows.extend(steady.iter().flat_map(steady_rows));
                    rows.extend(scaling_rows(&colds));
                }
                Err(error) => failures.push(format!("controller {}: {error}: {:?}", backend.name(), std::error::Error::source(&error))),
            }
        }
    }
    let machine = Machine::detect();
    let mut notes = format!(
        "Commit {}; our crates as in release, dependencies from the `make setup` build (opt-level 1, debug assertions on); sizes N={:?} (K=N/2); steady state N={:?} for {} min on {}. Scenarios took {:.0} s; load average (1 min) {} at start, {} at end.",
        git_revision(),
        options.sizes,
        options.steady_n,
        options.steady_minutes,
        options.backends.first().map(|b| b.name()).unwrap_or("none"),
        began.elapsed().as_secs_f64(),
        load_at_start,
        load_average()
    );
    for failure in &failures {
        notes.push_str(&format!("\nFAILED: {failure}"));
    }
    println!("\n{notes}\n\n{}", report::markdown_table(&rows));
    if !rows.is_empty() {
        report::append_results(&options.results, &machine, &notes, &rows)?;
        println!("appended to {}", options.results.display());
    }
    if failures.is_empty() { Ok(()) } else { Err(BenchError::ScenariosFailed(failures.join("\n"))) }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("starting the Tokio runtime failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CallCounts;
    use crate::procfs::ProcSample;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_and_bad_ones_say_why() {
        let options = parse_args(&args(&["--sizes", "10, 20", "--backends", "gcp", "--steady-n", "0", "--skip-provider"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.sizes, vec![10, 20]);
        assert_eq!(options.backends, vec![Backend::Gcp]);
        assert_eq!(options.steady_n, None);
        assert!(!options.provider && options.controller);
        assert!(parse_args(&args(&["--sizes", "x"])).is_err_and(|e| e.to_string().contains("--sizes takes a number")));
        assert!(parse_args(&args(&["--backends", "azure"])).is_err_and(|e| e.to_string().contains("aws and/or gcp")));
        assert!(parse_args(&args(&["--bogus"])).is_err_and(|e| e.to_string().contains("unknown option")));
    }

    fn cold(n: usize, wall_s: f64, peak_kib: u64) -> ColdSync {
        let sample = |rss: u64, cpu: f64| ProcSample { rss_kib: rss, peak_rss_kib: rss, cpu_seconds: cpu };
        ColdSync {
            backend: Backend::Aws,
            n,
            k: n / 2,
            ready: n,
            wall: Duration::from_secs_f64(wall_s),
            create_wall: Duration::from_secs(1),
            p50: Duration::from_millis(100),
            p99: Duration::from_millis(900),
            calls: CallCounts::parse("x_calls_total{provider=\"ssm\",call=\"GetParameters\",status=\"ok\"} 5\n"),
            idle: sample(10_000, 0.1),
            at_ready: sample(peak_kib, n as f64 / 100.0),
            driver_cpu_seconds: 1.0,
        }
    }

    #[test]
    fn scaling_reads_linear_growth_as_linear() {
        let colds = [cold(100, 1.0, 10_000 + 200), cold(1000, 10.0, 10_000 + 2000), cold(5000, 50.0, 10_000 + 10_000)];
        let rows = scaling_rows(&colds);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows[0].value.contains("b = 1.00, linear"), "{rows:?}");
        assert_eq!(rows[2].value, "2.0 KiB");
        // A run that timed out does not enter the fit.
        let mut partial = colds.to_vec();
        partial[2].ready = 10;
        partial[2].wall = Duration::from_secs(500);
        assert!(scaling_rows(&partial)[0].value.contains("b = 1.00"));
        assert!(scaling_rows(&colds[..1]).is_empty());
    }

    #[test]
    fn cold_rows_show_the_floor_and_a_timeout() {
        let mut run = cold(1000, 12.0, 50_000);
        let rows = cold_rows(&run);
        assert!(rows.iter().any(|r| r.figure == "data calls" && r.value == "5" && r.anchor.contains("= 50;")), "{rows:?}");
        run.ready = 999;
        assert!(cold_rows(&run)[0].value.contains("TIMED OUT: 999/1000"));
    }

    /// `make bench` optimises exactly the crates bench/cargo-config.toml
    /// names; a workspace member missing there would be measured unoptimised.
    #[test]
    fn cargo_config_optimises_every_workspace_member() {
        let root = secretbridge_harness::repo_root();
        let read = |path: std::path::PathBuf| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let config = read(root.join("bench/cargo-config.toml"));
        let manifest = read(root.join("Cargo.toml"));
        let members = manifest.split("members = [").nth(1).and_then(|rest| rest.split(']').next()).expect("workspace members");
        let dirs: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
        assert!(dirs.len() >= 10, "{dirs:?}");
        for dir in dirs {
            let package = read(root.join(dir).join("Cargo.toml"));
            let name = package
                .lines()
                .find_map(|line| line.strip_prefix("name = \""))
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or_else(|| panic!("no package name in {dir}/Cargo.toml"));
            assert!(
                config.contains(&format!("[profile.dev.package.{name}]\nopt-level = 3\n")),
                "bench/cargo-config.toml does not optimise workspace member {name}: add a [profile.dev.package.{name}] section like the others"
            );
        }
    }
}
