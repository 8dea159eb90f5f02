//! The real [`BackendFactory`]: obtains credentials for a store's
//! ServiceAccount (TokenRequest, then the cloud's token exchanges) or, for a
//! store without one, the controller's own (AWS default chain, GCP metadata
//! server), builds the backend clients, and caches both per (store, service
//! account) until shortly before the credentials expire. One coalescer exists
//! per cache entry, so reconciles using the same backend and credentials
//! share calls.

use crate::backend::aws::{AwsParameters, AwsSecrets, AwsSettings};
use crate::backend::coalesce::{DEFAULT_WINDOW, ParameterBatcher};
use crate::backend::fetch::{CoalescedGcpSecrets, CoalescedSecrets, StoreClient};
use crate::backend::gcp::{CLOUD_PLATFORM_SCOPE, GcpEndpoints, GcpRestSecrets};
use crate::backend::http::JsonClient;
use crate::backend::metadata::{self, AdcSource, CREDENTIALS_FILE_VAR};
use crate::backend::metrics::CallMetrics;
use crate::backend::retry::RetryPolicy;
use crate::backend::CallError;
use crate::reconcile::{BackendFactory, CredentialError, ResolvedStore};
use futures::future::BoxFuture;
use http::Method;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};
use secretbridge_shared::names::{AWS_AUDIENCE_ANNOTATION, AWS_DEFAULT_AUDIENCE, AWS_ROLE_ARN_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION};
use secretbridge_shared::{AwsProvider, AwsService, GcpSmProvider, StoreProvider};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Credentials are renewed this long before they expire.
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Lifetime requested for ServiceAccount tokens.
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;

struct Cached {
    client: StoreClient,
    renew_at: Option<Instant>,
}

/// One cache slot: its own lock, held across the credential exchange, so
/// concurrent reconciles of one store make one exchange while other stores
/// go on. Empty until an exchange succeeds; a failure is never kept.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Slots kept at most. Past it, slots that are empty, expired or idle are
/// dropped; a tenant creating stores cannot grow the cache without bound.
pub const MAX_CACHED_CLIENTS: usize = 4096;

/// Builds backend clients with real credentials.
pub struct RealBackends {
    kube: Client,
    metrics: Arc<CallMetrics>,
    aws: AwsSettings,
    gcp: GcpEndpoints,
    http: JsonClient,
    cache: std::sync::Mutex<HashMap<String, Slot>>,
    /// Whether a namespaced SecretStore without an auth block may use the
    /// controller's own identity (off by default: see [`Self::check_identity`]).
    secret_stores_use_controller_identity: bool,
}

impl RealBackends {
    /// A factory using `kube` for TokenRequest and the given endpoints.
    pub fn new(kube: Client, metrics: Arc<CallMetrics>, aws: AwsSettings, gcp: GcpEndpoints) -> Result<Self, CallError> {
        Ok(RealBackends {
            kube,
            metrics,
            aws,
            gcp,
            http: JsonClient::new()?,
            cache: std::sync::Mutex::new(HashMap::new()),
            secret_stores_use_controller_identity: false,
        })
    }

    fn error(store: &ResolvedStore, step: &'static str, error: CallError) -> CredentialError {
        CredentialError {
            store: store.name.clone(),
            step,
            transient: error.kind.is_transient(),
            message: error.to_string(),
        }
    }

    fn permanent(store: &ResolvedStore, step: &'static str, message: String) -> CredentialError {
        CredentialError { store: store.name.clone(), step, message, transient: false }
    }

    async fn service_account(&self, store: &ResolvedStore) -> Result<Option<(String, String, ServiceAccount)>, CredentialError> {
        let Some((namespace, name)) = store.service_account.clone() else {
            return Ok(None);
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), &namespace);
        let account = api
            .get_opt(&name)
            .await
            .map_err(|e| CredentialError { store: store.name.clone(), step: "read ServiceAccount", message: e.to_string(), transient: true })?
            .ok_or_else(|| Self::permanent(store, "read ServiceAccount", format!("ServiceAccount {namespace}/{name} does not exist; create it or fix serviceAccountRef")))?;
        Ok(Some((namespace, name, account)))
    }

    async fn token(&self, store: &ResolvedStore, namespace: &str, name: &str, audience: &str) -> Result<String, CredentialError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec![audience.to_string()]),
                expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let answer = api.create_token_request(name, &PostParams::default(), &request).await;
        self.metrics.record("kubernetes", "TokenRequest", if answer.is_ok() { "ok" } else { "error" });
        let answer = answer.map_err(|e| CredentialError {
            store: store.name.clone(),
            step: "TokenRequest",
            message: format!("{e}; the controller needs `create` on serviceaccounts/token for {namespace}/{name}"),
            transient: !matches!(&e, kube::Error::Api(s) if s.code == 403 || s.code == 404),
        })?;
        answer
            .status
            .and_then(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Self::permanent(store, "TokenRequest", "the API server answered without a token".to_string()))
    }

    /// Lets namespaced SecretStores without an auth block authenticate as
    /// the controller (`--secret-stores-may-use-controller-identity`).
    pub fn with_secret_stores_using_controller_identity(mut self, allowed: bool) -> Self {
        self.secret_stores_use_controller_identity = allowed;
        self
    }

    /// A store without an auth block authenticates as the controller itself
    /// (AWS default chain, GCP metadata server). A ClusterSecretStore is the
    /// cluster admin's and names the namespaces it serves; a SecretStore is
    /// any namespace's, so by default it may not borrow that identity: it
    /// would let every namespace that can create one read what the
    /// controller can.
    fn check_identity(&self, store: &ResolvedStore) -> Result<(), CredentialError> {
        if store.kind == secretbridge_shared::StoreKind::SecretStore && store.service_account.is_none() && !self.secret_stores_use_controller_identity {
            return Err(Self::permanent(
                store,
                "validate store",
                format!(
                    "SecretStore {} has no auth block, so it would authenticate as the controller itself, which namespaced stores may not \
                     (every namespace could then read what the controller can); give it auth (jwt.serviceAccountRef for AWS, \
                     workloadIdentity for GCP), use a ClusterSecretStore whose conditions name the namespaces, or start the \
                     controller with --secret-stores-may-use-controller-identity=true",
                    store.name
                ),
            ));
        }
        Ok(())
    }

    /// Application Default Credentials for a GCP store without an auth
    /// block: the metadata server's token for the controller's own identity.
    async fn gcp_default_token(&self, store: &ResolvedStore) -> Result<(String, Duration), CredentialError> {
        let base = match &self.gcp.adc {
            AdcSource::MetadataServer(base) => base,
            AdcSource::CredentialsFile(file) => {
                return Err(Self::permanent(
                    store,
                    "Application Default Credentials",
                    format!(
                        "{CREDENTIALS_FILE_VAR} is set ({file}), but this controller reads Application Default Credentials \
                         from the metadata server only; unset {CREDENTIALS_FILE_VAR} in the controller's environment, \
                         or give the store auth.workloadIdentity"
                    ),
                ));
            }
        };
        let fetched = metadata::default_token(&self.http, base).await;
        self.metrics.record("gcp-metadata", "Token", status_of(&fetched));
        let token = fetched.map_err(|e| Self::error(store, "metadata server token", e))?;
        let access_token = non_empty_token(store, "metadata server token", Some(&token.access_token))?;
        Ok((access_token, token.expires_in))
    }

    async fn aws_client(&self, store: &ResolvedStore, aws: &AwsProvider) -> Result<Cached, CredentialError> {
        let mut renew_at = None;
        let mut credentials = None;
        if let Some((namespace, name, account)) = self.service_account(store).await? {
            let annotations = account.metadata.annotations.unwrap_or_default();
            let role_arn = annotations.get(AWS_ROLE_ARN_ANNOTATION).cloned().ok_or_else(|| {
                Self::permanent(store, "read ServiceAccount", format!("ServiceAccount {namespace}/{name} has no {AWS_ROLE_ARN_ANNOTATION} annotation; annotate it with the IAM role to assume"))
            })?;
            let selector = aws.auth.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.service_account_ref);
            let audience = selector
                .and_then(|s| s.audiences.first().cloned())
                .or_else(|| annotations.get(AWS_AUDIENCE_ANNOTATION).cloned())
                .unwrap_or_else(|| AWS_DEFAULT_AUDIENCE.to_string());
            let token = self.token(store, &namespace, &name, &audience).await?;
            let session = session_name(&namespace, &name);
            let assumed = self.aws.assume_role_with_web_identity(&aws.region, &role_arn, &session, &token).await;
            self.metrics.record("sts", "AssumeRoleWithWebIdentity", status_of(&assumed));
            let (mut current, mut expiry) = assumed.map_err(|e| Self::error(store, "AssumeRoleWithWebIdentity", e))?;
            if let Some(role) = &aws.role {
                let chained = self.aws.assume_role(&aws.region, current, role, &session).await;
                self.metrics.record("sts", "AssumeRole", status_of(&chained));
                (current, expiry) = chained.map_err(|e| Self::error(store, "AssumeRole", chain_advice(e, role, Some(&role_arn))))?;
            }
            renew_at = Some(renew_instant(expiry));
            credentials = Some(current);
        } else if let Some(role) = &aws.role {
            let base = self.aws.config(&aws.region, None, None).await;
            let provider = base.credentials_provider().ok_or_else(|| Self::permanent(store, "default credentials", "no default AWS credentials are configured".to_string()))?;
            let own = aws_sdk_ssm::config::ProvideCredentials::provide_credentials(&provider)
                .await
                .map_err(|e| CredentialError { store: store.name.clone(), step: "default credentials", message: e.to_string(), transient: true })?;
            let chained = self.aws.assume_role(&aws.region, own, role, "secretbridge").await;
            self.metrics.record("sts", "AssumeRole", status_of(&chained));
            let (current, expiry) = chained.map_err(|e| Self::error(store, "AssumeRole", chain_advice(e, role, None)))?;
            renew_at = Some(renew_instant(expiry));
            credentials = Some(current);
        }
        // Only the data clients follow the store's retrySettings (as in ESO);
        // the STS exchanges above keep the SDK's default.
        let retry = store.retry.map(|policy| policy.aws_retry_config());
        let config = self.aws.config(&aws.region, credentials, retry).await;
        let prefix = aws.prefix.clone().unwrap_or_default();
        let client = match aws.service {
            AwsService::ParameterStore => StoreClient::ParameterStore {
                region: aws.region.clone(),
                prefix,
                batcher: ParameterBatcher::spawn(
                    Arc::new(AwsParameters { client: aws_sdk_ssm::Client::new(&config) }),
                    self.metrics.clone(),
                    DEFAULT_WINDOW,
                ),
            },
            AwsService::SecretsManager => StoreClient::SecretsManager {
                region: aws.region.clone(),
                prefix,
                secrets: Arc::new(CoalescedSecrets::new(
                    Arc::new(AwsSecrets { client: aws_sdk_secretsmanager::Client::new(&config) }),
                    self.metrics.clone(),
                )),
            },
        };
        Ok(Cached { client, renew_at })
    }

    async fn gcp_client(&self, store: &ResolvedStore, gcp: &GcpSmProvider) -> Result<Cached, CredentialError> {
        let project = gcp
            .project_id
            .clone()
            .ok_or_else(|| Self::permanent(store, "validate store", "gcpsm.projectID is required".to_string()))?;
        let identity = gcp.auth.as_ref().and_then(|a| a.workload_identity.as_ref());
        let (access_token, expires_in) = match (identity, self.service_account(store).await?) {
            (None, _) => self.gcp_default_token(store).await?,
            (Some(identity), Some((namespace, name, account))) => {
                let cluster_project = identity.cluster_project_id.clone().unwrap_or_else(|| project.clone());
                let pool = format!("{cluster_project}.svc.id.goog");
                let audience = identity.service_account_ref.audiences.first().cloned().unwrap_or_else(|| pool.clone());
                let token = self.token(store, &namespace, &name, &audience).await?;
                let (location, cluster) = match (&identity.cluster_location, &identity.cluster_name) {
                    (Some(l), Some(c)) => (l.clone(), c.clone()),
                    _ => return Err(Self::permanent(store, "validate store", "workloadIdentity needs clusterLocation and clusterName".to_string())),
                };
                let provider = format!("https://container.googleapis.com/v1/projects/{cluster_project}/locations/{location}/clusters/{cluster}");
                let body = json!({
                    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "audience": format!("identitynamespace:{pool}:{provider}"),
                    "scope": CLOUD_PLATFORM_SCOPE,
                    "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "subject_token": token,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                });
                let url = format!("{}/v1/identitybindingtoken", self.gcp.secure_token);
                let exchanged = self.http.send(Method::POST, &url, None, Some(&body)).await;
                self.metrics.record("gcp-securetoken", "IdentityBindingToken", status_of(&exchanged));
                let exchanged = exchanged.map_err(|e| Self::error(store, "identity-binding token exchange", e))?;
                let federated = non_empty_token(store, "identity-binding token exchange", exchanged["access_token"].as_str())?;
                let federated_ttl = exchanged["expires_in"].as_u64().unwrap_or(3600);
                match account.metadata.annotations.unwrap_or_default().get(GCP_SERVICE_ACCOUNT_ANNOTATION) {
                    Some(gsa) => {
                        let url = format!("{}/v1/projects/-/serviceAccounts/{gsa}:generateAccessToken", self.gcp.iam_credentials);
                        let body = json!({"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": "3600s"});
                        let generated = self.http.send(Method::POST, &url, Some(&federated), Some(&body)).await;
                        self.metrics.record("gcp-iamcredentials", "GenerateAccessToken", status_of(&generated));
                        let generated = generated.map_err(|e| Self::error(store, "generateAccessToken", e))?;
                        let expires = generated["expireTime"]
                            .as_str()
                            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                            .map(|t| Duration::try_from(t.duration_since(jiff::Timestamp::now())).unwrap_or(Duration::ZERO))
                            .unwrap_or(Duration::from_secs(3600));
                        (non_empty_token(store, "generateAccessToken", generated["accessToken"].as_str())?, expires)
                    }
                    None => (federated, Duration::from_secs(federated_ttl)),
                }
            }
            (Some(_), None) => {
                return Err(Self::permanent(store, "validate store", "workloadIdentity needs serviceAccountRef".to_string()));
            }
        };
        let client = StoreClient::Gcp {
            project,
            location: gcp.location.clone(),
            secrets: Arc::new(CoalescedGcpSecrets::new(
                Arc::new(GcpRestSecrets {
                    http: self.http.clone(),
                    base: self.gcp.secret_manager.clone(),
                    access_token,
                    retry: store.retry.unwrap_or(RetryPolicy::UNSET),
                }),
                self.metrics.clone(),
            )),
        };
        Ok(Cached { client, renew_at: Some(renew_instant(Some(SystemTime::now() + expires_in))) })
    }
}

/// A token from an answer, or an error: an answer without one must not be
/// cached as if it were a credential.
fn non_empty_token(store: &ResolvedStore, step: &'static str, token: Option<&str>) -> Result<String, CredentialError> {
    match token {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err(CredentialError {
            store: store.name.clone(),
            step,
            message: "the answer held no token; it is retried".to_string(),
            transient: true,
        }),
    }
}

/// Adds what to check to a refused `sts:AssumeRole` into the store's `role`:
/// both ends of the chain must agree.
fn chain_advice(error: CallError, role: &str, from: Option<&str>) -> CallError {
    if error.kind != crate::backend::CallErrorKind::AccessDenied {
        return error;
    }
    let from = from.unwrap_or("the controller's own role");
    let message = format!(
        "{}; check that the trust policy of {role} (spec.provider.aws.role) names {from} as a principal, \
         and that {from} may sts:AssumeRole on {role}",
        error.message
    );
    CallError::new(error.kind, message)
}

fn status_of<T>(result: &Result<T, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.kind.reason(),
    }
}

/// STS session names allow `[\w+=,.@-]{2,64}`.
fn session_name(namespace: &str, name: &str) -> String {
    let raw = format!("secretbridge-{namespace}-{name}");
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    cleaned
}

/// When to renew credentials expiring at `expiry`: [`RENEW_BEFORE`] ahead,
/// or half way for short-lived ones.
fn renew_instant(expiry: Option<SystemTime>) -> Instant {
    let lifetime = expiry
        .and_then(|e| e.duration_since(SystemTime::now()).ok())
        .unwrap_or(Duration::from_secs(3600));
    let margin = RENEW_BEFORE.min(lifetime / 2);
    Instant::now() + lifetime.saturating_sub(margin)
}

/// Clients are built with the store's retry policy, so a change of
/// `retrySettings` must not find the client built for the old one.
fn cache_key(store: &ResolvedStore) -> String {
    let provider = serde_json::to_string(&store.provider).unwrap_or_default();
    format!("{:?}/{}/{:?}/{provider}/{:?}", store.kind, store.name, store.service_account, store.retry)
}

impl RealBackends {
    /// The cache slot for `key`, made when missing. The map's own lock is
    /// held only for this lookup, never across an exchange.
    fn slot(&self, key: String) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.contains_key(&key) && cache.len() >= MAX_CACHED_CLIENTS {
            evict(&mut cache);
        }
        cache.entry(key).or_default().clone()
    }

    /// Slots in the credential cache.
    pub fn cached_clients(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Drops slots that hold nothing usable (empty or expired) and are not in
/// use; if that frees nothing, every idle slot goes.
fn evict(cache: &mut HashMap<String, Slot>) {
    let now = Instant::now();
    let usable = |slot: &Slot| match slot.try_lock() {
        Ok(cached) => cached.as_ref().is_some_and(|c| c.renew_at.is_none_or(|at| now < at)),
        Err(_) => true,
    };
    cache.retain(|_, slot| usable(slot));
    if cache.len() >= MAX_CACHED_CLIENTS {
        cache.retain(|_, slot| slot.try_lock().is_err());
    }
}

impl BackendFactory for RealBackends {
    fn client_for<'a>(&'a self, store: &'a ResolvedStore) -> BoxFuture<'a, Result<StoreClient, CredentialError>> {
        Box::pin(async move {
            self.check_identity(store)?;
            let slot = self.slot(cache_key(store));
            let mut cached = slot.lock().await;
            if let Some(fresh) = cached.as_ref().filter(|c| c.renew_at.is_none_or(|at| Instant::now() < at)) {
                return Ok(fresh.client.clone());
            }
            *cached = None;
            let built = match &store.provider {
                StoreProvider::Aws(aws) => self.aws_client(store, aws).await?,
                StoreProvider::Gcpsm(gcp) => self.gcp_client(store, gcp).await?,
            };
            let client = built.client.clone();
            *cached = Some(built);
            Ok(client)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid() {
        assert_eq!(session_name("team", "app"), "secretbridge-team-app");
        assert!(session_name("a", &"x".repeat(100)).len() <= 64);
    }

    #[test]
    fn stores_differing_only_in_retry_settings_do_not_share_a_client() {
        let provider: StoreProvider = serde_json::from_value(json!({"aws": {"service": "ParameterStore", "region": "eu-west-1"}})).expect("provider parses");
        let store = |retry| ResolvedStore {
            kind: secretbridge_shared::StoreKind::SecretStore,
            name: "ssm".into(),
            provider: provider.clone(),
            service_account: Some(("team".into(), "app".into())),
            retry,
        };
        let policy = |max_retries| Some(RetryPolicy { max_retries, interval: Duration::from_millis(100) });
        assert_eq!(cache_key(&store(policy(3))), cache_key(&store(policy(3))));
        assert_ne!(cache_key(&store(policy(3))), cache_key(&store(policy(0))));
        assert_ne!(cache_key(&store(policy(3))), cache_key(&store(None)), "the SDK default is a policy of its own");
    }

    #[tokio::test]
    async fn the_cache_keeps_in_use_and_fresh_slots_and_drops_the_rest() {
        let mut cache: HashMap<String, Slot> = HashMap::new();
        for i in 0..MAX_CACHED_CLIENTS {
            cache.insert(format!("empty-{i}"), Slot::default());
        }
        let busy = Slot::default();
        let guard = busy.lock().await;
        cache.insert("busy".into(), busy.clone());
        evict(&mut cache);
        assert_eq!(cache.len(), 1, "empty slots go, the one in use stays");
        assert!(cache.contains_key("busy"));
        drop(guard);
    }

    #[test]
    fn an_answer_without_a_token_is_an_error_not_a_credential() {
        let provider: StoreProvider = serde_json::from_value(json!({"gcpsm": {"projectID": "p"}})).expect("provider parses");
        let store = ResolvedStore { kind: secretbridge_shared::StoreKind::ClusterSecretStore, name: "gcp".into(), provider, service_account: None, retry: None };
        assert!(non_empty_token(&store, "step", None).is_err());
        let empty = non_empty_token(&store, "step", Some("")).expect_err("empty");
        assert!(empty.transient);
        assert_eq!(non_empty_token(&store, "step", Some("t")).ok().as_deref(), Some("t"));
    }

    #[test]
    fn renewal_comes_before_expiry() {
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        let renew = renew_instant(Some(in_an_hour));
        let until = renew.saturating_duration_since(Instant::now());
        assert!(until <= Duration::from_secs(3300) && until >= Duration::from_secs(3200), "{until:?}");
        let short = renew_instant(Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(short.saturating_duration_since(Instant::now()) <= Duration::from_secs(30));
    }
}
