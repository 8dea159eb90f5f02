//! IAM policy documents and their evaluation, as far as the guard needs it.
//!
//! Supported: `Effect`, `Action`/`NotAction`, `Resource`/`NotResource`,
//! `Principal` (`"*"`, `{"Federated": ..}` or `{"AWS": ..}`), and `Condition` with the
//! string operators (`StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//! `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`), their
//! `...IfExists` forms and the `ForAnyValue:`/`ForAllValues:` set prefixes.
//! A statement with any other condition operator never matches, so an
//! unsupported condition can only make the guard stricter for Allow statements
//! (and laxer for Deny statements; the tests do not rely on such policies).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A parsed IAM policy document (identity policy or role trust policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// One statement of a policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    /// Action patterns; `negated` for `NotAction`.
    pub actions: PatternList,
    /// Resource patterns; `None` when the statement has no Resource (trust policies).
    pub resources: Option<PatternList>,
    /// Principals named by the statement; `None` when the statement has no
    /// Principal (identity policies).
    pub principals: Option<Principals>,
    /// Conditions: operator -> key -> allowed values.
    pub conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// The `Principal` element of a statement. `"Principal": "*"` names `"*"` in both lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    /// `{"Federated": ..}`: identity provider ARNs, or `"*"`.
    pub federated: Vec<String>,
    /// `{"AWS": ..}`: role, session, user or account (`arn:aws:iam::ACCT:root`
    /// or the bare account id) ARNs, or `"*"`.
    pub aws: Vec<String>,
}

/// A list of wildcard patterns, possibly negated (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternList {
    /// The patterns (`*` and `?` are wildcards).
    pub patterns: Vec<String>,
    /// True for `NotAction` / `NotResource`.
    pub negated: bool,
}

/// Why a policy document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The document is not JSON of the IAM policy grammar.
    #[error("policy document is not valid IAM policy JSON: {0}; fix the document stored in IAM")]
    Parse(#[source] serde_json::Error),
    /// A statement has an Effect other than Allow/Deny.
    #[error("policy statement has Effect {0:?}; IAM only accepts \"Allow\" or \"Deny\"")]
    Effect(String),
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(rename = "Statement")]
    statement: OneOrMany<RawStatement>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Deserialize)]
struct RawStatement {
    #[serde(rename = "Effect")]
    effect: String,
    #[serde(rename = "Action")]
    action: Option<OneOrMany<String>>,
    #[serde(rename = "NotAction")]
    not_action: Option<OneOrMany<String>>,
    #[serde(rename = "Resource")]
    resource: Option<OneOrMany<String>>,
    #[serde(rename = "NotResource")]
    not_resource: Option<OneOrMany<String>>,
    #[serde(rename = "Principal")]
    principal: Option<Value>,
    #[serde(rename = "Condition")]
    condition: Option<BTreeMap<String, BTreeMap<String, Value>>>,
}

fn strings_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings_of).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

impl PolicyDocument {
    /// Parses a policy document from its JSON text (already URL-decoded).
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let raw: RawDocument = serde_json::from_str(json).map_err(PolicyError::Parse)?;
        let mut statements = Vec::new();
        for raw in raw.statement.into_vec() {
            let effect = match raw.effect.as_str() {
                "Allow" => Effect::Allow,
                "Deny" => Effect::Deny,
                other => return Err(PolicyError::Effect(other.to_string())),
            };
            let actions = match (raw.action, raw.not_action) {
                (Some(a), _) => PatternList { patterns: a.into_vec(), negated: false },
                (None, Some(n)) => PatternList { patterns: n.into_vec(), negated: true },
                (None, None) => PatternList { patterns: Vec::new(), negated: false },
            };
            let resources = match (raw.resource, raw.not_resource) {
                (Some(r), _) => Some(PatternList { patterns: r.into_vec(), negated: false }),
                (None, Some(n)) => Some(PatternList { patterns: n.into_vec(), negated: true }),
                (None, None) => None,
            };
            let principals = raw.principal.map(|p| match &p {
                Value::String(s) => Principals { federated: vec![s.clone()], aws: vec![s.clone()] },
                Value::Object(map) => Principals {
                    federated: map.get("Federated").map(strings_of).unwrap_or_default(),
                    aws: map.get("AWS").map(strings_of).unwrap_or_default(),
                },
                _ => Principals::default(),
            });
            let conditions = raw
                .condition
                .unwrap_or_default()
                .into_iter()
                .map(|(op, keys)| {
                    let keys = keys
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), strings_of(&v)))
                        .collect();
                    (op, keys)
                })
                .collect();
            statements.push(Statement { effect, actions, resources, principals, conditions });
        }
        Ok(PolicyDocument { statements })
    }
}

/// Matches `text` against an IAM wildcard pattern (`*` = any run, `?` = one character).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case { a.eq_ignore_ascii_case(&b) } else { a == b }
    };
    // Iterative matcher with single-star backtracking: linear in practice.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// What is being asked: one action on one resource, by a principal, with context keys.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The IAM action, e.g. `ssm:GetParameters`.
    pub action: String,
    /// The resource ARN (`*` for actions without a resource); `None` for trust policies.
    pub resource: Option<String>,
    /// Who asks, for trust-policy evaluation; `None` for identity policies.
    pub principal: Option<Principal>,
    /// Condition context: lower-cased key -> values.
    pub context: BTreeMap<String, Vec<String>>,
}

/// Who asks to assume a role, as a trust policy's `Principal` can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A web identity: the IAM OIDC provider ARN.
    Federated(String),
    /// An AWS identity, by every name a statement may use for it (e.g. the
    /// role ARN, the assumed-role session ARN, `arn:aws:iam::ACCT:root`, the
    /// account id). A statement's `"*"` only matches when `"*"` is listed, so
    /// a caller can ask "does the trust name me directly?".
    Aws(Vec<String>),
}

/// The outcome of evaluating a set of policies for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing matched.
    ImplicitDeny,
}

fn list_matches(list: &PatternList, value: &str, ignore_case: bool) -> bool {
    let any = list.patterns.iter().any(|p| wildcard_match(p, value, ignore_case));
    any != list.negated
}

fn single_value_matches(base_op: &str, wanted: &[String], actual: &str) -> Option<bool> {
    let r = match base_op {
        "StringEquals" => wanted.iter().any(|w| w == actual),
        "StringNotEquals" => !wanted.iter().any(|w| w == actual),
        "StringEqualsIgnoreCase" => wanted.iter().any(|w| w.eq_ignore_ascii_case(actual)),
        "StringNotEqualsIgnoreCase" => !wanted.iter().any(|w| w.eq_ignore_ascii_case(actual)),
        "StringLike" => wanted.iter().any(|w| wildcard_match(w, actual, false)),
        "StringNotLike" => !wanted.iter().any(|w| wildcard_match(w, actual, false)),
        _ => return None,
    };
    Some(r)
}

fn condition_holds(op: &str, key: &str, wanted: &[String], context: &BTreeMap<String, Vec<String>>) -> bool {
    let (set_mode, rest) = if let Some(r) = op.strip_prefix("ForAnyValue:") {
        (Some(true), r)
    } else if let Some(r) = op.strip_prefix("ForAllValues:") {
        (Some(false), r)
    } else {
        (None, op)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    let negated = base.contains("Not");
    let actual = context.get(key).filter(|v| !v.is_empty());
    let Some(values) = actual else {
        // Missing key: IfExists and negated operators hold, ForAllValues holds vacuously.
        return if_exists || negated || set_mode == Some(false);
    };
    let mut results = values.iter().map(|v| single_value_matches(base, wanted, v));
    match set_mode {
        Some(true) => results.any(|r| r == Some(true)),
        Some(false) | None => results.all(|r| r == Some(true)),
    }
}

impl Statement {
    fn applies_to(&self, req: &Request) -> bool {
        if !list_matches(&self.actions, &req.action, true) {
            return false;
        }
        if let Some(resource) = &req.resource {
            match &self.resources {
                Some(list) => {
                    if !list_matches(list, resource, false) {
                        return false;
                    }
                }
                None => return false,
            }
        }
        if let Some(principal) = &req.principal {
            let Some(named) = &self.principals else { return false };
            let matches = match principal {
                Principal::Federated(provider) => named.federated.iter().any(|f| f == "*" || f == provider),
                Principal::Aws(names) => named.aws.iter().any(|a| names.contains(a)),
            };
            if !matches {
                return false;
            }
        }
        self.conditions.iter().all(|(op, keys)| {
            keys.iter().all(|(key, wanted)| condition_holds(op, key, wanted, &req.context))
        })
    }
}

/// Evaluates `req` against all `policies`: explicit Deny wins over Allow, default deny.
pub fn evaluate<'a>(policies: impl IntoIterator<Item = &'a PolicyDocument>, req: &Request) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for statement in &policy.statements {
            if statement.applies_to(req) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed { Decision::Allow } else { Decision::ImplicitDeny }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(json: &str) -> PolicyDocument {
        PolicyDocument::parse(json).unwrap()
    }

    fn data_req(action: &str, resource: &str) -> Request {
        Request { action: action.into(), resource: Some(resource.into()), ..Default::default() }
    }

    #[test]
    fn wildcards_follow_iam_rules() {
        assert!(wildcard_match("arn:aws:ssm:*:*:parameter/app/*", "arn:aws:ssm:us-east-1:1:parameter/app/db", false));
        assert!(!wildcard_match("arn:aws:ssm:*:*:parameter/app/*", "arn:aws:ssm:us-east-1:1:parameter/other", false));
        assert!(wildcard_match("secret:db-??????", "secret:db-AbC123", false));
        assert!(!wildcard_match("secret:db-??????", "secret:db-AbC1234", false));
        assert!(wildcard_match("ssm:get*", "ssm:GetParameters", true));
        assert!(!wildcard_match("ssm:get*", "ssm:GetParameters", false));
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("a*b*c", "aXbYbZc", false));
        assert!(!wildcard_match("a*b*c", "aXbYbZ", false));
    }

    #[test]
    fn explicit_deny_beats_allow_and_default_is_deny() {
        let p = doc(r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ssm:GetParameter*","Resource":"*"},
            {"Effect":"Deny","Action":["ssm:GetParameters"],"Resource":"arn:aws:ssm:*:*:parameter/secret"}]}"#);
        assert_eq!(evaluate([&p], &data_req("ssm:GetParameters", "arn:aws:ssm:r:1:parameter/secret")), Decision::ExplicitDeny);
        assert_eq!(evaluate([&p], &data_req("ssm:GetParameters", "arn:aws:ssm:r:1:parameter/ok")), Decision::Allow);
        assert_eq!(evaluate([&p], &data_req("kms:Decrypt", "arn:aws:kms:r:1:key/k")), Decision::ImplicitDeny);
    }

    #[test]
    fn not_resource_and_not_action_invert() {
        let p = doc(r#"{"Statement":{"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:x:secret"}}"#);
        assert_eq!(evaluate([&p], &data_req("ssm:GetParameter", "arn:x:public")), Decision::Allow);
        assert_eq!(evaluate([&p], &data_req("ssm:GetParameter", "arn:x:secret")), Decision::ImplicitDeny);
        assert_eq!(evaluate([&p], &data_req("iam:GetRole", "arn:x:public")), Decision::ImplicitDeny);
    }

    fn trust_req(sub: &str) -> Request {
        let mut context = BTreeMap::new();
        context.insert("issuer.example/id/1:sub".to_string(), vec![sub.to_string()]);
        context.insert("issuer.example/id/1:aud".to_string(), vec!["sts.amazonaws.com".to_string()]);
        Request {
            action: "sts:AssumeRoleWithWebIdentity".into(),
            resource: None,
            principal: Some(Principal::Federated("arn:aws:iam::1:oidc-provider/issuer.example/id/1".into())),
            context,
        }
    }

    #[test]
    fn trust_policy_conditions_on_sub_and_aud() {
        let p = doc(r#"{"Statement":[{"Effect":"Allow",
            "Principal":{"Federated":"arn:aws:iam::1:oidc-provider/issuer.example/id/1"},
            "Action":"sts:AssumeRoleWithWebIdentity",
            "Condition":{"StringEquals":{"issuer.example/id/1:aud":"sts.amazonaws.com"},
                         "StringLike":{"Issuer.example/id/1:SUB":"system:serviceaccount:app:*"}}}]}"#);
        assert_eq!(evaluate([&p], &trust_req("system:serviceaccount:app:reader")), Decision::Allow);
        assert_eq!(evaluate([&p], &trust_req("system:serviceaccount:other:reader")), Decision::ImplicitDeny);
        let mut other_principal = trust_req("system:serviceaccount:app:reader");
        other_principal.principal = Some(Principal::Federated("arn:aws:iam::1:oidc-provider/elsewhere".into()));
        assert_eq!(evaluate([&p], &other_principal), Decision::ImplicitDeny);
    }

    fn assume_req(names: &[&str]) -> Request {
        Request {
            action: "sts:AssumeRole".into(),
            principal: Some(Principal::Aws(names.iter().map(|n| n.to_string()).collect())),
            ..Default::default()
        }
    }

    #[test]
    fn trust_policy_matches_aws_principals_by_name() {
        let p = doc(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:role/first"]},
            "Action":"sts:AssumeRole"}]}"#);
        assert_eq!(evaluate([&p], &assume_req(&["arn:aws:iam::1:role/first", "arn:aws:sts::1:assumed-role/first/s"])), Decision::Allow);
        assert_eq!(evaluate([&p], &assume_req(&["arn:aws:iam::1:role/other"])), Decision::ImplicitDeny);
        let fed = Request { principal: Some(Principal::Federated("arn:aws:iam::1:role/first".into())), ..assume_req(&[]) };
        assert_eq!(evaluate([&p], &fed), Decision::ImplicitDeny, "an AWS principal is not a federated one");
        let any = doc(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#);
        assert_eq!(evaluate([&any], &assume_req(&["*", "arn:aws:iam::1:role/x"])), Decision::Allow);
        assert_eq!(evaluate([&any], &assume_req(&["arn:aws:iam::1:role/x"])), Decision::ImplicitDeny, "\"*\" only when asked for");
    }

    #[test]
    fn set_operators_and_missing_keys() {
        let p = doc(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:*",
            "Condition":{"ForAnyValue:StringEquals":{"issuer.example/id/1:sub":["a","system:serviceaccount:x:y"]},
                         "StringEqualsIfExists":{"absent:key":"v"}}}]}"#);
        assert_eq!(evaluate([&p], &trust_req("system:serviceaccount:x:y")), Decision::Allow);
        assert_eq!(evaluate([&p], &trust_req("b")), Decision::ImplicitDeny);
        let q = doc(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:*",
            "Condition":{"StringEquals":{"absent:key":"v"}}}]}"#);
        assert_eq!(evaluate([&q], &trust_req("x")), Decision::ImplicitDeny);
        let r = doc(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:*",
            "Condition":{"NumericLessThan":{"issuer.example/id/1:sub":"3"}}}]}"#);
        assert_eq!(evaluate([&r], &trust_req("1")), Decision::ImplicitDeny, "unsupported operators never match");
    }

    #[test]
    fn bad_effect_is_an_error() {
        assert!(matches!(PolicyDocument::parse(r#"{"Statement":{"Effect":"Maybe","Action":"*"}}"#), Err(PolicyError::Effect(_))));
        assert!(matches!(PolicyDocument::parse("not json"), Err(PolicyError::Parse(_))));
    }
}
