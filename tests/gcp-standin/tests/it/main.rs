//! Integration tests of the GCP stand-in, driven with the official Google Cloud
//! Rust clients over loopback.

mod common;
mod drongo;
mod iam_admin;
mod kube_issuer;
mod metadata_server;
mod secret_manager;
mod workload_identity;
