//! The harness's own integration tests: real moto, drongo and terraform.

#![allow(clippy::unwrap_used)]

mod emulators;
mod terraform;
mod tools;
