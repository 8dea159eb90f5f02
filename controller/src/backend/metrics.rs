//! Counts of backend calls per provider, call and status: bounded labels only.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Label set of one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallLabels {
    /// `ssm`, `secretsmanager`, `gcpsm`, or a credential source: `sts`,
    /// `gcp-securetoken`, `gcp-iamcredentials`, `gcp-metadata`, `kubernetes`.
    pub provider: &'static str,
    /// The API call, e.g. `GetParameters`.
    pub call: &'static str,
    /// `ok` or an error reason code.
    pub status: &'static str,
}

/// Thread-safe call counters, shared by every backend of the controller.
#[derive(Debug, Default)]
pub struct CallMetrics {
    counts: Mutex<BTreeMap<CallLabels, u64>>,
}

impl CallMetrics {
    /// Counts one call.
    pub fn record(&self, provider: &'static str, call: &'static str, status: &'static str) {
        let labels = CallLabels { provider, call, status };
        // A poisoned lock only means another thread panicked mid-increment;
        // the counts are still usable.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(labels).or_insert(0) += 1;
    }

    /// Calls of one provider and API call, whatever their status.
    pub fn calls(&self, provider: &str, call: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .filter(|(l, _)| l.provider == provider && l.call == call)
            .map(|(_, n)| n)
            .sum()
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> BTreeMap<CallLabels, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The counters in the Prometheus text format, as
    /// `secretbridge_provider_api_calls_total{provider,call,status}`.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        crate::metrics::header(&mut out, &crate::metrics::PROVIDER_API_CALLS);
        for (labels, count) in self.snapshot() {
            out.push_str(&format!(
                "secretbridge_provider_api_calls_total{{provider=\"{}\",call=\"{}\",status=\"{}\"}} {count}\n",
                labels.provider, labels.call, labels.status
            ));
        }
        out
    }
}
