//! `make demo`: applies `examples-terraform/local` to the loopback stack and
//! prints the two Secrets the controller syncs.
//!
//! usage: secretbridge-demo --controller PATH --provider PATH [--terraform 1.15.5|1.0.3]

use secretbridge_e2e::{DemoOptions, run_demo};
use secretbridge_harness::TfVersion;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: secretbridge-demo --controller PATH --provider PATH [--terraform 1.15.5|1.0.3]";

fn parse(args: &[String]) -> Result<DemoOptions, String> {
    let mut controller = None;
    let mut provider = None;
    let mut terraform = TfVersion::V1_15_5;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--controller" => controller = Some(PathBuf::from(value()?)),
            "--provider" => provider = Some(PathBuf::from(value()?)),
            "--terraform" => {
                terraform = match value()?.as_str() {
                    "1.15.5" => TfVersion::V1_15_5,
                    "1.0.3" => TfVersion::V1_0_3,
                    other => return Err(format!("--terraform must be 1.15.5 or 1.0.3, got {other}")),
                }
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let missing = |what: &str| format!("{what} is required\n{USAGE}");
    let options = DemoOptions {
        controller_binary: controller.ok_or_else(|| missing("--controller"))?,
        provider_binary: provider.ok_or_else(|| missing("--provider"))?,
        terraform,
    };
    for path in [&options.controller_binary, &options.provider_binary] {
        if !path.is_file() {
            return Err(format!("{} does not exist; run `make setup` (it builds the binaries)", path.display()));
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo: starting the Tokio runtime failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut progress = |line: &str| println!("demo: {line}");
    match runtime.block_on(run_demo(&options, &mut progress)) {
        Ok(secrets) => {
            for secret in secrets {
                println!("\n$ kubectl describe secret -n {} {}", secret.namespace, secret.name);
                print!("{}", secret.describe());
            }
            println!("\ndemo: done; everything it started is stopped.");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}
