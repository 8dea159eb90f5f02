//! `secretbridge_aws_oidc_provider`: the IAM OIDC identity provider for a
//! cluster's service-account issuer. `url` forces a new provider; client
//! IDs, thumbprints and tags update in place. Without `thumbprints`, the
//! thumbprint is read from the issuer's TLS chain. Import takes the ARN.

use std::collections::BTreeMap;

use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;
use secretbridge_shared::terraform::AwsOidcProvider;

use crate::aws::{self, AwsClients, thumbprint};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{PlannedState, ProviderContext, Resource};

/// The `secretbridge_aws_oidc_provider` resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsOidcProviderResource;

/// The provider as IAM holds it.
struct Remote {
    url: String,
    client_ids: Vec<String>,
    thumbprints: Vec<String>,
    tags: BTreeMap<String, String>,
}

async fn get(iam: &Client, arn: &str) -> Result<Option<Remote>, Diagnostics> {
    match iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await {
        Ok(out) => Ok(Some(Remote {
            url: out.url().unwrap_or_default().to_owned(),
            client_ids: out.client_id_list().to_vec(),
            thumbprints: out.thumbprint_list().to_vec(),
            tags: out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
        })),
        Err(e) if aws::is_not_found(&e) => Ok(None),
        Err(e) => Err(aws::api_error("read the IAM OIDC provider", arn, &e)),
    }
}

/// IAM stores the issuer without its scheme.
fn same_url(configured: &str, stored: &str) -> bool {
    let strip = |u: &str| u.trim_start_matches("https://").trim_end_matches('/').to_owned();
    strip(configured) == strip(stored)
}

/// The state for a provider as IAM returns it, keeping the prior state's
/// spelling of equal values (URL scheme, list order, absent tags).
fn to_state(arn: &str, remote: Remote, prior: &AwsOidcProvider) -> AwsOidcProvider {
    let url = if same_url(&prior.url, &remote.url) { prior.url.clone() } else { format!("https://{}", remote.url) };
    let tags = match (&prior.tags, remote.tags.is_empty()) {
        (None, true) => None,
        _ => Some(remote.tags),
    };
    let thumbprints = match &prior.thumbprints {
        Some(prior) => aws::policy::keep_order(remote.thumbprints, prior),
        None => remote.thumbprints,
    };
    AwsOidcProvider {
        url,
        client_ids: aws::policy::keep_order(remote.client_ids, &prior.client_ids),
        thumbprints: Some(thumbprints),
        tags,
        arn: Some(arn.to_owned()),
        id: Some(arn.to_owned()),
    }
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

/// The planned thumbprints, or the issuer's, read from its TLS chain.
async fn thumbprints_for(planned: &AwsOidcProvider) -> Result<Vec<String>, Diagnostics> {
    if let Some(given) = planned.thumbprints.as_ref().filter(|t| !t.is_empty()) {
        return Ok(given.clone());
    }
    let computed = thumbprint::issuer_thumbprint(&planned.url).await.map_err(|e| {
        Diagnostics::from(Diagnostic::attribute_error(
            AttrPath::root("thumbprints"),
            "Could not compute the issuer's thumbprint",
            format!("{e}. Make the issuer reachable over HTTPS from where Terraform runs, or set thumbprints explicitly (air-gapped setups)."),
        ))
    })?;
    Ok(vec![computed])
}

fn unimplemented_client_id_op(op: &str, arn: &str) -> Diagnostics {
    Diagnostic::attribute_error(
        AttrPath::root("client_ids"),
        format!("The IAM endpoint does not implement {op}"),
        format!(
            "changing client_ids of {arn} needs {op}, and the endpoint answered HTTP 500 without an AWS error (moto is known to lack it). \
             Against real IAM this works; on this endpoint, re-create the provider (change url or taint it) to change client_ids."
        ),
    )
    .into()
}

impl Resource for AwsOidcProviderResource {
    type State = AwsOidcProvider;

    fn type_name(&self) -> &'static str {
        "secretbridge_aws_oidc_provider"
    }

    fn validate(&self, config: &AwsOidcProvider) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if thumbprint::host_and_port(&config.url).is_none() || config.url.contains(['?', '#']) {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("url"),
                "Invalid issuer URL",
                format!(
                    "url {:?} must be an https:// URL with a host and no query or fragment, e.g. the cluster's issuer https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE.",
                    config.url
                ),
            ));
        }
        for (i, t) in config.thumbprints.iter().flatten().enumerate() {
            if !thumbprint::is_thumbprint(t) {
                diags.push(Diagnostic::attribute_error(
                    AttrPath::root("thumbprints").index(i),
                    "Invalid thumbprint",
                    format!("{t:?} is not a SHA-1 thumbprint; use 40 hex digits, or leave thumbprints unset to compute it from the issuer."),
                ));
            }
        }
        if config.client_ids.is_empty() {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("client_ids"),
                "No client IDs",
                "client_ids is empty, so no token could be exchanged; leave it unset for [\"sts.amazonaws.com\"] or list the audiences.",
            ));
        }
        diags
    }

    /// The ARN is `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST[/PATH]`:
    /// known at plan time once the caller's account is (one cached
    /// `sts:GetCallerIdentity`), so roles trusting this provider can derive
    /// their trust policy in the same plan. Left unknown if STS cannot be asked.
    async fn modify_plan(&self, ctx: &ProviderContext, _prior: Option<&AwsOidcProvider>, planned: &mut PlannedState<'_, AwsOidcProvider>) -> Diagnostics {
        if planned.is_unknown(&AttrPath::root("url")) || !planned.is_unknown(&AttrPath::root("arn")) {
            return Diagnostics::default();
        }
        let Some(mut model) = planned.model().cloned() else {
            return Diagnostics::default();
        };
        let Ok(clients) = AwsClients::new(ctx).await else {
            return Diagnostics::default();
        };
        if let Ok((account, partition)) = clients.caller().await {
            let issuer = model.url.trim_start_matches("https://").trim_end_matches('/').to_owned();
            let arn = format!("arn:{partition}:iam::{account}:oidc-provider/{issuer}");
            model.arn = Some(arn.clone());
            model.id = Some(arn);
            if let Err(diags) = planned.set(model) {
                return diags;
            }
        }
        Diagnostics::default()
    }

    async fn create(&self, ctx: &ProviderContext, planned: AwsOidcProvider) -> Result<AwsOidcProvider, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        let thumbprints = thumbprints_for(&planned).await?;
        let iam = clients.iam();
        let created = iam
            .create_open_id_connect_provider()
            .url(&planned.url)
            .set_client_id_list(Some(planned.client_ids.clone()))
            .set_thumbprint_list(Some(thumbprints.clone()))
            .set_tags(planned.tags.as_ref().map(tag_list).transpose()?)
            .send()
            .await
            .map_err(|e| aws::api_error("create the IAM OIDC provider", &planned.url, &e))?;
        let arn = created.open_id_connect_provider_arn().unwrap_or_default().to_owned();
        Ok(AwsOidcProvider { thumbprints: Some(thumbprints), arn: Some(arn.clone()), id: Some(arn), ..planned })
    }

    async fn read(&self, ctx: &ProviderContext, current: AwsOidcProvider) -> Result<Option<AwsOidcProvider>, Diagnostics> {
        let Some(arn) = current.arn.clone().or_else(|| current.id.clone()) else {
            return Ok(None);
        };
        let clients = AwsClients::new(ctx).await?;
        Ok(get(&clients.iam(), &arn).await?.map(|remote| to_state(&arn, remote, &current)))
    }

    async fn update(&self, ctx: &ProviderContext, prior: AwsOidcProvider, planned: AwsOidcProvider) -> Result<AwsOidcProvider, Diagnostics> {
        let clients = AwsClients::new(ctx).await?;
        let iam = clients.iam();
        let arn = prior.arn.clone().unwrap_or_default();
        let Some(remote) = get(&iam, &arn).await? else {
            return Err(Diagnostic::error(
                "IAM OIDC provider disappeared",
                format!("{arn} was deleted outside Terraform; run `terraform apply` again to re-create it."),
            )
            .into());
        };
        let thumbprints = thumbprints_for(&planned).await?;
        if aws::policy::keep_order(remote.thumbprints.clone(), &thumbprints) != thumbprints {
            iam.update_open_id_connect_provider_thumbprint()
                .open_id_connect_provider_arn(&arn)
                .set_thumbprint_list(Some(thumbprints.clone()))
                .send()
                .await
                .map_err(|e| aws::api_error("update the thumbprints of the IAM OIDC provider", &arn, &e))?;
        }
        for id in planned.client_ids.iter().filter(|id| !remote.client_ids.contains(id)) {
            if let Err(e) = iam.add_client_id_to_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id(id).send().await {
                return Err(if aws::is_unimplemented(&e) {
                    unimplemented_client_id_op("AddClientIDToOpenIDConnectProvider", &arn)
                } else {
                    aws::api_error("add a client ID to the IAM OIDC provider", &format!("{arn}, client ID {id}"), &e)
                });
            }
        }
        for id in remote.client_ids.iter().filter(|id| !planned.client_ids.contains(id)) {
            if let Err(e) = iam.remove_client_id_from_open_id_connect_provider().open_id_connect_provider_arn(&arn).client_id(id).send().await {
                return Err(if aws::is_unimplemented(&e) {
                    unimplemented_client_id_op("RemoveClientIDFromOpenIDConnectProvider", &arn)
                } else {
                    aws::api_error("remove a client ID from the IAM OIDC provider", &format!("{arn}, client ID {id}"), &e)
                });
            }
        }
        let wanted = planned.tags.clone().unwrap_or_default();
        let stale: Vec<String> = remote.tags.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        if !stale.is_empty() {
            iam.untag_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .map_err(|e| aws::api_error("untag the IAM OIDC provider", &arn, &e))?;
        }
        let changed: BTreeMap<String, String> = wanted.into_iter().filter(|(k, v)| remote.tags.get(k) != Some(v)).collect();
        if !changed.is_empty() {
            iam.tag_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .set_tags(Some(tag_list(&changed)?))
                .send()
                .await
                .map_err(|e| aws::api_error("tag the IAM OIDC provider", &arn, &e))?;
        }
        Ok(AwsOidcProvider { thumbprints: Some(thumbprints), arn: Some(arn.clone()), id: Some(arn), ..planned })
    }

    async fn delete(&self, ctx: &ProviderContext, prior: AwsOidcProvider) -> Result<(), Diagnostics> {
        let Some(arn) = prior.arn else {
            return Ok(());
        };
        let clients = AwsClients::new(ctx).await?;
        match clients.iam().delete_open_id_connect_provider().open_id_connect_provider_arn(&arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if aws::is_not_found(&e) => Ok(()),
            Err(e) => Err(aws::api_error("delete the IAM OIDC provider", &arn, &e)),
        }
    }

    async fn import(&self, ctx: &ProviderContext, id: String) -> Result<AwsOidcProvider, Diagnostics> {
        if let Some(problem) = aws::policy::oidc_provider_arn_problem(&id) {
            return Err(Diagnostic::error(
                "Invalid import ID",
                format!("{id:?} {problem}; import by the provider's ARN, arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]."),
            )
            .into());
        }
        let clients = AwsClients::new(ctx).await?;
        match get(&clients.iam(), &id).await? {
            Some(remote) => {
                // Nothing configured yet: take IAM's values as they are.
                let blank = AwsOidcProvider { url: format!("https://{}", remote.url), ..AwsOidcProvider::default() };
                Ok(to_state(&id, remote, &blank))
            }
            None => Err(Diagnostic::error("IAM OIDC provider not found", format!("{id} does not exist; check the ARN and the account.")).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_keeps_the_configured_spelling_of_equal_values() {
        let prior = AwsOidcProvider {
            url: "https://issuer.example.com/id/A".into(),
            client_ids: vec!["b".into(), "a".into()],
            thumbprints: None,
            tags: None,
            ..Default::default()
        };
        let remote = Remote {
            url: "issuer.example.com/id/A".into(),
            client_ids: vec!["a".into(), "b".into()],
            thumbprints: vec!["f".repeat(40)],
            tags: BTreeMap::new(),
        };
        let state = to_state("arn:aws:iam::123456789012:oidc-provider/issuer.example.com/id/A", remote, &prior);
        assert_eq!(state.url, prior.url);
        assert_eq!(state.client_ids, prior.client_ids);
        assert_eq!(state.tags, None, "no tags stays null");
        assert_eq!(state.thumbprints, Some(vec!["f".repeat(40)]));
        assert!(!same_url("https://other.example.com", "issuer.example.com"));
    }
}
