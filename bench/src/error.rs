//! What can fail in a benchmark run, with what to do about it.

use std::path::PathBuf;

/// A failed step of the benchmark driver.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading a `/proc` file of the measured process failed.
    #[error("reading {path} failed (is the process still running? Linux only)")]
    ReadProc {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected shape.
    #[error("process {pid}: could not parse {what} from /proc")]
    ParseProc {
        /// The process.
        pid: u32,
        /// The field looked for.
        what: String,
    },
    /// Running a program (cargo, nproc) failed to start.
    #[error("running {program} failed: is it installed and on PATH?")]
    Spawn {
        /// The command line.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The provider's bench tests failed.
    #[error("the provider benchmarks failed ({status}); see their output above")]
    ProviderBenches {
        /// Exit status of `cargo test`.
        status: String,
    },
    /// Timing the provider binary's start or RPCs failed.
    #[error("timing the provider binary failed: {reason}")]
    ProviderRpc {
        /// What went wrong, from the driver's gRPC client.
        reason: String,
    },
    /// A record file could not be read or written.
    #[error("{action} {path} failed")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Starting or driving the loopback stack failed.
    #[error("{action} failed")]
    Stack {
        /// What was being done.
        action: String,
        /// The stack's error (says what to try).
        source: Box<secretbridge_stack::StackError>,
    },
    /// A Kubernetes call of the driver failed.
    #[error("{action} failed")]
    Kube {
        /// What was being done.
        action: String,
        /// The client error.
        source: Box<kube::Error>,
    },
    /// Building the release controller binary failed.
    #[error("building the controller binary failed; see cargo's output")]
    BuildController {
        /// The harness error with cargo's output.
        source: Box<secretbridge_harness::HarnessError>,
    },
    /// Some scenarios failed; the others' figures were still written.
    #[error("some scenarios failed:\n{0}")]
    ScenariosFailed(String),
    /// A bad command-line argument.
    #[error("{0}\n\nusage: secretbridge-bench [--sizes 100,1000,5000] [--steady-n N] [--steady-minutes M] [--backends aws,gcp] [--skip-provider] [--skip-controller] [--results PATH]")]
    Usage(String),
}
