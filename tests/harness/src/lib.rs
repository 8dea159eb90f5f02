//! Test harness: starts moto, the stand-ins and real terraform on loopback.
//!
//! Every integration test in the workspace goes through this crate, so that
//! each external program is started one way, on a free 127.0.0.1 port, with
//! its log kept for failures, and stopped (with its children) afterwards.
//! The tools come from `.tools/`, installed by `make setup`
//! (`scripts/setup.sh`); when one is missing the error says to run it.
//!
//! | need | use |
//! |---|---|
//! | AWS (IAM, STS, SSM, Secrets Manager, KMS) | [`Moto`] |
//! | GCP Secret Manager reference behaviour | [`Drongo`] |
//! | Terraform 1.0.3 and 1.15.5 | [`Terraform`], [`TfVersion::all`] |
//! | the provider binary, freshly built | [`provider_binary`], [`workspace_bin`] |
//! | ports and readiness | [`free_port`], [`wait_for_tcp`], [`http_request`] |
//!
//! Use it from any crate as a dev-dependency
//! (`secretbridge-harness.workspace = true` under `[dev-dependencies]`).
//! `cargo run -p secretbridge-harness --bin secretbridge-tools` lists what is
//! installed. For debugging: `SECRETBRIDGE_TEST_TF_LOG=trace` turns on
//! `TF_LOG` for every terraform run, `SECRETBRIDGE_TEST_KEEP_TMP=1` keeps the
//! terraform working directories, and [`Moto::log_path`] has moto's request log.
//!
//! A typical acceptance test, in the style of terraform-plugin-testing:
//!
//! ```no_run
//! use secretbridge_harness::{Moto, Terraform, TfVersion, provider_binary};
//!
//! let moto = Moto::start()?;
//! let provider = provider_binary()?;
//! for version in TfVersion::all() {
//!     let tf = Terraform::new(version)?
//!         .with_filesystem_mirror(&provider, "0.1.0")?
//!         .with_env("AWS_ENDPOINT_URL", moto.endpoint());
//!     tf.write_config(r#"resource "secretbridge_aws_irsa_role" "app" { /* ... */ }"#)?;
//!     tf.init()?;
//!     tf.apply()?;
//!     tf.expect_empty_plan()?; // a second plan after apply must be empty
//!     let state = tf.state_json()?;
//!     # drop(state);
//!     tf.destroy()?;
//!     moto.reset()?;
//! }
//! # Ok::<(), secretbridge_harness::HarnessError>(())
//! ```
//!
//! # Stand-ins (built elsewhere)
//!
//! Our own servers for what no emulator covers live in their own crates and
//! are started through them, not re-implemented here:
//! * `tests/aws-guard` (crate `aws-guard`): sits in front of [`Moto`] and
//!   checks web-identity tokens, trust policies and resource-level access;
//! * `tests/gcp-standin` (crate `gcp-standin`): GCP IAM, Resource Manager,
//!   Secret Manager and token exchange, compared against [`Drongo`] for Secret
//!   Manager;
//! * `tests/kube-standin` (crate `kube-standin`): the Kubernetes API server
//!   (or a real cluster when `SECRETBRIDGE_TEST_KUBECONFIG` is set).
//!
//! When one of them runs as a separate process, start it with
//! [`workspace_bin`] plus [`free_port`]/[`wait_for_tcp`], the same way
//! [`Moto`] is started, and add its starter as a module of this crate.

mod emulators;
mod error;
mod net;
mod paths;
mod process;
mod terraform;
mod workspace_bin;

pub use emulators::{Drongo, Moto};
pub use error::{HarnessError, Result};
pub use net::{HttpResponse, free_port, http_request, wait_for_tcp};
pub use paths::{repo_root, tools_dir};
pub use terraform::{
    PROVIDER_BINARY, PROVIDER_SOURCE, Terraform, TfOutput, TfVersion, lay_out_filesystem_mirror,
};
pub use workspace_bin::{PREBUILT_BIN_DIR_ENV, provider_binary, try_workspace_bin, workspace_bin};
