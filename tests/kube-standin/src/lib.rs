//! A Kubernetes API server stand-in for tests, speaking the real REST API.
//!
//! [`KubeStandin::start`] runs an HTTPS API server on a loopback port inside the calling tokio
//! runtime; [`testing::Cluster`] picks either a stand-in or the real cluster named by
//! `SECRETBRIDGE_TEST_KUBECONFIG`. See README.md for what is served and what is simplified.

pub mod patch;
pub mod proto;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod status;
pub mod store;
pub mod table;
pub mod testing;

mod server;
mod tls;
mod tokens;

use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

pub use rbac::UserInfo;

/// How to start a stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Enforce RBAC for every user outside `system:masters` (the admin token is in it).
    pub rbac: bool,
    /// The service-account issuer (`iss` of tokens); defaults to the server URL.
    pub issuer: Option<String>,
    /// How many watch events are retained for resumption; older versions get 410 Gone.
    pub watch_history: usize,
    /// Where to write the kubeconfig; a private temporary directory when `None`.
    pub state_dir: Option<PathBuf>,
    /// Bind `system:service-account-issuer-discovery` to `system:unauthenticated`, so clouds
    /// (the AWS guard, the GCP stand-in) can fetch `/.well-known/openid-configuration` and
    /// `/openid/v1/jwks` without credentials, the binding the Kubernetes docs give for that.
    /// Off, only ServiceAccounts may read them, as on a fresh kube-apiserver.
    pub public_issuer_discovery: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            port: 0,
            rbac: true,
            issuer: None,
            watch_history: 1000,
            state_dir: None,
            public_issuer_discovery: true,
        }
    }
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Generating the CA or serving certificate failed.
    #[error("generating the stand-in's TLS certificates failed")]
    GenerateCertificate {
        /// Cause.
        source: rcgen::Error,
    },
    /// Building the TLS configuration failed.
    #[error("configuring TLS for the stand-in failed")]
    ConfigureTls {
        /// Cause.
        source: rustls::Error,
    },
    /// Generating the RSA service-account signing key failed.
    #[error("generating the service-account signing key failed: {message}")]
    GenerateSigningKey {
        /// Cause.
        message: String,
    },
    /// Binding the listening port failed.
    #[error("binding 127.0.0.1:{port} failed; pick another port or 0 for any free one")]
    Bind {
        /// Requested port.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// Creating the state directory or writing the kubeconfig failed.
    #[error("writing the kubeconfig to {path} failed; check the directory is writable")]
    WriteKubeconfig {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Why a client for the stand-in could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig did not parse.
    #[error("parsing the kubeconfig at {path} failed")]
    ParseKubeconfig {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// Reading the kubeconfig failed.
    #[error("reading the kubeconfig at {path} failed")]
    ReadKubeconfig {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Building the kube client failed.
    #[error("building a kube client failed")]
    BuildClient {
        /// Cause.
        source: kube::Error,
    },
}

/// A running stand-in API server.
pub struct KubeStandin {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    ca_pem: String,
    kubeconfig_path: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    serve_task: Option<JoinHandle<()>>,
}

impl KubeStandin {
    /// Starts a stand-in on 127.0.0.1 and writes its admin kubeconfig.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs = tls::ServingCerts::generate()?;
        let tls = Arc::new(certs.server_config()?);
        let signer = tokio::task::spawn_blocking(tokens::TokenSigner::process_wide)
            .await
            .map_err(|e| StartError::GenerateSigningKey { message: e.to_string() })??;
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|source| StartError::Bind { port: options.port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { port: options.port, source })?;
        let url = format!("https://127.0.0.1:{}", addr.port());
        let admin_token = random_token();
        let mut store = store::Store::new(options.watch_history.max(1));
        for (plural, object) in rbac::bootstrap_objects(options.public_issuer_discovery) {
            if let Some(rt) = store.find_type("rbac.authorization.k8s.io", "v1", plural)
                && let Err(e) = store.create(&rt, "", object, "kube-apiserver")
            {
                tracing::error!(message = %e.message, "creating a bootstrap RBAC object failed");
            }
        }
        let shared = Arc::new(server::Shared {
            store: Mutex::new(store),
            signer,
            issuer: options.issuer.clone().unwrap_or_else(|| url.clone()),
            url,
            admin_token,
            users: Mutex::new(HashMap::new()),
            rbac: options.rbac,
            watches_started: Default::default(),
        });
        let (tempdir, dir) = match &options.state_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let t = tempfile::tempdir().map_err(|source| StartError::WriteKubeconfig {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let kubeconfig_path = dir.join("kubeconfig");
        let mut standin = Self {
            shared,
            addr,
            tls,
            ca_pem: certs.ca_pem,
            kubeconfig_path,
            _tempdir: tempdir,
            serve_task: None,
        };
        std::fs::create_dir_all(&dir).map_err(|source| StartError::WriteKubeconfig {
            path: dir.clone(),
            source,
        })?;
        let admin = standin.shared.admin_token.clone();
        standin.write_kubeconfig(&admin, &standin.kubeconfig_path.clone())?;
        standin.serve_task = Some(tokio::spawn(serve(listener, standin.tls.clone(), standin.shared.clone())));
        Ok(standin)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin kubeconfig (user in `system:masters`), usable by kubectl and kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The service-account token issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The JWKS that verifies service-account tokens (also served at `/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        self.shared.signer.jwks()
    }

    /// Registers a bearer token for a user with the given groups (plus `system:authenticated`).
    pub fn token_for_user(&self, name: &str, groups: &[&str]) -> String {
        let token = random_token();
        let mut all: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        all.push("system:authenticated".into());
        self.shared
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), UserInfo { name: name.into(), groups: all });
        token
    }

    /// Writes a kubeconfig for this server that authenticates with `token`.
    pub fn write_kubeconfig(&self, token: &str, path: &Path) -> Result<(), StartError> {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-standin", "cluster": {"server": self.url(), "certificate-authority-data": ca}}],
            "users": [{"name": "kube-standin-user", "user": {"token": token}}],
            "contexts": [{"name": "kube-standin", "context": {"cluster": "kube-standin", "user": "kube-standin-user", "namespace": "default"}}],
            "current-context": "kube-standin",
        });
        let yaml = serde_yaml::to_string(&config).unwrap_or_default();
        std::fs::write(path, yaml).map_err(|source| StartError::WriteKubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A kube client authenticated as the admin.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        client_from_kubeconfig(&self.kubeconfig_path, None).await
    }

    /// A kube client authenticated with another bearer token.
    pub async fn client_for_token(&self, token: &str) -> Result<kube::Client, ClientError> {
        client_from_kubeconfig(&self.kubeconfig_path, Some(token)).await
    }

    /// Stops serving (open connections and watches are cut); state is kept for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(task) = self.serve_task.take() {
            task.abort();
        }
    }

    /// How many watch requests the stand-in has accepted since it started (across
    /// [`Self::stop`] and [`Self::restart`]): a client re-establishing its watches after a
    /// restart makes it grow.
    pub fn watches_started(&self) -> u64 {
        self.shared.watches_started.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Serves again on the same port with the same state after [`Self::stop`].
    pub async fn restart(&mut self) -> Result<(), StartError> {
        self.stop();
        let port = self.addr.port();
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(source) if attempts >= 50 => return Err(StartError::Bind { port, source }),
                Err(_) => {
                    attempts += 1;
                    // The aborted listener is released asynchronously; retry briefly.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        self.serve_task = Some(tokio::spawn(serve(listener, self.tls.clone(), self.shared.clone())));
        Ok(())
    }
}

impl Drop for KubeStandin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds a kube client from a kubeconfig file, optionally replacing its credentials with a token.
pub async fn client_from_kubeconfig(path: &Path, token: Option<&str>) -> Result<kube::Client, ClientError> {
    let mut config = config_from_kubeconfig(path).await?;
    if let Some(token) = token {
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
    }
    kube::Client::try_from(config).map_err(|source| ClientError::BuildClient { source })
}

/// A client for the kubeconfig's server that sends no credentials at all (the server's
/// `system:anonymous` user).
pub async fn anonymous_client_from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let mut config = config_from_kubeconfig(path).await?;
    config.auth_info = kube::config::AuthInfo::default();
    kube::Client::try_from(config).map_err(|source| ClientError::BuildClient { source })
}

/// The client configuration a kubeconfig file describes (its current context).
async fn config_from_kubeconfig(path: &Path) -> Result<kube::Config, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).map_err(|source| ClientError::ParseKubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::ParseKubeconfig {
            path: path.to_path_buf(),
            source,
        })
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, shared: Arc<server::Shared>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| server::handle(shared.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
