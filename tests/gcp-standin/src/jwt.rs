//! Verifies Kubernetes service-account JWTs (RS256) against the issuer's JWKS,
//! fetched through OIDC discovery and cached per issuer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::{Error, TrustedIssuer};

/// Why a subject token was refused; the message becomes `error_description`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("the subject token is not a JWT (three base64url parts): {0}")]
    Malformed(String),
    #[error("the subject token's signing algorithm {0} is not RS256")]
    Algorithm(String),
    #[error("the issuer {0} of the subject token is not trusted for this audience")]
    UntrustedIssuer(String),
    #[error("fetching the JWKS of issuer {issuer} failed: {reason}")]
    Jwks { issuer: String, reason: String },
    #[error("no key with kid {kid:?} in the JWKS of issuer {issuer}")]
    UnknownKey { issuer: String, kid: Option<String> },
    #[error("the subject token's signature is invalid")]
    Signature,
    #[error("the subject token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the subject token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("the audience in the subject token {found:?} does not match the expected audience {expected}")]
    Audience { found: Vec<String>, expected: String },
    #[error("the subject {0} is not a Kubernetes service account (system:serviceaccount:NS:NAME)")]
    Subject(String),
}

/// The claims of a verified token that the exchange needs.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    pub(crate) namespace: String,
    pub(crate) service_account: String,
    pub(crate) expires: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Value,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

#[derive(Deserialize, Clone)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    kty: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    e: String,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

struct IssuerClient {
    client: HttpsClient,
    /// Cached keys; refreshed when a token names an unknown kid.
    keys: Mutex<Option<Vec<Jwk>>>,
}

pub(crate) struct Verifier {
    issuers: HashMap<String, Arc<IssuerClient>>,
}

/// Clock skew tolerated on `exp` and `nbf`, as GCP's STS does.
const LEEWAY_SECS: u64 = 0;

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

impl Verifier {
    pub(crate) fn new(issuers: &[TrustedIssuer]) -> Result<Self, Error> {
        let mut map = HashMap::new();
        for issuer in issuers {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(pem) = &issuer.ca_pem {
                let mut added = 0;
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|err| Error::IssuerCa { issuer: issuer.issuer.clone(), reason: err.to_string() })?;
                    roots
                        .add(cert)
                        .map_err(|err| Error::IssuerCa { issuer: issuer.issuer.clone(), reason: err.to_string() })?;
                    added += 1;
                }
                if added == 0 {
                    return Err(Error::IssuerCa { issuer: issuer.issuer.clone(), reason: "no CERTIFICATE block found".into() });
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|err| Error::IssuerCa { issuer: issuer.issuer.clone(), reason: err.to_string() })?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build();
            let client = Client::builder(TokioExecutor::new()).build(connector);
            map.insert(issuer.issuer.clone(), Arc::new(IssuerClient { client, keys: Mutex::new(None) }));
        }
        Ok(Self { issuers: map })
    }

    /// Verifies `token` was issued by `issuer` for `audience`, signed by a key in the
    /// issuer's JWKS, and is within its validity window.
    pub(crate) async fn verify(&self, token: &str, issuer: &str, audience: &str) -> Result<VerifiedToken, TokenError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, claims_b64, signature_b64] = parts.as_slice() else {
            return Err(TokenError::Malformed(format!("{} parts", parts.len())));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|err| TokenError::Malformed(format!("{what}: {err}")))
        };
        let header: Header = serde_json::from_slice(&decode(header_b64, "header")?)
            .map_err(|err| TokenError::Malformed(format!("header: {err}")))?;
        let claims: Claims = serde_json::from_slice(&decode(claims_b64, "claims")?)
            .map_err(|err| TokenError::Malformed(format!("claims: {err}")))?;
        let signature = decode(signature_b64, "signature")?;
        if header.alg != "RS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        if claims.iss != issuer {
            return Err(TokenError::UntrustedIssuer(claims.iss));
        }
        let client = self.issuers.get(issuer).ok_or_else(|| TokenError::UntrustedIssuer(issuer.to_owned()))?;
        let signing_input = format!("{header_b64}.{claims_b64}");
        let key = client.key(issuer, header.kid.as_deref()).await?;
        check_signature(&key, signing_input.as_bytes(), &signature)?;
        let now = now_secs();
        if claims.exp + LEEWAY_SECS <= now {
            return Err(TokenError::Expired { exp: claims.exp, now });
        }
        if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now + LEEWAY_SECS) {
            return Err(TokenError::NotYetValid { nbf, now });
        }
        let audiences: Vec<String> = match &claims.aud {
            Value::String(single) => vec![single.clone()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|found| found == audience) {
            return Err(TokenError::Audience { found: audiences, expected: audience.to_owned() });
        }
        let mut sub = claims.sub.split(':');
        match (sub.next(), sub.next(), sub.next(), sub.next(), sub.next()) {
            (Some("system"), Some("serviceaccount"), Some(namespace), Some(name), None)
                if !namespace.is_empty() && !name.is_empty() =>
            {
                Ok(VerifiedToken { namespace: namespace.to_owned(), service_account: name.to_owned(), expires: claims.exp })
            }
            _ => Err(TokenError::Subject(claims.sub)),
        }
    }
}

fn check_signature(key: &Jwk, input: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    let n = URL_SAFE_NO_PAD.decode(&key.n).map_err(|_| TokenError::Signature)?;
    let e = URL_SAFE_NO_PAD.decode(&key.e).map_err(|_| TokenError::Signature)?;
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).map_err(|_| TokenError::Signature)?;
    let verifying = VerifyingKey::<Sha256>::new(public);
    let signature = Signature::try_from(signature).map_err(|_| TokenError::Signature)?;
    verifying.verify(input, &signature).map_err(|_| TokenError::Signature)
}

impl IssuerClient {
    /// The key named `kid` (or the only RSA key, when the token names none),
    /// refetching the JWKS once when the cache does not have it (key rotation).
    async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Jwk, TokenError> {
        let mut cache = self.keys.lock().await;
        for attempt in 0..2 {
            if attempt == 1 || cache.is_none() {
                *cache = Some(self.fetch_keys(issuer).await?);
            }
            let keys = cache.as_deref().unwrap_or_default();
            let rsa: Vec<&Jwk> = keys.iter().filter(|key| key.kty == "RSA").collect();
            let found = match kid {
                Some(kid) => rsa.iter().find(|key| key.kid.as_deref() == Some(kid)).copied(),
                None if rsa.len() == 1 => rsa.first().copied(),
                None => None,
            };
            if let Some(found) = found {
                return Ok(found.clone());
            }
        }
        Err(TokenError::UnknownKey { issuer: issuer.to_owned(), kid: kid.map(str::to_owned) })
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<Vec<Jwk>, TokenError> {
        let failed = |reason: String| TokenError::Jwks { issuer: issuer.to_owned(), reason };
        let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery = self.get_json(&discovery_url).await.map_err(failed)?;
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(format!("{discovery_url} has no jwks_uri")))?;
        let jwks = self.get_json(jwks_uri).await.map_err(failed)?;
        let keys = jwks.get("keys").cloned().ok_or_else(|| failed(format!("{jwks_uri} has no keys")))?;
        serde_json::from_value(keys).map_err(|err| failed(format!("{jwks_uri}: {err}")))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let uri: hyper::Uri = url.parse().map_err(|err| format!("bad URL {url}: {err}"))?;
        let request = hyper::Request::get(uri).body(Empty::new()).map_err(|err| format!("building GET {url}: {err}"))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| format!("GET {url} timed out after 30s"))?
            .map_err(|err| format!("GET {url}: {err}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|err| format!("reading {url}: {err}"))?.to_bytes();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice(&body).map_err(|err| format!("{url} is not JSON: {err}"))
    }
}
