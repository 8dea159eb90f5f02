//! Secret Manager through the official `google-cloud-secretmanager-v1` client.

use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, replication::Automatic};

use crate::common::*;

fn secret() -> Secret {
    Secret::new().set_replication(Replication::new().set_automatic(Automatic::new()))
}

#[tokio::test]
async fn secret_crud_versions_and_access() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let client = secret_manager!(standin, bearer(standin.admin_token()));
    let parent = format!("projects/{PROJECT}");

    let created = client
        .create_secret()
        .set_parent(&parent)
        .set_secret_id("db-password")
        .set_secret(secret().set_labels([("team", "payments")]))
        .send()
        .await
        .expect("create secret");
    let number = gcp_standin::ProjectSpec::new(PROJECT).number;
    assert_eq!(created.name, format!("projects/{number}/secrets/db-password"), "GCP names secrets by project number");
    assert_eq!(created.labels.get("team").map(String::as_str), Some("payments"));
    assert!(created.create_time.is_some());

    let duplicate = client.create_secret().set_parent(&parent).set_secret_id("db-password").set_secret(secret()).send().await;
    assert_eq!(code_of(&duplicate.expect_err("duplicate must fail")), "AlreadyExists");
    let missing_id = client.create_secret().set_parent(&parent).set_secret(secret()).send().await;
    assert_eq!(code_of(&missing_id.expect_err("secretId is required")), "InvalidArgument");

    let name = format!("{parent}/secrets/db-password");
    let v1 = client
        .add_secret_version()
        .set_parent(&name)
        .set_payload(SecretPayload::new().set_data("hunter2").set_data_crc32c(i64::from(crc32c::crc32c(b"hunter2"))))
        .send()
        .await
        .expect("add version 1");
    assert!(v1.name.ends_with("/versions/1"), "{}", v1.name);
    assert!(v1.client_specified_payload_checksum);
    client
        .add_secret_version()
        .set_parent(&name)
        .set_payload(SecretPayload::new().set_data("correct horse"))
        .send()
        .await
        .expect("add version 2");

    let bad_crc = client
        .add_secret_version()
        .set_parent(&name)
        .set_payload(SecretPayload::new().set_data("tampered").set_data_crc32c(12345_i64))
        .send()
        .await;
    assert_eq!(code_of(&bad_crc.expect_err("crc32c mismatch must fail")), "InvalidArgument");

    let latest = client.access_secret_version().set_name(format!("{name}/versions/latest")).send().await.expect("access latest");
    let payload = latest.payload.expect("payload");
    assert_eq!(payload.data.as_ref(), b"correct horse");
    assert_eq!(payload.data_crc32c, Some(i64::from(crc32c::crc32c(b"correct horse"))));
    assert!(latest.name.ends_with("/versions/2"), "latest resolves to the number: {}", latest.name);

    let versions = client.list_secret_versions().set_parent(&name).send().await.expect("list versions");
    let names: Vec<&str> = versions.versions.iter().map(|version| version.name.rsplit('/').next().unwrap_or("")).collect();
    assert_eq!(names, ["2", "1"], "newest first");

    // Disable the newest: `latest` now fails (GCP does not skip to version 1).
    client.disable_secret_version().set_name(format!("{name}/versions/2")).send().await.expect("disable v2");
    let disabled = client.access_secret_version().set_name(format!("{name}/versions/latest")).send().await;
    assert_eq!(code_of(&disabled.expect_err("latest is disabled")), "FailedPrecondition");
    let v1_payload = client.access_secret_version().set_name(format!("{name}/versions/1")).send().await.expect("v1 still readable");
    assert_eq!(v1_payload.payload.expect("payload").data.as_ref(), b"hunter2");
    let got = client.get_secret_version().set_name(format!("{name}/versions/latest")).send().await.expect("get latest");
    assert_eq!(got.state, google_cloud_secretmanager_v1::model::secret_version::State::Disabled);

    client.enable_secret_version().set_name(format!("{name}/versions/2")).send().await.expect("enable v2");
    client.access_secret_version().set_name(format!("{name}/versions/latest")).send().await.expect("latest readable again");

    let destroyed = client.destroy_secret_version().set_name(format!("{name}/versions/2")).send().await.expect("destroy v2");
    assert!(destroyed.destroy_time.is_some());
    let gone = client.access_secret_version().set_name(format!("{name}/versions/latest")).send().await;
    assert_eq!(code_of(&gone.expect_err("latest is destroyed")), "FailedPrecondition");
    let revive = client.enable_secret_version().set_name(format!("{name}/versions/2")).send().await;
    assert_eq!(code_of(&revive.expect_err("destroyed is final")), "FailedPrecondition");
    let missing = client.access_secret_version().set_name(format!("{name}/versions/9")).send().await;
    assert_eq!(code_of(&missing.expect_err("no version 9")), "NotFound");

    let listed = client.list_secrets().set_parent(&parent).send().await.expect("list secrets");
    assert_eq!(listed.secrets.len(), 1);
    let fetched = client.get_secret().set_name(&name).send().await.expect("get secret");
    let stale = client.delete_secret().set_name(&name).set_etag("\"0000000000000000\"").send().await;
    assert_eq!(code_of(&stale.expect_err("stale etag")), "Aborted");
    client.delete_secret().set_name(&name).set_etag(fetched.etag).send().await.expect("delete with current etag");
    let after = client.get_secret().set_name(&name).send().await;
    assert_eq!(code_of(&after.expect_err("deleted")), "NotFound");
}

#[tokio::test]
async fn secret_policy_round_trip_and_stale_etag() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    standin.seed_secret(PROJECT, "api-key", &[b"v1"]).expect("seed");
    let client = secret_manager!(standin, bearer(standin.admin_token()));
    let resource = format!("projects/{PROJECT}/secrets/api-key");
    let initial = client.get_iam_policy().set_resource(&resource).send().await.expect("get policy");
    let member = format!("serviceAccount:{POOL}[apps/app]");
    let binding = google_cloud_iam_v1::model::Binding::new()
        .set_role("roles/secretmanager.secretAccessor")
        .set_members([member.clone()]);
    let set = client
        .set_iam_policy()
        .set_resource(&resource)
        .set_policy(initial.clone().set_bindings([binding.clone()]).set_version(3))
        .send()
        .await
        .expect("set policy with the current etag");
    assert_ne!(set.etag, initial.etag);
    assert_eq!(set.bindings[0].members, [member]);
    let stale = client.set_iam_policy().set_resource(&resource).set_policy(initial.set_bindings([binding])).send().await;
    assert_eq!(code_of(&stale.expect_err("stale etag")), "Aborted");
    let read = client.get_iam_policy().set_resource(&resource).send().await.expect("get policy again");
    assert_eq!(read, set);
}

#[tokio::test]
async fn list_pages_and_label_update() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    for id in ["alpha", "beta", "gamma"] {
        standin.seed_secret(PROJECT, id, &[b"x"]).expect("seed");
    }
    let client = secret_manager!(standin, bearer(standin.admin_token()));
    let parent = format!("projects/{PROJECT}");
    let first = client.list_secrets().set_parent(&parent).set_page_size(2).send().await.expect("page 1");
    assert_eq!(first.secrets.len(), 2);
    assert_eq!(first.total_size, 3);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_secrets()
        .set_parent(&parent)
        .set_page_size(2)
        .set_page_token(first.next_page_token)
        .send()
        .await
        .expect("page 2");
    assert_eq!(second.secrets.len(), 1);
    assert!(second.next_page_token.is_empty());
    assert!(second.secrets[0].name.ends_with("/secrets/gamma"));

    let name = format!("{parent}/secrets/alpha");
    let current = client.get_secret().set_name(&name).send().await.expect("get");
    let updated = client
        .update_secret()
        .set_secret(current.clone().set_labels([("env", "test")]))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
        .send()
        .await
        .expect("update labels");
    assert_eq!(updated.labels.get("env").map(String::as_str), Some("test"));
    assert_ne!(updated.etag, current.etag, "an update changes the etag");
    let stale = client
        .update_secret()
        .set_secret(current.set_labels([("env", "stale")]))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
        .send()
        .await;
    assert_eq!(code_of(&stale.expect_err("stale etag")), "Aborted");
}
