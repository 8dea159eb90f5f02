//! `secretbridge_gcp_secret_access` on both Terraform CLIs against the GCP
//! stand-in: create with the member wired from a service account, the set
//! diff in the plan when secrets are added and removed, drift (member removed
//! out of band is re-added), import with an empty plan, and destroy leaving a
//! foreign member of the same role on the same secret intact; and
//! `scope = "project"`, which grants on the project and moves back in place.

use google_cloud_iam_v1::model::Policy;
use google_cloud_resourcemanager_v3::client::Projects;

use crate::acceptance::Workdir;
use crate::gcp_common::{GcpEnv, PROJECT, apply, assert_empty_plan, bearer, grants, tag};

const ACCESSOR: &str = "roles/secretmanager.secretAccessor";
const FOREIGN: &str = "user:foreign@example.com";

fn config(account_id: &str, secrets: &[String]) -> String {
    let list = secrets
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"resource "secretbridge_gcp_service_account" "app" {{
  account_id = "{account_id}"
}}

resource "secretbridge_gcp_secret_access" "app" {{
  member  = secretbridge_gcp_service_account.app.member
  secrets = [{list}]
}}
"#
    )
}

fn policy(env: &GcpEnv, secret: &str) -> Policy {
    let sm = env.secret_manager();
    env.rt
        .block_on(
            sm.get_iam_policy()
                .set_resource(format!("projects/{PROJECT}/secrets/{secret}"))
                .send(),
        )
        .expect("secret policy")
}

fn holds(env: &GcpEnv, secret: &str, member: &str) -> bool {
    grants(&policy(env, secret), ACCESSOR, member)
}

fn lifecycle(env: &GcpEnv, version: &str) {
    let w = Workdir::new(version);
    let t = tag(version);
    let (db, api) = (format!("db-{t}"), format!("api-{t}"));
    for secret in [&db, &api] {
        env.standin
            .seed_secret(PROJECT, secret, &[b"v1"])
            .expect("seed secret");
    }
    env.standin
        .grant(
            &format!("projects/{PROJECT}/secrets/{db}"),
            ACCESSOR,
            FOREIGN,
        )
        .expect("seed the foreign member");
    let account_id = format!("access-{t}");
    let member = format!("serviceAccount:{account_id}@{PROJECT}.iam.gserviceaccount.com");

    // Create on one secret only (secret-level, not project-wide); re-plan empty.
    env.write_config(&w, &config(&account_id, std::slice::from_ref(&db)));
    apply(&w);
    assert!(holds(env, &db, &member) && holds(env, &db, FOREIGN));
    assert!(
        !holds(env, &api, &member),
        "only the listed secret is granted"
    );
    assert_empty_plan(&w, "after create");

    // Adding a secret (by full name) updates in place; the plan shows it.
    let api_full = format!("projects/{PROJECT}/secrets/{api}");
    env.write_config(&w, &config(&account_id, &[db.clone(), api_full.clone()]));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains("updated in-place") && plan.contains(&format!("+ \"{api_full}\"")),
        "{plan}"
    );
    apply(&w);
    assert!(holds(env, &api, &member));
    assert_empty_plan(&w, "after adding a secret");

    // Removing one updates in place too, and leaves the foreign member.
    env.write_config(&w, &config(&account_id, std::slice::from_ref(&api_full)));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains("updated in-place") && plan.contains(&format!("- \"{db}\"")),
        "{plan}"
    );
    assert!(!plan.contains("must be replaced"), "{plan}");
    apply(&w);
    assert!(!holds(env, &db, &member) && holds(env, &db, FOREIGN));
    assert_empty_plan(&w, "after removing a secret");

    // Drift: the member removed out of band is detected and re-added.
    let sm = env.secret_manager();
    let current = policy(env, &api);
    let stripped = current.clone().set_bindings(
        current
            .bindings
            .iter()
            .cloned()
            .map(|b| {
                let members: Vec<String> = b
                    .members
                    .iter()
                    .filter(|m| **m != member)
                    .cloned()
                    .collect();
                b.set_members(members)
            })
            .filter(|b| !b.members.is_empty()),
    );
    env.rt
        .block_on(
            sm.set_iam_policy()
                .set_resource(&api_full)
                .set_policy(stripped)
                .send(),
        )
        .expect("remove out of band");
    assert!(!holds(env, &api, &member));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains(&format!("+ \"{api_full}\"")),
        "{plan}"
    );
    apply(&w);
    assert!(holds(env, &api, &member));
    assert_empty_plan(&w, "after drift repair");

    // Import, then an empty plan.
    w.ok(&["state", "rm", "secretbridge_gcp_secret_access.app"]);
    w.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "secretbridge_gcp_secret_access.app",
        &format!("{member}|{api_full}"),
    ]);
    assert_empty_plan(&w, "after import");

    // Destroy removes only our member.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!holds(env, &api, &member));
    assert!(holds(env, &db, FOREIGN), "the foreign member is untouched");
}

#[test]
fn gcp_secret_access_lifecycle_on_both_clis() {
    let env = GcpEnv::start();
    for version in ["1.0.3", "1.15.5"] {
        lifecycle(&env, version);
    }
}

/// Whether the project's own policy grants `member` the accessor role.
fn project_holds(env: &GcpEnv, member: &str) -> bool {
    let projects = env
        .rt
        .block_on(
            Projects::builder()
                .with_endpoint(env.standin.endpoint())
                .with_credentials(bearer(env.standin.admin_token()))
                .build(),
        )
        .expect("Resource Manager client");
    let policy = env
        .rt
        .block_on(
            projects
                .get_iam_policy()
                .set_resource(format!("projects/{PROJECT}"))
                .send(),
        )
        .expect("project policy");
    grants(&policy, ACCESSOR, member)
}

fn project_scope_config(account_id: &str, scope: &str) -> String {
    format!(
        r#"resource "secretbridge_gcp_service_account" "app" {{
  account_id = "{account_id}"
}}

resource "secretbridge_gcp_secret_access" "app" {{
  member = secretbridge_gcp_service_account.app.member
  {scope}
}}
"#
    )
}

#[test]
fn gcp_secret_access_project_scope_on_both_clis() {
    let env = GcpEnv::start();
    for version in ["1.0.3", "1.15.5"] {
        let w = Workdir::new(version);
        let t = tag(version);
        let secret = format!("wide-{t}");
        env.standin
            .seed_secret(PROJECT, &secret, &[b"v1"])
            .expect("seed secret");
        let account_id = format!("wide-{t}-reader");
        let member = format!("serviceAccount:{account_id}@{PROJECT}.iam.gserviceaccount.com");

        // Project scope grants on the project policy, not on the secret.
        env.write_config(&w, &project_scope_config(&account_id, "scope = \"project\""));
        apply(&w);
        assert!(project_holds(&env, &member), "project-wide grant");
        assert!(!holds(&env, &secret, &member), "no secret-level grant");
        assert_empty_plan(&w, "after a project-scope create");

        // Narrowing to one secret updates in place and drops the project grant.
        env.write_config(
            &w,
            &project_scope_config(&account_id, &format!("secrets = [\"{secret}\"]")),
        );
        let (changes, plan) = w.plan_has_changes();
        assert!(changes && plan.contains("updated in-place"), "{plan}");
        assert!(!plan.contains("must be replaced"), "{plan}");
        apply(&w);
        assert!(!project_holds(&env, &member), "the project grant is gone");
        assert!(holds(&env, &secret, &member));
        assert_empty_plan(&w, "after narrowing to one secret");

        w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert!(!project_holds(&env, &member) && !holds(&env, &secret, &member));
    }
}
