//! Property tests over what a tenant controls: template text, durations and
//! the ExternalSecret spec → desired Secret path. Each asserts that nothing
//! panics and that every bound holds (template output, Secret size, requeue
//! waits). `make test` runs a few hundred cases of each; `make fuzz` runs
//! them for a fixed time (`SECRETBRIDGE_FUZZ_SECONDS`) under a memory limit,
//! so a blow-up is a failure rather than a slow test.

use crate::desired::{self, MAX_METADATA, MAX_SECRET_DATA, SecretData};
use crate::schedule;
use crate::template::{self, MAX_OUTPUT};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secretbridge_shared::duration::{MAX_INTERVAL, parse_bounded_duration, parse_duration};
use secretbridge_shared::external_secret::TemplateMetadata;
use secretbridge_shared::{CreationPolicy, ExternalSecret, ExternalSecretSpec, ExternalSecretStatus, ExternalSecretTemplate, RefreshPolicy};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs `check` on values of `strategy`: a fixed number of cases, or for
/// `SECRETBRIDGE_FUZZ_SECONDS` seconds when that is set.
fn fuzz<S: Strategy>(strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seconds: Option<u64> = std::env::var("SECRETBRIDGE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        let cases = if deadline.is_some() { 2_000 } else { 256 };
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        if let Err(failure) = runner.run(&strategy, &check) {
            panic!("{failure}");
        }
        if deadline.is_none_or(|d| Instant::now() >= d) {
            return;
        }
    }
}

/// Template text built from the language's own pieces, so that deep
/// pipelines, unbalanced braces and every function are reached often.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{{-".to_string()),
        Just("-}}".to_string()),
        Just(" | ".to_string()),
        Just(".k".to_string()),
        Just(".big".to_string()),
        Just(".".to_string()),
        Just("\"x\"".to_string()),
        Just("\"".to_string()),
        Just("index . \"k\"".to_string()),
        Just("b64enc".to_string()),
        Just("b64dec".to_string()),
        Just("quote".to_string()),
        Just("squote".to_string()),
        Just("toJson".to_string()),
        Just("upper".to_string()),
        Just("trim".to_string()),
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
}

fn fetched_data() -> impl Strategy<Value = SecretData> {
    (prop::collection::vec(any::<u8>(), 0..64), 0usize..(300 * 1024)).prop_map(|(k, big)| {
        [("k".to_string(), k), ("big".to_string(), vec![b'\x01'; big])].into_iter().collect()
    })
}

#[test]
fn fuzz_templates_never_panic_and_stay_within_the_bound() {
    fuzz((template_text(), fetched_data()), |(text, data)| {
        if let Ok(out) = template::render("template.data.k", &text, &data) {
            prop_assert!(out.len() <= MAX_OUTPUT, "{} bytes", out.len());
        }
        Ok(())
    });
}

/// The pipeline that took 1.2 GiB, at every depth: always bounded.
#[test]
fn fuzz_b64enc_towers_of_any_depth_are_bounded() {
    fuzz((0usize..200, fetched_data()), |(depth, data)| {
        let text = format!("{{{{ .big{} }}}}", " | b64enc".repeat(depth));
        match template::render("t", &text, &data) {
            Ok(out) => prop_assert!(out.len() <= MAX_OUTPUT),
            Err(error) => prop_assert_eq!(error.reason(), "TemplateTooLarge"),
        }
        Ok(())
    });
}

#[test]
fn fuzz_durations_never_panic_and_bounded_ones_stay_bounded() {
    let text = prop_oneof!["\\PC{0,24}", "[0-9.]{1,22}(ns|us|ms|s|m|h){1,3}", "([0-9]{1,20}h){1,4}"];
    fuzz(text, |text| {
        let _ = parse_duration(&text);
        if let Ok(duration) = parse_bounded_duration(&text, MAX_INTERVAL) {
            prop_assert!(duration <= MAX_INTERVAL);
        }
        Ok(())
    });
}

fn policy() -> impl Strategy<Value = CreationPolicy> {
    prop_oneof![Just(CreationPolicy::Owner), Just(CreationPolicy::Orphan), Just(CreationPolicy::Merge), Just(CreationPolicy::None)]
}

fn interval() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{1,20}h", "[0-9]{1,6}(s|m)", Just("0".to_string()), Just("5124095576030431h".to_string()), "\\PC{0,8}"]
}

/// Creation policy, template type, template data, template labels,
/// refresh interval, fetched data, seconds since the last refresh.
type SpecInputs = (CreationPolicy, Option<String>, BTreeMap<String, String>, BTreeMap<String, String>, String, SecretData, i64);

fn spec_inputs() -> impl Strategy<Value = SpecInputs> {
    (
        policy(),
        prop::option::of(prop_oneof![
            Just("Opaque".to_string()),
            Just("kubernetes.io/basic-auth".to_string()),
            Just("kubernetes.io/tls".to_string()),
            Just("kubernetes.io/service-account-token".to_string()),
            "[a-z./-]{0,20}",
        ]),
        prop::collection::btree_map("[a-z.]{1,8}", template_text(), 0..6),
        prop::collection::btree_map("[a-z]{1,8}", template_text(), 0..4),
        interval(),
        fetched_data(),
        -400_000_000i64..400_000_000,
    )
}

/// The whole path from spec to the Secret the controller would apply, and
/// the schedule computed from it: no input panics, and what is built fits.
#[test]
fn fuzz_spec_to_desired_secret_and_schedule() {
    fuzz(spec_inputs(), |(policy, type_, data_templates, labels, refresh, fetched, refreshed_ago)| {
        let mut es = ExternalSecret::new(
            "fuzzed",
            serde_json::from_value::<ExternalSecretSpec>(serde_json::json!({"secretStoreRef": {"name": "s"}})).map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        es.metadata.namespace = Some("tenant".into());
        es.metadata.uid = Some("uid".into());
        es.spec.target.creation_policy = policy;
        es.spec.refresh_interval = refresh;
        es.spec.refresh_policy = Some(RefreshPolicy::Periodic);
        es.spec.target.template = Some(ExternalSecretTemplate {
            type_,
            metadata: Some(TemplateMetadata { labels: labels.clone(), annotations: labels }),
            data: data_templates,
        });
        let now = Timestamp::from_second(1_800_000_000).map_err(|e| TestCaseError::fail(e.to_string()))?;
        es.status = Some(ExternalSecretStatus {
            refresh_time: Some(Time(now - jiff::SignedDuration::from_secs(refreshed_ago))),
            ..ExternalSecretStatus::default()
        });
        if let Ok(secret) = desired::build_target_secret(&es, &fetched) {
            let size: usize = secret.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
            prop_assert!(size <= MAX_SECRET_DATA, "{size} bytes of data");
            let labels: usize = secret.metadata.labels.iter().flatten().map(|(k, v)| k.len() + v.len()).sum();
            prop_assert!(labels <= MAX_METADATA + 64, "{labels} bytes of labels");
        }
        let _ = schedule::sync_cause(&es, None, now);
        if let Ok(Some(wait)) = schedule::next_requeue(&es, now, 0.999) {
            prop_assert!(wait <= MAX_INTERVAL + MAX_INTERVAL / 10 + Duration::from_secs(1), "{wait:?}");
        }
        if let Some(wait) = crate::reconcile::permanent_retry(&es) {
            prop_assert!(wait <= MAX_INTERVAL + MAX_INTERVAL / 5, "{wait:?}");
        }
        Ok(())
    });
}
