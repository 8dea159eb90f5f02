//! In-memory fakes of the backend traits, with the real services' selector
//! and version rules, call counting and injectable failures. Used by unit and
//! scenario tests; never by the controller binary.

use super::{CallError, CallErrorKind, GcpSecretSource, ParameterBatch, ParameterSource, SecretSource, SecretVersion};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

struct FakeState<T> {
    items: BTreeMap<String, Vec<T>>,
    denied: HashSet<String>,
    malformed: HashSet<String>,
    fail_next: Option<CallError>,
    calls: usize,
    batch_sizes: Vec<usize>,
}

impl<T> Default for FakeState<T> {
    fn default() -> Self {
        FakeState {
            items: BTreeMap::new(),
            denied: HashSet::new(),
            malformed: HashSet::new(),
            fail_next: None,
            calls: 0,
            batch_sizes: Vec::new(),
        }
    }
}

impl<T> FakeState<T> {
    fn begin_call(&mut self, names: &[&str], size: usize) -> Result<(), CallError> {
        self.calls += 1;
        self.batch_sizes.push(size);
        if let Some(error) = self.fail_next.take() {
            return Err(error);
        }
        if let Some(name) = names.iter().find(|n| self.denied.contains(**n)) {
            return Err(CallError::new(CallErrorKind::AccessDenied, format!("not authorized to read {name}")));
        }
        if let Some(name) = names.iter().find(|n| self.malformed.contains(**n)) {
            return Err(CallError::new(CallErrorKind::InvalidRequest, format!("ValidationException: {name} is not a valid parameter name")));
        }
        Ok(())
    }
}

/// One version of an SSM parameter.
struct ParameterVersion {
    version: u64,
    labels: Vec<String>,
    value: String,
}

/// A fake SSM Parameter Store: versions count from 1, `name:N` selects a
/// version and `name:label` a label, missing selectors come back as invalid,
/// and a denied name fails the whole call (as IAM does).
#[derive(Default)]
pub struct FakeParameters {
    state: Mutex<FakeState<ParameterVersion>>,
}

impl FakeParameters {
    /// Writes a new version of a parameter and returns its version number.
    pub fn put(&self, name: &str, value: &str) -> u64 {
        let mut state = lock(&self.state);
        let versions = state.items.entry(name.to_string()).or_default();
        let version = versions.len() as u64 + 1;
        versions.push(ParameterVersion { version, labels: Vec::new(), value: value.to_string() });
        version
    }

    /// Attaches a label to a version.
    pub fn label(&self, name: &str, version: u64, label: &str) {
        let mut state = lock(&self.state);
        if let Some(v) = state.items.get_mut(name).and_then(|vs| vs.iter_mut().find(|v| v.version == version)) {
            v.labels.push(label.to_string());
        }
    }

    /// Deletes a parameter with all its versions.
    pub fn delete(&self, name: &str) {
        lock(&self.state).items.remove(name);
    }

    /// Makes every call that includes `name` fail with AccessDenied.
    pub fn deny(&self, name: &str) {
        lock(&self.state).denied.insert(name.to_string());
    }

    /// Makes any call naming `name` fail as SSM fails a call holding a
    /// malformed name: the whole call, with a ValidationException.
    pub fn reject_as_malformed(&self, name: &str) {
        lock(&self.state).malformed.insert(name.to_string());
    }

    /// Makes the next call fail with `error`.
    pub fn fail_next(&self, error: CallError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Number of `GetParameters` calls so far.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }

    /// Number of selectors in each call so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        lock(&self.state).batch_sizes.clone()
    }
}

impl ParameterSource for FakeParameters {
    fn get_parameters<'a>(&'a self, selectors: &'a [String]) -> BoxFuture<'a, Result<ParameterBatch, CallError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            let names: Vec<&str> = selectors.iter().map(|s| s.split_once(':').map_or(s.as_str(), |(n, _)| n)).collect();
            state.begin_call(&names, selectors.len())?;
            if selectors.len() > super::SSM_BATCH_LIMIT {
                return Err(CallError::new(CallErrorKind::InvalidRequest, "GetParameters accepts at most 10 names"));
            }
            let mut batch = ParameterBatch::default();
            for (selector, name) in selectors.iter().zip(names) {
                let wanted = selector.split_once(':').map(|(_, v)| v);
                let found = state.items.get(name).and_then(|versions| match wanted {
                    None => versions.last(),
                    Some(v) => match v.parse::<u64>() {
                        Ok(number) => versions.iter().find(|p| p.version == number),
                        Err(_) => versions.iter().find(|p| p.labels.iter().any(|l| l == v)),
                    },
                });
                match found {
                    Some(p) => {
                        batch.values.insert(selector.clone(), p.value.as_bytes().to_vec());
                    }
                    None => batch.invalid.push(selector.clone()),
                }
            }
            Ok(batch)
        })
    }
}

/// One version of a Secrets Manager secret.
struct SecretVersionEntry {
    id: String,
    stages: Vec<String>,
    value: Vec<u8>,
}

/// A fake Secrets Manager: each put makes a new version `v1`, `v2`… that
/// takes `AWSCURRENT` and moves the previous one to `AWSPREVIOUS`.
#[derive(Default)]
pub struct FakeSecrets {
    state: Mutex<FakeState<SecretVersionEntry>>,
}

impl FakeSecrets {
    /// Writes a new current version; returns its version id.
    pub fn put(&self, name: &str, value: &str) -> String {
        let mut state = lock(&self.state);
        let versions = state.items.entry(name.to_string()).or_default();
        for v in versions.iter_mut() {
            v.stages.retain(|s| s == "AWSCURRENT");
            for stage in v.stages.iter_mut() {
                *stage = "AWSPREVIOUS".to_string();
            }
        }
        let id = format!("v{}", versions.len() + 1);
        versions.push(SecretVersionEntry { id: id.clone(), stages: vec!["AWSCURRENT".into()], value: value.as_bytes().to_vec() });
        id
    }

    /// Deletes a secret.
    pub fn delete(&self, name: &str) {
        lock(&self.state).items.remove(name);
    }

    /// Makes reads of `name` fail with AccessDenied.
    pub fn deny(&self, name: &str) {
        lock(&self.state).denied.insert(name.to_string());
    }

    /// Makes the next call fail with `error`.
    pub fn fail_next(&self, error: CallError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Number of `GetSecretValue` calls so far.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }
}

impl SecretSource for FakeSecrets {
    fn get_secret_value<'a>(&'a self, secret_id: &'a str, version: &'a SecretVersion) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            state.begin_call(&[secret_id], 1)?;
            let versions = state
                .items
                .get(secret_id)
                .ok_or_else(|| CallError::new(CallErrorKind::NotFound, format!("Secrets Manager can't find the specified secret {secret_id}")))?;
            let found = versions.iter().find(|v| match version {
                SecretVersion::Stage(stage) => v.stages.contains(stage),
                SecretVersion::Id(id) => v.id == *id,
            });
            found
                .map(|v| v.value.clone())
                .ok_or_else(|| CallError::new(CallErrorKind::NotFound, format!("Secrets Manager can't find {version} of {secret_id}")))
        })
    }
}

/// A fake GCP Secret Manager keyed by `projects/P/secrets/S`: versions count
/// from 1, and as in the real service `latest` is the newest version whatever
/// its state, and reading a disabled version answers `400
/// FAILED_PRECONDITION`, not 404.
#[derive(Default)]
pub struct FakeGcpSecrets {
    state: Mutex<FakeState<Option<Vec<u8>>>>,
}

impl FakeGcpSecrets {
    /// Adds a version to `projects/{project}/secrets/{secret}`; returns its number.
    pub fn add_version(&self, project: &str, secret: &str, value: &str) -> usize {
        let mut state = lock(&self.state);
        let versions = state.items.entry(format!("projects/{project}/secrets/{secret}")).or_default();
        versions.push(Some(value.as_bytes().to_vec()));
        versions.len()
    }

    /// Disables a version (it can no longer be accessed).
    pub fn disable(&self, project: &str, secret: &str, version: usize) {
        let mut state = lock(&self.state);
        if let Some(slot) = state
            .items
            .get_mut(&format!("projects/{project}/secrets/{secret}"))
            .and_then(|vs| vs.get_mut(version.wrapping_sub(1)))
        {
            *slot = None;
        }
    }

    /// Deletes a secret.
    pub fn delete(&self, project: &str, secret: &str) {
        lock(&self.state).items.remove(&format!("projects/{project}/secrets/{secret}"));
    }

    /// Makes reads of `projects/{project}/secrets/{secret}` fail with PERMISSION_DENIED.
    pub fn deny(&self, project: &str, secret: &str) {
        lock(&self.state).denied.insert(format!("projects/{project}/secrets/{secret}"));
    }

    /// Makes the next call fail with `error`.
    pub fn fail_next(&self, error: CallError) {
        lock(&self.state).fail_next = Some(error);
    }

    /// Number of `AccessSecretVersion` calls so far.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }
}

impl GcpSecretSource for FakeGcpSecrets {
    fn access_secret_version<'a>(&'a self, version_name: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CallError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            let (secret, version) = version_name
                .rsplit_once("/versions/")
                .ok_or_else(|| CallError::new(CallErrorKind::InvalidRequest, format!("malformed version name {version_name}")))?;
            state.begin_call(&[secret], 1)?;
            let versions = state
                .items
                .get(secret)
                .filter(|versions| !versions.is_empty())
                .ok_or_else(|| CallError::new(CallErrorKind::NotFound, format!("HTTP 404 NOT_FOUND: Secret [{secret}] not found or has no versions.")))?;
            let slot = if version == "latest" {
                versions.last()
            } else {
                let number: usize = version
                    .parse()
                    .map_err(|_| CallError::new(CallErrorKind::InvalidRequest, format!("version {version:?} is not a number or latest")))?;
                versions.get(number.wrapping_sub(1))
            };
            match slot {
                None => Err(CallError::new(CallErrorKind::NotFound, format!("HTTP 404 NOT_FOUND: Secret Version [{version_name}] not found."))),
                Some(None) => Err(CallError::new(
                    CallErrorKind::InvalidRequest,
                    format!("HTTP 400 FAILED_PRECONDITION: Secret Version [{version_name}] is in DISABLED state."),
                )),
                Some(Some(value)) => Ok(value.clone()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parameter_selectors_follow_ssm() {
        let fake = FakeParameters::default();
        fake.put("/p", "one");
        fake.put("/p", "two");
        fake.label("/p", 1, "stable");
        let selectors: Vec<String> = ["/p", "/p:1", "/p:stable", "/p:9", "/q"].iter().map(|s| s.to_string()).collect();
        let batch = fake.get_parameters(&selectors).await.expect("call succeeds");
        assert_eq!(batch.values.get("/p"), Some(&b"two".to_vec()));
        assert_eq!(batch.values.get("/p:1"), Some(&b"one".to_vec()));
        assert_eq!(batch.values.get("/p:stable"), Some(&b"one".to_vec()));
        assert_eq!(batch.invalid, vec!["/p:9".to_string(), "/q".to_string()]);
        fake.deny("/p");
        assert!(matches!(fake.get_parameters(&selectors).await, Err(e) if e.kind == CallErrorKind::AccessDenied));
    }

    #[tokio::test]
    async fn secret_stages_move_on_put() {
        let fake = FakeSecrets::default();
        fake.put("db", "old");
        fake.put("db", "new");
        let current = SecretVersion::from_remote(None);
        assert_eq!(fake.get_secret_value("db", &current).await, Ok(b"new".to_vec()));
        let previous = SecretVersion::Stage("AWSPREVIOUS".into());
        assert_eq!(fake.get_secret_value("db", &previous).await, Ok(b"old".to_vec()));
        assert_eq!(fake.get_secret_value("db", &SecretVersion::Id("v1".into())).await, Ok(b"old".to_vec()));
        assert!(matches!(fake.get_secret_value("nope", &current).await, Err(e) if e.kind == CallErrorKind::NotFound));
    }

    /// Real Secret Manager (and our GCP stand-in, compared against drongo)
    /// resolves `latest` to the newest version even when it is disabled, and
    /// answers FAILED_PRECONDITION, which must never read as "deleted".
    #[tokio::test]
    async fn gcp_latest_is_the_newest_version_and_a_disabled_one_is_a_precondition_failure() {
        let fake = FakeGcpSecrets::default();
        fake.add_version("p", "s", "one");
        fake.add_version("p", "s", "two");
        fake.disable("p", "s", 2);
        for disabled in ["projects/p/secrets/s/versions/latest", "projects/p/secrets/s/versions/2"] {
            let error = fake.access_secret_version(disabled).await.expect_err(disabled);
            assert_eq!(error.kind, CallErrorKind::InvalidRequest, "{disabled}: {error}");
            assert!(error.message.contains("FAILED_PRECONDITION"), "{error}");
        }
        assert_eq!(fake.access_secret_version("projects/p/secrets/s/versions/1").await, Ok(b"one".to_vec()));
        let missing = fake.access_secret_version("projects/p/secrets/s/versions/3").await.expect_err("no version 3");
        assert_eq!(missing.kind, CallErrorKind::NotFound);
    }
}
