//! Fault injection and counters: throttling, unavailability, `/guard-api/stats`.

use crate::support::*;
use aws_sdk_ssm::types::ParameterType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.0 call to the guard's admin API; returns (status, body).
async fn guard_api(world: &World, method: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(world.guard.local_addr()).await.unwrap();
    let req = format!("{method} {path} HTTP/1.0\r\nHost: guard\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn ssm_without_retries(world: &World) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::config::Builder::from(&world.admin_config())
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

#[tokio::test]
async fn injected_throttling_answers_the_next_n_data_calls_then_recovers() {
    let world = World::start().await;
    world.admin_ssm().put_parameter().name("/t").value("v").r#type(ParameterType::String).send().await.unwrap();
    let ssm = ssm_without_retries(&world);
    world.guard.inject_throttling(2);
    for _ in 0..2 {
        let err = ssm.get_parameters().names("/t").send().await.expect_err("throttled");
        assert_eq!(error_code(&err).as_deref(), Some("ThrottlingException"));
    }
    ssm.get_parameters().names("/t").send().await.expect("third call goes through");
    let stats = world.guard.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.calls("GetParameters"), 3);

    // The SDK's standard retry treats it as throttling and retries it away.
    world.guard.inject_throttling(1);
    world.admin_ssm().get_parameters().names("/t").send().await.expect("retried after the throttle");
    assert_eq!(world.guard.stats().calls("GetParameters"), 5);
}

#[tokio::test]
async fn unavailable_switch_answers_503_until_switched_back() {
    let world = World::start().await;
    world.admin_ssm().put_parameter().name("/u").value("v").r#type(ParameterType::String).send().await.unwrap();
    let ssm = ssm_without_retries(&world);
    assert_eq!(guard_api(&world, "POST", "/guard-api/unavailable?enabled=true").await.0, 200);
    let err = ssm.get_parameter().name("/u").send().await.expect_err("backend is down");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(503));
    world.guard.set_unavailable(false);
    ssm.get_parameter().name("/u").send().await.expect("back up");
    assert_eq!(world.guard.stats().unavailable, 1);
}

#[tokio::test]
async fn stats_endpoint_serves_the_same_counters_as_the_library() {
    let world = World::start().await;
    world.admin_ssm().put_parameter().name("/s").value("v").r#type(ParameterType::String).send().await.unwrap();
    world.admin_ssm().get_parameters().names("/s").send().await.unwrap();
    world.admin_ssm().get_parameters().names("/s").send().await.unwrap();
    let (status, body) = guard_api(&world, "GET", "/guard-api/stats").await;
    assert_eq!(status, 200);
    let served: aws_guard::Stats = serde_json::from_str(&body).unwrap();
    assert_eq!(served, world.guard.stats());
    assert_eq!(served.calls("GetParameters"), 2);

    assert_eq!(guard_api(&world, "POST", "/guard-api/throttle?count=1").await.0, 200);
    let err = ssm_without_retries(&world).get_parameters().names("/s").send().await.expect_err("throttled via HTTP switch");
    assert_eq!(error_code(&err).as_deref(), Some("ThrottlingException"));
    assert_eq!(guard_api(&world, "POST", "/guard-api/reset-stats").await.0, 200);
    assert_eq!(world.guard.stats(), aws_guard::Stats::default());
    assert_eq!(guard_api(&world, "POST", "/guard-api/throttle?count=x").await.0, 400);
}
