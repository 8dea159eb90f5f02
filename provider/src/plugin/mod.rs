//! The Terraform plugin layer: tfplugin6 on tonic + prost.
//!
//! - [`serve`]: go-plugin handshake, AutoMTLS, side services, TCP_NODELAY;
//! - [`server`]: the tfplugin6 `Provider` service over registered resources;
//! - [`resource`]: the [`resource::Resource`] trait and generic planning;
//! - [`schema`]: Rust type (schemars) to tfplugin6 schema;
//! - [`value`]: msgpack/JSON codec for Terraform values;
//! - [`diag`]: diagnostics with attribute paths.

pub mod diag;
pub mod proto;
pub mod resource;
pub mod schema;
pub mod serve;
pub mod server;
pub mod value;
