//! The exchange with tokens from the Kubernetes stand-in: a real TokenRequest,
//! discovery and JWKS fetched over HTTPS trusting the stand-in's own CA.

use gcp_standin::{GcpStandin, Options, ProjectSpec, TrustedIssuer};
use kube_standin::KubeStandin;
use serde_json::{Value, json};

use crate::common::*;

/// POSTs JSON to the Kubernetes stand-in as admin.
async fn kube_post(client: &kube::Client, path: &str, body: Value) -> Value {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("request");
    client.request::<Value>(request).await.unwrap_or_else(|err| panic!("POST {path}: {err}"))
}

#[tokio::test]
async fn kube_standin_token_request_is_exchanged_over_https() {
    let kube = KubeStandin::start(kube_standin::Options::default()).await.expect("start the Kubernetes stand-in");
    let client = kube.client().await.expect("kube client");
    kube_post(&client, "/api/v1/namespaces", json!({"metadata": {"name": "apps"}})).await;
    kube_post(&client, "/api/v1/namespaces/apps/serviceaccounts", json!({"metadata": {"name": "app"}})).await;
    let token_request = |audience: &str| json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": 3600},
    });
    let issued = kube_post(&client, "/api/v1/namespaces/apps/serviceaccounts/app/token", token_request(POOL)).await;
    let token = issued["status"]["token"].as_str().expect("status.token").to_owned();

    let standin = GcpStandin::start(Options {
        projects: vec![ProjectSpec::new(PROJECT)],
        trusted_issuers: vec![TrustedIssuer {
            issuer: kube.issuer().to_owned(),
            ca_pem: Some(kube.ca_pem().to_owned()),
            workload_pool: POOL.into(),
            identity_provider: Some(PROVIDER.into()),
        }],
        ..Options::default()
    })
    .await
    .expect("start the GCP stand-in");
    standin.seed_secret(PROJECT, "db", &[b"from-gke"]).expect("seed");
    standin
        .grant(&format!("projects/{PROJECT}/secrets/db"), "roles/secretmanager.secretAccessor", &format!("serviceAccount:{POOL}[apps/app]"))
        .expect("grant");

    let url = format!("{}/v1/identitybindingtoken", standin.endpoint());
    let (status, body) = post(&url, &exchange_body(&token, &audience()), true, None).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().expect("access_token");
    let secrets = secret_manager!(standin, bearer(access));
    assert_eq!(read_latest(&secrets, "db").await.expect("the KSA reads its secret"), b"from-gke");

    // A token the cluster issued for another audience is refused.
    let wrong = kube_post(&client, "/api/v1/namespaces/apps/serviceaccounts/app/token", token_request("sts.amazonaws.com")).await;
    let wrong = wrong["status"]["token"].as_str().expect("status.token");
    let (status, body) = post(&url, &exchange_body(wrong, &audience()), true, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // Without the cluster's CA the JWKS cannot be fetched, so nothing is trusted.
    let untrusting = GcpStandin::start(Options {
        projects: vec![ProjectSpec::new(PROJECT)],
        trusted_issuers: vec![TrustedIssuer {
            issuer: kube.issuer().to_owned(),
            ca_pem: None,
            workload_pool: POOL.into(),
            identity_provider: None,
        }],
        ..Options::default()
    })
    .await
    .expect("start");
    let url = format!("{}/v1/identitybindingtoken", untrusting.endpoint());
    let (status, body) = post(&url, &exchange_body(&token, &audience()), true, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|text| text.contains("JWKS")), "{body}");
}
