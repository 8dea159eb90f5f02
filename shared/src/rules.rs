//! Rules on the spec that both halves enforce: pure functions returning the
//! field path that is wrong and what to write instead. The controller turns
//! them into `Ready=False`; the provider into plan diagnostics.

use crate::store::StoreProvider;

/// One rule broken by one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field path, e.g. `spec.provider.aws.auth`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl StoreProvider {
    /// The store rules that do not need the cluster: an `auth` block must
    /// name a method we implement. An API server that prunes unknown fields
    /// turns ESO's `auth: {secretRef: …}` into `auth: {}`; read as "no auth"
    /// that would silently borrow the controller's own identity.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match self {
            StoreProvider::Aws(aws) => {
                if aws.auth.as_ref().is_some_and(|auth| auth.jwt.is_none()) {
                    errors.push(FieldError::new(
                        "spec.provider.aws.auth",
                        "names no supported method: secretbridge implements auth.jwt (IRSA) only, and static keys (auth.secretRef) are not supported; use jwt, or remove auth to use the controller's own identity",
                    ));
                }
            }
            StoreProvider::Gcpsm(gcp) => {
                if gcp.auth.as_ref().is_some_and(|auth| auth.workload_identity.is_none()) {
                    errors.push(FieldError::new(
                        "spec.provider.gcpsm.auth",
                        "names no supported method: secretbridge implements auth.workloadIdentity only, and static keys (auth.secretRef) and workloadIdentityFederation are not supported; use workloadIdentity, or remove auth to use Application Default Credentials",
                    ));
                }
            }
        }
        errors
    }
}

/// Whether `id` is a valid GCP secret ID: letters, digits, `-` and `_`, 1 to 255.
fn is_gcp_secret_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The Secret Manager version a remote key reads, scoped to the store: a bare
/// secret ID is read in the store's project (and location), and a full name
/// (`projects/P/secrets/S` or `projects/P/locations/L/secrets/S`) is accepted
/// only when it names that same project and location. Otherwise a namespace
/// admitted to a ClusterSecretStore could read any project the store's
/// identity can. `field` is the remote ref's path, for the error.
pub fn gcp_version_name(
    field: &str,
    project: &str,
    location: Option<&str>,
    key: &str,
    version: Option<&str>,
) -> Result<String, FieldError> {
    let location = location.filter(|l| !l.is_empty());
    let parent = match location {
        Some(location) => format!("projects/{project}/locations/{location}"),
        None => format!("projects/{project}"),
    };
    let secret_id = match key.strip_prefix("projects/") {
        None => key,
        Some(_) => key.strip_prefix(&format!("{parent}/secrets/")).ok_or_else(|| {
            FieldError::new(
                format!("{field}.key"),
                format!(
                    "names a secret outside the store, which reads {parent}; a key is a secret ID, or a full name inside that {}",
                    if location.is_some() { "project and location" } else { "project" }
                ),
            )
        })?,
    };
    if !is_gcp_secret_id(secret_id) {
        return Err(FieldError::new(
            format!("{field}.key"),
            "is not a GCP secret ID (1 to 255 letters, digits, `-` or `_`) nor a full name `projects/P/secrets/S` in the store's project",
        ));
    }
    let version = version.filter(|v| !v.is_empty()).unwrap_or("latest");
    let version = version.strip_prefix("versions/").unwrap_or(version);
    if version != "latest" && !(version.bytes().all(|b| b.is_ascii_digit()) && !version.is_empty() && version.len() <= 20) {
        return Err(FieldError::new(
            format!("{field}.version"),
            "is not a GCP secret version: write a version number such as `3`, or `latest`",
        ));
    }
    Ok(format!("{parent}/secrets/{secret_id}/versions/{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AwsAuth, AwsProvider, AwsService, GcpSmAuth, GcpSmProvider};

    #[test]
    fn an_auth_block_naming_no_method_is_refused_naming_the_field() {
        let aws = |auth| StoreProvider::Aws(AwsProvider { service: AwsService::ParameterStore, region: "eu-west-1".into(), role: None, prefix: None, auth });
        assert_eq!(aws(None).validate(), vec![]);
        let errors = aws(Some(AwsAuth { jwt: None })).validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.provider.aws.auth");
        assert!(errors[0].message.contains("secretRef"), "{}", errors[0].message);
        let gcp = |auth| StoreProvider::Gcpsm(GcpSmProvider { project_id: Some("p".into()), location: None, auth });
        assert_eq!(gcp(None).validate(), vec![]);
        assert_eq!(gcp(Some(GcpSmAuth { workload_identity: None })).validate()[0].field, "spec.provider.gcpsm.auth");
    }

    #[test]
    fn gcp_keys_stay_inside_the_store_project_and_location() {
        let field = "spec.data[0].remoteRef";
        assert_eq!(gcp_version_name(field, "p", None, "db", None).as_deref(), Ok("projects/p/secrets/db/versions/latest"));
        assert_eq!(gcp_version_name(field, "p", None, "projects/p/secrets/db", Some("3")).as_deref(), Ok("projects/p/secrets/db/versions/3"));
        assert_eq!(gcp_version_name(field, "p", Some("eu"), "db", Some("versions/2")).as_deref(), Ok("projects/p/locations/eu/secrets/db/versions/2"));
        assert_eq!(gcp_version_name(field, "p", Some("eu"), "projects/p/locations/eu/secrets/db", None).as_deref(), Ok("projects/p/locations/eu/secrets/db/versions/latest"));
        for escape in [
            "projects/other/secrets/db",
            "projects/p/locations/eu/secrets/db",
            "projects/p/secrets/db/../../../other/secrets/db",
            "projects/pp/secrets/db",
        ] {
            let error = gcp_version_name(field, "p", None, escape, None).expect_err(escape);
            assert_eq!(error.field, "spec.data[0].remoteRef.key", "{escape}");
        }
        assert!(gcp_version_name(field, "p", Some("eu"), "projects/p/secrets/db", None).is_err(), "a global name in a regional store");
        for bad in ["", "a/b", "db?x=1", "../db", "db#1", &"x".repeat(256)] {
            assert!(gcp_version_name(field, "p", None, bad, None).is_err(), "{bad}");
        }
        for bad in ["-1", "1/../2", "x", "latest?"] {
            assert_eq!(gcp_version_name(field, "p", None, "db", Some(bad)).map_err(|e| e.field).expect_err(bad), "spec.data[0].remoteRef.version");
        }
    }
}
