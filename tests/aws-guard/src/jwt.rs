//! Web identity tokens: decoding a compact JWS, RS256 verification against a JWK.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

/// Why a token could not be decoded or verified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("the web identity token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// Header alg is not RS256.
    #[error("the web identity token uses algorithm {0:?}; only RS256 is accepted")]
    Algorithm(String),
    /// The JWK cannot be used as an RSA public key.
    #[error("the issuer's JWK {kid:?} is not a usable RSA key: {reason}")]
    BadKey {
        /// Key id of the JWK.
        kid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signature does not verify.
    #[error("the web identity token's signature does not verify against the issuer's key {kid:?}")]
    Signature {
        /// Key id used.
        kid: String,
    },
}

/// The JOSE header fields the guard reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Signing algorithm.
    pub alg: String,
    /// Key id, if any.
    #[serde(default)]
    pub kid: Option<String>,
}

/// The registered claims the guard reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// Issuer URL.
    #[serde(default)]
    pub iss: String,
    /// Subject, e.g. `system:serviceaccount:NS:NAME`.
    #[serde(default)]
    pub sub: String,
    /// Audience: a string or a list of strings.
    #[serde(default)]
    pub aud: Value,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not-before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued-at, seconds since the epoch.
    #[serde(default)]
    pub iat: Option<i64>,
}

impl Claims {
    /// The audiences as a list (a single string becomes one element).
    pub fn audiences(&self) -> Vec<String> {
        match &self.aud {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }
}

/// A decoded but not yet verified token.
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| TokenError::Malformed(format!("{what} is not base64url: {e}")))
}

impl UnverifiedToken {
    /// Splits and decodes a compact JWS without checking anything.
    pub fn decode(token: &str) -> Result<Self, TokenError> {
        let token = token.trim();
        let parts: Vec<&str> = token.split('.').collect();
        let [h, c, s] = parts.as_slice() else {
            return Err(TokenError::Malformed(format!("expected 3 dot-separated parts, found {}", parts.len())));
        };
        let header: Header = serde_json::from_slice(&decode_part(h, "header")?)
            .map_err(|e| TokenError::Malformed(format!("header is not JSON: {e}")))?;
        let claims: Claims = serde_json::from_slice(&decode_part(c, "payload")?)
            .map_err(|e| TokenError::Malformed(format!("payload is not JSON claims: {e}")))?;
        let signature = decode_part(s, "signature")?;
        Ok(UnverifiedToken { header, claims, signing_input: format!("{h}.{c}"), signature })
    }

    /// Verifies the RS256 signature with the RSA JWK (`n`, `e` base64url).
    pub fn verify_rs256(&self, jwk: &Jwk) -> Result<(), TokenError> {
        if self.header.alg != "RS256" {
            return Err(TokenError::Algorithm(self.header.alg.clone()));
        }
        let kid = jwk.kid.clone().unwrap_or_default();
        if jwk.kty != "RSA" {
            return Err(TokenError::BadKey { kid, reason: format!("kty is {:?}, not RSA", jwk.kty) });
        }
        let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
            return Err(TokenError::BadKey { kid, reason: "missing n or e".into() });
        };
        let n = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|err| TokenError::BadKey { kid: kid.clone(), reason: format!("n is not base64url: {err}") })?;
        let e = URL_SAFE_NO_PAD
            .decode(e)
            .map_err(|err| TokenError::BadKey { kid: kid.clone(), reason: format!("e is not base64url: {err}") })?;
        let key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
        key.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| TokenError::Signature { kid })
    }
}

/// One JSON Web Key as served by an issuer's `jwks_uri`.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    /// Key type (`RSA`).
    #[serde(default)]
    pub kty: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent, base64url.
    #[serde(default)]
    pub e: Option<String>,
}

/// A JWK set.
#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key for `kid`; with no kid, the only key if there is exactly one.
    pub fn find(&self, kid: Option<&str>) -> Option<&Jwk> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_are_rejected_with_a_reason() {
        assert!(matches!(UnverifiedToken::decode("a.b"), Err(TokenError::Malformed(_))));
        assert!(matches!(UnverifiedToken::decode("!!.e30.AA"), Err(TokenError::Malformed(_))));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://i","aud":["a","b"],"sub":"s"}"#);
        let token = UnverifiedToken::decode(&format!("{header}.{claims}.AAAA")).unwrap();
        assert_eq!(token.claims.audiences(), vec!["a".to_string(), "b".to_string()]);
        let jwk = Jwk { kty: "RSA".into(), kid: None, n: Some("AQAB".into()), e: Some("AQAB".into()) };
        assert_eq!(token.verify_rs256(&jwk), Err(TokenError::Algorithm("HS256".into())));
    }
}
