//! The HTTP server: connection loop, request decoding, routing and Google's error shape.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Shared;
use crate::auth::Principal;

/// An error in Google's JSON shape: `{"error": {"code", "message", "status"}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) status: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, status: &'static str, message: impl Into<String>) -> Self {
        Self { code, status, message: message.into() }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }
    pub(crate) fn precondition(message: impl Into<String>) -> Self {
        Self::new(400, "FAILED_PRECONDITION", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }
    pub(crate) fn exists(message: impl Into<String>) -> Self {
        Self::new(409, "ALREADY_EXISTS", message)
    }
    pub(crate) fn aborted(message: impl Into<String>) -> Self {
        Self::new(409, "ABORTED", message)
    }
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Self::new(403, "PERMISSION_DENIED", message)
    }
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "UNAUTHENTICATED", message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let body = json!({"error": {"code": self.code, "message": self.message, "status": self.status}});
        json_response(self.code, &body)
    }
}

/// One decoded request, handed to the handlers.
pub(crate) struct Call {
    pub(crate) method: Method,
    /// Percent-decoded path segments, the custom verb split off the last one.
    pub(crate) segments: Vec<String>,
    /// The `:verb` suffix of the path, if any.
    pub(crate) verb: Option<String>,
    pub(crate) query: HashMap<String, String>,
    pub(crate) body: Bytes,
    pub(crate) content_type: String,
    /// The bearer token, if an `Authorization: Bearer` header was sent.
    pub(crate) bearer: Option<String>,
    /// The `Metadata-Flavor` header, which the metadata server requires.
    pub(crate) metadata_flavor: Option<String>,
}

impl Call {
    /// The body as JSON; an empty body reads as `{}`.
    pub(crate) fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body)
            .map_err(|err| ApiError::invalid(format!("Invalid JSON payload received. {err}")))
    }
    /// A query parameter.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// What a handler answers: a JSON body with status 200, or an error.
pub(crate) type Reply = Result<Value, ApiError>;

pub(crate) fn json_response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else { continue };
        let shared = Arc::clone(&shared);
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let call = match decode(request).await {
        Ok(call) => call,
        Err(err) => return err.into_response(),
    };
    let route = route(&call);
    let rpc = route.map(|route| route.rpc()).unwrap_or("Unknown");
    if let Some(fault) = shared.lock().record_call(rpc) {
        return fault.into_response();
    }
    let Some(route) = route else {
        let path = call.segments.join("/");
        return ApiError::not_found(format!("The requested URL /{path} was not found on this server.")).into_response();
    };
    match route {
        Route::IdentityBindingToken => crate::tokens::exchange(shared, &call, true).await,
        Route::StsToken => crate::tokens::exchange(shared, &call, false).await,
        Route::MetadataToken => crate::metadata::token(shared, &call, segment_at(&call, 4)),
        Route::MetadataEmail => crate::metadata::email(shared, &call, segment_at(&call, 4)),
        Route::Api(api) => {
            let principal = match crate::auth::authenticate(shared, call.bearer.as_deref()) {
                Ok(principal) => principal,
                Err(err) => return err.into_response(),
            };
            match dispatch(shared, &principal, api, &call) {
                Ok(body) => json_response(200, &body),
                Err(err) => err.into_response(),
            }
        }
    }
}

async fn decode(request: Request<Incoming>) -> Result<Call, ApiError> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|err| ApiError::invalid(format!("reading the request body failed: {err}")))?
        .to_bytes();
    let raw_path = parts.uri.path();
    let (path, verb) = match raw_path.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((name, verb)) => (format!("{head}/{name}"), Some(verb.to_owned())),
            None => (raw_path.to_owned(), None),
        },
        None => (raw_path.to_owned(), None),
    };
    let segments = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let query = parts
        .uri
        .query()
        .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let header = |name: hyper::header::HeaderName| {
        parts.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
    };
    let bearer = header(hyper::header::AUTHORIZATION).and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    });
    let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
    let metadata_flavor = header(hyper::header::HeaderName::from_static("metadata-flavor"));
    Ok(Call {
        method: parts.method,
        segments,
        verb: verb.map(|verb| percent_decode(&verb)),
        query,
        body,
        content_type,
        bearer,
        metadata_flavor,
    })
}

fn segment_at(call: &Call, index: usize) -> &str {
    call.segments.get(index).map(String::as_str).unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A recognised path: the token endpoints (own error format, no bearer), the
/// metadata server's (plain text, no bearer) or an API call.
#[derive(Clone, Copy, Debug)]
enum Route {
    IdentityBindingToken,
    StsToken,
    MetadataToken,
    MetadataEmail,
    Api(Api),
}

/// Every API method served, named after its RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    GenerateAccessToken,
    CreateServiceAccount,
    ListServiceAccounts,
    GetServiceAccount,
    PatchServiceAccount,
    DeleteServiceAccount,
    GetServiceAccountIamPolicy,
    SetServiceAccountIamPolicy,
    GetProject,
    GetProjectIamPolicy,
    SetProjectIamPolicy,
    CreateSecret,
    ListSecrets,
    GetSecret,
    UpdateSecret,
    DeleteSecret,
    AddSecretVersion,
    GetSecretIamPolicy,
    SetSecretIamPolicy,
    ListSecretVersions,
    GetSecretVersion,
    AccessSecretVersion,
    DisableSecretVersion,
    EnableSecretVersion,
    DestroySecretVersion,
}

impl Route {
    fn rpc(self) -> &'static str {
        match self {
            Route::IdentityBindingToken => "IdentityBindingToken",
            Route::StsToken => "StsToken",
            Route::MetadataToken => "MetadataToken",
            Route::MetadataEmail => "MetadataEmail",
            Route::Api(api) => api.rpc(),
        }
    }
}

impl Api {
    /// The RPC name used for call counters and fault injection.
    pub(crate) fn rpc(self) -> &'static str {
        match self {
            Api::GenerateAccessToken => "GenerateAccessToken",
            Api::CreateServiceAccount => "CreateServiceAccount",
            Api::ListServiceAccounts => "ListServiceAccounts",
            Api::GetServiceAccount => "GetServiceAccount",
            Api::PatchServiceAccount => "PatchServiceAccount",
            Api::DeleteServiceAccount => "DeleteServiceAccount",
            Api::GetServiceAccountIamPolicy => "GetServiceAccountIamPolicy",
            Api::SetServiceAccountIamPolicy => "SetServiceAccountIamPolicy",
            Api::GetProject => "GetProject",
            Api::GetProjectIamPolicy => "GetProjectIamPolicy",
            Api::SetProjectIamPolicy => "SetProjectIamPolicy",
            Api::CreateSecret => "CreateSecret",
            Api::ListSecrets => "ListSecrets",
            Api::GetSecret => "GetSecret",
            Api::UpdateSecret => "UpdateSecret",
            Api::DeleteSecret => "DeleteSecret",
            Api::AddSecretVersion => "AddSecretVersion",
            Api::GetSecretIamPolicy => "GetSecretIamPolicy",
            Api::SetSecretIamPolicy => "SetSecretIamPolicy",
            Api::ListSecretVersions => "ListSecretVersions",
            Api::GetSecretVersion => "GetSecretVersion",
            Api::AccessSecretVersion => "AccessSecretVersion",
            Api::DisableSecretVersion => "DisableSecretVersion",
            Api::EnableSecretVersion => "EnableSecretVersion",
            Api::DestroySecretVersion => "DestroySecretVersion",
        }
    }
}

fn route(call: &Call) -> Option<Route> {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let verb = call.verb.as_deref();
    let method = &call.method;
    let get = method == Method::GET;
    let post = method == Method::POST;
    let api = match (segments.as_slice(), verb) {
        (["v1", "identitybindingtoken"], None) if post => return Some(Route::IdentityBindingToken),
        (["v1", "token"], None) if post => return Some(Route::StsToken),
        (["computeMetadata", "v1", "instance", "service-accounts", _, "token"], None) if get => return Some(Route::MetadataToken),
        (["computeMetadata", "v1", "instance", "service-accounts", _, "email"], None) if get => return Some(Route::MetadataEmail),
        (["v1", "projects", _, "serviceAccounts", _], Some("generateAccessToken")) if post => Api::GenerateAccessToken,
        (["v1", "projects", _, "serviceAccounts"], None) if post => Api::CreateServiceAccount,
        (["v1", "projects", _, "serviceAccounts"], None) if get => Api::ListServiceAccounts,
        (["v1", "projects", _, "serviceAccounts", _], None) if get => Api::GetServiceAccount,
        (["v1", "projects", _, "serviceAccounts", _], None) if method == Method::PATCH => Api::PatchServiceAccount,
        (["v1", "projects", _, "serviceAccounts", _], None) if method == Method::DELETE => Api::DeleteServiceAccount,
        (["v1", "projects", _, "serviceAccounts", _], Some("getIamPolicy")) if post || get => Api::GetServiceAccountIamPolicy,
        (["v1", "projects", _, "serviceAccounts", _], Some("setIamPolicy")) if post => Api::SetServiceAccountIamPolicy,
        (["v3", "projects", _], None) if get => Api::GetProject,
        (["v3", "projects", _], Some("getIamPolicy")) if post || get => Api::GetProjectIamPolicy,
        (["v3", "projects", _], Some("setIamPolicy")) if post => Api::SetProjectIamPolicy,
        (["v1", "projects", _, "secrets"], None) if post => Api::CreateSecret,
        (["v1", "projects", _, "secrets"], None) if get => Api::ListSecrets,
        (["v1", "projects", _, "secrets", _], None) if get => Api::GetSecret,
        (["v1", "projects", _, "secrets", _], None) if method == Method::PATCH => Api::UpdateSecret,
        (["v1", "projects", _, "secrets", _], None) if method == Method::DELETE => Api::DeleteSecret,
        (["v1", "projects", _, "secrets", _], Some("addVersion")) if post => Api::AddSecretVersion,
        (["v1", "projects", _, "secrets", _], Some("getIamPolicy")) if post || get => Api::GetSecretIamPolicy,
        (["v1", "projects", _, "secrets", _], Some("setIamPolicy")) if post => Api::SetSecretIamPolicy,
        (["v1", "projects", _, "secrets", _, "versions"], None) if get => Api::ListSecretVersions,
        (["v1", "projects", _, "secrets", _, "versions", _], None) if get => Api::GetSecretVersion,
        (["v1", "projects", _, "secrets", _, "versions", _], Some("access")) if get => Api::AccessSecretVersion,
        (["v1", "projects", _, "secrets", _, "versions", _], Some("disable")) if post => Api::DisableSecretVersion,
        (["v1", "projects", _, "secrets", _, "versions", _], Some("enable")) if post => Api::EnableSecretVersion,
        (["v1", "projects", _, "secrets", _, "versions", _], Some("destroy")) if post => Api::DestroySecretVersion,
        _ => return None,
    };
    Some(Route::Api(api))
}

fn dispatch(shared: &Shared, principal: &Principal, api: Api, call: &Call) -> Reply {
    let segment = |index: usize| call.segments.get(index).map(String::as_str).unwrap_or_default();
    let project = segment(2);
    match api {
        Api::GenerateAccessToken => crate::tokens::generate_access_token(shared, principal, segment(4), call),
        Api::CreateServiceAccount
        | Api::ListServiceAccounts
        | Api::GetServiceAccount
        | Api::PatchServiceAccount
        | Api::DeleteServiceAccount
        | Api::GetServiceAccountIamPolicy
        | Api::SetServiceAccountIamPolicy
        | Api::GetProject
        | Api::GetProjectIamPolicy
        | Api::SetProjectIamPolicy => crate::store_iam::handle(&mut shared.lock(), principal, api, project, segment(4), call),
        _ => crate::secrets::handle(&mut shared.lock(), principal, api, project, segment(4), segment(6), call),
    }
}
