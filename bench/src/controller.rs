//! Controller scenarios on the loopback stack: cold sync of N
//! ExternalSecrets over K = N/2 keys, and a steady state with
//! `refreshInterval: 1m`. The controller is a release-built process started
//! by `secretbridge-stack` and watching only the run's namespace; its cost
//! is read from `/proc` and its call counts from its own `/metrics`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use secretbridge_shared::ExternalSecret;
use secretbridge_shared::condition::{ConditionStatus, find_ready};
use secretbridge_shared::names::AWS_ROLE_ARN_ANNOTATION;
use secretbridge_stack::{ControllerOptions, ControllerProcess, Stack, StackOptions};
use serde_json::json;

use crate::error::BenchError;
use crate::metrics::CallCounts;
use crate::procfs::{self, ProcSample};
use crate::stats::percentile;

/// Field manager of the objects the driver creates.
const FIELD_MANAGER: &str = "secretbridge-bench";
/// Server-side applies in flight while creating ExternalSecrets.
const CREATE_CONCURRENCY: usize = 32;
/// Cloud-side seeding calls in flight.
const SEED_CONCURRENCY: usize = 16;

/// Which cloud the ExternalSecrets read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SSM Parameter Store through moto behind the AWS guard, IRSA auth.
    Aws,
    /// Secret Manager on the GCP stand-in, Workload Identity auth.
    Gcp,
}

impl Backend {
    /// Short name for the table.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Aws => "aws",
            Backend::Gcp => "gcp",
        }
    }
}

/// What one controller run measured.
#[derive(Debug, Clone)]
pub struct ColdSync {
    /// Backend of the run.
    pub backend: Backend,
    /// ExternalSecrets.
    pub n: usize,
    /// Unique remote keys.
    pub k: usize,
    /// ExternalSecrets that became Ready before the timeout.
    pub ready: usize,
    /// First create request to the last Ready.
    pub wall: Duration,
    /// First create request to the last create answered.
    pub create_wall: Duration,
    /// Per object, create answered to Ready seen: p50.
    pub p50: Duration,
    /// Per object: p99.
    pub p99: Duration,
    /// Backend calls the controller counted during the run.
    pub calls: CallCounts,
    /// Controller RSS once started, before any ExternalSecret existed.
    pub idle: ProcSample,
    /// Controller resources when all were Ready.
    pub at_ready: ProcSample,
    /// CPU seconds of this driver process during the run: the in-process
    /// Kubernetes stand-in, the watch and the creates.
    pub driver_cpu_seconds: f64,
}

/// What the steady state measured after a cold sync.
#[derive(Debug, Clone)]
pub struct Steady {
    /// The run it continues.
    pub cold: ColdSync,
    /// How long it was observed.
    pub observed: Duration,
    /// Backend calls during the observation.
    pub calls: CallCounts,
    /// Resources at the start of the observation.
    pub start: ProcSample,
    /// Resources at the end.
    pub end: ProcSample,
    /// Highest RSS sampled during the observation, KiB.
    pub max_rss_kib: u64,
}

/// Settings of a backend's runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Cold-sync sizes N.
    pub sizes: Vec<usize>,
    /// N of the steady-state run, if any.
    pub steady_n: Option<usize>,
    /// How long the steady state is observed.
    pub steady_for: Duration,
}

fn stack_error(action: &str) -> impl FnOnce(secretbridge_stack::StackError) -> BenchError + '_ {
    move |source| BenchError::Stack { action: action.to_string(), source: Box::new(source) }
}

/// Starts one stack for the backend and runs every size of the plan on it,
/// each in its own namespace with a fresh controller.
pub async fn run(backend: Backend, plan: &Plan, controller_binary: &Path) -> Result<(Vec<ColdSync>, Option<Steady>), BenchError> {
    let options = StackOptions {
        aws: backend == Backend::Aws,
        gcp: backend == Backend::Gcp,
        // Watchers of 5,000 objects must not be sent 410 Gone mid-run.
        watch_history: 100_000,
        // The guard re-reads a role's policies from moto per request
        // otherwise, which would measure moto, not the controller.
        guard_policy_cache_ttl: Some(Duration::from_secs(3600)),
        ..StackOptions::default()
    };
    println!("[{}] starting the stack", backend.name());
    let stack = Stack::start(options).await.map_err(stack_error("starting the stack"))?;
    if backend == Backend::Aws {
        stack.create_oidc_provider().await.map_err(stack_error("creating the IAM OIDC provider"))?;
    }
    let mut colds = Vec::new();
    for &n in &plan.sizes {
        let run = Run::prepare(&stack, backend, n, "1h").await?;
        let (cold, controller) = run.cold_sync(&stack, controller_binary).await?;
        print_cold(&cold);
        colds.push(cold);
        stop(controller).await;
    }
    let steady = match plan.steady_n {
        Some(n) => {
            let run = Run::prepare(&stack, backend, n, "1m").await?;
            let (cold, controller) = run.cold_sync(&stack, controller_binary).await?;
            print_cold(&cold);
            let steady = observe_steady(cold, &controller, plan.steady_for).await?;
            stop(controller).await;
            Some(steady)
        }
        None => None,
    };
    Ok((colds, steady))
}

async fn stop(mut controller: ControllerProcess) {
    if let Err(error) = controller.terminate(Duration::from_secs(20)).await {
        eprintln!("stopping the controller: {error}");
    }
}

fn print_cold(cold: &ColdSync) {
    println!(
        "[{}] N={} K={}: {}/{} Ready in {:.2} s (creates {:.2} s), p50 {:.2} s, p99 {:.2} s, calls {}, peak RSS {} KiB, CPU {:.2} s (driver + kube stand-in {:.2} s)",
        cold.backend.name(),
        cold.n,
        cold.k,
        cold.ready,
        cold.n,
        cold.wall.as_secs_f64(),
        cold.create_wall.as_secs_f64(),
        cold.p50.as_secs_f64(),
        cold.p99.as_secs_f64(),
        cold.calls.summary(),
        cold.at_ready.peak_rss_kib,
        cold.at_ready.cpu_seconds,
        cold.driver_cpu_seconds
    );
}

/// A namespace with its store, service account and seeded keys, ready for
/// ExternalSecrets.
struct Run {
    backend: Backend,
    namespace: String,
    n: usize,
    k: usize,
    refresh_interval: &'static str,
    store: &'static str,
}

impl Run {
    async fn prepare(stack: &Stack, backend: Backend, n: usize, refresh_interval: &'static str) -> Result<Run, BenchError> {
        let k = n.div_ceil(2);
        let namespace = stack
            .create_namespace(&format!("bench-{}-{n}", backend.name()))
            .await
            .map_err(stack_error("creating the namespace"))?;
        println!("[{}] N={n}: seeding {k} keys in {namespace}", backend.name());
        let service_account = "bench";
        let store = "bench-store";
        match backend {
            Backend::Aws => {
                let pattern = stack.parameter_arn(&format!("/{namespace}/*"));
                let role = stack
                    .create_irsa_role(&namespace, &namespace, service_account, &[pattern.as_str()], &[])
                    .await
                    .map_err(stack_error("creating the IRSA role"))?;
                stack
                    .create_service_account(&namespace, service_account, &[(AWS_ROLE_ARN_ANNOTATION, role.as_str())])
                    .await
                    .map_err(stack_error("creating the service account"))?;
                futures::stream::iter(0..k)
                    .map(|i| {
                        let name = format!("/{namespace}/key-{i}");
                        async move { stack.put_parameter(&name, &format!("value-{i}")).await.map(|_| ()) }
                    })
                    .buffer_unordered(SEED_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await
                    .map_err(stack_error("seeding SSM parameters"))?;
                let yaml = format!(
                    "apiVersion: secretbridge.io/v1\nkind: SecretStore\nmetadata:\n  name: {store}\n  namespace: {namespace}\nspec:\n  provider:\n    aws:\n      service: ParameterStore\n      region: {region}\n      auth:\n        jwt:\n          serviceAccountRef:\n            name: {service_account}\n",
                    region = stack.aws_region()
                );
                stack.apply_yaml(&yaml).await.map_err(stack_error("applying the SecretStore"))?;
            }
            Backend::Gcp => {
                stack
                    .create_service_account(&namespace, service_account, &[])
                    .await
                    .map_err(stack_error("creating the service account"))?;
                let member = stack.ksa_member(&namespace, service_account);
                for i in 0..k {
                    let name = format!("{namespace}-key-{i}");
                    stack.seed_secret(&name, &[format!("value-{i}").as_bytes()]).map_err(stack_error("seeding a GCP secret"))?;
                    stack.grant_secret_accessor(&name, &member).map_err(stack_error("granting secretAccessor"))?;
                }
                let yaml = format!(
                    "apiVersion: secretbridge.io/v1\nkind: SecretStore\nmetadata:\n  name: {store}\n  namespace: {namespace}\nspec:\n  provider:\n    gcpsm:\n      projectID: {project}\n      auth:\n        workloadIdentity:\n          clusterLocation: europe-west1\n          clusterName: bench\n          clusterProjectID: {project}\n          serviceAccountRef:\n            name: {service_account}\n",
                    project = stack.gcp_project()
                );
                stack.apply_yaml(&yaml).await.map_err(stack_error("applying the SecretStore"))?;
            }
        }
        Ok(Run { backend, namespace, n, k, refresh_interval, store })
    }

    fn remote_key(&self, i: usize) -> String {
        let key = i % self.k;
        match self.backend {
            Backend::Aws => format!("/{}/key-{key}", self.namespace),
            Backend::Gcp => format!("{}-key-{key}", self.namespace),
        }
    }

    /// Starts a controller, creates the N ExternalSecrets as fast as the API
    /// server takes them, and waits until each is Ready.
    async fn cold_sync(&self, stack: &Stack, controller_binary: &Path) -> Result<(ColdSync, ControllerProcess), BenchError> {
        let options = ControllerOptions::new(controller_binary)
            .with_args(["--namespace", self.namespace.as_str()])
            // Logging every reconcile would measure the log writer.
            .with_env("RUST_LOG", "warn");
        let controller = stack.start_controller(options).await.map_err(stack_error("starting the controller"))?;
        let pid = controller.pid();
        let idle = procfs::sample(pid)?;
        // The controller is fresh, so every call it counts belongs to this
        // cold sync: it may exchange its token for the SecretStore before a
        // first scrape could be taken, so no scrape is the baseline.
        let before = CallCounts::default();

        let api: Api<ExternalSecret> = Api::namespaced(stack.client(), &self.namespace);
        let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let watch = tokio::spawn(watch_ready(api.clone(), ready_at.clone(), self.n));
        // Give the watch its initial list before the first create.
        tokio::time::sleep(Duration::from_millis(300)).await;

        println!("[{}] N={}: creating {} ExternalSecrets", self.backend.name(), self.n, self.n);
        let driver_before = procfs::sample(std::process::id())?;
        let started = Instant::now();
        let created_at: Vec<(String, Instant)> = futures::stream::iter(0..self.n)
            .map(|i| {
                let api = api.clone();
                let name = format!("es-{i}");
                let body = json!({
                    "apiVersion": "secretbridge.io/v1",
                    "kind": "ExternalSecret",
                    "metadata": {"name": name, "namespace": self.namespace},
                    "spec": {
                        "refreshInterval": self.refresh_interval,
                        "secretStoreRef": {"name": self.store, "kind": "SecretStore"},
                        "target": {"name": name, "creationPolicy": "Owner"},
                        "data": [{"secretKey": "value", "remoteRef": {"key": self.remote_key(i)}}],
                    },
                });
                async move {
                    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
                        .await
                        .map(|_| (name, Instant::now()))
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect()
            .await
            .map_err(|source| BenchError::Kube { action: "creating ExternalSecrets".into(), source: Box::new(source) })?;
        let create_wall = started.elapsed();

        let timeout = Duration::from_secs(60) + Duration::from_millis(100) * self.n as u32;
        let deadline = Instant::now() + timeout;
        loop {
            let ready = ready_at.lock().unwrap_or_else(|p| p.into_inner()).len();
            if ready >= self.n || Instant::now() > deadline || watch.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        watch.abort();
        let at_ready = procfs::sample(pid)?;
        let driver_cpu_seconds = procfs::sample(std::process::id())?.cpu_seconds - driver_before.cpu_seconds;
        let calls = metrics(&controller).await?.since(&before);
        let ready_at = ready_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if ready_at.len() < self.n {
            eprintln!(
                "[{}] N={}: only {}/{} Ready after {:?}; controller log tail:\n{}",
                self.backend.name(),
                self.n,
                ready_at.len(),
                self.n,
                timeout,
                controller.log_tail()
            );
        }
        let latencies: Vec<Duration> = created_at
            .iter()
            .filter_map(|(name, created)| ready_at.get(name).map(|ready| ready.saturating_duration_since(*created)))
            .collect();
        let wall = ready_at.values().max().map(|last| last.saturating_duration_since(started)).unwrap_or(timeout);
        let cold = ColdSync {
            backend: self.backend,
            n: self.n,
            k: self.k,
            ready: ready_at.len(),
            wall,
            create_wall,
            p50: percentile(&latencies, 0.5).unwrap_or(Duration::ZERO),
            p99: percentile(&latencies, 0.99).unwrap_or(Duration::ZERO),
            calls,
            idle,
            at_ready,
            driver_cpu_seconds,
        };
        Ok((cold, controller))
    }
}

async fn metrics(controller: &ControllerProcess) -> Result<CallCounts, BenchError> {
    let text = controller.metrics_text().await.map_err(stack_error("scraping /metrics"))?;
    Ok(CallCounts::parse(&text))
}

/// Records when each ExternalSecret is first seen `Ready=True`; ends when
/// `n` are.
async fn watch_ready(api: Api<ExternalSecret>, ready_at: Arc<Mutex<HashMap<String, Instant>>>, n: usize) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => object,
            Ok(_) => continue,
            // The watcher re-lists by itself after errors.
            Err(_) => continue,
        };
        let is_ready = object
            .status
            .as_ref()
            .and_then(|status| find_ready(&status.conditions))
            .is_some_and(|condition| condition.status == ConditionStatus::True);
        if is_ready && let Some(name) = object.metadata.name {
            let mut ready = ready_at.lock().unwrap_or_else(|p| p.into_inner());
            ready.entry(name).or_insert_with(Instant::now);
            if ready.len() >= n {
                return;
            }
        }
    }
}

/// Watches a synced set with `refreshInterval: 1m` for `duration`.
async fn observe_steady(cold: ColdSync, controller: &ControllerProcess, duration: Duration) -> Result<Steady, BenchError> {
    println!("[{}] steady state: N={} refreshInterval 1m, observing {:?}", cold.backend.name(), cold.n, duration);
    let pid = controller.pid();
    let before = metrics(controller).await?;
    let start = procfs::sample(pid)?;
    let began = Instant::now();
    let mut max_rss_kib = start.rss_kib;
    while began.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(5).min(duration.saturating_sub(began.elapsed()))).await;
        max_rss_kib = max_rss_kib.max(procfs::sample(pid)?.rss_kib);
    }
    let observed = began.elapsed();
    let end = procfs::sample(pid)?;
    let calls = metrics(controller).await?.since(&before);
    Ok(Steady { cold, observed, calls, start, end, max_rss_kib })
}
