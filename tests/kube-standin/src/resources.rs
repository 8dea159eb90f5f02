//! The kinds the stand-in serves: built-in ones and those defined by CustomResourceDefinitions.

use serde_json::{Value, json};

/// One served resource in one group version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group; empty for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `secrets`.
    pub plural: String,
    /// Singular name, e.g. `secret`.
    pub singular: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (`kubectl get CATEGORY`), from a CRD's `names.categories`.
    pub categories: Vec<String>,
    /// The CRD version's `additionalPrinterColumns`, for Table output.
    pub printer_columns: Vec<Value>,
    /// Whether a `/status` subresource exists (status is then ignored on the main resource).
    pub status_subresource: bool,
    /// The CRD's `openAPIV3Schema` for this version, for custom resources.
    pub schema: Option<Value>,
    /// Whether this is a custom resource (generation tracking, schema validation, no strategic merge).
    pub custom: bool,
    /// Verbs the resource supports.
    pub verbs: Vec<&'static str>,
    /// Subresources other than status (e.g. `token` on serviceaccounts).
    pub extra_subresources: Vec<(&'static str, &'static str, Vec<&'static str>)>,
}

const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    fn builtin(group: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str]) -> Self {
        Self {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            printer_columns: Vec::new(),
            status_subresource: false,
            schema: None,
            custom: false,
            verbs: ALL_VERBS.to_vec(),
            extra_subresources: Vec::new(),
        }
    }

    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as used in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage identity (independent of version).
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// Whether the resource has spec-like content that bumps `metadata.generation`.
    pub fn tracks_generation(&self) -> bool {
        self.custom || (self.group == "apiextensions.k8s.io")
    }

    /// The entries this type contributes to an `APIResourceList`.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
            "storageVersionHash": "",
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for (sub, kind, verbs) in &self.extra_subresources {
            out.push(json!({
                "name": format!("{}/{sub}", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "group": if *kind == "TokenRequest" { "authentication.k8s.io" } else { "" },
                "version": "v1",
                "kind": kind,
                "verbs": verbs,
            }));
        }
        out
    }
}

/// The built-in kinds.
pub fn builtin_types() -> Vec<ResourceType> {
    let mut namespaces = ResourceType::builtin("", "namespaces", "Namespace", false, &["ns"]);
    namespaces.status_subresource = true;
    let mut serviceaccounts =
        ResourceType::builtin("", "serviceaccounts", "ServiceAccount", true, &["sa"]);
    serviceaccounts
        .extra_subresources
        .push(("token", "TokenRequest", vec!["create"]));
    let mut crds = ResourceType::builtin(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    );
    crds.status_subresource = true;
    let mut ssar = ResourceType::builtin(
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
    );
    ssar.verbs = vec!["create"];
    vec![
        namespaces,
        ResourceType::builtin("", "secrets", "Secret", true, &[]),
        serviceaccounts,
        ResourceType::builtin("", "configmaps", "ConfigMap", true, &["cm"]),
        ResourceType::builtin("", "events", "Event", true, &["ev"]),
        ResourceType::builtin("events.k8s.io", "events", "Event", true, &["ev"]),
        ResourceType::builtin("coordination.k8s.io", "leases", "Lease", true, &[]),
        // What the controller's own manifests hold, stored without their
        // type-specific validation (as ConfigMaps are), so that a server-side
        // dry-run of deploy/ answers for every object.
        ResourceType::builtin("", "services", "Service", true, &["svc"]),
        ResourceType::builtin("apps", "deployments", "Deployment", true, &["deploy"]),
        ResourceType::builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        ResourceType::builtin("policy", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
        crds,
        ResourceType::builtin("rbac.authorization.k8s.io", "roles", "Role", true, &[]),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        ssar,
    ]
}

/// The types a stored CRD serves (one per served version), if it is established.
pub fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let categories: Vec<String> = names["categories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"].as_bool() != Some(true) {
            continue;
        }
        out.push(ResourceType {
            group: group.clone(),
            version: version["name"].as_str().unwrap_or_default().to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            printer_columns: version["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
            status_subresource: version["subresources"]["status"].is_object(),
            schema: version["schema"].get("openAPIV3Schema").cloned(),
            custom: true,
            verbs: ALL_VERBS.to_vec(),
            extra_subresources: Vec::new(),
        });
    }
    out
}
