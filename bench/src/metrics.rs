//! The controller's own call counters, read from its Prometheus `/metrics`.
//!
//! Any counter whose name ends in `_calls_total` and carries `provider` and
//! `call` labels is summed per (provider, call) over the other labels, so
//! the driver keeps working when the metric is renamed or gains labels.

use std::collections::BTreeMap;

/// Calls per (provider, call), summed over status and any other label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallCounts(pub BTreeMap<(String, String), f64>);

impl CallCounts {
    /// Parses the Prometheus text exposition format.
    pub fn parse(text: &str) -> CallCounts {
        let mut counts = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, rest)) = line.split_once('{') else { continue };
            if !name.trim().ends_with("_calls_total") {
                continue;
            }
            let Some((labels, value)) = rest.rsplit_once('}') else { continue };
            let Some(value) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
            let (Some(provider), Some(call)) = (label(labels, "provider"), label(labels, "call")) else { continue };
            *counts.entry((provider, call)).or_insert(0.0) += value;
        }
        CallCounts(counts)
    }

    /// Counts that grew from `earlier` to `self`.
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        let delta = self
            .0
            .iter()
            .map(|(key, now)| (key.clone(), now - earlier.0.get(key).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        CallCounts(delta)
    }

    /// Credential calls: STS, token exchange, generateAccessToken.
    pub fn auth_calls(&self) -> f64 {
        // `+ 0.0`: an empty f64 sum is -0.0, which would print as "-0".
        self.0.iter().filter(|((p, c), _)| is_auth(p, c)).map(|(_, n)| n).sum::<f64>() + 0.0
    }

    /// Calls that read secret data.
    pub fn data_calls(&self) -> f64 {
        self.0.iter().filter(|((p, c), _)| !is_auth(p, c)).map(|(_, n)| n).sum::<f64>() + 0.0
    }

    /// `provider/Call=n, ...` for the table.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "none".to_string();
        }
        self.0.iter().map(|((p, c), n)| format!("{p}/{c}={n}")).collect::<Vec<_>>().join(", ")
    }
}

fn is_auth(provider: &str, call: &str) -> bool {
    let provider = provider.to_ascii_lowercase();
    let call = call.to_ascii_lowercase();
    provider.contains("sts") || provider.contains("iam") || call.contains("assumerole") || call.contains("token")
}

/// The value of `name="..."` in a label list (no escaped quotes in our labels).
fn label(labels: &str, name: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP secretbridge_provider_api_calls_total x\n# TYPE secretbridge_provider_api_calls_total counter\n\
secretbridge_provider_api_calls_total{provider=\"ssm\",call=\"GetParameters\",status=\"ok\"} 50\n\
secretbridge_provider_api_calls_total{provider=\"ssm\",call=\"GetParameters\",status=\"throttled\"} 2\n\
secretbridge_provider_api_calls_total{provider=\"sts\",call=\"AssumeRoleWithWebIdentity\",status=\"ok\"} 1\n\
secretbridge_reconcile_total{result=\"ok\"} 100\n\
secretbridge_backend_calls_total{provider=\"gcpsm\",call=\"AccessSecretVersion\",status=\"ok\"} 7\n";

    #[test]
    fn sums_call_counters_over_status() {
        let counts = CallCounts::parse(TEXT);
        assert_eq!(counts.0.get(&("ssm".into(), "GetParameters".into())), Some(&52.0));
        assert_eq!(counts.auth_calls(), 1.0);
        assert_eq!(counts.data_calls(), 59.0);
        assert!(counts.summary().contains("sts/AssumeRoleWithWebIdentity=1"), "{}", counts.summary());
    }

    #[test]
    fn difference_between_two_scrapes() {
        let before = CallCounts::parse(TEXT);
        let later = TEXT.replace("} 50", "} 80");
        let delta = CallCounts::parse(&later).since(&before);
        assert_eq!(delta.0.len(), 1);
        assert_eq!(delta.data_calls(), 30.0);
        assert_eq!(CallCounts::default().summary(), "none");
    }
}
