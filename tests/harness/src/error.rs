//! One error type for the harness: each variant is one action that failed,
//! with what a developer needs to see to fix it (paths, commands, output).

use std::path::PathBuf;
use std::time::Duration;

use crate::terraform::TfOutput;

/// Result alias used across the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Everything the harness can fail at.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A tool that `make setup` installs is not in `.tools/`.
    #[error("{tool} not found at {}: run `make setup` in {}", path.display(), repo_root.display())]
    ToolMissing {
        /// Human name of the tool, e.g. `terraform 1.0.3`.
        tool: String,
        /// Where the harness looked.
        path: PathBuf,
        /// The repository root, where `make setup` runs.
        repo_root: PathBuf,
    },

    /// Creating a temporary directory failed.
    #[error("could not create a temporary directory for {purpose}")]
    CreateTempDir {
        /// What the directory was for.
        purpose: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Writing or copying a file failed.
    #[error("could not write {}", path.display())]
    WriteFile {
        /// The file that could not be written.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Starting a program failed.
    #[error("could not start {program}")]
    Spawn {
        /// The program's path or name.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Waiting for or reading from a started program failed.
    #[error("lost track of {program} while it ran")]
    Wait {
        /// The program's path or name.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A server process exited before it became ready or while in use.
    #[error("{name} exited ({status}) before it was ready; last lines of its log {}:\n{log_tail}", log_path.display())]
    ServerExited {
        /// Which server.
        name: &'static str,
        /// Its exit status as text.
        status: String,
        /// The log file holding its stdout and stderr.
        log_path: PathBuf,
        /// The end of that log.
        log_tail: String,
    },

    /// The shared server of this test process failed to start (earlier).
    #[error("the shared {name} of this test process failed to start: {message}")]
    SharedServerFailed {
        /// Which server.
        name: &'static str,
        /// The original start error, as text.
        message: String,
    },

    /// A server did not answer its readiness check in time.
    #[error("{name} did not become ready at {url} within {waited:?}; last lines of its log {}:\n{log_tail}", log_path.display())]
    ServerNotReady {
        /// Which server.
        name: &'static str,
        /// The URL polled.
        url: String,
        /// How long the harness waited.
        waited: Duration,
        /// The log file holding its stdout and stderr.
        log_path: PathBuf,
        /// The end of that log.
        log_tail: String,
    },

    /// No free loopback port could be reserved.
    #[error("could not bind 127.0.0.1:0 to pick a free port")]
    FreePort {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Nothing accepted TCP connections at an address in time.
    #[error("nothing accepted connections at {addr} within {waited:?} (last error: {last_error})")]
    TcpNotReady {
        /// The address polled.
        addr: std::net::SocketAddr,
        /// How long the harness waited.
        waited: Duration,
        /// The last connect error, as text.
        last_error: String,
    },

    /// An HTTP request from the harness failed at the transport level.
    #[error("HTTP {method} http://{addr}{path} failed")]
    Http {
        /// The request method.
        method: String,
        /// The server address.
        addr: std::net::SocketAddr,
        /// The request path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// An HTTP response could not be parsed.
    #[error("HTTP {method} http://{addr}{path} returned a malformed response: {problem}")]
    HttpMalformed {
        /// The request method.
        method: String,
        /// The server address.
        addr: std::net::SocketAddr,
        /// The request path.
        path: String,
        /// What was wrong.
        problem: String,
    },

    /// An HTTP call answered with an unexpected status.
    #[error("{action}: HTTP {status} from {url}: {body}")]
    HttpStatus {
        /// What the harness tried to do.
        action: &'static str,
        /// The URL called.
        url: String,
        /// The status code received.
        status: u16,
        /// The response body (for the error message).
        body: String,
    },

    /// A terraform command exited with an unexpected code.
    #[error("`{}` (terraform {version}, in {}) exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}", output.command, dir.display(), exit_text(output.exit_code), output.stdout, output.stderr)]
    TerraformFailed {
        /// The terraform version.
        version: &'static str,
        /// The working directory.
        dir: PathBuf,
        /// The command line, exit code and everything it printed.
        output: Box<TfOutput>,
    },

    /// A terraform command ran longer than the runner's timeout and was killed.
    #[error("`{}` (terraform {version}, in {}) ran longer than {timeout:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}", output.command, dir.display(), output.stdout, output.stderr)]
    TerraformTimedOut {
        /// The terraform version.
        version: &'static str,
        /// The working directory.
        dir: PathBuf,
        /// The timeout that was exceeded.
        timeout: Duration,
        /// The command line and what it printed before it was killed.
        output: Box<TfOutput>,
    },

    /// A terraform command succeeded where the test expected it to fail.
    #[error("`{}` (terraform {version}) succeeded but the test expected it to fail\n--- stdout ---\n{}\n--- stderr ---\n{}", output.command, output.stdout, output.stderr)]
    TerraformUnexpectedSuccess {
        /// The terraform version.
        version: &'static str,
        /// The command line and everything it printed.
        output: Box<TfOutput>,
    },

    /// `plan -detailed-exitcode` reported changes where the test expected none.
    #[error("`{}` (terraform {version}) planned changes where none were expected\n--- plan ---\n{}", output.command, output.stdout)]
    PlanNotEmpty {
        /// The terraform version.
        version: &'static str,
        /// The command line and the plan as printed.
        output: Box<TfOutput>,
    },

    /// A command's JSON output did not parse.
    #[error(
        "`{command}` printed output that is not the expected JSON: {problem}\n--- stdout ---\n{stdout}"
    )]
    ParseJson {
        /// The command line.
        command: String,
        /// What was wrong.
        problem: String,
        /// The output that failed to parse.
        stdout: String,
    },

    /// The test binary's own location did not reveal the cargo target dir.
    #[error("cannot tell the cargo target directory from the test binary at {}: {problem}", exe.display())]
    TargetDirUnknown {
        /// The running executable.
        exe: PathBuf,
        /// What did not fit.
        problem: String,
    },

    /// `cargo build` of a workspace binary failed.
    #[error("`{command}` failed ({exit})\n--- stderr ---\n{stderr}")]
    CargoBuild {
        /// The command line.
        command: String,
        /// Exit code or signal, as text.
        exit: String,
        /// What cargo printed to stderr.
        stderr: String,
    },

    /// `cargo build` succeeded but the binary is not where cargo puts it.
    #[error("`cargo build` reported success but {} does not exist", path.display())]
    BuiltBinaryMissing {
        /// The expected binary path.
        path: PathBuf,
    },
}

/// "exit code N", or "a signal" when a signal ended the process.
fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "a signal".to_owned(), |code| format!("exit code {code}"))
}
