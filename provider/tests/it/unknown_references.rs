//! Resources wired together on both real Terraform CLIs: a REQUIRED
//! attribute of one `secretbridge_test_object` references a computed
//! attribute of another, so it is unknown while validating and planning.
//! Validation must accept it, the plan must carry the unknown (with
//! requires-replace planning a replace when a known prior value may change),
//! apply must get the known value, and the re-plan must be empty.

use crate::acceptance::Workdir;

const APPLY: &[&str] = &["apply", "-auto-approve", "-no-color", "-input=false"];

/// `a` is plain; `b`'s required `name` (requires-replace) comes from `a.id`
/// and its required `content` (in place) from `a.revision`.
fn wired_config(a_name: &str, a_content: &str) -> String {
    format!(
        r#"resource "secretbridge_test_object" "a" {{
  name    = "{a_name}"
  content = "{a_content}"
  owner {{
    team = "core"
  }}
}}

resource "secretbridge_test_object" "b" {{
  name    = "${{secretbridge_test_object.a.id}}-b"
  content = "rev-${{secretbridge_test_object.a.revision}}"
  owner {{
    team = "core"
  }}
}}
"#
    )
}

fn stored(w: &Workdir, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(w.objects().join(format!("{name}.json"))).expect("object file");
    serde_json::from_str(&text).expect("object json")
}

fn wired(version: &str) {
    let w = Workdir::new(version);
    w.write_config(&wired_config("alpha", "v1"));

    // `terraform validate` sees every reference unknown.
    w.ok(&["validate", "-no-color"]);

    // Create both: b's required attributes are known only after a exists.
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("2 to add"), "{plan}");
    assert!(plan.contains("(known after apply)"), "{plan}");
    assert!(!plan.contains("missing field"), "{plan}");
    w.ok(APPLY);
    assert_eq!(stored(&w, "alpha-b")["content"], "rev-1");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after apply not empty:\n{plan}");

    // a updates in place: its revision is unknown in the plan, so b's
    // content is unknown too and b updates in place (no replace).
    w.write_config(&wired_config("alpha", "v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("0 to add, 2 to change, 0 to destroy"), "{plan}");
    assert!(!plan.contains("must be replaced"), "{plan}");
    w.ok(APPLY);
    assert_eq!(stored(&w, "alpha-b")["content"], "rev-2");
    assert_eq!(stored(&w, "alpha-b")["revision"], 2);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after update not empty:\n{plan}");

    // a is replaced: its id is unknown, b's requires-replace name is unknown
    // against a known prior value, so b is replaced as well.
    w.write_config(&wired_config("gamma", "v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("2 to add, 0 to change, 2 to destroy"), "{plan}");
    assert!(plan.contains("secretbridge_test_object.b must be replaced"), "{plan}");
    w.ok(APPLY);
    assert!(!w.objects().join("alpha-b.json").exists(), "old b removed");
    assert_eq!(stored(&w, "gamma-b")["content"], "rev-1");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after replace not empty:\n{plan}");

    // Schema rules still apply to the known values next to an unknown one.
    let bad = wired_config("gamma", "v2").replace("\"${secretbridge_test_object.a.id}-b\"", "\"Not_Valid\"");
    assert!(bad.contains("\"Not_Valid\""), "{bad}");
    w.write_config(&bad);
    // (`terraform validate` evaluates b's content reference as unknown.)
    let out = w.run(&["validate", "-no-color"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("must match the regular expression"), "{text}");

    w.write_config(&wired_config("gamma", "v2"));
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!w.objects().join("gamma.json").exists() && !w.objects().join("gamma-b.json").exists());
}

#[test]
fn required_attribute_from_computed_terraform_1_0_3() {
    wired("1.0.3");
}

#[test]
fn required_attribute_from_computed_terraform_1_15_5() {
    wired("1.15.5");
}
