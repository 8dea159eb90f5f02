//! The metadata server's service-account endpoints, which Application Default
//! Credentials read on GCE and GKE: the header check, the 404 without an
//! attached account, and tokens that IAM treats as that account, driven with
//! raw requests and with the official metadata-server credentials.

use gcp_standin::{GcpStandin, Options, ProjectSpec};
use http_body_util::BodyExt;

use crate::common::*;

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const EMAIL_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/email";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// GETs `path` from the stand-in, with `Metadata-Flavor: Google` when
/// `flavor`; returns the status, the body as text and the answer's
/// `Metadata-Flavor` header.
async fn metadata_get(standin: &GcpStandin, path: &str, flavor: bool) -> (u16, String, Option<String>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut request = hyper::Request::get(format!("{}{path}?scopes={CLOUD_PLATFORM}", standin.endpoint()));
    if flavor {
        request = request.header("metadata-flavor", "Google");
    }
    let request = request.body(http_body_util::Empty::<bytes::Bytes>::new()).expect("request");
    let response = client.request(request).await.expect("GET from the stand-in");
    let status = response.status().as_u16();
    let answered_flavor = response.headers().get("metadata-flavor").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.into_body().collect().await.expect("read body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), answered_flavor)
}

#[tokio::test]
async fn metadata_token_reads_only_what_the_attached_account_was_granted() {
    let standin = GcpStandin::start(Options { projects: vec![ProjectSpec::new(PROJECT)], ..Options::default() })
        .await
        .expect("start the stand-in");
    standin.seed_secret(PROJECT, "granted", &[b"yes"]).expect("seed granted");
    standin.seed_secret(PROJECT, "other", &[b"no"]).expect("seed other");
    let gsa = standin.seed_service_account(PROJECT, "node-default").expect("seed GSA");
    standin
        .grant(&format!("projects/{PROJECT}/secrets/granted"), "roles/secretmanager.secretAccessor", &format!("serviceAccount:{gsa}"))
        .expect("grant");

    // An instance without a service account has no token to give.
    let (status, body, _) = metadata_get(&standin, TOKEN_PATH, true).await;
    assert_eq!(status, 404, "{body}");

    standin.set_metadata_service_account(Some(&gsa));
    // Without the header the metadata server refuses, as on GCE and GKE.
    for path in [TOKEN_PATH, EMAIL_PATH] {
        let (status, body, flavor) = metadata_get(&standin, path, false).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("Metadata-Flavor"), "{path}: {body}");
        assert_eq!(flavor.as_deref(), Some("Google"), "{path}");
    }
    let (status, email, _) = metadata_get(&standin, EMAIL_PATH, true).await;
    assert_eq!((status, email.as_str()), (200, gsa.as_str()));
    let (status, body, flavor) = metadata_get(&standin, TOKEN_PATH, true).await;
    assert_eq!((status, flavor.as_deref()), (200, Some("Google")), "{body}");
    let token: serde_json::Value = serde_json::from_str(&body).expect("the token answer is JSON");
    assert_eq!(token["token_type"], "Bearer", "{token}");
    assert!(token["expires_in"].as_u64().is_some_and(|secs| secs > 0 && secs <= 3600), "{token}");

    // A raw token acts as the attached account: granted secret yes, the other no.
    let raw = token["access_token"].as_str().expect("access_token");
    let client = secret_manager!(standin, bearer(raw));
    assert_eq!(read_latest(&client, "granted").await.expect("granted secret is readable"), b"yes");
    let denied = read_latest(&client, "other").await.expect_err("ungranted secret is denied");
    assert_eq!(code_of(&denied), "PermissionDenied");
    assert_eq!(denied.http_status_code(), Some(403));

    // The official metadata-server credentials (what ADC picks on GCE/GKE) work too.
    let adc = google_cloud_auth::credentials::mds::Builder::default()
        .with_endpoint(standin.endpoint())
        .with_scopes([CLOUD_PLATFORM])
        .build()
        .expect("metadata-server credentials");
    let client = secret_manager!(standin, adc);
    assert_eq!(read_latest(&client, "granted").await.expect("granted secret is readable through ADC"), b"yes");
    assert!(standin.call_count("MetadataToken") >= 4, "{:?}", standin.call_counts());

    // Detached again: 404, and the account's email path is no way around it.
    standin.set_metadata_service_account(None);
    let (status, body, _) = metadata_get(&standin, &format!("/computeMetadata/v1/instance/service-accounts/{gsa}/token"), true).await;
    assert_eq!(status, 404, "{body}");
}
