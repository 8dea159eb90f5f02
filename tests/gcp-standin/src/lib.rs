//! A GCP stand-in (IAM, Resource Manager, Secret Manager, token exchange) for tests.
//!
//! One HTTP/1.1 server on loopback speaks the REST/JSON wire format of the
//! official `google-cloud-*` Rust crates and authorizes every call the way GCP
//! does: from the caller's principal and the IAM policies stored on the project,
//! the service account and the secret. Nothing here talks to a non-loopback
//! address except the JWKS fetch of a configured (real-cluster) issuer.
//!
//! # Endpoint mapping
//! Every service is served on the same base URL, [`GcpStandin::endpoint`]
//! (`http://127.0.0.1:PORT`); the paths differ exactly as on the real hosts:
//!
//! | real host | client | path served |
//! |---|---|---|
//! | `secretmanager.googleapis.com` | `google-cloud-secretmanager-v1` | `/v1/projects/*/secrets/**` |
//! | `iam.googleapis.com` | `google-cloud-iam-admin-v1` | `/v1/projects/*/serviceAccounts/**` |
//! | `cloudresourcemanager.googleapis.com` | `google-cloud-resourcemanager-v3` | `/v3/projects/*` (`:getIamPolicy`, `:setIamPolicy`) |
//! | `iamcredentials.googleapis.com` | `google-cloud-iam-credentials-v1` | `/v1/projects/-/serviceAccounts/*:generateAccessToken` |
//! | `securetoken.googleapis.com` | ESO's Workload Identity exchange | `/v1/identitybindingtoken` |
//! | `sts.googleapis.com` | standard STS token exchange | `/v1/token` |
//! | `metadata.google.internal` | Application Default Credentials on GCE/GKE | `/computeMetadata/v1/instance/service-accounts/default/{token,email}` |
//!
//! So each client gets `.with_endpoint(standin.endpoint())`.
//!
//! # Principals
//! * the admin token ([`Options::admin_token`]) may do everything;
//! * a token from `/v1/identitybindingtoken` or `/v1/token` acts as the federated
//!   Kubernetes service account: member `serviceAccount:POOL[NS/KSA]`, also matched by
//!   `principal://iam.googleapis.com/projects/*/locations/global/workloadIdentityPools/POOL/subject/ns/NS/sa/KSA`;
//! * a token from `:generateAccessToken` acts as `serviceAccount:EMAIL`, and so
//!   does one from the metadata server, for [`Options::metadata_service_account`];
//! * no token at all acts as admin only with [`Options::allow_anonymous_admin`].
//!
//! Bindings with a `condition` are stored and returned but never grant anything
//! (CEL is not evaluated), which errs on the side of denial.

mod auth;
mod http;
mod iam;
mod jwt;
mod metadata;
mod secrets;
mod state;
mod store_iam;
mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use iam::{Binding, Policy};
pub use state::FaultCode;

/// A project known to the stand-in. Calls naming any other project are denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSpec {
    /// The project ID, e.g. `demo-project`.
    pub id: String,
    /// The project number; Secret Manager returns names with it, as GCP does.
    pub number: u64,
}

impl ProjectSpec {
    /// A project whose number is derived from its ID (stable across runs).
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        // FNV-1a folded into 12 digits: stable, and looks like a real project number.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let number = 100_000_000_000 + hash % 900_000_000_000;
        Self { id, number }
    }
}

/// A Kubernetes service-account token issuer trusted for Workload Identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The issuer URL: `iss` of the tokens, and the base of
    /// `/.well-known/openid-configuration`. `https://` for real clusters and the
    /// Kubernetes stand-in; `http://` is accepted for loopback test issuers.
    pub issuer: String,
    /// Extra CA certificates (PEM) trusted when fetching discovery and JWKS.
    pub ca_pem: Option<String>,
    /// The workload identity pool, e.g. `PROJECT.svc.id.goog`. Tokens must carry it
    /// as (one of) their `aud`, and exchange audiences name it.
    pub workload_pool: String,
    /// The identity provider named in the exchange audience, e.g.
    /// `https://container.googleapis.com/v1/projects/P/locations/L/clusters/C`.
    /// `None` accepts any provider for this pool.
    pub identity_provider: Option<String>,
}

/// How to start a [`GcpStandin`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The bearer token with full rights (used by the Terraform provider's tests).
    pub admin_token: String,
    /// Issuers whose service-account tokens may be exchanged.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Projects that exist.
    pub projects: Vec<ProjectSpec>,
    /// Treat calls without an `Authorization` header as admin (default off), so
    /// clients with anonymous credentials work in simple tests.
    pub allow_anonymous_admin: bool,
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Lifetime of minted access tokens, in seconds (GCP: 3600).
    pub token_lifetime_secs: u64,
    /// The service account attached to the "instance": the metadata server
    /// issues tokens acting as this email. `None` (the default) answers 404,
    /// as an instance without a service account does. Changed after start with
    /// [`GcpStandin::set_metadata_service_account`].
    pub metadata_service_account: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            admin_token: "standin-admin-token".to_owned(),
            trusted_issuers: Vec::new(),
            projects: vec![ProjectSpec::new("standin-project")],
            allow_anonymous_admin: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_lifetime_secs: 3600,
            metadata_service_account: None,
        }
    }
}

/// What can go wrong starting the stand-in or seeding its state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("binding the GCP stand-in to {addr}: is the port free?")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// A trusted issuer's CA PEM held no usable certificate.
    #[error("reading the CA certificates of issuer {issuer}: {reason}; pass PEM certificates")]
    IssuerCa {
        /// The issuer URL.
        issuer: String,
        /// What was wrong with the PEM.
        reason: String,
    },
    /// A seeding helper named a project that is not configured.
    #[error("project {project} is not configured; add it to Options::projects or call add_project")]
    UnknownProject {
        /// The project asked for.
        project: String,
    },
    /// A seeding helper was refused by the same validation the API applies.
    #[error("seeding {what} failed: {message}")]
    Seed {
        /// What was being seeded.
        what: String,
        /// The API's error message.
        message: String,
    },
}

/// A running GCP stand-in. Dropping it stops the server.
pub struct GcpStandin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// State shared between the server task and the test-facing handle.
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) state: Mutex<state::State>,
    pub(crate) verifier: jwt::Verifier,
}

impl GcpStandin {
    /// Starts the stand-in on `options.listen` inside the current tokio runtime.
    pub async fn start(options: Options) -> Result<Self, Error> {
        let verifier = jwt::Verifier::new(&options.trusted_issuers)?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Bind { addr: options.listen, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr: options.listen, source })?;
        let mut state = state::State::new(&options.projects);
        state.metadata_service_account = options.metadata_service_account.clone();
        let shared = Arc::new(Shared { options, state: Mutex::new(state), verifier });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(http::serve(listener, Arc::clone(&shared), shutdown_rx));
        Ok(Self { addr, shared, shutdown, task: Some(task) })
    }

    /// The base URL every client gets: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.shared.options.admin_token
    }

    /// Adds a project after start.
    pub fn add_project(&self, project: ProjectSpec) {
        self.shared.lock().add_project(&project);
    }

    /// Creates a service account `ACCOUNT_ID@PROJECT.iam.gserviceaccount.com` directly
    /// and returns its email.
    pub fn seed_service_account(&self, project: &str, account_id: &str) -> Result<String, Error> {
        let mut state = self.shared.lock();
        state
            .create_service_account(project, account_id, String::new(), String::new())
            .map(|account| account.email.clone())
            .map_err(|err| seed_error(format!("service account {account_id}"), err))
    }

    /// Creates a secret with automatic replication and one version per payload.
    pub fn seed_secret(&self, project: &str, secret_id: &str, payloads: &[&[u8]]) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state
            .seed_secret(project, secret_id, payloads)
            .map_err(|err| seed_error(format!("secret {secret_id}"), err))
    }

    /// Adds `member` to `role` in the IAM policy of a project
    /// (`projects/P`), service account (`projects/P/serviceAccounts/EMAIL`) or
    /// secret (`projects/P/secrets/S`).
    pub fn grant(&self, resource: &str, role: &str, member: &str) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state
            .grant(resource, role, member)
            .map_err(|err| seed_error(format!("policy of {resource}"), err))
    }

    /// Attaches a service account to the "instance" (`None` detaches it):
    /// the metadata server's `service-accounts/default/token` then issues
    /// tokens acting as `serviceAccount:EMAIL`, authorized by IAM like any
    /// other. The account need not be seeded: IAM checks go by email.
    pub fn set_metadata_service_account(&self, email: Option<&str>) {
        self.shared.lock().metadata_service_account = email.map(str::to_owned);
    }

    /// Makes the next `calls` calls of `method` (an RPC name such as
    /// `AccessSecretVersion`, or `None` for every method) fail with `code`.
    pub fn inject_fault(&self, method: Option<&str>, code: FaultCode, calls: u32) {
        self.shared.lock().faults.push(state::Fault {
            method: method.map(str::to_owned),
            code,
            remaining: calls,
        });
    }

    /// How many injected failures are still waiting to be served (0 once every
    /// fault from [`Self::inject_fault`] was consumed by a call).
    pub fn pending_faults(&self) -> u64 {
        self.shared.lock().faults.iter().map(|fault| u64::from(fault.remaining)).sum()
    }

    /// Drops every injected failure not served yet.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// How many calls of `method` (RPC name, e.g. `AccessSecretVersion`,
    /// `GenerateAccessToken`, `IdentityBindingToken`, `StsToken`,
    /// `MetadataToken`, `MetadataEmail`) arrived,
    /// including refused and fault-injected ones.
    pub fn call_count(&self, method: &str) -> u64 {
        self.shared.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Every call counter, by RPC name.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls.clone()
    }

    /// Clears every call counter.
    pub fn reset_call_counts(&self) {
        self.shared.lock().calls.clear();
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for GcpStandin {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Shared {
    /// Locks the state; a poisoned lock (a panicking handler) still yields the data,
    /// since every mutation leaves the state consistent before it can panic.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn seed_error(what: String, err: http::ApiError) -> Error {
    if err.code == 403 {
        return Error::UnknownProject { project: err.message };
    }
    Error::Seed { what, message: err.message }
}
