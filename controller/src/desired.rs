//! The desired target Secret as a pure function of the ExternalSecret and the
//! fetched data: owner reference, managed label, data-hash annotation,
//! template type/metadata/data and `immutable`.

use crate::template::{self, TemplateError};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use secretbridge_shared::names::{
    CONTROLLER_FIELD_MANAGER, CREATED_BY_ANNOTATION, DATA_HASH_ANNOTATION, FORBIDDEN_SECRET_TYPES, MANAGED_LABEL, MERGE_FIELD_MANAGER_PREFIX,
};
use secretbridge_shared::{CreationPolicy, ExternalSecret};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Keys and values fetched for one ExternalSecret, after properties,
/// decoding and `dataFrom.extract` were applied.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// Default Secret type.
pub const OPAQUE: &str = "Opaque";

/// Most bytes of data one Secret may hold: the API server refuses a Secret
/// whose values add up to more.
pub const MAX_SECRET_DATA: usize = 1024 * 1024;

/// Most bytes the rendered labels and annotations of one Secret may hold
/// (the API server's limit for annotations).
pub const MAX_METADATA: usize = 256 * 1024;

/// The keys the API server requires for a typed Secret: at least one of
/// each group. Checked before writing, so the condition names the fix
/// instead of quoting the server's answer.
const REQUIRED_KEYS: &[(&str, &[&[&str]])] = &[
    ("kubernetes.io/basic-auth", &[&["username", "password"]]),
    ("kubernetes.io/tls", &[&["tls.crt"], &["tls.key"]]),
    ("kubernetes.io/ssh-auth", &[&["ssh-privatekey"]]),
    ("kubernetes.io/dockerconfigjson", &[&[".dockerconfigjson"]]),
    ("kubernetes.io/dockercfg", &[&[".dockercfg"]]),
];

/// Why the desired Secret could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The ExternalSecret has no name, namespace or uid (not read from the API server).
    #[error("ExternalSecret is missing metadata.{field}; it must come from the API server")]
    MissingMetadata {
        /// The missing field.
        field: &'static str,
    },
    /// The template asks for a Secret type that carries cluster credentials.
    #[error("Secret type {type_:?} is refused: it carries cluster credentials; use Opaque or another type")]
    ForbiddenType {
        /// The requested type.
        type_: String,
    },
    /// The target Secret belongs to another ExternalSecret.
    #[error("Secret {secret:?} is owned by ExternalSecret {owner:?}; an ExternalSecret may not write into another's Secret: choose another spec.target.name")]
    OwnedByAnother {
        /// The target Secret.
        secret: String,
        /// The ExternalSecret that owns it.
        owner: String,
    },
    /// The target Secret exists and was not created by this ExternalSecret;
    /// only `creationPolicy: Merge` may write into it.
    #[error("Secret {secret:?} exists and was not created by this ExternalSecret; secretbridge never takes over, rewrites or deletes a Secret it did not create: use creationPolicy Merge to add keys to it, or choose another spec.target.name")]
    NotCreatedHere {
        /// The target Secret.
        secret: String,
    },
    /// The Secret would be larger than Kubernetes allows.
    #[error("the Secret's data would be {size} bytes, more than the {limit} Kubernetes allows; fetch fewer or smaller keys (largest: {largest:?})")]
    TooLarge {
        /// Bytes of data.
        size: usize,
        /// The limit.
        limit: usize,
        /// The Secret key holding the most bytes.
        largest: String,
    },
    /// A typed Secret lacks a key its type requires.
    #[error("a Secret of type {type_} needs a key {} (spec.target.template.type); add it under spec.data or spec.target.template.data, or use type Opaque", keys.join(" or "))]
    MissingTypedKey {
        /// The Secret type.
        type_: String,
        /// The keys, one of which is needed.
        keys: Vec<String>,
    },
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl BuildError {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::MissingMetadata { .. } => "MissingMetadata",
            BuildError::ForbiddenType { .. } => "ForbiddenSecretType",
            BuildError::OwnedByAnother { .. } => "SecretOwnedByAnother",
            BuildError::NotCreatedHere { .. } => "SecretNotCreatedByExternalSecret",
            BuildError::TooLarge { .. } => "SecretTooLarge",
            BuildError::MissingTypedKey { .. } => "SecretTypeKeyMissing",
            BuildError::Template(error) => error.reason(),
        }
    }
}

/// A stable hash of Secret data: SHA-256 over length-prefixed keys and values
/// in key order, hex encoded. Written to the data-hash annotation and compared
/// to detect a Secret edited by someone else.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    let mut entries: Vec<(&String, &[u8])> = data.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Hash of fetched data.
pub fn secret_data_hash(data: &SecretData) -> String {
    data_hash(data.iter().map(|(k, v)| (k, v.as_slice())))
}

/// Hash of the data currently in a Secret.
pub fn existing_secret_hash(secret: &Secret) -> String {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())))
}

/// Whether a Secret the controller wrote was changed by someone else: its
/// data no longer matches the hash annotation written with it.
pub fn is_tampered(secret: &Secret) -> bool {
    let recorded = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DATA_HASH_ANNOTATION));
    recorded.is_none_or(|hash| *hash != existing_secret_hash(secret))
}

/// The data written to the Secret: the template's rendered keys when
/// `template.data` is set (they replace the fetched keys, as ESO's default
/// `mergePolicy: Replace`), otherwise the fetched keys. All of it fits in
/// [`MAX_SECRET_DATA`]: each template renders into the room the ones before
/// it left.
pub fn render_data(es: &ExternalSecret, fetched: &SecretData) -> Result<SecretData, BuildError> {
    let data = match es.spec.target.template.as_ref() {
        Some(template) if !template.data.is_empty() => render_all("template.data", &template.data, fetched, MAX_SECRET_DATA)?,
        _ => fetched.clone(),
    };
    check_size(&data)?;
    Ok(data)
}

fn check_size(data: &SecretData) -> Result<(), BuildError> {
    let size = data.values().fold(0usize, |total, value| total.saturating_add(value.len()));
    if size > MAX_SECRET_DATA {
        let largest = data.iter().max_by_key(|(_, value)| value.len()).map(|(key, _)| key.clone()).unwrap_or_default();
        return Err(BuildError::TooLarge { size, limit: MAX_SECRET_DATA, largest });
    }
    Ok(())
}

/// Renders every template of `map` (named `field.KEY` in errors) into at
/// most `room` bytes in all.
fn render_all(field: &str, map: &BTreeMap<String, String>, fetched: &SecretData, room: usize) -> Result<SecretData, BuildError> {
    let mut left = room;
    let mut rendered = SecretData::new();
    for (key, text) in map {
        let value = template::render_within(&format!("{field}.{key}"), text, fetched, left)?;
        left = left.saturating_sub(value.len().saturating_add(key.len()));
        rendered.insert(key.clone(), value);
    }
    Ok(rendered)
}

fn render_map(
    field: &str,
    map: &BTreeMap<String, String>,
    fetched: &SecretData,
) -> Result<BTreeMap<String, String>, BuildError> {
    Ok(render_all(&format!("template.metadata.{field}"), map, fetched, MAX_METADATA)?
        .into_iter()
        .map(|(key, value)| (key, String::from_utf8_lossy(&value).into_owned()))
        .collect())
}

/// Whether writing `desired` changes `existing`'s data: for a Secret we own
/// whole, by the data-hash annotation (and tampering); for `Merge`, by the
/// values of our own keys only, as other writers own the rest.
pub fn data_differs(existing: &Secret, desired: &Secret, owns_whole_secret: bool) -> bool {
    if owns_whole_secret {
        let hash = |s: &Secret| s.metadata.annotations.as_ref().and_then(|a| a.get(DATA_HASH_ANNOTATION)).cloned();
        return is_tampered(existing) || hash(existing) != hash(desired);
    }
    desired.data.iter().flatten().any(|(key, value)| existing.data.as_ref().and_then(|d| d.get(key)) != Some(value))
}

/// Whether this ExternalSecret created `secret`: it carries our
/// created-by mark naming this ExternalSecret, or (Secrets written before
/// the mark existed) a controller owner reference to it.
pub fn created_by(es: &ExternalSecret, secret: &Secret) -> bool {
    let marked = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_BY_ANNOTATION))
        .is_some_and(|creator| Some(creator.as_str()) == es.metadata.name.as_deref());
    let owned = secret.metadata.owner_references.iter().flatten().any(|owner| {
        owner.controller == Some(true) && owner.kind == ExternalSecret::kind(&()) && Some(&owner.uid) == es.metadata.uid.as_ref()
    });
    marked || owned
}

/// The field manager this ExternalSecret writes its Secret with: the
/// controller's for Secrets it creates, and one of its own for `Merge`, so
/// that several ExternalSecrets merging into one Secret own only their keys.
pub fn field_manager(es: &ExternalSecret) -> String {
    if es.spec.target.creation_policy != CreationPolicy::Merge {
        return CONTROLLER_FIELD_MANAGER.to_string();
    }
    let name = es.metadata.name.as_deref().unwrap_or_default();
    // Field managers are at most 128 bytes; a long name is hashed.
    if MERGE_FIELD_MANAGER_PREFIX.len() + name.len() <= 128 {
        format!("{MERGE_FIELD_MANAGER_PREFIX}{name}")
    } else {
        let digest = Sha256::digest(name.as_bytes());
        let short: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{MERGE_FIELD_MANAGER_PREFIX}sha256-{short}")
    }
}

fn check_typed_keys(type_: Option<&str>, data: &SecretData) -> Result<(), BuildError> {
    let Some(type_) = type_ else { return Ok(()) };
    let Some((_, groups)) = REQUIRED_KEYS.iter().find(|(t, _)| *t == type_) else { return Ok(()) };
    for group in *groups {
        if !group.iter().any(|key| data.get(*key).is_some_and(|v| !v.is_empty())) {
            return Err(BuildError::MissingTypedKey { type_: type_.to_string(), keys: group.iter().map(|k| k.to_string()).collect() });
        }
    }
    Ok(())
}

/// Whether this ExternalSecret may write into the Secret that already
/// exists under its target name: not when the Secret's type carries cluster
/// credentials (merging keys into a ServiceAccount token Secret), and not
/// when another ExternalSecret owns it (an owner reference to an
/// ExternalSecret with another uid).
pub fn check_existing_target(es: &ExternalSecret, existing: &Secret) -> Result<(), BuildError> {
    if let Some(type_) = existing.type_.as_deref()
        && FORBIDDEN_SECRET_TYPES.contains(&type_)
    {
        return Err(BuildError::ForbiddenType { type_: type_.to_string() });
    }
    let api_group = format!("{}/", ExternalSecret::group(&()));
    let other_owner = existing.metadata.owner_references.iter().flatten().find(|owner| {
        owner.kind == ExternalSecret::kind(&()) && owner.api_version.starts_with(&api_group) && Some(&owner.uid) != es.metadata.uid.as_ref()
    });
    if let Some(owner) = other_owner {
        return Err(BuildError::OwnedByAnother {
            secret: existing.metadata.name.clone().unwrap_or_default(),
            owner: owner.name.clone(),
        });
    }
    let writes_whole = matches!(es.spec.target.creation_policy, CreationPolicy::Owner | CreationPolicy::Orphan);
    if writes_whole && !created_by(es, existing) {
        return Err(BuildError::NotCreatedHere { secret: existing.metadata.name.clone().unwrap_or_default() });
    }
    Ok(())
}

/// Builds the Secret to server-side apply. `creationPolicy: Merge` leaves out
/// the owner reference and the type (it writes into someone else's Secret).
pub fn build_target_secret(es: &ExternalSecret, fetched: &SecretData) -> Result<Secret, BuildError> {
    let namespace = es
        .metadata
        .namespace
        .clone()
        .ok_or(BuildError::MissingMetadata { field: "namespace" })?;
    let name = es
        .target_secret_name()
        .ok_or(BuildError::MissingMetadata { field: "name" })?
        .to_string();
    let template = es.spec.target.template.as_ref();
    let type_ = template.and_then(|t| t.type_.clone());
    if let Some(requested) = &type_
        && FORBIDDEN_SECRET_TYPES.contains(&requested.as_str())
    {
        return Err(BuildError::ForbiddenType { type_: requested.clone() });
    }
    let data = render_data(es, fetched)?;
    let policy = es.spec.target.creation_policy;
    if policy != CreationPolicy::Merge {
        check_typed_keys(Some(type_.as_deref().unwrap_or(OPAQUE)), &data)?;
    }
    let metadata_template = template.and_then(|t| t.metadata.as_ref());
    let mut labels = match metadata_template {
        Some(m) => render_map("labels", &m.labels, fetched)?,
        None => BTreeMap::new(),
    };
    labels.insert(MANAGED_LABEL.to_string(), "true".to_string());
    let mut annotations = match metadata_template {
        Some(m) => render_map("annotations", &m.annotations, fetched)?,
        None => BTreeMap::new(),
    };
    if policy == CreationPolicy::Merge {
        // Several ExternalSecrets may merge into one Secret: a data hash of
        // one of them would be overwritten by the next, so none is written.
    } else {
        annotations.insert(DATA_HASH_ANNOTATION.to_string(), secret_data_hash(&data));
        let creator = es.metadata.name.clone().ok_or(BuildError::MissingMetadata { field: "name" })?;
        annotations.insert(CREATED_BY_ANNOTATION.to_string(), creator);
    }
    let owner_references = if policy == CreationPolicy::Owner {
        let owner = es
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata { field: "uid" })?;
        Some(vec![owner])
    } else {
        None
    };
    let type_ = match policy {
        CreationPolicy::Merge => type_,
        _ => Some(type_.unwrap_or_else(|| OPAQUE.to_string())),
    };
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_,
        immutable: es.spec.target.immutable.then_some(true),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Secret::default()
    })
}

/// What `deletionPolicy: Merge` applies once every remote key is gone: this
/// ExternalSecret's object with no data, under its field manager, which
/// releases (and so removes) exactly the keys it wrote. The type of a Secret
/// it created stays claimed, since a Secret's type cannot change.
pub fn data_release(es: &ExternalSecret, existing: &Secret) -> Result<Secret, BuildError> {
    let namespace = es.metadata.namespace.clone().ok_or(BuildError::MissingMetadata { field: "namespace" })?;
    let name = es.target_secret_name().ok_or(BuildError::MissingMetadata { field: "name" })?.to_string();
    let policy = es.spec.target.creation_policy;
    let mut annotations = BTreeMap::new();
    if policy != CreationPolicy::Merge {
        annotations.insert(CREATED_BY_ANNOTATION.to_string(), es.metadata.name.clone().ok_or(BuildError::MissingMetadata { field: "name" })?);
    }
    let owner_references = match policy {
        CreationPolicy::Owner => Some(vec![es.controller_owner_ref(&()).ok_or(BuildError::MissingMetadata { field: "uid" })?]),
        _ => None,
    };
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some([(MANAGED_LABEL.to_string(), "true".to_string())].into_iter().collect()),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: if policy == CreationPolicy::Merge { None } else { existing.type_.clone() },
        ..Secret::default()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use secretbridge_shared::{ExternalSecretSpec, ExternalSecretTemplate, SecretStoreRef, StoreKind};
    use secretbridge_shared::external_secret::TemplateMetadata;

    pub(crate) fn external_secret(policy: CreationPolicy) -> ExternalSecret {
        let mut es = ExternalSecret::new(
            "db-info",
            ExternalSecretSpec {
                secret_store_ref: SecretStoreRef { name: "aws".into(), kind: StoreKind::SecretStore },
                target: Default::default(),
                refresh_interval: "1h".into(),
                refresh_policy: None,
                data: vec![],
                data_from: vec![],
            },
        );
        es.metadata.namespace = Some("team".into());
        es.metadata.uid = Some("uid-1".into());
        es.spec.target.creation_policy = policy;
        es
    }

    fn fetched() -> SecretData {
        [("user", "admin"), ("host", "db")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn owner_secret_has_owner_label_hash_and_data() {
        let es = external_secret(CreationPolicy::Owner);
        let secret = build_target_secret(&es, &fetched()).expect("builds");
        let owners = secret.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, "uid-1");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(secret.metadata.name.as_deref(), Some("db-info"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_LABEL)).map(String::as_str), Some("true"));
        let hash = secret.metadata.annotations.as_ref().and_then(|a| a.get(DATA_HASH_ANNOTATION)).cloned();
        assert_eq!(hash, Some(secret_data_hash(&fetched())));
        assert!(!is_tampered(&secret));
        assert_eq!(secret.data.as_ref().map(|d| d.len()), Some(2));
    }

    #[test]
    fn owner_and_orphan_never_write_into_a_secret_they_did_not_create() {
        let foreign = Secret {
            metadata: ObjectMeta { name: Some("db-info".into()), ..ObjectMeta::default() },
            type_: Some("kubernetes.io/tls".into()),
            ..Secret::default()
        };
        for policy in [CreationPolicy::Owner, CreationPolicy::Orphan] {
            let es = external_secret(policy);
            assert_eq!(check_existing_target(&es, &foreign), Err(BuildError::NotCreatedHere { secret: "db-info".into() }), "{policy:?}");
            // What it created itself (marked), it may keep writing.
            let own = build_target_secret(&es, &fetched()).expect("builds");
            assert!(created_by(&es, &own));
            assert_eq!(check_existing_target(&es, &own), Ok(()), "{policy:?}");
        }
        assert_eq!(check_existing_target(&external_secret(CreationPolicy::Merge), &foreign), Ok(()));
        // A Secret written before the mark existed: the owner reference to this very ExternalSecret counts.
        let es = external_secret(CreationPolicy::Owner);
        let mut legacy = build_target_secret(&es, &fetched()).expect("builds");
        legacy.metadata.annotations.get_or_insert_default().remove(CREATED_BY_ANNOTATION);
        assert!(created_by(&es, &legacy));
        // The mark names the ExternalSecret, not just any of ours.
        let mut other = external_secret(CreationPolicy::Orphan);
        other.metadata.name = Some("other".into());
        let theirs = build_target_secret(&other, &fetched()).expect("builds");
        assert!(!created_by(&external_secret(CreationPolicy::Orphan), &theirs));
    }

    #[test]
    fn merge_writes_under_its_own_field_manager_and_no_shared_hash() {
        let mut a = external_secret(CreationPolicy::Merge);
        a.metadata.name = Some("writer-a".into());
        let mut b = a.clone();
        b.metadata.name = Some("writer-b".into());
        assert_eq!(field_manager(&a), "secretbridge/writer-a");
        assert_ne!(field_manager(&a), field_manager(&b));
        assert_eq!(field_manager(&external_secret(CreationPolicy::Owner)), CONTROLLER_FIELD_MANAGER);
        a.metadata.name = Some("n".repeat(253));
        assert!(field_manager(&a).len() <= 128);
        let merged = build_target_secret(&b, &fetched()).expect("builds");
        let annotations = merged.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(DATA_HASH_ANNOTATION) && !annotations.contains_key(CREATED_BY_ANNOTATION), "{annotations:?}");
        // Changed means: one of our keys differs, whatever else the Secret holds.
        let mut existing = merged.clone();
        existing.data.get_or_insert_default().insert("someone-elses".into(), ByteString(b"x".to_vec()));
        assert!(!data_differs(&existing, &merged, false));
        existing.data.get_or_insert_default().insert("user".into(), ByteString(b"old".to_vec()));
        assert!(data_differs(&existing, &merged, false));
    }

    #[test]
    fn a_secret_larger_than_kubernetes_allows_is_refused_naming_the_largest_key() {
        let es = external_secret(CreationPolicy::Owner);
        let mut big = fetched();
        big.insert("blob".into(), vec![b'x'; MAX_SECRET_DATA]);
        match build_target_secret(&es, &big) {
            Err(BuildError::TooLarge { largest, limit, .. }) => {
                assert_eq!(largest, "blob");
                assert_eq!(limit, MAX_SECRET_DATA);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Many template keys share one budget: each alone fits, all together do not.
        let mut templated = external_secret(CreationPolicy::Owner);
        templated.spec.target.template = Some(ExternalSecretTemplate {
            data: (0..3).map(|i| (format!("k{i}"), "x".repeat(400 * 1024))).collect(),
            ..Default::default()
        });
        let error = build_target_secret(&templated, &fetched()).expect_err("over budget");
        assert_eq!(error.reason(), "TemplateTooLarge");
        assert!(error.to_string().contains("template.data.k2"), "{error}");
    }

    #[test]
    fn typed_secrets_need_their_keys_before_the_api_server_is_asked() {
        let mut es = external_secret(CreationPolicy::Owner);
        es.spec.target.template = Some(ExternalSecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            data: [("url".to_string(), "pg://{{ .host }}".to_string())].into_iter().collect(),
            ..Default::default()
        });
        match build_target_secret(&es, &fetched()) {
            Err(BuildError::MissingTypedKey { type_, keys }) => {
                assert_eq!(type_, "kubernetes.io/basic-auth");
                assert_eq!(keys, vec!["username".to_string(), "password".to_string()]);
            }
            other => panic!("expected MissingTypedKey, got {other:?}"),
        }
        let tls = |keys: &[&str]| {
            let mut es = external_secret(CreationPolicy::Owner);
            es.spec.target.template = Some(ExternalSecretTemplate {
                type_: Some("kubernetes.io/tls".into()),
                data: keys.iter().map(|k| (k.to_string(), "{{ .host }}".to_string())).collect(),
                ..Default::default()
            });
            build_target_secret(&es, &fetched()).map(|_| ())
        };
        assert!(matches!(tls(&["tls.crt"]), Err(BuildError::MissingTypedKey { keys, .. }) if keys == vec!["tls.key".to_string()]));
        assert_eq!(tls(&["tls.crt", "tls.key"]), Ok(()));
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = secret_data_hash(&fetched());
        assert_eq!(a, secret_data_hash(&fetched()));
        let mut changed = fetched();
        changed.insert("user".into(), b"root".to_vec());
        assert_ne!(a, secret_data_hash(&changed));
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let left: SecretData = [("ab".to_string(), b"c".to_vec())].into_iter().collect();
        let right: SecretData = [("a".to_string(), b"bc".to_vec())].into_iter().collect();
        assert_ne!(secret_data_hash(&left), secret_data_hash(&right));
    }

    #[test]
    fn tamper_is_detected_by_hash() {
        let es = external_secret(CreationPolicy::Owner);
        let mut secret = build_target_secret(&es, &fetched()).expect("builds");
        if let Some(data) = secret.data.as_mut() {
            data.insert("user".into(), ByteString(b"mallory".to_vec()));
        }
        assert!(is_tampered(&secret));
        secret.metadata.annotations = None;
        assert!(is_tampered(&secret));
    }

    #[test]
    fn policies_shape_ownership() {
        let orphan = build_target_secret(&external_secret(CreationPolicy::Orphan), &fetched()).expect("builds");
        assert!(orphan.metadata.owner_references.is_none());
        let merge = build_target_secret(&external_secret(CreationPolicy::Merge), &fetched()).expect("builds");
        assert!(merge.metadata.owner_references.is_none());
        assert!(merge.type_.is_none());
        let mut no_uid = external_secret(CreationPolicy::Owner);
        no_uid.metadata.uid = None;
        assert_eq!(build_target_secret(&no_uid, &fetched()), Err(BuildError::MissingMetadata { field: "uid" }));
    }

    #[test]
    fn template_sets_type_metadata_data_and_immutable() {
        let mut es = external_secret(CreationPolicy::Owner);
        es.spec.target.immutable = true;
        es.spec.target.template = Some(ExternalSecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            metadata: Some(TemplateMetadata {
                labels: [("app".to_string(), "{{ .host }}".to_string())].into_iter().collect(),
                annotations: [("note".to_string(), "fixed".to_string())].into_iter().collect(),
            }),
            data: [("url".to_string(), "pg://{{ .user }}@{{ .host }}".to_string()), ("username".to_string(), "{{ .user }}".to_string())].into_iter().collect(),
        });
        let secret = build_target_secret(&es, &fetched()).expect("builds");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.immutable, Some(true));
        let data = secret.data.clone().unwrap_or_default();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["url", "username"]);
        assert_eq!(data.get("url").map(|v| v.0.clone()), Some(b"pg://admin@db".to_vec()));
        assert_eq!(secret.metadata.labels.as_ref().and_then(|l| l.get("app")).map(String::as_str), Some("db"));
        assert!(secret.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("note") && a.contains_key(DATA_HASH_ANNOTATION)));
    }

    #[test]
    fn existing_targets_owned_by_another_external_secret_or_carrying_tokens_are_refused() {
        let ours = external_secret(CreationPolicy::Merge);
        let mut other = external_secret(CreationPolicy::Owner);
        other.metadata.name = Some("someone-else".into());
        other.metadata.uid = Some("uid-2".into());
        other.spec.target.name = Some("db-info".into());
        let owned_by_other = build_target_secret(&other, &fetched()).expect("builds");
        assert_eq!(
            check_existing_target(&ours, &owned_by_other),
            Err(BuildError::OwnedByAnother { secret: "db-info".into(), owner: "someone-else".into() })
        );
        // Whatever our policy: Owner would take the Secret over, too.
        assert!(check_existing_target(&external_secret(CreationPolicy::Owner), &owned_by_other).is_err());
        // Our own Secret, a plain Secret, and one owned by a non-ExternalSecret are fine.
        let own = build_target_secret(&external_secret(CreationPolicy::Owner), &fetched()).expect("builds");
        assert_eq!(check_existing_target(&ours, &own), Ok(()));
        let plain = Secret { metadata: ObjectMeta { name: Some("db-info".into()), ..ObjectMeta::default() }, ..Secret::default() };
        assert_eq!(check_existing_target(&ours, &plain), Ok(()));
        let mut deployment_owned = owned_by_other.clone();
        if let Some(owner) = deployment_owned.metadata.owner_references.as_mut().and_then(|o| o.first_mut()) {
            owner.api_version = "apps/v1".into();
            owner.kind = "Deployment".into();
        }
        assert_eq!(check_existing_target(&ours, &deployment_owned), Ok(()));
        for forbidden in PINNED_FORBIDDEN_TYPES {
            let token = Secret { type_: Some(forbidden.to_string()), ..plain.clone() };
            assert!(matches!(check_existing_target(&ours, &token), Err(BuildError::ForbiddenType { .. })), "{forbidden}");
        }
    }

    /// Written out here rather than read from `FORBIDDEN_SECRET_TYPES`, so
    /// that dropping a type from that list fails these tests.
    const PINNED_FORBIDDEN_TYPES: [&str; 2] = ["kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token"];

    #[test]
    fn forbidden_types_are_refused() {
        for forbidden in PINNED_FORBIDDEN_TYPES {
            let mut es = external_secret(CreationPolicy::Owner);
            es.spec.target.template = Some(ExternalSecretTemplate {
                type_: Some(forbidden.to_string()),
                ..Default::default()
            });
            assert!(matches!(build_target_secret(&es, &fetched()), Err(BuildError::ForbiddenType { .. })));
        }
    }
}
