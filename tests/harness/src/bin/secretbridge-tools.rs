//! Reports which test tools `make setup` installed and where, and exits
//! non-zero when one is missing: a quick check before running the tests.

use std::process::ExitCode;

use secretbridge_harness::{TfVersion, tools_dir};

fn main() -> ExitCode {
    println!("tools: {}", tools_dir().display());
    let mut missing = 0;
    for version in TfVersion::all() {
        match version.binary() {
            Ok(path) => println!("terraform {version}: {}", path.display()),
            Err(error) => {
                missing += 1;
                println!("terraform {version}: {error}");
            }
        }
    }
    for (name, relative) in [
        ("moto", "venv-moto/bin/moto_server"),
        ("drongo", "venv-drongo/bin/drongo"),
    ] {
        let path = tools_dir().join(relative);
        if path.is_file() {
            println!("{name}: {}", path.display());
        } else {
            missing += 1;
            println!("{name}: missing at {}: run `make setup`", path.display());
        }
    }
    if missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
