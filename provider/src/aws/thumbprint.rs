//! The thumbprint IAM pins for an OIDC issuer: the SHA-1 of the last
//! certificate in the chain the issuer's TLS server presents (its top
//! intermediate or root CA), as lowercase hex, the way IAM's guide obtains
//! it with `openssl s_client -showcerts`.
//!
//! The chain is read, not verified: IAM trusts whatever the thumbprint
//! names, so a private CA (a self-hosted cluster, a test issuer) works as
//! well as a public one. The handshake signature is still checked, so the
//! server holds the key of the certificate it presents.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How long connecting and the TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the thumbprint could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ThumbprintError {
    /// The URL is not `https://HOST[:PORT][/PATH]`.
    #[error("{url:?} is not an https:// URL with a host")]
    NotHttps {
        /// The URL given.
        url: String,
    },
    /// The TLS client could not be configured.
    #[error("configuring the TLS client failed: {0}")]
    Tls(#[from] rustls::Error),
    /// Connecting to the issuer failed.
    #[error("connecting to {address} failed: {source}")]
    Connect {
        /// `HOST:PORT`.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("the TLS handshake with {address} failed: {source}")]
    Handshake {
        /// `HOST:PORT`.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Connect plus handshake took too long.
    #[error("{address} did not complete a TLS handshake within {HANDSHAKE_TIMEOUT:?}")]
    Timeout {
        /// `HOST:PORT`.
        address: String,
    },
    /// The server presented no certificate.
    #[error("{address} presented no certificate")]
    NoCertificate {
        /// `HOST:PORT`.
        address: String,
    },
}

/// Accepts any chain (only read for its thumbprint) but verifies the
/// handshake signatures with the crypto provider's algorithms.
#[derive(Debug)]
struct ReadChainOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ReadChainOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `(host, port)` of an `https://` URL; IPv6 hosts keep no brackets.
pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 443,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().ok()?),
            None => (authority.to_owned(), 443),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

/// SHA-1 of a DER certificate, lowercase hex.
pub fn sha1_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Connects to the issuer at `url` and returns the thumbprint of the last
/// certificate its server presents.
pub async fn issuer_thumbprint(url: &str) -> Result<String, ThumbprintError> {
    let (host, port) = host_and_port(url).ok_or_else(|| ThumbprintError::NotHttps { url: url.to_owned() })?;
    let address = format!("{host}:{port}");
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ReadChainOnly { algorithms: provider.signature_verification_algorithms });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.clone()).map_err(|_| ThumbprintError::NotHttps { url: url.to_owned() })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|source| ThumbprintError::Connect { address: address.clone(), source })?;
        connector
            .connect(server_name, tcp)
            .await
            .map_err(|source| ThumbprintError::Handshake { address: address.clone(), source })
    };
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| ThumbprintError::Timeout { address: address.clone() })??;
    let (_, session) = tls.get_ref();
    let last = session
        .peer_certificates()
        .and_then(|chain| chain.last())
        .ok_or_else(|| ThumbprintError::NoCertificate { address: address.clone() })?;
    Ok(sha1_hex(last.as_ref()))
}

/// Whether `s` looks like a thumbprint: 40 hex digits.
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_come_from_https_urls_only() {
        assert_eq!(host_and_port("https://oidc.example.com/id/ABC"), Some(("oidc.example.com".into(), 443)));
        assert_eq!(host_and_port("https://127.0.0.1:8443"), Some(("127.0.0.1".into(), 8443)));
        assert_eq!(host_and_port("https://[::1]:9443/x"), Some(("::1".into(), 9443)));
        assert_eq!(host_and_port("http://example.com"), None);
        assert_eq!(host_and_port("https:///path"), None);
        assert_eq!(host_and_port("https://host:notaport"), None);
    }

    #[test]
    fn sha1_matches_the_known_digest() {
        // FIPS 180 test vector: SHA-1("abc").
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(is_thumbprint(&sha1_hex(b"abc")));
        assert!(!is_thumbprint("A9993E36"));
    }
}
