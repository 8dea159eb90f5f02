//! IAM v1 service accounts and Resource Manager v3 project policies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::auth::{Principal, authorize};
use crate::http::{Api, ApiError, Call, Reply};
use crate::secrets::{incoming_policy, page, policy_json};
use crate::state::{ServiceAccount, State};

pub(crate) fn handle(state: &mut State, principal: &Principal, api: Api, project: &str, account: &str, call: &Call) -> Reply {
    match api {
        Api::GetProject | Api::GetProjectIamPolicy | Api::SetProjectIamPolicy => project_call(state, principal, api, project),
        _ => service_account_call(state, principal, api, project, account, call),
    }
    .and_then(|reply| match reply {
        Pending::Done(value) => Ok(value),
        Pending::SetProjectPolicy(project_id) => {
            let incoming = incoming_policy(call)?;
            let Some(policy) = state.project_policies.get_mut(&project_id) else {
                return Err(ApiError::denied(format!("Permission denied on resource project {project_id}.")));
            };
            Ok(policy_json(&policy.set(incoming)?))
        }
    })
}

/// Project calls resolve the project first, then may need the body.
enum Pending {
    Done(Value),
    SetProjectPolicy(String),
}

fn project_call(state: &State, principal: &Principal, api: Api, project: &str) -> Result<Pending, ApiError> {
    let permission = match api {
        Api::GetProject => "resourcemanager.projects.get",
        Api::GetProjectIamPolicy => "resourcemanager.projects.getIamPolicy",
        _ => "resourcemanager.projects.setIamPolicy",
    };
    let Some(spec) = state.project(project) else {
        return Err(ApiError::denied(format!(
            "Permission '{permission}' denied on resource 'projects/{project}' (or it may not exist)."
        )));
    };
    let policy = state.project_policies.get(&spec.id);
    authorize(principal, permission, &format!("projects/{}", spec.id), &[policy])?;
    match api {
        Api::GetProject => Ok(Pending::Done(json!({
            "name": format!("projects/{}", spec.number),
            "projectId": spec.id,
            "state": "ACTIVE",
            "displayName": spec.id,
        }))),
        Api::GetProjectIamPolicy => {
            Ok(Pending::Done(policy_json(&policy.map(|policy| policy.policy().clone()).unwrap_or_default())))
        }
        _ => Ok(Pending::SetProjectPolicy(spec.id.clone())),
    }
}

fn account_json(account: &ServiceAccount) -> Value {
    let mut out = json!({
        "name": format!("projects/{}/serviceAccounts/{}", account.project, account.email),
        "projectId": account.project,
        "uniqueId": account.unique_id,
        "email": account.email,
        "etag": STANDARD.encode(account.etag_counter.to_be_bytes()),
        "oauth2ClientId": account.unique_id,
    });
    if let Some(object) = out.as_object_mut() {
        if !account.display_name.is_empty() {
            object.insert("displayName".into(), json!(account.display_name));
        }
        if !account.description.is_empty() {
            object.insert("description".into(), json!(account.description));
        }
    }
    out
}

fn service_account_call(
    state: &mut State,
    principal: &Principal,
    api: Api,
    project: &str,
    account: &str,
    call: &Call,
) -> Result<Pending, ApiError> {
    let permission = match api {
        Api::CreateServiceAccount => "iam.serviceAccounts.create",
        Api::ListServiceAccounts => "iam.serviceAccounts.list",
        Api::GetServiceAccount => "iam.serviceAccounts.get",
        Api::PatchServiceAccount => "iam.serviceAccounts.update",
        Api::DeleteServiceAccount => "iam.serviceAccounts.delete",
        Api::GetServiceAccountIamPolicy => "iam.serviceAccounts.getIamPolicy",
        _ => "iam.serviceAccounts.setIamPolicy",
    };
    if matches!(api, Api::CreateServiceAccount | Api::ListServiceAccounts) {
        let Some(spec) = state.project(project).cloned() else {
            return Err(ApiError::denied(format!(
                "Permission '{permission}' denied on resource 'projects/{project}' (or it may not exist)."
            )));
        };
        authorize(principal, permission, &format!("projects/{}", spec.id), &[state.project_policies.get(&spec.id)])?;
        if api == Api::ListServiceAccounts {
            let accounts: Vec<Value> =
                state.service_accounts.values().filter(|account| account.project == spec.id).map(account_json).collect();
            return Ok(Pending::Done(page(call, "accounts", accounts)));
        }
        let body = call.json()?;
        let account_id = body.get("accountId").and_then(Value::as_str).unwrap_or_default();
        let details = body.get("serviceAccount").cloned().unwrap_or_else(|| json!({}));
        let text = |field: &str| details.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        let created = state.create_service_account(&spec.id, account_id, text("displayName"), text("description"))?;
        return Ok(Pending::Done(account_json(created)));
    }
    // `projects/-/serviceAccounts/X` and `projects/P/serviceAccounts/X` both name X
    // (by email or unique ID); a project other than `-` must match.
    let key = state.service_account_key(account).filter(|key| {
        project == "-"
            || state.service_accounts.get(key).is_some_and(|found| state.project(project).is_some_and(|spec| spec.id == found.project))
    });
    let resource = format!("projects/{project}/serviceAccounts/{account}");
    {
        let found = key.as_ref().and_then(|key| state.service_accounts.get(key));
        let project_policy = found.and_then(|found| state.project_policies.get(&found.project));
        authorize(principal, permission, &resource, &[found.map(|found| &found.policy), project_policy])?;
    }
    let Some(key) = key else {
        return Err(ApiError::not_found(format!("Unknown service account {resource}.")));
    };
    let counter = state.next_counter();
    let Some(found) = state.service_accounts.get_mut(&key) else {
        return Err(ApiError::not_found(format!("Unknown service account {resource}.")));
    };
    match api {
        Api::GetServiceAccount => Ok(Pending::Done(account_json(found))),
        Api::PatchServiceAccount => {
            let body = call.json()?;
            let details = body.get("serviceAccount").cloned().unwrap_or_else(|| json!({}));
            let mask = body.get("updateMask").and_then(Value::as_str).or(call.param("updateMask")).unwrap_or_default().to_owned();
            let current = STANDARD.encode(found.etag_counter.to_be_bytes());
            if details.get("etag").and_then(Value::as_str).is_some_and(|given| !given.is_empty() && given != current) {
                return Err(ApiError::aborted("The etag of the service account does not match; read it again and retry."));
            }
            for field in mask.split(',').map(str::trim).filter(|field| !field.is_empty()) {
                let value = |name: &str| details.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
                match field {
                    "displayName" | "display_name" => found.display_name = value("displayName"),
                    "description" => found.description = value("description"),
                    other => return Err(ApiError::invalid(format!("Field '{other}' of a service account cannot be updated."))),
                }
            }
            found.etag_counter = counter;
            Ok(Pending::Done(account_json(found)))
        }
        Api::DeleteServiceAccount => {
            state.service_accounts.remove(&key);
            Ok(Pending::Done(json!({})))
        }
        Api::GetServiceAccountIamPolicy => Ok(Pending::Done(policy_json(found.policy.policy()))),
        _ => {
            let incoming = incoming_policy(call)?;
            Ok(Pending::Done(policy_json(&found.policy.set(incoming)?)))
        }
    }
}
