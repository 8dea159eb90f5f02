//! `secretbridge_gcp_secret_access`: grants `roles/secretmanager.secretAccessor`
//! to one member on exactly the listed secrets (secret-level IAM), or, with
//! `scope = "project"`, on the whole project, which is broader: every secret
//! in the project, present and future.
//!
//! Non-authoritative: each policy is edited by read-modify-write with its
//! etag (retried on 409 `ABORTED`), adding or removing only this member.
//! Adding or removing a secret updates in place. Import ID:
//! `MEMBER|SECRET[,SECRET...]` or `MEMBER|project`, with the provider's project.

use std::collections::BTreeSet;

use google_cloud_iam_v1::model::Policy;
use secretbridge_shared::terraform::{GcpSecretAccess, SecretAccessScope};

use crate::gcp::{self, GcpClients, SECRET_ACCESSOR};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{ProviderContext, Resource};

/// The `secretbridge_gcp_secret_access` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcpSecretAccessResource;

/// Why `member` is not an IAM member (`type:value`), if it is not.
pub fn member_problem(member: &str) -> Option<String> {
    match member.split_once(':') {
        Some((kind, value))
            if !kind.is_empty()
                && kind.chars().all(|c| c.is_ascii_alphabetic())
                && !value.is_empty() =>
        {
            None
        }
        _ => Some(format!(
            "member {member:?} is not in the IAM `type:value` form; write e.g. \"serviceAccount:app@PROJECT.iam.gserviceaccount.com\", \"user:alice@example.com\" or \"group:team@example.com\"."
        )),
    }
}

/// Why `secret` is neither a secret ID nor `projects/P/secrets/ID`, if it is neither.
fn secret_problem(secret: &str) -> Option<String> {
    let id = match secret.strip_prefix("projects/") {
        Some(rest) => match rest.split('/').collect::<Vec<_>>().as_slice() {
            [project, "secrets", id] if !project.is_empty() => *id,
            _ => {
                return Some(format!(
                    "{secret:?} is not a secret name; use the secret ID (e.g. \"db-password\") or projects/PROJECT/secrets/ID."
                ));
            }
        },
        None => secret,
    };
    let ok = !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (!ok).then(|| {
        format!("secret ID {id:?} may use only letters, digits, '-' and '_' (1 to 255 characters); rename the reference to the secret's ID.")
    })
}

/// The full resource name of a listed secret.
fn secret_resource(project: &str, secret: &str) -> String {
    if secret.starts_with("projects/") {
        secret.to_owned()
    } else {
        format!("projects/{project}/secrets/{secret}")
    }
}

fn project_of(clients: &GcpClients, state: &GcpSecretAccess) -> String {
    state
        .project
        .clone()
        .unwrap_or_else(|| clients.project.clone())
}

fn id_of(project: &str, state: &GcpSecretAccess) -> String {
    match state.scope {
        SecretAccessScope::Secret => format!("{}|projects/{project}/secrets", state.member),
        SecretAccessScope::Project => format!("{}|projects/{project}", state.member),
    }
}

/// Where the role is granted: each secret, or the project.
fn targets(project: &str, state: &GcpSecretAccess) -> BTreeSet<String> {
    match state.scope {
        SecretAccessScope::Secret => state
            .secrets
            .iter()
            .map(|s| secret_resource(project, s))
            .collect(),
        SecretAccessScope::Project => BTreeSet::from([format!("projects/{project}")]),
    }
}

/// Adds (`grant`) or removes this member on one target's policy.
async fn set_member(
    clients: &GcpClients,
    target: &str,
    member: &str,
    grant: bool,
) -> Result<(), Diagnostics> {
    let edit = |policy: &mut Policy| {
        if grant {
            gcp::add_member(policy, SECRET_ACCESSOR, member)
        } else {
            gcp::remove_member(policy, SECRET_ACCESSOR, member)
        }
    };
    if target.contains("/secrets/") {
        let client = clients.secrets().await?;
        let result = gcp::edit_policy(
            target,
            || client.get_iam_policy().set_resource(target).send(),
            |policy| {
                client
                    .set_iam_policy()
                    .set_resource(target)
                    .set_policy(policy)
                    .send()
            },
            edit,
        )
        .await;
        // Removing from a secret that is already gone is done.
        match result {
            Err(_) if !grant && secret_gone(&client, target).await => Ok(()),
            other => other,
        }
    } else {
        let client = clients.projects().await?;
        gcp::edit_policy(
            target,
            || client.get_iam_policy().set_resource(target).send(),
            |policy| {
                client
                    .set_iam_policy()
                    .set_resource(target)
                    .set_policy(policy)
                    .send()
            },
            edit,
        )
        .await
    }
}

async fn secret_gone(
    client: &google_cloud_secretmanager_v1::client::SecretManagerService,
    target: &str,
) -> bool {
    matches!(client.get_secret().set_name(target).send().await, Err(e) if gcp::is_not_found(&e))
}

/// Whether this member holds the role on `target`; `None` when the target is gone.
async fn granted(
    clients: &GcpClients,
    target: &str,
    member: &str,
) -> Result<Option<bool>, Diagnostics> {
    let policy = if target.contains("/secrets/") {
        clients
            .secrets()
            .await?
            .get_iam_policy()
            .set_resource(target)
            .send()
            .await
    } else {
        clients
            .projects()
            .await?
            .get_iam_policy()
            .set_resource(target)
            .send()
            .await
    };
    match policy {
        Ok(policy) => Ok(Some(gcp::has_member(&policy, SECRET_ACCESSOR, member))),
        Err(e) if gcp::is_not_found(&e) => Ok(None),
        Err(e) => Err(gcp::api_error("read the IAM policy", target, &e)),
    }
}

/// Applies the difference between two grants: removals first, so a moved grant never widens access.
async fn reconcile(
    clients: &GcpClients,
    member: &str,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) -> Result<(), Diagnostics> {
    for target in before.difference(after) {
        set_member(clients, target, member, false).await?;
    }
    for target in after.difference(before) {
        set_member(clients, target, member, true).await?;
    }
    Ok(())
}

impl Resource for GcpSecretAccessResource {
    type State = GcpSecretAccess;

    fn type_name(&self) -> &'static str {
        "secretbridge_gcp_secret_access"
    }

    fn validate(&self, config: &GcpSecretAccess) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(problem) = member_problem(&config.member) {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("member"),
                "Invalid IAM member",
                problem,
            ));
        }
        for (i, secret) in config.secrets.iter().enumerate() {
            if let Some(problem) = secret_problem(secret) {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("secrets").index(i),
                    "Invalid secret name",
                    problem,
                ));
            }
        }
        if config.scope == SecretAccessScope::Project && !config.secrets.is_empty() {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("secrets"),
                "secrets ignored with scope = \"project\"",
                "scope = \"project\" grants every secret in the project; remove `secrets`, or drop `scope` to grant only the listed secrets.",
            ));
        }
        diags
    }

    async fn create(
        &self,
        ctx: &ProviderContext,
        planned: GcpSecretAccess,
    ) -> Result<GcpSecretAccess, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let project = project_of(&clients, &planned);
        reconcile(
            &clients,
            &planned.member,
            &BTreeSet::new(),
            &targets(&project, &planned),
        )
        .await?;
        Ok(GcpSecretAccess {
            id: Some(id_of(&project, &planned)),
            project: Some(project),
            ..planned
        })
    }

    async fn read(
        &self,
        ctx: &ProviderContext,
        current: GcpSecretAccess,
    ) -> Result<Option<GcpSecretAccess>, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let project = project_of(&clients, &current);
        match current.scope {
            SecretAccessScope::Project => {
                let target = format!("projects/{project}");
                // A project-wide grant removed out of band means the grant is gone: re-create it.
                match granted(&clients, &target, &current.member).await? {
                    Some(true) => Ok(Some(current)),
                    _ => Ok(None),
                }
            }
            SecretAccessScope::Secret => {
                // Keep only the secrets that still grant this member, so the
                // plan shows the ones to re-add.
                let mut still = Vec::with_capacity(current.secrets.len());
                for secret in &current.secrets {
                    if granted(
                        &clients,
                        &secret_resource(&project, secret),
                        &current.member,
                    )
                    .await?
                        == Some(true)
                    {
                        still.push(secret.clone());
                    }
                }
                Ok(Some(GcpSecretAccess {
                    secrets: still,
                    ..current
                }))
            }
        }
    }

    async fn update(
        &self,
        ctx: &ProviderContext,
        prior: GcpSecretAccess,
        planned: GcpSecretAccess,
    ) -> Result<GcpSecretAccess, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let project = project_of(&clients, &planned);
        reconcile(
            &clients,
            &planned.member,
            &targets(&project, &prior),
            &targets(&project, &planned),
        )
        .await?;
        Ok(GcpSecretAccess {
            // The id names the grant, and the plan kept the prior one
            // (use-state-for-unknown): moving between scopes must not change it.
            id: prior.id.clone().or_else(|| Some(id_of(&project, &planned))),
            project: Some(project),
            ..planned
        })
    }

    async fn delete(
        &self,
        ctx: &ProviderContext,
        prior: GcpSecretAccess,
    ) -> Result<(), Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let project = project_of(&clients, &prior);
        reconcile(
            &clients,
            &prior.member,
            &targets(&project, &prior),
            &BTreeSet::new(),
        )
        .await
    }

    async fn import(
        &self,
        ctx: &ProviderContext,
        id: String,
    ) -> Result<GcpSecretAccess, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let bad = || -> Diagnostics {
            Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is not MEMBER|SECRET[,SECRET...] or MEMBER|project, e.g. \"serviceAccount:app@p.iam.gserviceaccount.com|db-password,api-key\"."),
            )
            .into()
        };
        let (member, what) = id.split_once('|').ok_or_else(bad)?;
        if member_problem(member).is_some() || what.is_empty() {
            return Err(bad());
        }
        let (scope, secrets) = if what == "project" {
            (SecretAccessScope::Project, Vec::new())
        } else {
            let secrets: Vec<String> = what.split(',').map(str::to_owned).collect();
            if secrets.iter().any(|s| secret_problem(s).is_some()) {
                return Err(bad());
            }
            (SecretAccessScope::Secret, secrets)
        };
        let project = clients.project.clone();
        let state = GcpSecretAccess {
            member: member.to_owned(),
            project: Some(project.clone()),
            secrets,
            scope,
            id: None,
        };
        Ok(GcpSecretAccess {
            id: Some(id_of(&project, &state)),
            ..state
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_must_be_type_colon_value() {
        assert_eq!(
            member_problem("serviceAccount:a@p.iam.gserviceaccount.com"),
            None
        );
        assert_eq!(member_problem("serviceAccount:p.svc.id.goog[ns/ksa]"), None);
        for bad in ["alice@example.com", ":x", "user:", "us er:x", ""] {
            assert!(member_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_ids_or_full_names() {
        assert_eq!(secret_problem("db-password_2"), None);
        assert_eq!(secret_problem("projects/p/secrets/db"), None);
        for bad in [
            "",
            "has space",
            "dots.not.allowed",
            "projects/p/secrets/",
            "projects/p/other/x",
            "projects//secrets/x",
        ] {
            assert!(secret_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(secret_resource("p", "db"), "projects/p/secrets/db");
        assert_eq!(
            secret_resource("p", "projects/q/secrets/db"),
            "projects/q/secrets/db"
        );
    }
}
