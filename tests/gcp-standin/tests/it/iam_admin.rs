//! IAM service accounts and Resource Manager project policies through the official clients.

use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_admin_v1::model::ServiceAccount;
use google_cloud_iam_v1::model::Binding;
use google_cloud_resourcemanager_v3::client::Projects;

use crate::common::*;

#[tokio::test]
async fn service_account_crud_validation_and_policy() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let iam = Iam::builder()
        .with_endpoint(standin.endpoint())
        .with_credentials(bearer(standin.admin_token()))
        .build()
        .await
        .expect("IAM client");
    let parent = format!("projects/{PROJECT}");

    let created = iam
        .create_service_account()
        .set_name(&parent)
        .set_account_id("eso-reader")
        .set_service_account(ServiceAccount::new().set_display_name("ESO reader"))
        .send()
        .await
        .expect("create service account");
    let email = format!("eso-reader@{PROJECT}.iam.gserviceaccount.com");
    assert_eq!(created.email, email);
    assert_eq!(created.name, format!("projects/{PROJECT}/serviceAccounts/{email}"));
    assert_eq!(created.display_name, "ESO reader");
    assert!(!created.unique_id.is_empty());

    let duplicate = iam.create_service_account().set_name(&parent).set_account_id("eso-reader").send().await;
    assert_eq!(code_of(&duplicate.expect_err("duplicate")), "AlreadyExists");
    for bad in ["short", "Upper-case1", "ends-with-dash-", "1starts-with-digit", "this-account-id-is-far-too-long-x"] {
        let refused = iam.create_service_account().set_name(&parent).set_account_id(bad).send().await;
        assert_eq!(code_of(&refused.expect_err(bad)), "InvalidArgument", "account ID {bad}");
    }

    let by_dash = iam.get_service_account().set_name(format!("projects/-/serviceAccounts/{email}")).send().await.expect("get by -");
    assert_eq!(by_dash, created);
    let patched = iam
        .patch_service_account()
        .set_service_account(by_dash.clone().set_display_name("renamed").set_description("reads secrets"))
        .set_update_mask(google_cloud_wkt_mask(["displayName", "description"]))
        .send()
        .await
        .expect("patch");
    assert_eq!((patched.display_name.as_str(), patched.description.as_str()), ("renamed", "reads secrets"));
    let stale = iam
        .patch_service_account()
        .set_service_account(by_dash.set_display_name("again"))
        .set_update_mask(google_cloud_wkt_mask(["displayName"]))
        .send()
        .await;
    assert_eq!(code_of(&stale.expect_err("stale service account etag")), "Aborted");

    let listed = iam.list_service_accounts().set_name(&parent).send().await.expect("list");
    assert_eq!(listed.accounts.len(), 1);

    // Service-account policy: Workload Identity binding with etag rules.
    let resource = created.name.clone();
    let initial = iam.get_iam_policy().set_resource(&resource).send().await.expect("get SA policy");
    let binding = Binding::new()
        .set_role("roles/iam.workloadIdentityUser")
        .set_members([format!("serviceAccount:{POOL}[apps/app]")]);
    let set = iam
        .set_iam_policy()
        .set_resource(&resource)
        .set_policy(initial.clone().set_bindings([binding.clone()]).set_version(3))
        .send()
        .await
        .expect("set SA policy");
    assert_eq!(set.bindings, std::slice::from_ref(&binding));
    let stale = iam.set_iam_policy().set_resource(&resource).set_policy(initial.set_bindings([binding])).send().await;
    assert_eq!(code_of(&stale.expect_err("stale policy etag")), "Aborted");

    iam.delete_service_account().set_name(&resource).send().await.expect("delete returns {}");
    let gone = iam.get_service_account().set_name(&resource).send().await;
    assert_eq!(code_of(&gone.expect_err("deleted")), "NotFound");
}

fn google_cloud_wkt_mask<const N: usize>(paths: [&str; N]) -> google_cloud_wkt::FieldMask {
    google_cloud_wkt::FieldMask::default().set_paths(paths)
}

#[tokio::test]
async fn project_policy_round_trip_and_stale_etag() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let projects = Projects::builder()
        .with_endpoint(standin.endpoint())
        .with_credentials(bearer(standin.admin_token()))
        .build()
        .await
        .expect("Resource Manager client");
    let resource = format!("projects/{PROJECT}");
    let initial = projects.get_iam_policy().set_resource(&resource).send().await.expect("get project policy");
    assert!(initial.bindings.is_empty());
    let binding = Binding::new()
        .set_role("roles/secretmanager.secretAccessor")
        .set_members([format!("serviceAccount:reader@{PROJECT}.iam.gserviceaccount.com")]);
    let set = projects
        .set_iam_policy()
        .set_resource(&resource)
        .set_policy(initial.clone().set_bindings([binding.clone()]))
        .send()
        .await
        .expect("set project policy");
    assert_eq!(set.bindings, std::slice::from_ref(&binding));
    let stale = projects.set_iam_policy().set_resource(&resource).set_policy(initial.set_bindings([binding])).send().await;
    assert_eq!(code_of(&stale.expect_err("stale etag")), "Aborted");
    let unknown = projects.get_iam_policy().set_resource("projects/nobody-has-this").send().await;
    assert_eq!(code_of(&unknown.expect_err("unknown project")), "PermissionDenied");
}
