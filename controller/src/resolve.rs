//! Which store an ExternalSecret may use and which ServiceAccount a store
//! authenticates as: the namespace rules, pure and unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use secretbridge_shared::{ClusterSecretStoreCondition, ServiceAccountSelector, StoreKind};
use std::collections::BTreeMap;

/// Why a store may not be used, or its ServiceAccount is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A SecretStore in another namespace was referenced.
    #[error("SecretStore {store:?} is in namespace {store_namespace:?}, not {namespace:?}: a SecretStore serves only its own namespace; use a ClusterSecretStore")]
    WrongNamespace {
        /// Store name.
        store: String,
        /// Where the store lives.
        store_namespace: String,
        /// The ExternalSecret's namespace.
        namespace: String,
    },
    /// A ClusterSecretStore's conditions do not admit the namespace.
    #[error("ClusterSecretStore {store:?} does not admit namespace {namespace:?}: add it to the store's conditions")]
    NotAdmitted {
        /// Store name.
        store: String,
        /// The ExternalSecret's namespace.
        namespace: String,
    },
    /// A SecretStore names a ServiceAccount in another namespace.
    #[error("SecretStore in namespace {store_namespace:?} names ServiceAccount {name:?} in namespace {requested:?}: a SecretStore may only use ServiceAccounts in its own namespace")]
    ServiceAccountNamespace {
        /// The store's namespace.
        store_namespace: String,
        /// The ServiceAccount name.
        name: String,
        /// The namespace it asked for.
        requested: String,
    },
    /// A `namespaceRegexes` entry does not compile.
    #[error("ClusterSecretStore {store:?} has an invalid namespace regex {pattern:?}: {problem}")]
    InvalidRegex {
        /// Store name.
        store: String,
        /// The pattern.
        pattern: String,
        /// The compiler's complaint.
        problem: String,
    },
    /// A `namespaceSelector` expression uses an unknown operator or lacks values.
    #[error("ClusterSecretStore {store:?} has an invalid namespaceSelector: {problem}")]
    InvalidSelector {
        /// Store name.
        store: String,
        /// What is wrong.
        problem: String,
    },
}

impl ResolveError {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::WrongNamespace { .. } => "StoreWrongNamespace",
            ResolveError::NotAdmitted { .. } => "StoreNotAdmitted",
            ResolveError::ServiceAccountNamespace { .. } => "ServiceAccountWrongNamespace",
            ResolveError::InvalidRegex { .. } | ResolveError::InvalidSelector { .. } => {
                "InvalidStoreConditions"
            }
        }
    }
}

/// A namespaced SecretStore must live in the ExternalSecret's namespace.
pub fn check_secret_store_namespace(store: &str, store_namespace: &str, namespace: &str) -> Result<(), ResolveError> {
    if store_namespace == namespace {
        Ok(())
    } else {
        Err(ResolveError::WrongNamespace {
            store: store.to_string(),
            store_namespace: store_namespace.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

/// Whether a ClusterSecretStore's conditions admit a namespace with the given
/// labels. No conditions admit every namespace; otherwise any one condition
/// must match, and within a condition every field that is set must match. A
/// condition with no field set admits nothing (a typo should not open the store).
pub fn check_cluster_store_admits(
    store: &str,
    conditions: &[ClusterSecretStoreCondition],
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<(), ResolveError> {
    if conditions.is_empty() {
        return Ok(());
    }
    for condition in conditions {
        if condition_matches(store, condition, namespace, namespace_labels)? {
            return Ok(());
        }
    }
    Err(ResolveError::NotAdmitted {
        store: store.to_string(),
        namespace: namespace.to_string(),
    })
}

fn condition_matches(
    store: &str,
    condition: &ClusterSecretStoreCondition,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool, ResolveError> {
    let mut any_field = false;
    if let Some(selector) = &condition.namespace_selector {
        any_field = true;
        if !selector_matches(store, selector, labels)? {
            return Ok(false);
        }
    }
    if !condition.namespaces.is_empty() {
        any_field = true;
        if !condition.namespaces.iter().any(|n| n == namespace) {
            return Ok(false);
        }
    }
    if !condition.namespace_regexes.is_empty() {
        any_field = true;
        let mut matched = false;
        for pattern in &condition.namespace_regexes {
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| ResolveError::InvalidRegex {
                store: store.to_string(),
                pattern: pattern.clone(),
                problem: e.to_string(),
            })?;
            matched |= anchored.is_match(namespace);
        }
        if !matched {
            return Ok(false);
        }
    }
    Ok(any_field)
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every
/// `matchExpressions` entry (In, NotIn, Exists, DoesNotExist) must hold; an
/// empty selector matches everything.
pub fn selector_matches(store: &str, selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, ResolveError> {
    if let Some(match_labels) = &selector.match_labels
        && !match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return Ok(false);
    }
    for expression in selector.match_expressions.iter().flatten() {
        let value = labels.get(&expression.key);
        let values = expression.values.as_deref().unwrap_or_default();
        let invalid = |problem: String| ResolveError::InvalidSelector { store: store.to_string(), problem };
        let holds = match expression.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(invalid(format!("operator {} on key {:?} needs values", expression.operator, expression.key)));
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => return Err(invalid(format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"))),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The namespace of the ServiceAccount a store authenticates as. A
/// SecretStore (`store_namespace` set) may only name its own namespace; a
/// ClusterSecretStore's reference without a namespace means the
/// ExternalSecret's namespace.
pub fn service_account_namespace(
    kind: StoreKind,
    store_namespace: Option<&str>,
    service_account: &ServiceAccountSelector,
    es_namespace: &str,
) -> Result<String, ResolveError> {
    match kind {
        StoreKind::SecretStore => {
            let own = store_namespace.unwrap_or(es_namespace);
            match service_account.namespace.as_deref() {
                Some(requested) if requested != own => Err(ResolveError::ServiceAccountNamespace {
                    store_namespace: own.to_string(),
                    name: service_account.name.clone(),
                    requested: requested.to_string(),
                }),
                _ => Ok(own.to_string()),
            }
        }
        StoreKind::ClusterSecretStore => Ok(service_account
            .namespace
            .clone()
            .unwrap_or_else(|| es_namespace.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn condition() -> ClusterSecretStoreCondition {
        ClusterSecretStoreCondition { namespace_selector: None, namespaces: vec![], namespace_regexes: vec![] }
    }

    #[test]
    fn secret_store_serves_only_its_namespace() {
        assert_eq!(check_secret_store_namespace("s", "team", "team"), Ok(()));
        let error = check_secret_store_namespace("s", "other", "team");
        assert!(matches!(&error, Err(ResolveError::WrongNamespace { .. })));
        assert_eq!(error.err().map(|e| e.reason()), Some("StoreWrongNamespace"));
    }

    #[test]
    fn cluster_store_conditions() {
        let none = BTreeMap::new();
        assert_eq!(check_cluster_store_admits("c", &[], "any", &none), Ok(()));
        let by_name = ClusterSecretStoreCondition { namespaces: vec!["team".into()], ..condition() };
        assert_eq!(check_cluster_store_admits("c", std::slice::from_ref(&by_name), "team", &none), Ok(()));
        assert!(check_cluster_store_admits("c", std::slice::from_ref(&by_name), "teams", &none).is_err());
        let by_regex = ClusterSecretStoreCondition { namespace_regexes: vec!["team-.*".into()], ..condition() };
        assert_eq!(check_cluster_store_admits("c", std::slice::from_ref(&by_regex), "team-a", &none), Ok(()));
        // Whole-name match: the pattern may not match a substring.
        assert!(check_cluster_store_admits("c", std::slice::from_ref(&by_regex), "x-team-a", &none).is_err());
        let both = ClusterSecretStoreCondition {
            namespaces: vec!["team-a".into()],
            namespace_regexes: vec!["team-.*".into()],
            ..condition()
        };
        assert!(check_cluster_store_admits("c", std::slice::from_ref(&both), "team-b", &none).is_err());
        // Any one condition suffices.
        assert_eq!(check_cluster_store_admits("c", &[by_name, both], "team-a", &none), Ok(()));
        assert!(check_cluster_store_admits("c", &[condition()], "team", &none).is_err());
        let bad = ClusterSecretStoreCondition { namespace_regexes: vec!["(".into()], ..condition() };
        assert!(matches!(check_cluster_store_admits("c", &[bad], "x", &none), Err(ResolveError::InvalidRegex { .. })));
    }

    #[test]
    fn namespace_selector_semantics() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("env", "prod")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement { key: "team".into(), operator: "In".into(), values: Some(vec!["a".into(), "b".into()]) },
                LabelSelectorRequirement { key: "legacy".into(), operator: "DoesNotExist".into(), values: None },
                LabelSelectorRequirement { key: "tier".into(), operator: "NotIn".into(), values: Some(vec!["free".into()]) },
                LabelSelectorRequirement { key: "owner".into(), operator: "Exists".into(), values: None },
            ]),
        };
        let ok = labels(&[("env", "prod"), ("team", "a"), ("owner", "x")]);
        assert_eq!(selector_matches("c", &selector, &ok), Ok(true));
        for bad in [
            labels(&[("env", "dev"), ("team", "a"), ("owner", "x")]),
            labels(&[("env", "prod"), ("team", "c"), ("owner", "x")]),
            labels(&[("env", "prod"), ("team", "a"), ("owner", "x"), ("legacy", "1")]),
            labels(&[("env", "prod"), ("team", "a"), ("owner", "x"), ("tier", "free")]),
            labels(&[("env", "prod"), ("team", "a")]),
        ] {
            assert_eq!(selector_matches("c", &selector, &bad), Ok(false), "{bad:?}");
        }
        assert_eq!(selector_matches("c", &LabelSelector::default(), &BTreeMap::new()), Ok(true));
        let unknown = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement { key: "k".into(), operator: "Gt".into(), values: None }]),
            ..Default::default()
        };
        assert!(selector_matches("c", &unknown, &ok).is_err());
        let cond = ClusterSecretStoreCondition { namespace_selector: Some(selector), ..condition() };
        assert_eq!(check_cluster_store_admits("c", &[cond], "any", &ok), Ok(()));
    }

    #[test]
    fn service_account_namespace_rules() {
        let sa = |ns: Option<&str>| ServiceAccountSelector { name: "app".into(), namespace: ns.map(str::to_string), audiences: vec![] };
        assert_eq!(service_account_namespace(StoreKind::SecretStore, Some("team"), &sa(None), "team"), Ok("team".into()));
        assert_eq!(service_account_namespace(StoreKind::SecretStore, Some("team"), &sa(Some("team")), "team"), Ok("team".into()));
        assert!(matches!(
            service_account_namespace(StoreKind::SecretStore, Some("team"), &sa(Some("kube-system")), "team"),
            Err(ResolveError::ServiceAccountNamespace { .. })
        ));
        assert_eq!(service_account_namespace(StoreKind::ClusterSecretStore, None, &sa(None), "team"), Ok("team".into()));
        assert_eq!(service_account_namespace(StoreKind::ClusterSecretStore, None, &sa(Some("infra")), "team"), Ok("infra".into()));
    }
}
