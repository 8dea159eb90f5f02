//! Conformance suite for the kube stand-in. Every assertion follows the documented behaviour of
//! kube-apiserver, so the suite also passes against a real cluster via SECRETBRIDGE_TEST_KUBECONFIG.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod controller;
mod crd;
mod crud;
mod delete;
mod deploy_crds;
mod deploy_rbac;
mod discovery;
mod patch;
mod rbac;
mod secret_types;
mod tokens;
mod watch;
