//! The controller binary as a child process: stderr captured to a file,
//! endpoints found from its log, stopped with SIGKILL or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous upper bound for anything polled on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `check` every 200 ms until it returns `Some`, or panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running `secretbridge-controller run`.
pub struct ControllerProcess {
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
    metrics: Option<SocketAddr>,
}

impl ControllerProcess {
    /// Starts `secretbridge-controller run ARGS` against `kubeconfig`, with
    /// JSON logs and the endpoints on a free loopback port.
    pub fn start(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("controller.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_secretbridge-controller"));
        command
            .arg("run")
            .args(["--log-format=json", "--metrics-addr=127.0.0.1:0", "--log-level=info,secretbridge_controller=debug"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the controller binary starts");
        ControllerProcess { child, log_path, _dir: dir, metrics: None }
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The JSON log lines so far.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs().lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// The endpoints' address, from the "serving" log line.
    pub async fn metrics_addr(&mut self) -> SocketAddr {
        if let Some(addr) = self.metrics {
            return addr;
        }
        let addr = eventually("the controller to log its metrics address", || {
            let found = self.log_lines().into_iter().find_map(|line| {
                let fields = &line["fields"];
                let serving = fields["message"].as_str().is_some_and(|m| m.starts_with("serving /healthz"));
                serving.then(|| fields["addr"].as_str().and_then(|a| a.parse().ok())).flatten()
            });
            async move { found }
        })
        .await;
        self.metrics = Some(addr);
        addr
    }

    /// `GET path` on the endpoints: status code and body.
    pub async fn get(&mut self, path: &str) -> (u16, String) {
        http_get(self.metrics_addr().await, path).await
    }

    /// `/metrics`.
    pub async fn metrics_text(&mut self) -> String {
        self.get("/metrics").await.1
    }

    /// SIGKILL, as a crashed node or OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as the kubelet sends on pod deletion.
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "sending SIGTERM failed");
    }

    /// The exit status, once the process has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            self.kill();
        }
    }
}

/// The value of a sample line `name{labels} value` in Prometheus text, or
/// the sum over every label set when `labels` is empty.
pub fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name || (!labels.is_empty() && series_labels != labels) {
            continue;
        }
        let value: f64 = value.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// `GET path` from a controller's endpoints: status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}
