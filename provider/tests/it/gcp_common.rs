//! Shared fixtures of the GCP acceptance tests: one GCP stand-in per test on a
//! multi-thread tokio runtime that lives for the whole test (Terraform and the
//! provider are child processes calling it over loopback), the provider block
//! pointing at it, and admin clients for checks and out-of-band changes.

use gcp_standin::{GcpStandin, Options, ProjectSpec};
use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_v1::model::Policy;
use google_cloud_secretmanager_v1::client::SecretManagerService;

use crate::acceptance::Workdir;

/// The project the stand-in serves.
pub const PROJECT: &str = "p";

/// A running stand-in and the runtime serving it.
pub struct GcpEnv {
    pub rt: tokio::runtime::Runtime,
    pub standin: GcpStandin,
}

impl GcpEnv {
    pub fn start() -> GcpEnv {
        GcpEnv::start_with(Options {
            projects: vec![ProjectSpec::new(PROJECT)],
            ..Options::default()
        })
    }

    pub fn start_with(options: Options) -> GcpEnv {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let standin = rt
            .block_on(GcpStandin::start(options))
            .expect("start the GCP stand-in");
        GcpEnv { rt, standin }
    }

    /// Writes main.tf: the provider wired to the stand-in, then `body`.
    pub fn write_config(&self, w: &Workdir, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\nprovider \"secretbridge\" {{\n  gcp {{\n    project      = \"{PROJECT}\"\n    endpoint     = \"{}\"\n    access_token = \"{}\"\n  }}\n}}\n\n{body}",
            self.standin.endpoint(),
            self.standin.admin_token()
        );
        std::fs::write(w.work().join("main.tf"), text).expect("write main.tf");
    }

    pub fn iam(&self) -> Iam {
        self.rt
            .block_on(
                Iam::builder()
                    .with_endpoint(self.standin.endpoint())
                    .with_credentials(bearer(self.standin.admin_token()))
                    .build(),
            )
            .expect("IAM client")
    }

    pub fn secret_manager(&self) -> SecretManagerService {
        self.rt
            .block_on(
                SecretManagerService::builder()
                    .with_endpoint(self.standin.endpoint())
                    .with_credentials(bearer(self.standin.admin_token()))
                    .build(),
            )
            .expect("Secret Manager client")
    }
}

/// Static bearer-token credentials for the official clients.
#[derive(Debug)]
struct Bearer(String);

impl CredentialsProvider for Bearer {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError>
    {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {}", self.0)).expect("header value"),
        );
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        Some("googleapis.com".into())
    }
}

pub fn bearer(token: &str) -> Credentials {
    Credentials::from(Bearer(token.to_owned()))
}

/// The RPC code of a client error, e.g. `NotFound`.
pub fn code_of(err: &google_cloud_gax::error::Error) -> String {
    err.status()
        .map(|s| format!("{:?}", s.code))
        .unwrap_or_else(|| format!("no status: {err}"))
}

pub fn apply(w: &Workdir) -> String {
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"])
}

pub fn assert_empty_plan(w: &Workdir, when: &str) {
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "plan {when} not empty:\n{plan}");
}

/// A short tag per CLI so both lifecycles can share one stand-in.
pub fn tag(version: &str) -> &'static str {
    if version == "1.0.3" { "old" } else { "new" }
}

/// Whether `policy` binds `member` to `role`.
pub fn grants(policy: &Policy, role: &str, member: &str) -> bool {
    policy
        .bindings
        .iter()
        .any(|b| b.role == role && b.members.iter().any(|m| m == member))
}
