//! `secretbridge-controller`: `run` (the controller), `crd` (prints the CRDs)
//! and `version`.
//!
//! `run` takes its settings from flags or the environment:
//! `--log-level`/`RUST_LOG`, `--log-format text|json`, `--concurrency`,
//! `--health-addr` (serves `/healthz` and `/metrics`), `--namespace` (scope),
//! `--gcp-endpoint` (one base URL for every GCP API); AWS honours
//! `AWS_ENDPOINT_URL`, Kubernetes `KUBECONFIG` or the in-cluster config.

use secretbridge_controller::backend::aws::AwsSettings;
use secretbridge_controller::backend::gcp::GcpEndpoints;
use secretbridge_controller::backend::metrics::CallMetrics;
use secretbridge_controller::credentials::RealBackends;
use secretbridge_controller::reconcile::Context;
use secretbridge_controller::runner::{self, Scope};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: secretbridge-controller <run|crd|convert|version> [options]

run options (each also read from the environment variable in brackets):
  --log-level LEVEL      tracing filter, e.g. info or secretbridge=debug [RUST_LOG]
  --log-format FORMAT    text or json [SECRETBRIDGE_LOG_FORMAT]
  --concurrency N        reconciles run at once (default 8) [SECRETBRIDGE_CONCURRENCY]
  --health-addr ADDR     serve /healthz and /metrics, e.g. 0.0.0.0:8080 [SECRETBRIDGE_HEALTH_ADDR]
  --namespace NS         watch only this namespace [SECRETBRIDGE_NAMESPACE]
  --gcp-endpoint URL     one base URL for every GCP API [SECRETBRIDGE_GCP_ENDPOINT]
AWS endpoints follow AWS_ENDPOINT_URL; Kubernetes follows KUBECONFIG or the in-cluster config.

convert [FILE...]        ESO manifests (files or stdin) to secretbridge.io/v1 on stdout; see convert --help
crd                      print the CRDs as YAML
version                  print the version";

/// Settings of `run`.
#[derive(Debug, Default)]
struct RunOptions {
    log_level: Option<String>,
    log_format: Option<String>,
    concurrency: Option<u16>,
    health_addr: Option<String>,
    namespace: Option<String>,
    gcp_endpoint: Option<String>,
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = RunOptions {
        log_level: env("RUST_LOG"),
        log_format: env("SECRETBRIDGE_LOG_FORMAT"),
        concurrency: None,
        health_addr: env("SECRETBRIDGE_HEALTH_ADDR"),
        namespace: env("SECRETBRIDGE_NAMESPACE"),
        gcp_endpoint: env("SECRETBRIDGE_GCP_ENDPOINT"),
    };
    let mut concurrency = env("SECRETBRIDGE_CONCURRENCY");
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| iter.next().cloned()).ok_or(format!("{name} needs a value"));
        match name {
            "--log-level" => options.log_level = Some(value()?),
            "--log-format" => options.log_format = Some(value()?),
            "--concurrency" => concurrency = Some(value()?),
            "--health-addr" => options.health_addr = Some(value()?),
            "--namespace" => options.namespace = Some(value()?),
            "--gcp-endpoint" => options.gcp_endpoint = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some(text) = concurrency {
        options.concurrency = Some(text.parse().map_err(|_| format!("--concurrency must be a number from 1 to 65535, got {text:?}"))?);
    }
    if let Some(format) = &options.log_format
        && format != "text"
        && format != "json"
    {
        return Err(format!("--log-format must be text or json, got {format:?}"));
    }
    Ok(options)
}

fn init_logging(options: &RunOptions) {
    let filter = tracing_subscriber::EnvFilter::try_new(options.log_level.as_deref().unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if options.log_format.as_deref() == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve_health(addr: String, metrics: Arc<CallMetrics>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz and /metrics");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let read = stream.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..read]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/healthz" | "/readyz" => ("200 OK", "ok\n".to_string()),
                "/metrics" => ("200 OK", metrics.render_prometheus()),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let response = format!("HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

async fn run(options: RunOptions) -> Result<(), String> {
    init_logging(&options);
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to Kubernetes failed (set KUBECONFIG or run in a cluster): {e}"))?;
    let metrics = Arc::new(CallMetrics::default());
    let gcp = options.gcp_endpoint.as_deref().map(GcpEndpoints::single).unwrap_or_default();
    let backends = RealBackends::new(client.clone(), metrics.clone(), AwsSettings::from_env(), gcp)
        .map_err(|e| format!("setting up the HTTP client failed: {e}"))?;
    let context = Arc::new(Context::new(client.clone(), Arc::new(backends)));
    if let Some(addr) = options.health_addr.clone() {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_health(addr, metrics).await {
                tracing::error!(%error, "health server stopped");
            }
        });
    }
    tracing::info!(namespace = ?options.namespace, "secretbridge-controller starting");
    runner::run(client, context, Scope { namespace: options.namespace }, options.concurrency.unwrap_or(8)).await;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("version") => {
            println!("secretbridge-controller {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("crd") => match secretbridge_shared::crd::render_all_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                Ok(())
            }
            Err(e) => Err(format!("rendering the CRDs failed: {e}")),
        },
        Some("convert") => secretbridge_controller::convert::main(&args[1..]),
        Some("run") => match parse_run(&args[1..]) {
            Ok(options) => match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(run(options)),
                Err(e) => Err(format!("starting the Tokio runtime failed: {e}")),
            },
            Err(message) => Err(format!("{message}\n\n{USAGE}")),
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_flags_parse_in_both_forms() {
        let options = parse_run(&args(&["--concurrency", "4", "--log-format=json", "--namespace", "team", "--gcp-endpoint", "http://127.0.0.1:9"]))
            .expect("valid flags");
        assert_eq!(options.concurrency, Some(4));
        assert_eq!(options.log_format.as_deref(), Some("json"));
        assert_eq!(options.namespace.as_deref(), Some("team"));
        assert_eq!(options.gcp_endpoint.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        assert!(parse_run(&args(&["--concurrency", "many"])).is_err_and(|m| m.contains("--concurrency")));
        assert!(parse_run(&args(&["--log-format", "xml"])).is_err_and(|m| m.contains("text or json")));
        assert!(parse_run(&args(&["--bogus"])).is_err_and(|m| m.contains("unknown option")));
        assert!(parse_run(&args(&["--namespace"])).is_err_and(|m| m.contains("needs a value")));
    }
}
