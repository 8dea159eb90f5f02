//! A reverse proxy in front of moto that authorizes like AWS (web identity, IAM policies).
//!
//! moto stores everything (IAM, SSM, Secrets Manager, KMS, STS) but accepts any
//! web-identity token, never evaluates trust policies and checks SSM/Secrets
//! Manager permissions only against resource `*`. The guard sits on its own
//! loopback port and adds those checks:
//!
//! * `AssumeRoleWithWebIdentity`: the token's issuer must be an IAM OIDC provider
//!   in moto whose client id list holds the token's `aud`; the RS256 signature is
//!   verified against the issuer's JWKS (discovery over HTTPS, trusting
//!   [`Options::extra_ca_pem`], cached, re-fetched on an unknown `kid`); `exp`,
//!   `nbf` and `iat` are checked; then the role's trust policy must allow
//!   `sts:AssumeRoleWithWebIdentity` for that provider with the `ISSUER:sub` /
//!   `ISSUER:aud` conditions. On success moto issues the credentials and the guard
//!   remembers access key id -> role.
//! * `AssumeRole` signed with a remembered key (a role chain): the target
//!   role's trust policy must allow `sts:AssumeRole` for the caller (`{"AWS": ..}`
//!   naming its role ARN, its session ARN, its account or `*`), and the caller's
//!   identity policies must allow `sts:AssumeRole` on the target role ARN, unless
//!   the trust policy names the session itself in the same account; a chained
//!   session may not ask for more than an hour. Refusals are STS's `AccessDenied`
//!   (`User: SESSION_ARN is not authorized to perform: sts:AssumeRole on resource:
//!   ROLE_ARN`). Signed with any other key it passes as moto's admin. Either way
//!   the issued key is remembered for the target role.
//! * Data calls (`AmazonSSM.GetParameter|GetParameters|GetParametersByPath`,
//!   `secretsmanager.GetSecretValue|DescribeSecret|BatchGetSecretValue`) signed
//!   with a remembered access key are evaluated against the role's inline and
//!   attached policies, with the real resource ARNs and `kms:Decrypt` for
//!   customer keys. The caller is identified by the access key id in the SigV4
//!   `Authorization` header; **the signature itself is not verified** (moto does
//!   not either). Calls signed with any other key pass through as moto's admin.
//! * `AddClientIDToOpenIDConnectProvider` / `RemoveClientIDFromOpenIDConnectProvider`, which
//!   moto 5.2.5 lacks: answered by the guard (idempotent, `NoSuchEntity`, the 100-id quota), and
//!   applied in moto by re-creating the provider under the same ARN with the new client id list,
//!   so every later read sees it.
//! * Everything else is passed through untouched (bodies streamed).
//!
//! Test hooks: [`AwsGuard::inject_throttling`], [`AwsGuard::set_unavailable`],
//! per-API counters in [`AwsGuard::stats`], and the same over HTTP:
//!
//! * `GET /guard-api/stats`: [`Stats`] as JSON;
//! * `POST /guard-api/reset-stats`: zero the counters;
//! * `POST /guard-api/throttle?count=N`: throttle the next N data calls;
//! * `POST /guard-api/unavailable?enabled=true|false`: answer 503 to everything else.
pub mod backend;
mod handler;
pub mod jwt;
pub mod policy;

use backend::Backend;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Body type used for everything the guard sends and answers.
pub(crate) type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// How to start a guard.
#[derive(Debug, Clone)]
pub struct Options {
    /// moto's base URL, e.g. `http://127.0.0.1:5000`.
    pub upstream: String,
    /// Extra CA certificates (PEM) trusted when fetching OIDC discovery and JWKS
    /// over HTTPS, e.g. the Kubernetes stand-in's CA. Without it no HTTPS issuer
    /// can be reached.
    pub extra_ca_pem: Option<String>,
    /// Where to listen; `127.0.0.1:0` picks a free loopback port.
    pub listen: SocketAddr,
    /// Static access key the guard uses for its own lookups in moto.
    pub backend_access_key: String,
    /// Secret key paired with [`Options::backend_access_key`].
    pub backend_secret_key: String,
    /// How long a role's identity policies may be reused before they are read
    /// from moto again. `None` (the default) reads them on every data call, so
    /// a policy change is seen at once even when made directly in moto. IAM
    /// writes sent through the guard always drop the cache. Benchmarks can set
    /// a TTL to take the ~4 IAM lookups per call out of the measured path.
    pub policy_cache_ttl: Option<Duration>,
}

impl Options {
    /// Options for a guard in front of moto at `upstream`, on a free loopback port.
    pub fn new(upstream: impl Into<String>) -> Self {
        Options {
            upstream: upstream.into(),
            extra_ca_pem: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend_access_key: "testing".into(),
            backend_secret_key: "testing".into(),
            policy_cache_ttl: None,
        }
    }

    /// Trusts `pem` (one or more certificates) for issuer discovery and JWKS.
    pub fn with_extra_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_ca_pem = Some(pem.into());
        self
    }
}

/// Why the guard could not start.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The upstream URL is not an absolute http(s) URL.
    #[error("upstream {url:?} is not an absolute http:// URL: {reason}; pass moto's endpoint, e.g. http://127.0.0.1:5000")]
    Upstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The extra CA PEM holds no usable certificate.
    #[error("extra CA PEM is unusable: {0}; pass the issuer's CA certificate in PEM form")]
    CaPem(String),
    /// Building the TLS client configuration failed.
    #[error("building the TLS client for JWKS fetches failed: {0}")]
    Tls(#[source] rustls::Error),
    /// Binding the listen address failed.
    #[error("binding {addr} failed: {source}; pick a free port or use port 0")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Counters the guard keeps, for call-count tests and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received per API (`GetParameters`, `AssumeRoleWithWebIdentity`, ...),
    /// counted on arrival, including throttled and denied ones.
    pub calls: BTreeMap<String, u64>,
    /// Requests refused per API (AccessDenied, InvalidIdentityToken, ExpiredToken...).
    pub denied: BTreeMap<String, u64>,
    /// Data calls answered with an injected ThrottlingException.
    pub throttled: u64,
    /// Requests answered 503 while the backend was switched unavailable.
    pub unavailable: u64,
}

impl Stats {
    /// How many `api` requests arrived (0 if none).
    pub fn calls(&self, api: &str) -> u64 {
        self.calls.get(api).copied().unwrap_or(0)
    }

    /// How many `api` requests were refused (0 if none).
    pub fn denied(&self, api: &str) -> u64 {
        self.denied.get(api).copied().unwrap_or(0)
    }
}

/// A session the guard has seen issued (`AssumeRoleWithWebIdentity` or `AssumeRole`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The role ARN that was assumed.
    pub role_arn: String,
    /// The assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub assumed_role_arn: String,
    /// When the credentials expire, if moto said.
    pub expires: Option<SystemTime>,
}

/// A role's identity policies and when they were read.
type CachedPolicies = (Instant, Arc<Vec<policy::PolicyDocument>>);

pub(crate) struct State {
    pub(crate) upstream: http::uri::Parts,
    pub(crate) client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    pub(crate) backend: Backend,
    pub(crate) sessions: Mutex<HashMap<String, Session>>,
    pub(crate) jwks: Mutex<HashMap<String, jwt::Jwks>>,
    stats: Mutex<Stats>,
    pub(crate) throttle_next: AtomicU64,
    pub(crate) unavailable: AtomicBool,
    policy_cache_ttl: Option<Duration>,
    policy_cache: Mutex<HashMap<String, CachedPolicies>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain inserts).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    pub(crate) fn count_call(&self, api: &str) {
        *lock(&self.stats).calls.entry(api.to_string()).or_default() += 1;
    }

    pub(crate) fn count_denied(&self, api: &str) {
        *lock(&self.stats).denied.entry(api.to_string()).or_default() += 1;
    }

    pub(crate) fn count_throttled(&self) {
        lock(&self.stats).throttled += 1;
    }

    pub(crate) fn count_unavailable(&self) {
        lock(&self.stats).unavailable += 1;
    }

    pub(crate) fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    pub(crate) fn reset_stats(&self) {
        *lock(&self.stats) = Stats::default();
    }

    pub(crate) fn session(&self, access_key: &str) -> Option<Session> {
        lock(&self.sessions).get(access_key).cloned()
    }

    pub(crate) fn remember(&self, access_key: String, session: Session) {
        lock(&self.sessions).insert(access_key, session);
    }

    pub(crate) fn cached_jwks(&self, issuer: &str) -> Option<jwt::Jwks> {
        lock(&self.jwks).get(issuer).cloned()
    }

    pub(crate) fn cache_jwks(&self, issuer: &str, jwks: jwt::Jwks) {
        lock(&self.jwks).insert(issuer.to_string(), jwks);
    }

    /// The role's identity policies, from the cache when a TTL allows it.
    pub(crate) async fn identity_policies(
        &self,
        role: &str,
    ) -> Result<Arc<Vec<policy::PolicyDocument>>, backend::LookupError> {
        if let Some(ttl) = self.policy_cache_ttl
            && let Some((at, docs)) = lock(&self.policy_cache).get(role)
            && at.elapsed() < ttl
        {
            return Ok(docs.clone());
        }
        let docs = Arc::new(self.backend.identity_policies(role).await?);
        if self.policy_cache_ttl.is_some() {
            lock(&self.policy_cache).insert(role.to_string(), (Instant::now(), docs.clone()));
        }
        Ok(docs)
    }

    /// Drops cached policies (an IAM write went through the guard).
    pub(crate) fn forget_policies(&self) {
        lock(&self.policy_cache).clear();
    }

    /// Takes one injected throttle if any is pending.
    pub(crate) fn take_throttle(&self) -> bool {
        self.throttle_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

/// A running guard. Dropping it stops accepting connections.
pub struct AwsGuard {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for AwsGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsGuard").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn tls_client_config(extra_ca_pem: Option<&str>) -> Result<rustls::ClientConfig, GuardError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = extra_ca_pem {
        let mut added = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| GuardError::CaPem(e.to_string()))?;
            roots.add(cert).map_err(|e| GuardError::CaPem(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(GuardError::CaPem("no CERTIFICATE block found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(GuardError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl AwsGuard {
    /// Starts a guard on its own tokio task; returns once it is listening.
    pub async fn start(options: Options) -> Result<AwsGuard, GuardError> {
        let upstream_err = |reason: &str| GuardError::Upstream { url: options.upstream.clone(), reason: reason.into() };
        let uri: http::Uri = options.upstream.parse().map_err(|e: http::uri::InvalidUri| upstream_err(&e.to_string()))?;
        if uri.scheme_str() != Some("http") && uri.scheme_str() != Some("https") {
            return Err(upstream_err("scheme must be http or https"));
        }
        if uri.authority().is_none() {
            return Err(upstream_err("no host:port"));
        }
        let upstream = uri.into_parts();
        let tls = tls_client_config(options.extra_ca_pem.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let backend = Backend::new(
            options.upstream.trim_end_matches('/'),
            &options.backend_access_key,
            &options.backend_secret_key,
        );
        let state = Arc::new(State {
            upstream,
            client,
            backend,
            sessions: Mutex::new(HashMap::new()),
            jwks: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
            throttle_next: AtomicU64::new(0),
            unavailable: AtomicBool::new(false),
            policy_cache_ttl: options.policy_cache_ttl,
            policy_cache: Mutex::new(HashMap::new()),
        });
        let listener =
            TcpListener::bind(options.listen).await.map_err(|source| GuardError::Bind { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| GuardError::Bind { addr: options.listen, source })?;
        let accept_state = state.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(err) => {
                        tracing::warn!(error = %err, "aws-guard accept failed");
                        continue;
                    }
                };
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handler::handle(state.clone(), req));
                    if let Err(err) =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                    {
                        tracing::debug!(error = %err, "aws-guard connection ended with an error");
                    }
                });
            }
        });
        tracing::info!(%addr, upstream = %options.upstream, "aws-guard listening");
        Ok(AwsGuard { addr, state, accept_task })
    }

    /// The guard's base URL, e.g. `http://127.0.0.1:40123`; use it as the SDK's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the guard listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }

    /// Answers the next `n` data calls (SSM / Secrets Manager reads) with
    /// `ThrottlingException` (HTTP 400) instead of forwarding them.
    pub fn inject_throttling(&self, n: u64) {
        self.state.throttle_next.store(n, Ordering::SeqCst);
    }

    /// While `on`, every request except `/guard-api/` is answered with HTTP 503.
    pub fn set_unavailable(&self, on: bool) {
        self.state.unavailable.store(on, Ordering::SeqCst);
    }

    /// The session issued for `access_key_id`, if the guard saw it issued.
    pub fn session(&self, access_key_id: &str) -> Option<Session> {
        self.state.session(access_key_id)
    }
}

impl Drop for AwsGuard {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}
