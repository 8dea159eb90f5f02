//! `make demo`'s core, run as a test: the local example applied, re-planned
//! empty, and both Secrets synced with the seeded values.

use secretbridge_e2e::{AWS_NAMESPACE, DemoOptions, GCP_NAMESPACE, SECRET_NAME, SEED, run_demo};
use secretbridge_harness::TfVersion;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_applies_local_example_and_syncs_both_secrets() {
    let options = DemoOptions { controller_binary: crate::controller_binary(), provider_binary: crate::provider(), terraform: TfVersion::V1_15_5 };
    let mut lines = Vec::new();
    let mut progress = |line: &str| {
        eprintln!("{line}");
        lines.push(line.to_string());
    };
    let secrets = run_demo(&options, &mut progress).await.unwrap_or_else(|e| panic!("demo failed: {e}"));
    let places: Vec<(String, String)> = secrets.iter().map(|s| (s.namespace.clone(), s.name.clone())).collect();
    assert_eq!(places, [(AWS_NAMESPACE.to_string(), SECRET_NAME.to_string()), (GCP_NAMESPACE.to_string(), SECRET_NAME.to_string())]);
    for secret in &secrets {
        for (key, _, _, value) in SEED {
            assert_eq!(secret.data.get(*key).map(String::as_str), Some(*value), "{key} in {}/{}", secret.namespace, secret.name);
        }
        let described = secret.describe();
        assert!(described.contains("password:  17 bytes"), "{described}");
        assert!(described.contains("password: s3cr3t-multicloud"), "{described}");
    }
    assert!(lines.iter().any(|l| l.contains("terraform plan")), "progress lines: {lines:#?}");
}
