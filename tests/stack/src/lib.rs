//! The whole secretbridge loopback stack for one test, demo or benchmark.
//!
//! [`Stack::start`] starts, on free 127.0.0.1 ports:
//! * the Kubernetes stand-in (`kube-standin`, through its `testing::Cluster`,
//!   so `SECRETBRIDGE_TEST_KUBECONFIG` switches to a real cluster) with the
//!   secretbridge CRDs from `deploy/crds` installed;
//! * moto (through `secretbridge-harness`) behind the AWS guard, which trusts
//!   the stand-in's CA so it can verify TokenRequest tokens against the
//!   issuer's JWKS;
//! * the GCP stand-in, trusting the same issuer for the Workload Identity pool
//!   `PROJECT.svc.id.goog`.
//!
//! Helpers seed the clouds as an administrator (AWS straight at moto, GCP with
//! the stand-in's admin rights), create Kubernetes objects, wait for
//! ExternalSecrets, and run the controller binary as a real process
//! ([`Stack::start_controller`]). Everything stops when the [`Stack`] and the
//! [`ControllerProcess`] are dropped. See the crate README for an example.
//!
//! The in-process servers run on the caller's tokio runtime: use a
//! multi-threaded runtime (`#[tokio::test(flavor = "multi_thread")]`) and never
//! block it with `std::thread::sleep`.

mod aws;
mod controller;
mod error;
mod gcp;
mod kube_helpers;

/// The harness (moto, terraform, `workspace_bin`, `repo_root`), re-exported for stack users.
pub use secretbridge_harness as harness;
/// The stand-ins, re-exported (fault codes, options, stats types).
pub use {aws_guard, gcp_standin, kube_standin};

pub use controller::{ControllerOptions, ControllerProcess, metric_value};
pub use error::StackError;
pub use gcp::{SECRET_ACCESSOR, WORKLOAD_IDENTITY_USER};
pub use kube_helpers::{STACK_FIELD_MANAGER, ready_condition, secret_strings};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use aws_guard::AwsGuard;
use gcp_standin::GcpStandin;
use kube_standin::testing::Cluster;
use std::path::Path;

/// The AWS account moto uses.
pub const AWS_ACCOUNT: &str = "123456789012";
/// The audience IRSA tokens carry.
pub const AWS_AUDIENCE: &str = "sts.amazonaws.com";
/// Static keys for admin calls to moto and for the controller's default chain.
pub const AWS_STATIC_KEY: &str = "testing";

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Start moto and the AWS guard.
    pub aws: bool,
    /// Start the GCP stand-in.
    pub gcp: bool,
    /// Enforce RBAC in the Kubernetes stand-in (the admin kubeconfig is
    /// `system:masters` either way).
    pub kube_rbac: bool,
    /// The GCP project that exists in the stand-in; the Workload Identity pool
    /// is `PROJECT.svc.id.goog`.
    pub gcp_project: String,
    /// The AWS region the seeding helpers write to and the IRSA policies name.
    pub aws_region: String,
    /// Watch events the kube stand-in keeps for resumption (410 beyond).
    pub watch_history: usize,
    /// Passed to the guard: reuse a role's policies this long (benchmarks).
    pub guard_policy_cache_ttl: Option<std::time::Duration>,
    /// The GKE clusters `(location, name)` of `gcp_project` whose identity
    /// providers the GCP stand-in trusts in the pool `PROJECT.svc.id.goog`.
    /// A token exchange must name one exactly, as
    /// `identitynamespace:PROJECT.svc.id.goog:https://container.googleapis.com/v1/projects/PROJECT/locations/LOCATION/clusters/NAME`,
    /// so an audience built wrong is refused (`invalid_target`), as by Google STS.
    pub gke_clusters: Vec<(String, String)>,
}

/// The GKE clusters the stack's GCP pool knows by default: the one the tests
/// and the demo name (`e2e`), the examples' default (`multicloud-autopilot`),
/// the leak scan's (`scan`) and the benchmark's (`bench`), all in `europe-west1`.
pub const GKE_CLUSTERS: [(&str, &str); 4] =
    [("europe-west1", "e2e"), ("europe-west1", "multicloud-autopilot"), ("europe-west1", "scan"), ("europe-west1", "bench")];

/// The Workload Identity provider of a GKE cluster, as it appears in a token
/// exchange audience after `identitynamespace:POOL:`.
pub fn gke_identity_provider(project: &str, location: &str, cluster: &str) -> String {
    format!("https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster}")
}

impl Default for StackOptions {
    /// AWS and GCP on, RBAC on, the seed's project `multicloud-demo` and region `eu-west-1`.
    fn default() -> Self {
        StackOptions {
            aws: true,
            gcp: true,
            kube_rbac: true,
            gcp_project: "multicloud-demo".to_string(),
            aws_region: "eu-west-1".to_string(),
            watch_history: 1000,
            guard_policy_cache_ttl: None,
            gke_clusters: GKE_CLUSTERS.iter().map(|(l, n)| (l.to_string(), n.to_string())).collect(),
        }
    }
}

/// Moto and the guard in front of it.
struct AwsParts {
    moto: secretbridge_harness::Moto,
    guard: AwsGuard,
    admin: SdkConfig,
}

/// A running stack. Dropping it stops every server it started.
pub struct Stack {
    options: StackOptions,
    cluster: Cluster,
    client: kube::Client,
    issuer: String,
    kube_ca_pem: Option<String>,
    aws: Option<AwsParts>,
    gcp: Option<GcpStandin>,
    scratch: tempfile::TempDir,
}

impl Stack {
    /// Starts what `options` asks for and installs the CRDs.
    pub async fn start(options: StackOptions) -> Result<Stack, StackError> {
        let scratch = tempfile::Builder::new()
            .prefix("secretbridge-stack-")
            .tempdir()
            .map_err(|source| StackError::Io { action: "creating the stack's scratch directory".into(), source })?;
        // moto's Python start is the slow part: run it while the rest starts.
        let moto = options.aws.then(|| tokio::task::spawn_blocking(secretbridge_harness::Moto::start));
        let kube_options = kube_standin::Options {
            rbac: options.kube_rbac,
            watch_history: options.watch_history,
            ..kube_standin::Options::default()
        };
        let cluster = Cluster::from_env_or_start_with(kube_options)
            .await
            .map_err(|source| StackError::Cluster { action: "starting the Kubernetes stand-in".into(), source })?;
        let crds = secretbridge_harness::repo_root().join("deploy").join("crds");
        cluster
            .install_crds(&crds)
            .await
            .map_err(|source| StackError::Cluster { action: format!("installing the CRDs from {}", crds.display()), source })?;
        let client = cluster.client();
        let issuer = cluster
            .issuer()
            .await
            .map_err(|source| StackError::Cluster { action: "reading the service-account issuer".into(), source })?;
        let kube_ca_pem = cluster.standin().map(|standin| standin.ca_pem().to_string());

        let gcp = if options.gcp {
            let standin = GcpStandin::start(gcp_standin::Options {
                projects: vec![gcp_standin::ProjectSpec::new(options.gcp_project.clone())],
                // One provider per cluster, each pinned: the pool is the
                // project's, shared by its clusters, as in GKE.
                trusted_issuers: options
                    .gke_clusters
                    .iter()
                    .map(|(location, cluster)| gcp_standin::TrustedIssuer {
                        issuer: issuer.clone(),
                        ca_pem: kube_ca_pem.clone(),
                        workload_pool: format!("{}.svc.id.goog", options.gcp_project),
                        identity_provider: Some(gke_identity_provider(&options.gcp_project, location, cluster)),
                    })
                    .collect(),
                ..gcp_standin::Options::default()
            })
            .await
            .map_err(StackError::gcp("starting"))?;
            Some(standin)
        } else {
            None
        };

        let aws = match moto {
            Some(task) => {
                let moto = task
                    .await
                    .map_err(|e| StackError::Io { action: "waiting for moto to start".into(), source: std::io::Error::other(e) })?
                    .map_err(|source| StackError::StartMoto { source })?;
                let mut guard_options = aws_guard::Options::new(moto.endpoint());
                if let Some(pem) = &kube_ca_pem {
                    guard_options = guard_options.with_extra_ca_pem(pem.clone());
                }
                guard_options.policy_cache_ttl = options.guard_policy_cache_ttl;
                let guard = AwsGuard::start(guard_options).await.map_err(|source| StackError::StartGuard { source })?;
                let admin = admin_config(&moto.endpoint(), &options.aws_region);
                Some(AwsParts { moto, guard, admin })
            }
            None => None,
        };
        Ok(Stack { options, cluster, client, issuer, kube_ca_pem, aws, gcp, scratch })
    }

    /// The options the stack was started with.
    pub fn options(&self) -> &StackOptions {
        &self.options
    }

    /// The cluster (stand-in or the real one from `SECRETBRIDGE_TEST_KUBECONFIG`).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The cluster, mutably: `cluster_mut().standin_mut()` stops and restarts
    /// the API server for fault tests.
    pub fn cluster_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// An admin kube client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig, for the controller, kubectl and terraform.
    pub fn kubeconfig_path(&self) -> &Path {
        self.cluster.kubeconfig_path()
    }

    /// The service-account issuer URL (`iss` of TokenRequest tokens).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The stand-in's CA certificate (PEM); `None` on a real cluster.
    pub fn kube_ca_pem(&self) -> Option<&str> {
        self.kube_ca_pem.as_deref()
    }

    /// A directory removed with the stack (controller logs live here).
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    fn aws_parts(&self) -> Result<&AwsParts, StackError> {
        self.aws.as_ref().ok_or(StackError::NotEnabled { part: "AWS (moto + guard)", option: "aws" })
    }

    /// The AWS guard's endpoint: what the controller gets as `AWS_ENDPOINT_URL`.
    pub fn aws_endpoint(&self) -> Result<String, StackError> {
        Ok(self.aws_parts()?.guard.endpoint())
    }

    /// moto's own endpoint (no authorization checks).
    pub fn moto_endpoint(&self) -> Result<String, StackError> {
        Ok(self.aws_parts()?.moto.endpoint())
    }

    /// The guard: call counters, throttling and outage switches.
    pub fn guard(&self) -> Result<&AwsGuard, StackError> {
        Ok(&self.aws_parts()?.guard)
    }

    /// The moto process (log path for failures).
    pub fn moto(&self) -> Result<&secretbridge_harness::Moto, StackError> {
        Ok(&self.aws_parts()?.moto)
    }

    /// The GCP stand-in: seeding, call counters, fault injection.
    pub fn gcp(&self) -> Result<&GcpStandin, StackError> {
        self.gcp.as_ref().ok_or(StackError::NotEnabled { part: "GCP (gcp-standin)", option: "gcp" })
    }

    /// The GCP stand-in's base URL: what the controller gets as `--gcp-endpoint`.
    pub fn gcp_endpoint(&self) -> Result<String, StackError> {
        Ok(self.gcp()?.endpoint())
    }

    /// The GCP project seeded in the stand-in.
    pub fn gcp_project(&self) -> &str {
        &self.options.gcp_project
    }

    /// The Workload Identity pool, `PROJECT.svc.id.goog`.
    pub fn workload_pool(&self) -> String {
        format!("{}.svc.id.goog", self.options.gcp_project)
    }

    /// The AWS region of the seeding helpers.
    pub fn aws_region(&self) -> &str {
        &self.options.aws_region
    }
}

/// Static-credential SDK config straight at moto.
fn admin_config(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            AWS_STATIC_KEY,
            AWS_STATIC_KEY,
            None,
            None,
            "secretbridge-stack",
        )))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}
