//! `secretbridge_gcp_workload_identity` on both Terraform CLIs against the GCP
//! stand-in: create, empty re-plan, in-place update of the KSA, replace on
//! another GSA, import, drift (member removed out of band re-added), destroy
//! leaving a foreign member of the same role intact; and the concurrency
//! proof: two writers editing the same policy at once both land through the
//! etag retry.

use std::sync::Arc;

use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_v1::model::Policy;
use terraform_provider_secretbridge::gcp;

use crate::acceptance::Workdir;
use crate::gcp_common::{GcpEnv, PROJECT, apply, assert_empty_plan, grants, tag};

const WI_USER: &str = "roles/iam.workloadIdentityUser";
const POOL: &str = "p.svc.id.goog";

fn ksa_member(namespace: &str, ksa: &str) -> String {
    format!("serviceAccount:{POOL}[{namespace}/{ksa}]")
}

fn gsa_name(email: &str) -> String {
    format!("projects/{PROJECT}/serviceAccounts/{email}")
}

fn policy(env: &GcpEnv, email: &str) -> Policy {
    let iam = env.iam();
    env.rt
        .block_on(iam.get_iam_policy().set_resource(gsa_name(email)).send())
        .expect("GSA policy")
}

fn holds(env: &GcpEnv, email: &str, member: &str) -> bool {
    grants(&policy(env, email), WI_USER, member)
}

fn config(service_account: &str, ksa: &str) -> String {
    format!(
        r#"resource "secretbridge_gcp_workload_identity" "eso" {{
  service_account            = "{service_account}"
  namespace                  = "apps"
  kubernetes_service_account = "{ksa}"
}}
"#
    )
}

fn lifecycle(env: &GcpEnv, version: &str) {
    let w = Workdir::new(version);
    let t = tag(version);
    let first = env
        .standin
        .seed_service_account(PROJECT, &format!("wi-first-{t}"))
        .expect("seed GSA");
    let second = env
        .standin
        .seed_service_account(PROJECT, &format!("wi-second-{t}"))
        .expect("seed GSA");
    let foreign = ksa_member("other", "foreign");
    env.standin
        .grant(&gsa_name(&first), WI_USER, &foreign)
        .expect("seed the foreign member");

    // Create; the computed member uses the default pool; re-plan empty.
    env.write_config(&w, &config(&first, "eso"));
    apply(&w);
    assert!(holds(env, &first, &ksa_member("apps", "eso")) && holds(env, &first, &foreign));
    let shown: serde_json::Value =
        serde_json::from_str(&w.ok(&["show", "-json", "-no-color"])).expect("show json");
    let values = &shown["values"]["root_module"]["resources"][0]["values"];
    assert_eq!(values["member"], ksa_member("apps", "eso"));
    assert_eq!(values["workload_pool"], POOL);
    assert_empty_plan(&w, "after create");

    // A new KSA updates in place: old member out, new in, foreign kept.
    env.write_config(&w, &config(&first, "eso-2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(
        changes && plan.contains("updated in-place") && !plan.contains("must be replaced"),
        "{plan}"
    );
    apply(&w);
    assert!(holds(env, &first, &ksa_member("apps", "eso-2")));
    assert!(!holds(env, &first, &ksa_member("apps", "eso")));
    assert!(holds(env, &first, &foreign));
    assert_empty_plan(&w, "after update");

    // Another GSA (by resource name) replaces the binding.
    env.write_config(&w, &config(&gsa_name(&second), "eso-2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("must be replaced"), "{plan}");
    apply(&w);
    assert!(holds(env, &second, &ksa_member("apps", "eso-2")));
    assert!(!holds(env, &first, &ksa_member("apps", "eso-2")) && holds(env, &first, &foreign));
    assert_empty_plan(&w, "after replace");

    // Import, then an empty plan.
    w.ok(&["state", "rm", "secretbridge_gcp_workload_identity.eso"]);
    w.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "secretbridge_gcp_workload_identity.eso",
        &format!("{}|apps/eso-2", gsa_name(&second)),
    ]);
    assert_empty_plan(&w, "after import");

    // Drift: the member removed out of band is re-added.
    let iam = env.iam();
    let mut stripped = policy(env, &second);
    assert!(gcp::remove_member(
        &mut stripped,
        WI_USER,
        &ksa_member("apps", "eso-2")
    ));
    env.rt
        .block_on(
            iam.set_iam_policy()
                .set_resource(gsa_name(&second))
                .set_policy(stripped)
                .send(),
        )
        .expect("remove out of band");
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("will be created"), "{plan}");
    apply(&w);
    assert!(holds(env, &second, &ksa_member("apps", "eso-2")));

    // Destroy removes only our member.
    env.standin
        .grant(&gsa_name(&second), WI_USER, &foreign)
        .expect("foreign member on the second GSA");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!holds(env, &second, &ksa_member("apps", "eso-2")));
    assert!(
        holds(env, &second, &foreign) && holds(env, &first, &foreign),
        "foreign members untouched"
    );
}

#[test]
fn gcp_workload_identity_lifecycle_on_both_clis() {
    let env = GcpEnv::start();
    for version in ["1.0.3", "1.15.5"] {
        lifecycle(&env, version);
    }
}

/// Two writers read the same policy (same etag) before either writes: the
/// second write is refused with ABORTED, and `edit_policy` re-reads and
/// retries, so both members land.
#[test]
fn concurrent_policy_edits_both_land_through_the_etag_retry() {
    let env = GcpEnv::start();
    let email = env
        .standin
        .seed_service_account(PROJECT, "wi-race")
        .expect("seed GSA");
    let resource = gsa_name(&email);
    let iam: Arc<Iam> = Arc::new(env.iam());
    let both_read = Arc::new(tokio::sync::Barrier::new(2));
    let writer = |ksa: &'static str| {
        let (iam, resource, both_read) =
            (Arc::clone(&iam), resource.clone(), Arc::clone(&both_read));
        async move {
            let first_read = std::sync::atomic::AtomicBool::new(true);
            let member = ksa_member("apps", ksa);
            gcp::edit_policy(
                &resource,
                || {
                    let (iam, resource, both_read) =
                        (Arc::clone(&iam), resource.clone(), Arc::clone(&both_read));
                    let wait = first_read.swap(false, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        let policy = iam.get_iam_policy().set_resource(resource).send().await;
                        if wait {
                            both_read.wait().await;
                        }
                        policy
                    }
                },
                |policy| {
                    iam.set_iam_policy()
                        .set_resource(&resource)
                        .set_policy(policy)
                        .send()
                },
                |policy| gcp::add_member(policy, WI_USER, &member),
            )
            .await
        }
    };
    let (a, b) = env
        .rt
        .block_on(async { tokio::join!(writer("racer-a"), writer("racer-b")) });
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert!(
        holds(&env, &email, &ksa_member("apps", "racer-a"))
            && holds(&env, &email, &ksa_member("apps", "racer-b"))
    );
    assert_eq!(
        env.standin.call_count("SetServiceAccountIamPolicy"),
        3,
        "one write was refused on the stale etag and retried"
    );
}

/// Two Terraform resources on the same GSA, applied in parallel by one
/// Terraform run: both members land.
#[test]
fn two_bindings_on_one_gsa_in_one_apply() {
    let env = GcpEnv::start();
    let email = env
        .standin
        .seed_service_account(PROJECT, "wi-pair")
        .expect("seed GSA");
    let w = Workdir::new("1.15.5");
    let body: String = ["one", "two", "three", "four"]
        .iter()
        .map(|k| {
            format!(
                "resource \"secretbridge_gcp_workload_identity\" \"{k}\" {{\n  service_account            = \"{email}\"\n  namespace                  = \"apps\"\n  kubernetes_service_account = \"{k}\"\n}}\n\n"
            )
        })
        .collect();
    env.write_config(&w, &body);
    apply(&w);
    for k in ["one", "two", "three", "four"] {
        assert!(holds(&env, &email, &ksa_member("apps", k)), "{k} landed");
    }
    assert_empty_plan(&w, "after the parallel apply");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(policy(&env, &email).bindings.is_empty());
}
