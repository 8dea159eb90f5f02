//! Leader election with two controller processes on the Kubernetes stand-in
//! (and the GCP stand-in as the cloud): only the leader reconciles; killing
//! it (SIGKILL) hands the Lease to the standby, which then syncs a new
//! ExternalSecret from the cloud; SIGTERM releases the Lease (empty
//! holderIdentity) and exits 0; a leader whose Lease is taken stops
//! reconciling, stands by, and leads again once the Lease is free.
//! Reconciling is observed through what only a reconcile writes (Secrets,
//! Ready conditions) and the `/metrics` counters of each replica.

use crate::gcp_sync::GcpSync;
use crate::process::{ControllerProcess, eventually, http_get, sample};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::{Api, Client};
use kube_standin::testing::Cluster;
use secretbridge_shared::ExternalSecret;
use std::path::Path;
use std::time::Instant;

const LEASE: &str = "secretbridge-ha-test";

/// The flags of a replica that elects a leader over [`LEASE`] in
/// `namespace` (and watches only it), with lease timings short enough for a
/// test, as `identity`, reading GCP at `gcp_endpoint` when given.
fn leader_args(namespace: &str, identity: &str, gcp_endpoint: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "--leader-elect=true",
        "--lease-name",
        LEASE,
        "--lease-namespace",
        namespace,
        "--namespace",
        namespace,
        "--lease-duration=6s",
        "--renew-deadline=4s",
        "--retry-period=1s",
    ]
    .map(str::to_string)
    .to_vec();
    if let Some(endpoint) = gcp_endpoint {
        args.extend(["--gcp-endpoint".to_string(), endpoint.to_string()]);
    }
    args.push(format!("--identity={identity}"));
    args
}

async fn holder(client: &Client, namespace: &str) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), namespace).get_opt(LEASE).await.ok().flatten()
}

fn holder_identity(lease: &Lease) -> Option<String> {
    lease.spec.as_ref().and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty())
}

/// Creates an ExternalSecret that reads from a SecretStore that does not exist.
async fn create_external_secret(client: &Client, namespace: &str, name: &str) {
    let es: ExternalSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "no-such-store", "kind": "SecretStore"},
            "target": {"name": name},
            "data": [{"secretKey": "k", "remoteRef": {"key": "/k"}}]
        }
    }))
    .expect("ExternalSecret parses");
    Api::<ExternalSecret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &es)
        .await
        .expect("create ExternalSecret");
}

/// Waits until a reconcile recorded `Ready=False` for the missing store.
async fn wait_reconciled(client: &Client, namespace: &str, name: &str) {
    let api = Api::<ExternalSecret>::namespaced(client.clone(), namespace);
    eventually(&format!("ExternalSecret {name} to be reconciled"), || {
        let api = api.clone();
        async move {
            let es = api.get(name).await.ok()?;
            let ready = es.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
            ready.message.as_deref().is_some_and(|m| m.contains("does not exist")).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn killing_the_leader_hands_over_and_sigterm_releases_the_lease() {
    let env = GcpSync::seed("ha").await;
    let cluster = &env.cluster;
    let namespace = env.namespace.clone();
    let endpoint = env.gcp.endpoint();
    let client = cluster.client();
    let start = |identity: &'static str| {
        let args = leader_args(&namespace, identity, Some(&endpoint));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ControllerProcess::start(cluster.kubeconfig_path(), &args, &[])
    };

    let mut first = start("replica-a");
    eventually("replica-a to take the lease", || async {
        holder(&client, &namespace).await.filter(|l| holder_identity(l).as_deref() == Some("replica-a"))
    })
    .await;
    let mut second = start("replica-b");
    // The standby is ready (it would take over) but does not lead.
    let second_addr = second.metrics_addr().await;
    eventually("replica-b to stand by and be ready", || async move {
        let (code, _) = http_get(second_addr, "/readyz").await;
        let (_, metrics) = http_get(second_addr, "/metrics").await;
        (code == 200 && sample(&metrics, "secretbridge_leader", "") == Some(0.0)).then_some(())
    })
    .await;

    env.wait_synced().await;
    create_external_secret(&client, &namespace, "before-failover").await;
    wait_reconciled(&client, &namespace, "before-failover").await;
    let leader_metrics = first.metrics_text().await;
    assert!(sample(&leader_metrics, "secretbridge_sync_total", "result=\"StoreNotFound\"").is_some_and(|n| n >= 1.0), "{leader_metrics}");
    assert_eq!(sample(&leader_metrics, "secretbridge_leader", ""), Some(1.0));
    let standby_metrics = second.metrics_text().await;
    assert_eq!(sample(&standby_metrics, "secretbridge_sync_total", ""), None, "the standby reconciled:\n{standby_metrics}");
    let transitions_before = holder(&client, &namespace).await.and_then(|l| l.spec?.lease_transitions).unwrap_or(0);

    let killed_at = Instant::now();
    first.kill();
    let lease = eventually("replica-b to take over the lease", || async {
        holder(&client, &namespace).await.filter(|l| holder_identity(l).as_deref() == Some("replica-b"))
    })
    .await;
    println!("failover: replica-b held the lease {:?} after replica-a was killed (lease duration 6s)", killed_at.elapsed());
    assert!(lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0) > transitions_before, "a takeover counts a transition");

    // The new leader syncs a new ExternalSecret from the cloud.
    env.create_synced_external_secret("after-failover").await;
    env.wait_secret("after-failover").await;
    // Leading, the replica is ready once its cache has synced.
    eventually("replica-b to be ready as leader", || async move { (http_get(second_addr, "/readyz").await.0 == 200).then_some(()) }).await;
    let new_leader_metrics = second.metrics_text().await;
    assert_eq!(sample(&new_leader_metrics, "secretbridge_leader", ""), Some(1.0), "{new_leader_metrics}");
    assert!(sample(&new_leader_metrics, "secretbridge_sync_total", "").is_some_and(|n| n >= 1.0), "{new_leader_metrics}");
    for name in [
        "secretbridge_provider_api_calls_total",
        "secretbridge_sync_total",
        "secretbridge_reconcile_duration_seconds",
        "secretbridge_externalsecret_ready",
        "secretbridge_workqueue_depth",
        "secretbridge_leader",
    ] {
        assert!(new_leader_metrics.contains(&format!("# TYPE {name} ")), "{name} missing:\n{new_leader_metrics}");
    }
    // Every ExternalSecret is in the new leader's cache: two synced, three
    // refused (missing store, bad property, bad template). The gauges follow
    // the watch, which sees the last status write a moment later.
    let ready = format!("namespace=\"{namespace}\",status=\"True\"");
    let not_ready = format!("namespace=\"{namespace}\",status=\"False\"");
    eventually("the new leader's Ready gauge to count every ExternalSecret", || {
        let (ready, not_ready) = (ready.clone(), not_ready.clone());
        async move {
            let (_, text) = http_get(second_addr, "/metrics").await;
            let counts = (sample(&text, "secretbridge_externalsecret_ready", &ready), sample(&text, "secretbridge_externalsecret_ready", &not_ready));
            (counts == (Some(2.0), Some(3.0))).then_some(())
        }
    })
    .await;
    assert!(sample(&new_leader_metrics, "secretbridge_reconcile_duration_seconds_count", "").is_some_and(|n| n >= 1.0));
    // JSON logs carry the reconciled object's reference.
    let mentions_object = second.log_lines().iter().any(|line| {
        let text = line.to_string();
        text.contains("after-failover") && text.contains(namespace.as_str())
    });
    assert!(mentions_object, "no JSON log line names {namespace}/after-failover:\n{}", second.logs());

    second.terminate();
    let status = eventually("replica-b to exit after SIGTERM", || {
        let status = second.try_exit_status();
        async move { status }
    })
    .await;
    assert!(status.success(), "SIGTERM exits 0, got {status:?}:\n{}", second.logs());
    let released = holder(&client, &namespace).await.expect("the lease still exists");
    assert_eq!(holder_identity(&released), None, "SIGTERM releases the lease: {released:?}");
    assert!(second.logs().contains("leader lease released"), "{}", second.logs());
    drop((first, second));
    env.finish().await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stands_by_and_leads_again_once_it_is_free() {
    let mut cluster = Cluster::from_env_or_start().await.expect("kube stand-in starts");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    cluster.install_crds(&crds).await.expect("CRDs install");
    let namespace = cluster.create_namespace("lease-lost").await.expect("namespace");
    let client = cluster.client();
    let args = leader_args(&namespace, "replica-a", None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut controller = ControllerProcess::start(cluster.kubeconfig_path(), &args, &[]);
    let lease = eventually("replica-a to take the lease", || async {
        holder(&client, &namespace).await.filter(|l| holder_identity(l).as_deref() == Some("replica-a"))
    })
    .await;
    let addr = controller.metrics_addr().await;
    // Another party takes the Lease over (as a replica that saw it expire
    // during a network partition would); the update is conditional on the
    // version read, so retry on a conflict with the leader's renewal.
    let api = Api::<Lease>::namespaced(client.clone(), &namespace);
    let set_holder = |mut current: Lease, holder: Option<&str>| {
        if let Some(spec) = current.spec.as_mut() {
            spec.holder_identity = holder.map(str::to_string);
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now()));
            spec.lease_duration_seconds = Some(3600);
        }
        current
    };
    let mut current = lease;
    loop {
        match api.replace(LEASE, &PostParams::default(), &set_holder(current.clone(), Some("intruder"))).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 => current = api.get(LEASE).await.expect("read lease"),
            Err(error) => panic!("taking the lease over failed: {error}"),
        }
    }
    eventually("replica-a to stop reconciling and stand by", || async move {
        let (_, text) = http_get(addr, "/metrics").await;
        (sample(&text, "secretbridge_leader", "") == Some(0.0)).then_some(())
    })
    .await;
    assert!(controller.logs().contains("stopped reconciling after losing the leader lease"), "{}", controller.logs());
    assert!(controller.try_exit_status().is_none(), "the replica keeps running as a standby");
    let lease = holder(&client, &namespace).await.expect("lease exists");
    assert_eq!(holder_identity(&lease).as_deref(), Some("intruder"), "the old leader does not clear someone else's lease");

    // The intruder lets go; replica-a leads again and reconciles.
    let released = set_holder(lease, None);
    api.replace(LEASE, &PostParams::default(), &released).await.expect("release the lease");
    eventually("replica-a to lead again", || async {
        holder(&client, &namespace).await.filter(|l| holder_identity(l).as_deref() == Some("replica-a"))
    })
    .await;
    create_external_secret(&client, &namespace, "after-regain").await;
    wait_reconciled(&client, &namespace, "after-regain").await;
    controller.terminate();
    let status = eventually("replica-a to exit after SIGTERM", || {
        let status = controller.try_exit_status();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status:?}:\n{}", controller.logs());
    cluster.cleanup().await;
}

/// A loopback proxy to the GCP stand-in that holds every Secret Manager
/// `:access` request for `delay` and counts them, so a test can catch a
/// reconcile in flight.
async fn slow_access_proxy(upstream: std::net::SocketAddr, delay: std::time::Duration) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream_leg = async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(read) = client_read.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        if String::from_utf8_lossy(&buffer[..read]).contains(":access") {
                            counter.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                        }
                        if server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                };
                let downstream_leg = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(upstream_leg, downstream_leg);
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_sync_finish_then_releases_the_lease() {
    use std::sync::atomic::Ordering;
    let env = GcpSync::seed("drain").await;
    let client = env.cluster.client();
    let namespace = env.namespace.clone();
    let (proxy, access_requests) = slow_access_proxy(env.gcp.addr(), std::time::Duration::from_secs(5)).await;
    let endpoint = format!("http://{proxy}");
    let args = leader_args(&namespace, "draining", Some(&endpoint));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut controller = ControllerProcess::start(env.cluster.kubeconfig_path(), &args, &[]);
    // `synced` and `bad-property` each read one secret: both reads held.
    eventually("both Secret Manager accesses to be in flight", || {
        let seen = access_requests.load(Ordering::SeqCst);
        async move { (seen >= 2).then_some(()) }
    })
    .await;
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &namespace);
    assert!(secrets.get_opt("synced").await.expect("read Secret").is_none(), "the sync is still in flight");
    controller.terminate();
    let status = eventually("the controller to exit after SIGTERM", || {
        let status = controller.try_exit_status();
        async move { status }
    })
    .await;
    assert!(status.success(), "SIGTERM exits 0, got {status:?}:\n{}", controller.logs());
    // The reconcile that was waiting on the cloud when SIGTERM came finished:
    // its Secret exists with the value.
    env.wait_secret("synced").await;
    let logs = controller.logs();
    assert!(logs.contains("reconcilers stopped after in-flight reconciles finished"), "{logs}");
    assert!(logs.contains("leader lease released"), "{logs}");
    let lease = holder(&client, &namespace).await.expect("the lease exists");
    assert_eq!(holder_identity(&lease), None, "released: {lease:?}");
    drop(controller);
    env.finish().await;
}
