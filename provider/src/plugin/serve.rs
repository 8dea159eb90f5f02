//! The go-plugin handshake and the gRPC server process: magic cookie,
//! protocol version negotiation, AutoMTLS, the stdio/controller/broker/health
//! side services, TCP_NODELAY on every accepted socket.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::Stream;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use super::proto::go_plugin as gp;
use super::proto::health;
use super::proto::tfplugin6::provider_server::ProviderServer as ProviderService;
use super::server::ProviderServer;

/// The magic cookie key Terraform sets for its plugins.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The magic cookie value for Terraform providers.
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The plugin protocol (tfplugin) major version we speak.
pub const APP_PROTOCOL_VERSION: u32 = 6;
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// Largest gRPC message accepted or sent (Terraform uses the same limit).
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// Why the plugin server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Started by hand instead of by Terraform.
    #[error(
        "This binary is a plugin for Terraform and is not meant to be run directly.\n\
         Install it as the provider registry.terraform.io/secretbridge/secretbridge (for example with a\n\
         dev_overrides or filesystem_mirror entry in your Terraform CLI configuration) and run `terraform init`,\n\
         `terraform plan` or `terraform apply` in a directory that uses it."
    )]
    NotStartedByTerraform,
    /// Terraform offered no protocol version we speak.
    #[error(
        "Terraform offered plugin protocol versions {offered:?}, but this provider speaks only version 6; use Terraform 1.0 or newer"
    )]
    ProtocolVersion {
        /// What PLUGIN_PROTOCOL_VERSIONS held.
        offered: String,
    },
    /// Binding the loopback listener failed.
    #[error("listen on 127.0.0.1 for Terraform's connection")]
    Listen(#[source] std::io::Error),
    /// PLUGIN_CLIENT_CERT was not a usable certificate.
    #[error("read Terraform's client certificate from PLUGIN_CLIENT_CERT")]
    ClientCert(#[source] std::io::Error),
    /// Generating our own certificate failed.
    #[error("generate the provider's TLS certificate")]
    ServerCert(#[source] rcgen::Error),
    /// Building the TLS configuration failed.
    #[error("configure TLS for the plugin connection")]
    Tls(#[source] rustls::Error),
    /// Writing the handshake line failed.
    #[error("write the handshake line to stdout")]
    Handshake(#[source] std::io::Error),
    /// The gRPC server stopped with an error.
    #[error("serve gRPC to Terraform")]
    Grpc(#[source] tonic::transport::Error),
}

/// The protocol versions Terraform offers (comma-separated, e.g. "5,6").
pub fn negotiate_version(offered: Option<&str>) -> Result<u32, ServeError> {
    match offered {
        None => Ok(APP_PROTOCOL_VERSION),
        Some(list) if list.trim().is_empty() => Ok(APP_PROTOCOL_VERSION),
        Some(list) => {
            if list.split(',').any(|v| v.trim().parse::<u32>() == Ok(APP_PROTOCOL_VERSION)) {
                Ok(APP_PROTOCOL_VERSION)
            } else {
                Err(ServeError::ProtocolVersion { offered: list.to_owned() })
            }
        }
    }
}

/// Runs the provider as Terraform's plugin: checks the environment, prints
/// the handshake line and serves until Terraform asks it to stop.
pub async fn serve_from_env(provider: ProviderServer) -> Result<(), ServeError> {
    if std::env::var(MAGIC_COOKIE_KEY).ok().as_deref() != Some(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NotStartedByTerraform);
    }
    let version = negotiate_version(std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok().as_deref())?;
    let client_cert_pem = std::env::var("PLUGIN_CLIENT_CERT").ok().filter(|s| !s.trim().is_empty());

    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(ServeError::Listen)?;
    let addr = listener.local_addr().map_err(ServeError::Listen)?;

    let (tls, cert_field) = match client_cert_pem {
        Some(pem) => {
            let (config, server_der) = mtls_config(&pem)?;
            (Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), base64::engine::general_purpose::STANDARD_NO_PAD.encode(server_der))
        }
        None => (None, String::new()),
    };

    let line = handshake_line(version, addr, &cert_field);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(line.as_bytes()).and_then(|()| stdout.flush()).map_err(ServeError::Handshake)?;
    drop(stdout);

    ignore_interrupts();
    exit_when_orphaned();
    serve(listener, tls, provider).await
}

/// A Terraform that crashes never calls Shutdown, and a provider left
/// running keeps the pipes of whoever started Terraform open (a CI job or a
/// wrapper waits on them forever). Once the process is re-parented, the
/// Terraform that started it is gone: exit.
fn exit_when_orphaned() {
    #[cfg(unix)]
    tokio::spawn(async {
        let parent = std::os::unix::process::parent_id();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != parent {
                eprintln!("secretbridge provider: Terraform (pid {parent}) exited without stopping the provider; exiting");
                std::process::exit(1);
            }
        }
    });
}

/// The go-plugin handshake line.
pub fn handshake_line(version: u32, addr: SocketAddr, cert_b64: &str) -> String {
    format!("{CORE_PROTOCOL_VERSION}|{version}|tcp|{addr}|grpc|{cert_b64}\n")
}

/// Terraform forwards Ctrl-C to its plugins and then tells them to stop over
/// gRPC; like go-plugin servers, we let Terraform drive the shutdown.
fn ignore_interrupts() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {}
    });
}

/// Serves the provider and go-plugin services on `listener` (TLS when
/// `tls` is set) until GRPCController.Shutdown is called.
pub async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, provider: ProviderServer) -> Result<(), ServeError> {
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let (conn_tx, conn_rx) = mpsc::channel::<Result<Conn, std::io::Error>>(16);
    let mut accept_shutdown = shutdown_rx.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = accept_shutdown.changed() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            // Without this every small gRPC response waits for the peer's
            // delayed ACK (~40 ms per RPC).
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            let tx = conn_tx.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let conn = match tls {
                    Some(acceptor) => match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
                        Ok(Ok(s)) => Conn::Tls(Box::new(s)),
                        Ok(Err(e)) => {
                            eprintln!("secretbridge provider: TLS handshake with Terraform failed: {e}");
                            return;
                        }
                        Err(_) => return,
                    },
                    None => Conn::Plain(stream),
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });

    let incoming = tokio_stream::wrappers::ReceiverStream::new(conn_rx);
    tonic::transport::Server::builder()
        .add_service(
            ProviderService::new(provider)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(Controller { shutdown: shutdown_tx }))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker))
        .add_service(health::health_server::HealthServer::new(Health))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown_rx.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(ServeError::Grpc)
}

/// An accepted connection, with or without TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The TLS server configuration for AutoMTLS: our fresh self-signed
/// certificate, and only the client certificate Terraform gave us accepted.
/// Returns the configuration and our certificate's DER for the handshake.
pub fn mtls_config(client_cert_pem: &str) -> Result<(rustls::ServerConfig, Vec<u8>), ServeError> {
    let client_der = pem_certificate(client_cert_pem).map_err(ServeError::ClientCert)?;
    // ring for our side of the handshake (key exchange, our signature, its
    // RNG); aws-lc only to verify Terraform's signature, because go-plugin's
    // client key is ECDSA P-521, which ring cannot verify. (aws-lc's RNG
    // seeding on first use costs ~150 ms per plugin start in debug builds.)
    let mut provider = rustls::crypto::ring::default_provider();
    provider.signature_verification_algorithms = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    let provider = Arc::new(provider);

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(ServeError::ServerCert)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(ServeError::ServerCert)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "secretbridge");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(30)).into();
    params.not_after = (now + Duration::from_secs(60 * 60 * 24 * 365)).into();
    let cert = params.self_signed(&key).map_err(ServeError::ServerCert)?;
    let server_der = cert.der().to_vec();

    let verifier = Arc::new(PinnedClientCert { expected: client_der, provider: Arc::clone(&provider) });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServeError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(ServeError::Tls)?;
    // gRPC clients require HTTP/2 negotiated through ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, server_der))
}

fn pem_certificate(pem: &str) -> Result<Vec<u8>, std::io::Error> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem.find(begin).ok_or_else(|| invalid("no BEGIN CERTIFICATE line"))? + begin.len();
    let stop = pem[start..].find(end).ok_or_else(|| invalid("no END CERTIFICATE line"))? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| invalid(&format!("certificate is not base64: {e}")))
}

/// Accepts exactly the certificate Terraform passed in PLUGIN_CLIENT_CERT,
/// and checks the client proves it holds that certificate's key. (go-plugin's
/// client certificate is a self-signed CA certificate, which WebPKI path
/// validation refuses as an end-entity certificate, so we pin it instead.)
#[derive(Debug)]
struct PinnedClientCert {
    expected: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: UnixTime) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

struct Controller {
    shutdown: watch::Sender<bool>,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        let _ = self.shutdown.send(true);
        Ok(Response::new(gp::Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct Stdio;

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<gp::StdioData>;

    async fn stream_stdio(&self, _: Request<gp::Empty>) -> Result<Response<Self::StreamStdioStream>, Status> {
        // Our logs go to stderr, which Terraform reads directly; nothing is
        // ever written to stdout after the handshake line.
        Ok(Response::new(Box::pin(futures::stream::pending())))
    }
}

struct Broker;

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<gp::ConnInfo>;

    async fn start_stream(&self, request: Request<Streaming<gp::ConnInfo>>) -> Result<Response<Self::StartStreamStream>, Status> {
        // We never open extra connections; drain whatever the host sends.
        let mut incoming = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = incoming.message().await {} });
        Ok(Response::new(Box::pin(futures::stream::pending())))
    }
}

struct Health;

#[tonic::async_trait]
impl health::health_server::Health for Health {
    async fn check(&self, _: Request<health::HealthCheckRequest>) -> Result<Response<health::HealthCheckResponse>, Status> {
        Ok(Response::new(health::HealthCheckResponse { status: health::health_check_response::ServingStatus::Serving as i32 }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_six_or_refuses() {
        assert_eq!(negotiate_version(Some("5,6")).unwrap(), 6);
        assert_eq!(negotiate_version(None).unwrap(), 6);
        let err = negotiate_version(Some("5")).unwrap_err();
        assert!(err.to_string().contains("only version 6"));
    }

    #[test]
    fn handshake_line_has_six_fields() {
        let line = handshake_line(6, "127.0.0.1:4321".parse().unwrap(), "abc");
        assert_eq!(line, "1|6|tcp|127.0.0.1:4321|grpc|abc\n");
    }
}
