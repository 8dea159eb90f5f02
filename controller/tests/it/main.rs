//! End-to-end tests: the controller binary as a process against the loopback
//! stack (`secretbridge-stack`: the kube stand-in, moto behind the AWS guard,
//! the GCP stand-in). One test binary for the crate; modules by topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod coalescing;
mod faults;
mod seed;
mod support;
