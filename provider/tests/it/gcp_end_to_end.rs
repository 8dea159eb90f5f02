//! End to end through the stand-ins: Terraform creates a GSA, binds a KSA to
//! it with Workload Identity and grants it one secret. Then, as the workload
//! would: a real TokenRequest token from the Kubernetes stand-in is exchanged
//! for a federated token, which impersonates the GSA (generateAccessToken);
//! the GSA token reads the granted secret and is denied the other one. A KSA
//! without the binding cannot impersonate the GSA.

use gcp_standin::{Options, ProjectSpec, TrustedIssuer};
use google_cloud_iam_credentials_v1::client::IAMCredentials;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use kube_standin::KubeStandin;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::acceptance::Workdir;
use crate::gcp_common::{GcpEnv, PROJECT, apply, assert_empty_plan, bearer, code_of};

const POOL: &str = "p.svc.id.goog";
const PROVIDER: &str =
    "https://container.googleapis.com/v1/projects/p/locations/europe-west1/clusters/demo";

async fn kube_post(client: &kube::Client, path: &str, body: Value) -> Value {
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("request");
    client
        .request::<Value>(request)
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"))
}

async fn ksa_token(client: &kube::Client, ksa: &str) -> String {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": [POOL], "expirationSeconds": 3600}});
    let issued = kube_post(
        client,
        &format!("/api/v1/namespaces/apps/serviceaccounts/{ksa}/token"),
        body,
    )
    .await;
    issued["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_owned()
}

/// POST of a JSON body over plain HTTP/1.1 on loopback; returns status and JSON body.
async fn post_json(endpoint: &str, path: &str, body: &Value) -> (u16, Value) {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the stand-in");
    let payload = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (_, body) = text.split_once("\r\n\r\n").expect("header end");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The workload's exchange of a KSA token for a federated access token.
async fn federated(endpoint: &str, ksa_token: &str) -> String {
    let body = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": format!("identitynamespace:{POOL}:{PROVIDER}"),
        "subject_token": ksa_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
    });
    let (status, body) = post_json(endpoint, "/v1/identitybindingtoken", &body).await;
    assert_eq!(status, 200, "exchange failed: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[test]
fn ksa_reads_only_the_granted_secret_through_workload_identity() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let kube = rt
        .block_on(KubeStandin::start(kube_standin::Options::default()))
        .expect("start the Kubernetes stand-in");
    let kube_client = rt.block_on(kube.client()).expect("kube client");
    rt.block_on(async {
        kube_post(
            &kube_client,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "apps"}}),
        )
        .await;
        for ksa in ["eso", "stranger"] {
            kube_post(
                &kube_client,
                "/api/v1/namespaces/apps/serviceaccounts",
                json!({"metadata": {"name": ksa}}),
            )
            .await;
        }
    });
    let options = Options {
        projects: vec![ProjectSpec::new(PROJECT)],
        trusted_issuers: vec![TrustedIssuer {
            issuer: kube.issuer().to_owned(),
            ca_pem: Some(kube.ca_pem().to_owned()),
            workload_pool: POOL.into(),
            identity_provider: Some(PROVIDER.into()),
        }],
        ..Options::default()
    };
    let standin = rt
        .block_on(gcp_standin::GcpStandin::start(options))
        .expect("start the GCP stand-in");
    let env = GcpEnv { rt, standin };
    for secret in ["granted", "ungranted"] {
        env.standin
            .seed_secret(PROJECT, secret, &[format!("value-of-{secret}").as_bytes()])
            .expect("seed secret");
    }

    let w = Workdir::new("1.15.5");
    env.write_config(
        &w,
        r#"resource "secretbridge_gcp_service_account" "eso" {
  account_id   = "eso-reader"
  display_name = "ESO reader"
}

resource "secretbridge_gcp_workload_identity" "eso" {
  # References, as a platform team writes them: unknown until the GSA exists.
  service_account            = secretbridge_gcp_service_account.eso.email
  namespace                  = "apps"
  kubernetes_service_account = "eso"
}

resource "secretbridge_gcp_secret_access" "eso" {
  member  = secretbridge_gcp_service_account.eso.member
  secrets = ["granted"]
}
"#,
    );
    apply(&w);
    assert_empty_plan(&w, "after apply");

    let endpoint = env.standin.endpoint();
    let gsa = format!("projects/-/serviceAccounts/eso-reader@{PROJECT}.iam.gserviceaccount.com");
    env.rt.block_on(async {
        let impersonate = |federated: String| {
            let endpoint = endpoint.clone();
            let gsa = gsa.clone();
            async move {
                let credentials = IAMCredentials::builder()
                    .with_endpoint(&endpoint)
                    .with_credentials(bearer(&federated))
                    .build()
                    .await
                    .expect("IAM Credentials client");
                credentials
                    .generate_access_token()
                    .set_name(gsa)
                    .set_scope(["https://www.googleapis.com/auth/cloud-platform"])
                    .send()
                    .await
            }
        };

        // The bound KSA becomes the GSA and reads exactly the granted secret.
        let eso = federated(&endpoint, &ksa_token(&kube_client, "eso").await).await;
        let gsa_token = impersonate(eso)
            .await
            .expect("the bound KSA impersonates the GSA")
            .access_token;
        let secrets = SecretManagerService::builder()
            .with_endpoint(&endpoint)
            .with_credentials(bearer(&gsa_token))
            .build()
            .await
            .expect("Secret Manager client");
        let read = secrets
            .access_secret_version()
            .set_name(format!(
                "projects/{PROJECT}/secrets/granted/versions/latest"
            ))
            .send()
            .await
            .expect("the granted secret is readable");
        assert_eq!(
            read.payload.expect("payload").data.as_ref(),
            b"value-of-granted"
        );
        let denied = secrets
            .access_secret_version()
            .set_name(format!(
                "projects/{PROJECT}/secrets/ungranted/versions/latest"
            ))
            .send()
            .await;
        assert_eq!(
            code_of(&denied.expect_err("the ungranted secret is denied")),
            "PermissionDenied"
        );

        // A KSA without the binding cannot impersonate the GSA.
        let stranger = federated(&endpoint, &ksa_token(&kube_client, "stranger").await).await;
        let refused = impersonate(stranger).await;
        assert_eq!(
            code_of(&refused.expect_err("the unbound KSA is refused")),
            "PermissionDenied"
        );
    });

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    drop(kube);
}
