//! End to end on the loopback stack with real Terraform and the real
//! controller: every folder of `examples-terraform/` is applied and
//! re-planned empty, `make demo`'s core runs, and ESO manifests converted by
//! `secretbridge-controller convert` are applied and synced.

mod convert;
mod demo;
mod examples;

use secretbridge_harness::{provider_binary, workspace_bin};
use std::path::PathBuf;

/// The controller binary (built once per test process).
fn controller_binary() -> PathBuf {
    workspace_bin("secretbridge-controller", "secretbridge-controller")
}

/// The provider binary (built once per test process).
fn provider() -> PathBuf {
    provider_binary().unwrap_or_else(|e| panic!("{e}"))
}
