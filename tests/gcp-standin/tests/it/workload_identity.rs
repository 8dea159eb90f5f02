//! Token exchange, `generateAccessToken` and IAM enforcement: the Workload Identity
//! path ESO takes, driven with real JWTs and the official clients.

use gcp_standin::FaultCode;
use google_cloud_iam_credentials_v1::client::IAMCredentials;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn federated_identity_reads_only_what_it_was_granted() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    standin.seed_secret(PROJECT, "granted", &[b"yes"]).expect("seed granted");
    standin.seed_secret(PROJECT, "other", &[b"no"]).expect("seed other");
    standin
        .grant(&format!("projects/{PROJECT}/secrets/granted"), "roles/secretmanager.secretAccessor", &format!("serviceAccount:{POOL}[apps/app]"))
        .expect("grant");

    let token = federated_token(&standin, &issuer, "apps", "app").await;
    let client = secret_manager!(standin, bearer(&token));
    assert_eq!(read_latest(&client, "granted").await.expect("granted secret is readable"), b"yes");
    let denied = read_latest(&client, "other").await.expect_err("ungranted secret is denied");
    assert_eq!(code_of(&denied), "PermissionDenied");
    assert_eq!(denied.http_status_code(), Some(403));
    // Access does not imply management.
    let add = client
        .add_secret_version()
        .set_parent(format!("projects/{PROJECT}/secrets/granted"))
        .set_payload(google_cloud_secretmanager_v1::model::SecretPayload::new().set_data("x"))
        .send()
        .await;
    assert_eq!(code_of(&add.expect_err("accessor cannot add versions")), "PermissionDenied");

    // Another Kubernetes service account gets nothing from that grant.
    let stranger = federated_token(&standin, &issuer, "apps", "intruder").await;
    let stranger_client = secret_manager!(standin, bearer(&stranger));
    let refused = read_latest(&stranger_client, "granted").await;
    assert_eq!(code_of(&refused.expect_err("other KSA is denied")), "PermissionDenied");

    // A project-level grant, in the principal:// form, covers every secret.
    standin
        .grant(
            &format!("projects/{PROJECT}"),
            "roles/secretmanager.secretAccessor",
            &format!("principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/{POOL}/subject/ns/apps/sa/intruder"),
        )
        .expect("project grant");
    stranger_client
        .access_secret_version()
        .set_name(format!("projects/{PROJECT}/secrets/other/versions/1"))
        .send()
        .await
        .expect("project-level accessor reads any secret");
}

#[tokio::test]
async fn generate_access_token_needs_workload_identity_user() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let email = standin.seed_service_account(PROJECT, "eso-reader").expect("seed GSA");
    standin.seed_secret(PROJECT, "db", &[b"s3cret"]).expect("seed secret");
    standin
        .grant(&format!("projects/{PROJECT}/secrets/db"), "roles/secretmanager.secretAccessor", &format!("serviceAccount:{email}"))
        .expect("grant the GSA");

    let federated = federated_token(&standin, &issuer, "apps", "app").await;
    let credentials = IAMCredentials::builder()
        .with_endpoint(standin.endpoint())
        .with_credentials(bearer(&federated))
        .build()
        .await
        .expect("IAM Credentials client");
    let name = format!("projects/-/serviceAccounts/{email}");
    let scope = ["https://www.googleapis.com/auth/cloud-platform"];
    let denied = credentials.generate_access_token().set_name(&name).set_scope(scope).send().await;
    assert_eq!(code_of(&denied.expect_err("no workloadIdentityUser yet")), "PermissionDenied");

    standin
        .grant(&format!("projects/{PROJECT}/serviceAccounts/{email}"), "roles/iam.workloadIdentityUser", &format!("serviceAccount:{POOL}[apps/app]"))
        .expect("grant workloadIdentityUser");
    let issued = credentials.generate_access_token().set_name(&name).set_scope(scope).send().await.expect("impersonate");
    assert!(issued.expire_time.is_some());

    // The GSA token reads what the GSA was granted; the federated token alone does not.
    let as_gsa = secret_manager!(standin, bearer(&issued.access_token));
    assert_eq!(read_latest(&as_gsa, "db").await.expect("GSA reads its secret"), b"s3cret");
    let as_ksa = secret_manager!(standin, bearer(&federated));
    let refused = read_latest(&as_ksa, "db").await;
    assert_eq!(code_of(&refused.expect_err("KSA itself has no grant")), "PermissionDenied");

    // serviceAccountTokenCreator also allows it; a GSA token cannot impersonate on its own.
    let other = standin.seed_service_account(PROJECT, "other-gsa").expect("seed other GSA");
    let as_gsa_creds = IAMCredentials::builder()
        .with_endpoint(standin.endpoint())
        .with_credentials(bearer(&issued.access_token))
        .build()
        .await
        .expect("client");
    let other_name = format!("projects/-/serviceAccounts/{other}");
    let refused = as_gsa_creds.generate_access_token().set_name(&other_name).set_scope(scope).send().await;
    assert_eq!(code_of(&refused.expect_err("no token creator")), "PermissionDenied");
    standin
        .grant(&format!("projects/{PROJECT}/serviceAccounts/{other}"), "roles/iam.serviceAccountTokenCreator", &format!("serviceAccount:{email}"))
        .expect("grant token creator");
    as_gsa_creds.generate_access_token().set_name(&other_name).set_scope(scope).send().await.expect("token creator impersonates");
}

#[tokio::test]
async fn exchange_refuses_bad_tokens() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let url = format!("{}/v1/identitybindingtoken", standin.endpoint());
    let refused = |spec: TokenSpec| issuer.mint(&spec);

    let cases = [
        ("wrong aud", refused(TokenSpec { aud: vec!["sts.amazonaws.com".into()], ..TokenSpec::new(&issuer) })),
        ("bad signature", refused(TokenSpec { stranger_key: true, ..TokenSpec::new(&issuer) })),
        ("expired", refused(TokenSpec { exp: now() - 5, ..TokenSpec::new(&issuer) })),
        ("untrusted issuer", refused(TokenSpec { iss: "https://evil.example".into(), ..TokenSpec::new(&issuer) })),
        ("not a service account", refused(TokenSpec { sub: "admin".into(), ..TokenSpec::new(&issuer) })),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (case, token) in cases {
        let (status, body) = post(&url, &exchange_body(&token, &audience()), true, None).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
    }

    // A valid token for an audience naming another pool or provider.
    let valid = issuer.token("apps", "app");
    for audience in [format!("identitynamespace:other.svc.id.goog:{PROVIDER}"), format!("identitynamespace:{POOL}:https://elsewhere")] {
        let (status, body) = post(&url, &exchange_body(&valid, &audience), false, None).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{audience}: {body}");
    }

    // The valid token works on both endpoints, form-encoded and JSON.
    let (status, body) = post(&url, &exchange_body(&valid, &audience()), true, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert!(body["expires_in"].as_u64().is_some_and(|secs| secs > 0 && secs <= 600), "{body}");
    let sts = format!("{}/v1/token", standin.endpoint());
    let camel = json!({
        "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": audience(),
        "subjectToken": valid,
        "subjectTokenType": "urn:ietf:params:oauth:token-type:jwt",
        "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
    });
    let (status, body) = post(&sts, &camel, false, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(standin.call_count("IdentityBindingToken"), 9);
    assert_eq!(standin.call_count("StsToken"), 1);
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_unless_anonymous_admin() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    let client = secret_manager!(standin, anonymous());
    let refused = client.list_secrets().set_parent(format!("projects/{PROJECT}")).send().await;
    assert_eq!(code_of(&refused.expect_err("anonymous is refused by default")), "Unauthenticated");
    let forged = secret_manager!(standin, bearer("ya29.forged"));
    let refused = forged.list_secrets().set_parent(format!("projects/{PROJECT}")).send().await;
    assert_eq!(code_of(&refused.expect_err("unknown token")), "Unauthenticated");

    let open = gcp_standin::GcpStandin::start(gcp_standin::Options {
        allow_anonymous_admin: true,
        projects: vec![gcp_standin::ProjectSpec::new(PROJECT)],
        ..gcp_standin::Options::default()
    })
    .await
    .expect("start");
    let client = secret_manager!(open, anonymous());
    client.list_secrets().set_parent(format!("projects/{PROJECT}")).send().await.expect("anonymous admin");
}

#[tokio::test]
async fn injected_faults_and_call_counters() {
    let issuer = TestIssuer::start().await;
    let standin = standin(&issuer).await;
    standin.seed_secret(PROJECT, "db", &[b"v"]).expect("seed");
    standin.inject_fault(Some("AccessSecretVersion"), FaultCode::ResourceExhausted, 1);
    standin.inject_fault(Some("AccessSecretVersion"), FaultCode::Unavailable, 1);
    let url = format!("{}/v1/projects/{PROJECT}/secrets/db/versions/latest:access", standin.endpoint());
    let get = |url: String, token: String| async move {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let request = hyper::Request::get(url)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let response = client.request(request).await.expect("GET");
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
        (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default())
    };
    let admin = standin.admin_token().to_owned();
    let (status, body) = get(url.clone(), admin.clone()).await;
    assert_eq!((status, body["error"]["status"].as_str()), (429, Some("RESOURCE_EXHAUSTED")), "{body}");
    let (status, body) = get(url.clone(), admin.clone()).await;
    assert_eq!((status, body["error"]["status"].as_str()), (503, Some("UNAVAILABLE")), "{body}");
    let (status, body) = get(url.clone(), admin.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["data"], "dg==");
    assert_eq!(standin.call_count("AccessSecretVersion"), 3);
    assert_eq!(standin.call_count("GetSecret"), 0);
    standin.reset_call_counts();
    assert!(standin.call_counts().is_empty());
}
