//! The object store: one global resourceVersion counter (like etcd), a bounded event history
//! for watches, write-time admission (defaults, validation), deletion, and garbage collection.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

use crate::patch::{self, ApplyOutcome};
use crate::resources::{ResourceType, builtin_types, types_from_crd};
use crate::schema;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, FieldError};

/// Where an object lives: (group, plural, namespace, name).
pub type ObjectKey = (String, String, String, String);

/// One change, as watches replay it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// Group and plural of the object.
    pub storage: (String, String),
    /// The object after the change (before it, for deletes, with the new resourceVersion).
    pub object: Value,
    /// The object before the change, for MODIFIED (so selector watches can turn it into ADDED/DELETED).
    pub previous: Option<Value>,
}

/// Deletion propagation policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Propagation {
    /// Delete now; the garbage collector removes dependents afterwards.
    Background,
    /// Keep the owner (with `foregroundDeletion`) until its dependents are gone.
    Foreground,
    /// Strip owner references from dependents (`orphan` finalizer).
    Orphan,
}

/// The in-memory cluster state.
pub struct Store {
    rv: u64,
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Arc<WatchEvent>>,
    history_capacity: usize,
    /// Every event with rv greater than this is in `history`.
    history_floor: u64,
    /// Where watches hear about new events.
    pub events: broadcast::Sender<Arc<WatchEvent>>,
    builtins: Vec<ResourceType>,
    /// The uid of every stored object, so owner lookups do not scan the store.
    uids: HashSet<String>,
    /// Whether a write since the last collection may have given the garbage
    /// collector work: something was erased, is being deleted, names only
    /// absent owners, or is a CRD. Without it every write would scan the whole
    /// store, and N writes would cost O(N²) (felt at thousands of objects).
    gc_pending: bool,
}

/// Current time as the API server renders `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID (version 4), as used for `metadata.uid`.
pub fn random_uid() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| match i {
            6 => format!("{:02x}", (b & 0x0f) | 0x40),
            8 => format!("{:02x}", (b & 0x3f) | 0x80),
            _ => format!("{b:02x}"),
        })
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn generate_name_suffix() -> String {
    // The alphabet of apimachinery's `utilrand.String` (no vowels, no confusable characters).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
/// The largest Secret or ConfigMap payload kube-apiserver accepts (1 MiB).
const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns_subdomain(p)) && !name.is_empty() && is_label_value(name)
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Label and annotation checks every kind gets (`ValidateObjectMeta`).
fn validate_metadata(object: &Value, errors: &mut Vec<FieldError>) {
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                errors.push(FieldError::invalid("metadata.labels", &json!(key), QUALIFIED_NAME_MSG));
            }
            let text = value.as_str().unwrap_or_default();
            if !is_label_value(text) {
                errors.push(FieldError::invalid("metadata.labels", value, LABEL_VALUE_MSG));
            }
        }
    }
    if let Some(annotations) = object["metadata"]["annotations"].as_object() {
        for key in annotations.keys() {
            if !is_qualified_name(key) {
                errors.push(FieldError::invalid("metadata.annotations", &json!(key), QUALIFIED_NAME_MSG));
            }
        }
    }
}

/// Key and size checks of Secret and ConfigMap payloads.
fn validate_payload(object: &Value, fields: &[&str], errors: &mut Vec<FieldError>) {
    let mut total = 0usize;
    for field in fields {
        if let Some(map) = object[*field].as_object() {
            for (key, value) in map {
                if !is_config_key(key) {
                    errors.push(FieldError::invalid(&format!("{field}[{key}]"), &json!(key), CONFIG_KEY_MSG));
                }
                total += key.len() + value.as_str().map(str::len).unwrap_or_default() * 3 / 4;
            }
        }
    }
    if total > MAX_PAYLOAD_BYTES {
        errors.push(FieldError {
            reason: "FieldValueTooLong",
            field: fields[0].to_string(),
            message: format!("Too long: must have at most {MAX_PAYLOAD_BYTES} bytes"),
        });
    }
}

/// Keys each built-in Secret type must carry, as kube-apiserver's `ValidateSecret`
/// (`pkg/apis/core/validation/validation.go`) checks them: presence for basic-auth and TLS,
/// a non-empty value for ssh-auth, and well-formed JSON for the two docker config types.
fn validate_secret_type(object: &Value, errors: &mut Vec<FieldError>) {
    use base64::Engine;
    let data = object["data"].as_object();
    let has = |key: &str| data.is_some_and(|d| d.contains_key(key));
    let decoded = |key: &str| -> Option<Vec<u8>> {
        let text = data?.get(key)?.as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    };
    let required = |key: &str| FieldError::required(&format!("data[{key}]"), "");
    let json_config = |key: &str, errors: &mut Vec<FieldError>| {
        if !has(key) {
            errors.push(required(key));
            return;
        }
        let bytes = decoded(key).unwrap_or_default();
        if let Err(e) = serde_json::from_slice::<Option<serde_json::Map<String, Value>>>(&bytes) {
            errors.push(FieldError::invalid(&format!("data[{key}]"), &json!("<secret contents redacted>"), &e.to_string()));
        }
    };
    match object["type"].as_str().unwrap_or("Opaque") {
        "kubernetes.io/dockercfg" => json_config(".dockercfg", errors),
        "kubernetes.io/dockerconfigjson" => json_config(".dockerconfigjson", errors),
        // Either may be empty, but one of the two keys must be present.
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errors.push(required("username"));
            errors.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if decoded("ssh-privatekey").unwrap_or_default().is_empty() => {
            errors.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errors.push(required(key));
                }
            }
        }
        _ => {}
    }
}

/// Immutable Secrets and ConfigMaps (`immutable: true`) keep their payload and stay immutable.
fn validate_immutability(old: &Value, new: &Value, fields: &[&str], errors: &mut Vec<FieldError>) {
    if old["immutable"].as_bool() != Some(true) {
        return;
    }
    for field in fields {
        if old[*field] != new[*field] {
            errors.push(FieldError::forbidden(field, "field is immutable when `immutable` is set"));
        }
    }
    if new["immutable"].as_bool() != Some(true) {
        errors.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

fn set_finalizers(object: &mut Value, list: &[String]) {
    if list.is_empty() {
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        object["metadata"]["finalizers"] = json!(list);
    }
}

/// The content that bumps `metadata.generation` when it changes.
fn generation_content(object: &Value, status_is_separate: bool) -> Value {
    let mut copy = object.clone();
    if let Some(m) = copy.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_is_separate {
            m.remove("status");
        }
    }
    copy
}

/// Everything but resourceVersion and managedFields timestamps, for no-op detection.
fn comparable(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    copy
}

/// Options of a list or watch.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size; 0 means everything.
    pub limit: usize,
    /// Continue token from a previous page.
    pub continue_token: Option<String>,
}

impl Store {
    /// An empty store with the built-in namespaces and a bounded watch history.
    pub fn new(history_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        let mut store = Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_capacity,
            history_floor: 0,
            events,
            builtins: builtin_types(),
            uids: HashSet::new(),
            gc_pending: false,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = store.builtins[0].clone();
            let _ = store.create(&rt, "", json!({"metadata": {"name": ns}}), "kube-apiserver");
        }
        store
    }

    /// A private copy for `dryRun=All` writes: same objects and counter, its own (unwatched) events.
    pub fn dry_run_copy(&self) -> Store {
        let (events, _) = broadcast::channel(16);
        Store {
            rv: self.rv,
            objects: self.objects.clone(),
            history: VecDeque::new(),
            history_capacity: 1,
            history_floor: self.rv,
            events,
            builtins: self.builtins.clone(),
            uids: self.uids.clone(),
            gc_pending: self.gc_pending,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Every served type: built-ins and established CRDs.
    pub fn all_types(&self) -> Vec<ResourceType> {
        let mut out = self.builtins.clone();
        let start: ObjectKey = (
            "apiextensions.k8s.io".into(),
            "customresourcedefinitions".into(),
            String::new(),
            String::new(),
        );
        for (key, crd) in self.objects.range(start..) {
            if key.0 != "apiextensions.k8s.io" || key.1 != "customresourcedefinitions" {
                break;
            }
            out.extend(types_from_crd(crd));
        }
        out
    }

    /// Finds a served type by group, version and plural.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.all_types()
            .into_iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> ObjectKey {
        let ns = if rt.namespaced { ns } else { "" };
        (rt.group.clone(), rt.plural.clone(), ns.to_string(), name.to_string())
    }

    fn render(rt: &ResourceType, object: &Value) -> Value {
        let mut out = object.clone();
        out["apiVersion"] = json!(rt.api_version());
        out["kind"] = json!(rt.kind);
        out
    }

    fn record(&mut self, kind: &'static str, key: &ObjectKey, object: Value, previous: Option<Value>) {
        let event = Arc::new(WatchEvent {
            rv: self.rv,
            kind,
            storage: (key.0.clone(), key.1.clone()),
            object,
            previous,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_capacity {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        let _ = self.events.send(event);
    }

    fn commit(&mut self, key: ObjectKey, mut object: Value, kind: &'static str) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.uids.insert(meta_str(&object, "uid").to_string());
        let owners_gone = object["metadata"]["ownerReferences"].as_array().is_some_and(|refs| {
            !refs.is_empty() && refs.iter().all(|r| !self.uids.contains(r["uid"].as_str().unwrap_or_default()))
        });
        if owners_gone || object["metadata"].get("deletionTimestamp").is_some() || key.0 == "apiextensions.k8s.io" {
            self.gc_pending = true;
        }
        let previous = self.objects.insert(key.clone(), object.clone());
        self.record(kind, &key, object.clone(), previous);
        object
    }

    fn erase(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.uids.remove(meta_str(&object, "uid"));
        // Its dependents, its namespace's deletion or its custom resources may now be collectable.
        self.gc_pending = true;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record("DELETED", key, object.clone(), None);
        Some(object)
    }

    /// Events after `rv` still in the history, or 410 when `rv` is older than the history.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<WatchEvent>>, ApiError> {
        if rv < self.history_floor {
            return Err(ApiError::expired(rv, self.history_floor + 1));
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| Self::render(rt, o))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Whether an object of this type matches a namespace filter and selectors.
    pub fn matches(object: &Value, ns: Option<&str>, opts: &ListOptions) -> bool {
        ns.is_none_or(|ns| meta_str(object, "namespace") == ns)
            && opts.labels.matches(object)
            && opts.fields.matches(object)
    }

    /// Lists objects, paginated with `limit`/`continue`.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>, opts: &ListOptions) -> Result<Value, ApiError> {
        let start_after: Option<(String, String)> = match &opts.continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last_key = None;
        for (key, object) in self.of_type(&rt.group, &rt.plural) {
            if let Some((sns, sname)) = &start_after
                && (&key.2, &key.3) <= (sns, sname)
            {
                continue;
            }
            if !Self::matches(object, ns, opts) {
                continue;
            }
            if opts.limit > 0 && items.len() >= opts.limit {
                remaining += 1;
                continue;
            }
            last_key = Some((key.2.clone(), key.3.clone()));
            items.push(Self::render(rt, object));
        }
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if remaining > 0
            && let Some((lns, lname)) = last_key
        {
            metadata["continue"] = json!(encode_continue(&lns, &lname, self.rv));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": metadata,
            "items": items,
        }))
    }

    fn require_namespace(&self, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let namespaces = &self.builtins[0];
        match self.objects.get(&Self::key(namespaces, "", ns)) {
            None => Err(ApiError::not_found(namespaces, ns)),
            Some(n) if n["metadata"].get("deletionTimestamp").is_some() => {
                Err(ApiError::forbidden_plain(
                    rt,
                    "",
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Defaulting, conversion of write-only fields, and validation of an object about to be stored.
    fn admit(&self, rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
        let name = meta_str(object, "name").to_string();
        let mut errors = Vec::new();
        if rt.group == "rbac.authorization.k8s.io" {
            // RBAC names are path segments (`ValidateRBACName`), so `system:discovery` is valid.
            for (bad, msg) in [(".", "may not be '.'"), ("..", "may not be '..'")] {
                if name == bad {
                    errors.push(FieldError::invalid("metadata.name", &json!(name), msg));
                }
            }
            for part in ["/", "%"] {
                if name.contains(part) {
                    errors.push(FieldError::invalid("metadata.name", &json!(name), &format!("may not contain '{part}'")));
                }
            }
        } else {
            let name_ok = if rt.kind == "Namespace" { is_dns_label(&name) } else { is_dns_subdomain(&name) };
            if !name_ok {
                let msg = if rt.kind == "Namespace" { DNS1123_LABEL_MSG } else { DNS1123_SUBDOMAIN_MSG };
                errors.push(FieldError::invalid("metadata.name", &json!(name), msg));
            }
        }
        validate_metadata(object, &mut errors);
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "ConfigMap") => validate_payload(object, &["data", "binaryData"], &mut errors),
            ("", "Secret") => {
                if let Some(Value::Object(string_data)) =
                    object.as_object_mut().and_then(|m| m.remove("stringData"))
                {
                    use base64::Engine;
                    for (k, v) in string_data {
                        let text = v.as_str().unwrap_or_default();
                        object["data"][k] =
                            json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
                if object.get("type").is_none() {
                    object["type"] = json!("Opaque");
                }
                validate_payload(object, &["data"], &mut errors);
                validate_secret_type(object, &mut errors);
            }
            ("", "Namespace") => {
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                if object["spec"]["finalizers"].is_null() {
                    object["spec"]["finalizers"] = json!(["kubernetes"]);
                }
                if object["status"]["phase"].is_null() {
                    object["status"]["phase"] = json!("Active");
                }
            }
            ("apiextensions.k8s.io", _) => admit_crd(object, &name, &mut errors),
            _ => {}
        }
        if rt.custom
            && let Some(schema_root) = &rt.schema
        {
            schema::prune(object, schema_root, true);
            schema::apply_defaults(object, schema_root);
            schema::validate(object, schema_root, "", &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(rt, &name, &errors))
        }
    }

    /// Creates an object (`generateName` honoured), recording `manager` as its Update manager.
    pub fn create(&mut self, rt: &ResourceType, ns: &str, mut object: Value, manager: &str) -> Result<Value, ApiError> {
        self.create_with(rt, ns, &mut object, Some(manager))
    }

    fn create_with(&mut self, rt: &ResourceType, ns: &str, object: &mut Value, manager: Option<&str>) -> Result<Value, ApiError> {
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let body_ns = meta_str(object, "namespace").to_string();
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            object["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if meta_str(object, "name").is_empty() {
            let prefix = meta_str(object, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[FieldError::required("metadata.name", "name or generateName is required")],
                ));
            }
            object["metadata"]["name"] = json!(format!("{prefix}{}", generate_name_suffix()));
        }
        self.require_namespace(rt, ns)?;
        let name = meta_str(object, "name").to_string();
        if rt.status_subresource && rt.custom
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        self.admit(rt, object)?;
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        let meta = object["metadata"].as_object_mut().ok_or_else(|| ApiError::internal("metadata is not an object"))?;
        meta.insert("uid".into(), json!(random_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("resourceVersion");
        if rt.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if let Some(manager) = manager {
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            patch::record_update(None, object, manager, &rt.api_version(), "", &now_rfc3339(), !rt.status_subresource);
        }
        let stored = self.commit(key, Self::render(rt, object), "ADDED");
        self.collect_garbage();
        Ok(Self::render(rt, &stored))
    }

    /// Replaces an object (PUT), on the main resource or its `status` subresource.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        new: Value,
        manager: &str,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        self.write(rt, ns, name, new, Some(manager), subresource)
    }

    /// Patches an object with a JSON, merge or strategic-merge patch.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        manager: &str,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        let current = self.get(rt, ns, name)?;
        let parse = |b: &[u8]| -> Result<Value, ApiError> {
            serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let mut patched = current.clone();
        match content_type {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                json_patch::patch(&mut patched, &ops).map_err(|e| {
                    ApiError::new_invalid_patch(format!("the server rejected our request due to an error in our request: {e}"))
                })?;
            }
            "application/merge-patch+json" => json_patch::merge(&mut patched, &parse(body)?),
            "application/strategic-merge-patch+json" => {
                if rt.custom {
                    return Err(ApiError::unsupported_media_type(content_type));
                }
                patch::strategic_merge(&mut patched, &parse(body)?);
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        // A patch only carries a precondition when it sets resourceVersion itself.
        let patch_sets_rv = patched["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"];
        if !patch_sets_rv && let Some(m) = patched["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        self.write(rt, ns, name, patched, Some(manager), subresource)
    }

    /// Server-side apply.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: &[u8],
        manager: &str,
        force: bool,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        let config: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request("apply patch must be an object"));
        }
        let config_name = meta_str(&config, "name");
        if config_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        if config["apiVersion"].as_str() != Some(&rt.api_version()) || config["kind"].as_str() != Some(&rt.kind) {
            return Err(ApiError::bad_request(format!(
                "apply patch must set apiVersion {} and kind {}",
                rt.api_version(),
                rt.kind
            )));
        }
        let live = self.get(rt, ns, name).ok();
        let include_status = subresource == "status" || !rt.status_subresource;
        let mut config = config;
        if let Some(m) = config.as_object_mut() {
            if !include_status {
                m.remove("status");
            }
            // An apply to /status manages status only; other fields are reset like the real server.
            if subresource == "status" {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            }
        }
        let outcome = patch::apply(
            live.as_ref(),
            &config,
            manager,
            force,
            &rt.api_version(),
            subresource,
            &now_rfc3339(),
            include_status,
        );
        match outcome {
            ApplyOutcome::Conflicts(conflicts) => Err(conflict_error(&conflicts)),
            ApplyOutcome::Merged(mut merged) => {
                if live.is_none() {
                    merged["metadata"]["name"] = json!(name);
                    return self.create_with(rt, ns, &mut merged, None);
                }
                let rv_in_config = config["metadata"].get("resourceVersion").is_some();
                if !rv_in_config && let Some(m) = merged["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                self.write(rt, ns, name, merged, None, subresource)
            }
        }
    }

    /// The common path of every write to an existing object.
    fn write(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut new: Value,
        manager: Option<&str>,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        let key = Self::key(rt, ns, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(rt, name))?;
        if !new.is_object() || !new["metadata"].is_object() {
            return Err(ApiError::bad_request("the object must have metadata"));
        }
        let body_name = meta_str(&new, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(rt, name));
        }
        // System-owned metadata is never taken from the request.
        for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace"] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        new["metadata"]["name"] = json!(name);
        if subresource == "status" {
            let mut status_only = old.clone();
            match new.get("status") {
                Some(s) => status_only["status"] = s.clone(),
                None => {
                    if let Some(m) = status_only.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = new["metadata"].get("managedFields") {
                status_only["metadata"]["managedFields"] = mf.clone();
            }
            new = status_only;
        } else if rt.status_subresource {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        self.admit(rt, &mut new)?;
        if rt.group.is_empty() && (rt.kind == "Secret" || rt.kind == "ConfigMap") {
            let mut errors = Vec::new();
            let fields: &[&str] = if rt.kind == "Secret" { &["data"] } else { &["data", "binaryData"] };
            validate_immutability(&old, &new, fields, &mut errors);
            if rt.kind == "Secret" && old["type"] != new["type"] {
                errors.push(FieldError::invalid("type", &new["type"], "field is immutable"));
            }
            if !errors.is_empty() {
                return Err(ApiError::invalid(rt, name, &errors));
            }
        }
        if rt.tracks_generation()
            && generation_content(&old, rt.status_subresource) != generation_content(&new, rt.status_subresource)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if let Some(manager) = manager {
            patch::record_update(
                Some(&old),
                &mut new,
                manager,
                &rt.api_version(),
                subresource,
                &now_rfc3339(),
                subresource == "status" || !rt.status_subresource,
            );
        }
        let new = Self::render(rt, &new);
        if comparable(&new) == comparable(&Self::render(rt, &old)) {
            return Ok(Self::render(rt, &old));
        }
        if old["metadata"].get("deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            let gone = self.erase(&key).unwrap_or(new);
            self.collect_garbage();
            return Ok(Self::render(rt, &gone));
        }
        let stored = self.commit(key, new, "MODIFIED");
        self.collect_garbage();
        Ok(Self::render(rt, &stored))
    }

    /// Deletes an object: at once, or by setting `deletionTimestamp` while finalizers remain.
    /// Returns the object when it still exists, or `None` when it is gone.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Option<Propagation>,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
    ) -> Result<(Value, bool), ApiError> {
        let key = Self::key(rt, ns, name);
        let object = self.objects.get(&key).cloned().ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = precondition_uid
            && uid != meta_str(&object, "uid")
        {
            return Err(ApiError::conflict_precondition(
                rt,
                name,
                format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(&object, "uid")),
            ));
        }
        if let Some(rv) = precondition_rv
            && rv != meta_str(&object, "resourceVersion")
        {
            return Err(ApiError::conflict_precondition(
                rt,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&object, "resourceVersion")
                ),
            ));
        }
        let result = self.delete_key(&key, rt, propagation.unwrap_or(Propagation::Background));
        self.collect_garbage();
        Ok(match result {
            Some(still_there) => (Self::render(rt, &still_there), true),
            None => (Self::render(rt, &object), false),
        })
    }

    /// Deletes by key; returns the object if it remains (finalizers), `None` if erased.
    fn delete_key(&mut self, key: &ObjectKey, rt: &ResourceType, propagation: Propagation) -> Option<Value> {
        let mut object = self.objects.get(key).cloned()?;
        let mut list = finalizers(&object);
        let extra = match propagation {
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Orphan => Some("orphan"),
            Propagation::Background => None,
        };
        let deleting = object["metadata"].get("deletionTimestamp").is_some();
        if let Some(extra) = extra
            && !deleting
            && !list.iter().any(|f| f == extra)
        {
            list.push(extra.to_string());
        }
        let namespace_with_content = rt.kind == "Namespace" && rt.group.is_empty();
        if list.is_empty() && !namespace_with_content {
            return self.erase(key).and(None);
        }
        if deleting {
            return Some(object);
        }
        set_finalizers(&mut object, &list);
        object["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if rt.tracks_generation() {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        if namespace_with_content {
            object["status"]["phase"] = json!("Terminating");
        }
        Some(self.commit(key.clone(), object, "MODIFIED"))
    }

    fn type_for_key(&self, types: &[ResourceType], key: &ObjectKey) -> Option<ResourceType> {
        types.iter().find(|t| t.group == key.0 && t.plural == key.1).cloned()
    }

    /// The garbage collector and namespace/CRD cleanup, run to a fixed point after every write
    /// that may have given it work (`gc_pending`).
    /// Real clusters do this asynchronously; callers observe it by polling either way.
    pub fn collect_garbage(&mut self) {
        if !self.gc_pending {
            return;
        }
        for _ in 0..64 {
            if !self.collect_once() {
                self.gc_pending = false;
                return;
            }
        }
    }

    fn collect_once(&mut self) -> bool {
        let types = self.all_types();
        let is_served = |key: &ObjectKey| types.iter().any(|t| t.group == key.0 && t.plural == key.1);
        // This runs after every write, so it must not copy the store: only
        // objects with work to do (deleting, type gone, every owner gone)
        // become candidates, and nothing is cloned for the rest.
        let candidates: Vec<ObjectKey> = {
            let uids = &self.uids;
            self.objects
                .iter()
                .filter(|(key, object)| {
                    let orphaned = object["metadata"]["ownerReferences"].as_array().is_some_and(|refs| {
                        !refs.is_empty() && refs.iter().all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                    });
                    object["metadata"].get("deletionTimestamp").is_some() || orphaned || !is_served(key)
                })
                .map(|(key, _)| key.clone())
                .collect()
        };
        for key in candidates {
            let Some(object) = self.objects.get(&key).cloned() else {
                continue;
            };
            // Custom resources whose CRD is gone.
            if !is_served(&key) {
                self.erase(&key);
                return true;
            }
            let Some(rt) = self.type_for_key(&types, &key) else {
                continue;
            };
            let uid = meta_str(&object, "uid").to_string();
            let deleting = object["metadata"].get("deletionTimestamp").is_some();
            let dependents: Vec<ObjectKey> = if deleting { self.dependents_of(&uid) } else { Vec::new() };
            let list = finalizers(&object);
            if deleting && list.iter().any(|f| f == "orphan") {
                for dep in &dependents {
                    if let Some(mut d) = self.objects.get(dep).cloned() {
                        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"] != json!(uid));
                            if refs.is_empty()
                                && let Some(m) = d["metadata"].as_object_mut()
                            {
                                m.remove("ownerReferences");
                            }
                        }
                        self.commit(dep.clone(), d, "MODIFIED");
                    }
                }
                return self.drop_finalizer(&key, object, "orphan");
            }
            if deleting && list.iter().any(|f| f == "foregroundDeletion") {
                if dependents.is_empty() {
                    return self.drop_finalizer(&key, object, "foregroundDeletion");
                }
                let mut changed = false;
                for dep in &dependents {
                    let dep_deleting = self
                        .objects
                        .get(dep)
                        .is_some_and(|d| d["metadata"].get("deletionTimestamp").is_some());
                    if !dep_deleting && let Some(dep_rt) = self.type_for_key(&types, dep) {
                        self.delete_key(dep, &dep_rt, Propagation::Foreground);
                        changed = true;
                    }
                }
                if changed {
                    return true;
                }
                continue;
            }
            // Namespaces: delete their content, then the namespace itself.
            if deleting && rt.kind == "Namespace" && rt.group.is_empty() {
                let content: Vec<ObjectKey> = self
                    .objects
                    .keys()
                    .filter(|k| !k.2.is_empty() && k.2 == key.3)
                    .cloned()
                    .collect();
                if content.is_empty() {
                    if list.is_empty() {
                        self.erase(&key);
                        return true;
                    }
                    continue;
                }
                let mut changed = false;
                for k in content {
                    let pending = self
                        .objects
                        .get(&k)
                        .is_some_and(|d| d["metadata"].get("deletionTimestamp").is_some());
                    if !pending && let Some(t) = self.type_for_key(&types, &k) {
                        self.delete_key(&k, &t, Propagation::Background);
                        changed = true;
                    }
                }
                if changed {
                    return true;
                }
                continue;
            }
            // Background collection: every owner is gone.
            if let Some(refs) = object["metadata"]["ownerReferences"].as_array()
                && !refs.is_empty()
                && refs
                    .iter()
                    .all(|r| !self.uid_exists(r["uid"].as_str().unwrap_or_default()))
                && !deleting
            {
                self.delete_key(&key, &rt, Propagation::Background);
                return true;
            }
        }
        false
    }

    /// Objects with an owner reference to `uid`.
    fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.objects
            .iter()
            .filter(|(_, object)| {
                object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains(uid)
    }

    fn drop_finalizer(&mut self, key: &ObjectKey, mut object: Value, finalizer: &str) -> bool {
        let mut list = finalizers(&object);
        list.retain(|f| f != finalizer);
        set_finalizers(&mut object, &list);
        if list.is_empty() {
            self.erase(key);
        } else {
            self.commit(key.clone(), object, "MODIFIED");
        }
        true
    }

    /// All objects (for RBAC evaluation), filtered by group and plural.
    pub fn objects_of(&self, group: &str, plural: &str) -> Vec<&Value> {
        self.of_type(group, plural).map(|(_, v)| v).collect()
    }

    /// The objects of one type, in key order, read as a range of the map
    /// (keys sort by group and plural first) rather than a scan of it.
    fn of_type<'a>(&'a self, group: &str, plural: &str) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + use<'a> {
        let (group, plural) = (group.to_string(), plural.to_string());
        self.objects
            .range((group.clone(), plural.clone(), String::new(), String::new())..)
            .take_while(move |(k, _)| k.0 == group && k.1 == plural)
    }
}

fn admit_crd(object: &mut Value, name: &str, errors: &mut Vec<FieldError>) {
    let group = object["spec"]["group"].as_str().unwrap_or_default().to_string();
    let plural = object["spec"]["names"]["plural"].as_str().unwrap_or_default().to_string();
    if plural.is_empty() {
        errors.push(FieldError::required("spec.names.plural", ""));
    }
    if object["spec"]["names"]["kind"].as_str().unwrap_or_default().is_empty() {
        errors.push(FieldError::required("spec.names.kind", ""));
    }
    if format!("{plural}.{group}") != name {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = object["spec"]["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::required("spec.versions", "must have exactly one version marked as storage version"));
    }
    let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
    if !versions.is_empty() && storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            &json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut names = object["spec"]["names"].clone();
    if names["singular"].is_null() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if names["listKind"].is_null() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or_default()));
    }
    let now = now_rfc3339();
    let condition = |kind: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message})
    };
    object["status"] = json!({
        "acceptedNames": names,
        "storedVersions": versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
    if object["spec"]["scope"].is_null() {
        object["spec"]["scope"] = json!("Namespaced");
    }
}

fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
        .collect();
    let message = if let [(manager, path)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager.entry(m).or_default().push(p);
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    ApiError::apply_conflict(message, causes)
}

fn encode_continue(ns: &str, name: &str, rv: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"ns": ns, "name": name, "rv": rv}).to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}
