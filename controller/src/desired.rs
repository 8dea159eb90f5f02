//! The desired target Secret as a pure function of the ExternalSecret and the
//! fetched data: owner reference, managed label, data-hash annotation,
//! template type/metadata/data and `immutable`.

use crate::template::{self, TemplateError};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use secretbridge_shared::names::{DATA_HASH_ANNOTATION, FORBIDDEN_SECRET_TYPES, MANAGED_LABEL};
use secretbridge_shared::{CreationPolicy, ExternalSecret};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Keys and values fetched for one ExternalSecret, after properties,
/// decoding and `dataFrom.extract` were applied.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// Default Secret type.
pub const OPAQUE: &str = "Opaque";

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
/// `mergePolicy: Replace`), otherwise the fetched keys.
pub fn render_data(es: &ExternalSecret, fetched: &SecretData) -> Result<SecretData, BuildError> {
    match es.spec.target.template.as_ref() {
        Some(template) if !template.data.is_empty() => template
            .data
            .iter()
            .map(|(key, text)| Ok((key.clone(), template::render(&format!("template.data.{key}"), text, fetched)?)))
            .collect(),
        _ => Ok(fetched.clone()),
    }
}

fn render_map(
    field: &str,
    map: &BTreeMap<String, String>,
    fetched: &SecretData,
) -> Result<BTreeMap<String, String>, BuildError> {
    map.iter()
        .map(|(key, text)| {
            let rendered = template::render(&format!("template.metadata.{field}.{key}"), text, fetched)?;
            Ok((key.clone(), String::from_utf8_lossy(&rendered).into_owned()))
        })
        .collect()
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
    annotations.insert(DATA_HASH_ANNOTATION.to_string(), secret_data_hash(&data));
    let policy = es.spec.target.creation_policy;
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
            data: [("url".to_string(), "pg://{{ .user }}@{{ .host }}".to_string())].into_iter().collect(),
        });
        let secret = build_target_secret(&es, &fetched()).expect("builds");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(secret.immutable, Some(true));
        let data = secret.data.clone().unwrap_or_default();
        assert_eq!(data.keys().collect::<Vec<_>>(), vec!["url"]);
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
        for forbidden in FORBIDDEN_SECRET_TYPES {
            let token = Secret { type_: Some(forbidden.to_string()), ..plain.clone() };
            assert!(matches!(check_existing_target(&ours, &token), Err(BuildError::ForbiddenType { .. })), "{forbidden}");
        }
    }

    #[test]
    fn forbidden_types_are_refused() {
        for forbidden in FORBIDDEN_SECRET_TYPES {
            let mut es = external_secret(CreationPolicy::Owner);
            es.spec.target.template = Some(ExternalSecretTemplate {
                type_: Some(forbidden.to_string()),
                ..Default::default()
            });
            assert!(matches!(build_target_secret(&es, &fetched()), Err(BuildError::ForbiddenType { .. })));
        }
    }
}
