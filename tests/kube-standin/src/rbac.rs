//! Authentication identities and RBAC evaluation (rbac.authorization.k8s.io/v1).

use serde_json::{Value, json};

use crate::store::Store;

/// The user of a request without credentials (kube-apiserver's `--anonymous-auth`, on by default).
pub fn anonymous() -> UserInfo {
    UserInfo { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:ns:name`.
    pub name: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

/// What a request wants to do, as the authorizer sees it.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// Verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// Namespace, or empty for cluster scope.
    pub namespace: String,
    /// Object name, or empty.
    pub name: String,
    /// For non-resource requests: the path.
    pub path: Option<String>,
}

impl Attributes {
    /// The reason text of a denial, exactly as kube-apiserver words it.
    pub fn forbidden_reason(&self, user: &UserInfo) -> String {
        if let Some(path) = &self.path {
            return format!("User {:?} cannot {} path {:?}", user.name, self.verb, path);
        }
        let mut resource = self.resource.clone();
        if !self.subresource.is_empty() {
            resource = format!("{resource}/{}", self.subresource);
        }
        if self.namespace.is_empty() {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                user.name, self.verb, resource, self.group
            )
        } else {
            format!(
                "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                user.name, self.verb, resource, self.group, self.namespace
            )
        }
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn subject_matches(subject: &Value, binding_ns: &str, user: &UserInfo) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"].as_str().unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == attrs.verb) {
        return false;
    }
    if let Some(path) = &attrs.path {
        return strings(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !strings(&rule["apiGroups"])
        .iter()
        .any(|g| *g == "*" || *g == attrs.group)
    {
        return false;
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_ok = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || (!attrs.name.is_empty() && names.contains(&attrs.name.as_str()))
}

fn role_rules<'a>(store: &'a Store, role_ref: &Value, binding_ns: &str) -> Vec<&'a Value> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    let (plural, ns) = match role_ref["kind"].as_str() {
        Some("ClusterRole") => ("clusterroles", ""),
        Some("Role") => ("roles", binding_ns),
        _ => return Vec::new(),
    };
    store
        .objects_of("rbac.authorization.k8s.io", plural)
        .into_iter()
        .filter(|r| {
            r["metadata"]["name"].as_str() == Some(name)
                && r["metadata"]["namespace"].as_str().unwrap_or_default() == ns
        })
        .flat_map(|r| r["rules"].as_array().into_iter().flatten())
        .collect()
}

/// Whether RBAC allows a request. The bootstrap grants (discovery, public info, basic user,
/// issuer discovery) are ordinary ClusterRoleBindings created by [`bootstrap`], so they are
/// evaluated like any other binding.
pub fn allowed(store: &Store, user: &UserInfo, attrs: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    for binding in store.objects_of("rbac.authorization.k8s.io", "clusterrolebindings") {
        let subjects = binding["subjects"].as_array().into_iter().flatten();
        if subjects.into_iter().any(|s| subject_matches(s, "", user))
            && role_rules(store, &binding["roleRef"], "")
                .into_iter()
                .any(|r| rule_allows(r, attrs))
        {
            return true;
        }
    }
    if attrs.namespace.is_empty() {
        return false;
    }
    for binding in store.objects_of("rbac.authorization.k8s.io", "rolebindings") {
        let ns = binding["metadata"]["namespace"].as_str().unwrap_or_default();
        if ns != attrs.namespace {
            continue;
        }
        let subjects = binding["subjects"].as_array().into_iter().flatten();
        if subjects.into_iter().any(|s| subject_matches(s, ns, user))
            && role_rules(store, &binding["roleRef"], ns)
                .into_iter()
                .any(|r| rule_allows(r, attrs))
        {
            return true;
        }
    }
    false
}

/// The default ClusterRoles and ClusterRoleBindings kube-apiserver's RBAC bootstrap creates for
/// discovery (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`), as
/// `(plural, object)` pairs: `system:public-info-viewer` (authenticated and unauthenticated),
/// `system:discovery` and `system:basic-user` (authenticated), and
/// `system:service-account-issuer-discovery` (ServiceAccounts only). With
/// `public_issuer_discovery`, also the binding the Kubernetes docs ("Service account issuer
/// discovery") tell a cluster to add so clouds can fetch the issuer's keys anonymously:
/// `system:service-account-issuer-discovery` for `system:unauthenticated`.
pub fn bootstrap_objects(public_issuer_discovery: bool) -> Vec<(&'static str, Value)> {
    let meta = |name: &str| {
        json!({
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        })
    };
    let role = |name: &str, rules: Value| json!({"metadata": meta(name), "rules": rules});
    let binding = |name: &str, role: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .collect();
        json!({
            "metadata": meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        })
    };
    let get = |urls: &[&str]| json!([{"nonResourceURLs": urls, "verbs": ["get"]}]);
    let public_info = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let discovery = [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version",
        "/version/",
    ];
    let issuer = [
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/",
        "/openid/v1/jwks",
        "/openid/v1/jwks/",
    ];
    let mut objects = vec![
        ("clusterroles", role("system:public-info-viewer", get(&public_info))),
        ("clusterroles", role("system:discovery", get(&discovery))),
        ("clusterroles", role("system:service-account-issuer-discovery", get(&issuer))),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!([
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                ]),
            ),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                &["system:authenticated", "system:unauthenticated"],
            ),
        ),
        ("clusterrolebindings", binding("system:discovery", "system:discovery", &["system:authenticated"])),
        ("clusterrolebindings", binding("system:basic-user", "system:basic-user", &["system:authenticated"])),
        (
            "clusterrolebindings",
            binding(
                "system:service-account-issuer-discovery",
                "system:service-account-issuer-discovery",
                &["system:serviceaccounts"],
            ),
        ),
    ];
    if public_issuer_discovery {
        let mut public = binding(
            "service-account-issuer-discovery-unauthenticated",
            "system:service-account-issuer-discovery",
            &["system:unauthenticated"],
        );
        public["metadata"] = json!({"name": "service-account-issuer-discovery-unauthenticated"});
        objects.push(("clusterrolebindings", public));
    }
    objects
}
