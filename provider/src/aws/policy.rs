//! Pure derivation of an IRSA role's policies from its configuration, and
//! the way back (what a stored policy grants), as canonical JSON so plans
//! and drift checks compare documents exactly.
//!
//! Nothing here talks to AWS: the account and partition come from the OIDC
//! provider's ARN (an IAM OIDC provider and the roles trusting it live in one
//! account), the region from the provider's `aws {}` block.

use secretbridge_shared::terraform::IrsaAccess;
use serde_json::{Map, Value as J, json};

/// The IAM policy language version every derived document declares.
pub const POLICY_VERSION: &str = "2012-10-17";
/// The one action a web-identity trust grants.
pub const ASSUME_ACTION: &str = "sts:AssumeRoleWithWebIdentity";
/// The audience IRSA tokens carry, checked by the trust policy's `aud` condition.
pub const AUDIENCE: &str = secretbridge_shared::names::AWS_DEFAULT_AUDIENCE;

const SID_PARAMETERS: &str = "ReadParameters";
const SID_PARAMETER_PATHS: &str = "ReadParameterPaths";
const SID_SECRETS: &str = "ReadSecrets";
const SID_KEYS: &str = "DecryptKeys";

/// The parts of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`...
    pub partition: String,
    /// `iam`, `ssm`, `kms`...
    pub service: String,
    /// Empty for global services such as IAM.
    pub region: String,
    /// The 12-digit account ID (empty or `aws` for AWS-managed resources).
    pub account: String,
    /// Everything after the fifth colon, e.g. `role/path/name`.
    pub resource: String,
}

impl Arn {
    /// Splits an ARN; `None` when it does not have the six parts or the
    /// partition, service or resource is empty.
    pub fn parse(text: &str) -> Option<Arn> {
        let mut parts = text.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Arn {
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        })
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// What is wrong with an IAM OIDC provider ARN
/// (`arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]`), if anything.
pub fn oidc_provider_arn_problem(text: &str) -> Option<&'static str> {
    let Some(arn) = Arn::parse(text) else {
        return Some("is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)");
    };
    if arn.service != "iam" || !arn.region.is_empty() {
        return Some("is not an IAM ARN (arn:aws:iam::ACCOUNT:...)");
    }
    if !is_account_id(&arn.account) {
        return Some("does not hold a 12-digit account ID");
    }
    match arn.resource.strip_prefix("oidc-provider/") {
        Some(issuer) if !issuer.is_empty() && !issuer.contains("://") => None,
        _ => Some("is not an OIDC provider ARN (its resource must be oidc-provider/HOST[/PATH])"),
    }
}

/// The issuer as IAM condition keys name it (`HOST/PATH`, no scheme), from
/// the provider ARN; `None` for a malformed ARN.
pub fn issuer_of(oidc_provider_arn: &str) -> Option<String> {
    Arn::parse(oidc_provider_arn)?.resource.strip_prefix("oidc-provider/").map(str::to_owned)
}

/// The `sub` of a ServiceAccount token: `system:serviceaccount:NS:SA`.
pub fn trust_subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

/// Where the derived policies point: the role's partition, account and the
/// region of its parameters and secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// ARN partition, e.g. `aws`.
    pub partition: String,
    /// Account ID.
    pub account: String,
    /// Region of the SSM parameters and secrets.
    pub region: String,
}

impl Scope {
    /// The scope of a role trusting `oidc_provider_arn`, reading in `region`.
    pub fn for_provider(oidc_provider_arn: &str, region: &str) -> Option<Scope> {
        let arn = Arn::parse(oidc_provider_arn)?;
        Some(Scope { partition: arn.partition, account: arn.account, region: region.to_owned() })
    }

    /// `arn:P:iam::ACCOUNT:role{path}{name}`.
    pub fn role_arn(&self, path: &str, name: &str) -> String {
        format!("arn:{}:iam::{}:role{path}{name}", self.partition, self.account)
    }

    fn parameter_arn(&self, name: &str) -> String {
        // The name's leading '/' is the ARN's `parameter/` slash, not doubled.
        format!("arn:{}:ssm:{}:{}:parameter/{}", self.partition, self.region, self.account, name.trim_start_matches('/'))
    }

    fn secret_arn(&self, name_or_arn: &str) -> String {
        if name_or_arn.starts_with("arn:") {
            name_or_arn.to_owned()
        } else {
            // Secrets Manager appends a random 6-character suffix to every secret's ARN.
            format!("arn:{}:secretsmanager:{}:{}:secret:{name_or_arn}-??????", self.partition, self.region, self.account)
        }
    }
}

/// The trust policy: only `system:serviceaccount:NS:SA` with the IRSA
/// audience, through the cluster's OIDC provider.
pub fn trust_policy(oidc_provider_arn: &str, namespace: &str, service_account: &str) -> J {
    let issuer = issuer_of(oidc_provider_arn).unwrap_or_default();
    json!({
        "Version": POLICY_VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": oidc_provider_arn },
            "Action": [ASSUME_ACTION],
            "Condition": {
                "StringEquals": {
                    format!("{issuer}:aud"): AUDIENCE,
                    format!("{issuer}:sub"): trust_subject(namespace, service_account),
                }
            }
        }]
    })
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> J {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// The access policy: read exactly the listed parameters and secrets,
/// decrypt with exactly the listed keys. Statements without resources are left out.
pub fn access_policy(scope: &Scope, access: &IrsaAccess) -> J {
    let mut statements = Vec::new();
    let parameters: Vec<String> = access.parameters.iter().map(|p| scope.parameter_arn(p)).collect();
    if !parameters.is_empty() {
        statements.push(statement(SID_PARAMETERS, &["ssm:GetParameter", "ssm:GetParameters"], parameters));
    }
    // A path `/app/*` may also be listed with GetParametersByPath, which IAM
    // authorizes against the path itself (`parameter/app`) and, for deeper
    // paths, what lies under it.
    let paths: Vec<String> = access
        .parameters
        .iter()
        .filter_map(|p| p.strip_suffix("/*"))
        .flat_map(|path| [scope.parameter_arn(path), scope.parameter_arn(&format!("{path}/*"))])
        .collect();
    if !paths.is_empty() {
        statements.push(statement(SID_PARAMETER_PATHS, &["ssm:GetParametersByPath"], paths));
    }
    let secrets: Vec<String> = access.secrets.iter().map(|s| scope.secret_arn(s)).collect();
    if !secrets.is_empty() {
        statements.push(statement(SID_SECRETS, &["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], secrets));
    }
    if !access.kms_keys.is_empty() {
        statements.push(statement(SID_KEYS, &["kms:Decrypt"], access.kms_keys.clone()));
    }
    json!({ "Version": POLICY_VERSION, "Statement": statements })
}

/// Policy elements that may hold one string or a list of them; canonical form is the list.
const LIST_ELEMENTS: &[&str] = &["Action", "NotAction", "Resource", "NotResource"];

fn canonical_value(v: &J, key: Option<&str>) -> J {
    match v {
        J::Object(map) => {
            let mut sorted: Vec<(&String, &J)> = map.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Map::new();
            for (k, inner) in sorted {
                out.insert(k.clone(), canonical_value(inner, Some(k)));
            }
            J::Object(out)
        }
        J::Array(items) => {
            let mut items: Vec<J> = items.iter().map(|i| canonical_value(i, None)).collect();
            // Order carries no meaning in a policy: sort by the canonical text.
            items.sort_by_key(render);
            items.dedup();
            J::Array(items)
        }
        J::String(s) if key.is_some_and(|k| LIST_ELEMENTS.contains(&k)) => J::Array(vec![J::String(s.clone())]),
        other => other.clone(),
    }
}

fn render(v: &J) -> String {
    // serde_json may preserve insertion order; `canonical_value` already sorted keys.
    match v {
        J::Object(map) => {
            let fields: Vec<String> = map.iter().map(|(k, v)| format!("{}:{}", J::String(k.clone()), render(v))).collect();
            format!("{{{}}}", fields.join(","))
        }
        J::Array(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A policy document as canonical JSON: keys sorted, arrays sorted and
/// deduplicated (statements too), single actions and resources as lists.
/// Two documents granting the same thing the same way render identically.
pub fn canonical(doc: &J) -> String {
    render(&canonical_value(doc, None))
}

/// Parses a policy document as IAM returns it (URL-encoded or plain) into canonical JSON.
pub fn canonical_from_iam(raw: &str) -> Result<String, serde_json::Error> {
    let text = if raw.trim_start().starts_with('{') {
        raw.to_owned()
    } else {
        percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
    };
    let doc: J = serde_json::from_str(&text)?;
    Ok(canonical(&doc))
}

fn strings(v: Option<&J>) -> Vec<String> {
    match v {
        Some(J::String(s)) => vec![s.clone()],
        Some(J::Array(items)) => items.iter().filter_map(J::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &J) -> Vec<&J> {
    match doc.get("Statement") {
        Some(J::Array(items)) => items.iter().collect(),
        Some(single @ J::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

/// What a trust policy admits: for every statement allowing
/// `sts:AssumeRoleWithWebIdentity` from a federated principal with a
/// `StringEquals` on `ISSUER:sub = system:serviceaccount:NS:SA`, the
/// (provider ARN, namespace, service account).
pub fn trusted_subjects(doc: &J) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for st in statements(doc) {
        if st.get("Effect").and_then(J::as_str) != Some("Allow") || !strings(st.get("Action")).iter().any(|a| a == ASSUME_ACTION) {
            continue;
        }
        let providers = strings(st.get("Principal").and_then(|p| p.get("Federated")));
        let Some(J::Object(equals)) = st.get("Condition").and_then(|c| c.get("StringEquals")) else {
            continue;
        };
        for provider in providers {
            let Some(issuer) = issuer_of(&provider) else { continue };
            for sub in strings(equals.get(&format!("{issuer}:sub"))) {
                let mut parts = sub.splitn(4, ':');
                if let (Some("system"), Some("serviceaccount"), Some(ns), Some(sa)) = (parts.next(), parts.next(), parts.next(), parts.next()) {
                    found.push((provider.clone(), ns.to_owned(), sa.to_owned()));
                }
            }
        }
    }
    found
}

/// The `access` a document derived by [`access_policy`] grants, read back
/// from its statements (for import and drift); lists come out sorted.
pub fn access_of(doc: &J) -> IrsaAccess {
    let mut access = IrsaAccess::default();
    for st in statements(doc) {
        let resources = strings(st.get("Resource"));
        let actions = strings(st.get("Action"));
        if actions.iter().any(|a| a == "ssm:GetParameter") {
            for r in resources {
                if let Some(arn) = Arn::parse(&r)
                    && let Some(name) = arn.resource.strip_prefix("parameter")
                {
                    access.parameters.push(name.to_owned());
                }
            }
        } else if actions.iter().any(|a| a == "secretsmanager:GetSecretValue") {
            for r in resources {
                let name = Arn::parse(&r)
                    .and_then(|arn| arn.resource.strip_prefix("secret:").and_then(|n| n.strip_suffix("-??????")).map(str::to_owned));
                access.secrets.push(name.unwrap_or(r));
            }
        } else if actions.iter().any(|a| a == "kms:Decrypt") {
            access.kms_keys.extend(resources);
        }
    }
    for list in [&mut access.parameters, &mut access.secrets, &mut access.kms_keys] {
        list.sort();
        list.dedup();
    }
    access
}

/// `current` reordered like `preferred` when both hold the same elements,
/// so a refresh never reports a pure reordering as a change.
pub fn keep_order(current: Vec<String>, preferred: &[String]) -> Vec<String> {
    let mut a = current.clone();
    let mut b = preferred.to_vec();
    a.sort();
    b.sort();
    if a == b { preferred.to_vec() } else { current }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";

    fn scope() -> Scope {
        Scope::for_provider(PROVIDER, "eu-west-1").unwrap()
    }

    #[test]
    fn trust_names_the_provider_and_exactly_one_service_account() {
        let doc = trust_policy(PROVIDER, "apps", "reader");
        let st = &doc["Statement"][0];
        assert_eq!(st["Principal"]["Federated"], PROVIDER);
        assert_eq!(st["Action"], json!(["sts:AssumeRoleWithWebIdentity"]));
        let eq = &st["Condition"]["StringEquals"];
        assert_eq!(eq["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"], "system:serviceaccount:apps:reader");
        assert_eq!(eq["oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud"], "sts.amazonaws.com");
        assert_eq!(trusted_subjects(&doc), vec![(PROVIDER.to_owned(), "apps".to_owned(), "reader".to_owned())]);
    }

    #[test]
    fn parameters_names_and_paths_become_exact_arns() {
        let access = IrsaAccess { parameters: vec!["/app/db/url".into(), "/shared/*".into()], ..Default::default() };
        let doc = access_policy(&scope(), &access);
        let sts = doc["Statement"].as_array().unwrap();
        assert_eq!(sts.len(), 2, "{doc}");
        assert_eq!(sts[0]["Action"], json!(["ssm:GetParameter", "ssm:GetParameters"]));
        assert_eq!(
            sts[0]["Resource"],
            json!(["arn:aws:ssm:eu-west-1:123456789012:parameter/app/db/url", "arn:aws:ssm:eu-west-1:123456789012:parameter/shared/*"])
        );
        assert_eq!(sts[1]["Action"], json!(["ssm:GetParametersByPath"]));
        assert_eq!(
            sts[1]["Resource"],
            json!(["arn:aws:ssm:eu-west-1:123456789012:parameter/shared", "arn:aws:ssm:eu-west-1:123456789012:parameter/shared/*"])
        );
        assert!(!doc.to_string().contains("kms:"), "no key statement without keys");
        assert!(!doc.to_string().contains("secretsmanager:"));
    }

    #[test]
    fn secrets_by_name_get_the_suffix_wildcard_and_arns_stay() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:other-AbCdEf";
        let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let access = IrsaAccess { secrets: vec!["prod/db".into(), arn.into()], kms_keys: vec![key.into()], ..Default::default() };
        let doc = access_policy(&scope(), &access);
        let text = canonical(&doc);
        assert!(text.contains("\"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-??????\""), "{text}");
        assert!(text.contains(&format!("\"{arn}\"")), "{text}");
        assert!(text.contains("\"secretsmanager:DescribeSecret\",\"secretsmanager:GetSecretValue\""), "{text}");
        assert!(text.contains(&format!("\"Action\":[\"kms:Decrypt\"],\"Effect\":\"Allow\",\"Resource\":[\"{key}\"]")), "{text}");
    }

    #[test]
    fn canonical_json_ignores_order_and_single_value_forms() {
        let a = json!({"Version": POLICY_VERSION, "Statement": [
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": ["b", "a"]},
            {"Resource": "x", "Action": ["ssm:GetParameter"], "Effect": "Allow"}
        ]});
        let b = json!({"Statement": [
            {"Action": ["ssm:GetParameter"], "Effect": "Allow", "Resource": ["x"]},
            {"Action": ["kms:Decrypt"], "Resource": ["a", "b", "a"], "Effect": "Allow"}
        ], "Version": POLICY_VERSION});
        assert_eq!(canonical(&a), canonical(&b));
        assert!(canonical(&a).starts_with("{\"Statement\":[{\"Action\":[\"kms:Decrypt\"]"), "{}", canonical(&a));
        let changed = json!({"Version": POLICY_VERSION, "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": ["a"]}]});
        assert_ne!(canonical(&a), canonical(&changed));
    }

    #[test]
    fn iam_url_encoded_documents_decode() {
        let doc = trust_policy(PROVIDER, "apps", "reader");
        let encoded = percent_encoding::utf8_percent_encode(&doc.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
        assert_eq!(canonical_from_iam(&encoded).unwrap(), canonical(&doc));
        assert_eq!(canonical_from_iam(&doc.to_string()).unwrap(), canonical(&doc));
    }

    #[test]
    fn access_reads_back_from_the_derived_policy() {
        let access = IrsaAccess {
            parameters: vec!["/b".into(), "/a/*".into()],
            secrets: vec!["s1".into(), "arn:aws:secretsmanager:eu-west-1:123456789012:secret:full-AbCdEf".into()],
            kms_keys: vec!["arn:aws:kms:eu-west-1:123456789012:key/k".into()],
        };
        let back = access_of(&access_policy(&scope(), &access));
        assert_eq!(back.parameters, vec!["/a/*".to_owned(), "/b".to_owned()]);
        assert_eq!(back.secrets, vec!["arn:aws:secretsmanager:eu-west-1:123456789012:secret:full-AbCdEf".to_owned(), "s1".to_owned()]);
        assert_eq!(back.kms_keys, access.kms_keys);
        assert_eq!(keep_order(back.parameters, &access.parameters), access.parameters);
        assert_eq!(keep_order(vec!["x".into()], &access.parameters), vec!["x".to_owned()]);
    }

    #[test]
    fn arns_are_checked() {
        assert_eq!(oidc_provider_arn_problem(PROVIDER), None);
        assert_eq!(oidc_provider_arn_problem("arn:aws:iam::123456789012:oidc-provider/127.0.0.1:8443"), None);
        assert!(oidc_provider_arn_problem("oidc.eks.amazonaws.com/id/ABC").is_some());
        assert!(oidc_provider_arn_problem("arn:aws:iam::1234:oidc-provider/x").is_some());
        assert!(oidc_provider_arn_problem("arn:aws:iam::123456789012:role/x").is_some());
        assert!(oidc_provider_arn_problem("arn:aws:iam::123456789012:oidc-provider/https://x").is_some());
        assert_eq!(scope().role_arn("/team/", "reader"), "arn:aws:iam::123456789012:role/team/reader");
        assert_eq!(trust_subject("ns", "sa"), "system:serviceaccount:ns:sa");
    }
}
