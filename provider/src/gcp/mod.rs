//! GCP access for the `secretbridge_gcp_*` resources: clients of the official
//! `google-cloud-*` crates built from the provider's `gcp {}` block (endpoint
//! override, access token or Application Default Credentials), error
//! translation into Terraform diagnostics, and the non-authoritative IAM
//! policy read-modify-write with its etag, retried on 409 `ABORTED`.

use std::future::Future;
use std::time::Duration;

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_v1::model::{Binding, Policy};
use google_cloud_resourcemanager_v3::client::Projects;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use secretbridge_shared::terraform::{GcpConfig, ProviderConfig};

use crate::plugin::diag::{Diagnostic, Diagnostics};
use crate::plugin::resource::ProviderContext;

/// The role a Workload Identity binding grants on a GSA.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";
/// The role `secretbridge_gcp_secret_access` grants.
pub const SECRET_ACCESSOR: &str = "roles/secretmanager.secretAccessor";

/// How many times a policy read-modify-write is tried before giving up on
/// concurrent writers.
const POLICY_ATTEMPTS: u32 = 10;

/// The provider's `gcp {}` block, or an error telling the user to add it.
pub fn config(ctx: &ProviderContext) -> Result<GcpConfig, Diagnostics> {
    let provider: ProviderConfig = ctx.config().map_err(Diagnostics::from)?;
    provider.gcp.ok_or_else(|| {
        Diagnostic::error(
            "GCP not configured",
            "secretbridge_gcp_* resources need a `gcp { project = \"...\" }` block in the provider \"secretbridge\" block.",
        )
        .into()
    })
}

/// A fixed OAuth2 bearer token, from the provider's `access_token`.
#[derive(Debug)]
struct BearerToken(String);

impl CredentialsProvider for BearerToken {
    async fn headers(
        &self,
        _extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, google_cloud_auth::errors::CredentialsError>
    {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|e| {
            google_cloud_auth::errors::CredentialsError::from_msg(
                false,
                format!("access_token is not a valid header value: {e}"),
            )
        })?;
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New {
            entity_tag: EntityTag::new(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        Some("googleapis.com".into())
    }
}

fn credentials(config: &GcpConfig) -> Result<Credentials, Diagnostics> {
    match &config.access_token {
        Some(token) => Ok(Credentials::from(BearerToken(token.clone()))),
        None => google_cloud_auth::credentials::Builder::default().build().map_err(|e| {
            Diagnostic::error(
                "No GCP credentials",
                format!(
                    "Application Default Credentials could not be loaded: {e}. Run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or set gcp.access_token in the provider block."
                ),
            )
            .into()
        }),
    }
}

fn build_error(api: &str, e: &dyn std::fmt::Display) -> Diagnostics {
    Diagnostic::error(
        format!("Could not build the GCP {api} client"),
        format!("{e}. Check gcp.endpoint and the credentials in the provider block."),
    )
    .into()
}

/// Clients for one provider configuration.
pub struct GcpClients {
    /// The provider's default project.
    pub project: String,
    config: GcpConfig,
}

impl GcpClients {
    /// Reads the `gcp {}` block; clients are built on first use.
    pub fn new(ctx: &ProviderContext) -> Result<GcpClients, Diagnostics> {
        let config = config(ctx)?;
        Ok(GcpClients {
            project: config.project.clone(),
            config,
        })
    }

    /// IAM Admin: service accounts and their policies.
    pub async fn iam(&self) -> Result<Iam, Diagnostics> {
        let mut builder = Iam::builder().with_credentials(credentials(&self.config)?);
        if let Some(endpoint) = &self.config.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder.build().await.map_err(|e| build_error("IAM", &e))
    }

    /// Resource Manager: project policies.
    pub async fn projects(&self) -> Result<Projects, Diagnostics> {
        let mut builder = Projects::builder().with_credentials(credentials(&self.config)?);
        if let Some(endpoint) = &self.config.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder
            .build()
            .await
            .map_err(|e| build_error("Resource Manager", &e))
    }

    /// Secret Manager: secret policies.
    pub async fn secrets(&self) -> Result<SecretManagerService, Diagnostics> {
        let mut builder =
            SecretManagerService::builder().with_credentials(credentials(&self.config)?);
        if let Some(endpoint) = &self.config.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder
            .build()
            .await
            .map_err(|e| build_error("Secret Manager", &e))
    }
}

/// The RPC status code of a client error, if the service answered.
pub fn code(e: &GaxError) -> Option<Code> {
    e.status().map(|s| s.code)
}

/// Whether the service answered NOT_FOUND.
pub fn is_not_found(e: &GaxError) -> bool {
    code(e) == Some(Code::NotFound)
}

/// A diagnostic for a failed GCP call: what was attempted, on what, and what to check.
pub fn api_error(action: &str, resource: &str, e: &GaxError) -> Diagnostics {
    let fix = match code(e) {
        Some(Code::PermissionDenied) => {
            "the credentials lack the permission; grant the caller the needed role on the project"
        }
        Some(Code::Unauthenticated) => {
            "the credentials were refused; refresh gcp.access_token or the Application Default Credentials"
        }
        Some(Code::NotFound) => "check that the project and resource exist",
        Some(Code::InvalidArgument) => "fix the value the service rejected",
        Some(Code::AlreadyExists) => {
            "import the existing object with `terraform import` instead of creating it"
        }
        Some(Code::Aborted) => "another writer kept changing the policy; apply again",
        _ => "check gcp.endpoint and network access, then apply again",
    };
    Diagnostic::error(
        format!("Could not {action}"),
        format!("{resource}: {e}; {fix}."),
    )
    .into()
}

/// Sleeps before retry `attempt` (0-based): exponential from 50 ms, capped at
/// 2 s, with full jitter so concurrent writers spread out.
pub async fn backoff(attempt: u32) {
    let cap_ms = (50u64 << attempt.min(6)).min(2_000);
    let ms = rand::random::<u64>() % (cap_ms + 1);
    tokio::time::sleep(Duration::from_millis(ms.max(10))).await;
}

/// Adds `member` to the unconditional binding of `role`; returns whether the policy changed.
pub fn add_member(policy: &mut Policy, role: &str, member: &str) -> bool {
    if let Some(binding) = policy
        .bindings
        .iter_mut()
        .find(|b| b.role == role && b.condition.is_none())
    {
        if binding.members.iter().any(|m| m == member) {
            return false;
        }
        binding.members.push(member.to_owned());
        return true;
    }
    policy
        .bindings
        .push(Binding::new().set_role(role).set_members([member]));
    true
}

/// Removes `member` from the unconditional binding of `role` (dropping the
/// binding when it empties); returns whether the policy changed.
pub fn remove_member(policy: &mut Policy, role: &str, member: &str) -> bool {
    let mut changed = false;
    for binding in policy
        .bindings
        .iter_mut()
        .filter(|b| b.role == role && b.condition.is_none())
    {
        let before = binding.members.len();
        binding.members.retain(|m| m != member);
        changed |= binding.members.len() != before;
    }
    policy.bindings.retain(|b| !b.members.is_empty());
    changed
}

/// Whether `member` holds `role` unconditionally.
pub fn has_member(policy: &Policy, role: &str, member: &str) -> bool {
    policy
        .bindings
        .iter()
        .any(|b| b.role == role && b.condition.is_none() && b.members.iter().any(|m| m == member))
}

/// Non-authoritative edit of one IAM policy: read it with its etag, apply
/// `edit` (which returns whether it changed anything), and write it back with
/// the same etag. A concurrent writer makes the write fail with 409
/// `ABORTED`; then the whole cycle is retried with jittered backoff.
pub async fn edit_policy<G, GF, S, SF, E>(
    what: &str,
    get: G,
    set: S,
    mut edit: E,
) -> Result<(), Diagnostics>
where
    G: Fn() -> GF,
    GF: Future<Output = Result<Policy, GaxError>>,
    S: Fn(Policy) -> SF,
    SF: Future<Output = Result<Policy, GaxError>>,
    E: FnMut(&mut Policy) -> bool,
{
    let mut attempt = 0;
    loop {
        let mut policy = get()
            .await
            .map_err(|e| api_error("read the IAM policy", what, &e))?;
        if !edit(&mut policy) {
            return Ok(());
        }
        match set(policy).await {
            Ok(_) => return Ok(()),
            Err(e) if code(&e) == Some(Code::Aborted) && attempt + 1 < POLICY_ATTEMPTS => {
                backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(api_error("write the IAM policy", what, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_leave_other_members_and_roles() {
        let mut policy = Policy::new().set_bindings([
            Binding::new()
                .set_role(SECRET_ACCESSOR)
                .set_members(["user:other@example.com"]),
            Binding::new()
                .set_role("roles/viewer")
                .set_members(["user:me@example.com"]),
        ]);
        assert!(add_member(
            &mut policy,
            SECRET_ACCESSOR,
            "user:me@example.com"
        ));
        assert!(
            !add_member(&mut policy, SECRET_ACCESSOR, "user:me@example.com"),
            "idempotent"
        );
        assert!(has_member(&policy, SECRET_ACCESSOR, "user:me@example.com"));
        assert!(remove_member(
            &mut policy,
            SECRET_ACCESSOR,
            "user:me@example.com"
        ));
        assert!(!remove_member(
            &mut policy,
            SECRET_ACCESSOR,
            "user:me@example.com"
        ));
        assert!(has_member(
            &policy,
            SECRET_ACCESSOR,
            "user:other@example.com"
        ));
        assert!(has_member(&policy, "roles/viewer", "user:me@example.com"));
        assert!(remove_member(
            &mut policy,
            SECRET_ACCESSOR,
            "user:other@example.com"
        ));
        assert_eq!(policy.bindings.len(), 1, "an emptied binding is dropped");
        assert!(add_member(
            &mut policy,
            WORKLOAD_IDENTITY_USER,
            "serviceAccount:p.svc.id.goog[ns/ksa]"
        ));
        assert_eq!(policy.bindings.len(), 2);
    }
}
