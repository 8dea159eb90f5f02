//! Moto and drongo start, answer, reset and go away on drop.

use std::path::Path;
use std::time::Duration;

use secretbridge_harness::{Drongo, Moto, http_request, wait_for_tcp};

/// A SigV4-shaped Authorization header: moto routes on its credential scope
/// and does not verify the signature.
fn aws_auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
    )
}

fn ssm_call(moto: &Moto, action: &str, body: &str) -> secretbridge_harness::HttpResponse {
    let auth = aws_auth("ssm");
    let target = format!("AmazonSSM.{action}");
    http_request(
        moto.addr(),
        "POST",
        "/",
        &[
            ("Authorization", &auth),
            ("X-Amz-Target", &target),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

#[test]
fn moto_answers_sts_get_caller_identity() {
    let moto = Moto::start().unwrap();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let auth = aws_auth("sts");
    let response = http_request(
        moto.addr(),
        "POST",
        "/",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"Action=GetCallerIdentity&Version=2011-06-15",
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.text();
    assert!(body.contains("<GetCallerIdentityResponse"), "{body}");
    assert!(body.contains("<Account>123456789012</Account>"), "{body}");
}

#[test]
fn moto_reset_clears_ssm_parameters() {
    let moto = Moto::start().unwrap();
    let put = ssm_call(
        &moto,
        "PutParameter",
        r#"{"Name":"/secretbridge/db","Value":"s3cr3t","Type":"SecureString"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let get_body = r#"{"Name":"/secretbridge/db","WithDecryption":true}"#;
    let before = ssm_call(&moto, "GetParameter", get_body);
    assert_eq!(before.status, 200, "{}", before.text());
    assert!(before.text().contains("s3cr3t"), "{}", before.text());

    moto.reset().unwrap();

    let after = ssm_call(&moto, "GetParameter", get_body);
    assert_eq!(after.status, 400, "{}", after.text());
    assert!(
        after.text().contains("ParameterNotFound"),
        "{}",
        after.text()
    );
    // The request log is kept for debugging failures.
    let log = std::fs::read_to_string(moto.log_path()).unwrap();
    assert!(
        log.contains("\"POST /moto-api/reset HTTP/1.1\" 200"),
        "{log}"
    );
}

#[test]
fn moto_process_group_is_gone_after_drop() {
    let moto = Moto::start().unwrap();
    let pid = moto.pid();
    let addr = moto.addr();
    let log_dir = moto.log_path().parent().unwrap().to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(moto);
    // Drop waits for the process, so it is reaped: no /proc entry, no listener.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "moto pid {pid} still exists"
    );
    assert!(
        wait_for_tcp(addr, Duration::ZERO).is_err(),
        "something still listens on {addr}"
    );
    assert!(
        !log_dir.exists(),
        "temp dir {} left behind",
        log_dir.display()
    );
}

#[test]
fn drongo_serves_secret_manager_and_resets() {
    let drongo = Drongo::start().unwrap();
    let create = http_request(
        drongo.addr(),
        "POST",
        "/v1/projects/demo/secrets?secretId=db-password",
        &[("Content-Type", "application/json")],
        br#"{"replication":{"automatic":{}}}"#,
    )
    .unwrap();
    assert_eq!(create.status, 200, "{}", create.text());
    assert!(
        create.text().contains("projects/demo/secrets/db-password"),
        "{}",
        create.text()
    );
    let get = http_request(
        drongo.addr(),
        "GET",
        "/v1/projects/demo/secrets/db-password",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(get.status, 200, "{}", get.text());

    drongo.reset().unwrap();

    let gone = http_request(
        drongo.addr(),
        "GET",
        "/v1/projects/demo/secrets/db-password",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(gone.status, 404, "{}", gone.text());
}

#[test]
fn shared_moto_is_one_server_per_process() {
    let first = Moto::shared().unwrap();
    let second = Moto::shared().unwrap();
    assert_eq!(first.pid(), second.pid());
    wait_for_tcp(first.addr(), Duration::from_secs(5)).unwrap();
}
