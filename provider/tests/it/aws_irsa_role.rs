//! `secretbridge_aws_irsa_role` on both Terraform CLIs against moto behind
//! the aws-guard: create with the derived trust and inline policy, empty
//! re-plan, in-place update (tags; a new parameter path shows in the plan
//! and widens the policy), out-of-band drift of the trust policy and of the
//! inline policies (an edited document, a foreign policy) detected and
//! repaired, replace on rename, import by name with an empty plan, destroy
//! with IAM listed afterwards. And bad input rejected at plan time with the
//! attribute's line and a fix, before any AWS call.

use serde_json::{Value, json};

use crate::acceptance::Workdir;
use crate::aws_common::{ACCOUNT, AwsEnv, REGION, apply, assert_empty_plan, seed_oidc_provider, shown};

const ADDRESS: &str = "secretbridge_aws_irsa_role.reader";
const ISSUER: &str = "oidc.example.test/id/ROLETEST";

fn provider_arn(tag: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}-{tag}")
}

/// A customer-managed key the role may decrypt with.
const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";

/// The role's settings that vary across the lifecycle.
struct Settings<'a> {
    name: &'a str,
    team: &'a str,
    parameters: &'a [&'a str],
    max_session_duration: u32,
    permissions_boundary: Option<&'a str>,
}

fn config(tag: &str, settings: &Settings) -> String {
    let parameters = settings.parameters.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let boundary = settings.permissions_boundary.map(|arn| format!("  permissions_boundary = \"{arn}\"\n")).unwrap_or_default();
    format!(
        r#"resource "secretbridge_aws_irsa_role" "reader" {{
  name                 = "{}"
  path                 = "/apps/"
  description          = "reads app config"
  max_session_duration = {}
{boundary}  oidc_provider_arn    = "{}"
  namespace            = "apps"
  service_account      = "reader"
  access = {{
    parameters = [{parameters}]
    secrets    = ["prod/db"]
    kms_keys   = ["{KEY_ARN}"]
  }}
  tags = {{
    team = "{}"
  }}
}}
"#,
        settings.name,
        settings.max_session_duration,
        provider_arn(tag),
        settings.team
    )
}

fn decode(raw: &str) -> Value {
    let text = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
    serde_json::from_str(&text).expect("policy JSON")
}

fn trust(env: &AwsEnv, role: &str) -> Option<Value> {
    match env.rt.block_on(env.iam().get_role().role_name(role).send()) {
        Ok(out) => Some(decode(out.role().and_then(|r| r.assume_role_policy_document()).expect("trust document"))),
        Err(e) => {
            assert_eq!(aws_sdk_iam::error::ProvideErrorMetadata::code(&e), Some("NoSuchEntity"), "{e:?}");
            None
        }
    }
}

fn inline_names(env: &AwsEnv, role: &str) -> Vec<String> {
    let out = env.rt.block_on(env.iam().list_role_policies().role_name(role).send()).expect("ListRolePolicies");
    out.policy_names().to_vec()
}

fn inline(env: &AwsEnv, role: &str) -> Value {
    let out = env
        .rt
        .block_on(env.iam().get_role_policy().role_name(role).policy_name("secretbridge-access").send())
        .expect("GetRolePolicy");
    decode(out.policy_document())
}

/// The resources of the statements allowing `action`.
fn resources_for(doc: &Value, action: &str) -> Vec<String> {
    let mut out = Vec::new();
    for st in doc["Statement"].as_array().expect("statements") {
        let actions: Vec<&str> = match &st["Action"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if actions.contains(&action) {
            match &st["Resource"] {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned)),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn parameter_arn(name: &str) -> String {
    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}")
}

fn lifecycle(env: &AwsEnv, version: &str) {
    let w = Workdir::new(version);
    let tag = if version == "1.0.3" { "old" } else { "new" };
    let first = format!("reader-{tag}");
    let second = format!("reader2-{tag}");
    let issuer = format!("{ISSUER}-{tag}");
    seed_oidc_provider(env, &issuer);

    // Create: trust admits exactly apps/reader with the IRSA audience; the
    // one inline policy reads exactly the parameter and the secret.
    let boundary = env
        .rt
        .block_on(
            env.iam()
                .create_policy()
                .policy_name(format!("boundary-{tag}"))
                .policy_document(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ssm:Get*", "secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"}]}).to_string())
                .send(),
        )
        .expect("seed the boundary policy")
        .policy()
        .and_then(|p| p.arn())
        .expect("boundary ARN")
        .to_owned();
    let mut settings = Settings { name: &first, team: "a", parameters: &["/app/db/url"], max_session_duration: 3600, permissions_boundary: None };
    env.write_config(&w, &config(tag, &settings));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes, "{plan}");
    // The ARN and the grant are known before anything exists.
    assert!(plan.contains(&format!("\"arn:aws:iam::{ACCOUNT}:role/apps/{first}\"")), "role ARN (with its path) known at plan:\n{plan}");
    assert!(plan.contains(&parameter_arn("/app/db/url")), "grant shown at plan:\n{plan}");
    apply(&w);
    let doc = trust(env, &first).expect("role created");
    let st = &doc["Statement"][0];
    assert_eq!(doc["Statement"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(st["Principal"]["Federated"], provider_arn(tag));
    assert_eq!(st["Condition"]["StringEquals"][format!("{issuer}:sub")], "system:serviceaccount:apps:reader");
    assert_eq!(st["Condition"]["StringEquals"][format!("{issuer}:aud")], "sts.amazonaws.com");
    assert_eq!(inline_names(env, &first), vec!["secretbridge-access".to_owned()]);
    let access = inline(env, &first);
    assert_eq!(resources_for(&access, "ssm:GetParameter"), vec![parameter_arn("/app/db/url")]);
    assert_eq!(resources_for(&access, "ssm:GetParametersByPath"), Vec::<String>::new());
    assert_eq!(
        resources_for(&access, "secretsmanager:GetSecretValue"),
        vec![format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-??????")]
    );
    assert_eq!(resources_for(&access, "kms:Decrypt"), vec![KEY_ARN.to_owned()], "decrypt with the listed key only");
    let role = env.rt.block_on(env.iam().get_role().role_name(&first).send()).expect("GetRole");
    let role = role.role().expect("role");
    assert_eq!(role.path(), "/apps/");
    assert_eq!(role.max_session_duration(), Some(3600));
    assert!(role.permissions_boundary().is_none(), "no boundary configured");
    let values = shown(&w, ADDRESS);
    assert_eq!(values["arn"], format!("arn:aws:iam::{ACCOUNT}:role/apps/{first}"));
    assert_eq!(values["id"], first.as_str());
    assert_eq!(values["policies_in_sync"], true);
    let shown_access: Value = serde_json::from_str(values["access_policy_json"].as_str().expect("access json")).expect("json");
    assert_eq!(resources_for(&shown_access, "ssm:GetParameter"), vec![parameter_arn("/app/db/url")]);
    assert_empty_plan(&w, "after create");

    // In place: a new parameter path, a tag, a longer session and a
    // permissions boundary. The plan shows the new grant.
    settings = Settings { team: "b", parameters: &["/app/db/url", "/app/shared/*"], max_session_duration: 7200, permissions_boundary: Some(&boundary), ..settings };
    env.write_config(&w, &config(tag, &settings));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    assert!(plan.contains("\"/app/shared/*\""), "the plan names the new parameter:\n{plan}");
    // The derived grant is computed at plan time: the new ARNs are in the plan.
    assert!(plan.contains(&parameter_arn("/app/shared/*")), "the plan shows the new grant:\n{plan}");
    assert!(plan.contains(&parameter_arn("/app/shared")), "the plan shows the path grant:\n{plan}");
    apply(&w);
    let access = inline(env, &first);
    assert_eq!(
        resources_for(&access, "ssm:GetParameter"),
        vec![parameter_arn("/app/db/url"), parameter_arn("/app/shared/*")]
    );
    assert_eq!(
        resources_for(&access, "ssm:GetParametersByPath"),
        vec![parameter_arn("/app/shared"), parameter_arn("/app/shared/*")]
    );
    let role = env.rt.block_on(env.iam().get_role().role_name(&first).send()).expect("GetRole");
    let tags: Vec<(String, String)> =
        role.role().expect("role").tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert_eq!(tags, vec![("team".to_owned(), "b".to_owned())]);
    assert_eq!(role.role().and_then(|r| r.max_session_duration()), Some(7200));
    assert_eq!(
        role.role().and_then(|r| r.permissions_boundary()).and_then(|b| b.permissions_boundary_arn()),
        Some(boundary.as_str()),
        "boundary attached in place"
    );
    assert_empty_plan(&w, "after update");

    // Drift 1: the trust policy edited out of band to admit another SA.
    let mut edited = trust(env, &first).expect("role");
    edited["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")] = json!("system:serviceaccount:apps:intruder");
    env.rt
        .block_on(env.iam().update_assume_role_policy().role_name(&first).policy_document(edited.to_string()).send())
        .expect("edit trust out of band");
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("intruder") && plan.contains("updated in-place"), "{plan}");
    apply(&w);
    let doc = trust(env, &first).expect("role");
    assert_eq!(doc["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")], "system:serviceaccount:apps:reader");
    assert_empty_plan(&w, "after trust repair");

    // Drift 2: the inline policy widened and a foreign inline policy added.
    let mut widened = inline(env, &first);
    widened["Statement"].as_array_mut().expect("statements").push(json!({
        "Effect": "Allow", "Action": "ssm:PutParameter", "Resource": "*"
    }));
    for (name, doc) in [("secretbridge-access", widened), ("rogue", json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))] {
        env.rt
            .block_on(env.iam().put_role_policy().role_name(&first).policy_name(name).policy_document(doc.to_string()).send())
            .expect("edit inline policies out of band");
    }
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("policies_in_sync") && plan.contains("updated in-place"), "{plan}");
    apply(&w);
    assert_eq!(inline_names(env, &first), vec!["secretbridge-access".to_owned()], "foreign policy removed");
    let access = inline(env, &first);
    assert_eq!(resources_for(&access, "ssm:PutParameter"), Vec::<String>::new(), "widening removed: {access}");
    assert_empty_plan(&w, "after inline policy repair");

    // Rename replaces the role.
    settings = Settings { name: &second, ..settings };
    env.write_config(&w, &config(tag, &settings));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("must be replaced") && plan.contains("forces replacement"), "{plan}");
    apply(&w);
    assert!(trust(env, &first).is_none(), "old role deleted");
    assert!(trust(env, &second).is_some(), "new role created");
    assert_empty_plan(&w, "after replace");

    // Import by role name, then an empty plan.
    w.ok(&["state", "rm", ADDRESS]);
    w.ok(&["import", "-no-color", "-input=false", ADDRESS, &second]);
    assert_empty_plan(&w, "after import");

    // Destroy leaves no role of this lifecycle.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let left: Vec<String> = env.role_names().into_iter().filter(|r| r == &first || r == &second).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    env.rt
        .block_on(env.iam().delete_policy().policy_arn(&boundary).send())
        .expect("the boundary policy is detachable: no role of ours still uses it");
}

#[test]
fn aws_irsa_role_lifecycle_on_both_clis() {
    let env = AwsEnv::start(None);
    for version in ["1.0.3", "1.15.5"] {
        lifecycle(&env, version);
    }
    assert!(env.role_names().is_empty(), "IAM still lists roles {:?}", env.role_names());
}

const BAD: &str = r#"resource "secretbridge_aws_irsa_role" "bad" {
  name              = "bad"
  oidc_provider_arn = "oidc.eks.amazonaws.com/id/ABC"
  namespace         = "Apps_NS"
  service_account   = "Bad_SA"
  access = {
    parameters = ["app/db/url"]
    kms_keys   = ["not-an-arn"]
  }
}

resource "secretbridge_aws_irsa_role" "empty" {
  name              = "empty"
  oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.example.test"
  namespace         = "apps"
  service_account   = "reader"
  access = {
    parameters = []
  }
}

resource "secretbridge_aws_oidc_provider" "bad" {
  url = "http://oidc.example.test"
}
"#;

#[test]
fn bad_aws_input_fails_at_plan_with_attribute_paths() {
    let env = AwsEnv::start(None);
    for version in ["1.0.3", "1.15.5"] {
        let w = Workdir::new(version);
        env.write_config(&w, BAD);
        let out = w.run(&["plan", "-no-color", "-input=false"]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{text}");
        // Each offending attribute is quoted from its line.
        for line in [
            "oidc_provider_arn = \"oidc.eks.amazonaws.com/id/ABC\"",
            "namespace         = \"Apps_NS\"",
            "service_account   = \"Bad_SA\"",
            "url = \"http://oidc.example.test\"",
        ] {
            assert!(text.contains(line), "{line} not pointed at:\n{text}");
        }
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for message in [
            "Invalid OIDC provider ARN",
            "use secretbridge_aws_oidc_provider.NAME.arn",
            "Invalid Kubernetes namespace",
            "Invalid Kubernetes ServiceAccount name",
            "must be a DNS label",
            "Invalid parameter name",
            "must start with '/'",
            "Invalid KMS key ARN",
            "Empty access",
            "list at least one of parameters, secrets or kms_keys",
            "must match the regular expression ^https://",
        ] {
            assert!(words.contains(message), "{message} missing:\n{text}");
        }
        assert_eq!(env.guard.stats().calls.values().sum::<u64>(), 0, "nothing reached AWS: {:?}", env.guard.stats());
    }
}
