//! Integration tests of the controller: the deploy manifests as rendered by
//! `kubectl kustomize`, and (with the stack) the controller process itself.

mod deploy;
mod gcp_sync;
mod ha;
mod metrics;
mod process;
mod rbac;
mod security;
