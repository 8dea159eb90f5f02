//! Secret Manager v1: secrets, versions, access and secret-level IAM.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::auth::{Principal, authorize};
use crate::http::{Api, ApiError, Call, Reply};
use crate::iam::{Policy, StoredPolicy};
use crate::state::{Secret, SecretVersion, State, VersionState, now_rfc3339};

/// Secret Manager's payload limit: 64 KiB.
const MAX_PAYLOAD: usize = 65_536;

pub(crate) fn handle(
    state: &mut State,
    principal: &Principal,
    api: Api,
    project: &str,
    secret_id: &str,
    version: &str,
    call: &Call,
) -> Reply {
    let Some(spec) = state.project(project).cloned() else {
        return Err(ApiError::denied(format!(
            "Permission '{}' denied on resource 'projects/{project}' (or it may not exist).",
            permission(api)
        )));
    };
    let parent = format!("projects/{}", spec.number);
    let secret_name = format!("{parent}/secrets/{secret_id}");
    let key = (spec.id.clone(), secret_id.to_owned());
    let resource = match api {
        Api::CreateSecret | Api::ListSecrets => format!("projects/{}", spec.id),
        Api::GetSecretVersion
        | Api::AccessSecretVersion
        | Api::DisableSecretVersion
        | Api::EnableSecretVersion
        | Api::DestroySecretVersion => format!("projects/{}/secrets/{secret_id}/versions/{version}", spec.id),
        _ => format!("projects/{}/secrets/{secret_id}", spec.id),
    };
    {
        let project_policy = state.project_policies.get(&spec.id);
        let secret_policy = state.secrets.get(&key).map(|secret| &secret.policy);
        authorize(principal, permission(api), &resource, &[secret_policy, project_policy])?;
    }
    match api {
        Api::CreateSecret => create_secret(state, &key, &parent, call),
        Api::ListSecrets => {
            let secrets: Vec<Value> = state
                .secrets
                .iter()
                .filter(|((owner, _), _)| *owner == spec.id)
                .map(|((_, id), secret)| secret_json(&format!("{parent}/secrets/{id}"), secret))
                .collect();
            Ok(page(call, "secrets", secrets))
        }
        Api::GetSecret => Ok(secret_json(&secret_name, find(state, &key, &secret_name)?)),
        Api::UpdateSecret => update_secret(state, &key, &secret_name, call),
        Api::DeleteSecret => {
            let secret = find(state, &key, &secret_name)?;
            check_etag(call.param("etag"), secret.etag_counter)?;
            state.secrets.remove(&key);
            Ok(json!({}))
        }
        Api::AddSecretVersion => add_version(state, &key, &secret_name, call),
        Api::GetSecretIamPolicy => Ok(policy_json(find(state, &key, &secret_name)?.policy.policy())),
        Api::SetSecretIamPolicy => {
            let incoming = incoming_policy(call)?;
            let secret = find_mut(state, &key, &secret_name)?;
            Ok(policy_json(&secret.policy.set(incoming)?))
        }
        Api::ListSecretVersions => {
            let secret = find(state, &key, &secret_name)?;
            // GCP lists versions newest first.
            let versions: Vec<Value> =
                secret.versions.iter().rev().map(|version| version_json(&secret_name, version)).collect();
            Ok(page(call, "versions", versions))
        }
        Api::GetSecretVersion => {
            let secret = find(state, &key, &secret_name)?;
            Ok(version_json(&secret_name, resolve(secret, &secret_name, version)?))
        }
        Api::AccessSecretVersion => {
            let secret = find(state, &key, &secret_name)?;
            let found = resolve(secret, &secret_name, version)?;
            if found.state != VersionState::Enabled {
                return Err(ApiError::precondition(format!(
                    "Secret Version [{secret_name}/versions/{}] is in {} state.",
                    found.number,
                    found.state.as_str()
                )));
            }
            Ok(json!({
                "name": format!("{secret_name}/versions/{}", found.number),
                "payload": {
                    "data": STANDARD.encode(&found.data),
                    "dataCrc32c": crc32c::crc32c(&found.data).to_string(),
                },
            }))
        }
        Api::DisableSecretVersion => change_state(state, &key, &secret_name, version, call, VersionState::Disabled),
        Api::EnableSecretVersion => change_state(state, &key, &secret_name, version, call, VersionState::Enabled),
        Api::DestroySecretVersion => change_state(state, &key, &secret_name, version, call, VersionState::Destroyed),
        _ => Err(ApiError::not_found("unknown Secret Manager method")),
    }
}

fn permission(api: Api) -> &'static str {
    match api {
        Api::CreateSecret => "secretmanager.secrets.create",
        Api::ListSecrets => "secretmanager.secrets.list",
        Api::UpdateSecret => "secretmanager.secrets.update",
        Api::DeleteSecret => "secretmanager.secrets.delete",
        Api::AddSecretVersion => "secretmanager.versions.add",
        Api::GetSecretIamPolicy => "secretmanager.secrets.getIamPolicy",
        Api::SetSecretIamPolicy => "secretmanager.secrets.setIamPolicy",
        Api::ListSecretVersions => "secretmanager.versions.list",
        Api::GetSecretVersion => "secretmanager.versions.get",
        Api::AccessSecretVersion => "secretmanager.versions.access",
        Api::DisableSecretVersion => "secretmanager.versions.disable",
        Api::EnableSecretVersion => "secretmanager.versions.enable",
        Api::DestroySecretVersion => "secretmanager.versions.destroy",
        _ => "secretmanager.secrets.get",
    }
}

fn find<'a>(state: &'a State, key: &(String, String), name: &str) -> Result<&'a Secret, ApiError> {
    state.secrets.get(key).ok_or_else(|| ApiError::not_found(format!("Secret [{name}] not found or has no versions.")))
}

fn find_mut<'a>(state: &'a mut State, key: &(String, String), name: &str) -> Result<&'a mut Secret, ApiError> {
    state.secrets.get_mut(key).ok_or_else(|| ApiError::not_found(format!("Secret [{name}] not found or has no versions.")))
}

/// `latest` is the newest version whatever its state (access then refuses a
/// disabled or destroyed one, as GCP does); anything else is a version number.
fn resolve<'a>(secret: &'a Secret, secret_name: &str, version: &str) -> Result<&'a SecretVersion, ApiError> {
    let not_found = || ApiError::not_found(format!("Secret Version [{secret_name}/versions/{version}] not found."));
    if version == "latest" {
        return secret.versions.last().ok_or_else(not_found);
    }
    let number: u64 = version
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid secret version '{version}': use a positive number or 'latest'.")))?;
    secret.versions.iter().find(|candidate| candidate.number == number).ok_or_else(not_found)
}

fn etag(counter: u64) -> String {
    format!("\"{counter:016x}\"")
}

fn check_etag(given: Option<&str>, current: u64) -> Result<(), ApiError> {
    match given {
        Some(given) if !given.is_empty() && given != etag(current) => Err(ApiError::aborted(format!(
            "The etag provided in the request ({given}) does not match the current etag ({}).",
            etag(current)
        ))),
        _ => Ok(()),
    }
}

fn secret_json(name: &str, secret: &Secret) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("replication".into(), secret.replication.clone());
    out.insert("createTime".into(), json!(secret.create_time));
    if secret.labels.as_object().is_some_and(|labels| !labels.is_empty()) {
        out.insert("labels".into(), secret.labels.clone());
    }
    if secret.annotations.as_object().is_some_and(|annotations| !annotations.is_empty()) {
        out.insert("annotations".into(), secret.annotations.clone());
    }
    out.insert("etag".into(), json!(etag(secret.etag_counter)));
    Value::Object(out)
}

fn version_json(secret_name: &str, version: &SecretVersion) -> Value {
    let mut out = json!({
        "name": format!("{secret_name}/versions/{}", version.number),
        "createTime": version.create_time,
        "state": version.state.as_str(),
        "replicationStatus": {"automatic": {}},
        "etag": etag(version.etag_counter),
        "clientSpecifiedPayloadChecksum": version.client_checksum,
    });
    if let (Some(destroyed), Some(object)) = (&version.destroy_time, out.as_object_mut()) {
        object.insert("destroyTime".into(), json!(destroyed));
    }
    out
}

pub(crate) fn policy_json(policy: &Policy) -> Value {
    serde_json::to_value(policy).unwrap_or_else(|_| json!({}))
}

/// The `policy` of a `setIamPolicy` body.
pub(crate) fn incoming_policy(call: &Call) -> Result<Policy, ApiError> {
    let body = call.json()?;
    let policy = body.get("policy").cloned().unwrap_or_else(|| json!({}));
    serde_json::from_value(policy).map_err(|err| ApiError::invalid(format!("Invalid policy: {err}")))
}

/// Applies `pageSize` / `pageToken` (an offset) and adds `totalSize` and `nextPageToken`.
pub(crate) fn page(call: &Call, field: &str, items: Vec<Value>) -> Value {
    let total = items.len();
    let start: usize = call.param("pageToken").and_then(|token| token.parse().ok()).unwrap_or(0);
    let size = call.param("pageSize").and_then(|size| size.parse::<usize>().ok()).filter(|size| *size > 0).unwrap_or(25_000);
    let end = start.saturating_add(size).min(total);
    let mut out = Map::new();
    let slice: Vec<Value> = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    if !slice.is_empty() {
        out.insert(field.into(), Value::Array(slice));
    }
    if end < total {
        out.insert("nextPageToken".into(), json!(end.to_string()));
    }
    if field != "accounts" {
        out.insert("totalSize".into(), json!(total));
    }
    Value::Object(out)
}

fn valid_secret_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn create_secret(state: &mut State, key: &(String, String), parent: &str, call: &Call) -> Reply {
    let secret_id = call.param("secretId").unwrap_or_default().to_owned();
    if secret_id.is_empty() {
        return Err(ApiError::invalid("Required parameter: secretId"));
    }
    if !valid_secret_id(&secret_id) {
        return Err(ApiError::invalid(format!(
            "Invalid secretId '{secret_id}': use 1 to 255 characters from [a-zA-Z0-9_-]."
        )));
    }
    let key = (key.0.clone(), secret_id.clone());
    if state.secrets.contains_key(&key) {
        return Err(ApiError::exists(format!("Secret [{parent}/secrets/{secret_id}] already exists.")));
    }
    let body = call.json()?;
    let replication = body.get("replication").cloned().unwrap_or(Value::Null);
    let automatic = replication.get("automatic").is_some();
    let user_managed = replication.get("userManaged").and_then(|managed| managed.get("replicas")).and_then(Value::as_array).is_some_and(|replicas| !replicas.is_empty());
    if !automatic && !user_managed {
        return Err(ApiError::invalid("Secret.replication is required: set automatic or userManaged with at least one replica."));
    }
    let etag_counter = state.next_counter();
    let secret = Secret {
        create_time: now_rfc3339(),
        replication,
        labels: body.get("labels").cloned().unwrap_or(Value::Null),
        annotations: body.get("annotations").cloned().unwrap_or(Value::Null),
        versions: Vec::new(),
        etag_counter,
        policy: StoredPolicy::default(),
    };
    let out = secret_json(&format!("{parent}/secrets/{secret_id}"), &secret);
    state.secrets.insert(key, secret);
    Ok(out)
}

fn update_secret(state: &mut State, key: &(String, String), name: &str, call: &Call) -> Reply {
    let body = call.json()?;
    let mask = call.param("updateMask").unwrap_or_default().to_owned();
    if mask.is_empty() {
        return Err(ApiError::invalid("updateMask is required."));
    }
    let counter = state.next_counter();
    let secret = find_mut(state, key, name)?;
    if let Some(given) = body.get("etag").and_then(Value::as_str) {
        check_etag(Some(given), secret.etag_counter)?;
    }
    for field in mask.split(',') {
        match field.trim() {
            "labels" => secret.labels = body.get("labels").cloned().unwrap_or(Value::Null),
            "annotations" => secret.annotations = body.get("annotations").cloned().unwrap_or(Value::Null),
            other => return Err(ApiError::invalid(format!("Field '{other}' cannot be updated by this stand-in; update labels or annotations."))),
        }
    }
    secret.etag_counter = counter;
    Ok(secret_json(name, secret))
}

fn add_version(state: &mut State, key: &(String, String), name: &str, call: &Call) -> Reply {
    let body = call.json()?;
    let payload = body.get("payload").cloned().unwrap_or_else(|| json!({}));
    let encoded = payload.get("data").and_then(Value::as_str).unwrap_or_default();
    let data = STANDARD
        .decode(encoded)
        .map_err(|err| ApiError::invalid(format!("Invalid value at 'payload.data': not base64 ({err}).")))?;
    if data.len() > MAX_PAYLOAD {
        return Err(ApiError::invalid(format!("Secret payload is {} bytes; the limit is {MAX_PAYLOAD}.", data.len())));
    }
    let given_crc = match payload.get("dataCrc32c") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.parse::<u64>().map_err(|_| ApiError::invalid(format!("Invalid value at 'payload.data_crc32c': '{text}' is not an int64.")))?),
        Some(Value::Number(number)) => number.as_u64(),
        Some(other) => return Err(ApiError::invalid(format!("Invalid value at 'payload.data_crc32c': {other}"))),
    };
    if let Some(given) = given_crc {
        let actual = u64::from(crc32c::crc32c(&data));
        if given != actual {
            return Err(ApiError::invalid(format!(
                "Checksum mismatch: payload.dataCrc32c is {given} but the data's CRC32C is {actual}; the payload was corrupted in transit."
            )));
        }
    }
    let counter = state.next_counter();
    let version_counter = state.next_counter();
    let secret = find_mut(state, key, name)?;
    let number = secret.versions.last().map_or(1, |last| last.number + 1);
    let version = SecretVersion {
        number,
        create_time: now_rfc3339(),
        destroy_time: None,
        state: VersionState::Enabled,
        data,
        client_checksum: given_crc.is_some(),
        etag_counter: version_counter,
    };
    let out = version_json(name, &version);
    secret.versions.push(version);
    secret.etag_counter = counter;
    Ok(out)
}

fn change_state(
    state: &mut State,
    key: &(String, String),
    name: &str,
    version: &str,
    call: &Call,
    target: VersionState,
) -> Reply {
    let body = call.json()?;
    let counter = state.next_counter();
    let secret = find_mut(state, key, name)?;
    let number = resolve(secret, name, version)?.number;
    let Some(found) = secret.versions.iter_mut().find(|candidate| candidate.number == number) else {
        return Err(ApiError::not_found(format!("Secret Version [{name}/versions/{version}] not found.")));
    };
    if let Some(given) = body.get("etag").and_then(Value::as_str) {
        check_etag(Some(given), found.etag_counter)?;
    }
    if found.state == VersionState::Destroyed {
        return Err(ApiError::precondition(format!(
            "Secret Version [{name}/versions/{number}] is in DESTROYED state and cannot be changed."
        )));
    }
    found.state = target;
    if target == VersionState::Destroyed {
        found.data.clear();
        found.destroy_time = Some(now_rfc3339());
    }
    found.etag_counter = counter;
    Ok(version_json(name, found))
}
