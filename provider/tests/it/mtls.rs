//! AutoMTLS: the server accepts exactly the client certificate Terraform
//! passed in PLUGIN_CLIENT_CERT and refuses any other (or none).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use terraform_provider_secretbridge::plugin::serve::mtls_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A go-plugin style client certificate: self-signed CA for localhost.
fn client_cert() -> (String, Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), cert.der().to_vec(), key.serialize_der())
}

/// The test client checks the server certificate against the handshake's
/// DER itself (as go-plugin does with its root pool).
#[derive(Debug)]
struct PinnedServer(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("unexpected server certificate".into()))
        }
    }
    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with `client` (cert DER, key DER) or none; returns whether the
/// server accepted (it answers "ok" after a completed handshake).
async fn connect(expected_pem: &str, client: Option<(Vec<u8>, Vec<u8>)>) -> bool {
    let (server_config, server_der) = mtls_config(expected_pem).expect("server tls");
    assert_eq!(server_config.alpn_protocols, vec![b"h2".to_vec()]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            let _ = tls.write_all(b"ok").await;
            let _ = tls.shutdown().await;
        }
    });

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(server_der, provider)));
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(vec![CertificateDer::from(cert)], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let accepted = match connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await {
        Ok(mut tls) => {
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.is_ok() && buf == b"ok"
        }
        Err(_) => false,
    };
    server.await.expect("server task");
    accepted
}

#[tokio::test]
async fn accepts_only_the_client_certificate_from_the_environment() {
    let (expected_pem, expected_der, expected_key) = client_cert();
    let (_, other_der, other_key) = client_cert();
    assert!(connect(&expected_pem, Some((expected_der, expected_key))).await, "the expected client is accepted");
    assert!(!connect(&expected_pem, Some((other_der, other_key))).await, "another certificate is refused");
    assert!(!connect(&expected_pem, None).await, "no certificate is refused");
}
