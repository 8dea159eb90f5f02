//! Who is calling (from the bearer token) and whether IAM lets them.

use std::time::Instant;

use crate::Shared;
use crate::http::ApiError;
use crate::iam::StoredPolicy;

/// The identity behind an access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The configured admin token (or an anonymous call when allowed): full rights.
    Admin,
    /// A Kubernetes service account federated through a workload identity pool.
    Federated {
        /// The pool, e.g. `PROJECT.svc.id.goog`.
        pool: String,
        /// The Kubernetes namespace.
        namespace: String,
        /// The Kubernetes service account name.
        service_account: String,
    },
    /// A Google service account, from `generateAccessToken`.
    ServiceAccount {
        /// The account's email.
        email: String,
    },
}

impl Principal {
    /// The policy members that name this principal exactly.
    pub(crate) fn members(&self) -> Vec<String> {
        match self {
            Principal::Admin => Vec::new(),
            Principal::Federated { pool, namespace, service_account } => {
                vec![format!("serviceAccount:{pool}[{namespace}/{service_account}]")]
            }
            Principal::ServiceAccount { email } => vec![format!("serviceAccount:{email}")],
        }
    }

    /// Whether a member pattern that is not a literal match still names this
    /// principal: `allAuthenticatedUsers`, or the `principal://` form of a federated
    /// identity (any project number).
    pub(crate) fn matches_member(&self, member: &str) -> bool {
        if member == "allAuthenticatedUsers" || member == "allUsers" {
            return true;
        }
        let Principal::Federated { pool, namespace, service_account } = self else {
            return false;
        };
        let Some(rest) = member.strip_prefix("principal://iam.googleapis.com/projects/") else {
            return false;
        };
        let Some((_number, rest)) = rest.split_once('/') else {
            return false;
        };
        rest == format!("locations/global/workloadIdentityPools/{pool}/subject/ns/{namespace}/sa/{service_account}")
            || rest == format!("locations/global/workloadIdentityPools/{pool}/subject/system:serviceaccount:{namespace}:{service_account}")
    }
}

/// Resolves the bearer token of a call to its principal.
pub(crate) fn authenticate(shared: &Shared, bearer: Option<&str>) -> Result<Principal, ApiError> {
    let Some(token) = bearer else {
        if shared.options.allow_anonymous_admin {
            return Ok(Principal::Admin);
        }
        return Err(ApiError::unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    };
    if token == shared.options.admin_token {
        return Ok(Principal::Admin);
    }
    let state = shared.lock();
    match state.tokens.get(token) {
        Some((principal, expires)) if *expires > Instant::now() => Ok(principal.clone()),
        Some(_) => Err(ApiError::unauthenticated("Request had invalid authentication credentials: the access token has expired.")),
        None => Err(ApiError::unauthenticated(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )),
    }
}

/// Checks `permission` for `principal` against policies, innermost first
/// (e.g. the secret's, then its project's). A denial names the permission and
/// resource as GCP does, without revealing whether the resource exists.
pub(crate) fn authorize(
    principal: &Principal,
    permission: &str,
    resource: &str,
    policies: &[Option<&StoredPolicy>],
) -> Result<(), ApiError> {
    if *principal == Principal::Admin {
        return Ok(());
    }
    let members = principal.members();
    let matches = |member: &str| principal.matches_member(member);
    if policies.iter().flatten().any(|policy| policy.allows(&members, &matches, permission)) {
        return Ok(());
    }
    Err(ApiError::denied(format!(
        "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    )))
}
