//! `terraform-provider-secretbridge`: started by Terraform, never by hand.

use std::process::ExitCode;

use terraform_provider_secretbridge::plugin::serve::{ServeError, serve_from_env};
use terraform_provider_secretbridge::{provider, test_resources_enabled};

fn main() -> ExitCode {
    // A panic is a provider bug: one line on stderr (Terraform's log), no
    // backtrace; the RPC that hit it answers with an error diagnostic.
    std::panic::set_hook(Box::new(|info| eprintln!("terraform-provider-secretbridge internal error: {info}")));
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match provider(test_resources_enabled()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("Error: build the provider schema: {e}");
                return ExitCode::FAILURE;
            }
        };
        match serve_from_env(server).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ ServeError::NotStartedByTerraform) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                let mut message = format!("Error: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message.push_str(&format!(": {s}"));
                    source = s.source();
                }
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        }
    })
}
