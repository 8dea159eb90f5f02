//! IAM policies (version 3, base64 etags) and the roles the stand-in understands.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::http::ApiError;

/// An IAM policy as the REST API carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Policy version: 1, or 3 when a binding has a condition.
    #[serde(default)]
    pub version: i32,
    /// Role bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    /// Base64 etag for read-modify-write concurrency control.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

/// One role binding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The role, e.g. `roles/secretmanager.secretAccessor`.
    pub role: String,
    /// Members, e.g. `serviceAccount:x@p.iam.gserviceaccount.com`.
    #[serde(default)]
    pub members: Vec<String>,
    /// An IAM condition; stored, never evaluated, so it never grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// A policy attached to a resource, with its current etag.
#[derive(Clone, Debug)]
pub(crate) struct StoredPolicy {
    policy: Policy,
}

/// Etags are unique across the process, so a deleted-and-recreated resource never
/// accepts an etag read before the delete.
static ETAG_COUNTER: AtomicU64 = AtomicU64::new(1);

impl Default for StoredPolicy {
    fn default() -> Self {
        // An untouched policy's etag on GCP is "ACAB" (bytes 0x00 0x20 0x01).
        Self { policy: Policy { version: 1, bindings: Vec::new(), etag: "ACAB".to_owned() } }
    }
}

impl StoredPolicy {
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Applies a `setIamPolicy` request body's `policy`, honouring its etag.
    pub(crate) fn set(&mut self, mut incoming: Policy) -> Result<Policy, ApiError> {
        if !incoming.etag.is_empty() && incoming.etag != self.policy.etag {
            return Err(ApiError::aborted(
                "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff. The request's ETag does not match the current policy's ETag.",
            ));
        }
        if !matches!(incoming.version, 0 | 1 | 3) {
            return Err(ApiError::invalid(format!("Invalid policy version {}; use 1 or 3.", incoming.version)));
        }
        let conditional = incoming.bindings.iter().any(|binding| binding.condition.is_some());
        if conditional && incoming.version != 3 {
            return Err(ApiError::invalid(
                "Policies with conditional role bindings must set version 3.",
            ));
        }
        for binding in &incoming.bindings {
            if !(binding.role.starts_with("roles/") || binding.role.contains("/roles/")) {
                return Err(ApiError::invalid(format!("Role ({}) does not exist.", binding.role)));
            }
            for member in &binding.members {
                validate_member(member)?;
            }
        }
        incoming.bindings.retain(|binding| !binding.members.is_empty());
        incoming.version = if conditional { 3 } else { 1 };
        let counter = ETAG_COUNTER.fetch_add(1, Ordering::Relaxed);
        incoming.etag = STANDARD.encode(counter.to_be_bytes());
        self.policy = incoming;
        Ok(self.policy.clone())
    }

    /// Adds one member to one role (seeding helper).
    pub(crate) fn grant(&mut self, role: &str, member: &str) -> Result<(), ApiError> {
        let mut policy = self.policy.clone();
        match policy.bindings.iter_mut().find(|binding| binding.role == role && binding.condition.is_none()) {
            Some(binding) => binding.members.push(member.to_owned()),
            None => policy.bindings.push(Binding { role: role.to_owned(), members: vec![member.to_owned()], condition: None }),
        }
        policy.etag.clear();
        self.set(policy).map(|_| ())
    }

    /// Whether an unconditional binding grants `permission` to any of `members`.
    pub(crate) fn allows(&self, members: &[String], matches_member: &dyn Fn(&str) -> bool, permission: &str) -> bool {
        self.policy.bindings.iter().any(|binding| {
            binding.condition.is_none()
                && role_grants(&binding.role, permission)
                && binding.members.iter().any(|member| members.contains(member) || matches_member(member))
        })
    }
}

fn validate_member(member: &str) -> Result<(), ApiError> {
    const PREFIXES: [&str; 7] =
        ["user:", "serviceAccount:", "group:", "domain:", "principal://", "principalSet://", "deleted:"];
    let valid = matches!(member, "allUsers" | "allAuthenticatedUsers")
        || PREFIXES.iter().any(|prefix| member.len() > prefix.len() && member.starts_with(prefix));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("Invalid member '{member}' in the policy's bindings.")))
    }
}

/// Whether `role` contains `permission`. Only the roles secretbridge uses are known;
/// any other role grants nothing.
pub(crate) fn role_grants(role: &str, permission: &str) -> bool {
    let never_for_basic = permission.ends_with(".setIamPolicy")
        || permission == "iam.serviceAccounts.getAccessToken"
        || permission == "secretmanager.versions.access";
    let read_only = permission.ends_with(".get") || permission.ends_with(".list") || permission.ends_with(".getIamPolicy");
    match role {
        "roles/owner" => true,
        "roles/editor" => !never_for_basic,
        "roles/viewer" => read_only,
        "roles/secretmanager.admin" => permission.starts_with("secretmanager."),
        "roles/secretmanager.secretAccessor" => permission == "secretmanager.versions.access",
        "roles/secretmanager.viewer" => matches!(
            permission,
            "secretmanager.secrets.get" | "secretmanager.secrets.list" | "secretmanager.versions.get" | "secretmanager.versions.list"
        ),
        "roles/secretmanager.secretVersionAdder" => permission == "secretmanager.versions.add",
        "roles/secretmanager.secretVersionManager" => matches!(
            permission,
            "secretmanager.versions.add"
                | "secretmanager.versions.enable"
                | "secretmanager.versions.disable"
                | "secretmanager.versions.destroy"
                | "secretmanager.versions.get"
                | "secretmanager.versions.list"
        ),
        "roles/iam.serviceAccountAdmin" => {
            permission.starts_with("iam.serviceAccounts.") && permission != "iam.serviceAccounts.getAccessToken"
        }
        "roles/iam.serviceAccountViewer" => {
            matches!(permission, "iam.serviceAccounts.get" | "iam.serviceAccounts.list")
        }
        "roles/iam.serviceAccountTokenCreator" | "roles/iam.workloadIdentityUser" => {
            permission == "iam.serviceAccounts.getAccessToken"
        }
        "roles/resourcemanager.projectIamAdmin" => matches!(
            permission,
            "resourcemanager.projects.getIamPolicy" | "resourcemanager.projects.setIamPolicy"
        ),
        "roles/iam.securityAdmin" => permission.ends_with(".getIamPolicy") || permission.ends_with(".setIamPolicy"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_etag_is_aborted_and_fresh_etag_accepted() {
        let mut stored = StoredPolicy::default();
        let first = stored.set(Policy { version: 3, ..Policy::default() }).expect("must be accepted");
        let second = stored
            .set(Policy { version: 3, etag: first.etag.clone(), ..Policy::default() })
            .expect("must be accepted");
        assert_ne!(first.etag, second.etag);
        let stale = stored.set(Policy { version: 3, etag: first.etag, ..Policy::default() }).expect_err("must be refused");
        assert_eq!((stale.code, stale.status), (409, "ABORTED"));
    }

    #[test]
    fn accessor_grants_only_access() {
        assert!(role_grants("roles/secretmanager.secretAccessor", "secretmanager.versions.access"));
        assert!(!role_grants("roles/secretmanager.secretAccessor", "secretmanager.versions.add"));
        assert!(!role_grants("roles/editor", "secretmanager.versions.access"));
        assert!(role_grants("roles/iam.workloadIdentityUser", "iam.serviceAccounts.getAccessToken"));
        assert!(!role_grants("roles/iam.serviceAccountUser", "iam.serviceAccounts.getAccessToken"));
    }

    #[test]
    fn conditional_binding_needs_version_3_and_never_grants() {
        let mut stored = StoredPolicy::default();
        let binding = Binding {
            role: "roles/owner".into(),
            members: vec!["user:a@example.com".into()],
            condition: Some(serde_json::json!({"expression": "true"})),
        };
        let err = stored.set(Policy { version: 1, bindings: vec![binding.clone()], etag: String::new() }).expect_err("must be refused");
        assert_eq!(err.status, "INVALID_ARGUMENT");
        stored.set(Policy { version: 3, bindings: vec![binding], etag: String::new() }).expect("must be accepted");
        assert!(!stored.allows(&["user:a@example.com".into()], &|_| false, "secretmanager.secrets.get"));
    }
}
