//! Integration tests: a real moto server, a loopback HTTPS OIDC issuer, the
//! guard in between, and the Rust AWS SDK's normal clients and credential chain.

#![allow(clippy::unwrap_used)]

mod assume_role;
mod data_calls;
mod faults;
mod kube_tokens;
mod support;
mod web_identity;
