//! No secret value leaks into what operators read: the controller's logs,
//! Kubernetes Events and ExternalSecret status. The scan looks for each
//! value as written and base64-encoded (how Secret data travels), and is
//! shown to find a marker that must appear, so it can fail.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Every `(source, needle)` where a secret value (or its base64 form) occurs.
pub fn find_leaks(sources: &[(&str, &str)], secrets: &[&str]) -> Vec<String> {
    let mut leaks = Vec::new();
    for secret in secrets {
        let encoded = STANDARD.encode(secret.as_bytes());
        for (name, text) in sources {
            for needle in [secret.to_string(), encoded.clone()] {
                if text.contains(needle.as_str()) {
                    leaks.push(format!("{name} contains {needle:?}"));
                }
            }
        }
    }
    leaks
}

#[test]
fn the_leak_scan_finds_raw_and_base64_values() {
    let sources = [("logs", "synced key password=hunter2-marker"), ("events", "data cGxhaW4tc2VjcmV0 written")];
    let leaks = find_leaks(&sources, &["hunter2-marker", "plain-secret", "absent-value"]);
    assert_eq!(leaks.len(), 2, "{leaks:?}");
    assert!(leaks[0].starts_with("logs"), "{leaks:?}");
    assert!(leaks[1].starts_with("events"), "{leaks:?}");
}

/// A full Workload Identity sync from the GCP stand-in (TokenRequest,
/// identity-binding exchange, generateAccessToken, AccessSecretVersion)
/// plus two failing ExternalSecrets (a property of a non-JSON value that
/// holds a secret, and a template error), with debug logs: no secret value
/// appears in the logs, the Events or any status.
#[tokio::test]
async fn a_full_gcp_sync_leaks_no_secret_value_into_logs_events_or_status() {
    use crate::gcp_sync::GcpSync;
    use crate::process::ControllerProcess;
    let env = GcpSync::seed("scan").await;
    let endpoint = env.gcp.endpoint();
    let controller = ControllerProcess::start(
        env.cluster.kubeconfig_path(),
        &["--leader-elect=false", "--namespace", &env.namespace, "--gcp-endpoint", &endpoint, "--log-level=debug"],
        &[],
    );
    env.wait_synced().await;
    let logs = controller.logs();
    let (events, statuses) = env.events_and_statuses().await;
    let sources = [("logs", logs.as_str()), ("events", events.as_str()), ("status", statuses.as_str())];
    let leaks = find_leaks(&sources, &[&env.synced_value, &env.hidden_value]);
    assert!(leaks.is_empty(), "secret values leaked: {leaks:?}");
    // The scan read real content: the failing ExternalSecrets' status and
    // events name the remote key, the logs name the objects.
    assert_eq!(find_leaks(&sources[1..], &["db-config"]).len(), 2, "status and events name the remote key:\n{statuses}\n{events}");
    assert!(logs.contains("bad-template") && logs.contains(env.namespace.as_str()), "logs name the objects");
    drop(controller);
    env.finish().await;
}
