//! Test support: a moto server process, a test OIDC issuer over HTTPS, token
//! minting, SDK clients (admin and web identity) and seeding helpers.

use aws_config::profile::ProfileFileCredentialsProvider;
#[allow(deprecated)] // the replacement lives in aws-runtime, which is not a direct dependency
use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_guard::{AwsGuard, Options};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const AUDIENCE: &str = "sts.amazonaws.com";

const ISSUER_KEY: &str = include_str!("fixtures/issuer-key.pem");
const OTHER_KEY: &str = include_str!("fixtures/other-key.pem");

/// A moto server from the harness (on a free loopback port, stopped on drop).
pub struct Moto {
    _server: secretbridge_harness::Moto,
    pub endpoint: String,
}

impl Moto {
    pub async fn start() -> Moto {
        let server = tokio::task::spawn_blocking(secretbridge_harness::Moto::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("starting moto via the harness failed: {e}; run `make setup`"));
        let endpoint = server.endpoint();
        Moto { _server: server, endpoint }
    }
}

/// A signing key for test tokens, with its JWK.
pub struct SigningKey {
    pair: RsaKeyPair,
    pub kid: String,
}

impl SigningKey {
    fn load(pem: &str, kid: &str) -> SigningKey {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).expect("fixture key is PKCS#8 PEM");
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("fixture key is RSA");
        SigningKey { pair, kid: kid.to_string() }
    }

    pub fn jwk(&self) -> Value {
        let comps: RsaPublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&comps.n), "e": URL_SAFE_NO_PAD.encode(&comps.e),
        })
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "RS256", "kid": self.kid, "typ": "JWT" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// A Kubernetes-like OIDC issuer on loopback HTTPS: discovery + JWKS, own CA.
pub struct TestIssuer {
    pub url: String,
    pub ca_pem: String,
    pub key: SigningKey,
    /// A different RSA key that claims the issuer's kid (forged tokens).
    pub forger: SigningKey,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        let key = SigningKey::load(ISSUER_KEY, "test-kid-1");
        let forger = SigningKey::load(OTHER_KEY, "test-kid-1");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "aws-guard test issuer CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &*ca).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // A path like EKS issuers have: the provider ARN then carries it too.
        let url = format!("https://127.0.0.1:{port}/id/GUARDTEST{port}");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let discovery = json!({
            "issuer": url, "jwks_uri": format!("{url}/openid/v1/jwks"),
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string();
        let jwks = json!({ "keys": [key.jwk()] }).to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let (discovery, jwks) = (discovery.clone(), jwks.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_string();
                        let (status, body) = if path.ends_with("/.well-known/openid-configuration") {
                            (200, discovery.clone())
                        } else if path.ends_with("/openid/v1/jwks") {
                            (200, jwks.clone())
                        } else {
                            (404, "{}".to_string())
                        };
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        TestIssuer { url, ca_pem: ca.pem(), key, forger, task }
    }

    /// Claims of a Kubernetes projected service-account token.
    pub fn claims(&self, namespace: &str, service_account: &str, aud: &str, expires_in: i64) -> Value {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        json!({
            "iss": self.url,
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "aud": [aud],
            "iat": now - 60, "nbf": now - 60, "exp": now + expires_in,
            "kubernetes.io": { "namespace": namespace, "serviceaccount": { "name": service_account, "uid": "0000" } },
        })
    }

    pub fn token(&self, namespace: &str, service_account: &str) -> String {
        self.key.sign(&self.claims(namespace, service_account, AUDIENCE, 3600))
    }
}

/// moto + issuer + guard for one test.
pub struct World {
    pub _moto: Moto,
    pub issuer: TestIssuer,
    pub guard: AwsGuard,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn start() -> World {
        World::start_with(|options| options).await
    }

    /// Like [`World::start`], with the guard's options adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(Options) -> Options) -> World {
        let (moto, issuer) = tokio::join!(Moto::start(), TestIssuer::start());
        let options = adjust(Options::new(moto.endpoint.clone()).with_extra_ca_pem(issuer.ca_pem.clone()));
        let guard = AwsGuard::start(options).await.unwrap();
        World { _moto: moto, issuer, guard, dir: tempfile::tempdir().unwrap() }
    }

    /// Static-credential config for seeding, sent through the guard (pass-through).
    pub fn admin_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.guard.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test")))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build()
    }

    /// IAM straight at moto, bypassing the guard (as a test seeding moto directly would).
    pub fn iam_direct(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.admin_config()).endpoint_url(&self._moto.endpoint).build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.admin_config())
    }

    pub fn admin_ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.admin_config())
    }

    pub fn admin_secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.admin_config())
    }

    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&self.admin_config())
    }

    pub async fn register_issuer(&self, client_ids: &[&str]) {
        self.register_issuer_url(&self.issuer.url.clone(), client_ids).await;
    }

    /// Registers any issuer URL as an IAM OIDC provider (through the guard).
    pub async fn register_issuer_url(&self, url: &str, client_ids: &[&str]) {
        let mut req = self.iam().create_open_id_connect_provider().url(url);
        for id in client_ids {
            req = req.client_id_list(*id);
        }
        req.thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280").send().await.unwrap();
    }

    /// An IRSA role trusting `system:serviceaccount:NS:SA` (StringEquals on sub and aud).
    pub async fn irsa_role(&self, role: &str, sub_condition: (&str, &str), inline_policy: Option<Value>) -> String {
        self.irsa_role_for(&self.issuer.url.clone(), role, sub_condition, inline_policy).await
    }

    /// An IRSA role trusting a service account of the issuer at `issuer_url`.
    pub async fn irsa_role_for(
        &self,
        issuer_url: &str,
        role: &str,
        sub_condition: (&str, &str),
        inline_policy: Option<Value>,
    ) -> String {
        let hp = issuer_url.trim_start_matches("https://").trim_end_matches('/').to_string();
        let provider_arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{hp}");
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Federated": provider_arn },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": { format!("{hp}:aud"): AUDIENCE },
                    sub_condition.0: { format!("{hp}:sub"): sub_condition.1 },
                }
            }]
        });
        self.role_with(role, &trust, inline_policy).await
    }

    /// A role with this trust policy and, if given, the inline policy
    /// `ROLE-read`; returns its ARN.
    pub async fn role_with(&self, role: &str, trust: &Value, inline_policy: Option<Value>) -> String {
        let out = self
            .iam()
            .create_role()
            .role_name(role)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap();
        if let Some(policy) = inline_policy {
            self.iam()
                .put_role_policy()
                .role_name(role)
                .policy_name(format!("{role}-read"))
                .policy_document(policy.to_string())
                .send()
                .await
                .unwrap();
        }
        out.role().unwrap().arn().to_string()
    }

    /// The normal web-identity chain: a profile with `role_arn` and
    /// `web_identity_token_file` (what IRSA's env vars configure), STS and the
    /// service endpoints pointing at the guard.
    #[allow(deprecated)]
    pub fn web_identity_provider(&self, role_arn: &str, token: &str) -> ProfileFileCredentialsProvider {
        let id = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let token_file = self.dir.path().join(format!("token-{id}"));
        std::fs::write(&token_file, token).unwrap();
        let config_file = self.dir.path().join(format!("config-{id}"));
        std::fs::write(
            &config_file,
            format!(
                "[profile irsa]\nrole_arn = {role_arn}\nweb_identity_token_file = {}\nrole_session_name = guard-test\nendpoint_url = {}\nregion = {REGION}\n",
                token_file.display(),
                self.guard.endpoint()
            ),
        )
        .unwrap();
        let files = ProfileFiles::builder().with_file(ProfileFileKind::Config, &config_file).build();
        let provider_config = ProviderConfig::empty()
            .with_region(Some(Region::new(REGION)))
            .with_http_client(aws_smithy_http_client::Builder::new().build_http());
        ProfileFileCredentialsProvider::builder()
            .profile_files(files)
            .profile_name("irsa")
            .configure(&provider_config)
            .build()
    }

    /// SDK config whose credentials come from the web-identity chain.
    pub fn web_identity_config(&self, role_arn: &str, token: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.guard.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(self.web_identity_provider(role_arn, token)))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build()
    }
}

/// The service error code of an SDK error, e.g. `AccessDeniedException`.
pub fn error_code<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()).map(str::to_string)
}

/// The service error message of an SDK error.
pub fn error_message<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.message()).unwrap_or_default().to_string()
}
