//! Test support shared by every crate's integration tests: a cluster that is either a fresh
//! in-process stand-in or, when `SECRETBRIDGE_TEST_KUBECONFIG` is set, that real cluster
//! (envtest's existing-cluster mode: each test makes its own namespaces and cleans them up).

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ClientError, KubeStandin, Options, StartError};

/// The environment variable that points tests at a real cluster.
pub const REAL_CLUSTER_ENV: &str = "SECRETBRIDGE_TEST_KUBECONFIG";

/// Why a test cluster could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Starting the stand-in failed.
    #[error("starting the kube stand-in failed")]
    Start {
        /// Cause.
        #[from]
        source: StartError,
    },
    /// Building a client failed.
    #[error("building a client for the test cluster failed")]
    Client {
        /// Cause.
        #[from]
        source: ClientError,
    },
    /// An API call failed.
    #[error("{action} failed")]
    Api {
        /// What was attempted.
        action: String,
        /// Cause.
        source: kube::Error,
    },
    /// A CRD file could not be read or parsed.
    #[error("reading CRD file {path} failed: {message}")]
    ReadCrd {
        /// File.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A CRD did not become Established in time.
    #[error("CRD {name} was not Established within 60s")]
    CrdNotEstablished {
        /// CRD name.
        name: String,
    },
}

/// A cluster for one test.
pub struct Cluster {
    client: kube::Client,
    kubeconfig_path: PathBuf,
    standin: Option<KubeStandin>,
    namespaces: Vec<String>,
}

impl Cluster {
    /// The real cluster from `SECRETBRIDGE_TEST_KUBECONFIG`, else a fresh stand-in (RBAC enforced).
    pub async fn from_env_or_start() -> Result<Self, ClusterError> {
        Self::from_env_or_start_with(Options::default()).await
    }

    /// Like [`Self::from_env_or_start`], with options for the stand-in case.
    pub async fn from_env_or_start_with(options: Options) -> Result<Self, ClusterError> {
        if let Some(path) = std::env::var_os(REAL_CLUSTER_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let client = crate::client_from_kubeconfig(&path, None).await?;
            return Ok(Self {
                client,
                kubeconfig_path: path,
                standin: None,
                namespaces: Vec::new(),
            });
        }
        let standin = KubeStandin::start(options).await?;
        let client = standin.client().await?;
        Ok(Self {
            client,
            kubeconfig_path: standin.kubeconfig_path().to_path_buf(),
            standin: Some(standin),
            namespaces: Vec::new(),
        })
    }

    /// Whether this is a real cluster.
    pub fn is_real(&self) -> bool {
        self.standin.is_none()
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig (for kubectl, terraform and the controller process).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The stand-in, when not on a real cluster.
    pub fn standin(&self) -> Option<&KubeStandin> {
        self.standin.as_ref()
    }

    /// The stand-in, mutably (for stop/restart fault tests).
    pub fn standin_mut(&mut self) -> Option<&mut KubeStandin> {
        self.standin.as_mut()
    }

    /// A client that authenticates with a bearer token (e.g. from TokenRequest).
    pub async fn client_for_token(&self, token: &str) -> Result<kube::Client, ClusterError> {
        Ok(crate::client_from_kubeconfig(&self.kubeconfig_path, Some(token)).await?)
    }

    /// A client that sends no credentials (`system:anonymous`).
    pub async fn anonymous_client(&self) -> Result<kube::Client, ClusterError> {
        Ok(crate::anonymous_client_from_kubeconfig(&self.kubeconfig_path).await?)
    }

    /// A TokenRequest token for a ServiceAccount (empty `audiences`: the API server's own).
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        expiration_seconds: i64,
    ) -> Result<String, ClusterError> {
        let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(json!({
            "spec": {"audiences": audiences, "expirationSeconds": expiration_seconds}
        }))
        .map_err(|e| ClusterError::Api { action: "building a TokenRequest".into(), source: kube::Error::SerdeError(e) })?;
        let response = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|source| ClusterError::Api {
                action: format!("requesting a token for serviceaccount {namespace}/{name}"),
                source,
            })?;
        Ok(response.status.and_then(|s| s.token).unwrap_or_default())
    }

    /// The service-account issuer, read from the cluster's OIDC discovery document.
    pub async fn issuer(&self) -> Result<String, ClusterError> {
        let doc = self.get_raw("/.well-known/openid-configuration").await?;
        Ok(doc["issuer"].as_str().unwrap_or_default().to_string())
    }

    /// GETs a path and parses JSON.
    pub async fn get_raw(&self, path: &str) -> Result<Value, ClusterError> {
        let request = http_get(path);
        self.client
            .request::<Value>(request)
            .await
            .map_err(|source| ClusterError::Api { action: format!("GET {path}"), source })
    }

    /// Creates a namespace with a unique name starting with `prefix`; deleted by [`Self::cleanup`].
    pub async fn create_namespace(&mut self, prefix: &str) -> Result<String, ClusterError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"generateName": format!("{prefix}-")}}))
                .map_err(|e| ClusterError::Api {
                    action: "building a namespace".into(),
                    source: kube::Error::SerdeError(e),
                })?;
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|source| ClusterError::Api { action: format!("creating namespace {prefix}-*"), source })?;
        let name = created.metadata.name.unwrap_or_default();
        self.namespaces.push(name.clone());
        Ok(name)
    }

    /// Installs (server-side applies) every CRD in a directory and waits until each is Established.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>, ClusterError> {
        let mut names = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ClusterError::ReadCrd { path: dir.to_path_buf(), message: e.to_string() })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ClusterError::ReadCrd { path: path.clone(), message: e.to_string() })?;
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = serde::Deserialize::deserialize(document)
                    .map_err(|e: serde_yaml::Error| ClusterError::ReadCrd { path: path.clone(), message: e.to_string() })?;
                let value: Value = value;
                if value["kind"] != "CustomResourceDefinition" {
                    continue;
                }
                let name = self.install_crd(&value).await?;
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Server-side applies one CRD and waits until it is Established.
    pub async fn install_crd(&self, crd: &Value) -> Result<String, ClusterError> {
        let api = crd_api(&self.client);
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let object: DynamicObject = serde_json::from_value(crd.clone()).map_err(|e| ClusterError::ReadCrd {
            path: PathBuf::from(&name),
            message: e.to_string(),
        })?;
        api.patch(&name, &PatchParams::apply("secretbridge-tests").force(), &Patch::Apply(&object))
            .await
            .map_err(|source| ClusterError::Api { action: format!("applying CRD {name}"), source })?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let current = api
                .get(&name)
                .await
                .map_err(|source| ClusterError::Api { action: format!("reading CRD {name}"), source })?;
            let established = current.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            if established {
                return Ok(name);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClusterError::CrdNotEstablished { name });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the namespaces this cluster created (best effort; real clusters finish asynchronously).
    pub async fn cleanup(&mut self) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        for ns in self.namespaces.drain(..) {
            let _ = api.delete(&ns, &DeleteParams::background()).await;
        }
    }
}

/// The `apiextensions.k8s.io/v1` CRD API as dynamic objects.
pub fn crd_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "customresourcedefinitions");
    Api::all_with(client.clone(), &resource)
}

fn http_get(path: &str) -> hyper::http::Request<Vec<u8>> {
    let mut request = hyper::http::Request::new(Vec::new());
    *request.uri_mut() = path.parse().unwrap_or_default();
    request
}
