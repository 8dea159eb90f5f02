//! Integration tests of the controller: the binary as a process against the
//! loopback stack (`secretbridge-stack`: the kube stand-in, moto behind the
//! AWS guard, the GCP stand-in) or the stand-ins directly, the deploy
//! manifests as rendered by `kubectl kustomize`, `convert` as a user runs
//! it, and the generated CRD and flag references under `docs/`. One test binary for the
//! crate; modules by topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aws_chain;
mod backends;
mod coalescing;
mod convert_cli;
mod deploy;
mod docs;
mod faults;
mod gcp_adc;
mod gcp_sync;
mod ha;
mod malformed;
mod metrics;
mod monitoring;
mod process;
mod rbac;
mod security;
mod seed;
mod support;
mod tenants;
