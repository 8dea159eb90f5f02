//! Shared test fixtures: a loopback OIDC issuer that mints Kubernetes-style
//! service-account JWTs, bearer credentials for the official clients, and a raw
//! HTTP helper for the token endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use gcp_standin::{GcpStandin, Options, ProjectSpec, TrustedIssuer};
use google_cloud_auth::credentials::{CacheableResource, Credentials, CredentialsProvider, EntityTag};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

pub const PROJECT: &str = "demo-project";
pub const POOL: &str = "demo-project.svc.id.goog";
pub const PROVIDER: &str = "https://container.googleapis.com/v1/projects/demo-project/locations/europe-west1/clusters/demo";

/// Two RSA keys, generated once per test process: the issuer's, and a stranger's
/// for bad-signature tests.
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        let issuer = RsaPrivateKey::new(&mut rng, 2048).expect("generate issuer key");
        let stranger = RsaPrivateKey::new(&mut rng, 2048).expect("generate stranger key");
        (issuer, stranger)
    })
}

/// A minimal OIDC issuer on loopback (HTTP): discovery + JWKS, like a Kubernetes
/// API server's service-account issuer.
pub struct TestIssuer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const KID: &str = "test-key-1";

impl TestIssuer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind issuer");
        let url = format!("http://{}", listener.local_addr().expect("issuer addr"));
        let (key, _) = keys();
        let jwks = json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }]});
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let documents = Arc::new((discovery, jwks));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let documents = Arc::clone(&documents);
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let documents = Arc::clone(&documents);
                        async move {
                            let body = match request.uri().path() {
                                "/.well-known/openid-configuration" => Some(documents.0.to_string()),
                                "/openid/v1/jwks" => Some(documents.1.to_string()),
                                _ => None,
                            };
                            let mut response = hyper::Response::new(Full::new(Bytes::from(body.clone().unwrap_or_default())));
                            if body.is_none() {
                                *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { url, task }
    }

    /// A service-account token for `system:serviceaccount:NS:KSA`.
    pub fn token(&self, namespace: &str, ksa: &str) -> String {
        self.mint(&TokenSpec { sub: format!("system:serviceaccount:{namespace}:{ksa}"), ..TokenSpec::new(self) })
    }

    pub fn mint(&self, spec: &TokenSpec) -> String {
        let (issuer_key, stranger_key) = keys();
        let key = if spec.stranger_key { stranger_key } else { issuer_key };
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": KID});
        let claims = json!({
            "iss": spec.iss, "sub": spec.sub, "aud": spec.aud, "exp": spec.exp, "iat": now() - 10, "nbf": now() - 10,
            "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "app", "uid": "6f1d"}},
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = SigningKey::<Sha256>::new(key.clone()).sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// Claims of a minted token; defaults describe a valid token for [`POOL`].
pub struct TokenSpec {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: u64,
    pub stranger_key: bool,
}

impl TokenSpec {
    pub fn new(issuer: &TestIssuer) -> Self {
        Self {
            iss: issuer.url.clone(),
            sub: "system:serviceaccount:apps:app".into(),
            aud: vec![POOL.into()],
            exp: now() + 600,
            stranger_key: false,
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// The stand-in with one project and the test issuer trusted for [`POOL`].
pub async fn standin(issuer: &TestIssuer) -> GcpStandin {
    GcpStandin::start(Options {
        projects: vec![ProjectSpec::new(PROJECT)],
        trusted_issuers: vec![TrustedIssuer {
            issuer: issuer.url.clone(),
            ca_pem: None,
            workload_pool: POOL.into(),
            identity_provider: Some(PROVIDER.into()),
        }],
        ..Options::default()
    })
    .await
    .expect("start the stand-in")
}

/// Static bearer-token credentials, as a workload holding an access token uses.
#[derive(Debug)]
pub struct Bearer(pub String);

impl CredentialsProvider for Bearer {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError> {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {}", self.0)).expect("token is a header value");
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New { entity_tag: EntityTag::new(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        Some("googleapis.com".into())
    }
}

pub fn bearer(token: &str) -> Credentials {
    Credentials::from(Bearer(token.to_owned()))
}

pub fn anonymous() -> Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}

/// POSTs `body` (form-encoded when `form`, else JSON) and returns status and JSON.
pub async fn post(url: &str, body: &Value, form: bool, bearer: Option<&str>) -> (u16, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let (content_type, payload) = if form {
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (key, value) in body.as_object().expect("form body is an object") {
            encoder.append_pair(key, value.as_str().expect("form values are strings"));
        }
        ("application/x-www-form-urlencoded", encoder.finish())
    } else {
        ("application/json", body.to_string())
    };
    let mut request = hyper::Request::post(url).header("content-type", content_type);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(payload))).expect("request");
    let response = client.request(request).await.expect("POST to the stand-in");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("read body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The ESO identity-binding exchange body for `subject_token`.
pub fn exchange_body(subject_token: &str, audience: &str) -> Value {
    json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": audience,
        "subject_token": subject_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
    })
}

pub fn audience() -> String {
    format!("identitynamespace:{POOL}:{PROVIDER}")
}

/// Exchanges a Kubernetes token for a federated access token (must succeed).
pub async fn federated_token(standin: &GcpStandin, issuer: &TestIssuer, namespace: &str, ksa: &str) -> String {
    let url = format!("{}/v1/identitybindingtoken", standin.endpoint());
    let (status, body) = post(&url, &exchange_body(&issuer.token(namespace, ksa), &audience()), false, None).await;
    assert_eq!(status, 200, "exchange failed: {body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// The gRPC-style code of a client error, e.g. `PermissionDenied`.
pub fn code_of(err: &google_cloud_gax::error::Error) -> String {
    err.status().map(|status| format!("{:?}", status.code)).unwrap_or_else(|| format!("no status: {err}"))
}

/// Reads the `latest` version of secret `id` in [`PROJECT`] as `client`'s
/// caller: the payload, or the client error (e.g. `PermissionDenied`).
pub async fn read_latest(
    client: &google_cloud_secretmanager_v1::client::SecretManagerService,
    id: &str,
) -> Result<Vec<u8>, google_cloud_gax::error::Error> {
    let read = client.access_secret_version().set_name(format!("projects/{PROJECT}/secrets/{id}/versions/latest")).send().await?;
    Ok(read.payload.expect("an accessed version has a payload").data.to_vec())
}

macro_rules! secret_manager {
    ($standin:expr, $creds:expr) => {
        google_cloud_secretmanager_v1::client::SecretManagerService::builder()
            .with_endpoint($standin.endpoint())
            .with_credentials($creds)
            .build()
            .await
            .expect("build the Secret Manager client")
    };
}
pub(crate) use secret_manager;
