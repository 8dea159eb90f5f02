//! A store's `retrySettings`: how often a failed backend call is retried
//! within one sync before the sync fails (and the reconciler's own backoff
//! takes over).
//!
//! ESO v1 semantics: `maxRetries` counts retries after the first attempt, so
//! `0` means one try; `retryInterval` is the first wait, which grows
//! exponentially (with jitter) up to [`MAX_BACKOFF`] or the interval itself
//! when that is longer. AWS clients get the SDK's standard retry strategy with
//! these numbers; the GCP REST client runs [`RetryPolicy::run`]. Only
//! transient failures (throttling, 5xx, network) are retried.

use super::CallError;
use aws_config::retry::RetryConfig;
use secretbridge_shared::RetrySettings;
use secretbridge_shared::duration::{DurationError, MAX_INTERVAL, parse_bounded_duration};
pub use secretbridge_shared::store::MAX_RETRIES;
use std::future::Future;
use std::time::Duration;

/// Retries when `retrySettings` is present but `maxRetries` is not (ESO's default).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// First wait when `retryInterval` is not set: the AWS SDK's initial backoff.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two tries (the AWS SDK's cap), unless the interval is longer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Jitter adds up to this fraction of the wait, so clients throttled together
/// do not retry together.
pub const JITTER_FRACTION: f64 = 0.2;

/// Why a store's `retrySettings` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetrySettingsError {
    /// `maxRetries` is negative.
    #[error("spec.retrySettings.maxRetries is {0}: it counts retries after the first try, so write 0 (no retries) or more")]
    NegativeMaxRetries(i32),
    /// `maxRetries` is more than [`MAX_RETRIES`].
    #[error("spec.retrySettings.maxRetries is {0}, more than the {MAX_RETRIES} allowed: a call retried for ever holds a sync slot the other ExternalSecrets need; write {MAX_RETRIES} or fewer")]
    TooManyRetries(i32),
    /// `retryInterval` does not parse as a duration.
    #[error("spec.retrySettings.retryInterval {value:?} is not a duration ({source}); write it like `1s`, `500ms` or `1m30s`")]
    RetryInterval {
        /// The value as written.
        value: String,
        /// What the parser said.
        source: DurationError,
    },
}

/// How one store's failed backend calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub max_retries: u32,
    /// Wait before the first retry; later waits double.
    pub interval: Duration,
}

impl RetryPolicy {
    /// What the GCP client does for a store without `retrySettings`: the
    /// same as the AWS SDK's default (three tries, 1s first backoff).
    pub const UNSET: RetryPolicy = RetryPolicy { max_retries: 2, interval: DEFAULT_INTERVAL };

    /// The policy a store asks for, `None` when it has no `retrySettings`
    /// (each backend keeps its default), or why the settings are unusable.
    pub fn from_settings(settings: Option<&RetrySettings>) -> Result<Option<RetryPolicy>, RetrySettingsError> {
        let Some(settings) = settings else {
            return Ok(None);
        };
        let max_retries = match settings.max_retries {
            None => DEFAULT_MAX_RETRIES,
            Some(n) if n > MAX_RETRIES as i32 => return Err(RetrySettingsError::TooManyRetries(n)),
            Some(n) => u32::try_from(n).map_err(|_| RetrySettingsError::NegativeMaxRetries(n))?,
        };
        let interval = match settings.retry_interval.as_deref() {
            None => DEFAULT_INTERVAL,
            Some(value) => parse_bounded_duration(value, MAX_INTERVAL).map_err(|source| RetrySettingsError::RetryInterval { value: value.to_string(), source })?,
        };
        Ok(Some(RetryPolicy { max_retries, interval }))
    }

    /// The AWS SDK's standard retry strategy with this policy's numbers.
    pub fn aws_retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_retries.saturating_add(1))
            .with_initial_backoff(self.interval)
            .with_max_backoff(self.interval.max(MAX_BACKOFF))
    }

    /// The wait before retry `retry` (0 for the first) with `jitter` in
    /// `[0, 1]`: the interval doubled per retry, capped, plus up to
    /// [`JITTER_FRACTION`] of it.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let cap = self.interval.max(MAX_BACKOFF);
        let growth = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        let base = self.interval.checked_mul(growth).unwrap_or(cap).min(cap);
        base + base.mul_f64(jitter.clamp(0.0, 1.0) * JITTER_FRACTION)
    }

    /// Runs `call` until it succeeds, fails permanently (access denied, not
    /// found, other 4xx) or has been retried `max_retries` times.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut retries = 0;
        loop {
            match call().await {
                Err(error) if error.kind.is_transient() && retries < self.max_retries => {
                    let wait = self.delay(retries, rand::random::<f64>());
                    tracing::debug!(%error, retry = retries + 1, ?wait, "backend call failed; retrying");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CallErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn settings(max_retries: Option<i32>, retry_interval: Option<&str>) -> RetrySettings {
        RetrySettings { max_retries, retry_interval: retry_interval.map(str::to_string) }
    }

    #[test]
    fn a_tenant_cannot_ask_for_endless_retries_or_intervals() {
        assert_eq!(RetryPolicy::from_settings(Some(&settings(Some(i32::MAX), Some("1ns")))), Err(RetrySettingsError::TooManyRetries(i32::MAX)));
        assert!(RetryPolicy::from_settings(Some(&settings(Some(20), Some("1ns")))).is_ok());
        assert!(matches!(
            RetryPolicy::from_settings(Some(&settings(None, Some("5124095576030431h")))),
            Err(RetrySettingsError::RetryInterval { source: DurationError::TooLong { .. }, .. })
        ));
    }

    #[test]
    fn settings_map_to_a_policy_with_eso_defaults() {
        assert_eq!(RetryPolicy::from_settings(None), Ok(None));
        let both = settings(Some(5), Some("250ms"));
        assert_eq!(
            RetryPolicy::from_settings(Some(&both)),
            Ok(Some(RetryPolicy { max_retries: 5, interval: Duration::from_millis(250) }))
        );
        let count_only = settings(Some(0), None);
        assert_eq!(RetryPolicy::from_settings(Some(&count_only)), Ok(Some(RetryPolicy { max_retries: 0, interval: DEFAULT_INTERVAL })));
        let interval_only = settings(None, Some("10s"));
        assert_eq!(
            RetryPolicy::from_settings(Some(&interval_only)),
            Ok(Some(RetryPolicy { max_retries: DEFAULT_MAX_RETRIES, interval: Duration::from_secs(10) }))
        );
        assert_eq!(RetryPolicy::from_settings(Some(&settings(None, None))).map(|p| p.map(|p| p.max_retries)), Ok(Some(3)));
    }

    #[test]
    fn bad_settings_name_the_field_and_the_fix() {
        let negative = RetryPolicy::from_settings(Some(&settings(Some(-1), None))).map_err(|e| e.to_string());
        assert!(negative.as_ref().is_err_and(|m| m.contains("spec.retrySettings.maxRetries") && m.contains("0 (no retries)")), "{negative:?}");
        for bad in ["soon", "5", "1d", "-1s"] {
            let error = RetryPolicy::from_settings(Some(&settings(Some(1), Some(bad)))).map_err(|e| e.to_string());
            assert!(error.as_ref().is_err_and(|m| m.contains("spec.retrySettings.retryInterval") && m.contains("`1s`")), "{bad}: {error:?}");
        }
    }

    #[test]
    fn aws_gets_the_standard_strategy_with_the_stores_numbers() {
        let config = RetryPolicy { max_retries: 4, interval: Duration::from_millis(10) }.aws_retry_config();
        assert_eq!(config.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(config.max_attempts(), 5, "maxRetries counts retries, the SDK counts attempts");
        assert_eq!(config.initial_backoff(), Duration::from_millis(10));
        assert_eq!(config.max_backoff(), MAX_BACKOFF);
        let none = RetryPolicy { max_retries: 0, interval: DEFAULT_INTERVAL }.aws_retry_config();
        assert_eq!(none.max_attempts(), 1);
        assert!(!none.has_retry(), "maxRetries 0 is one try");
        let slow = RetryPolicy { max_retries: 1, interval: Duration::from_secs(60) }.aws_retry_config();
        assert_eq!(slow.max_backoff(), Duration::from_secs(60), "the cap never shortens the first wait");
        let huge = RetryPolicy { max_retries: u32::MAX, interval: DEFAULT_INTERVAL }.aws_retry_config();
        assert_eq!(huge.max_attempts(), u32::MAX);
    }

    #[test]
    fn waits_double_from_the_interval_up_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy { max_retries: 10, interval: Duration::from_secs(1) };
        assert_eq!(policy.delay(0, 0.0), Duration::from_secs(1));
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(2));
        assert_eq!(policy.delay(3, 0.0), Duration::from_secs(8));
        assert_eq!(policy.delay(5, 0.0), MAX_BACKOFF);
        assert_eq!(policy.delay(40, 0.0), MAX_BACKOFF, "no overflow for late retries");
        assert_eq!(policy.delay(0, 1.0), Duration::from_millis(1200));
        assert_eq!(policy.delay(0, 7.0), Duration::from_millis(1200), "jitter is clamped");
        let slow = RetryPolicy { max_retries: 3, interval: Duration::from_secs(90) };
        assert_eq!(slow.delay(2, 0.0), Duration::from_secs(90), "a long interval is its own cap");
        assert_eq!(RetryPolicy { max_retries: 1, interval: Duration::ZERO }.delay(3, 1.0), Duration::ZERO);
    }

    /// Runs `policy` over a call failing with `failures` in order, then succeeding.
    async fn tries(policy: RetryPolicy, failures: &[CallErrorKind]) -> (Result<&'static str, CallError>, u32) {
        let count = AtomicU32::new(0);
        let result = policy
            .run(|| async {
                let n = count.fetch_add(1, Ordering::SeqCst) as usize;
                match failures.get(n) {
                    Some(kind) => Err(CallError::new(*kind, format!("failure {n}"))),
                    None => Ok("value"),
                }
            })
            .await;
        (result, count.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_max_retries() {
        let policy = RetryPolicy { max_retries: 3, interval: Duration::from_millis(1) };
        let throttled = [CallErrorKind::Throttled, CallErrorKind::Unavailable, CallErrorKind::Network];
        assert_eq!(tries(policy, &throttled).await, (Ok("value"), 4));
        let too_many = [CallErrorKind::Throttled; 4];
        let (result, calls) = tries(policy, &too_many).await;
        assert_eq!(result.map_err(|e| e.kind), Err(CallErrorKind::Throttled));
        assert_eq!(calls, 4, "one try and three retries");
        let no_retries = RetryPolicy { max_retries: 0, ..policy };
        let (result, calls) = tries(no_retries, &[CallErrorKind::Throttled]).await;
        assert_eq!((result.map_err(|e| e.kind), calls), (Err(CallErrorKind::Throttled), 1));
    }

    #[tokio::test]
    async fn permanent_failures_are_never_retried() {
        let policy = RetryPolicy { max_retries: 5, interval: Duration::from_millis(1) };
        for kind in [CallErrorKind::AccessDenied, CallErrorKind::NotFound, CallErrorKind::InvalidRequest] {
            let (result, calls) = tries(policy, &[kind, kind]).await;
            assert_eq!((result.map_err(|e| e.kind), calls), (Err(kind), 1), "{kind:?}");
        }
    }
}
