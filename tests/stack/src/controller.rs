//! The controller binary as a real process against the stack.
//!
//! It runs in its own process group with stdout and stderr in a log file. A
//! tiny `sh` watchdog holds a pipe from the test process and kills that group
//! when the pipe closes, so a test process that dies without unwinding leaves
//! no controller behind.

use crate::{AWS_STATIC_KEY, Stack, StackError};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Upper bound for the controller to serve `/healthz` after spawn (a loaded
/// 2-core machine; typical is well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How the controller process is started.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// The `secretbridge-controller` binary. In the controller's own tests:
    /// `env!("CARGO_BIN_EXE_secretbridge-controller")`; elsewhere
    /// `secretbridge_harness::workspace_bin("secretbridge-controller", "secretbridge-controller")`.
    pub binary: PathBuf,
    /// Arguments after `run` and the stack's own flags (later flags win).
    pub extra_args: Vec<String>,
    /// Extra environment (after the stack's, so these win).
    pub env: Vec<(String, String)>,
}

impl ControllerOptions {
    /// The binary with no extra arguments or environment.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        ControllerOptions { binary: binary.into(), extra_args: Vec::new(), env: Vec::new() }
    }

    /// Adds arguments after `run`.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the process.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running controller. Dropping it SIGKILLs its process group.
#[derive(Debug)]
pub struct ControllerProcess {
    child: Child,
    binary: PathBuf,
    health_addr: SocketAddr,
    log_path: PathBuf,
    watchdog: Option<(Child, ChildStdin)>,
    exited: Option<ExitStatus>,
}

static STARTED: AtomicUsize = AtomicUsize::new(0);

impl Stack {
    /// Starts the controller with `KUBECONFIG` (admin), `AWS_ENDPOINT_URL` =
    /// the guard, `AWS_REGION`, static dummy AWS keys (the no-auth path's
    /// default chain; IMDS disabled), `--gcp-endpoint` = the GCP stand-in
    /// (also its metadata server: `GOOGLE_APPLICATION_CREDENTIALS` and
    /// `GCE_METADATA_HOST` are removed unless `options.env` sets them),
    /// `--health-addr` on a free port and `--log-format json`; waits until
    /// `/healthz` answers.
    pub async fn start_controller(&self, options: ControllerOptions) -> Result<ControllerProcess, StackError> {
        let io_error = |action: &str| {
            let binary = options.binary.clone();
            let action = action.to_string();
            move |source| StackError::Controller { action, binary, source }
        };
        let port = secretbridge_harness::free_port()
            .map_err(|e| io_error("picking a free port")(std::io::Error::other(e.to_string())))?;
        let health_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let number = STARTED.fetch_add(1, Ordering::SeqCst);
        let log_path = self.scratch_dir().join(format!("controller-{number}.log"));
        let log = std::fs::File::create(&log_path).map_err(io_error("creating the log file"))?;
        let log_err = log.try_clone().map_err(io_error("opening the log file"))?;

        let mut command = Command::new(&options.binary);
        command
            .arg("run")
            .args(["--log-format", "json", "--health-addr", &health_addr.to_string()])
            .env("KUBECONFIG", self.kubeconfig_path())
            .env("RUST_LOG", "info")
            .env("AWS_REGION", self.aws_region())
            .env("AWS_ACCESS_KEY_ID", AWS_STATIC_KEY)
            .env("AWS_SECRET_ACCESS_KEY", AWS_STATIC_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env_remove("GCE_METADATA_HOST")
            .env_remove("SECRETBRIDGE_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        if let Ok(endpoint) = self.aws_endpoint() {
            command.env("AWS_ENDPOINT_URL", endpoint);
        }
        if let Ok(endpoint) = self.gcp_endpoint() {
            command.args(["--gcp-endpoint", &endpoint]);
        }
        command.args(&options.extra_args);
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let child = command.spawn().map_err(io_error("spawning"))?;
        let watchdog = spawn_watchdog(child.id());
        let mut process =
            ControllerProcess { child, binary: options.binary.clone(), health_addr, log_path, watchdog, exited: None };
        process.wait_healthy(START_TIMEOUT).await?;
        Ok(process)
    }
}

/// `sh` blocks reading the pipe we hold; at end-of-file it kills the group.
fn spawn_watchdog(pgid: u32) -> Option<(Child, ChildStdin)> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("cat >/dev/null; kill -9 -- -\"$0\" 2>/dev/null")
        .arg(pgid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

impl ControllerProcess {
    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// The log file (JSON lines, stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the controller logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last ~4 KB of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let logs = self.logs();
        let start = logs.len().saturating_sub(4000);
        let start = (start..logs.len()).find(|i| logs.is_char_boundary(*i)).unwrap_or(logs.len());
        logs[start..].to_string()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    async fn get(&self, path: &str) -> Result<secretbridge_harness::HttpResponse, StackError> {
        let addr = self.health_addr;
        let owned = path.to_string();
        let action = format!("GET {path} from the controller");
        tokio::task::spawn_blocking(move || secretbridge_harness::http_request(addr, "GET", &owned, &[], &[]))
            .await
            .map_err(|e| StackError::Http { action: action.clone(), message: e.to_string() })?
            .map_err(|e| StackError::Http { action, message: e.to_string() })
    }

    async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), StackError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Err(StackError::ControllerExited { status: status.to_string(), log_tail: self.log_tail() });
            }
            if let Ok(answer) = self.get("/healthz").await
                && answer.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StackError::Timeout {
                    what: format!("the controller to serve http://{}/healthz", self.health_addr),
                    timeout,
                    last: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The body of `/metrics` (Prometheus text).
    pub async fn metrics_text(&self) -> Result<String, StackError> {
        let answer = self.get("/metrics").await?;
        if answer.status != 200 {
            return Err(StackError::Http {
                action: "GET /metrics from the controller".into(),
                message: format!("HTTP {}: {}", answer.status, answer.text()),
            });
        }
        Ok(answer.text())
    }

    /// SIGKILLs the controller's process group (a crash) and reaps it.
    pub fn kill(&mut self) -> Result<(), StackError> {
        if self.poll_exit().is_some() {
            return Ok(());
        }
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let status = self.child.wait().map_err(|source| StackError::Controller {
            action: "waiting after SIGKILL".into(),
            binary: self.binary.clone(),
            source,
        })?;
        self.exited = Some(status);
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit (SIGKILL after);
    /// returns the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, StackError> {
        if let Some(status) = self.poll_exit() {
            return Ok(status);
        }
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill()?;
                return Err(StackError::Timeout {
                    what: "the controller to exit after SIGTERM (killed)".into(),
                    timeout,
                    last: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.kill();
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

/// Sums the samples of metric `name` whose labels include every pair in
/// `labels` (Prometheus text format); `None` when no series matches, so a
/// metric that is absent (renamed, never registered) is not mistaken for 0.
/// The controller creates a series on its first increment: to assert "no
/// throttled calls", assert a sibling series of the same metric exists and
/// this one is `None` or `Some(0.0)`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total: Option<f64> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (label_text, value) = if let Some(inner) = rest.strip_prefix('{') {
            match inner.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // a longer metric name sharing the prefix
        };
        let matches = labels.iter().all(|(key, wanted)| label_text.contains(&format!("{key}=\"{wanted}\"")));
        if matches && let Some(number) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            total = Some(total.unwrap_or(0.0) + number);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn metric_value_sums_matching_series_only() {
        let text = "# HELP x_total calls\nx_total{provider=\"ssm\",call=\"GetParameters\",status=\"ok\"} 2\n\
                    x_total{provider=\"ssm\",call=\"GetParameters\",status=\"Throttled\"} 3\n\
                    x_total{provider=\"sts\",call=\"AssumeRoleWithWebIdentity\",status=\"ok\"} 1\n\
                    x_total_other{provider=\"ssm\"} 100\nplain 7\n";
        assert_eq!(metric_value(text, "x_total", &[("provider", "ssm"), ("call", "GetParameters")]), Some(5.0));
        assert_eq!(metric_value(text, "x_total", &[("status", "ok")]), Some(3.0));
        assert_eq!(metric_value(text, "plain", &[]), Some(7.0));
        // Absent is not zero: no such metric, and no series with that label.
        assert_eq!(metric_value(text, "missing", &[]), None);
        assert_eq!(metric_value(text, "x_total", &[("status", "Denied")]), None);
        assert_eq!(metric_value("zero_total{a=\"b\"} 0\n", "zero_total", &[("a", "b")]), Some(0.0));
    }
}
