//! `secretbridge-controller`: `run` (the controller), `crd` (prints the CRDs)
//! and `version`.
//!
//! `run` takes its settings from flags or the environment (see [`USAGE`]).
//! With leader election on (the default), replicas compete for a
//! `coordination.k8s.io/v1` Lease and only the holder reconciles; SIGTERM
//! lets in-flight reconciles finish, releases the Lease and exits 0; a
//! replica that loses the Lease stops its reconcilers and stands by again.

use secretbridge_controller::backend::aws::AwsSettings;
use secretbridge_controller::backend::gcp::GcpEndpoints;
use secretbridge_controller::backend::metadata::{CREDENTIALS_FILE_VAR, METADATA_HOST_VAR};
use secretbridge_controller::credentials::RealBackends;
use secretbridge_controller::endpoints::{self, Health};
use secretbridge_controller::leader::{self, LeaseConfig, LeaseLock, LostLease};
use secretbridge_controller::metrics::{ControllerMetrics, Role};
use secretbridge_controller::reconcile::Context;
use secretbridge_controller::runner::{self, Scope};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: secretbridge-controller <run|crd|convert|version> [options]

run options (each also read from the environment variable in brackets):
  --log-level LEVEL        tracing filter, e.g. info or secretbridge=debug [RUST_LOG]
  --log-format FORMAT      text or json [SECRETBRIDGE_LOG_FORMAT]
  --concurrency N          reconciles run at once (default 8) [SECRETBRIDGE_CONCURRENCY]
  --metrics-addr ADDR      serve /healthz, /readyz and /metrics, e.g. 0.0.0.0:8080
                           (alias --health-addr) [SECRETBRIDGE_METRICS_ADDR]
  --namespace NS           watch only this namespace [SECRETBRIDGE_NAMESPACE]
  --gcp-endpoint URL       one base URL for every GCP API [SECRETBRIDGE_GCP_ENDPOINT]
  --leader-elect BOOL      compete for a Lease so only one replica reconciles
                           (default true) [SECRETBRIDGE_LEADER_ELECT]
  --lease-name NAME        the Lease (default secretbridge-controller) [SECRETBRIDGE_LEASE_NAME]
  --lease-namespace NS     its namespace (default: the pod's, from POD_NAMESPACE, else the
                           kubeconfig's namespace) [SECRETBRIDGE_LEASE_NAMESPACE]
  --lease-duration D       how long a Lease holds without renewal (default 15s)
  --renew-deadline D       how long the leader retries renewing before it stops (default 10s)
  --retry-period D         pause between acquire/renew attempts (default 2s)
  --identity ID            this replica's holder identity (default POD_NAME, else host_pid)
  --secret-stores-may-use-controller-identity BOOL
                           let a namespaced SecretStore without an auth block authenticate
                           as the controller itself (default false: only ClusterSecretStores
                           may) [SECRETBRIDGE_SECRET_STORES_MAY_USE_CONTROLLER_IDENTITY]
  --eso-metrics BOOL       also export the External Secrets Operator metric names that mean
                           the same here (default false) [SECRETBRIDGE_ESO_METRICS]
Durations are like 15s, 1m30s. AWS endpoints follow AWS_ENDPOINT_URL; Kubernetes follows
KUBECONFIG or the in-cluster config. GCP stores without an auth block use Application Default
Credentials from the metadata server: metadata.google.internal, or GCE_METADATA_HOST (HOST:PORT,
ahead of --gcp-endpoint); with GOOGLE_APPLICATION_CREDENTIALS set they fail instead (no key files).

convert [FILE...]          ESO manifests (files or stdin) to secretbridge.io/v1 on stdout; see convert --help
crd                        print the CRDs as YAML
version                    print the version";

/// Settings of `run`.
#[derive(Debug)]
struct RunOptions {
    log_level: Option<String>,
    log_format: Option<String>,
    concurrency: Option<u16>,
    metrics_addr: Option<String>,
    namespace: Option<String>,
    gcp_endpoint: Option<String>,
    /// `GCE_METADATA_HOST`: the metadata server for ADC, as `HOST[:PORT]`.
    metadata_host: Option<String>,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: refused by stores that use ADC.
    credentials_file: Option<String>,
    leader_elect: bool,
    lease_name: String,
    lease_namespace: Option<String>,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    identity: Option<String>,
    /// Whether namespaced SecretStores without auth may use the controller's identity.
    secret_stores_may_use_controller_identity: bool,
    /// Whether `/metrics` also carries the ESO-compatible names.
    eso_metrics: bool,
}

fn parse_bool(name: &str, text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("{name} must be true or false, got {other:?}")),
    }
}

fn parse_duration(name: &str, text: &str) -> Result<Duration, String> {
    secretbridge_shared::duration::parse_duration(text).map_err(|e| format!("{name}: {e}"))
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut options = RunOptions {
        log_level: env("RUST_LOG"),
        log_format: env("SECRETBRIDGE_LOG_FORMAT"),
        concurrency: None,
        metrics_addr: env("SECRETBRIDGE_METRICS_ADDR").or_else(|| env("SECRETBRIDGE_HEALTH_ADDR")),
        namespace: env("SECRETBRIDGE_NAMESPACE"),
        gcp_endpoint: env("SECRETBRIDGE_GCP_ENDPOINT"),
        metadata_host: env(METADATA_HOST_VAR),
        credentials_file: env(CREDENTIALS_FILE_VAR),
        leader_elect: match env("SECRETBRIDGE_LEADER_ELECT") {
            Some(text) => parse_bool("SECRETBRIDGE_LEADER_ELECT", &text)?,
            None => true,
        },
        lease_name: env("SECRETBRIDGE_LEASE_NAME").unwrap_or_else(|| "secretbridge-controller".to_string()),
        lease_namespace: env("SECRETBRIDGE_LEASE_NAMESPACE").or_else(|| env("POD_NAMESPACE")),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
        identity: None,
        secret_stores_may_use_controller_identity: match env("SECRETBRIDGE_SECRET_STORES_MAY_USE_CONTROLLER_IDENTITY") {
            Some(text) => parse_bool("SECRETBRIDGE_SECRET_STORES_MAY_USE_CONTROLLER_IDENTITY", &text)?,
            None => false,
        },
        eso_metrics: match env("SECRETBRIDGE_ESO_METRICS") {
            Some(text) => parse_bool("SECRETBRIDGE_ESO_METRICS", &text)?,
            None => false,
        },
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
            "--metrics-addr" | "--health-addr" => options.metrics_addr = Some(value()?),
            "--namespace" => options.namespace = Some(value()?),
            "--secret-stores-may-use-controller-identity" => {
                options.secret_stores_may_use_controller_identity = parse_bool(name, &value()?)?;
            }
            "--gcp-endpoint" => options.gcp_endpoint = Some(value()?),
            "--eso-metrics" => options.eso_metrics = parse_bool(name, &value()?)?,
            // A bare `--leader-elect` means true, as with Go's flag package.
            "--leader-elect" => options.leader_elect = match &inline {
                Some(text) => parse_bool(name, text)?,
                None => true,
            },
            "--lease-name" => options.lease_name = value()?,
            "--lease-namespace" => options.lease_namespace = Some(value()?),
            "--lease-duration" => options.lease_duration = parse_duration(name, &value()?)?,
            "--renew-deadline" => options.renew_deadline = parse_duration(name, &value()?)?,
            "--retry-period" => options.retry_period = parse_duration(name, &value()?)?,
            "--identity" => options.identity = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some(text) = concurrency {
        options.concurrency = Some(
            text.parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("--concurrency must be a number from 1 to 65535, got {text:?}"))?,
        );
    }
    if let Some(format) = &options.log_format
        && format != "text"
        && format != "json"
    {
        return Err(format!("--log-format must be text or json, got {format:?}"));
    }
    if options.leader_elect {
        lease_config(&options, "placeholder".to_string())?;
    }
    Ok(options)
}

fn lease_config(options: &RunOptions, default_namespace: String) -> Result<LeaseConfig, String> {
    let config = LeaseConfig {
        name: options.lease_name.clone(),
        namespace: options.lease_namespace.clone().unwrap_or(default_namespace),
        identity: options.identity.clone().unwrap_or_else(leader::default_identity),
        lease_duration: options.lease_duration,
        renew_deadline: options.renew_deadline,
        retry_period: options.retry_period,
    };
    config.validate()?;
    Ok(config)
}

/// Libraries whose debug and trace output carries request and response
/// bodies: the API server's answers (which quote what was sent, such as a
/// templated label value) and the clouds' (which hold secret values). They
/// log at `info` at most, whatever `--log-level` asks for, so no level of
/// logging can write a value.
const PAYLOAD_LOGGING_CRATES: &[&str] = &[
    "kube_client",
    "kube_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sdk_ssm",
    "aws_sdk_secretsmanager",
    "aws_sdk_sts",
    "aws_config",
];

fn log_filter(level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info")).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for krate in PAYLOAD_LOGGING_CRATES {
        if let Ok(directive) = format!("{krate}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

fn init_logging(options: &RunOptions) {
    let filter = log_filter(options.log_level.as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if options.log_format.as_deref() == Some("json") {
        // Span fields (the reconciled object's reference) go on every line.
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        builder.init();
    }
}

/// How `run` ended.
enum Stopped {
    /// SIGTERM/SIGINT: reconciles drained, Lease released.
    Signal,
    /// The Lease was lost while leading.
    LeaseLost(LostLease),
}

async fn run(options: RunOptions) -> Result<(), String> {
    init_logging(&options);
    // Pick the TLS backend explicitly: when another crate in the build turns
    // on rustls' aws-lc-rs too, rustls cannot choose one and kube's client
    // construction would panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to Kubernetes failed (set KUBECONFIG or run in a cluster): {e}"))?;
    let metrics = Arc::new(ControllerMetrics::default());
    metrics.set_eso_compatible(options.eso_metrics);
    let gcp = options
        .gcp_endpoint
        .as_deref()
        .map(GcpEndpoints::single)
        .unwrap_or_default()
        .with_adc_environment(options.credentials_file.as_deref(), options.metadata_host.as_deref());
    let backends = RealBackends::new(client.clone(), metrics.calls.clone(), AwsSettings::from_env(), gcp)
        .map_err(|e| format!("setting up the HTTP client failed: {e}"))?
        .with_secret_stores_using_controller_identity(options.secret_stores_may_use_controller_identity);
    let mut context = Context::new(client.clone(), Arc::new(backends));
    context.metrics = metrics.clone();
    let context = Arc::new(context);
    let health = Arc::new(Health::new(metrics.clone()));
    if let Some(addr) = options.metrics_addr.clone() {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
        tracing::info!(addr = %local, "serving /healthz, /readyz and /metrics");
        tokio::spawn(endpoints::serve(listener, health.clone()));
    }
    let scope = Scope { namespace: options.namespace.clone() };
    let concurrency = options.concurrency.unwrap_or(8);
    tracing::info!(namespace = ?options.namespace, leader_elect = options.leader_elect, "secretbridge-controller starting");
    let signal = futures::FutureExt::shared(Box::pin(runner::termination_signal()));
    if !options.leader_elect {
        metrics.set_role(Role::Solo);
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = stopping.send(true);
        });
        let ready = health.clone();
        let reconcilers = runner::run_until(client, context, scope, concurrency, stop_requested(stopped.clone()), move || ready.set_ready(true));
        within_grace(reconcilers, stopped).await;
        return Ok(());
    }
    let config = lease_config(&options, client.default_namespace().to_string())?;
    let lock = Arc::new(LeaseLock::new(client.clone(), config.clone()));
    loop {
        metrics.set_role(Role::Standby);
        // Standing by is ready: the replica is healthy and would take over.
        health.set_ready(true);
        tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "waiting for the leader lease");
        let mut last_holder = None::<String>;
        let acquired = lock.acquire(|holder| {
            let holder = holder.map(str::to_string);
            if holder.is_some() && holder != last_holder {
                tracing::info!(holder = ?holder, "another replica leads; standing by");
                last_holder = holder;
            }
        });
        tokio::select! {
            () = acquired => {}
            () = signal.clone() => {
                tracing::info!("stopped while standing by");
                return Ok(());
            }
        }
        tracing::info!(identity = %config.identity, "became leader; reconciling");
        metrics.set_role(Role::Leader);
        health.set_ready(false);
        // One task decides why we stop (signal or lost lease) and tells the
        // reconcilers; the renewer keeps the lease meanwhile.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let reason = {
            let lock = lock.clone();
            let signal = signal.clone();
            tokio::spawn(async move {
                let reason = tokio::select! {
                    () = signal => Stopped::Signal,
                    lost = lock.keep_renewing() => {
                        tracing::error!(?lost, "leader lease lost; stopping the reconcilers");
                        Stopped::LeaseLost(lost)
                    }
                };
                let _ = stopping.send(true);
                reason
            })
        };
        let ready = health.clone();
        let reconcilers = runner::run_until(
            client.clone(),
            context.clone(),
            scope.clone(),
            concurrency,
            stop_requested(stopped.clone()),
            move || ready.set_ready(true),
        );
        within_grace(reconcilers, stopped).await;
        metrics.set_role(Role::Standby);
        // The reconcilers only stop after the reason task has sent `true`, so it has finished.
        match reason.await.unwrap_or(Stopped::Signal) {
            Stopped::Signal => {
                match lock.release().await {
                    Ok(true) => tracing::info!("in-flight reconciles finished; leader lease released"),
                    Ok(false) => tracing::info!("in-flight reconciles finished; the lease was no longer ours"),
                    Err(error) => tracing::warn!(%error, "releasing the leader lease failed; it expires by itself"),
                }
                return Ok(());
            }
            // Another replica may lead now, or the API server was out of
            // reach: either way stand by again. If nobody took the lease
            // meanwhile (an API-server outage), it is still ours and this
            // replica leads again as soon as the API server answers.
            Stopped::LeaseLost(lost) => tracing::warn!(?lost, "stopped reconciling after losing the leader lease; standing by"),
        }
    }
}

/// The longest wait for in-flight reconciles after a stop was requested:
/// below the Deployment's 30 s termination grace period, so the lease is
/// still released before the kubelet's SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Resolves once `true` was sent; never if the sender went away without it.
async fn stop_requested(mut stopped: tokio::sync::watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the reconcilers until they stop by themselves after a stop request,
/// or [`SHUTDOWN_GRACE`] after it, whichever is first.
async fn within_grace(reconcilers: impl std::future::Future<Output = ()>, stopped: tokio::sync::watch::Receiver<bool>) {
    let deadline = async {
        stop_requested(stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = reconcilers => tracing::info!("reconcilers stopped after in-flight reconciles finished"),
        () = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "reconcilers did not stop within the grace period; stopping anyway"),
    }
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
                Ok(runtime) => {
                    let result = runtime.block_on(run(options));
                    // Don't let a straggling task hold the exit.
                    runtime.shutdown_timeout(Duration::from_secs(2));
                    result
                }
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
        assert!(options.leader_elect, "leader election is on by default");
    }

    #[test]
    fn leader_election_and_metrics_flags() {
        let options = parse_run(&args(&[
            "--leader-elect=false",
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-duration=4s",
            "--renew-deadline",
            "3s",
            "--retry-period=500ms",
        ]))
        .expect("valid flags");
        assert!(!options.leader_elect);
        assert_eq!(options.metrics_addr.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(options.lease_duration, Duration::from_secs(4));
        assert_eq!(options.retry_period, Duration::from_millis(500));
        let alias = parse_run(&args(&["--health-addr=127.0.0.1:1", "--leader-elect", "--lease-namespace", "ops"])).expect("valid");
        assert_eq!(alias.metrics_addr.as_deref(), Some("127.0.0.1:1"));
        assert!(alias.leader_elect);
        assert_eq!(lease_config(&alias, "default".into()).map(|c| c.namespace), Ok("ops".to_string()));
    }

    #[test]
    fn namespaced_stores_borrow_the_controller_identity_only_when_allowed() {
        assert!(!parse_run(&args(&[])).expect("no flags").secret_stores_may_use_controller_identity, "off by default");
        assert!(!parse_run(&args(&[])).expect("no flags").eso_metrics, "ESO names are off by default");
        assert!(parse_run(&args(&["--eso-metrics=true"])).expect("valid flag").eso_metrics);
        assert!(parse_run(&args(&["--eso-metrics", "maybe"])).is_err_and(|m| m.contains("--eso-metrics")));
        let options = parse_run(&args(&["--secret-stores-may-use-controller-identity=true"])).expect("valid flag");
        assert!(options.secret_stores_may_use_controller_identity);
        assert!(
            parse_run(&args(&["--secret-stores-may-use-controller-identity", "maybe"]))
                .is_err_and(|m| m.contains("--secret-stores-may-use-controller-identity"))
        );
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        assert!(parse_run(&args(&["--concurrency", "many"])).is_err_and(|m| m.contains("--concurrency")));
        assert!(parse_run(&args(&["--log-format", "xml"])).is_err_and(|m| m.contains("text or json")));
        assert!(parse_run(&args(&["--bogus"])).is_err_and(|m| m.contains("unknown option")));
        assert!(parse_run(&args(&["--namespace"])).is_err_and(|m| m.contains("needs a value")));
        assert!(parse_run(&args(&["--concurrency", "0"])).is_err_and(|m| m.contains("--concurrency")));
        assert!(parse_run(&args(&["--leader-elect=maybe"])).is_err_and(|m| m.contains("true or false")));
        assert!(parse_run(&args(&["--lease-duration=5s", "--renew-deadline=10s"])).is_err_and(|m| m.contains("--renew-deadline")));
        assert!(parse_run(&args(&["--retry-period=soon"])).is_err_and(|m| m.contains("--retry-period")));
    }
}
