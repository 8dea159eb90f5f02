//! Shared fixtures of the AWS acceptance tests: moto (from the harness)
//! behind the aws-guard on a tokio runtime that lives for the whole test
//! (Terraform and the provider are child processes calling it over
//! loopback), the provider block pointing at the guard, admin SDK clients
//! for checks and out-of-band changes, and a TLS issuer with a known
//! certificate chain for thumbprints.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_guard::{AwsGuard, Options};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::acceptance::Workdir;

/// moto's fixed account.
pub const ACCOUNT: &str = "123456789012";
/// The region of the provider block and the admin clients.
pub const REGION: &str = "us-east-1";

/// moto + guard for one test.
pub struct AwsEnv {
    pub rt: tokio::runtime::Runtime,
    pub guard: AwsGuard,
    _moto: secretbridge_harness::Moto,
}

impl AwsEnv {
    /// A fresh moto behind a guard that trusts `extra_ca_pem` for issuer discovery.
    pub fn start(extra_ca_pem: Option<String>) -> AwsEnv {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let moto = secretbridge_harness::Moto::start().unwrap_or_else(|e| panic!("starting moto failed: {e}; run `make setup`"));
        let mut options = Options::new(moto.endpoint());
        options.extra_ca_pem = extra_ca_pem;
        let guard = rt.block_on(AwsGuard::start(options)).expect("start the aws-guard");
        AwsEnv { rt, guard, _moto: moto }
    }

    /// The provider block wired to the guard with moto's static keys.
    pub fn provider_block(&self) -> String {
        format!(
            "provider \"secretbridge\" {{\n  aws {{\n    region     = \"{REGION}\"\n    endpoint   = \"{}\"\n    access_key = \"testing\"\n    secret_key = \"testing\"\n  }}\n}}\n",
            self.guard.endpoint()
        )
    }

    /// Writes main.tf: the provider wired to the guard, then `body`.
    pub fn write_config(&self, w: &Workdir, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\n{}\n{body}",
            self.provider_block()
        );
        std::fs::write(w.work().join("main.tf"), text).expect("write main.tf");
    }

    /// Admin (static key) SDK configuration through the guard.
    pub fn admin_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.guard.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test")))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build()
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.admin_config())
    }

    /// Every role name in the account.
    pub fn role_names(&self) -> Vec<String> {
        let out = self.rt.block_on(self.iam().list_roles().send()).expect("ListRoles");
        out.roles().iter().map(|r| r.role_name().to_owned()).collect()
    }

    /// Every OIDC provider ARN in the account.
    pub fn oidc_provider_arns(&self) -> Vec<String> {
        let out = self.rt.block_on(self.iam().list_open_id_connect_providers().send()).expect("ListOpenIDConnectProviders");
        out.open_id_connect_provider_list().iter().filter_map(|p| p.arn().map(str::to_owned)).collect()
    }
}

/// The ARN IAM gives the provider of `url`.
pub fn oidc_arn(url: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{}", url.trim_start_matches("https://"))
}

pub fn apply(w: &Workdir) -> String {
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"])
}

pub fn assert_empty_plan(w: &Workdir, when: &str) {
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "plan {when} not empty:\n{plan}");
}

/// Seeds the OIDC provider an IRSA role trusts (audience `sts.amazonaws.com`); returns its ARN.
pub fn seed_oidc_provider(env: &AwsEnv, issuer: &str) -> String {
    env.rt
        .block_on(
            env.iam()
                .create_open_id_connect_provider()
                .url(format!("https://{issuer}"))
                .client_id_list("sts.amazonaws.com")
                .thumbprint_list("0123456789abcdef0123456789abcdef01234567")
                .send(),
        )
        .expect("seed the OIDC provider");
    oidc_arn(issuer)
}

/// Runs a command expected to fail; returns its stdout and stderr.
pub fn fails(w: &Workdir, args: &[&str]) -> String {
    let out = w.run(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "terraform {args:?} should have failed:\n{text}");
    text
}

/// The resource's attribute values from `terraform show -json`.
pub fn shown(w: &Workdir, address: &str) -> serde_json::Value {
    let state: serde_json::Value = serde_json::from_str(&w.ok(&["show", "-json", "-no-color"])).expect("show json");
    state["values"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .map(|r| r["values"].clone())
        .unwrap_or_else(|| panic!("{address} not in state: {state}"))
}

/// A TLS server on loopback presenting a chain made with rcgen: a leaf for
/// 127.0.0.1 signed by an intermediate signed by a root. Only the
/// handshake matters (the thumbprint is read from it).
pub struct ChainIssuer {
    pub url: String,
    /// DER of each certificate the server sends, in the order it sends them.
    pub sent: Vec<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChainIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChainIssuer {
    /// Serves leaf + intermediate, plus the root when `send_root`.
    pub async fn start(send_root: bool) -> ChainIssuer {
        let ca = |name: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params
        };
        let root = rcgen::CertifiedIssuer::self_signed(ca("thumbprint test root"), rcgen::KeyPair::generate().expect("key"))
            .expect("root");
        let intermediate =
            rcgen::CertifiedIssuer::signed_by(ca("thumbprint test intermediate"), rcgen::KeyPair::generate().expect("key"), &root)
                .expect("intermediate");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &intermediate)
            .expect("leaf");
        let mut sent = vec![leaf.der().to_vec(), intermediate.der().to_vec()];
        if send_root {
            sent.push(root.der().to_vec());
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(
                sent.iter().map(|d| CertificateDer::from(d.clone())).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Complete the handshake, then close: nothing is served.
                    let _ = acceptor.accept(stream).await;
                });
            }
        });
        ChainIssuer { url: format!("https://127.0.0.1:{port}"), sent, task }
    }

    /// SHA-1 of the last certificate sent, computed here from the DER the
    /// test generated (not by the provider's code path).
    pub fn expected_thumbprint(&self) -> String {
        let last = self.sent.last().expect("a chain");
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, last);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}
