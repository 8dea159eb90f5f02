//! A cloud that answers success without the value, or a 404 that is not
//! about the secret asked for. Both once turned into an empty value or into
//! "every key is gone" (which `deletionPolicy: Delete` acts on). The real
//! backend clients are pointed at a loopback server that gives exactly such
//! answers, since no emulator misbehaves this way on purpose.

use aws_sdk_ssm::config::Credentials;
use secretbridge_controller::backend::aws::{AwsParameters, AwsSecrets, AwsSettings};
use secretbridge_controller::backend::gcp::GcpRestSecrets;
use secretbridge_controller::backend::http::JsonClient;
use secretbridge_controller::backend::retry::RetryPolicy;
use secretbridge_controller::backend::{CallErrorKind, GcpSecretSource, ParameterSource, SecretSource, SecretVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves every request with `status` and the JSON `body`, until dropped.
async fn answering(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{address}"), server)
}

fn gcp(base: String) -> GcpRestSecrets {
    GcpRestSecrets {
        http: JsonClient::new().expect("client"),
        base,
        access_token: "token".into(),
        retry: RetryPolicy { max_retries: 0, interval: std::time::Duration::from_millis(1) },
    }
}

async fn aws_config(endpoint: String) -> aws_config::SdkConfig {
    let settings = AwsSettings { endpoint: Some(endpoint), http: aws_smithy_http_client::Builder::new().build_http() };
    let retry = RetryPolicy { max_retries: 0, interval: std::time::Duration::from_millis(1) }.aws_retry_config();
    settings.config("eu-west-1", Some(Credentials::new("AKID", "SECRET", None, None, "test")), Some(retry)).await
}

#[tokio::test]
async fn a_gcp_success_without_payload_data_is_an_error_not_an_empty_value() {
    let (base, _server) = answering(200, r#"{"name": "projects/p/secrets/db/versions/1", "payload": {}}"#).await;
    let error = gcp(base).access_secret_version("projects/p/secrets/db/versions/latest").await.expect_err("no payload.data");
    assert_eq!(error.kind, CallErrorKind::MalformedAnswer, "{error}");
    let (base, _server) = answering(200, r#"{"payload": {"data": "aGVsbG8="}}"#).await;
    assert_eq!(gcp(base).access_secret_version("projects/p/secrets/db/versions/latest").await, Ok(b"hello".to_vec()));
}

#[tokio::test]
async fn a_gcp_404_that_does_not_name_the_secret_is_not_a_deletion() {
    let (base, _server) = answering(404, r#"{"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found."}}"#).await;
    let error = gcp(base).access_secret_version("projects/p/secrets/db/versions/latest").await.expect_err("404");
    assert_eq!(error.kind, CallErrorKind::InvalidRequest, "{error}");
    let (base, _server) = answering(404, r#"{"error": {"code": 404, "status": "NOT_FOUND", "message": "Secret [projects/123/secrets/db] not found or has no versions."}}"#).await;
    let error = gcp(base).access_secret_version("projects/p/secrets/db/versions/latest").await.expect_err("404");
    assert_eq!(error.kind, CallErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn an_ssm_parameter_without_a_value_is_an_error_not_an_empty_value() {
    let (endpoint, _server) = answering(200, r#"{"Parameters": [{"Name": "/app/db", "Type": "String", "Version": 1}], "InvalidParameters": []}"#).await;
    let parameters = AwsParameters { client: aws_sdk_ssm::Client::new(&aws_config(endpoint).await) };
    let error = parameters.get_parameters(&["/app/db".to_string()]).await.expect_err("no Value");
    assert_eq!(error.kind, CallErrorKind::MalformedAnswer, "{error}");
    let (endpoint, _server) = answering(200, r#"{"Parameters": [{"Name": "/app/db", "Type": "String", "Value": "v", "Version": 1}], "InvalidParameters": []}"#).await;
    let parameters = AwsParameters { client: aws_sdk_ssm::Client::new(&aws_config(endpoint).await) };
    let batch = parameters.get_parameters(&["/app/db".to_string()]).await.expect("a value");
    assert_eq!(batch.values.get("/app/db"), Some(&b"v".to_vec()));
}

#[tokio::test]
async fn a_secrets_manager_answer_with_neither_string_nor_binary_is_an_error_not_not_found() {
    let (endpoint, _server) = answering(200, r#"{"ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", "Name": "db", "VersionId": "v1", "VersionStages": ["AWSCURRENT"]}"#).await;
    let secrets = AwsSecrets { client: aws_sdk_secretsmanager::Client::new(&aws_config(endpoint).await) };
    let error = secrets.get_secret_value("db", &SecretVersion::from_remote(None)).await.expect_err("no value");
    assert_eq!(error.kind, CallErrorKind::MalformedAnswer, "{error}");
}
