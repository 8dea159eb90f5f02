//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas
//! can run and only one reconciles.
//!
//! The protocol is the one client-go's `leaderelection` package documents:
//! a candidate takes the Lease when it is free (no holder) or expired (its
//! `renewTime + leaseDurationSeconds` lies in the past), the holder renews it
//! every retry period, and every write carries the `resourceVersion` it read,
//! so two candidates racing for the same Lease cannot both win (the loser
//! gets 409 Conflict and stands by). A holder that cannot renew within the
//! renew deadline has lost the lease and must stop reconciling; on a clean
//! shutdown it releases the Lease by clearing `holderIdentity`, so a standby
//! takes over at once instead of waiting for expiry.
//!
//! [`decide`] is the pure state machine; [`LeaseLock`] does the IO.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::Duration;

/// Settings of leader election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease (the controller's own).
    pub namespace: String,
    /// This replica's identity, written to `holderIdentity`.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks that the timings make sense together (client-go's rules):
    /// retry < renew deadline < lease duration, none zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.renew_deadline.is_zero() || self.lease_duration.is_zero() {
            return Err("--lease-duration, --renew-deadline and --retry-period must be positive".to_string());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({:?}) must be shorter than --lease-duration ({:?}), or two replicas could lead at once",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period ({:?}) must be shorter than --renew-deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// What a candidate does with the Lease it just read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No Lease exists: create one naming us.
    Create(LeaseSpec),
    /// The Lease is free or expired: take it over (a new transition).
    Take(LeaseSpec),
    /// We hold it: renew.
    Renew(LeaseSpec),
    /// Someone else holds a valid Lease.
    Standby {
        /// The current holder.
        holder: String,
    },
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// When a Lease runs out: its renew (or acquire) time plus its duration.
/// `None` when it has no holder or no times, i.e. it is free.
pub fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    spec.holder_identity.as_ref().filter(|h| !h.is_empty())?;
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed.checked_add(duration).ok()
}

/// The state machine: what `identity` does, given the Lease as read (`None`
/// when it does not exist) and the time now.
pub fn decide(lease: Option<&Lease>, config: &LeaseConfig, now: Timestamp) -> Decision {
    let ours = |acquired: Option<MicroTime>, transitions: i32| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(seconds(config.lease_duration)),
        acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(lease) = lease else {
        return Decision::Create(ours(None, 0));
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == config.identity => Decision::Renew(ours(spec.acquire_time.clone(), transitions)),
        Some(holder) if !holder.is_empty() && expiry(&spec).is_some_and(|end| end > now) => {
            Decision::Standby { holder: holder.to_string() }
        }
        _ => Decision::Take(ours(None, transitions.saturating_add(1))),
    }
}

/// Why a Lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Reading the Lease failed.
    #[error("reading Lease {namespace}/{name} failed; check the API server and the controller's RBAC for leases")]
    Read {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating or updating the Lease failed (other than losing a race).
    #[error("writing Lease {namespace}/{name} failed; check the API server and the controller's RBAC for leases")]
    Write {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The outcome of one acquire-or-renew attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the Lease now.
    Leading,
    /// Another replica holds it (or won the race just now).
    Standby {
        /// The holder, when known.
        holder: Option<String>,
    },
}

/// Reads and writes the Lease for one candidate.
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaseLock {
    /// A lock on the configured Lease.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaseLock { api: Api::namespaced(client, &config.namespace), config }
    }

    /// The settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn read_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Read { namespace: self.config.namespace.clone(), name: self.config.name.clone(), source }
    }

    fn write_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Write { namespace: self.config.namespace.clone(), name: self.config.name.clone(), source }
    }

    /// One attempt: read, decide, write with the read `resourceVersion`.
    /// A 409 (someone else wrote first) means standing by, not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaseError> {
        let current = self.api.get_opt(&self.config.name).await.map_err(|e| self.read_error(e))?;
        let write = match decide(current.as_ref(), &self.config, Timestamp::now()) {
            Decision::Standby { holder } => return Ok(Attempt::Standby { holder: Some(holder) }),
            Decision::Create(spec) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Take(spec) | Decision::Renew(spec) => {
                // `current` is Some here; replacing it keeps its
                // resourceVersion, which makes the update conditional.
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                self.api.replace(&self.config.name, &PostParams::default(), &lease).await
            }
        };
        match write {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Standby { holder: None }),
            Err(error) => Err(self.write_error(error)),
        }
    }

    /// Gives the Lease up if we still hold it: clears `holderIdentity`, so a
    /// standby takes over without waiting for expiry.
    pub async fn release(&self) -> Result<bool, LeaseError> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await.map_err(|e| self.read_error(e))? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        // client-go also shortens the duration so readers see it free at once.
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.write_error(e))?;
        Ok(true)
    }

    /// Retries until this replica leads; `on_standby` is told who holds it.
    /// Errors are logged and retried (the API server may be restarting).
    pub async fn acquire(&self, mut on_standby: impl FnMut(Option<&str>)) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => return,
                Ok(Attempt::Standby { holder }) => on_standby(holder.as_deref()),
                Err(error) => tracing::warn!(%error, "leader election attempt failed; retrying"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period while leading; returns when the Lease was
    /// lost: another holder took it, or no renewal succeeded within the
    /// renew deadline.
    pub async fn keep_renewing(&self) -> LostLease {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => last_renewal = tokio::time::Instant::now(),
                Ok(Attempt::Standby { holder }) => return LostLease::TakenBy(holder),
                Err(error) => {
                    tracing::warn!(%error, "renewing the leader lease failed");
                    if last_renewal.elapsed() >= self.config.renew_deadline {
                        return LostLease::DeadlinePassed;
                    }
                }
            }
        }
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostLease {
    /// Another replica holds the Lease now.
    TakenBy(Option<String>),
    /// No renewal succeeded within the renew deadline.
    DeadlinePassed,
}

/// This replica's identity: `POD_NAME` in a cluster, otherwise the host
/// name and process id (unique per process on one machine).
pub fn default_identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|v| !v.is_empty()) {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}_{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: "secretbridge-controller".into(),
            namespace: "secretbridge-system".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn lease(holder: Option<&str>, renewed: i64, transitions: i32) -> Lease {
        Lease {
            metadata: ObjectMeta { resource_version: Some("7".into()), ..ObjectMeta::default() },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(15),
                acquire_time: Some(MicroTime(at(renewed - 100))),
                renew_time: Some(MicroTime(at(renewed))),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn no_lease_is_created_naming_us() {
        let Decision::Create(spec) = decide(None, &config("a"), at(0)) else { panic!("expected Create") };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.renew_time, Some(MicroTime(at(0))));
    }

    #[test]
    fn a_valid_lease_held_by_another_means_standby() {
        let held = lease(Some("b"), 0, 3);
        assert_eq!(decide(Some(&held), &config("a"), at(14)), Decision::Standby { holder: "b".into() });
    }

    #[test]
    fn an_expired_lease_is_taken_with_a_new_transition() {
        let held = lease(Some("b"), 0, 3);
        let Decision::Take(spec) = decide(Some(&held), &config("a"), at(16)) else { panic!("expected Take") };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(16))));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let released = lease(None, 0, 3);
        assert!(matches!(decide(Some(&released), &config("a"), at(1)), Decision::Take(_)));
        let empty = lease(Some(""), 0, 3);
        assert!(matches!(decide(Some(&empty), &config("a"), at(1)), Decision::Take(_)));
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let ours = lease(Some("a"), 0, 3);
        let Decision::Renew(spec) = decide(Some(&ours), &config("a"), at(5)) else { panic!("expected Renew") };
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(-100))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(5))));
        // Even past expiry we may renew our own lease: nobody else took it.
        assert!(matches!(decide(Some(&ours), &config("a"), at(60)), Decision::Renew(_)));
    }

    #[test]
    fn timings_must_nest() {
        assert_eq!(config("a").validate(), Ok(()));
        let mut bad = config("a");
        bad.renew_deadline = Duration::from_secs(15);
        assert!(bad.validate().is_err_and(|m| m.contains("--renew-deadline")));
        let mut bad = config("a");
        bad.retry_period = Duration::from_secs(10);
        assert!(bad.validate().is_err_and(|m| m.contains("--retry-period")));
    }

    /// Scenarios against a mocked API server: the writes carry the
    /// resourceVersion read, a lost race (409) means standby, and release
    /// clears the holder only when we hold the Lease.
    mod scenarios {
        use super::*;
        use http::{Method, Request, Response};
        use kube::client::Body;
        use serde_json::{Value, json};
        use tower_test::mock;

        type Script = Vec<(Method, u16, Value)>;

        /// Serves `script` in order; returns the bodies of the requests.
        async fn against(script: Script, attempt: impl AsyncFnOnce(LeaseLock) -> Result<Attempt, LeaseError>) -> (Result<Attempt, LeaseError>, Vec<Value>) {
            let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
            let server = tokio::spawn(async move {
                let mut bodies = Vec::new();
                for (method, code, reply) in script {
                    let (request, send) = handle.next_request().await.expect("a request");
                    assert_eq!(request.method(), method);
                    let collection = "/apis/coordination.k8s.io/v1/namespaces/secretbridge-system/leases";
                    let expected = if method == Method::POST { collection.to_string() } else { format!("{collection}/secretbridge-controller") };
                    assert_eq!(request.uri().path(), expected);
                    let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
                    bodies.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                    send.send_response(Response::builder().status(code).body(Body::from(reply.to_string().into_bytes())).expect("response"));
                }
                bodies
            });
            let lock = LeaseLock::new(kube::Client::new(service, "default"), config("a"));
            let result = attempt(lock).await;
            let bodies = server.await.expect("server task");
            (result, bodies)
        }

        fn lease_json(holder: Option<&str>, renewed: Timestamp) -> Value {
            let mut held = lease(holder, 0, 2);
            if let Some(spec) = held.spec.as_mut() {
                spec.renew_time = Some(MicroTime(renewed));
            }
            held.metadata.name = Some("secretbridge-controller".into());
            held.metadata.namespace = Some("secretbridge-system".into());
            serde_json::to_value(held).unwrap_or(Value::Null)
        }

        fn conflict() -> Value {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"})
        }

        #[tokio::test]
        async fn taking_an_expired_lease_is_conditional_and_a_lost_race_means_standby() {
            let expired = lease_json(Some("b"), Timestamp::now() - SignedDuration::from_secs(60));
            let script = vec![(Method::GET, 200, expired), (Method::PUT, 409, conflict())];
            let (result, bodies) = against(script, async |lock| lock.try_acquire_or_renew().await).await;
            assert_eq!(result.expect("no error"), Attempt::Standby { holder: None });
            assert_eq!(bodies[1]["metadata"]["resourceVersion"], "7", "the update carries the resourceVersion read");
            assert_eq!(bodies[1]["spec"]["holderIdentity"], "a");
            assert_eq!(bodies[1]["spec"]["leaseTransitions"], 3);
        }

        #[tokio::test]
        async fn a_valid_lease_of_another_is_left_alone_and_a_missing_one_is_created() {
            let valid = lease_json(Some("b"), Timestamp::now());
            let (result, bodies) = against(vec![(Method::GET, 200, valid)], async |lock| lock.try_acquire_or_renew().await).await;
            assert_eq!(result.expect("no error"), Attempt::Standby { holder: Some("b".into()) });
            assert_eq!(bodies.len(), 1, "no write");
            let missing = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
            let created = lease_json(Some("a"), Timestamp::now());
            let (result, bodies) = against(vec![(Method::GET, 404, missing), (Method::POST, 201, created)], async |lock| lock.try_acquire_or_renew().await).await;
            assert_eq!(result.expect("no error"), Attempt::Leading);
            assert_eq!(bodies[1]["spec"]["holderIdentity"], "a");
        }

        #[tokio::test]
        async fn release_clears_the_holder_only_when_it_is_us() {
            let ours = lease_json(Some("a"), Timestamp::now());
            let released = lease_json(None, Timestamp::now());
            let (_, bodies) = against(vec![(Method::GET, 200, ours), (Method::PUT, 200, released)], async |lock| {
                assert!(lock.release().await.expect("released"));
                Ok(Attempt::Leading)
            })
            .await;
            assert!(bodies[1]["spec"].get("holderIdentity").is_none_or(Value::is_null), "{}", bodies[1]);
            let theirs = lease_json(Some("b"), Timestamp::now());
            let (_, bodies) = against(vec![(Method::GET, 200, theirs)], async |lock| {
                assert!(!lock.release().await.expect("nothing to release"));
                Ok(Attempt::Leading)
            })
            .await;
            assert_eq!(bodies.len(), 1, "someone else's lease is not touched");
        }
    }
}
