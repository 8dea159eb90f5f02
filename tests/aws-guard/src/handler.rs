//! Request routing: admin API, STS web identity and role chaining, guarded data calls, pass-through.

use crate::backend::{ClientIdChangeError, MAX_CLIENT_IDS, role_name};
use crate::jwt::{Jwks, UnverifiedToken};
use crate::policy::{Decision, PolicyDocument, Principal, Request as PolicyRequest, evaluate};
use crate::{Body, Session, State};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
const CLOCK_SKEW_SECS: i64 = 60;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

fn request_id() -> String {
    // UUID-shaped and unique per process, like AWS request ids.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:08x}-{:04x}-4000-8000-{:012x}", (nanos >> 20) as u32, n & 0xffff, (nanos as u64) & 0xffff_ffff_ffff)
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>, extra: &[(&str, &str)]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header("x-amzn-requestid", request_id());
    for (k, v) in extra {
        builder = builder.header(*k, *v);
    }
    builder.body(full(body)).unwrap_or_else(|_| Response::new(full("")))
}

/// An error in the awsJson1_1 shape the Rust SDK parses (`__type` + `message`).
fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({ "__type": code, "message": message }).to_string();
    reply(status, "application/x-amz-json-1.1", body, &[("x-amzn-errortype", code)])
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An error in the STS query-protocol shape.
fn sts_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    reply(status, "text/xml", body, &[])
}

/// The entry point for every request.
pub(crate) async fn handle(state: Arc<State>, req: http::Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(admin_path) = path.strip_prefix("/guard-api/") {
        return Ok(admin(&state, req.method(), admin_path, req.uri()));
    }
    let target = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_string);
    let data_op = target.as_deref().and_then(data_operation);
    if let Some(t) = target.as_deref() {
        state.count_call(t.rsplit('.').next().unwrap_or(t));
    }
    if state.unavailable.load(Ordering::SeqCst) {
        state.count_unavailable();
        return Ok(if target.is_some() {
            json_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service is unavailable (aws-guard switch)")
        } else {
            sts_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service is unavailable (aws-guard switch)")
        });
    }
    if let Some(op) = data_op {
        return Ok(data_call(state, req, op).await);
    }
    let is_form = req.method() == Method::POST
        && req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let query_action = req.uri().query().and_then(|q| param(q.as_bytes(), "Action"));
    if is_form || query_action.is_some() {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => return Ok(sts_error(StatusCode::BAD_REQUEST, "InvalidRequest", &format!("reading body: {err}"))),
        };
        let mut params: HashMap<String, String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        if is_form {
            params.extend(form_urlencoded::parse(&body).into_owned());
        }
        if let Some(action) = params.get("Action") {
            state.count_call(action);
            let is_iam = sigv4_service(&parts.headers).as_deref() == Some("iam");
            if is_iam && !action.starts_with("Get") && !action.starts_with("List") {
                state.forget_policies();
            }
        }
        match params.get("Action").map(String::as_str) {
            Some("AssumeRoleWithWebIdentity") => return Ok(assume_role_with_web_identity(&state, parts, params, body).await),
            Some("AssumeRole") => return Ok(assume_role(&state, parts, params, body).await),
            Some(action @ ("AddClientIDToOpenIDConnectProvider" | "RemoveClientIDFromOpenIDConnectProvider")) => {
                return Ok(change_client_id(&state, action, &params).await);
            }
            _ => {}
        }
        return Ok(forward(&state, parts, full(body)).await);
    }
    let (parts, body) = req.into_parts();
    Ok(forward(&state, parts, body.boxed_unsync()).await)
}

/// An error in the IAM query-protocol shape.
fn iam_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(code),
        xml_escape(message),
        request_id()
    );
    reply(status, "text/xml", body, &[])
}

/// `AddClientIDToOpenIDConnectProvider` / `RemoveClientIDFromOpenIDConnectProvider`, which moto
/// lacks: validated as IAM does, then applied in moto by [`crate::backend::Backend::change_oidc_client_ids`].
async fn change_client_id(state: &State, action: &str, params: &HashMap<String, String>) -> Response<Body> {
    let arn = params.get("OpenIDConnectProviderArn").map(String::as_str).unwrap_or_default();
    let client_id = params.get("ClientID").map(String::as_str).unwrap_or_default();
    for (name, value, max) in [("openIDConnectProviderArn", arn, 2048), ("clientID", client_id, 255)] {
        if value.is_empty() || value.chars().count() > max {
            let problem = if value.is_empty() {
                "Member must have length greater than or equal to 1".to_string()
            } else {
                format!("Member must have length less than or equal to {max}")
            };
            return iam_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                &format!("1 validation error detected: Value at '{name}' failed to satisfy constraint: {problem}"),
            );
        }
    }
    let add = action.starts_with("Add");
    match state.backend.change_oidc_client_ids(arn, client_id, add).await {
        Ok(()) => {
            let body = format!(
                "<{action}Response xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                request_id()
            );
            reply(StatusCode::OK, "text/xml", body, &[])
        }
        Err(ClientIdChangeError::NoSuchProvider) => iam_error(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            &format!("OpenIDConnect Provider not found for arn {arn}"),
        ),
        Err(ClientIdChangeError::TooMany) => iam_error(
            StatusCode::CONFLICT,
            "LimitExceeded",
            &format!("Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: {MAX_CLIENT_IDS}"),
        ),
        Err(ClientIdChangeError::Moto(message)) => iam_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure", &message),
    }
}

fn param(query: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(query).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn admin(state: &State, method: &Method, path: &str, uri: &Uri) -> Response<Body> {
    let query = uri.query().unwrap_or("").as_bytes();
    let ok = || reply(StatusCode::OK, "application/json", "{}", &[]);
    match (method, path) {
        (&Method::GET, "stats") => match serde_json::to_vec(&state.stats()) {
            Ok(body) => reply(StatusCode::OK, "application/json", body, &[]),
            Err(err) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", err.to_string(), &[]),
        },
        (&Method::POST, "reset-stats") => {
            state.reset_stats();
            ok()
        }
        (&Method::POST, "throttle") => match param(query, "count").and_then(|c| c.parse::<u64>().ok()) {
            Some(n) => {
                state.throttle_next.store(n, Ordering::SeqCst);
                ok()
            }
            None => reply(StatusCode::BAD_REQUEST, "text/plain", "throttle needs ?count=N (a number)", &[]),
        },
        (&Method::POST, "unavailable") => match param(query, "enabled").as_deref() {
            Some("true") => {
                state.unavailable.store(true, Ordering::SeqCst);
                ok()
            }
            Some("false") => {
                state.unavailable.store(false, Ordering::SeqCst);
                ok()
            }
            _ => reply(StatusCode::BAD_REQUEST, "text/plain", "unavailable needs ?enabled=true|false", &[]),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown guard-api route; try GET stats, POST reset-stats, throttle?count=N, unavailable?enabled=BOOL",
            &[],
        ),
    }
}

const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Sends the request on to moto and streams the answer back.
async fn forward(state: &State, mut parts: http::request::Parts, body: Body) -> Response<Body> {
    let mut uri = http::uri::Parts::default();
    uri.scheme = state.upstream.scheme.clone();
    uri.authority = state.upstream.authority.clone();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = match Uri::from_parts(uri) {
        Ok(u) => u,
        Err(err) => return reply(StatusCode::BAD_GATEWAY, "text/plain", format!("building upstream URI: {err}"), &[]),
    };
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    let req = http::Request::from_parts(parts, body);
    match state.client.request(req).await {
        Ok(resp) => resp.map(|b| b.boxed_unsync()),
        Err(err) => reply(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("aws-guard could not reach moto: {err}; is moto running at the upstream URL?"),
            &[],
        ),
    }
}

/// Forwards, then buffers moto's answer so it can be inspected.
async fn forward_buffered(state: &State, parts: http::request::Parts, body: Bytes) -> Result<(http::response::Parts, Bytes), Response<Body>> {
    let resp = forward(state, parts, full(body)).await;
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(err) => Err(reply(StatusCode::BAD_GATEWAY, "text/plain", format!("reading moto's answer: {err}"), &[])),
    }
}

fn rebuild(mut parts: http::response::Parts, body: Bytes) -> Response<Body> {
    parts.headers.remove(CONTENT_LENGTH);
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    Response::from_parts(parts, full(body))
}

fn xml_text<'a>(doc: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&close)? + start;
    Some(&doc[start..end])
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Why an STS request is refused: (HTTP status, STS error code, message).
struct Refusal(StatusCode, &'static str, String);

fn invalid_token(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "InvalidIdentityToken", message.into())
}

async fn fetch_json(state: &State, url: &str) -> Result<Value, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url} is not a URL: {e}"))?;
    let req = http::Request::get(uri)
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new().map_err(|never: Infallible| match never {}).boxed_unsync())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, state.client.request(req))
        .await
        .map_err(|_| format!("GET {url} timed out"))?
        .map_err(|e| format!("GET {url} failed: {e:?}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(FETCH_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| format!("reading {url} timed out"))?
        .map_err(|e| format!("reading {url} failed: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
}

async fn fetch_jwks(state: &State, issuer: &str) -> Result<Jwks, String> {
    let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery = fetch_json(state, &discovery_url).await?;
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{discovery_url} has no jwks_uri"))?;
    let jwks = fetch_json(state, jwks_uri).await?;
    serde_json::from_value(jwks).map_err(|e| format!("{jwks_uri} is not a JWK set: {e}"))
}

/// Verifies the token and the trust policy; returns nothing when the role may be assumed.
async fn authorize_web_identity(state: &State, role_arn: &str, token: &str) -> Result<(), Refusal> {
    let token = UnverifiedToken::decode(token).map_err(|e| invalid_token(e.to_string()))?;
    let claims = &token.claims;
    let issuer = claims.iss.trim_end_matches('/');
    let Some(host_path) = issuer.strip_prefix("https://") else {
        return Err(invalid_token(format!("the token's issuer {issuer:?} is not an https:// URL")));
    };
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let provider_arn = format!("arn:aws:iam::{account}:oidc-provider/{host_path}");
    let provider = state
        .backend
        .oidc_provider(&provider_arn)
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", e.to_string()))?
        .ok_or_else(|| invalid_token(format!("No OpenIDConnect provider found in your account for {issuer}")))?;
    let Some(audience) = claims.audiences().into_iter().find(|a| provider.client_ids.contains(a)) else {
        return Err(invalid_token("Incorrect token audience"));
    };
    let kid = token.header.kid.as_deref();
    let jwk = match state.cached_jwks(issuer).and_then(|set| set.find(kid).cloned()) {
        Some(jwk) => jwk,
        None => {
            // Unknown issuer or rotated key: fetch (again), as STS does.
            let set = fetch_jwks(state, issuer).await.map_err(|e| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    "InvalidIdentityToken",
                    format!("Couldn't retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements ({e})"),
                )
            })?;
            state.cache_jwks(issuer, set.clone());
            set.find(kid).cloned().ok_or_else(|| invalid_token(format!("the issuer's JWKS has no key with kid {kid:?}")))?
        }
    };
    token.verify_rs256(&jwk).map_err(|e| invalid_token(e.to_string()))?;
    let now = now_secs();
    match claims.exp {
        None => return Err(invalid_token("the token has no exp claim")),
        Some(exp) if exp <= now => {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "ExpiredTokenException",
                format!("Token expired: current date/time {now} must be before the expiration date/time {exp}"),
            ));
        }
        Some(_) => {}
    }
    if let Some(nbf) = claims.nbf
        && nbf > now + CLOCK_SKEW_SECS
    {
        return Err(invalid_token(format!("the token is not valid before {nbf} (now {now})")));
    }
    if let Some(iat) = claims.iat
        && iat > now + CLOCK_SKEW_SECS
    {
        return Err(invalid_token(format!("the token was issued in the future ({iat}, now {now})")));
    }
    let denied = || {
        Refusal(StatusCode::FORBIDDEN, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity".into())
    };
    let trust = state
        .backend
        .trust_policy(role_name(role_arn))
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", e.to_string()))?
        .ok_or_else(denied)?;
    let mut context = BTreeMap::new();
    context.insert(format!("{host_path}:sub").to_ascii_lowercase(), vec![claims.sub.clone()]);
    context.insert(format!("{host_path}:aud").to_ascii_lowercase(), vec![audience]);
    let request = PolicyRequest {
        action: "sts:AssumeRoleWithWebIdentity".into(),
        resource: None,
        principal: Some(Principal::Federated(provider.arn)),
        context,
    };
    match evaluate([&trust], &request) {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny | Decision::ImplicitDeny => Err(denied()),
    }
}

async fn assume_role_with_web_identity(
    state: &State,
    parts: http::request::Parts,
    params: HashMap<String, String>,
    body: Bytes,
) -> Response<Body> {
    const API: &str = "AssumeRoleWithWebIdentity";
    let role_arn = params.get("RoleArn").cloned().unwrap_or_default();
    let token = params.get("WebIdentityToken").cloned().unwrap_or_default();
    if let Err(Refusal(status, code, message)) = authorize_web_identity(state, &role_arn, &token).await {
        state.count_denied(API);
        tracing::info!(%role_arn, code, %message, "aws-guard refused AssumeRoleWithWebIdentity");
        return sts_error(status, code, &message);
    }
    forward_and_remember(state, parts, body, &role_arn).await
}

/// Forwards an authorized `Assume*` call to moto and remembers the session it
/// issues, so calls signed with its key are authorized as `role_arn`.
async fn forward_and_remember(state: &State, parts: http::request::Parts, body: Bytes, role_arn: &str) -> Response<Body> {
    let (resp_parts, resp_body) = match forward_buffered(state, parts, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if resp_parts.status.is_success() {
        let text = String::from_utf8_lossy(&resp_body);
        if let Some(access_key) = xml_text(&text, "AccessKeyId") {
            let assumed_role_arn = xml_text(&text, "AssumedRoleUser")
                .and_then(|user| xml_text(user, "Arn"))
                .unwrap_or_default()
                .to_string();
            let expires = xml_text(&text, "Expiration").and_then(|t| {
                aws_sdk_iam::primitives::DateTime::from_str(t.trim(), aws_sdk_iam::primitives::DateTimeFormat::DateTime)
                    .ok()
                    .and_then(|d| SystemTime::try_from(d).ok())
            });
            state.remember(access_key.to_string(), Session { role_arn: role_arn.to_string(), assumed_role_arn, expires });
        }
    }
    rebuild(resp_parts, resp_body)
}

/// The longest session AWS issues to a role chain (`DurationSeconds` above fails).
const ROLE_CHAINING_MAX_SECS: u64 = 3600;

/// Checks an `AssumeRole` by a session the guard issued, as AWS does for a
/// same- or cross-account role chain.
async fn authorize_assume_role(
    state: &State,
    caller: &Session,
    role_arn: &str,
    params: &HashMap<String, String>,
) -> Result<(), Refusal> {
    if caller.expires.is_some_and(|exp| exp <= SystemTime::now()) {
        return Err(Refusal(StatusCode::FORBIDDEN, "ExpiredToken", "The security token included in the request is expired".into()));
    }
    if params.get("DurationSeconds").and_then(|d| d.parse::<u64>().ok()).is_some_and(|d| d > ROLE_CHAINING_MAX_SECS) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into(),
        ));
    }
    let denied = || {
        Refusal(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}", caller.assumed_role_arn),
        )
    };
    let lookup_failed = |e: crate::backend::LookupError| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", e.to_string());
    // A role that does not exist is refused like one that does not trust the caller.
    let trust = state.backend.trust_policy(role_name(role_arn)).await.map_err(lookup_failed)?.ok_or_else(denied)?;
    let account = caller.role_arn.split(':').nth(4).unwrap_or_default().to_string();
    let mut context = BTreeMap::new();
    context.insert("aws:principalarn".to_string(), vec![caller.role_arn.clone()]);
    context.insert("aws:principalaccount".to_string(), vec![account.clone()]);
    if let Some(name) = params.get("RoleSessionName") {
        context.insert("sts:rolesessionname".to_string(), vec![name.clone()]);
    }
    if let Some(external_id) = params.get("ExternalId") {
        context.insert("sts:externalid".to_string(), vec![external_id.clone()]);
    }
    let trust_names = |names: Vec<String>| PolicyRequest {
        action: "sts:AssumeRole".into(),
        resource: None,
        principal: Some(Principal::Aws(names)),
        context: context.clone(),
    };
    // An assumed-role session is named in a trust policy by its role's ARN
    // (the usual form), by itself, by its account, or by "*".
    let every_name = vec![
        "*".to_string(),
        caller.role_arn.clone(),
        caller.assumed_role_arn.clone(),
        format!("arn:aws:iam::{account}:root"),
        account.clone(),
    ];
    if evaluate([&trust], &trust_names(every_name)) != Decision::Allow {
        return Err(denied());
    }
    // Role trust policies need the caller's identity policies to allow the
    // call too, except when they name the session principal itself in the
    // same account (IAM policy evaluation logic, "resource-based policies").
    let policies = state.identity_policies(role_name(&caller.role_arn)).await.map_err(lookup_failed)?;
    let identity = PolicyRequest {
        action: "sts:AssumeRole".into(),
        resource: Some(role_arn.to_string()),
        principal: None,
        context: context.clone(),
    };
    let same_account = role_arn.split(':').nth(4) == Some(account.as_str());
    match evaluate(policies.iter(), &identity) {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny => Err(denied()),
        Decision::ImplicitDeny
            if same_account && evaluate([&trust], &trust_names(vec![caller.assumed_role_arn.clone()])) == Decision::Allow =>
        {
            Ok(())
        }
        Decision::ImplicitDeny => Err(denied()),
    }
}

/// `sts:AssumeRole`. A caller signing with a key the guard issued is checked
/// like AWS checks a role chain; any other key is moto's admin and passes,
/// as for data calls. Either way the new session is remembered, so its calls
/// are authorized against the target role's policies.
async fn assume_role(state: &State, parts: http::request::Parts, params: HashMap<String, String>, body: Bytes) -> Response<Body> {
    const API: &str = "AssumeRole";
    let role_arn = params.get("RoleArn").cloned().unwrap_or_default();
    let caller = sigv4_caller(&parts.headers).and_then(|(access_key, _)| state.session(&access_key));
    if let Some(caller) = &caller
        && let Err(Refusal(status, code, message)) = authorize_assume_role(state, caller, &role_arn, &params).await
    {
        state.count_denied(API);
        tracing::info!(%role_arn, caller = %caller.assumed_role_arn, code, %message, "aws-guard refused AssumeRole");
        return sts_error(status, code, &message);
    }
    forward_and_remember(state, parts, body, &role_arn).await
}

/// The data operations the guard authorizes, by `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataOp {
    GetParameter,
    GetParameters,
    GetParametersByPath,
    GetSecretValue,
    DescribeSecret,
    BatchGetSecretValue,
}

impl DataOp {
    fn api(self) -> &'static str {
        match self {
            DataOp::GetParameter => "GetParameter",
            DataOp::GetParameters => "GetParameters",
            DataOp::GetParametersByPath => "GetParametersByPath",
            DataOp::GetSecretValue => "GetSecretValue",
            DataOp::DescribeSecret => "DescribeSecret",
            DataOp::BatchGetSecretValue => "BatchGetSecretValue",
        }
    }

    fn action(self) -> String {
        let service = match self {
            DataOp::GetParameter | DataOp::GetParameters | DataOp::GetParametersByPath => "ssm",
            _ => "secretsmanager",
        };
        format!("{service}:{}", self.api())
    }
}

fn data_operation(target: &str) -> Option<DataOp> {
    match target {
        "AmazonSSM.GetParameter" => Some(DataOp::GetParameter),
        "AmazonSSM.GetParameters" => Some(DataOp::GetParameters),
        "AmazonSSM.GetParametersByPath" => Some(DataOp::GetParametersByPath),
        "secretsmanager.GetSecretValue" => Some(DataOp::GetSecretValue),
        "secretsmanager.DescribeSecret" => Some(DataOp::DescribeSecret),
        "secretsmanager.BatchGetSecretValue" => Some(DataOp::BatchGetSecretValue),
        _ => None,
    }
}

/// (access key id, region) from a SigV4 `Authorization` header.
fn sigv4_caller(headers: &HeaderMap) -> Option<(String, String)> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split(['\u{20}', ',']).find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut scope = credential.split('/');
    let access_key = scope.next()?.to_string();
    let _date = scope.next()?;
    let region = scope.next()?.to_string();
    Some((access_key, region))
}

/// The service name in a SigV4 `Authorization` header's credential scope.
fn sigv4_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split(['\u{20}', ',']).find_map(|part| part.trim().strip_prefix("Credential="))?;
    credential.split('/').nth(3).map(str::to_string)
}

/// Who is calling and with which policies, for one data call.
struct Caller {
    session: Session,
    account: String,
    region: String,
    policies: Arc<Vec<PolicyDocument>>,
}

impl Caller {
    fn decide(&self, action: &str, resource: &str) -> Decision {
        let mut context = BTreeMap::new();
        context.insert("aws:principalarn".to_string(), vec![self.session.role_arn.clone()]);
        context.insert("aws:requestedregion".to_string(), vec![self.region.clone()]);
        let req = PolicyRequest {
            action: action.to_string(),
            resource: Some(resource.to_string()),
            principal: None,
            context,
        };
        evaluate(self.policies.iter(), &req)
    }

    /// `Err(AccessDeniedException message)` unless allowed.
    fn check(&self, action: &str, resource: &str) -> Result<(), String> {
        let who = &self.session.assumed_role_arn;
        match self.decide(action, resource) {
            Decision::Allow => Ok(()),
            Decision::ExplicitDeny => Err(format!(
                "User: {who} is not authorized to perform: {action} on resource: {resource} with an explicit deny in an identity-based policy"
            )),
            Decision::ImplicitDeny => Err(format!(
                "User: {who} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action"
            )),
        }
    }

    fn parameter_arn(&self, name: &str) -> String {
        if name.starts_with("arn:") {
            return name.to_string();
        }
        format!("arn:aws:ssm:{}:{}:parameter/{}", self.region, self.account, name.trim_start_matches('/'))
    }

    fn secret_arn_guess(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            return id.to_string();
        }
        format!("arn:aws:secretsmanager:{}:{}:secret:{id}", self.region, self.account)
    }
}

/// The parameter name without a `:version` / `:label` selector.
fn parameter_name(raw: &str) -> String {
    if let Some(idx) = raw.find(":parameter") {
        // An ARN: `...:parameter/NAME[:selector]`; names never contain ':'.
        let rest = &raw[idx + ":parameter".len()..];
        let name = rest.split(':').next().unwrap_or(rest);
        let prefix = &raw[..idx + ":parameter".len()];
        return format!("{prefix}{name}");
    }
    raw.split(':').next().unwrap_or(raw).to_string()
}

enum Outcome {
    Forward(Bytes),
    /// BatchGetSecretValue by id list: forward the allowed ids, report the rest in `Errors`.
    ForwardBatch(Bytes, Vec<Value>),
    /// BatchGetSecretValue by filters: forward, then withhold values the caller may not read.
    FilterBatch(Bytes, Box<Caller>),
    Refuse(String),
    Respond(Response<Body>),
}

fn internal(message: impl std::fmt::Display) -> Outcome {
    Outcome::Respond(json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", &message.to_string()))
}

async fn data_call(state: Arc<State>, req: http::Request<Incoming>, op: DataOp) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(err) => return json_error(StatusCode::BAD_REQUEST, "SerializationException", &format!("reading body: {err}")),
    };
    if state.take_throttle() {
        state.count_throttled();
        return json_error(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded");
    }
    let Some((access_key, region)) = sigv4_caller(&parts.headers) else {
        return forward(&state, parts, full(body)).await;
    };
    let Some(session) = state.session(&access_key) else {
        // Not a session the guard issued: moto's admin, as the seeding and provider tests use.
        return forward(&state, parts, full(body)).await;
    };
    if session.expires.is_some_and(|exp| exp <= SystemTime::now()) {
        state.count_denied(op.api());
        return json_error(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        );
    }
    let outcome = authorize_data_call(&state, &session, region, op, &body).await;
    match outcome {
        Outcome::Forward(body) => forward(&state, parts, full(body)).await,
        Outcome::ForwardBatch(body, denials) => batch_forward(&state, parts, body, None, denials).await,
        Outcome::FilterBatch(body, caller) => batch_forward(&state, parts, body, Some(&caller), Vec::new()).await,
        Outcome::Refuse(message) => {
            state.count_denied(op.api());
            tracing::info!(api = op.api(), %message, "aws-guard refused a data call");
            json_error(StatusCode::BAD_REQUEST, "AccessDeniedException", &message)
        }
        Outcome::Respond(resp) => resp,
    }
}

async fn authorize_data_call(state: &State, session: &Session, region: String, op: DataOp, body: &Bytes) -> Outcome {
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        // moto answers malformed input itself.
        return Outcome::Forward(body.clone());
    };
    let account = session.role_arn.split(':').nth(4).unwrap_or_default().to_string();
    let policies = match state.identity_policies(role_name(&session.role_arn)).await {
        Ok(p) => p,
        Err(err) => return internal(err),
    };
    let caller = Caller { session: session.clone(), account, region, policies };
    let action = op.action();
    let decrypt = input.get("WithDecryption").and_then(Value::as_bool).unwrap_or(false);
    match op {
        DataOp::GetParameter | DataOp::GetParameters => {
            let names: Vec<String> = match op {
                DataOp::GetParameter => input.get("Name").and_then(Value::as_str).map(str::to_string).into_iter().collect(),
                _ => input
                    .get("Names")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            };
            // Every named parameter is authorized; one refusal fails the whole call.
            for raw in &names {
                let name = parameter_name(raw);
                if let Err(message) = caller.check(&action, &caller.parameter_arn(&name)) {
                    return Outcome::Refuse(message);
                }
            }
            if decrypt {
                let plain: Vec<String> = names.iter().map(|raw| parameter_name(raw)).collect();
                let keys = match state.backend.parameter_keys(&caller.region, &plain).await {
                    Ok(keys) => keys,
                    Err(err) => return internal(err),
                };
                // In request order, so the first refused name is the one reported.
                for name in &plain {
                    if let Some(Some(key)) = keys.get(name)
                        && let Some(key_arn) = state.backend.customer_key_arn(&caller.region, &caller.account, key).await
                        && let Err(message) = caller.check("kms:Decrypt", &key_arn)
                    {
                        return Outcome::Refuse(message);
                    }
                }
            }
            Outcome::Forward(body.clone())
        }
        DataOp::GetParametersByPath => {
            // Authorized against the requested path, not the parameters returned (AWS docs).
            let path = input.get("Path").and_then(Value::as_str).unwrap_or("/");
            let arn = caller.parameter_arn(path.trim_end_matches('/'));
            match caller.check(&action, &arn) {
                Ok(()) => Outcome::Forward(body.clone()),
                Err(message) => Outcome::Refuse(message),
            }
        }
        DataOp::GetSecretValue | DataOp::DescribeSecret => {
            let id = input.get("SecretId").and_then(Value::as_str).unwrap_or_default();
            match check_secret(state, &caller, &action, id, op == DataOp::GetSecretValue).await {
                Ok(Ok(())) => Outcome::Forward(body.clone()),
                Ok(Err(message)) => Outcome::Refuse(message),
                Err(outcome) => outcome,
            }
        }
        DataOp::BatchGetSecretValue => {
            if let Err(message) = caller.check(&action, "*") {
                return Outcome::Refuse(message);
            }
            let Some(ids) = input.get("SecretIdList").and_then(Value::as_array) else {
                // Filter form: ListSecrets is needed too; values are checked per secret after moto answers.
                if let Err(message) = caller.check("secretsmanager:ListSecrets", "*") {
                    return Outcome::Refuse(message);
                }
                return Outcome::FilterBatch(body.clone(), Box::new(caller));
            };
            let mut allowed = Vec::new();
            let mut denials = Vec::new();
            for id in ids.iter().filter_map(Value::as_str) {
                match check_secret(state, &caller, "secretsmanager:GetSecretValue", id, true).await {
                    Ok(Ok(())) => allowed.push(Value::String(id.to_string())),
                    Ok(Err(message)) => denials.push(batch_error(id, &message)),
                    Err(outcome) => return outcome,
                }
            }
            if allowed.is_empty() {
                return Outcome::Respond(json_reply(&json!({ "SecretValues": [], "Errors": denials })));
            }
            let mut input = input.clone();
            if let Some(obj) = input.as_object_mut() {
                obj.insert("SecretIdList".into(), Value::Array(allowed));
            }
            Outcome::ForwardBatch(Bytes::from(input.to_string()), denials)
        }
    }
}

fn batch_error(id: &str, message: &str) -> Value {
    json!({ "SecretId": id, "ErrorCode": "AccessDeniedException", "Message": message })
}

/// Authorizes `action` on a secret (and `kms:Decrypt` on its customer key when `needs_value`).
async fn check_secret(
    state: &State,
    caller: &Caller,
    action: &str,
    id: &str,
    needs_value: bool,
) -> Result<Result<(), String>, Outcome> {
    let info = state.backend.secret(&caller.region, id).await.map_err(internal)?;
    let Some(info) = info else {
        // moto will answer ResourceNotFound if the caller may ask at all.
        return Ok(caller.check(action, &caller.secret_arn_guess(id)));
    };
    if let Err(message) = caller.check(action, &info.arn) {
        return Ok(Err(message));
    }
    if needs_value
        && let Some(key) = &info.kms_key_id
        && let Some(key_arn) = state.backend.customer_key_arn(&caller.region, &caller.account, key).await
        && let Err(message) = caller.check("kms:Decrypt", &key_arn)
    {
        return Ok(Err(message));
    }
    Ok(Ok(()))
}

fn json_reply(value: &Value) -> Response<Body> {
    reply(StatusCode::OK, "application/x-amz-json-1.1", value.to_string(), &[])
}

/// Forwards a BatchGetSecretValue and merges the guard's per-secret refusals into `Errors`;
/// with `filter_for`, first withholds every returned value that caller may not read.
async fn batch_forward(
    state: &State,
    mut parts: http::request::Parts,
    body: Bytes,
    filter_for: Option<&Caller>,
    mut denials: Vec<Value>,
) -> Response<Body> {
    parts.headers.remove(CONTENT_LENGTH);
    let (resp_parts, resp_body) = match forward_buffered(state, parts, body).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !resp_parts.status.is_success() {
        return rebuild(resp_parts, resp_body);
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&resp_body) else {
        return rebuild(resp_parts, resp_body);
    };
    if let Some(caller) = filter_for
        && let Some(values) = answer.get_mut("SecretValues").and_then(Value::as_array_mut)
    {
        let mut kept = Vec::new();
        for value in values.drain(..) {
            let arn = value.get("ARN").and_then(Value::as_str).unwrap_or_default().to_string();
            match check_secret(state, caller, "secretsmanager:GetSecretValue", &arn, true).await {
                Ok(Ok(())) => kept.push(value),
                Ok(Err(message)) => denials.push(batch_error(&arn, &message)),
                Err(Outcome::Respond(resp)) => return resp,
                Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "checking a secret failed"),
            }
        }
        *values = kept;
    }
    if let Some(obj) = answer.as_object_mut() {
        let errors = obj.entry("Errors").or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = errors.as_array_mut() {
            list.extend(denials);
        }
    }
    rebuild(resp_parts, Bytes::from(answer.to_string()))
}
