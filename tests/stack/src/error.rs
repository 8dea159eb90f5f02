//! Why starting or driving the stack failed.

use std::path::PathBuf;
use std::time::Duration;

/// One variant per failed action, with what was being done and what to try.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A part was asked for that [`crate::StackOptions`] left out.
    #[error("the stack was started without {part}; set StackOptions::{option} = true")]
    NotEnabled {
        /// What is missing, e.g. `AWS (moto + guard)`.
        part: &'static str,
        /// The option that enables it.
        option: &'static str,
    },
    /// Starting moto failed (usually: `.tools/` missing).
    #[error("starting moto failed; run `make setup` if .tools/ is missing")]
    StartMoto {
        /// Cause.
        source: secretbridge_harness::HarnessError,
    },
    /// Starting the AWS guard failed.
    #[error("starting the AWS guard in front of moto failed")]
    StartGuard {
        /// Cause.
        source: aws_guard::GuardError,
    },
    /// Starting the GCP stand-in or seeding it failed.
    #[error("{action} on the GCP stand-in failed")]
    Gcp {
        /// What was attempted.
        action: String,
        /// Cause.
        source: gcp_standin::Error,
    },
    /// Starting the Kubernetes stand-in or installing CRDs failed.
    #[error("{action} failed")]
    Cluster {
        /// What was attempted.
        action: String,
        /// Cause.
        source: kube_standin::testing::ClusterError,
    },
    /// A Kubernetes API call failed.
    #[error("{action} failed")]
    Kube {
        /// What was attempted.
        action: String,
        /// Cause.
        source: kube::Error,
    },
    /// An AWS admin call (seeding moto) failed.
    #[error("{action} in moto failed: {message}")]
    Aws {
        /// What was attempted.
        action: String,
        /// The SDK error, with its context.
        message: String,
    },
    /// A management HTTP call (GCP admin REST, controller /metrics) failed.
    #[error("{action} failed: {message}")]
    Http {
        /// What was attempted.
        action: String,
        /// Status and body, or the transport error.
        message: String,
    },
    /// YAML given to `apply_yaml` did not parse or named no kind.
    #[error("parsing manifest document {index} failed: {message}; pass Kubernetes objects with apiVersion, kind and metadata.name")]
    Manifest {
        /// Index of the document (0-based).
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Starting or signalling the controller process failed.
    #[error("{action} for the controller ({binary}) failed")]
    Controller {
        /// What was attempted.
        action: String,
        /// The binary.
        binary: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The controller exited while the stack was waiting for it.
    #[error("the controller exited ({status}) before it served /healthz; log tail:\n{log_tail}")]
    ControllerExited {
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Creating a scratch directory or file failed.
    #[error("{action} failed")]
    Io {
        /// What was attempted.
        action: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Something waited for did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The upper bound.
        timeout: Duration,
        /// The last observed state, to debug with.
        last: String,
    },
}

impl StackError {
    pub(crate) fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> StackError {
        let action = action.into();
        move |source| StackError::Kube { action, source }
    }

    pub(crate) fn aws<E: std::error::Error>(action: impl Into<String>) -> impl FnOnce(E) -> StackError {
        let action = action.into();
        move |error| StackError::Aws { action, message: error_chain(&error) }
    }

    pub(crate) fn gcp(action: impl Into<String>) -> impl FnOnce(gcp_standin::Error) -> StackError {
        let action = action.into();
        move |source| StackError::Gcp { action, source }
    }
}

/// An error and its sources on one line (SDK errors hide the service message in the chain).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
