//! Integration tests of the controller: the binary as a process against the
//! loopback stack (`secretbridge-stack`: the kube stand-in, moto behind the
//! AWS guard, the GCP stand-in) or the stand-ins directly, and the deploy
//! manifests as rendered by `kubectl kustomize`. One test binary for the
//! crate; modules by topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod coalescing;
mod deploy;
mod faults;
mod gcp_sync;
mod ha;
mod metrics;
mod process;
mod rbac;
mod security;
mod seed;
mod support;
