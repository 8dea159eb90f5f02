//! `secretbridge_gcp_service_account`: a Google service account (GSA) for a
//! workload, through the IAM Admin API. `project` and `account_id` force a
//! new account; `display_name` and `description` are patched in place. Import
//! takes the email or `projects/P/serviceAccounts/EMAIL`.

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_admin_v1::model::ServiceAccount;
use google_cloud_wkt::FieldMask;
use secretbridge_shared::terraform::GcpServiceAccount;

use crate::gcp::{self, GcpClients};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{ProviderContext, Resource};

/// How long a freshly created account may stay invisible to reads
/// (IAM is eventually consistent).
const CREATE_VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// The `secretbridge_gcp_service_account` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcpServiceAccountResource;

/// `projects/P/serviceAccounts/EMAIL` for an email.
fn resource_name(project: &str, email: &str) -> String {
    format!("projects/{project}/serviceAccounts/{email}")
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The state for an account as the API returns it.
fn to_state(account: &ServiceAccount) -> GcpServiceAccount {
    let account_id = account
        .email
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    GcpServiceAccount {
        project: Some(account.project_id.clone()),
        account_id,
        display_name: non_empty(&account.display_name),
        description: non_empty(&account.description),
        email: Some(account.email.clone()),
        name: Some(account.name.clone()),
        unique_id: Some(account.unique_id.clone()),
        member: Some(format!("serviceAccount:{}", account.email)),
        id: Some(account.name.clone()),
    }
}

/// Reads an account by resource name; `None` when it does not exist.
async fn get(iam: &Iam, name: &str) -> Result<Option<ServiceAccount>, Diagnostics> {
    match iam.get_service_account().set_name(name).send().await {
        Ok(account) => Ok(Some(account)),
        Err(e) if gcp::is_not_found(&e) => Ok(None),
        Err(e) => Err(gcp::api_error("read the service account", name, &e)),
    }
}

/// Checks an account ID the way IAM does, so a bad one fails at plan time.
fn account_id_problem(id: &str) -> Option<&'static str> {
    let len = id.chars().count();
    if !(6..=30).contains(&len) {
        return Some("must be 6 to 30 characters long");
    }
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("must start with a lowercase letter");
    }
    if id.ends_with('-') {
        return Some("must not end with a hyphen");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("may contain only lowercase letters, digits and hyphens");
    }
    None
}

impl Resource for GcpServiceAccountResource {
    type State = GcpServiceAccount;

    fn type_name(&self) -> &'static str {
        "secretbridge_gcp_service_account"
    }

    fn validate(&self, config: &GcpServiceAccount) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(problem) = account_id_problem(&config.account_id) {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("account_id"),
                "Invalid service account ID",
                format!(
                    "account_id {:?} {problem}. Use 6 to 30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen, e.g. \"eso-reader\".",
                    config.account_id
                ),
            ));
        }
        diags
    }

    async fn create(
        &self,
        ctx: &ProviderContext,
        planned: GcpServiceAccount,
    ) -> Result<GcpServiceAccount, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let project = planned
            .project
            .clone()
            .unwrap_or_else(|| clients.project.clone());
        let iam = clients.iam().await?;
        let mut account = ServiceAccount::new();
        if let Some(display_name) = &planned.display_name {
            account = account.set_display_name(display_name);
        }
        if let Some(description) = &planned.description {
            account = account.set_description(description);
        }
        let parent = format!("projects/{project}");
        let created = iam
            .create_service_account()
            .set_name(&parent)
            .set_account_id(&planned.account_id)
            .set_service_account(account)
            .send()
            .await
            .map_err(|e| {
                gcp::api_error(
                    "create the service account",
                    &format!("{parent}, account_id {}", planned.account_id),
                    &e,
                )
            })?;
        // Reads may lag the create; wait until the account is visible so the
        // refresh right after apply does not see it as gone.
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            if let Some(account) = get(&iam, &created.name).await? {
                return Ok(to_state(&account));
            }
            if started.elapsed() > CREATE_VISIBLE_WITHIN {
                return Err(Diagnostic::error(
                    "Service account not visible after create",
                    format!("{} was created but could not be read within {CREATE_VISIBLE_WITHIN:?}; run `terraform import` with its email.", created.name),
                )
                .into());
            }
            gcp::backoff(attempt).await;
            attempt += 1;
        }
    }

    async fn read(
        &self,
        ctx: &ProviderContext,
        current: GcpServiceAccount,
    ) -> Result<Option<GcpServiceAccount>, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let name = match (&current.name, &current.email) {
            (Some(name), _) => name.clone(),
            (None, Some(email)) => resource_name(current.project.as_deref().unwrap_or("-"), email),
            (None, None) => return Ok(None),
        };
        let iam = clients.iam().await?;
        Ok(get(&iam, &name).await?.map(|account| to_state(&account)))
    }

    async fn update(
        &self,
        ctx: &ProviderContext,
        prior: GcpServiceAccount,
        planned: GcpServiceAccount,
    ) -> Result<GcpServiceAccount, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let iam = clients.iam().await?;
        let name = prior.name.clone().unwrap_or_default();
        // Patch carries the account's etag; a concurrent change makes it
        // ABORTED, so re-read and retry.
        let mut attempt = 0;
        loop {
            let Some(current) = get(&iam, &name).await? else {
                return Err(Diagnostic::error(
                    "Service account disappeared",
                    format!("{name} was deleted outside Terraform; run `terraform apply` again to re-create it."),
                )
                .into());
            };
            let patched = current
                .set_display_name(planned.display_name.clone().unwrap_or_default())
                .set_description(planned.description.clone().unwrap_or_default());
            match iam
                .patch_service_account()
                .set_service_account(patched)
                .set_update_mask(FieldMask::default().set_paths(["displayName", "description"]))
                .send()
                .await
            {
                Ok(account) => return Ok(to_state(&account)),
                Err(e) if gcp::code(&e) == Some(Code::Aborted) && attempt < 5 => {
                    gcp::backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(gcp::api_error("update the service account", &name, &e)),
            }
        }
    }

    async fn delete(
        &self,
        ctx: &ProviderContext,
        prior: GcpServiceAccount,
    ) -> Result<(), Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let Some(name) = prior.name else {
            return Ok(());
        };
        let iam = clients.iam().await?;
        match iam.delete_service_account().set_name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) if gcp::is_not_found(&e) => Ok(()),
            Err(e) => Err(gcp::api_error("delete the service account", &name, &e)),
        }
    }

    async fn import(
        &self,
        ctx: &ProviderContext,
        id: String,
    ) -> Result<GcpServiceAccount, Diagnostics> {
        let clients = GcpClients::new(ctx)?;
        let name = if id.starts_with("projects/") {
            let parts: Vec<&str> = id.split('/').collect();
            match parts.as_slice() {
                ["projects", project, "serviceAccounts", email]
                    if !project.is_empty() && email.contains('@') =>
                {
                    id.clone()
                }
                _ => {
                    return Err(Diagnostic::error(
                        "Invalid import ID",
                        format!("{id:?} is not projects/PROJECT/serviceAccounts/EMAIL; import by the email or that resource name."),
                    )
                    .into());
                }
            }
        } else if id.contains('@') {
            resource_name("-", &id)
        } else {
            return Err(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} is neither an email nor projects/PROJECT/serviceAccounts/EMAIL; import by one of those."),
            )
            .into());
        };
        let iam = clients.iam().await?;
        match get(&iam, &name).await? {
            Some(account) => Ok(to_state(&account)),
            None => Err(Diagnostic::error(
                "Service account not found",
                format!("{name} does not exist; check the email and project."),
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_checked_like_iam() {
        assert_eq!(account_id_problem("eso-reader"), None);
        assert_eq!(account_id_problem("a1b2c3"), None);
        assert!(account_id_problem("short").is_some());
        assert!(account_id_problem("Upper-case1").is_some());
        assert!(account_id_problem("ends-with-dash-").is_some());
        assert!(account_id_problem("1starts-with-digit").is_some());
        assert!(account_id_problem("this-account-id-is-far-too-long-x").is_some());
        assert!(account_id_problem("under_score").is_some());
    }
}
