//! `secretbridge-controller convert`: External Secrets Operator manifests in,
//! secretbridge manifests out.
//!
//! Reads `external-secrets.io/v1alpha1`, `v1beta1` and `v1` SecretStores,
//! ClusterSecretStores and ExternalSecrets (multi-document YAML) and writes the
//! same objects as `secretbridge.io/v1`. Every field is either mapped one to
//! one, renamed to its v1 form (v1alpha1 `dataFrom: [{key}]` becomes
//! `dataFrom: [{extract: {key}}]`), accepted because it only restates the
//! default (`conversionStrategy: Default`, `engineVersion: v2`), or reported
//! with its path. Nothing is dropped silently; the only things left out are
//! what the API server writes (`status`, `metadata.uid`, `resourceVersion`,
//! ...), which is observed state, not configuration. Documents of other API
//! groups (a ServiceAccount, a Namespace) pass through unchanged, so a whole
//! manifest can be piped through `convert` into `kubectl apply -f -`.
//!
//! Each converted object is deserialized into the `secretbridge-shared` type
//! of its kind before it is written, so a value the CRD cannot represent (an
//! unknown `service`, a bad `creationPolicy`) is caught here and not by the
//! API server later.

use secretbridge_shared::{ClusterSecretStore, ExternalSecret, SecretStore};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;

/// The ESO API group.
pub const ESO_GROUP: &str = "external-secrets.io";

/// The ESO API versions `convert` reads.
pub const ESO_VERSIONS: &[&str] = &["v1alpha1", "v1beta1", "v1"];

/// Metadata fields the API server writes; they describe one stored object and
/// mean nothing in a manifest for another cluster, so they are left out.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Client bookkeeping annotation that would carry the ESO object into the new one.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One field `convert` cannot carry over: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the field inside the document, e.g. `spec.provider.vault`.
    pub path: String,
    /// Why it cannot be converted and what to do instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The problems of one input document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentProblems {
    /// File name (or `<stdin>`) the document came from.
    pub source: String,
    /// 1-based position of the document in its file.
    pub index: usize,
    /// `Kind namespace/name` when the document says so.
    pub object: String,
    /// Every field that cannot be converted.
    pub problems: Vec<Problem>,
}

impl fmt::Display for DocumentProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{}: document {} ({}): {problem}", self.source, self.index, self.object)?;
        }
        Ok(())
    }
}

/// Why `convert` produced no output.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// An input file could not be read.
    #[error("reading {path} failed (check that the file exists and is readable)")]
    ReadInput {
        /// The file, or `<stdin>`.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// An input document is not valid YAML.
    #[error("{path}: document {index} is not valid YAML: {source}")]
    ParseYaml {
        /// The file, or `<stdin>`.
        path: String,
        /// 1-based document position.
        index: usize,
        /// The parser's error (line and column).
        source: serde_yaml::Error,
    },
    /// Some fields cannot be converted; nothing was written.
    #[error("{}{} field(s) cannot be converted; nothing was written. Remove or rewrite them and run convert again.", render_problems(.0), count_problems(.0))]
    Unsupported(Vec<DocumentProblems>),
    /// A converted object could not be written as YAML.
    #[error("writing the converted YAML failed: {0}")]
    RenderYaml(#[source] serde_yaml::Error),
}

fn render_problems(documents: &[DocumentProblems]) -> String {
    documents.iter().map(ToString::to_string).collect()
}

fn count_problems(documents: &[DocumentProblems]) -> usize {
    documents.iter().map(|d| d.problems.len()).sum()
}

/// Converts one YAML stream (one or more documents) read from `source`.
/// Returns the converted documents in input order, or every problem found.
pub fn convert_stream(source: &str, text: &str) -> Result<Vec<Value>, ConvertError> {
    let mut converted = Vec::new();
    let mut failed = Vec::new();
    for (position, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = position + 1;
        let value = Value::deserialize(document).map_err(|error| ConvertError::ParseYaml {
            path: source.to_string(),
            index,
            source: error,
        })?;
        if value.is_null() {
            continue; // an empty document, e.g. a leading `---` or comments only
        }
        match convert_document(value) {
            Ok(out) => converted.push(out),
            Err((object, problems)) => failed.push(DocumentProblems { source: source.to_string(), index, object, problems }),
        }
    }
    if failed.is_empty() { Ok(converted) } else { Err(ConvertError::Unsupported(failed)) }
}

/// Converts every input (stdin when `files` is empty) and renders the result
/// as one multi-document YAML stream. Any problem in any input fails the whole
/// run, so a partial conversion is never applied by accident.
pub fn convert_inputs(files: &[String]) -> Result<String, ConvertError> {
    let mut inputs = Vec::new();
    if files.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ConvertError::ReadInput { path: "<stdin>".to_string(), source })?;
        inputs.push(("<stdin>".to_string(), text));
    }
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| ConvertError::ReadInput { path: file.clone(), source })?;
        inputs.push((file.clone(), text));
    }
    let mut documents = Vec::new();
    let mut failed = Vec::new();
    for (name, text) in &inputs {
        match convert_stream(name, text) {
            Ok(mut converted) => documents.append(&mut converted),
            Err(ConvertError::Unsupported(mut problems)) => failed.append(&mut problems),
            Err(other) => return Err(other),
        }
    }
    if !failed.is_empty() {
        return Err(ConvertError::Unsupported(failed));
    }
    render_documents(&documents)
}

/// Renders documents as one YAML stream, each preceded by `---`.
pub fn render_documents(documents: &[Value]) -> Result<String, ConvertError> {
    let mut out = String::new();
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(document).map_err(ConvertError::RenderYaml)?);
    }
    Ok(out)
}

/// Usage of the `convert` subcommand.
pub const USAGE: &str = "usage: secretbridge-controller convert [FILE...]

Reads External Secrets Operator manifests (external-secrets.io/v1alpha1, v1beta1
or v1: SecretStore, ClusterSecretStore, ExternalSecret) from the files, or from
stdin when none is given, and writes them as secretbridge.io/v1 manifests to
stdout. Documents of other API groups pass through unchanged. Every field that
cannot be converted is reported on stderr with its path; the command then exits
non-zero and writes nothing.";

/// The `convert` subcommand: arguments after `convert`. Prints the converted
/// stream on success; the error text is for stderr.
pub fn main(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-') && a.as_str() != "-") {
        return Err(format!("convert: unknown option {flag}\n\n{USAGE}"));
    }
    let files: Vec<String> = args.iter().filter(|a| a.as_str() != "-").cloned().collect();
    match convert_inputs(&files) {
        Ok(yaml) => {
            print!("{yaml}");
            Ok(())
        }
        Err(error) => Err(format!("convert: {error}")),
    }
}

/// Collects the problems of one document while its fields are mapped.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem { path: path.to_string(), message: message.into() });
    }

    /// Reports every field left in `object` after the known ones were taken.
    fn leftovers(&mut self, path: &str, object: Map<String, Value>) {
        for key in object.keys() {
            self.add(&join(path, key), "field not supported by secretbridge");
        }
    }

    /// The object at `path`, or a problem when the value is not an object.
    fn object(&mut self, path: &str, value: Value) -> Option<Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            Value::Null => Some(Map::new()),
            other => {
                self.add(path, format!("expected an object, found {}", kind_of(&other)));
                None
            }
        }
    }

    /// The list at `path`, or a problem when the value is not a list.
    fn list(&mut self, path: &str, value: Value) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => {
                self.add(path, format!("expected a list, found {}", kind_of(&other)));
                Vec::new()
            }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Moves the listed fields from `from` to `to` unchanged.
fn copy_fields(from: &mut Map<String, Value>, to: &mut Map<String, Value>, fields: &[&str]) {
    for field in fields {
        if let Some(value) = from.remove(*field) {
            to.insert((*field).to_string(), value);
        }
    }
}

/// Which ESO API version a document uses; the renames depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EsoVersion {
    V1Alpha1,
    V1Beta1,
    V1,
}

/// The three kinds `convert` maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EsoKind {
    SecretStore,
    ClusterSecretStore,
    ExternalSecret,
}

fn describe(document: &Value) -> String {
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("<no kind>");
    let name = document.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<no name>");
    match document.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Converts one parsed document, or returns its description and problems.
fn convert_document(document: Value) -> Result<Value, (String, Vec<Problem>)> {
    let object = describe(&document);
    let api_version = document.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(version) = api_version.strip_prefix(ESO_GROUP).and_then(|rest| rest.strip_prefix('/')) else {
        if api_version.is_empty() {
            return Err((object, vec![Problem { path: "apiVersion".into(), message: "missing; not a Kubernetes manifest".into() }]));
        }
        return Ok(document); // another API group: not ours to change
    };
    let version = match version {
        "v1alpha1" => EsoVersion::V1Alpha1,
        "v1beta1" => EsoVersion::V1Beta1,
        "v1" => EsoVersion::V1,
        other => {
            let message = format!("{ESO_GROUP}/{other} is not supported (supported: {})", ESO_VERSIONS.join(", "));
            return Err((object, vec![Problem { path: "apiVersion".into(), message }]));
        }
    };
    let kind = match document.get("kind").and_then(Value::as_str) {
        Some("SecretStore") => EsoKind::SecretStore,
        Some("ClusterSecretStore") => EsoKind::ClusterSecretStore,
        Some("ExternalSecret") => EsoKind::ExternalSecret,
        other => {
            let message = format!(
                "kind {} is not supported by secretbridge (supported: SecretStore, ClusterSecretStore, ExternalSecret)",
                other.unwrap_or("<missing>")
            );
            return Err((object, vec![Problem { path: "kind".into(), message }]));
        }
    };
    let mut problems = Problems::default();
    let converted = map_document(document, version, kind, &mut problems);
    if !problems.0.is_empty() {
        return Err((object, problems.0));
    }
    // Round-trip through the shared type: values the CRD cannot hold fail here.
    let typed = match kind {
        EsoKind::SecretStore => serde_json::from_value::<SecretStore>(converted).and_then(serde_json::to_value),
        EsoKind::ClusterSecretStore => serde_json::from_value::<ClusterSecretStore>(converted).and_then(serde_json::to_value),
        EsoKind::ExternalSecret => serde_json::from_value::<ExternalSecret>(converted).and_then(serde_json::to_value),
    };
    typed.map_err(|error| {
        let message = format!("the converted object is not a valid secretbridge.io/v1 {kind:?}: {error}");
        (object, vec![Problem { path: "spec".into(), message }])
    })
}

fn map_document(document: Value, version: EsoVersion, kind: EsoKind, problems: &mut Problems) -> Value {
    let Some(mut root) = problems.object("", document) else { return Value::Null };
    root.remove("apiVersion");
    root.remove("kind");
    root.remove("status"); // observed state, rebuilt by the controller
    let metadata = root.remove("metadata").map(|m| map_metadata(m, problems)).unwrap_or_default();
    let spec = match root.remove("spec") {
        Some(spec) => match kind {
            EsoKind::SecretStore | EsoKind::ClusterSecretStore => map_store_spec(spec, kind, problems),
            EsoKind::ExternalSecret => map_external_secret_spec(spec, version, problems),
        },
        None => {
            problems.add("spec", "missing");
            Value::Null
        }
    };
    problems.leftovers("", root);
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(secretbridge_shared::names::API_VERSION.to_string()));
    out.insert("kind".into(), Value::String(format!("{kind:?}")));
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert("spec".into(), spec);
    Value::Object(out)
}

fn map_metadata(metadata: Value, problems: &mut Problems) -> Map<String, Value> {
    let Some(mut from) = problems.object("metadata", metadata) else { return Map::new() };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["name", "namespace", "labels"]);
    if let Some(annotations) = from.remove("annotations")
        && let Some(mut annotations) = problems.object("metadata.annotations", annotations)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if !annotations.is_empty() {
            to.insert("annotations".into(), Value::Object(annotations));
        }
    }
    for field in SERVER_METADATA {
        from.remove(*field);
    }
    problems.leftovers("metadata", from);
    to
}

fn map_store_spec(spec: Value, kind: EsoKind, problems: &mut Problems) -> Value {
    let Some(mut from) = problems.object("spec", spec) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["retrySettings", "refreshInterval"]);
    if kind == EsoKind::ClusterSecretStore {
        copy_fields(&mut from, &mut to, &["conditions"]);
    }
    match from.remove("controller") {
        Some(Value::String(class)) if !class.is_empty() => problems.add(
            "spec.controller",
            format!("controller classes are not supported: the secretbridge controller serves every store (remove {class:?}, or run one controller per namespace with --namespace)"),
        ),
        _ => {}
    }
    match from.remove("provider") {
        Some(provider) => {
            if let Some(provider) = map_provider(provider, problems) {
                to.insert("provider".into(), provider);
            }
        }
        None => problems.add("spec.provider", "missing: a store needs exactly one of aws or gcpsm"),
    }
    problems.leftovers("spec", from);
    Value::Object(to)
}

fn map_provider(provider: Value, problems: &mut Problems) -> Option<Value> {
    let mut from = problems.object("spec.provider", provider)?;
    let mut to = Map::new();
    if let Some(aws) = from.remove("aws") {
        to.insert("aws".into(), map_cloud_provider(aws, &AWS, problems));
    }
    if let Some(gcpsm) = from.remove("gcpsm") {
        to.insert("gcpsm".into(), map_cloud_provider(gcpsm, &GCPSM, problems));
    }
    for name in from.keys() {
        problems.add(&join("spec.provider", name), "provider not supported by secretbridge (supported: aws, gcpsm)");
    }
    if to.len() > 1 {
        problems.add("spec.provider", "sets both aws and gcpsm; a store has exactly one provider");
    }
    Some(Value::Object(to))
}

/// How one cloud provider block maps: plain fields copied as they are, and
/// one workload-identity kind under `auth` (with its plain fields and its
/// `serviceAccountRef`). Static credentials (`auth.secretRef`) are refused
/// with `secret_ref_refusal`.
struct ProviderShape {
    path: &'static str,
    fields: &'static [&'static str],
    identity: &'static str,
    identity_fields: &'static [&'static str],
    secret_ref_refusal: &'static str,
}

const AWS: ProviderShape = ProviderShape {
    path: "spec.provider.aws",
    fields: &["service", "region", "role", "prefix"],
    identity: "jwt",
    identity_fields: &[],
    secret_ref_refusal: "static access keys are not supported; use auth.jwt with an IRSA ServiceAccount (secretbridge_aws_irsa_role)",
};

const GCPSM: ProviderShape = ProviderShape {
    path: "spec.provider.gcpsm",
    fields: &["projectID", "location"],
    identity: "workloadIdentity",
    identity_fields: &["clusterLocation", "clusterName", "clusterProjectID"],
    secret_ref_refusal: "service account keys are not supported; use auth.workloadIdentity (secretbridge_gcp_workload_identity)",
};

fn map_cloud_provider(value: Value, shape: &ProviderShape, problems: &mut Problems) -> Value {
    let path = shape.path;
    let Some(mut from) = problems.object(path, value) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, shape.fields);
    if let Some(auth) = from.remove("auth") {
        let auth_path = join(path, "auth");
        if let Some(mut auth) = problems.object(&auth_path, auth) {
            let mut auth_to = Map::new();
            if let Some(identity) = auth.remove(shape.identity) {
                let identity_path = join(&auth_path, shape.identity);
                if let Some(mut identity) = problems.object(&identity_path, identity) {
                    let mut identity_to = Map::new();
                    copy_fields(&mut identity, &mut identity_to, shape.identity_fields);
                    if let Some(reference) = identity.remove("serviceAccountRef") {
                        identity_to.insert("serviceAccountRef".into(), map_service_account_ref(reference, &join(&identity_path, "serviceAccountRef"), problems));
                    }
                    problems.leftovers(&identity_path, identity);
                    auth_to.insert(shape.identity.into(), Value::Object(identity_to));
                }
            }
            if auth.remove("secretRef").is_some() {
                problems.add(&join(&auth_path, "secretRef"), shape.secret_ref_refusal);
            }
            problems.leftovers(&auth_path, auth);
            to.insert("auth".into(), Value::Object(auth_to));
        }
    }
    problems.leftovers(path, from);
    Value::Object(to)
}

fn map_service_account_ref(reference: Value, path: &str, problems: &mut Problems) -> Value {
    let Some(mut from) = problems.object(path, reference) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["name", "namespace", "audiences"]);
    problems.leftovers(path, from);
    Value::Object(to)
}

fn map_external_secret_spec(spec: Value, version: EsoVersion, problems: &mut Problems) -> Value {
    let Some(mut from) = problems.object("spec", spec) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["refreshInterval", "refreshPolicy"]);
    if let Some(reference) = from.remove("secretStoreRef") {
        let path = "spec.secretStoreRef";
        if let Some(mut reference) = problems.object(path, reference) {
            let mut reference_to = Map::new();
            copy_fields(&mut reference, &mut reference_to, &["name", "kind"]);
            problems.leftovers(path, reference);
            to.insert("secretStoreRef".into(), Value::Object(reference_to));
        }
    }
    if let Some(target) = from.remove("target") {
        to.insert("target".into(), map_target(target, version, problems));
    }
    if let Some(data) = from.remove("data") {
        let mut items = Vec::new();
        for (index, item) in problems.list("spec.data", data).into_iter().enumerate() {
            let path = format!("spec.data[{index}]");
            let Some(mut item) = problems.object(&path, item) else { continue };
            let mut item_to = Map::new();
            copy_fields(&mut item, &mut item_to, &["secretKey"]);
            if let Some(reference) = item.remove("remoteRef") {
                item_to.insert("remoteRef".into(), map_remote_ref(reference, &join(&path, "remoteRef"), problems));
            }
            if item.remove("sourceRef").is_some() {
                problems.add(&join(&path, "sourceRef"), "per-key stores and generators are not supported; split the key into an ExternalSecret of its own store");
            }
            problems.leftovers(&path, item);
            items.push(Value::Object(item_to));
        }
        to.insert("data".into(), Value::Array(items));
    }
    if let Some(data_from) = from.remove("dataFrom") {
        let mut items = Vec::new();
        for (index, item) in problems.list("spec.dataFrom", data_from).into_iter().enumerate() {
            let path = format!("spec.dataFrom[{index}]");
            let Some(item) = problems.object(&path, item) else { continue };
            if let Some(item) = map_data_from(item, &path, version, problems) {
                items.push(item);
            }
        }
        to.insert("dataFrom".into(), Value::Array(items));
    }
    problems.leftovers("spec", from);
    Value::Object(to)
}

fn map_data_from(mut item: Map<String, Value>, path: &str, version: EsoVersion, problems: &mut Problems) -> Option<Value> {
    let mut item_to = Map::new();
    if version == EsoVersion::V1Alpha1 {
        // v1alpha1 wrote the remote reference inline: `dataFrom: [{key: ...}]`.
        item_to.insert("extract".into(), map_remote_ref(Value::Object(item), path, problems));
        return Some(Value::Object(item_to));
    }
    if let Some(extract) = item.remove("extract") {
        item_to.insert("extract".into(), map_remote_ref(extract, &join(path, "extract"), problems));
    }
    if item.remove("find").is_some() {
        problems.add(&join(path, "find"), "finding keys by name or tags is not supported; list the keys in spec.data or spec.dataFrom[].extract");
    }
    if item.remove("rewrite").is_some() {
        problems.add(&join(path, "rewrite"), "key rewrites are not supported; name each key with spec.data[].secretKey, or use target.template.data");
    }
    if item.remove("sourceRef").is_some() {
        problems.add(&join(path, "sourceRef"), "per-entry stores and generators are not supported; use one ExternalSecret per store");
    }
    problems.leftovers(path, item);
    if !item_to.contains_key("extract") {
        return None;
    }
    Some(Value::Object(item_to))
}

fn map_remote_ref(reference: Value, path: &str, problems: &mut Problems) -> Value {
    let Some(mut from) = problems.object(path, reference) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["key", "property", "version", "decodingStrategy"]);
    match from.remove("conversionStrategy") {
        None => {}
        Some(Value::String(s)) if s == "Default" => {}
        Some(other) => problems.add(
            &join(path, "conversionStrategy"),
            format!("{other} is not supported (only Default: keys are used as they are); decode with decodingStrategy or rename with secretKey"),
        ),
    }
    match from.remove("metadataPolicy") {
        None => {}
        Some(Value::String(s)) if s == "None" => {}
        Some(other) => problems.add(
            &join(path, "metadataPolicy"),
            format!("{other} is not supported (only None: secretbridge reads values, not tags or labels)"),
        ),
    }
    problems.leftovers(path, from);
    Value::Object(to)
}

fn map_target(target: Value, version: EsoVersion, problems: &mut Problems) -> Value {
    let path = "spec.target";
    let Some(mut from) = problems.object(path, target) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["name", "creationPolicy", "deletionPolicy", "immutable"]);
    if let Some(template) = from.remove("template") {
        to.insert("template".into(), map_template(template, version, problems));
    }
    problems.leftovers(path, from);
    Value::Object(to)
}

fn map_template(template: Value, version: EsoVersion, problems: &mut Problems) -> Value {
    let path = "spec.target.template";
    let Some(mut from) = problems.object(path, template) else { return Value::Null };
    let mut to = Map::new();
    copy_fields(&mut from, &mut to, &["type", "data"]);
    if let Some(metadata) = from.remove("metadata") {
        let metadata_path = join(path, "metadata");
        if let Some(mut metadata) = problems.object(&metadata_path, metadata) {
            let mut metadata_to = Map::new();
            copy_fields(&mut metadata, &mut metadata_to, &["labels", "annotations"]);
            problems.leftovers(&metadata_path, metadata);
            to.insert("metadata".into(), Value::Object(metadata_to));
        }
    }
    // v1alpha1 defaulted to the v1 engine (`{{ .key | toString }}`), later
    // versions to v2; secretbridge speaks a subset of v2 only.
    let engine = from.remove("engineVersion");
    let engine = engine.as_ref().and_then(Value::as_str).map(str::to_string);
    let has_templates = to.get("data").and_then(Value::as_object).is_some_and(|d| !d.is_empty());
    match (engine.as_deref(), version) {
        (Some("v2"), _) => {}
        (None, EsoVersion::V1Beta1 | EsoVersion::V1) => {}
        (None, EsoVersion::V1Alpha1) if !has_templates => {}
        (engine, _) => problems.add(
            &join(path, "engineVersion"),
            format!(
                "template engine {} is not supported; rewrite the templates in v2 syntax (`{{{{ .key }}}}`) and set engineVersion: v2",
                engine.unwrap_or("v1 (the v1alpha1 default)")
            ),
        ),
    }
    match from.remove("mergePolicy") {
        None => {}
        Some(Value::String(s)) if s == "Replace" => {}
        Some(other) => problems.add(&join(path, "mergePolicy"), format!("{other} is not supported (only Replace)")),
    }
    if from.remove("templateFrom").is_some() {
        problems.add(&join(path, "templateFrom"), "templates from ConfigMaps or Secrets are not supported; inline them in template.data");
    }
    problems.leftovers(path, from);
    Value::Object(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(yaml: &str) -> Result<Vec<Value>, Vec<String>> {
        convert_stream("test.yaml", yaml).map_err(|error| match error {
            ConvertError::Unsupported(documents) => {
                documents.iter().flat_map(|d| d.to_string().lines().map(str::to_string).collect::<Vec<_>>()).collect()
            }
            other => vec![other.to_string()],
        })
    }

    fn one(yaml: &str) -> Value {
        let mut documents = convert(yaml).unwrap_or_else(|problems| panic!("unexpected problems: {problems:#?}"));
        assert_eq!(documents.len(), 1, "{documents:#?}");
        documents.remove(0)
    }

    fn problems(yaml: &str) -> Vec<String> {
        match convert(yaml) {
            Ok(documents) => panic!("expected problems, converted to {documents:#?}"),
            Err(problems) => problems,
        }
    }

    const V1_STORE: &str = r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: aws-parameter-store
  namespace: multicloud
  labels: {team: data}
  uid: 1234
  resourceVersion: "99"
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  refreshInterval: 300
  retrySettings: {maxRetries: 3, retryInterval: 10s}
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      role: arn:aws:iam::123456789012:role/reader
      prefix: /prod/
      auth:
        jwt:
          serviceAccountRef: {name: multicloud-app, audiences: [sts.amazonaws.com]}
status:
  conditions: [{type: Ready, status: "True"}]
"#;

    #[test]
    fn v1_store_maps_one_to_one_and_leaves_out_server_state() {
        let out = one(V1_STORE);
        assert_eq!(out["apiVersion"], "secretbridge.io/v1");
        assert_eq!(out["kind"], "SecretStore");
        assert_eq!(out["metadata"], serde_json::json!({"name": "aws-parameter-store", "namespace": "multicloud", "labels": {"team": "data"}}));
        assert_eq!(out["spec"]["refreshInterval"], 300);
        assert_eq!(out["spec"]["retrySettings"]["retryInterval"], "10s");
        let aws = &out["spec"]["provider"]["aws"];
        assert_eq!(aws["service"], "SecretsManager");
        assert_eq!(aws["role"], "arn:aws:iam::123456789012:role/reader");
        assert_eq!(aws["prefix"], "/prod/");
        assert_eq!(aws["auth"]["jwt"]["serviceAccountRef"]["audiences"][0], "sts.amazonaws.com");
        assert!(out.get("status").is_none());
        let typed: SecretStore = serde_json::from_value(out).expect("valid SecretStore");
        assert_eq!(typed.spec.provider.service_account_ref().map(|r| r.name.as_str()), Some("multicloud-app"));
    }

    #[test]
    fn v1alpha1_external_secret_data_from_key_becomes_extract() {
        let out = one(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: ExternalSecret
metadata: {name: app, namespace: team}
spec:
  secretStoreRef: {name: store}
  target:
    name: app-secret
    template:
      type: kubernetes.io/basic-auth
      metadata: {labels: {app: web}}
  data:
    - secretKey: user
      remoteRef: {key: /app/db, property: user, version: "2", conversionStrategy: Default}
  dataFrom:
    - key: /app/config
      version: "3"
"#,
        );
        assert_eq!(out["spec"]["dataFrom"], serde_json::json!([{"extract": {"key": "/app/config", "version": "3", "decodingStrategy": "None"}}]));
        assert_eq!(out["spec"]["data"][0]["remoteRef"]["property"], "user");
        assert_eq!(out["spec"]["data"][0]["remoteRef"]["version"], "2");
        assert!(out["spec"]["data"][0]["remoteRef"].get("conversionStrategy").is_none());
        assert_eq!(out["spec"]["target"]["template"]["type"], "kubernetes.io/basic-auth");
        // Defaults are written out, so the converted manifest says what it does.
        assert_eq!(out["spec"]["refreshInterval"], "1h");
        assert_eq!(out["spec"]["target"]["creationPolicy"], "Owner");
    }

    #[test]
    fn v1beta1_external_secret_keeps_decoding_and_policies() {
        let out = one(
            r#"
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: app, namespace: team}
spec:
  refreshInterval: 15m
  secretStoreRef: {name: gcp, kind: ClusterSecretStore}
  target:
    creationPolicy: Orphan
    deletionPolicy: Delete
    immutable: true
    template:
      engineVersion: v2
      mergePolicy: Replace
      data: {url: "postgres://{{ .user }}@db"}
  data:
    - secretKey: user
      remoteRef: {key: db-user, decodingStrategy: Base64, metadataPolicy: None}
  dataFrom:
    - extract: {key: db-config, property: nested, decodingStrategy: Auto}
"#,
        );
        let spec = &out["spec"];
        assert_eq!(spec["secretStoreRef"]["kind"], "ClusterSecretStore");
        assert_eq!(spec["target"]["creationPolicy"], "Orphan");
        assert_eq!(spec["target"]["deletionPolicy"], "Delete");
        assert_eq!(spec["target"]["immutable"], true);
        assert_eq!(spec["target"]["template"]["data"]["url"], "postgres://{{ .user }}@db");
        assert_eq!(spec["data"][0]["remoteRef"]["decodingStrategy"], "Base64");
        assert_eq!(spec["dataFrom"][0]["extract"]["property"], "nested");
        assert_eq!(spec["dataFrom"][0]["extract"]["decodingStrategy"], "Auto");
    }

    #[test]
    fn cluster_store_with_conditions_and_workload_identity() {
        let out = one(
            r#"
apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata: {name: gcp}
spec:
  conditions:
    - namespaces: [team-a]
      namespaceRegexes: ["team-.*"]
  provider:
    gcpsm:
      projectID: demo
      location: europe-west1
      auth:
        workloadIdentity:
          clusterLocation: europe-west1
          clusterName: autopilot
          clusterProjectID: demo
          serviceAccountRef: {name: app, namespace: team-a}
"#,
        );
        let typed: ClusterSecretStore = serde_json::from_value(out).expect("valid ClusterSecretStore");
        assert_eq!(typed.spec.conditions[0].namespace_regexes, vec!["team-.*".to_string()]);
        let secretbridge_shared::StoreProvider::Gcpsm(gcp) = &typed.spec.provider else { panic!("gcpsm expected") };
        assert_eq!(gcp.location.as_deref(), Some("europe-west1"));
        let identity = gcp.auth.as_ref().and_then(|a| a.workload_identity.as_ref()).expect("workload identity");
        assert_eq!(identity.cluster_name.as_deref(), Some("autopilot"));
        assert_eq!(identity.service_account_ref.namespace.as_deref(), Some("team-a"));
    }

    #[test]
    fn unsupported_provider_is_reported_with_its_path() {
        let found = problems(
            r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault, namespace: team}
spec:
  provider:
    vault: {server: "https://vault:8200"}
"#,
        );
        assert_eq!(
            found,
            vec!["test.yaml: document 1 (SecretStore team/vault): spec.provider.vault: provider not supported by secretbridge (supported: aws, gcpsm)".to_string()]
        );
    }

    #[test]
    fn every_unsupported_field_is_reported_not_only_the_first() {
        let found = problems(
            r#"
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: app, namespace: team, finalizers: [x]}
spec:
  secretStoreRef: {name: store}
  target:
    template: {engineVersion: v1, data: {a: "{{ .b | toString }}"}, templateFrom: [{configMap: {name: t}}]}
  data:
    - secretKey: a
      remoteRef: {key: k, conversionStrategy: Unicode, metadataPolicy: Fetch, nullBytePolicy: Ignore}
  dataFrom:
    - find: {name: {regexp: ".*"}}
    - extract: {key: k2}
      rewrite: [{regexp: {source: a, target: b}}]
"#,
        );
        let paths: Vec<&str> = found.iter().filter_map(|line| line.split(": ").nth(2)).collect();
        for expected in [
            "metadata.finalizers",
            "spec.target.template.engineVersion",
            "spec.target.template.templateFrom",
            "spec.data[0].remoteRef.conversionStrategy",
            "spec.data[0].remoteRef.metadataPolicy",
            "spec.data[0].remoteRef.nullBytePolicy",
            "spec.dataFrom[0].find",
            "spec.dataFrom[1].rewrite",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {found:#?}");
        }
        assert_eq!(found.len(), 8, "{found:#?}");
    }

    #[test]
    fn static_credentials_and_unknown_aws_fields_are_reported() {
        let found = problems(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: SecretStore
metadata: {name: s, namespace: n}
spec:
  controller: dev
  provider:
    aws:
      service: ParameterStore
      region: eu-west-1
      additionalRoles: [arn:aws:iam::1:role/x]
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: aws, key: id}
"#,
        );
        assert!(found.iter().any(|l| l.contains("spec.controller: controller classes are not supported")), "{found:#?}");
        assert!(found.iter().any(|l| l.contains("spec.provider.aws.additionalRoles: field not supported")), "{found:#?}");
        assert!(found.iter().any(|l| l.contains("spec.provider.aws.auth.secretRef: static access keys")), "{found:#?}");
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn v1alpha1_template_without_engine_version_is_the_v1_engine() {
        let found = problems(
            r#"
apiVersion: external-secrets.io/v1alpha1
kind: ExternalSecret
metadata: {name: app, namespace: team}
spec:
  secretStoreRef: {name: store}
  target: {template: {data: {url: "{{ .user | toString }}"}}}
  data: [{secretKey: user, remoteRef: {key: u}}]
"#,
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("spec.target.template.engineVersion: template engine v1 (the v1alpha1 default)"), "{found:#?}");
    }

    #[test]
    fn values_the_crd_cannot_hold_are_caught_by_the_shared_types() {
        let found = problems(
            r#"
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: s, namespace: n}
spec:
  provider:
    aws: {service: KeyVault, region: eu-west-1}
"#,
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("spec: the converted object is not a valid secretbridge.io/v1 SecretStore"), "{found:#?}");
        assert!(found[0].contains("KeyVault"), "{found:#?}");
    }

    #[test]
    fn other_kinds_and_versions_of_the_eso_group_are_refused() {
        let found = problems("apiVersion: external-secrets.io/v1alpha1\nkind: PushSecret\nmetadata: {name: p}\n");
        assert!(found[0].contains("kind: kind PushSecret is not supported"), "{found:#?}");
        let found = problems("apiVersion: external-secrets.io/v2\nkind: SecretStore\nmetadata: {name: p}\n");
        assert!(found[0].contains("apiVersion: external-secrets.io/v2 is not supported"), "{found:#?}");
    }

    #[test]
    fn other_groups_pass_through_and_empty_documents_are_skipped() {
        let documents = convert(
            "---\n# only a comment\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n  annotations: {eks.amazonaws.com/role-arn: arn}\n",
        )
        .expect("converts");
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0]["kind"], "ServiceAccount");
        assert_eq!(documents[0]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn");
    }

    #[test]
    fn seed_manifests_convert_to_valid_secretbridge_objects() {
        for file in ["aws-parameter-store.yaml", "gcp-secret-manager.yaml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/fixtures/seed").join(file);
            let text = std::fs::read_to_string(&path).expect("seed fixture");
            let documents = convert_stream(file, &text).expect("seed converts");
            assert_eq!(documents.len(), 2);
            let store = &documents[0];
            assert_eq!(store["apiVersion"], "secretbridge.io/v1");
            let secret: ExternalSecret = serde_json::from_value(documents[1].clone()).expect("ExternalSecret");
            assert_eq!(secret.spec.data.len(), 3);
            assert_eq!(secret.target_secret_name(), Some("multicloud-db-info"));
            // The rendered stream parses back to the same objects.
            let rendered = render_documents(&documents).expect("renders");
            let reparsed: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered)
                .map(|d| Value::deserialize(d).expect("yaml"))
                .collect();
            assert_eq!(reparsed, documents);
        }
    }

    #[test]
    fn invalid_yaml_names_the_document() {
        let error = convert_stream("bad.yaml", "---\napiVersion: v1\n---\nkind: [unclosed\n").expect_err("invalid");
        assert!(error.to_string().starts_with("bad.yaml: document 2 is not valid YAML"), "{error}");
    }
}
