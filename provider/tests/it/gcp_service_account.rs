//! `secretbridge_gcp_service_account` on both Terraform CLIs against the GCP
//! stand-in: create and an empty re-plan, in-place update, replace on
//! `account_id`, import by email and by resource name with empty plans,
//! drift (deleted out of band, re-created), destroy.

use google_cloud_iam_admin_v1::model::ServiceAccount;

use crate::acceptance::Workdir;
use crate::gcp_common::{GcpEnv, PROJECT, apply, assert_empty_plan, code_of, tag};

fn config(account_id: &str, display_name: &str) -> String {
    format!(
        r#"resource "secretbridge_gcp_service_account" "app" {{
  account_id   = "{account_id}"
  display_name = "{display_name}"
  description  = "reads secrets"
}}
"#
    )
}

fn email(account_id: &str) -> String {
    format!("{account_id}@{PROJECT}.iam.gserviceaccount.com")
}

fn name(account_id: &str) -> String {
    format!("projects/{PROJECT}/serviceAccounts/{}", email(account_id))
}

fn lookup(env: &GcpEnv, account_id: &str) -> Result<ServiceAccount, String> {
    let iam = env.iam();
    env.rt
        .block_on(iam.get_service_account().set_name(name(account_id)).send())
        .map_err(|e| code_of(&e))
}

fn lifecycle(env: &GcpEnv, version: &str) {
    let w = Workdir::new(version);
    let first = format!("reader-{}", tag(version));
    let second = format!("writer-{}", tag(version));

    // Create, then an empty re-plan; computed attributes come from the API.
    env.write_config(&w, &config(&first, "Reader"));
    apply(&w);
    let account = lookup(env, &first).expect("account created");
    assert_eq!(
        (account.display_name.as_str(), account.description.as_str()),
        ("Reader", "reads secrets")
    );
    assert_empty_plan(&w, "after create");
    let state = w.ok(&["show", "-json", "-no-color"]);
    let state: serde_json::Value = serde_json::from_str(&state).expect("show json");
    let values = &state["values"]["root_module"]["resources"][0]["values"];
    assert_eq!(values["email"], email(&first));
    assert_eq!(
        values["member"],
        format!("serviceAccount:{}", email(&first))
    );
    assert_eq!(values["name"], name(&first));
    assert_eq!(values["project"], PROJECT);
    assert_eq!(values["unique_id"], account.unique_id.as_str());

    // display_name updates in place.
    env.write_config(&w, &config(&first, "Reader v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains("updated in-place") && !plan.contains("must be replaced"),
        "{plan}"
    );
    apply(&w);
    let updated = lookup(env, &first).expect("account still there");
    assert_eq!(updated.display_name, "Reader v2");
    assert_eq!(
        updated.unique_id, account.unique_id,
        "same account, patched"
    );
    assert_empty_plan(&w, "after update");

    // account_id replaces the account.
    env.write_config(&w, &config(&second, "Reader v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains("must be replaced") && plan.contains("forces replacement"),
        "{plan}"
    );
    apply(&w);
    assert_eq!(
        lookup(env, &first).expect_err("old account deleted"),
        "NotFound"
    );
    lookup(env, &second).expect("new account created");
    assert_empty_plan(&w, "after replace");

    // Import by email, then by resource name: each plan is empty.
    for id in [email(&second), name(&second)] {
        w.ok(&["state", "rm", "secretbridge_gcp_service_account.app"]);
        w.ok(&[
            "import",
            "-no-color",
            "-input=false",
            "secretbridge_gcp_service_account.app",
            &id,
        ]);
        assert_empty_plan(&w, &format!("after import by {id}"));
    }

    // Drift: deleted out of band, the plan re-creates it.
    let iam = env.iam();
    env.rt
        .block_on(iam.delete_service_account().set_name(name(&second)).send())
        .expect("delete out of band");
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("will be created"), "{plan}");
    apply(&w);
    lookup(env, &second).expect("re-created");
    assert_empty_plan(&w, "after drift repair");

    // Destroy.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(lookup(env, &second).expect_err("destroyed"), "NotFound");
}

#[test]
fn gcp_service_account_lifecycle_on_both_clis() {
    let env = GcpEnv::start();
    for version in ["1.0.3", "1.15.5"] {
        lifecycle(&env, version);
    }
}
