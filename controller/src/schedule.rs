//! When an ExternalSecret is synced and when it is looked at again: driven by
//! `refreshInterval`, `refreshPolicy` and `status.refreshTime`, plus the
//! force-sync annotation and the state of the target Secret.

use crate::desired::is_tampered;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use secretbridge_shared::duration::DurationError;
use secretbridge_shared::names::{ESO_FORCE_SYNC_ANNOTATION, FORCE_SYNC_ANNOTATION};
use secretbridge_shared::{CreationPolicy, ExternalSecret, RefreshPolicy};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Largest share of the refresh interval added as jitter, so ExternalSecrets
/// created together do not all refresh in the same second.
pub const MAX_JITTER_FRACTION: f64 = 0.1;

/// Why a sync is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncCause {
    /// The ExternalSecret was never synced.
    NeverSynced,
    /// Its spec or force-sync annotation changed since the last sync.
    SpecChanged,
    /// The target Secret does not exist.
    SecretMissing,
    /// The target Secret's data no longer matches the hash written with it.
    Tampered,
    /// The refresh interval has elapsed.
    Due,
}

impl SyncCause {
    /// Whether this sync should record a new `refreshTime`. Restoring a
    /// tampered Secret does not, so a Secret that stays different (someone
    /// else's extra key) never causes a status write loop.
    pub fn records_refresh(self) -> bool {
        !matches!(self, SyncCause::Tampered)
    }
}

/// The version string a sync records in `status.syncedResourceVersion`:
/// the generation, plus a short hash of the force-sync annotations (ours,
/// `secretbridge.io/force-sync`, and ESO's, `force-sync`) so that changing
/// either (which does not bump the generation) re-syncs.
pub fn synced_version(es: &ExternalSecret) -> String {
    let generation = es.metadata.generation.unwrap_or(0);
    let annotations = es.metadata.annotations.as_ref();
    let ours = annotations.and_then(|a| a.get(FORCE_SYNC_ANNOTATION));
    let eso = annotations.and_then(|a| a.get(ESO_FORCE_SYNC_ANNOTATION));
    // With only ours set the hash is the one earlier versions recorded, so
    // upgrading does not re-sync everything.
    let force = match (ours, eso) {
        (None, None) => None,
        (Some(ours), None) => Some(ours.clone()),
        (ours, Some(eso)) => Some(format!("{}\0eso:{eso}", ours.map_or("", String::as_str))),
    };
    match force {
        None => generation.to_string(),
        Some(value) => {
            let digest = Sha256::digest(value.as_bytes());
            let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("{generation}-{short}")
        }
    }
}

/// Decides whether to sync now. `existing` is the target Secret, if any.
pub fn sync_cause(
    es: &ExternalSecret,
    existing: Option<&Secret>,
    now: Timestamp,
) -> Result<Option<SyncCause>, DurationError> {
    let interval = es.spec.refresh_interval()?;
    let status = es.status.as_ref();
    let last_refresh = status.and_then(|s| s.refresh_time.as_ref()).map(|t| t.0);
    let synced = status.and_then(|s| s.synced_resource_version.as_deref());
    let writes_secret = !matches!(es.spec.target.creation_policy, CreationPolicy::None);
    let Some(last_refresh) = last_refresh else {
        return Ok(Some(SyncCause::NeverSynced));
    };
    let policy = es.spec.refresh_policy();
    if policy != RefreshPolicy::CreatedOnce && synced != Some(synced_version(es).as_str()) {
        return Ok(Some(SyncCause::SpecChanged));
    }
    if writes_secret {
        match existing {
            None if es.spec.target.creation_policy != CreationPolicy::Merge => {
                return Ok(Some(SyncCause::SecretMissing));
            }
            // A merged Secret holds other writers' keys too, so its hash
            // cannot show tampering; only Secrets this controller creates are checked.
            Some(secret)
                if policy != RefreshPolicy::CreatedOnce
                    && es.spec.target.creation_policy != CreationPolicy::Merge
                    && is_tampered(secret) =>
            {
                return Ok(Some(SyncCause::Tampered));
            }
            _ => {}
        }
    }
    if policy == RefreshPolicy::Periodic && !interval.is_zero() {
        let elapsed = now.duration_since(last_refresh);
        if elapsed.is_negative() {
            return Ok(None);
        }
        let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
        if elapsed >= interval {
            return Ok(Some(SyncCause::Due));
        }
    }
    Ok(None)
}

/// How long until the ExternalSecret should be looked at again, or `None`
/// to wait for a change (refresh interval `0`, `CreatedOnce`, `OnChange`).
/// `jitter` in `[0, 1)` picks a share of [`MAX_JITTER_FRACTION`] of the
/// interval to add.
pub fn next_requeue(
    es: &ExternalSecret,
    now: Timestamp,
    jitter: f64,
) -> Result<Option<Duration>, DurationError> {
    let interval = es.spec.refresh_interval()?;
    if es.spec.refresh_policy() != RefreshPolicy::Periodic || interval.is_zero() {
        return Ok(None);
    }
    let last_refresh = es
        .status
        .as_ref()
        .and_then(|s| s.refresh_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    let elapsed = Duration::try_from(now.duration_since(last_refresh)).unwrap_or(Duration::ZERO);
    let remaining = interval.saturating_sub(elapsed);
    Ok(Some(remaining.saturating_add(jitter_of(interval, jitter))))
}

/// The jitter added to a wait of `interval`: `share` in `[0, 1)` of
/// [`MAX_JITTER_FRACTION`] of it. Computed in floating point and never
/// panics, whatever the interval.
pub fn jitter_of(interval: Duration, share: f64) -> Duration {
    Duration::try_from_secs_f64(interval.as_secs_f64() * share.clamp(0.0, 1.0) * MAX_JITTER_FRACTION).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::build_target_secret;
    use crate::desired::tests::external_secret;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use secretbridge_shared::ExternalSecretStatus;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn synced(es: &mut ExternalSecret, ago_secs: i64) {
        es.metadata.generation = Some(1);
        let version = synced_version(es);
        es.status = Some(ExternalSecretStatus {
            refresh_time: Some(Time(now() - jiff::SignedDuration::from_secs(ago_secs))),
            synced_resource_version: Some(version),
            ..Default::default()
        });
    }

    fn secret_for(es: &ExternalSecret) -> Secret {
        build_target_secret(es, &Default::default()).expect("builds")
    }

    #[test]
    fn first_sync_spec_change_and_force_sync() {
        let mut es = external_secret(CreationPolicy::Owner);
        assert_eq!(sync_cause(&es, None, now()), Ok(Some(SyncCause::NeverSynced)));
        synced(&mut es, 10);
        let secret = secret_for(&es);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
        es.metadata.generation = Some(2);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::SpecChanged)));
        synced(&mut es, 10);
        es.metadata.annotations = Some([(FORCE_SYNC_ANNOTATION.to_string(), "1".to_string())].into_iter().collect());
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::SpecChanged)));
        synced(&mut es, 10);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
        // ESO's documented `kubectl annotate es NAME force-sync=$(date +%s) --overwrite`.
        es.metadata.annotations.get_or_insert_default().insert(ESO_FORCE_SYNC_ANNOTATION.to_string(), "1733140000".to_string());
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::SpecChanged)));
        synced(&mut es, 10);
        es.metadata.annotations.get_or_insert_default().insert(ESO_FORCE_SYNC_ANNOTATION.to_string(), "1733140001".to_string());
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::SpecChanged)));
    }

    #[test]
    fn missing_and_tampered_secrets_are_restored() {
        let mut es = external_secret(CreationPolicy::Owner);
        synced(&mut es, 10);
        assert_eq!(sync_cause(&es, None, now()), Ok(Some(SyncCause::SecretMissing)));
        let mut secret = secret_for(&es);
        secret.data = Some([("x".to_string(), ByteString(b"edited".to_vec()))].into_iter().collect());
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::Tampered)));
        assert!(!SyncCause::Tampered.records_refresh());
        let mut merge = external_secret(CreationPolicy::Merge);
        synced(&mut merge, 10);
        assert_eq!(sync_cause(&merge, None, now()), Ok(None));
        // Someone else's keys in a merged Secret are not tampering.
        assert_eq!(sync_cause(&merge, Some(&secret), now()), Ok(None));
    }

    #[test]
    fn periodic_refresh_is_due_after_the_interval() {
        let mut es = external_secret(CreationPolicy::Owner);
        synced(&mut es, 3599);
        let secret = secret_for(&es);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
        synced(&mut es, 3600);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::Due)));
        es.spec.refresh_interval = "0".into();
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
    }

    #[test]
    fn created_once_and_on_change_never_refresh_on_time() {
        let mut es = external_secret(CreationPolicy::Owner);
        es.spec.refresh_policy = Some(RefreshPolicy::CreatedOnce);
        synced(&mut es, 100_000);
        let secret = secret_for(&es);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
        es.metadata.generation = Some(5);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(None));
        assert_eq!(sync_cause(&es, None, now()), Ok(Some(SyncCause::SecretMissing)));
        es.spec.refresh_policy = Some(RefreshPolicy::OnChange);
        assert_eq!(sync_cause(&es, Some(&secret), now()), Ok(Some(SyncCause::SpecChanged)));
        assert_eq!(next_requeue(&es, now(), 0.5), Ok(None));
    }

    #[test]
    fn requeue_counts_from_refresh_time_with_bounded_jitter() {
        let mut es = external_secret(CreationPolicy::Owner);
        synced(&mut es, 600);
        assert_eq!(next_requeue(&es, now(), 0.0), Ok(Some(Duration::from_secs(3000))));
        assert_eq!(next_requeue(&es, now(), 1.0), Ok(Some(Duration::from_secs(3360))));
        synced(&mut es, 7200);
        assert_eq!(next_requeue(&es, now(), 0.0), Ok(Some(Duration::ZERO)));
        es.spec.refresh_interval = "0".into();
        assert_eq!(next_requeue(&es, now(), 0.3), Ok(None));
        es.spec.refresh_interval = "1d".into();
        assert!(next_requeue(&es, now(), 0.3).is_err());
        assert!(sync_cause(&es, None, now()).is_err());
    }

    /// A tenant's `refreshInterval: 5124095576030431h` once overflowed
    /// `interval + jitter` and panicked the whole controller.
    #[test]
    fn a_huge_refresh_interval_is_an_error_not_an_overflow() {
        let mut es = external_secret(CreationPolicy::Owner);
        synced(&mut es, 10);
        es.spec.refresh_interval = "5124095576030431h".into();
        assert!(matches!(next_requeue(&es, now(), 1.0), Err(DurationError::TooLong { .. })));
        assert!(matches!(sync_cause(&es, None, now()), Err(DurationError::TooLong { .. })));
        es.spec.refresh_interval = "8760h".into();
        let longest = next_requeue(&es, now(), 1.0).ok().flatten().expect("a wait");
        let expected = Duration::from_secs(8760 * 3600 - 10 + 876 * 3600);
        assert!(longest.abs_diff(expected) < Duration::from_millis(1), "{longest:?}");
    }
}
