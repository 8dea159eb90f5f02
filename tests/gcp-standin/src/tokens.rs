//! Token exchange (securetoken `v1/identitybindingtoken`, STS `v1/token`) and IAM
//! Credentials `generateAccessToken`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use rand::Rng as _;
use serde_json::{Value, json};

use crate::Shared;
use crate::auth::{Principal, authorize};
use crate::http::{ApiError, Call, Reply, json_response};
use crate::jwt::now_secs;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// An OAuth 2.0 error (RFC 6749 §5.2), the shape both token endpoints answer with.
fn oauth_error(code: u16, error: &str, description: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(code, &json!({"error": error, "error_description": description.into()}))
}

/// Mints an opaque access token for `principal`.
pub(crate) fn mint(shared: &Shared, principal: Principal, lifetime: u64) -> String {
    let mut random = [0u8; 24];
    rand::thread_rng().fill(&mut random);
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let token = format!("ya29.standin.{hex}");
    let expires = Instant::now() + Duration::from_secs(lifetime);
    let mut state = shared.lock();
    let now = Instant::now();
    state.tokens.retain(|_, (_, expiry)| *expiry > now);
    state.tokens.insert(token.clone(), (principal, expires));
    token
}

/// Reads a field from a form-encoded or JSON body, accepting the OAuth
/// snake_case name and the proto3 JSON camelCase name.
fn field(body: &Value, snake: &str) -> Option<String> {
    let camel: String = snake
        .split('_')
        .enumerate()
        .map(|(index, word)| {
            if index == 0 {
                word.to_owned()
            } else {
                let mut chars = word.chars();
                chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            }
        })
        .collect();
    body.get(snake).or_else(|| body.get(&camel)).and_then(Value::as_str).map(str::to_owned)
}

/// Splits an exchange audience into (pool, provider):
/// `identitynamespace:POOL:PROVIDER` (GKE) or
/// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
fn parse_audience(audience: &str) -> Option<(String, String)> {
    if let Some(rest) = audience.strip_prefix("identitynamespace:") {
        let (pool, provider) = rest.split_once(':')?;
        return (!pool.is_empty() && !provider.is_empty()).then(|| (pool.to_owned(), provider.to_owned()));
    }
    let rest = audience.strip_prefix("//iam.googleapis.com/projects/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [_, "locations", "global", "workloadIdentityPools", pool, "providers", provider] => {
            Some(((*pool).to_owned(), (*provider).to_owned()))
        }
        _ => None,
    }
}

/// Handles both exchange endpoints; `identity_binding` selects the securetoken one.
pub(crate) async fn exchange(shared: &Shared, call: &Call, identity_binding: bool) -> Response<Full<Bytes>> {
    let body: Value = if call.content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: serde_json::Map<String, Value> =
            form_urlencoded::parse(&call.body).into_owned().map(|(key, value)| (key, Value::String(value))).collect();
        Value::Object(pairs)
    } else {
        match call.json() {
            Ok(value) => value,
            Err(err) => return oauth_error(400, "invalid_request", err.message),
        }
    };
    let endpoint = if identity_binding { "identitybindingtoken" } else { "token" };
    if field(&body, "grant_type").as_deref() != Some(TOKEN_EXCHANGE) {
        return oauth_error(400, "unsupported_grant_type", format!("{endpoint}: grant_type must be {TOKEN_EXCHANGE}"));
    }
    let subject_type = field(&body, "subject_token_type").unwrap_or_default();
    if subject_type != JWT_TYPE && subject_type != ID_TOKEN_TYPE {
        return oauth_error(400, "invalid_request", format!("subject_token_type must be {JWT_TYPE} or {ID_TOKEN_TYPE}"));
    }
    if let Some(requested) = field(&body, "requested_token_type").filter(|requested| requested != ACCESS_TOKEN_TYPE) {
        return oauth_error(400, "invalid_request", format!("requested_token_type {requested} is not supported; use {ACCESS_TOKEN_TYPE}"));
    }
    let Some(subject_token) = field(&body, "subject_token").filter(|token| !token.is_empty()) else {
        return oauth_error(400, "invalid_request", "subject_token is required");
    };
    let audience = field(&body, "audience").unwrap_or_default();
    let Some((pool, provider)) = parse_audience(&audience) else {
        return oauth_error(400, "invalid_target", format!("The audience {audience:?} is not a workload identity pool provider."));
    };
    let candidates: Vec<&crate::TrustedIssuer> = shared
        .options
        .trusted_issuers
        .iter()
        .filter(|issuer| {
            issuer.workload_pool == pool && issuer.identity_provider.as_deref().is_none_or(|expected| expected == provider)
        })
        .collect();
    if candidates.is_empty() {
        return oauth_error(400, "invalid_target", format!("The target service indicated by the audience {audience:?} is invalid: no trusted issuer for pool {pool} and provider {provider}."));
    }
    let claimed_issuer = claimed_issuer(&subject_token);
    let Some(issuer) = candidates.iter().find(|issuer| Some(issuer.issuer.as_str()) == claimed_issuer.as_deref()) else {
        return oauth_error(400, "invalid_grant", format!(
            "The issuer {claimed_issuer:?} of the subject token is not trusted for audience {audience}."
        ));
    };
    let verified = match shared.verifier.verify(&subject_token, &issuer.issuer, &pool).await {
        Ok(verified) => verified,
        Err(err) => return oauth_error(400, "invalid_grant", err.to_string()),
    };
    let principal = Principal::Federated { pool, namespace: verified.namespace, service_account: verified.service_account };
    // A token never outlives the subject token that vouched for it.
    let expires_in = shared.options.token_lifetime_secs.min(verified.expires.saturating_sub(now_secs()));
    let token = mint(shared, principal, expires_in);
    json_response(200, &json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
}

/// The `iss` claim, read without verification to pick the issuer's keys.
fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let claims = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss").and_then(Value::as_str).map(str::to_owned)
}

/// `POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`.
pub(crate) fn generate_access_token(shared: &Shared, principal: &Principal, account: &str, call: &Call) -> Reply {
    let body = call.json()?;
    let resource = format!("projects/-/serviceAccounts/{account}");
    let email = {
        let state = shared.lock();
        let key = state.service_account_key(account);
        let found = key.as_ref().and_then(|key| state.service_accounts.get(key));
        let project_policy = found.and_then(|found| state.project_policies.get(&found.project));
        authorize(principal, "iam.serviceAccounts.getAccessToken", &resource, &[found.map(|found| &found.policy), project_policy])?;
        match found {
            Some(found) => found.email.clone(),
            None => return Err(ApiError::not_found(format!("Service account {resource} not found."))),
        }
    };
    let scopes = body.get("scope").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    if scopes == 0 {
        return Err(ApiError::invalid("Scope required: pass at least one OAuth scope."));
    }
    if body.get("delegates").and_then(Value::as_array).is_some_and(|delegates| !delegates.is_empty()) {
        return Err(ApiError::invalid("Delegation chains are not supported by this stand-in; call without delegates."));
    }
    let lifetime = shared.options.token_lifetime_secs;
    let requested = body
        .get("lifetime")
        .and_then(Value::as_str)
        .and_then(|text| text.strip_suffix('s'))
        .and_then(|secs| secs.parse::<f64>().ok());
    let lifetime = match requested {
        Some(secs) if !(1.0..=3600.0).contains(&secs) => {
            return Err(ApiError::invalid(format!("The lifetime {secs}s is out of range; use 1s to 3600s.")));
        }
        Some(secs) => (secs as u64).min(lifetime),
        None => lifetime,
    };
    let token = mint(shared, Principal::ServiceAccount { email }, lifetime);
    let expire = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(i64::try_from(lifetime).unwrap_or(3600));
    Ok(json!({"accessToken": token, "expireTime": expire.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_name_pool_and_provider() {
        let gke = "identitynamespace:p.svc.id.goog:https://container.googleapis.com/v1/projects/p/locations/l/clusters/c";
        assert_eq!(
            parse_audience(gke),
            Some(("p.svc.id.goog".into(), "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c".into()))
        );
        let wif = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov";
        assert_eq!(parse_audience(wif), Some(("pool".into(), "prov".into())));
        assert_eq!(parse_audience("identitynamespace:only-pool"), None);
        assert_eq!(parse_audience("sts.amazonaws.com"), None);
    }

    #[test]
    fn fields_accept_snake_and_camel_case() {
        let body = json!({"subjectToken": "a", "grant_type": "b"});
        assert_eq!(field(&body, "subject_token").as_deref(), Some("a"));
        assert_eq!(field(&body, "grant_type").as_deref(), Some("b"));
        assert_eq!(field(&body, "audience"), None);
    }
}
