//! In-cluster controller that syncs cloud secrets into Kubernetes Secrets.
//!
//! The pure decisions (property paths, decoding, templates, the desired
//! Secret, refresh scheduling, store resolution) live in their own modules
//! and are unit-tested beside the code; cloud backends sit behind narrow
//! traits in [`backend`] with fakes beside them.

pub mod convert;
pub mod credentials;
pub mod decode;
pub mod desired;
pub mod endpoints;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod fuzz;
pub mod leader;
pub mod metrics;
pub mod property;
pub mod reconcile;
pub mod resolve;
pub mod runner;
pub mod schedule;
pub mod store_status;
pub mod template;
pub mod backend;
