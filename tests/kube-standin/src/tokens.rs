//! Service-account tokens: RS256 JWTs, their verification, and the JWKS that publishes the key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::StartError;

/// RSA key generation is slow in unoptimised builds, so one key serves every stand-in in a process.
static PROCESS_KEY: OnceLock<Result<RsaPrivateKey, String>> = OnceLock::new();

/// The signing key of a stand-in, with its key id.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    private: RsaPrivateKey,
    public: RsaPublicKey,
    kid: String,
}

impl TokenSigner {
    /// Loads (or on first use generates) the process-wide RSA key.
    pub(crate) fn process_wide() -> Result<Self, StartError> {
        let key = PROCESS_KEY
            .get_or_init(|| {
                RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|message| StartError::GenerateSigningKey { message })?;
        let public = key.to_public_key();
        let der = public
            .to_public_key_der()
            .map_err(|e| StartError::GenerateSigningKey {
                message: e.to_string(),
            })?;
        // Like kube-apiserver: the key id is the unpadded base64url SHA-256 of the PKIX public key.
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_bytes()));
        Ok(Self {
            private: key,
            public,
            kid,
        })
    }

    /// Signs the claims as a compact RS256 JWS.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = SigningKey::<Sha256>::new(self.private.clone());
        let signature = signer.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// Verifies the signature of a compact JWS and returns its claims; `None` if it does not verify.
    pub(crate) fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")? != "RS256" {
            return None;
        }
        let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(signature).ok()?.as_slice()).ok()?;
        let verifier = VerifyingKey::<Sha256>::new(self.public.clone());
        verifier
            .verify(parts_join(token)?.as_bytes(), &signature)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }

    /// The JSON Web Key Set served at `/openid/v1/jwks`.
    pub(crate) fn jwks(&self) -> Value {
        json!({"keys": [{
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
        }]})
    }
}

/// The signing input (`header.claims`) of a compact JWS.
fn parts_join(token: &str) -> Option<&str> {
    let last_dot = token.rfind('.')?;
    Some(&token[..last_dot])
}
