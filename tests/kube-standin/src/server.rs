//! The HTTP layer: authentication, routing, discovery, verbs, watch streams, TokenRequest.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::rbac::{self, Attributes, UserInfo};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, FieldError};
use crate::store::{ListOptions, Propagation, Store, WatchEvent, now_rfc3339, random_uid};
use crate::tokens::TokenSigner;

/// The body type of every response.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// State shared by every connection.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub signer: TokenSigner,
    pub issuer: String,
    pub url: String,
    pub admin_token: String,
    pub users: Mutex<HashMap<String, UserInfo>>,
    pub rbac: bool,
    /// Watch requests accepted so far (authorized and routed), for fault tests.
    pub watches_started: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, UserInfo>> {
        self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(error: &ApiError) -> Response<Body> {
    json_response(error.code, &error.to_status())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A request aimed at a resource.
struct ResourceRequest {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: String,
}

/// Handles one HTTP request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    Ok(response)
}

/// The request's user: `system:anonymous` without credentials, `None` (401) for credentials
/// that do not authenticate.
fn authenticate(shared: &Shared, req: &Request<Incoming>) -> Option<UserInfo> {
    let Some(header) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return Some(rbac::anonymous());
    };
    let header = header.to_str().ok()?;
    let token = header.strip_prefix("Bearer ")?.trim();
    if token == shared.admin_token {
        return Some(UserInfo {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        });
    }
    if let Some(user) = shared.users().get(token) {
        return Some(user.clone());
    }
    let claims = shared.signer.verify(token)?;
    if claims["iss"].as_str() != Some(shared.issuer.as_str()) {
        return None;
    }
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&shared.issuer.as_str()) {
        return None;
    }
    let now = jiff::Timestamp::now().as_second();
    if claims["exp"].as_i64()? < now || claims["nbf"].as_i64().unwrap_or(0) > now + 60 {
        return None;
    }
    let info = &claims["kubernetes.io"];
    let ns = info["namespace"].as_str()?;
    let name = info["serviceaccount"]["name"].as_str()?;
    let uid = info["serviceaccount"]["uid"].as_str()?;
    let store = shared.store();
    let sa_type = store.find_type("", "v1", "serviceaccounts")?;
    let sa = store.get(&sa_type, ns, name).ok()?;
    if sa["metadata"]["uid"].as_str() != Some(uid) {
        return None;
    }
    Some(UserInfo {
        name: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("error reading request body: {e}")))
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type == "application/vnd.kubernetes.protobuf" {
        return crate::proto::decode(body).ok_or_else(|| ApiError::unsupported_media_type(content_type));
    }
    parse_json(body)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    // Authentication and authorization come before routing, as in kube-apiserver's handler
    // chain: a path nobody may read is 403 whether it exists or not.
    let user = authenticate(shared, &req).ok_or_else(ApiError::unauthorized)?;
    let non_resource = |p: &str, verb: &str| -> Result<(), ApiError> {
        let attrs = Attributes {
            verb: verb.into(),
            path: Some(p.to_string()),
            ..Attributes::default()
        };
        if shared.rbac && !rbac::allowed(&shared.store(), &user, &attrs) {
            return Err(ApiError::forbidden("", "", None, format!("forbidden: {}", attrs.forbidden_reason(&user))));
        }
        Ok(())
    };
    let is_resource_path = path.starts_with("/api/") || path.starts_with("/apis/");
    if !is_resource_path {
        non_resource(&path, &req.method().as_str().to_ascii_lowercase())?;
    }
    match path.as_str() {
        "/.well-known/openid-configuration" => {
            return Ok(json_response(200, &json!({
                "issuer": shared.issuer,
                "jwks_uri": format!("{}/openid/v1/jwks", shared.url),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            })));
        }
        "/openid/v1/jwks" => return Ok(json_response(200, &shared.signer.jwks())),
        "/healthz" | "/livez" | "/readyz" => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            return Ok(r);
        }
        _ => {}
    }
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let non_resource = |p: &str| non_resource(p, "get");
    match segs.as_slice() {
        ["version"] => {
            non_resource(&path)?;
            return Ok(json_response(200, &json!({
                "major": "1", "minor": "32", "gitVersion": "v1.32.0-standin",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
                "platform": "linux/amd64",
            })));
        }
        ["api"] | ["apis"] if wants_aggregated_discovery(&req) => {
            non_resource(&path)?;
            let types = shared.store().all_types();
            let mut response = json_response(200, &aggregated_discovery(&types, segs == ["api"]));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(AGGREGATED_DISCOVERY_V2),
            );
            return Ok(response);
        }
        ["api"] => {
            non_resource(&path)?;
            return Ok(json_response(200, &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.url.trim_start_matches("https://")}],
            })));
        }
        ["apis"] => {
            non_resource(&path)?;
            return Ok(json_response(200, &group_list(&shared.store().all_types())));
        }
        ["api", "v1"] => {
            non_resource(&path)?;
            return Ok(json_response(200, &resource_list("", "v1", &shared.store().all_types())));
        }
        ["apis", group] => {
            non_resource(&path)?;
            let list = group_list(&shared.store().all_types());
            let found = list["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"] == json!(group))
                .cloned()
                .ok_or_else(ApiError::path_not_found)?;
            let mut g = found;
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            return Ok(json_response(200, &g));
        }
        ["openapi", "v3"] => {
            non_resource(&path)?;
            return Ok(json_response(200, &openapi_root(&shared.store().all_types())));
        }
        ["openapi", "v3", gv @ ..] => {
            non_resource(&path)?;
            let gv = gv.join("/");
            return Ok(json_response(200, &openapi_group_version(&gv, &shared.store().all_types())));
        }
        ["apis", group, version] => {
            non_resource(&path)?;
            let types = shared.store().all_types();
            if !types.iter().any(|t| t.group == *group && t.version == *version) {
                return Err(ApiError::path_not_found());
            }
            return Ok(json_response(200, &resource_list(group, version, &types)));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !(group.is_empty() && (*plural == "status" || *plural == "finalize")) => {
            (Some(ns.to_string()), {
                let mut r = vec![*plural];
                r.extend(tail.iter().copied());
                r
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, ""),
        [plural, name] => (*plural, Some(name.to_string()), ""),
        [plural, name, sub] => (*plural, Some(name.to_string()), *sub),
        _ => return Err(ApiError::path_not_found()),
    };
    let rt = shared
        .store()
        .find_type(group, version, plural)
        .ok_or_else(ApiError::path_not_found)?;
    if rt.namespaced != namespace.is_some() && !(namespace.is_none() && name.is_none() && method == Method::GET) {
        return Err(ApiError::path_not_found());
    }
    let allowed_sub = subresource.is_empty()
        || (subresource == "status" && rt.status_subresource)
        || rt.extra_subresources.iter().any(|(s, _, _)| *s == subresource);
    if !allowed_sub {
        return Err(ApiError::path_not_found());
    }
    let request = ResourceRequest {
        rt,
        namespace,
        name,
        subresource: subresource.to_string(),
    };
    let is_watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, request.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if is_watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if shared.rbac {
        let attrs = Attributes {
            verb: verb.into(),
            group: request.rt.group.clone(),
            resource: request.rt.plural.clone(),
            subresource: request.subresource.clone(),
            namespace: request.namespace.clone().unwrap_or_default(),
            name: request.name.clone().unwrap_or_default(),
            path: None,
        };
        if !rbac::allowed(&shared.store(), &user, &attrs) {
            return Err(ApiError::forbidden(
                &request.rt.qualified(),
                &request.rt.group,
                request.name.as_deref(),
                forbidden_message(&request.rt, request.name.as_deref(), &attrs.forbidden_reason(&user)),
            ));
        }
    }
    let user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .split('/')
        .next()
        .unwrap_or("unknown")
        .to_string();
    let manager = query.get("fieldManager").cloned().unwrap_or(user_agent);
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let wants_table = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(crate::table::wants_table);
    let ns = request.namespace.clone().unwrap_or_default();
    let rt = request.rt.clone();
    // `dryRun=All`: run the write against a private copy of the state, so nothing is stored or watched.
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    match verb {
        "get" => {
            let object = shared.store().get(&rt, &ns, request.name.as_deref().unwrap_or_default())?;
            if rt.custom && wants_table {
                let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                return Ok(table_response(&crate::table::to_table(&[object], &rt.printer_columns, &rv)));
            }
            Ok(json_response(200, &object))
        }
        "list" => {
            let opts = list_options(&rt, &query)?;
            let list = shared.store().list(&rt, request.namespace.as_deref(), &opts)?;
            if rt.custom && wants_table {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                return Ok(table_response(&crate::table::to_table(&items, &rt.printer_columns, rv)));
            }
            Ok(json_response(200, &list))
        }
        "watch" => {
            shared.watches_started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            watch(shared, &rt, request.namespace.clone(), &query)
        }
        "create" => {
            let body = parse_body(&read_body(req).await?, &content_type)?;
            if request.subresource == "token" {
                return token_request(shared, &rt, &ns, request.name.as_deref().unwrap_or_default(), body);
            }
            if rt.kind == "SelfSubjectAccessReview" {
                return Ok(json_response(201, &self_subject_access_review(shared, &user, body)));
            }
            if request.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let created = with_store(shared, dry_run, |store| store.create(&rt, &ns, body, &manager))?;
            Ok(json_response(201, &created))
        }
        "update" => {
            let body = parse_body(&read_body(req).await?, &content_type)?;
            let name = request.name.clone().unwrap_or_default();
            let updated = with_store(shared, dry_run, |store| store.update(&rt, &ns, &name, body, &manager, &request.subresource))?;
            Ok(json_response(200, &updated))
        }
        "patch" => {
            let name = request.name.clone().unwrap_or_default();
            let body = read_body(req).await?;
            with_store(shared, dry_run, |store| {
            if content_type == "application/apply-patch+yaml" || content_type == "application/apply-patch+cbor" {
                let Some(apply_manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                    return Err(ApiError::invalid_options(
                        "PatchOptions.meta.k8s.io",
                        FieldError::required("fieldManager", "is required for apply patch"),
                    ));
                };
                let force = query.get("force").is_some_and(|f| f == "true");
                let existed = store.get(&rt, &ns, &name).is_ok();
                let result = store.apply(&rt, &ns, &name, &body, apply_manager, force, &request.subresource)?;
                return Ok(json_response(if existed { 200 } else { 201 }, &result));
            }
            Ok(json_response(200, &store.patch(&rt, &ns, &name, &content_type, &body, &manager, &request.subresource)?))
            })
        }
        "delete" => {
            let body = parse_body(&read_body(req).await?, &content_type).unwrap_or_default();
            let name = request.name.clone().unwrap_or_default();
            let propagation = propagation(&body, &query)?;
            let (object, remains) = with_store(shared, dry_run, |store| {
                store.delete(
                    &rt,
                    &ns,
                    &name,
                    propagation,
                    body["preconditions"]["uid"].as_str(),
                    body["preconditions"]["resourceVersion"].as_str(),
                )
            })?;
            if remains {
                Ok(json_response(200, &object))
            } else {
                Ok(json_response(200, &deleted_status(&rt, &object)))
            }
        }
        "deletecollection" => {
            let body = parse_body(&read_body(req).await?, &content_type).unwrap_or_default();
            let propagation = propagation(&body, &query)?;
            let opts = list_options(&rt, &query)?;
            with_store(shared, dry_run, |store| {
                let list = store.list(&rt, request.namespace.as_deref(), &opts)?;
                for item in list["items"].as_array().into_iter().flatten() {
                    let name = item["metadata"]["name"].as_str().unwrap_or_default();
                    let item_ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
                    store.delete(&rt, item_ns, name, propagation, None, None)?;
                }
                Ok(())
            })?;
            Ok(json_response(200, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn table_response(table: &Value) -> Response<Body> {
    let mut response = json_response(200, table);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io"),
    );
    response
}

/// Runs a write on the store, or on a throwaway copy of it for dry runs.
fn with_store<T>(shared: &Shared, dry_run: bool, write: impl FnOnce(&mut Store) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let mut guard = shared.store();
    if dry_run {
        let mut copy = guard.dry_run_copy();
        drop(guard);
        write(&mut copy)
    } else {
        write(&mut guard)
    }
}

fn forbidden_message(rt: &ResourceType, name: Option<&str>, reason: &str) -> String {
    match name {
        Some(name) => format!("{} {:?} is forbidden: {reason}", rt.qualified(), name),
        None => format!("{} is forbidden: {reason}", rt.qualified()),
    }
}

fn deleted_status(rt: &ResourceType, object: &Value) -> Value {
    let mut details = json!({
        "name": object["metadata"]["name"],
        "kind": rt.plural,
        "uid": object["metadata"]["uid"],
    });
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn propagation(body: &Value, query: &HashMap<String, String>) -> Result<Option<Propagation>, ApiError> {
    let policy = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| query.get("propagationPolicy").cloned());
    let orphan = body["orphanDependents"].as_bool() == Some(true);
    match policy.as_deref() {
        None if orphan => Ok(Some(Propagation::Orphan)),
        None => Ok(None),
        Some("Background") => Ok(Some(Propagation::Background)),
        Some("Foreground") => Ok(Some(Propagation::Foreground)),
        Some("Orphan") => Ok(Some(Propagation::Orphan)),
        Some(other) => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

fn list_options(rt: &ResourceType, query: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    let kind = rt.kind.clone();
    let core = rt.group.is_empty();
    let supported = move |field: &str| {
        field == "metadata.name"
            || field == "metadata.namespace"
            || (core && kind == "Secret" && field == "type")
            || (core && kind == "Event" && field.starts_with("involvedObject."))
    };
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or_default())?,
        fields: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or_default(), &supported)?,
        limit: query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn group_list(types: &[ResourceType]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone());
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let rendered: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": rendered})
}

fn resource_list(group: &str, version: &str, types: &[ResourceType]) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(ResourceType::discovery_entries)
        .collect();
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// The media type of aggregated discovery (apidiscovery.k8s.io/v2), stable since Kubernetes 1.30.
const AGGREGATED_DISCOVERY_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client's Accept header asks for aggregated discovery v2.
fn wants_aggregated_discovery(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
}

/// The aggregated discovery document of the core group (`/api`) or the named groups (`/apis`).
fn aggregated_discovery(types: &[ResourceType], core: bool) -> Value {
    // (group, [(version, [resource])]), in the order types are served.
    type Versions = Vec<(String, Vec<Value>)>;
    let mut groups: Vec<(String, Versions)> = Vec::new();
    for t in types.iter().filter(|t| t.group.is_empty() == core) {
        let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let mut subresources = Vec::new();
        if t.status_subresource {
            subresources.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
        }
        for (sub, sub_kind, verbs) in &t.extra_subresources {
            let group = if *sub_kind == "TokenRequest" { "authentication.k8s.io" } else { "" };
            subresources.push(json!({
                "subresource": sub,
                "responseKind": {"group": group, "version": "v1", "kind": sub_kind},
                "verbs": verbs,
            }));
        }
        let resource = json!({
            "resource": t.plural,
            "responseKind": kind,
            "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": t.singular,
            "verbs": t.verbs,
            "shortNames": t.short_names,
            "categories": t.categories,
            "subresources": subresources,
        });
        let group = match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some(g) => g,
            None => {
                groups.push((t.group.clone(), Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        match group.1.iter_mut().find(|(v, _)| *v == t.version) {
            Some((_, resources)) => resources.push(resource),
            None => group.1.push((t.version.clone(), vec![resource])),
        }
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|(version, resources)| json!({"version": version, "resources": resources, "freshness": "Current"}))
                .collect();
            let metadata = if core { json!({"creationTimestamp": null}) } else { json!({"name": name, "creationTimestamp": null}) };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The OpenAPI v3 index: one document per group version.
fn openapi_root(types: &[ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    for t in types {
        let gv = if t.group.is_empty() { format!("api/{}", t.version) } else { format!("apis/{}/{}", t.group, t.version) };
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document for a group version: the PATCH operations, declaring the
/// `fieldValidation` parameter so kubectl uses server-side field validation. No schemas are
/// published, so kubectl falls back to its compiled-in types for strategic merge.
fn openapi_group_version(gv: &str, types: &[ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    for t in types {
        let this = if t.group.is_empty() { format!("api/{}", t.version) } else { format!("apis/{}/{}", t.group, t.version) };
        if this != gv {
            continue;
        }
        let path = if t.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("/{gv}/{}/{{name}}", t.plural)
        };
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        paths.insert(path, json!({"patch": {
            "operationId": format!("patch{}", t.kind),
            "parameters": params,
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
        }}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

fn token_request(shared: &Shared, rt: &ResourceType, ns: &str, name: &str, body: Value) -> Result<Response<Body>, ApiError> {
    let sa = shared.store().get(rt, ns, name)?;
    let expiration = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let token_rt = ResourceType {
        group: "authentication.k8s.io".into(),
        kind: "TokenRequest".into(),
        ..rt.clone()
    };
    if expiration < 600 {
        return Err(ApiError::invalid(&token_rt, "", &[FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        )]));
    }
    if expiration > 1 << 32 {
        return Err(ApiError::invalid(&token_rt, "", &[FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        )]));
    }
    let audiences: Vec<String> = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![shared.issuer.clone()],
    };
    let now = jiff::Timestamp::now().as_second();
    let exp = now + expiration;
    let mut kubernetes_io = json!({
        "namespace": ns,
        "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]},
    });
    let bound = &body["spec"]["boundObjectRef"];
    if let Some(kind) = bound["kind"].as_str() {
        let key = kind.to_lowercase();
        kubernetes_io[key] = json!({"name": bound["name"], "uid": bound["uid"]});
    }
    let claims = json!({
        "aud": audiences,
        "exp": exp,
        "iat": now,
        "iss": shared.issuer,
        "jti": random_uid(),
        "kubernetes.io": kubernetes_io,
        "nbf": now,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let token = shared.signer.sign(&claims);
    let expires = jiff::Timestamp::from_second(exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Ok(json_response(201, &json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": body["spec"]["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": expires},
    })))
}

fn self_subject_access_review(shared: &Shared, user: &UserInfo, body: Value) -> Value {
    let spec = &body["spec"];
    let attrs = if let Some(r) = spec["resourceAttributes"].as_object() {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Attributes {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
            path: None,
        }
    } else {
        Attributes {
            verb: spec["nonResourceAttributes"]["verb"].as_str().unwrap_or_default().to_string(),
            path: Some(spec["nonResourceAttributes"]["path"].as_str().unwrap_or_default().to_string()),
            ..Attributes::default()
        }
    };
    let allowed = !shared.rbac || rbac::allowed(&shared.store(), user, &attrs);
    json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": allowed},
    })
}

fn event_line(kind: &str, object: &Value) -> Result<Frame<Bytes>, Infallible> {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Ok(Frame::data(Bytes::from(line)))
}

fn watch(
    shared: &Arc<Shared>,
    rt: &ResourceType,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let opts = list_options(rt, query)?;
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = query.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let requested = query.get("resourceVersion").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(256);
    let store = shared.store();
    let mut receiver = store.events.subscribe();
    let mut initial: Vec<(String, Value)> = Vec::new();
    let mut expired: Option<ApiError> = None;
    let start_rv;
    if requested.is_empty() || requested == "0" || send_initial {
        let list = store.list(rt, namespace.as_deref(), &ListOptions { limit: 0, continue_token: None, ..opts.clone() })?;
        for item in list["items"].as_array().into_iter().flatten() {
            initial.push(("ADDED".into(), item.clone()));
        }
        start_rv = store.current_rv();
        if send_initial && bookmarks {
            initial.push((
                "BOOKMARK".into(),
                json!({
                    "kind": rt.kind, "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": start_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
                }),
            ));
        }
    } else {
        let rv: u64 = requested
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {requested}")))?;
        start_rv = rv.min(store.current_rv());
        match store.events_since(rv) {
            Ok(events) => {
                for e in events {
                    if let Some(kind) = event_kind_for_watch(&e, rt, namespace.as_deref(), &opts) {
                        initial.push((kind.to_string(), render_event_object(rt, &e.object)));
                    }
                }
            }
            Err(e) => expired = Some(e),
        }
    }
    let last_rv = start_rv.max(initial.iter().filter_map(|(_, o)| o["metadata"]["resourceVersion"].as_str()?.parse().ok()).max().unwrap_or(0));
    drop(store);
    let rt = rt.clone();
    tokio::spawn(async move {
        if let Some(error) = expired {
            let _ = tx.send(event_line("ERROR", &error.to_status())).await;
            return;
        }
        for (kind, object) in initial {
            if tx.send(event_line(&kind, &object)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut last_rv = last_rv;
        loop {
            let next = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(10)),
                receiver.recv(),
            )
            .await;
            match next {
                Ok(Ok(event)) => {
                    if event.rv <= last_rv {
                        continue;
                    }
                    last_rv = event.rv;
                    if let Some(kind) = event_kind_for_watch(&event, &rt, namespace.as_deref(), &opts)
                        && tx.send(event_line(kind, &render_event_object(&rt, &event.object))).await.is_err()
                    {
                        return;
                    }
                }
                // Too slow to keep up: end the stream; clients resume from their last version.
                Ok(Err(_)) => return,
                Err(_) => {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                    if bookmarks {
                        let bookmark = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                        if tx.send(event_line("BOOKMARK", &bookmark)).await.is_err() {
                            return;
                        }
                    } else if tx.is_closed() {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn render_event_object(rt: &ResourceType, object: &Value) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!(rt.api_version());
    out["kind"] = json!(rt.kind);
    out
}

/// The event type a filtered watch sees: like the real watch cache, an update that makes an
/// object start matching the selectors is ADDED and one that makes it stop matching is DELETED.
fn event_kind_for_watch(
    event: &WatchEvent,
    rt: &ResourceType,
    namespace: Option<&str>,
    opts: &ListOptions,
) -> Option<&'static str> {
    if event.storage.0 != rt.group || event.storage.1 != rt.plural {
        return None;
    }
    let now = Store::matches(&event.object, namespace, opts);
    let before = event
        .previous
        .as_ref()
        .is_some_and(|p| Store::matches(p, namespace, opts));
    match (event.kind, before, now) {
        ("MODIFIED", false, true) => Some("ADDED"),
        ("MODIFIED", true, false) => Some("DELETED"),
        ("MODIFIED", false, false) => None,
        (kind, _, true) => Some(kind),
        _ => None,
    }
}
