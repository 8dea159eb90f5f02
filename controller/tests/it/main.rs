//! Integration tests: the controller binary as a process against the loopback
//! stack (`secretbridge-stack`: the kube stand-in, moto behind the AWS guard,
//! the GCP stand-in); `convert` as a user runs it; and the generated CRD and
//! flag references under `docs/`. One test binary for the crate; modules by topic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backends;
mod coalescing;
mod convert_cli;
mod docs;
mod faults;
mod seed;
mod support;
