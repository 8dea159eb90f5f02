//! `secretbridge_aws_irsa_role`: an IAM role exactly one Kubernetes
//! ServiceAccount can assume through the cluster's OIDC provider, with one
//! inline policy derived from `access`. Both policies are derived (see
//! [`crate::aws::policy`]) and managed exclusively: a refresh compares IAM
//! with the derivation, reads an edited trust back into `namespace` /
//! `service_account` where it can, and otherwise reports
//! `policies_in_sync = false`, so the next plan shows the drift and apply
//! rewrites both policies and drops foreign inline policies. `name` and
//! `path` force a new role. Import takes the role name.

use std::collections::BTreeMap;

use aws_sdk_iam::Client;
use aws_sdk_iam::types::{Role, Tag};
use secretbridge_shared::terraform::{AwsIrsaRole, IrsaAccess};
use serde_json::Value as J;

use crate::aws::policy::{self, Arn, Scope};
use crate::aws::{self, AwsClients};
use crate::planned::{Known, PlannedIrsaRole};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{PlannedState, ProviderContext, Resource};
use crate::plugin::value::Value;
use crate::resources::gcp_workload_identity::dns_label_problem;

/// The name of the role's one inline policy.
pub const ACCESS_POLICY_NAME: &str = "secretbridge-access";

/// The `secretbridge_aws_irsa_role` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsIrsaRoleResource;

/// The role's policies as IAM holds them, canonical.
struct RemotePolicies {
    trust: Option<J>,
    inline_names: Vec<String>,
    access: Option<J>,
}

fn parse_iam_doc(raw: &str, what: &str, role: &str) -> Result<J, Diagnostics> {
    policy::canonical_from_iam(raw)
        .and_then(|text| serde_json::from_str(&text))
        .map_err(|e| Diagnostic::error("Unreadable IAM policy", format!("the {what} of role {role} is not JSON ({e}); fix or delete it in IAM.")).into())
}

async fn get_role(iam: &Client, name: &str) -> Result<Option<Role>, Diagnostics> {
    match iam.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role),
        Err(e) if aws::is_not_found(&e) => Ok(None),
        Err(e) => Err(aws::api_error("read the IAM role", name, &e)),
    }
}

async fn inline_policy_names(iam: &Client, name: &str) -> Result<Vec<String>, Diagnostics> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = iam
            .list_role_policies()
            .role_name(name)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| aws::api_error("list the inline policies of the IAM role", name, &e))?;
        names.extend(out.policy_names().iter().cloned());
        marker = out.marker().map(str::to_owned);
        if !out.is_truncated() || marker.is_none() {
            break;
        }
    }
    names.sort();
    Ok(names)
}

async fn remote_policies(iam: &Client, role: &Role) -> Result<RemotePolicies, Diagnostics> {
    let name = role.role_name();
    let trust = match role.assume_role_policy_document() {
        Some(raw) => Some(parse_iam_doc(raw, "trust policy", name)?),
        None => None,
    };
    let inline_names = inline_policy_names(iam, name).await?;
    let access = if inline_names.iter().any(|n| n == ACCESS_POLICY_NAME) {
        let out = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(ACCESS_POLICY_NAME)
            .send()
            .await
            .map_err(|e| aws::api_error("read the inline policy of the IAM role", &format!("{name}/{ACCESS_POLICY_NAME}"), &e))?;
        Some(parse_iam_doc(out.policy_document(), "inline policy", name)?)
    } else {
        None
    };
    Ok(RemotePolicies { trust, inline_names, access })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

fn ordered_access(read: IrsaAccess, prior: &IrsaAccess) -> IrsaAccess {
    IrsaAccess {
        parameters: policy::keep_order(read.parameters, &prior.parameters),
        secrets: policy::keep_order(read.secrets, &prior.secrets),
        kms_keys: policy::keep_order(read.kms_keys, &prior.kms_keys),
    }
}

/// The derived policies for a configuration, canonical.
fn derived(config: &AwsIrsaRole, region: &str) -> Result<(String, String), Diagnostics> {
    let scope = Scope::for_provider(&config.oidc_provider_arn, region).ok_or_else(|| {
        Diagnostics::from(Diagnostic::attribute_error(
            AttrPath::root("oidc_provider_arn"),
            "Invalid OIDC provider ARN",
            format!("{:?} is not an ARN; use secretbridge_aws_oidc_provider.NAME.arn.", config.oidc_provider_arn),
        ))
    })?;
    let trust = policy::canonical(&policy::trust_policy(&config.oidc_provider_arn, &config.namespace, &config.service_account));
    let access = policy::canonical(&policy::access_policy(&scope, &config.access));
    Ok((trust, access))
}

/// The state of a role as IAM holds it. Values that IAM does not store
/// apart from the policies (provider, namespace, service account, access)
/// are read back from the policies when they have the derived shape, else
/// kept from `prior`; `policies_in_sync` says whether IAM holds exactly
/// the derivation of the values returned.
fn to_state(role: &Role, remote: &RemotePolicies, prior: &AwsIrsaRole, region: &str) -> Result<AwsIrsaRole, Diagnostics> {
    let subjects = remote.trust.as_ref().map(policy::trusted_subjects).unwrap_or_default();
    let (oidc_provider_arn, namespace, service_account) = match subjects.as_slice() {
        [(provider, ns, sa)] => (provider.clone(), ns.clone(), sa.clone()),
        _ => (prior.oidc_provider_arn.clone(), prior.namespace.clone(), prior.service_account.clone()),
    };
    let access = match &remote.access {
        Some(doc) => ordered_access(policy::access_of(doc), &prior.access),
        None => prior.access.clone(),
    };
    let tags: BTreeMap<String, String> = role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    let mut state = AwsIrsaRole {
        name: role.role_name().to_owned(),
        path: role.path().to_owned(),
        description: non_empty(role.description()),
        tags: match (&prior.tags, tags.is_empty()) {
            (None, true) => None,
            _ => Some(tags),
        },
        max_session_duration: role.max_session_duration().map_or(3600, i64::from),
        permissions_boundary: non_empty(role.permissions_boundary().and_then(|b| b.permissions_boundary_arn())),
        oidc_provider_arn,
        namespace,
        service_account,
        access,
        arn: Some(role.arn().to_owned()),
        trust_policy_json: remote.trust.as_ref().map(policy::canonical),
        access_policy_json: remote.access.as_ref().map(policy::canonical),
        policies_in_sync: false,
        id: Some(role.role_name().to_owned()),
    };
    let in_sync = match derived(&state, region) {
        Ok((trust, access)) => {
            state.trust_policy_json.as_deref() == Some(trust.as_str())
                && state.access_policy_json.as_deref() == Some(access.as_str())
                && remote.inline_names == [ACCESS_POLICY_NAME]
        }
        Err(_) => false,
    };
    state.policies_in_sync = in_sync;
    Ok(state)
}

fn tag_list(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>, Diagnostics> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder().key(k).value(v).build().map_err(|e| {
                Diagnostics::from(Diagnostic::attribute_error(AttrPath::root("tags").key(k), "Invalid tag", e.to_string()))
            })
        })
        .collect()
}

/// The role must live in the OIDC provider's account: IAM only lets a role
/// trust an OIDC provider of its own account.
async fn check_account(clients: &AwsClients, planned: &AwsIrsaRole) -> Result<(), Diagnostics> {
    let account = clients.account_id().await?;
    let provider_account = Arn::parse(&planned.oidc_provider_arn).map(|a| a.account).unwrap_or_default();
    if provider_account != account {
        return Err(Diagnostic::attribute_error(
            AttrPath::root("oidc_provider_arn"),
            "OIDC provider in another account",
            format!(
                "{} is in account {provider_account:?}, but the provider's credentials are in account {account}; a role can only trust an OIDC provider of its own account. Use that account's provider or credentials.",
                planned.oidc_provider_arn
            ),
        )
        .into());
    }
    Ok(())
}

/// Writes both policies and removes every other inline policy.
async fn write_policies(iam: &Client, name: &str, trust: &str, access: &str) -> Result<(), Diagnostics> {
    iam.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust)
        .send()
        .await
        .map_err(|e| aws::api_error("write the trust policy of the IAM role", name, &e))?;
    iam.put_role_policy()
        .role_name(name)
        .policy_name(ACCESS_POLICY_NAME)
        .policy_document(access)
        .send()
        .await
        .map_err(|e| aws::api_error("write the inline policy of the IAM role", &format!("{name}/{ACCESS_POLICY_NAME}"), &e))?;
    for other in inline_policy_names(iam, name).await?.into_iter().filter(|n| n != ACCESS_POLICY_NAME) {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(&other)
            .send()
            .await
            .map_err(|e| aws::api_error("delete a foreign inline policy of the IAM role", &format!("{name}/{other}"), &e))?;
    }
    Ok(())
}

/// The state after a successful write: the plan plus what IAM assigned.
fn written(planned: AwsIrsaRole, arn: String, trust: String, access: String) -> AwsIrsaRole {
    AwsIrsaRole {
        id: Some(planned.name.clone()),
        arn: Some(arn),
        trust_policy_json: Some(trust),
        access_policy_json: Some(access),
        policies_in_sync: true,
        ..planned
    }
}

fn access_problems(access: &IrsaAccess) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let base = AttrPath::root("access");
    if access.parameters.is_empty() && access.secrets.is_empty() && access.kms_keys.is_empty() {
        diags.push(Diagnostic::attribute_error(
            base.clone(),
            "Empty access",
            "access grants nothing: list at least one of parameters, secrets or kms_keys, e.g. parameters = [\"/app/db/url\"].",
        ));
    }
    for (i, p) in access.parameters.iter().enumerate() {
        let problem = if !p.starts_with('/') {
            Some("must start with '/' (a full parameter name or a path like /app/*)")
        } else if p.trim_end_matches("/*").contains('*') {
            Some("may use '*' only as a trailing /* for a whole path")
        } else if p.contains("//") || p.ends_with('/') {
            Some("has an empty path segment")
        } else {
            None
        };
        if let Some(problem) = problem {
            diags.push(Diagnostic::attribute_error(
                base.attr("parameters").index(i),
                "Invalid parameter name",
                format!("{p:?} {problem}; write it like \"/app/db/url\" or \"/app/*\"."),
            ));
        }
    }
    for (i, s) in access.secrets.iter().enumerate() {
        let problem = if s.starts_with("arn:") {
            match Arn::parse(s) {
                Some(arn) if arn.service == "secretsmanager" && arn.resource.starts_with("secret:") && !arn.region.is_empty() => None,
                _ => Some("is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)"),
            }
        } else if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
            Some("is not a secret name (letters, digits and /_+=.@-)")
        } else {
            None
        };
        if let Some(problem) = problem {
            diags.push(Diagnostic::attribute_error(
                base.attr("secrets").index(i),
                "Invalid secret",
                format!("{s:?} {problem}; use the secret's name, e.g. \"prod/db\", or its full ARN."),
            ));
        }
    }
    for (i, k) in access.kms_keys.iter().enumerate() {
        let ok = Arn::parse(k).is_some_and(|arn| {
            arn.service == "kms" && !arn.region.is_empty() && (arn.resource.starts_with("key/") || arn.resource.starts_with("alias/"))
        });
        if !ok {
            diags.push(Diagnostic::attribute_error(
                base.attr("kms_keys").index(i),
                "Invalid KMS key ARN",
                format!("{k:?} is not a KMS key ARN; use arn:aws:kms:REGION:ACCOUNT:key/KEY-ID."),
            ));
        }
    }
    diags
}

impl Resource for AwsIrsaRoleResource {
    type State = AwsIrsaRole;

    fn type_name(&self) -> &'static str {
        "secretbridge_aws_irsa_role"
    }

    fn validate(&self, config: &AwsIrsaRole) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if let Some(problem) = policy::oidc_provider_arn_problem(&config.oidc_provider_arn) {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("oidc_provider_arn"),
                "Invalid OIDC provider ARN",
                format!(
                    "{:?} {problem}; use secretbridge_aws_oidc_provider.NAME.arn, i.e. arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH].",
                    config.oidc_provider_arn
                ),
            ));
        }
        if let Some(boundary) = &config.permissions_boundary {
            let ok = Arn::parse(boundary).is_some_and(|arn| arn.service == "iam" && arn.resource.starts_with("policy/"));
            if !ok {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("permissions_boundary"),
                    "Invalid permissions boundary ARN",
                    format!("{boundary:?} is not a managed policy ARN; use arn:aws:iam::ACCOUNT:policy/NAME."),
                ));
            }
        }
        for (attr, value, what) in [
            ("namespace", &config.namespace, "Kubernetes namespace"),
            ("service_account", &config.service_account, "Kubernetes ServiceAccount name"),
        ] {
            if let Some(problem) = dns_label_problem(value) {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root(attr),
                    format!("Invalid {what}"),
                    format!("{attr} {value:?} {problem}: it must be a DNS label (RFC 1123: lowercase letters, digits and '-', at most 63), e.g. \"apps\"."),
                ));
            }
        }
        diags.extend(access_problems(&config.access));
        diags
    }

    /// Derives the ARN and both policies at plan time once their inputs are
    /// known (they are pure functions of the configuration and the region),
    /// so the plan shows the exact grant; and records the role for the
    /// cross-resource checks of ServiceAccounts.
    async fn modify_plan(&self, ctx: &ProviderContext, _prior: Option<&AwsIrsaRole>, planned: &mut PlannedState<'_, AwsIrsaRole>) -> Diagnostics {
        let inputs = ["name", "path", "oidc_provider_arn", "namespace", "service_account", "access"];
        let inputs_known = inputs.iter().all(|n| !planned.is_unknown(&AttrPath::root(n)));
        if inputs_known
            && let Some(mut model) = planned.model().cloned()
            && let Ok(aws) = aws::config(ctx)
            && let Some(scope) = Scope::for_provider(&model.oidc_provider_arn, &aws.region)
            && let Ok((trust, access)) = derived(&model, &aws.region)
        {
            model.arn = Some(scope.role_arn(&model.path, &model.name));
            model.id = Some(model.name.clone());
            model.trust_policy_json = Some(trust);
            model.access_policy_json = Some(access);
            model.policies_in_sync = true;
            if let Err(diags) = planned.set(model) {
                return diags;
            }
        }
        let raw = planned.value();
        let text = |name: &str| match raw.attr(name) {
            Value::String(s) => Known::Value(s.clone()),
            _ => Known::Unknown,
        };
        if let Known::Value(name) = text("name") {
            let role = PlannedIrsaRole { name, arn: text("arn"), namespace: text("namespace"), service_account: text("service_account") };
            ctx.planned.record_irsa_role(role.clone());
            return super::k8s_checks::check_role_against_planned_service_accounts(ctx, &role);
        }
        Diagnostics::default()
    }

    async fn create(&self, ctx: &ProviderContext, planned: AwsIrsaRole) -> Result<AwsIrsaRole, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        check_account(&clients, &planned).await?;
        let (trust, access) = derived(&planned, &clients.region)?;
        let iam = clients.iam();
        let created = iam
            .create_role()
            .role_name(&planned.name)
            .path(&planned.path)
            .assume_role_policy_document(&trust)
            .set_description(planned.description.clone())
            .max_session_duration(i32::try_from(planned.max_session_duration).unwrap_or(3600))
            .set_permissions_boundary(planned.permissions_boundary.clone())
            .set_tags(planned.tags.as_ref().map(tag_list).transpose()?)
            .send()
            .await
            .map_err(|e| aws::api_error("create the IAM role", &planned.name, &e))?;
        let arn = created.role().map(|r| r.arn().to_owned()).unwrap_or_default();
        if let Err(diags) = write_policies(&iam, &planned.name, &trust, &access).await {
            // Terraform records nothing for a failed create: do not leave a half-made role behind.
            let _ = iam.delete_role().role_name(&planned.name).send().await;
            return Err(diags);
        }
        Ok(written(planned, arn, trust, access))
    }

    async fn read(&self, ctx: &ProviderContext, current: AwsIrsaRole) -> Result<Option<AwsIrsaRole>, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        let iam = clients.iam();
        let name = current.id.clone().unwrap_or_else(|| current.name.clone());
        let Some(role) = get_role(&iam, &name).await? else {
            return Ok(None);
        };
        let remote = remote_policies(&iam, &role).await?;
        to_state(&role, &remote, &current, &clients.region).map(Some)
    }

    async fn update(&self, ctx: &ProviderContext, prior: AwsIrsaRole, planned: AwsIrsaRole) -> Result<AwsIrsaRole, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        check_account(&clients, &planned).await?;
        let (trust, access) = derived(&planned, &clients.region)?;
        let iam = clients.iam();
        let name = prior.name.clone();
        let Some(role) = get_role(&iam, &name).await? else {
            return Err(Diagnostic::error(
                "IAM role disappeared",
                format!("{name} was deleted outside Terraform; run `terraform apply` again to re-create it."),
            )
            .into());
        };
        iam.update_role()
            .role_name(&name)
            .description(planned.description.clone().unwrap_or_default())
            .max_session_duration(i32::try_from(planned.max_session_duration).unwrap_or(3600))
            .send()
            .await
            .map_err(|e| aws::api_error("update the IAM role", &name, &e))?;
        let current_boundary = non_empty(role.permissions_boundary().and_then(|b| b.permissions_boundary_arn()));
        match (&planned.permissions_boundary, &current_boundary) {
            (Some(wanted), current) if Some(wanted) != current.as_ref() => {
                iam.put_role_permissions_boundary()
                    .role_name(&name)
                    .permissions_boundary(wanted)
                    .send()
                    .await
                    .map_err(|e| aws::api_error("set the permissions boundary of the IAM role", &name, &e))?;
            }
            (None, Some(_)) => {
                iam.delete_role_permissions_boundary()
                    .role_name(&name)
                    .send()
                    .await
                    .map_err(|e| aws::api_error("remove the permissions boundary of the IAM role", &name, &e))?;
            }
            _ => {}
        }
        let remote_tags: BTreeMap<String, String> = role.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
        let wanted = planned.tags.clone().unwrap_or_default();
        let stale: Vec<String> = remote_tags.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        if !stale.is_empty() {
            iam.untag_role()
                .role_name(&name)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .map_err(|e| aws::api_error("untag the IAM role", &name, &e))?;
        }
        let changed: BTreeMap<String, String> = wanted.into_iter().filter(|(k, v)| remote_tags.get(k) != Some(v)).collect();
        if !changed.is_empty() {
            iam.tag_role()
                .role_name(&name)
                .set_tags(Some(tag_list(&changed)?))
                .send()
                .await
                .map_err(|e| aws::api_error("tag the IAM role", &name, &e))?;
        }
        write_policies(&iam, &name, &trust, &access).await?;
        Ok(written(planned, role.arn().to_owned(), trust, access))
    }

    async fn delete(&self, ctx: &ProviderContext, prior: AwsIrsaRole) -> Result<(), Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        let iam = clients.iam();
        let name = prior.name;
        if get_role(&iam, &name).await?.is_none() {
            return Ok(());
        }
        // IAM refuses to delete a role that still has policies.
        for policy_name in inline_policy_names(&iam, &name).await? {
            iam.delete_role_policy()
                .role_name(&name)
                .policy_name(&policy_name)
                .send()
                .await
                .map_err(|e| aws::api_error("delete an inline policy of the IAM role", &format!("{name}/{policy_name}"), &e))?;
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .send()
            .await
            .map_err(|e| aws::api_error("list the managed policies attached to the IAM role", &name, &e))?;
        for policy_arn in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
            iam.detach_role_policy()
                .role_name(&name)
                .policy_arn(policy_arn)
                .send()
                .await
                .map_err(|e| aws::api_error("detach a managed policy from the IAM role", &format!("{name}, {policy_arn}"), &e))?;
        }
        match iam.delete_role().role_name(&name).send().await {
            Ok(_) => Ok(()),
            Err(e) if aws::is_not_found(&e) => Ok(()),
            Err(e) => Err(aws::api_error("delete the IAM role", &name, &e)),
        }
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<AwsIrsaRole, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        let iam = clients.iam();
        let Some(role) = get_role(&iam, &id).await? else {
            return Err(Diagnostic::error("IAM role not found", format!("role {id:?} does not exist; import by the role's name (not its ARN).")).into());
        };
        let remote = remote_policies(&iam, &role).await?;
        let subjects = remote.trust.as_ref().map(policy::trusted_subjects).unwrap_or_default();
        if subjects.len() != 1 {
            return Err(Diagnostic::error(
                "Not an IRSA role",
                format!(
                    "the trust policy of {id} admits {} ServiceAccounts through web identity; secretbridge_aws_irsa_role manages roles trusting exactly one. Re-create the role with Terraform instead.",
                    subjects.len()
                ),
            )
            .into());
        }
        let blank = AwsIrsaRole { name: id.clone(), ..AwsIrsaRole::default() };
        to_state(&role, &remote, &blank, &clients.region)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> AwsIrsaRole {
        AwsIrsaRole {
            name: "reader".into(),
            path: "/".into(),
            max_session_duration: 3600,
            oidc_provider_arn: "arn:aws:iam::123456789012:oidc-provider/issuer.example.com".into(),
            namespace: "apps".into(),
            service_account: "reader".into(),
            access: IrsaAccess { parameters: vec!["/app/db".into()], ..Default::default() },
            policies_in_sync: true,
            ..Default::default()
        }
    }

    fn messages(d: &Diagnostics) -> String {
        d.0.iter().map(|d| format!("{} {}: {}", d.path.as_ref().map(ToString::to_string).unwrap_or_default(), d.summary, d.detail)).collect::<Vec<_>>().join("\n")
    }

    fn role(trust: &J) -> Role {
        Role::builder()
            .path("/")
            .role_name("reader")
            .role_id("AROAEXAMPLE")
            .arn("arn:aws:iam::123456789012:role/reader")
            .create_date(aws_sdk_iam::primitives::DateTime::from_secs(0))
            .assume_role_policy_document(trust.to_string())
            .build()
            .unwrap()
    }

    fn refreshed(trust: J, inline_names: &[&str], access: Option<J>) -> AwsIrsaRole {
        let remote = RemotePolicies {
            trust: Some(trust.clone()),
            inline_names: inline_names.iter().map(|n| (*n).to_owned()).collect(),
            access,
        };
        to_state(&role(&trust), &remote, &config(), "eu-west-1").unwrap()
    }

    fn derived_docs() -> (J, J) {
        let c = config();
        let scope = Scope::for_provider(&c.oidc_provider_arn, "eu-west-1").unwrap();
        (policy::trust_policy(&c.oidc_provider_arn, &c.namespace, &c.service_account), policy::access_policy(&scope, &c.access))
    }

    #[test]
    fn refresh_of_an_untouched_role_is_in_sync_and_matches_the_configuration() {
        let (trust, access) = derived_docs();
        let state = refreshed(trust, &[ACCESS_POLICY_NAME], Some(access));
        assert!(state.policies_in_sync);
        let expected = config();
        assert_eq!(
            (&state.oidc_provider_arn, &state.namespace, &state.service_account, &state.access),
            (&expected.oidc_provider_arn, &expected.namespace, &expected.service_account, &expected.access)
        );
    }

    #[test]
    fn refresh_reads_an_edited_trust_back_into_the_service_account() {
        let (mut trust, access) = derived_docs();
        trust["Statement"][0]["Condition"]["StringEquals"]["issuer.example.com:sub"] = J::from("system:serviceaccount:apps:intruder");
        let state = refreshed(trust, &[ACCESS_POLICY_NAME], Some(access));
        assert_eq!(state.service_account, "intruder", "the plan will show intruder -> reader");
        assert!(state.policies_in_sync, "the trust is the derivation of what was read");
    }

    #[test]
    fn refresh_flags_foreign_or_widened_inline_policies() {
        let (trust, access) = derived_docs();
        assert!(!refreshed(trust.clone(), &[ACCESS_POLICY_NAME, "rogue"], Some(access.clone())).policies_in_sync);
        let mut widened = access;
        if let Some(statements) = widened["Statement"].as_array_mut() {
            statements.push(serde_json::json!({"Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "*"}));
        }
        let state = refreshed(trust.clone(), &[ACCESS_POLICY_NAME], Some(widened));
        assert!(!state.policies_in_sync);
        assert_eq!(state.access, config().access, "the grant read back is unchanged; only the flag shows the drift");
        assert!(!refreshed(trust, &[], None).policies_in_sync, "a missing inline policy");
    }

    #[test]
    fn good_configuration_passes() {
        let d = AwsIrsaRoleResource.validate(&config());
        assert!(!d.has_errors(), "{}", messages(&d));
    }

    #[test]
    fn bad_input_names_the_attribute_and_the_fix() {
        let mut c = config();
        c.oidc_provider_arn = "oidc.example.com".into();
        c.namespace = "Apps_NS".into();
        c.service_account = "Reader".into();
        c.permissions_boundary = Some("boundary".into());
        c.access = IrsaAccess {
            parameters: vec!["app/db".into(), "/a/*/b".into()],
            secrets: vec!["arn:aws:s3:::bucket".into()],
            kms_keys: vec!["key-1".into()],
        };
        let text = messages(&AwsIrsaRoleResource.validate(&c));
        for expected in [
            "oidc_provider_arn Invalid OIDC provider ARN",
            "namespace Invalid Kubernetes namespace",
            "service_account Invalid Kubernetes ServiceAccount name",
            "permissions_boundary Invalid permissions boundary ARN",
            "access.parameters[0] Invalid parameter name",
            "must start with '/'",
            "access.parameters[1] Invalid parameter name",
            "access.secrets[0] Invalid secret",
            "access.kms_keys[0] Invalid KMS key ARN",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        c = config();
        c.access = IrsaAccess::default();
        let text = messages(&AwsIrsaRoleResource.validate(&c));
        assert!(text.contains("access Empty access"), "{text}");
    }
}
