//! The rendered deploy manifests (`kubectl kustomize deploy/base` and the
//! EKS/GKE overlays) meet Pod Security "restricted" (which includes
//! "baseline") and the EKS Fargate / GKE Autopilot constraints, and the
//! Deployment's arguments are flags the binary accepts.
//!
//! The checks follow the documented Pod Security Standards controls
//! (kubernetes.io/docs/concepts/security/pod-security-standards) and are
//! shown to fail on a deliberately bad manifest.

use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl kustomize DIR`, parsed into its documents.
fn render(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo_root().join(dir))
        .output()
        .expect("kubectl runs (it is /usr/bin/kubectl)");
    assert!(output.status.success(), "kubectl kustomize {dir} failed: {}", String::from_utf8_lossy(&output.stderr));
    parse_documents(&String::from_utf8_lossy(&output.stdout))
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| <Value as serde::Deserialize>::deserialize(document).expect("valid YAML document"))
        .filter(|value| !value.is_null())
        .collect()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> String {
    format!("{}/{}", kind(object), object["metadata"]["name"].as_str().unwrap_or_default())
}

/// The pod spec of a workload object, if it is one.
fn pod_spec(object: &Value) -> Option<&Value> {
    match kind(object) {
        "Pod" => Some(&object["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some(&object["spec"]["template"]["spec"]),
        "CronJob" => Some(&object["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|field| spec[*field].as_sequence())
        .flatten()
        .collect()
}

fn is_true(value: &Value) -> bool {
    value.as_bool() == Some(true)
}

/// Baseline's SELinux and AppArmor controls on one security context.
fn selinux_and_apparmor(context: &Value) -> Vec<String> {
    let mut found = Vec::new();
    const SELINUX_TYPES: [&str; 4] = ["container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
    let selinux = &context["seLinuxOptions"];
    if let Some(type_) = selinux["type"].as_str().filter(|t| !t.is_empty() && !SELINUX_TYPES.contains(t)) {
        found.push(format!("seLinuxOptions.type {type_} is not allowed"));
    }
    for field in ["user", "role"] {
        if selinux[field].as_str().is_some_and(|v| !v.is_empty()) {
            found.push(format!("seLinuxOptions.{field} is set"));
        }
    }
    if context["appArmorProfile"]["type"].as_str() == Some("Unconfined") {
        found.push("appArmorProfile is Unconfined".to_string());
    }
    found
}

/// Pod Security "baseline" and "restricted" violations of one workload.
fn pod_security_violations(object: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(spec) = pod_spec(object) else { return found };
    let mut violation = |text: String| found.push(format!("{}: {text}", name(object)));
    // Baseline: host namespaces.
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(&spec[field]) {
            violation(format!("{field} is true"));
        }
    }
    let pod_context = &spec["securityContext"];
    // Baseline: sysctls only from the safe set.
    const SAFE_SYSCTLS: [&str; 8] = [
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
    ];
    for sysctl in pod_context["sysctls"].as_sequence().into_iter().flatten() {
        let sysctl_name = sysctl["name"].as_str().unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&sysctl_name) {
            violation(format!("unsafe sysctl {sysctl_name}"));
        }
    }
    // Restricted: only these volume types (baseline already forbids hostPath).
    const ALLOWED_VOLUMES: [&str; 8] = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
    for volume in spec["volumes"].as_sequence().into_iter().flatten() {
        for (key, _) in volume.as_mapping().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if key != "name" && !ALLOWED_VOLUMES.contains(&key) {
                violation(format!("volume type {key} is not allowed"));
            }
        }
    }
    let pod_non_root = is_true(&pod_context["runAsNonRoot"]);
    let pod_seccomp = pod_context["seccompProfile"]["type"].as_str();
    let allowed_seccomp = |profile: Option<&str>| matches!(profile, Some("RuntimeDefault" | "Localhost"));
    if pod_context["runAsUser"].as_i64() == Some(0) {
        violation("pod runAsUser is 0".to_string());
    }
    if pod_seccomp == Some("Unconfined") {
        violation("pod seccompProfile is Unconfined".to_string());
    }
    if pod_context["windowsOptions"]["hostProcess"].as_bool() == Some(true) {
        violation("pod is a Windows HostProcess".to_string());
    }
    for problem in selinux_and_apparmor(pod_context) {
        violation(format!("pod {problem}"));
    }
    for container in containers(spec) {
        let cname = container["name"].as_str().unwrap_or_default();
        let context = &container["securityContext"];
        let mut violation = |text: String| found.push(format!("{} container {cname}: {text}", name(object)));
        if is_true(&context["privileged"]) {
            violation("privileged".to_string());
        }
        if context["windowsOptions"]["hostProcess"].as_bool() == Some(true) {
            violation("Windows HostProcess".to_string());
        }
        for problem in selinux_and_apparmor(context) {
            violation(problem);
        }
        if context["procMount"].as_str().is_some_and(|m| m != "Default") {
            violation("procMount is not Default".to_string());
        }
        for port in container["ports"].as_sequence().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
                violation("uses a hostPort".to_string());
            }
        }
        if context["allowPrivilegeEscalation"].as_bool() != Some(false) {
            violation("allowPrivilegeEscalation is not false".to_string());
        }
        let non_root = match context["runAsNonRoot"].as_bool() {
            Some(value) => value,
            None => pod_non_root,
        };
        if !non_root {
            violation("runAsNonRoot is not true (pod or container)".to_string());
        }
        if context["runAsUser"].as_i64() == Some(0) {
            violation("runAsUser is 0".to_string());
        }
        let seccomp = context["seccompProfile"]["type"].as_str().or(pod_seccomp);
        if !allowed_seccomp(seccomp) {
            violation(format!("seccompProfile is {seccomp:?}, not RuntimeDefault or Localhost"));
        }
        let drops = context["capabilities"]["drop"].as_sequence().into_iter().flatten().filter_map(Value::as_str);
        if !drops.clone().any(|c| c == "ALL") {
            violation("capabilities do not drop ALL".to_string());
        }
        for added in context["capabilities"]["add"].as_sequence().into_iter().flatten().filter_map(Value::as_str) {
            if added != "NET_BIND_SERVICE" {
                violation(format!("adds capability {added}"));
            }
        }
    }
    found
}

/// EKS Fargate / GKE Autopilot constraints: no DaemonSet, no hostPath or
/// hostNetwork, nothing on the kubelet's port 10250, resource requests set.
fn fargate_violations(object: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if kind(object) == "DaemonSet" {
        found.push(format!("{}: DaemonSets do not run on Fargate", name(object)));
    }
    if matches!(kind(object), "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") {
        for webhook in object["webhooks"].as_sequence().into_iter().flatten() {
            if webhook["clientConfig"]["service"]["port"].as_i64() == Some(10250) {
                found.push(format!("{}: webhook on port 10250 clashes with the kubelet", name(object)));
            }
        }
    }
    if kind(object) == "Service" {
        for port in object["spec"]["ports"].as_sequence().into_iter().flatten() {
            if port["port"].as_i64() == Some(10250) || port["targetPort"].as_i64() == Some(10250) {
                found.push(format!("{}: port 10250 clashes with the kubelet", name(object)));
            }
        }
    }
    let Some(spec) = pod_spec(object) else { return found };
    if is_true(&spec["hostNetwork"]) {
        found.push(format!("{}: hostNetwork", name(object)));
    }
    for volume in spec["volumes"].as_sequence().into_iter().flatten() {
        if !volume["hostPath"].is_null() {
            found.push(format!("{}: hostPath volume", name(object)));
        }
    }
    for container in containers(spec) {
        let cname = container["name"].as_str().unwrap_or_default();
        for port in container["ports"].as_sequence().into_iter().flatten() {
            if port["containerPort"].as_i64() == Some(10250) {
                found.push(format!("{} container {cname}: listens on 10250, the kubelet's port", name(object)));
            }
        }
        for resource in ["cpu", "memory"] {
            if container["resources"]["requests"][resource].is_null() {
                found.push(format!("{} container {cname}: no {resource} request", name(object)));
            }
        }
    }
    found
}

fn all_violations(objects: &[Value]) -> Vec<String> {
    objects.iter().flat_map(|o| pod_security_violations(o).into_iter().chain(fargate_violations(o))).collect()
}

fn find<'a>(objects: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| kind(o) == wanted_kind && o["metadata"]["name"].as_str() == Some(wanted_name))
        .unwrap_or_else(|| panic!("{wanted_kind}/{wanted_name} is rendered"))
}

#[test]
fn rendered_manifests_pass_restricted_pod_security_and_fargate_constraints() {
    for dir in ["deploy/base", "deploy/overlays/eks", "deploy/overlays/gke"] {
        let objects = render(dir);
        let violations = all_violations(&objects);
        assert!(violations.is_empty(), "{dir}: {violations:#?}");
        // The base holds what the issue lists, in the right namespace.
        let kinds: Vec<&str> = objects.iter().map(kind).collect();
        for expected in ["CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "Role", "Deployment", "PodDisruptionBudget", "NetworkPolicy"] {
            assert!(kinds.contains(&expected), "{dir} renders a {expected}: {kinds:?}");
        }
        assert_eq!(objects.iter().filter(|o| kind(o) == "CustomResourceDefinition").count(), 3, "{dir}: the three generated CRDs");
        let deployment = find(&objects, "Deployment", "secretbridge-controller");
        assert_eq!(deployment["metadata"]["namespace"].as_str(), Some("secretbridge-system"));
        assert!(deployment["spec"]["replicas"].as_i64().is_some_and(|r| r >= 2), "{dir}: HA needs two replicas");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert!(is_true(&container["securityContext"]["readOnlyRootFilesystem"]), "{dir}: read-only root filesystem");
        assert!(!container["resources"]["limits"]["memory"].is_null(), "{dir}: memory limit");
        let env: Vec<&str> = container["env"].as_sequence().into_iter().flatten().filter_map(|e| e["name"].as_str()).collect();
        assert!(env.contains(&"POD_NAME") && env.contains(&"POD_NAMESPACE"), "{dir}: downward API env {env:?}");
        let namespace = find(&objects, "Namespace", "secretbridge-system");
        assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str(), Some("restricted"));
    }
}

#[test]
fn overlays_annotate_the_controller_service_account() {
    let base = render("deploy/base");
    assert!(find(&base, "ServiceAccount", "secretbridge-controller")["metadata"]["annotations"].is_null());
    let eks = render("deploy/overlays/eks");
    let annotations = &find(&eks, "ServiceAccount", "secretbridge-controller")["metadata"]["annotations"];
    assert!(annotations["eks.amazonaws.com/role-arn"].as_str().is_some_and(|arn| arn.starts_with("arn:aws:iam::")), "{annotations:?}");
    let gke = render("deploy/overlays/gke");
    let annotations = &find(&gke, "ServiceAccount", "secretbridge-controller")["metadata"]["annotations"];
    assert!(annotations["iam.gke.io/gcp-service-account"].as_str().is_some_and(|gsa| gsa.ends_with(".iam.gserviceaccount.com")), "{annotations:?}");
}

#[test]
fn the_checks_reject_a_deliberately_bad_manifest() {
    let bad = parse_documents(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bad}
spec:
  template:
    spec:
      hostNetwork: true
      hostPID: true
      securityContext:
        runAsUser: 0
        sysctls: [{name: kernel.msgmax, value: "1"}]
      volumes:
        - name: root
          hostPath: {path: /}
      containers:
        - name: c
          ports: [{containerPort: 10250, hostPort: 10250}]
          securityContext:
            privileged: true
            capabilities: {add: [SYS_ADMIN]}
            seLinuxOptions: {type: spc_t, user: system_u}
            appArmorProfile: {type: Unconfined}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: hook}
webhooks:
  - name: x.example.com
    clientConfig: {service: {name: s, namespace: n, port: 10250}}
"#,
    );
    let violations = all_violations(&bad).join("\n");
    for expected in [
        "hostNetwork is true",
        "hostPID is true",
        "unsafe sysctl kernel.msgmax",
        "volume type hostPath is not allowed",
        "pod runAsUser is 0",
        "privileged",
        "uses a hostPort",
        "allowPrivilegeEscalation is not false",
        "runAsNonRoot is not true",
        "seccompProfile is None",
        "capabilities do not drop ALL",
        "adds capability SYS_ADMIN",
        "DaemonSets do not run on Fargate",
        "hostPath volume",
        "listens on 10250",
        "no cpu request",
        "no memory request",
        "webhook on port 10250",
        "seLinuxOptions.type spc_t is not allowed",
        "seLinuxOptions.user is set",
        "appArmorProfile is Unconfined",
    ] {
        assert!(violations.contains(expected), "expected {expected:?} among:\n{violations}");
    }
}

#[test]
fn deployment_args_are_flags_the_binary_accepts() {
    let objects = render("deploy/base");
    let deployment = find(&objects, "Deployment", "secretbridge-controller");
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("the Deployment passes args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("run"));
    // With no reachable cluster the binary gets past flag parsing and fails
    // at connecting; an unknown or malformed flag fails earlier with usage.
    let output = Command::new(env!("CARGO_BIN_EXE_secretbridge-controller"))
        .args(&args)
        .env("KUBECONFIG", repo_root().join("does-not-exist/kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("POD_NAMESPACE", "secretbridge-system")
        .output()
        .expect("the controller binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("connecting to Kubernetes failed"), "flags rejected?\n{stderr}");
    assert!(!stderr.contains("usage:"), "{stderr}");
    // And the check can fail: a made-up flag is refused before connecting.
    let refused = Command::new(env!("CARGO_BIN_EXE_secretbridge-controller"))
        .args(["run", "--listen=0.0.0.0:8080"])
        .output()
        .expect("the controller binary runs");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown option --listen"));
}

#[test]
fn crd_subcommand_prints_the_committed_crds_and_version_prints_the_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_secretbridge-controller")).arg("crd").output().expect("the binary runs");
    assert!(output.status.success());
    let printed = parse_documents(&String::from_utf8_lossy(&output.stdout));
    let mut committed = Vec::new();
    for name in ["secretbridge.io_secretstores.yaml", "secretbridge.io_clustersecretstores.yaml", "secretbridge.io_externalsecrets.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("deploy/crds").join(name)).expect("committed CRD");
        committed.extend(parse_documents(&text));
    }
    let names = |docs: &[Value]| {
        let mut names: Vec<String> = docs.iter().map(name).collect();
        names.sort();
        names
    };
    assert_eq!(names(&printed), names(&committed));
    for crd in &committed {
        assert!(printed.contains(crd), "`crd` output differs from deploy/crds for {}", name(crd));
    }
    let version = Command::new(env!("CARGO_BIN_EXE_secretbridge-controller")).arg("version").output().expect("the binary runs");
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("secretbridge-controller {}", env!("CARGO_PKG_VERSION")));
}

// ---- Monitoring components (issue 25) ----

const COMPONENTS: [&str; 4] = ["metrics-service", "service-monitor", "prometheus-rule", "pod-monitoring"];

/// `kubectl kustomize` of an overlay in a temp dir: the base plus `components`.
fn render_with(components: &[&str], extra: &str) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Kustomize refuses absolute paths: climb from the temp dir to `/`.
    let up = "../".repeat(dir.path().components().count().saturating_sub(1));
    let deploy = repo_root().join("deploy").canonicalize().expect("deploy/ exists");
    let relative = |path: &str| format!("{up}{}/{path}", deploy.display().to_string().trim_start_matches('/'));
    let mut kustomization = format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n", relative("base"));
    if !components.is_empty() {
        kustomization.push_str("components:\n");
        for component in components {
            kustomization.push_str(&format!("  - {}\n", relative(&format!("components/{component}"))));
        }
    }
    kustomization.push_str(extra);
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization).expect("write kustomization");
    let output = Command::new("kubectl").arg("kustomize").arg(dir.path()).output().expect("kubectl runs");
    assert!(output.status.success(), "kubectl kustomize with {components:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (parse_documents(&text), text)
}

/// The namespaces (by `kubernetes.io/metadata.name`) the NetworkPolicy admits
/// to port 8080; `None` in the list stands for "from anywhere".
fn scrape_sources(objects: &[Value]) -> Vec<Option<String>> {
    let policy = find(objects, "NetworkPolicy", "secretbridge-controller");
    let mut sources = Vec::new();
    for rule in policy["spec"]["ingress"].as_sequence().expect("ingress rules") {
        let ports: Vec<i64> = rule["ports"].as_sequence().into_iter().flatten().filter_map(|p| p["port"].as_i64()).collect();
        assert_eq!(ports, [8080], "only the metrics port is admitted: {rule:?}");
        match rule["from"].as_sequence() {
            None => sources.push(None),
            Some(peers) if peers.is_empty() => sources.push(None),
            Some(peers) => {
                for peer in peers {
                    assert!(peer["ipBlock"].is_null() && peer["podSelector"].is_null(), "namespace peers only: {peer:?}");
                    let name = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str();
                    sources.push(name.map(str::to_string));
                }
            }
        }
    }
    sources
}

#[test]
fn monitoring_components_render_on_top_of_the_base_and_leave_it_alone_without() {
    let monitoring_kinds = ["Service", "ServiceMonitor", "PodMonitoring", "PrometheusRule"];
    let base = render("deploy/base");
    let kinds: Vec<&str> = base.iter().map(kind).collect();
    for absent in monitoring_kinds {
        assert!(!kinds.contains(&absent), "the base renders no {absent}, so clusters without those CRDs are unaffected");
    }
    assert_eq!(scrape_sources(&base), [Some("monitoring".to_string())], "the base admits scrapes from the monitoring namespace only");

    let (all, _) = render_with(&COMPONENTS, "");
    assert!(all_violations(&all).is_empty(), "{:#?}", all_violations(&all));
    for present in monitoring_kinds {
        assert!(all.iter().any(|o| kind(o) == present), "the components render a {present}");
    }
    assert_eq!(all.len(), base.len() + 4, "the components add four objects and change no count");
    for object in all.iter().filter(|o| monitoring_kinds.contains(&kind(o))) {
        assert_eq!(object["metadata"]["namespace"].as_str(), Some("secretbridge-system"), "{}", name(object));
    }
    // The Service and the monitors select the controller's pods and port.
    let pod_labels = &find(&all, "Deployment", "secretbridge-controller")["spec"]["template"]["metadata"]["labels"];
    let service = find(&all, "Service", "secretbridge-controller-metrics");
    assert_eq!(&service["spec"]["selector"]["app.kubernetes.io/name"], &pod_labels["app.kubernetes.io/name"]);
    assert_eq!(service["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    let monitor = find(&all, "ServiceMonitor", "secretbridge-controller");
    assert_eq!(&monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], &service["metadata"]["labels"]["app.kubernetes.io/name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"].as_str(), service["spec"]["ports"][0]["name"].as_str());
    let pod_monitoring = find(&all, "PodMonitoring", "secretbridge-controller");
    assert_eq!(&pod_monitoring["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], &pod_labels["app.kubernetes.io/name"]);
    // GKE Managed Prometheus' collectors run in gmp-system; the component admits them.
    assert_eq!(scrape_sources(&all), [Some("monitoring".to_string()), Some("gmp-system".to_string())]);
    let (prometheus_operator_only, _) = render_with(&["metrics-service", "service-monitor"], "");
    assert_eq!(scrape_sources(&prometheus_operator_only), [Some("monitoring".to_string())]);
}

#[test]
fn the_scraping_namespace_is_a_kustomize_patch_away() {
    let patch = "patches:\n  - target: {kind: NetworkPolicy, name: secretbridge-controller}\n    patch: |-\n      - op: replace\n        path: /spec/ingress/0/from/0/namespaceSelector/matchLabels\n        value: {kubernetes.io/metadata.name: observability}\n";
    let (objects, _) = render_with(&["metrics-service"], patch);
    assert_eq!(scrape_sources(&objects), [Some("observability".to_string())]);
}

/// Minimal CRDs for the monitoring kinds (the kube stand-in has none; a real
/// cluster with the Prometheus Operator or GKE Managed Prometheus keeps its
/// own, which are never overwritten): group, kind and an open schema.
fn minimal_crd(group: &str, kind_name: &str, plural: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind_name, "plural": plural, "singular": kind_name.to_lowercase(), "listKind": format!("{kind_name}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

// Multi-threaded: kubectl runs blocking while the stand-in serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_sets_with_and_without_the_components_pass_a_server_side_dry_run() {
    let cluster = kube_standin::testing::Cluster::from_env_or_start().await.expect("a cluster");
    // The stand-in knows no ServiceMonitor, PodMonitoring or PrometheusRule:
    // install minimal CRDs for them first (only where the cluster lacks them).
    for (group, kind_name, plural) in [
        ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
        ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
        ("monitoring.googleapis.com", "PodMonitoring", "podmonitorings"),
    ] {
        if cluster.get_raw(&format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")).await.is_err() {
            cluster.install_crd(&minimal_crd(group, kind_name, plural)).await.expect("install a minimal monitoring CRD");
        }
    }
    // Namespaced objects are dry-run into the namespace the base creates; a
    // dry-run does not create it, so it must exist.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(cluster.client());
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "secretbridge-system"}});
    namespaces
        .patch("secretbridge-system", &kube::api::PatchParams::apply("secretbridge-tests"), &kube::api::Patch::Apply(&namespace))
        .await
        .expect("the secretbridge-system namespace");

    let served = |api_version: String, kind_name: String| {
        let cluster = &cluster;
        async move {
            let path = if api_version == "v1" { "/api/v1".to_string() } else { format!("/apis/{api_version}") };
            cluster.get_raw(&path).await.ok().is_some_and(|list| {
                list["resources"].as_array().into_iter().flatten().any(|r| r["kind"] == kind_name.as_str() && !r["name"].as_str().unwrap_or_default().contains('/'))
            })
        }
    };
    for components in [&[][..], &COMPONENTS[..], &["metrics-service", "service-monitor", "prometheus-rule"][..]] {
        let (objects, _) = render_with(components, "");
        let mut applied = Vec::new();
        let mut skipped = Vec::new();
        for object in &objects {
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
            if served(api_version, kind(object).to_string()).await {
                applied.push(object.clone());
            } else {
                skipped.push(name(object));
            }
        }
        assert!(skipped.is_empty(), "kinds the cluster does not serve (a missing CRD?): {skipped:?}");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let text: String = applied.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("YAML"))).collect();
        std::fs::write(file.path(), text).expect("write the set");
        let output = Command::new("kubectl")
            .args(["apply", "--server-side", "--dry-run=server", "--field-manager=secretbridge-deploy-test", "-f"])
            .arg(file.path())
            .env("KUBECONFIG", cluster.kubeconfig_path())
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "dry-run of {components:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(stdout.matches("(server dry run)").count(), applied.len(), "every object answered:\n{stdout}");
        for monitoring_kind in ["ServiceMonitor", "PrometheusRule", "PodMonitoring"] {
            let expected = objects.iter().any(|o| kind(o) == monitoring_kind);
            assert_eq!(applied.iter().any(|o| kind(o) == monitoring_kind), expected, "{monitoring_kind} is dry-run when rendered");
        }
        eprintln!("{components:?}: {} objects dry-run", applied.len());
    }
    // The dry-run stored nothing.
    let monitors = cluster.get_raw("/apis/monitoring.coreos.com/v1/namespaces/secretbridge-system/servicemonitors").await.expect("list");
    assert_eq!(monitors["items"].as_array().map(Vec::len), Some(0), "a dry-run creates nothing");
}
