//! `secretbridge_gcp_workload_identity`: lets one Kubernetes ServiceAccount act
//! as a GSA by adding `serviceAccount:POOL[NAMESPACE/KSA]` to
//! `roles/iam.workloadIdentityUser` on the GSA's IAM policy.
//!
//! Non-authoritative: the policy is edited by read-modify-write with its etag,
//! retried on 409 `ABORTED`, so other members and roles are never touched and
//! concurrent writers (another binding on the same GSA) both land. Destroy
//! removes only this member. Import ID: `SERVICE_ACCOUNT|NAMESPACE/KSA`.

use secretbridge_shared::terraform::GcpWorkloadIdentityBinding;

use crate::gcp::{self, GcpClients, WORKLOAD_IDENTITY_USER};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{ProviderContext, Resource};

/// The `secretbridge_gcp_workload_identity` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcpWorkloadIdentityResource;

/// Why `s` is not an RFC 1123 DNS label (Kubernetes namespace names), if it is not.
pub fn dns_label_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > 63 {
        return Some("must be 1 to 63 characters long");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("may contain only lowercase letters, digits and '-'");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

/// Why `s` is not an RFC 1123 DNS subdomain (Kubernetes ServiceAccount names), if it is not.
fn dns_subdomain_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > 253 {
        return Some("must be 1 to 253 characters long");
    }
    s.split('.').find_map(dns_label_problem)
}

/// The GSA's project and email, from an email or `projects/P/serviceAccounts/EMAIL`.
fn gsa_parts(service_account: &str, default_project: &str) -> Option<(String, String)> {
    if let Some(rest) = service_account.strip_prefix("projects/") {
        return match rest.split('/').collect::<Vec<_>>().as_slice() {
            [project, "serviceAccounts", email]
                if !project.is_empty() && *project != "-" && email.contains('@') =>
            {
                Some(((*project).to_owned(), (*email).to_owned()))
            }
            _ => None,
        };
    }
    let (_, domain) = service_account.split_once('@')?;
    let project = domain
        .strip_suffix(".iam.gserviceaccount.com")
        .unwrap_or(default_project);
    Some((project.to_owned(), service_account.to_owned()))
}

/// Everything a binding computes from its arguments.
struct Binding {
    /// `projects/P/serviceAccounts/EMAIL`, whose policy is edited.
    resource: String,
    pool: String,
    member: String,
}

fn binding_of(
    clients: &GcpClients,
    state: &GcpWorkloadIdentityBinding,
) -> Result<Binding, Diagnostics> {
    let (project, email) =
        gsa_parts(&state.service_account, &clients.project).ok_or_else(|| {
            Diagnostics::from(Diagnostic::attribute_error(
                AttrPath::root("service_account"),
                "Invalid service account",
                format!(
                    "{:?} is neither a GSA email nor projects/PROJECT/serviceAccounts/EMAIL.",
                    state.service_account
                ),
            ))
        })?;
    let pool = state
        .workload_pool
        .clone()
        .unwrap_or_else(|| format!("{project}.svc.id.goog"));
    let member = format!(
        "serviceAccount:{pool}[{}/{}]",
        state.namespace, state.kubernetes_service_account
    );
    Ok(Binding {
        resource: format!("projects/{project}/serviceAccounts/{email}"),
        pool,
        member,
    })
}

async fn set_member(
    clients: &GcpClients,
    resource: &str,
    member: &str,
    grant: bool,
) -> Result<(), Diagnostics> {
    let iam = clients.iam().await?;
    let result = gcp::edit_policy(
        resource,
        || iam.get_iam_policy().set_resource(resource).send(),
        |policy| {
            iam.set_iam_policy()
                .set_resource(resource)
                .set_policy(policy)
                .send()
        },
        |policy| {
            if grant {
                gcp::add_member(policy, WORKLOAD_IDENTITY_USER, member)
            } else {
                gcp::remove_member(policy, WORKLOAD_IDENTITY_USER, member)
            }
        },
    )
    .await;
    match result {
        // The GSA is gone, so is the binding.
        Err(_)
            if !grant
                && matches!(iam.get_service_account().set_name(resource).send().await, Err(e) if gcp::is_not_found(&e)) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn finish(binding: Binding, state: GcpWorkloadIdentityBinding) -> GcpWorkloadIdentityBinding {
    GcpWorkloadIdentityBinding {
        id: Some(format!("{}|{}", binding.resource, binding.member)),
        workload_pool: Some(binding.pool),
        member: Some(binding.member),
        ..state
    }
}

impl Resource for GcpWorkloadIdentityResource {
    type State = GcpWorkloadIdentityBinding;

    fn type_name(&self) -> &'static str {
        "secretbridge_gcp_workload_identity"
    }

    fn validate(&self, config: &GcpWorkloadIdentityBinding) -> Diagnostics {
        let mut diags = Diagnostics::default();
        // Unknown values arrive as empty strings; skip them until known.
        if !config.namespace.is_empty()
            && let Some(problem) = dns_label_problem(&config.namespace)
        {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("namespace"),
                "Invalid Kubernetes namespace",
                format!(
                    "namespace {:?} {problem}: it must be a DNS label (RFC 1123), e.g. \"apps\".",
                    config.namespace
                ),
            ));
        }
        if !config.kubernetes_service_account.is_empty()
            && let Some(problem) = dns_subdomain_problem(&config.kubernetes_service_account)
        {
            diags.push(Diagnostic::attribute_error(
                    AttrPath::root("kubernetes_service_account"),
                    "Invalid Kubernetes ServiceAccount name",
                    format!(
                        "kubernetes_service_account {:?} {problem}: it must be a DNS name (RFC 1123), e.g. \"eso-reader\".",
                        config.kubernetes_service_account
                    ),
                ));
        }
        if !config.service_account.is_empty() && gsa_parts(&config.service_account, "p").is_none() {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("service_account"),
                "Invalid service account",
                format!(
                    "{:?} is neither a GSA email nor projects/PROJECT/serviceAccounts/EMAIL; use secretbridge_gcp_service_account.NAME.email.",
                    config.service_account
                ),
            ));
        }
        diags
    }

    async fn modify_plan(
        &self,
        ctx: &ProviderContext,
        _prior: Option<&GcpWorkloadIdentityBinding>,
        planned: &mut crate::plugin::resource::PlannedState<'_, GcpWorkloadIdentityBinding>,
    ) -> Diagnostics {
        super::k8s_checks::plan_workload_identity(ctx, planned.value()).await
    }

    async fn create(
        &self,
        ctx: &ProviderContext,
        planned: GcpWorkloadIdentityBinding,
    ) -> Result<GcpWorkloadIdentityBinding, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let binding = binding_of(&clients, &planned)?;
        set_member(&clients, &binding.resource, &binding.member, true).await?;
        Ok(finish(binding, planned))
    }

    async fn read(
        &self,
        ctx: &ProviderContext,
        current: GcpWorkloadIdentityBinding,
    ) -> Result<Option<GcpWorkloadIdentityBinding>, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let binding = binding_of(&clients, &current)?;
        let iam = clients.iam().await?;
        match iam
            .get_iam_policy()
            .set_resource(&binding.resource)
            .send()
            .await
        {
            Ok(policy) if gcp::has_member(&policy, WORKLOAD_IDENTITY_USER, &binding.member) => {
                Ok(Some(finish(binding, current)))
            }
            // Removed out of band: Terraform plans to add it again.
            Ok(_) => Ok(None),
            Err(e) if gcp::is_not_found(&e) => Ok(None),
            Err(e) => Err(gcp::api_error("read the IAM policy", &binding.resource, &e)),
        }
    }

    async fn update(
        &self,
        ctx: &ProviderContext,
        prior: GcpWorkloadIdentityBinding,
        planned: GcpWorkloadIdentityBinding,
    ) -> Result<GcpWorkloadIdentityBinding, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let old = binding_of(&clients, &prior)?;
        let new = binding_of(
            &clients,
            &GcpWorkloadIdentityBinding {
                workload_pool: planned.workload_pool.clone(),
                ..planned.clone()
            },
        )?;
        if old.member != new.member || old.resource != new.resource {
            set_member(&clients, &new.resource, &new.member, true).await?;
            set_member(&clients, &old.resource, &old.member, false).await?;
        }
        // The id is kept for the life of the resource (use-state-for-unknown).
        let mut state = finish(new, planned);
        if prior.id.is_some() {
            state.id = prior.id;
        }
        Ok(state)
    }

    async fn delete(
        &self,
        ctx: &ProviderContext,
        prior: GcpWorkloadIdentityBinding,
    ) -> Result<(), Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let binding = binding_of(&clients, &prior)?;
        set_member(&clients, &binding.resource, &binding.member, false).await
    }

    async fn import(
        &self,
        ctx: &ProviderContext,
        id: String,
    ) -> Result<GcpWorkloadIdentityBinding, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let parsed = id.split_once('|').and_then(|(gsa, ksa)| {
            let (namespace, name) = ksa.split_once('/')?;
            gsa_parts(gsa, &clients.project)?;
            (dns_label_problem(namespace).is_none() && dns_subdomain_problem(name).is_none()).then(
                || GcpWorkloadIdentityBinding {
                    service_account: gsa.to_owned(),
                    namespace: namespace.to_owned(),
                    kubernetes_service_account: name.to_owned(),
                    ..GcpWorkloadIdentityBinding::default()
                },
            )
        });
        let state = parsed.ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is not SERVICE_ACCOUNT|NAMESPACE/KSA, e.g. \"app@p.iam.gserviceaccount.com|apps/eso\"."),
            ))
        })?;
        let binding = binding_of(&clients, &state)?;
        Ok(finish(binding, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_label_problem("apps-1"), None);
        for bad in ["", "Apps", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(dns_label_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(dns_subdomain_problem("eso.reader"), None);
        assert!(dns_subdomain_problem("eso..reader").is_some());
    }

    #[test]
    fn gsa_from_email_or_name() {
        assert_eq!(
            gsa_parts("a@q.iam.gserviceaccount.com", "p"),
            Some(("q".into(), "a@q.iam.gserviceaccount.com".into()))
        );
        assert_eq!(
            gsa_parts(
                "projects/r/serviceAccounts/a@q.iam.gserviceaccount.com",
                "p"
            )
            .map(|x| x.0),
            Some("r".into())
        );
        assert_eq!(
            gsa_parts("123-compute@developer.gserviceaccount.com", "p").map(|x| x.0),
            Some("p".into())
        );
        assert_eq!(gsa_parts("not-an-email", "p"), None);
        assert_eq!(
            gsa_parts(
                "projects/-/serviceAccounts/a@q.iam.gserviceaccount.com",
                "p"
            ),
            None
        );
    }
}
