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
