//! The namespace pitfall, caught at plan time: an ExternalSecret must find
//! its store in its own namespace, a SecretStore its ServiceAccount in its
//! own namespace with the annotation its provider needs, and the IAM trust
//! (IRSA role, Workload Identity binding) must admit the ServiceAccount that
//! carries it. Each check looks at the other end in this run's plan first
//! ([`crate::planned`]), then in the cluster, and names both ends and the
//! fix. Values unknown at plan time are never taken as a mismatch.
//!
//! Terraform plans two resources in a fixed order only when one references
//! the other, so a check may run before the other end is recorded. Errors
//! therefore rest only on evidence a later plan cannot overturn:
//! - a value in this resource's own configuration (an explicit namespace);
//! - a pair whose both ends are planned: whichever end is planned second
//!   checks the pair, so the order does not matter;
//! - a cluster object this provider does not manage (no
//!   `secretbridge-terraform` field manager), which this plan cannot change;
//! - for an ExternalSecret, its store's absence: the ExternalSecret names
//!   its store and can always reference it, which orders the plan (the
//!   diagnostic says so).
//!
//! A finding that a later plan could overturn (a ServiceAccount found so far
//! only in another namespace) is a warning. A SecretStore cannot reference
//! its ServiceAccount when the IRSA role derives its access from the
//! ExternalSecret (that would be a cycle), so its ServiceAccount is often
//! planned after it.
//!
//! These functions read the raw planned value (Terraform attribute names),
//! so a partly unknown plan is still checked where it is known.

use ::kube::Api;
use ::kube::api::ListParams;
use k8s_openapi::api::core::v1::ServiceAccount;
use secretbridge_shared::names::{AWS_ROLE_ARN_ANNOTATION, GCP_SERVICE_ACCOUNT_ANNOTATION, TERRAFORM_FIELD_MANAGER};
use secretbridge_shared::store::{ClusterSecretStore, SecretStore};

use crate::kube as k;
use crate::planned::{Known, PlannedIrsaRole, PlannedServiceAccount, PlannedServiceAccountRef, PlannedStore, PlannedWorkloadIdentity, StoreProviderKind};
use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::ProviderContext;
use crate::plugin::value::Value;

/// A string attribute: `None` when null, [`Known::Unknown`] while unknown.
fn kstr(v: &Value) -> Option<Known<String>> {
    match v {
        Value::String(s) => Some(Known::Value(s.clone())),
        Value::Unknown => Some(Known::Unknown),
        _ => None,
    }
}

/// A string attribute that is set and known.
fn known(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Why the order of planning matters, for "not found" diagnostics.
const ORDER_HINT: &str = "Terraform plans a resource after another only when its configuration references it: if the other end is declared in this configuration, reference it (e.g. `name = secretbridge_secret_store.aws.name`) instead of repeating the literal name.";

/// A cluster lookup that failed. The provider needs the cluster to apply
/// this resource, so a cluster it cannot reach fails the plan, naming the
/// settings to fix; a refusal by RBAC (the cluster answered) only warns,
/// and the namespace checks then used this plan only.
fn lookup_warning(what: &str, e: &Diagnostics) -> Diagnostic {
    let detail: Vec<String> = e.0.iter().map(|d| format!("{}: {}", d.summary, d.detail.trim_end_matches('.'))).collect();
    if detail.iter().any(|d| d.contains("lacks RBAC")) {
        return Diagnostic::warning(
            format!("Could not look up {what} in the cluster"),
            format!("{}. The namespace checks used this plan only; they run again at apply.", detail.join("; ")),
        );
    }
    unreachable_cluster(&format!("look up {what}"), &detail.join("; "))
}

/// The plan error for a cluster the provider cannot reach.
fn unreachable_cluster(action: &str, detail: &str) -> Diagnostic {
    Diagnostic::error(
        "Cannot reach the Kubernetes cluster",
        format!(
            "The provider needs the cluster to {action} and to apply this resource, but: {detail}. Fix the provider's kubernetes {{}} block: kubernetes.config_path (or the KUBE_CONFIG_PATH environment variable) must name a readable kubeconfig, kubernetes.config_context a context in it, or set kubernetes.host with token/cluster_ca_certificate or an exec {{}} block; and check that the API server is reachable from where Terraform runs."
        ),
    )
}

/// Fails the plan of a Kubernetes resource when the provider has a
/// `kubernetes {}` block but cannot reach that cluster: otherwise the plan
/// would pass and the apply fail.
pub async fn require_cluster(ctx: &ProviderContext) -> Diagnostics {
    if !manages_cluster(ctx) {
        return Diagnostics::default();
    }
    let client = match k::client(ctx).await {
        Ok(c) => c,
        Err(e) => {
            let detail: Vec<String> = e.0.iter().map(|d| format!("{}: {}", d.summary, d.detail.trim_end_matches('.'))).collect();
            return unreachable_cluster("plan", &detail.join("; ")).into();
        }
    };
    match client.apiserver_version().await {
        // The API server answered but did not accept the credentials: the
        // apply would fail the same way, so the plan fails now.
        Err(::kube::Error::Api(status)) if status.code == 401 => unreachable_cluster(
            "plan",
            "the API server refused the provider's credentials (401 Unauthorized): the kubeconfig user's token or certificate, kubernetes.token, or the credential printed by the exec {} command, is not valid for this cluster",
        )
        .into(),
        // Any other answer, even an RBAC refusal, means it is reachable.
        Ok(_) | Err(::kube::Error::Api(_)) => Diagnostics::default(),
        Err(e) => unreachable_cluster("plan", &format!("the API server did not answer ({e})")).into(),
    }
}

/// Records a planned `secretbridge_service_account` and checks it against
/// the IRSA role and Workload Identity bindings planned before it.
pub async fn plan_service_account(ctx: &ProviderContext, v: &Value) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let (Some(namespace), Some(name)) = (known(v.attr("namespace")), known(v.attr("name"))) else { return diags };
    let mut annotations = std::collections::BTreeMap::new();
    let mut complete = true;
    match v.attr("annotations") {
        Value::Map(entries) => {
            for (key, value) in entries {
                match kstr(value) {
                    Some(kv) => {
                        annotations.insert(key.clone(), kv);
                    }
                    None => complete = false,
                }
            }
        }
        Value::Unknown => complete = false,
        _ => {}
    }
    for (key, attr) in [(AWS_ROLE_ARN_ANNOTATION, "aws_role_arn"), (GCP_SERVICE_ACCOUNT_ANNOTATION, "gcp_service_account")] {
        if let Some(kv) = kstr(v.attr(attr)) {
            annotations.insert(key.to_owned(), kv);
        }
    }
    let sa = PlannedServiceAccount { namespace: namespace.clone(), name: name.clone(), annotations, annotations_complete: complete };
    ctx.planned.record_service_account(sa.clone());

    if let Some(arn) = known(v.attr("aws_role_arn")) {
        check_role_trust(ctx, &sa, &arn, &mut diags).await;
    }
    if let Some(gsa) = known(v.attr("gcp_service_account")) {
        // A GSA may be bound to several KSAs, and the binding for this one
        // may be planned later: bindings for others only warn.
        let bindings = ctx.planned.workload_identities_for_gsa(&gsa);
        let admits_this = bindings.iter().any(|b| b.namespace.known() == Some(&namespace) && b.service_account.known() == Some(&name));
        if !admits_this && let Some(problem) = bindings.iter().find_map(|b| workload_identity_mismatch(b, &sa)) {
            diags.push(Diagnostic::warning(
                "No Workload Identity binding for this ServiceAccount so far",
                format!("{problem} If a binding for {namespace}/{name} is declared in this configuration, reference this ServiceAccount from it (kubernetes_service_account = secretbridge_service_account.NAME.name) so Terraform plans the pair in order."),
            ));
        }
    }
    check_stores_using(ctx, &sa, &mut diags);
    check_stores_wanting_another_namespace(ctx, &sa, &mut diags).await;
    // Bindings for this KSA that name another GSA.
    for binding in ctx.planned.snapshot().workload_identities {
        let for_this = binding.namespace.known() == Some(&namespace) && binding.service_account.known() == Some(&name);
        if for_this
            && binding.gsa.known().is_some()
            && let Some(problem) = workload_identity_mismatch(&binding, &sa)
        {
            diags.push(Diagnostic::attribute_error(AttrPath::root("gcp_service_account"), "Workload Identity binding does not match the ServiceAccount", problem));
        }
    }
    diags
}

/// Stores planned before this ServiceAccount that authenticate as it must
/// find the annotation their provider needs (the pair's second end checks).
fn check_stores_using(ctx: &ProviderContext, sa: &PlannedServiceAccount, diags: &mut Diagnostics) {
    if !sa.annotations_complete || sa.annotations.contains_key(AWS_ROLE_ARN_ANNOTATION) {
        return;
    }
    let set = ctx.planned.snapshot();
    let namespaced = set.secret_stores.values().filter(|st| {
        st.namespace.as_deref() == Some(sa.namespace.as_str())
            && st.service_account.as_ref().is_some_and(|r| r.namespace.as_ref().is_none_or(|ns| ns.known() == Some(&sa.namespace)))
    });
    let cluster = set.cluster_stores.values().filter(|st| st.service_account.as_ref().is_some_and(|r| r.namespace.as_ref().and_then(Known::known) == Some(&sa.namespace)));
    for store in namespaced.chain(cluster) {
        let Some(r) = &store.service_account else { continue };
        if store.provider != Some(StoreProviderKind::Aws) || r.name.known() != Some(&sa.name) {
            continue;
        }
        let label = match &store.namespace {
            Some(ns) => format!("SecretStore {ns}/{}", store.name),
            None => format!("ClusterSecretStore {}", store.name),
        };
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("aws_role_arn"),
            "ServiceAccount lacks the cloud annotation",
            format!(
                "{label} authenticates as ServiceAccount {}/{} through IRSA, but that ServiceAccount has no {AWS_ROLE_ARN_ANNOTATION} annotation, so the controller cannot pick a role. Set aws_role_arn on this ServiceAccount to the IRSA role's ARN.",
                sa.namespace, sa.name
            ),
        ));
    }
}

/// The namespace pitfall from the ServiceAccount's side: a store planned
/// before it authenticates as a ServiceAccount of the same name in another
/// namespace, where neither this plan (so far) nor the cluster has one.
/// With the store planned first, this is the pair's second end; with the
/// store second, [`plan_store`] reports the same pair. Either way the plan
/// fails, whatever the order.
async fn check_stores_wanting_another_namespace(ctx: &ProviderContext, sa: &PlannedServiceAccount, diags: &mut Diagnostics) {
    let set = ctx.planned.snapshot();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for store in set.secret_stores.values().chain(set.cluster_stores.values()) {
        let Some(r) = &store.service_account else { continue };
        if r.name.known() != Some(&sa.name) {
            continue;
        }
        let ns = match (&r.namespace, &store.namespace) {
            (Some(Known::Value(ns)), _) => ns.clone(),
            (None, Some(store_ns)) => store_ns.clone(),
            _ => continue,
        };
        if ns == sa.namespace || set.service_accounts.contains_key(&(ns.clone(), sa.name.clone())) {
            continue;
        }
        let label = match &store.namespace {
            Some(store_ns) => format!("SecretStore {store_ns}/{}", store.name),
            None => format!("ClusterSecretStore {}", store.name),
        };
        wanted.push((ns, label));
    }
    for (ns, label) in wanted {
        match cluster_service_account(ctx, &ns, &sa.name).await {
            Ok(ClusterServiceAccount::Missing) => diags.push(Diagnostic::attribute_error(
                AttrPath::root("namespace"),
                "ServiceAccount is in another namespace than its store",
                format!(
                    "{label} authenticates as ServiceAccount {ns}/{name}, but this configuration declares ServiceAccount '{name}' in namespace '{sa_ns}' and the cluster has none in '{ns}'. A SecretStore can only use a ServiceAccount in its own namespace (the controller refuses it at runtime, and the IAM trust must name the same namespace). Fix: declare this ServiceAccount in namespace '{ns}' (namespace = \"{ns}\", with the IRSA role or Workload Identity binding trusting {ns}/{name}), or move the store and its ExternalSecrets to namespace '{sa_ns}'. If this configuration does declare ServiceAccount {ns}/{name}, reference it from the store (service_account_ref = {{ name = secretbridge_service_account.NAME.name }}) so Terraform plans it first.",
                    name = sa.name,
                    sa_ns = sa.namespace,
                ),
            )),
            Ok(_) => {}
            Err(e) => diags.push(lookup_warning(&format!("ServiceAccount {ns}/{}", sa.name), &e)),
        }
    }
}

/// The role side of the IRSA trust check: every ServiceAccount planned so
/// far that carries this role's ARN must be the one its trust admits. With
/// the role referencing its ServiceAccount (the cycle-free layout), the
/// role is planned second and this is where the pair is checked.
pub fn check_role_against_planned_service_accounts(ctx: &ProviderContext, role: &PlannedIrsaRole) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let (Some(arn), Some(trusted_ns), Some(trusted_name)) = (role.arn.known(), role.namespace.known(), role.service_account.known()) else { return diags };
    for sa in ctx.planned.service_accounts_annotated(AWS_ROLE_ARN_ANNOTATION, arn, false) {
        if &sa.namespace == trusted_ns && &sa.name == trusted_name {
            continue;
        }
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("namespace"),
            "IRSA role trusts another ServiceAccount",
            format!(
                "ServiceAccount {}/{} carries the ARN of IRSA role '{}', but the role's trust admits only ServiceAccount {trusted_ns}/{trusted_name}, so STS will refuse the token at runtime. Set the role's namespace = \"{}\" and service_account = \"{}\" (better: namespace = secretbridge_service_account.NAME.namespace, service_account = secretbridge_service_account.NAME.name), or put the role's ARN on ServiceAccount {trusted_ns}/{trusted_name} instead.",
                sa.namespace, sa.name, role.name, sa.namespace, sa.name
            ),
        ));
    }
    diags
}

/// The role named by a ServiceAccount's `aws_role_arn` must trust exactly
/// that ServiceAccount.
async fn check_role_trust(ctx: &ProviderContext, sa: &PlannedServiceAccount, arn: &str, diags: &mut Diagnostics) {
    let path = AttrPath::root("aws_role_arn");
    if let Some(role) = ctx.planned.irsa_role_for_arn(arn) {
        if let (Some(ns), Some(name)) = (role.namespace.known(), role.service_account.known())
            && (ns != &sa.namespace || name != &sa.name)
        {
            diags.push(Diagnostic::attribute_error(
                path,
                "IRSA role trusts another ServiceAccount",
                format!(
                    "ServiceAccount {}/{} carries the ARN of IRSA role '{}', but the role's trust admits only ServiceAccount {ns}/{name}, so STS will refuse the token at runtime. Set the role's namespace = \"{}\" and service_account = \"{}\", or put aws_role_arn on ServiceAccount {ns}/{name} instead.",
                    sa.namespace, sa.name, role.name, sa.namespace, sa.name
                ),
            ));
        }
        return;
    }
    check_role_trust_in_iam(ctx, sa, arn, &path, diags).await;
}

/// A role outside this plan: its trust is read from IAM, when the provider
/// has an `aws {}` block (without one, the role lives in an account this
/// configuration does not manage, and nothing is contacted).
async fn check_role_trust_in_iam(ctx: &ProviderContext, sa: &PlannedServiceAccount, arn: &str, path: &AttrPath, diags: &mut Diagnostics) {
    if ctx.config.get("aws").is_none_or(|a| a.is_null()) {
        return;
    }
    match crate::aws::irsa_trust_subjects(ctx, arn).await {
        Ok(Some(subjects)) => {
            if !subjects.iter().any(|(ns, name)| ns == &sa.namespace && name == &sa.name) {
                let admitted = if subjects.is_empty() {
                    "no Kubernetes ServiceAccount".to_owned()
                } else {
                    subjects.iter().map(|(ns, name)| format!("{ns}/{name}")).collect::<Vec<_>>().join(", ")
                };
                diags.push(Diagnostic::attribute_error(
                    path.clone(),
                    "IRSA role trusts another ServiceAccount",
                    format!(
                        "ServiceAccount {}/{} carries the ARN {arn}, but that role's trust policy in IAM admits only {admitted}, so STS will refuse the token at runtime. Change the role's trust (secretbridge_aws_irsa_role namespace = \"{}\", service_account = \"{}\") or annotate a ServiceAccount the role trusts.",
                        sa.namespace, sa.name, sa.namespace, sa.name
                    ),
                ));
            }
        }
        // The role may be declared in this configuration and planned after
        // this ServiceAccount (it references it): its plan checks the pair.
        Ok(None) if ctx.planned.snapshot().irsa_roles.is_empty() => diags.push(Diagnostic::warning(
            "IRSA role not found",
            format!(
                "ServiceAccount {}/{} carries the ARN {arn}, but no such role exists in IAM or in this plan; create it (secretbridge_aws_irsa_role) or fix aws_role_arn. If the role is declared in this configuration, its own plan checks its trust against this ServiceAccount.",
                sa.namespace, sa.name
            ),
        )),
        Ok(None) => {}
        Err(e) => diags.push(Diagnostic::warning(
            "Could not read the IRSA role's trust",
            format!("{}: {}. The trust check of ServiceAccount {}/{} ran on this plan only.", e.summary, e.detail, sa.namespace, sa.name),
        )),
    }
}

/// What is wrong between a Workload Identity binding and a KSA, if anything.
fn workload_identity_mismatch(binding: &PlannedWorkloadIdentity, sa: &PlannedServiceAccount) -> Option<String> {
    let (Some(gsa), Some(ns), Some(ksa)) = (binding.gsa.known(), binding.namespace.known(), binding.service_account.known()) else { return None };
    let annotated = sa.annotations.get(GCP_SERVICE_ACCOUNT_ANNOTATION);
    if ns == &sa.namespace && ksa == &sa.name {
        return match annotated {
            Some(Known::Value(a)) if a != gsa => Some(format!(
                "the Workload Identity binding lets KSA {ns}/{ksa} act as GSA {gsa}, but the KSA's {GCP_SERVICE_ACCOUNT_ANNOTATION} annotation names {a}. Set gcp_service_account = \"{gsa}\" on the ServiceAccount, or bind {a} instead."
            )),
            None if sa.annotations_complete => Some(format!(
                "the Workload Identity binding lets KSA {ns}/{ksa} act as GSA {gsa}, but the KSA has no {GCP_SERVICE_ACCOUNT_ANNOTATION} annotation, so pods keep the federated identity. Set gcp_service_account = \"{gsa}\" on the ServiceAccount."
            )),
            _ => None,
        };
    }
    match annotated {
        Some(Known::Value(a)) if a == gsa => Some(format!(
            "ServiceAccount {}/{} names GSA {gsa}, but the Workload Identity binding for that GSA admits KSA {ns}/{ksa}, so token exchange will be refused at runtime. Set the binding's namespace = \"{}\" and kubernetes_service_account = \"{}\", or annotate ServiceAccount {ns}/{ksa} instead.",
            sa.namespace, sa.name, sa.namespace, sa.name
        )),
        _ => None,
    }
}

/// Records a planned Workload Identity binding and checks the KSA it admits
/// (planned in this run, else in the cluster).
pub async fn plan_workload_identity(ctx: &ProviderContext, v: &Value) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let gsa = kstr(v.attr("service_account")).map(|g| match g {
        // `projects/P/serviceAccounts/EMAIL` names the same GSA as EMAIL.
        Known::Value(s) => Known::Value(s.rsplit('/').next().unwrap_or(&s).to_owned()),
        Known::Unknown => Known::Unknown,
    });
    let binding = PlannedWorkloadIdentity {
        gsa: gsa.unwrap_or(Known::Unknown),
        namespace: kstr(v.attr("namespace")).unwrap_or(Known::Unknown),
        service_account: kstr(v.attr("kubernetes_service_account")).unwrap_or(Known::Unknown),
    };
    ctx.planned.record_workload_identity(binding.clone());
    let (Some(_), Some(ns), Some(ksa)) = (binding.gsa.known(), binding.namespace.known(), binding.service_account.known()) else { return diags };
    // A KSA planned later checks this binding itself, so a missing one is
    // not reported here. Without a `kubernetes {}` block the binding may
    // well be for a cluster Terraform does not manage: only a KSA planned
    // here is checked then.
    let sa = match ctx.planned.service_account(ns, ksa) {
        Some(sa) => sa,
        None => match cluster_service_account(ctx, ns, ksa).await {
            Ok(ClusterServiceAccount::Fixed(sa)) => sa,
            Ok(_) => return diags,
            Err(e) => {
                diags.push(lookup_warning(&format!("ServiceAccount {ns}/{ksa}"), &e));
                return diags;
            }
        },
    };
    if let Some(problem) = workload_identity_mismatch(&binding, &sa) {
        diags.push(Diagnostic::attribute_error(
            AttrPath::root("kubernetes_service_account"),
            "Workload Identity binding does not match the ServiceAccount",
            problem,
        ));
    }
    diags
}

/// Whether the provider has a `kubernetes {}` block; without one the checks
/// use this plan only.
fn manages_cluster(ctx: &ProviderContext) -> bool {
    ctx.config.get("kubernetes").is_some_and(|k| !k.is_null())
}

/// A ServiceAccount read from the cluster.
enum ClusterServiceAccount {
    /// Not there.
    Missing,
    /// Written by `secretbridge-terraform`: this plan may still change it,
    /// and its own plan checks it against what it serves.
    ManagedByTerraform,
    /// Managed elsewhere, so this plan cannot change it: as a planned one.
    Fixed(PlannedServiceAccount),
}

/// The cluster's ServiceAccount `namespace/name`.
async fn cluster_service_account(ctx: &ProviderContext, namespace: &str, name: &str) -> Result<ClusterServiceAccount, Diagnostics> {
    if !manages_cluster(ctx) {
        return Ok(ClusterServiceAccount::Missing);
    }
    let api: Api<ServiceAccount> = Api::namespaced(k::client(ctx).await?, namespace);
    let Some(sa) = k::get(&api, name, &format!("ServiceAccount {namespace}/{name}")).await? else { return Ok(ClusterServiceAccount::Missing) };
    let managers = sa.metadata.managed_fields.iter().flatten();
    if managers.filter_map(|m| m.manager.as_deref()).any(|m| m == TERRAFORM_FIELD_MANAGER) {
        return Ok(ClusterServiceAccount::ManagedByTerraform);
    }
    Ok(ClusterServiceAccount::Fixed(PlannedServiceAccount {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        annotations: sa.metadata.annotations.unwrap_or_default().into_iter().map(|(k, v)| (k, Known::Value(v))).collect(),
        annotations_complete: true,
    }))
}

/// Namespaces (other than `except`) holding a ServiceAccount called `name`,
/// in this plan or in the cluster.
async fn service_account_namespaces(ctx: &ProviderContext, name: &str, except: &str) -> Result<Vec<String>, Diagnostics> {
    let mut found: Vec<String> = ctx.planned.snapshot().service_accounts.keys().filter(|(ns, n)| n == name && ns != except).map(|(ns, _)| ns.clone()).collect();
    if !manages_cluster(ctx) {
        found.sort();
        found.dedup();
        return Ok(found);
    }
    let api: Api<ServiceAccount> = Api::all(k::client(ctx).await?);
    let list = api.list(&ListParams::default()).await.map_err(|e| k::api_error("list", "ServiceAccounts", &e))?;
    for sa in list.items {
        if sa.metadata.name.as_deref() == Some(name)
            && let Some(ns) = sa.metadata.namespace
            && ns != except
        {
            found.push(ns);
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn quoted_list(items: &[String]) -> String {
    items.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", ")
}

/// Records a planned SecretStore (`namespaced`) or ClusterSecretStore and
/// checks the ServiceAccount it authenticates as.
pub async fn plan_store(ctx: &ProviderContext, v: &Value, namespaced: bool) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let Some(name) = known(v.attr("name")) else { return diags };
    let namespace = if namespaced {
        match known(v.attr("namespace")) {
            Some(ns) => Some(ns),
            None => return diags,
        }
    } else {
        None
    };
    let kind_word = if namespaced { "SecretStore" } else { "ClusterSecretStore" };
    let store_label = match &namespace {
        Some(ns) => format!("SecretStore {ns}/{name}"),
        None => format!("ClusterSecretStore {name}"),
    };
    let provider = v.attr("spec").attr("provider");
    let (kind, ref_path, sa_ref) = if !provider.attr("aws").is_null() {
        let path = AttrPath::root("spec").attr("provider").attr("aws").attr("auth").attr("jwt").attr("service_account_ref");
        (Some(StoreProviderKind::Aws), path, provider.attr("aws").attr("auth").attr("jwt").attr("service_account_ref"))
    } else if !provider.attr("gcpsm").is_null() {
        let path = AttrPath::root("spec").attr("provider").attr("gcpsm").attr("auth").attr("workload_identity").attr("service_account_ref");
        (Some(StoreProviderKind::GcpSm), path, provider.attr("gcpsm").attr("auth").attr("workload_identity").attr("service_account_ref"))
    } else {
        (None, AttrPath::root("spec"), &Value::Null)
    };
    let service_account = match sa_ref {
        Value::Null => None,
        Value::Unknown => Some(PlannedServiceAccountRef { name: Known::Unknown, namespace: Some(Known::Unknown) }),
        r => Some(PlannedServiceAccountRef { name: kstr(r.attr("name")).unwrap_or(Known::Unknown), namespace: kstr(r.attr("namespace")) }),
    };
    ctx.planned.record_store(PlannedStore { namespace: namespace.clone(), name: name.clone(), provider: kind, service_account: service_account.clone() });
    let prefix = match provider.attr("aws") {
        Value::Null => match provider {
            Value::Unknown => Known::Unknown,
            _ => Known::Value(None),
        },
        aws => match aws.attr("prefix") {
            Value::String(p) => Known::Value(Some(p.clone())),
            Value::Null => Known::Value(None),
            _ => Known::Unknown,
        },
    };
    ctx.planned.record_store_prefix(namespace.as_deref(), &name, prefix);

    let Some(sa_ref) = service_account else { return diags };
    let Known::Value(sa_name) = sa_ref.name else { return diags };
    let sa_namespace = match (&sa_ref.namespace, &namespace) {
        (Some(Known::Unknown), _) => return diags,
        (Some(Known::Value(ref_ns)), Some(store_ns)) if ref_ns != store_ns => {
            diags.push(Diagnostic::attribute_error(
                ref_path.attr("namespace"),
                "ServiceAccount in another namespace",
                format!(
                    "{store_label} authenticates as ServiceAccount {ref_ns}/{sa_name}, but a SecretStore may only use a ServiceAccount in its own namespace '{store_ns}' (the controller refuses it at runtime). Declare the ServiceAccount in namespace '{store_ns}' (with the IAM trust for {store_ns}/{sa_name}) and drop service_account_ref.namespace, or use a secretbridge_cluster_secret_store."
                ),
            ));
            return diags;
        }
        (Some(Known::Value(ref_ns)), _) => ref_ns.clone(),
        (None, Some(store_ns)) => store_ns.clone(),
        // A ClusterSecretStore without a namespace uses the ExternalSecret's.
        (None, None) => return diags,
    };
    let required = match kind {
        Some(StoreProviderKind::Aws) => Some(AWS_ROLE_ARN_ANNOTATION),
        // Workload Identity works without a GSA (the federated identity is
        // granted directly), so no annotation is required.
        Some(StoreProviderKind::GcpSm) | None => None,
    };
    let sa = match ctx.planned.service_account(&sa_namespace, &sa_name) {
        Some(sa) => sa,
        None => match cluster_service_account(ctx, &sa_namespace, &sa_name).await {
            Ok(ClusterServiceAccount::Fixed(sa)) => sa,
            // Its own plan, if it is in this configuration, checks this store.
            Ok(ClusterServiceAccount::ManagedByTerraform) => return diags,
            Ok(ClusterServiceAccount::Missing) => {
                // A namesake already planned in another namespace: with the
                // store referencing its ServiceAccount (Terraform then plans
                // the ServiceAccount first) this is the article's mistake for
                // sure; with a literal name the namesake's own plan reports
                // the same pair if it comes second, so the plan fails in any
                // order. A namesake only in the cluster may still be joined
                // by the right one later in this plan: a warning.
                let planned_elsewhere: Vec<String> = ctx
                    .planned
                    .snapshot()
                    .service_accounts
                    .keys()
                    .filter(|(ns, n)| n == &sa_name && ns != &sa_namespace)
                    .map(|(ns, _)| ns.clone())
                    .collect();
                if !planned_elsewhere.is_empty() {
                    diags.push(Diagnostic::attribute_error(
                        ref_path.attr("name"),
                        "ServiceAccount is in another namespace than its store",
                        format!(
                            "{store_label} authenticates as ServiceAccount {sa_namespace}/{sa_name}, but this configuration declares ServiceAccount '{sa_name}' only in namespace {} and the cluster has none in '{sa_namespace}'. A {kind_word} can only use a ServiceAccount in its own namespace (the controller refuses it at runtime, and the IAM trust must name the same namespace). Fix: declare the ServiceAccount in namespace '{sa_namespace}' (with the IRSA role or Workload Identity binding trusting {sa_namespace}/{sa_name}), or move the {kind_word} and its ExternalSecrets to namespace {}. {ORDER_HINT}",
                            quoted_list(&planned_elsewhere),
                            quoted_list(&planned_elsewhere),
                        ),
                    ));
                    return diags;
                }
                match service_account_namespaces(ctx, &sa_name, &sa_namespace).await {
                    Ok(elsewhere) if !elsewhere.is_empty() => diags.push(Diagnostic::warning(
                        "ServiceAccount found only in another namespace",
                        format!(
                            "{store_label} uses ServiceAccount '{sa_name}', which so far exists only in namespace {} (it must be in '{sa_namespace}'). Unless this configuration also declares ServiceAccount {sa_namespace}/{sa_name}, declare it (and its IAM trust) in namespace '{sa_namespace}', or move the {kind_word} to the ServiceAccount's namespace. {ORDER_HINT}",
                            quoted_list(&elsewhere)
                        ),
                    )),
                    Ok(_) => diags.push(Diagnostic::warning(
                        "ServiceAccount not found",
                        format!(
                            "{store_label} uses ServiceAccount {sa_namespace}/{sa_name}, which is neither in the cluster nor in this plan so far. Declare it (secretbridge_service_account in namespace '{sa_namespace}'). {ORDER_HINT}"
                        ),
                    )),
                    Err(e) => diags.push(lookup_warning(&format!("ServiceAccounts named {sa_name}"), &e)),
                }
                return diags;
            }
            Err(e) => {
                diags.push(lookup_warning(&format!("ServiceAccount {sa_namespace}/{sa_name}"), &e));
                return diags;
            }
        },
    };
    if let Some(annotation) = required
        && sa.annotations_complete
        && !sa.annotations.contains_key(annotation)
    {
        diags.push(Diagnostic::attribute_error(
            ref_path.attr("name"),
            "ServiceAccount lacks the cloud annotation",
            format!(
                "{store_label} authenticates as ServiceAccount {sa_namespace}/{sa_name} through IRSA, but that ServiceAccount has no {annotation} annotation, so the controller cannot pick a role. Set aws_role_arn on the secretbridge_service_account {sa_namespace}/{sa_name} to the IRSA role's ARN."
            ),
        ));
    }
    diags
}

/// Checks that the store an ExternalSecret names exists where it can be used.
pub async fn plan_external_secret(ctx: &ProviderContext, v: &Value) -> Diagnostics {
    let mut diags = Diagnostics::default();
    let (Some(namespace), Some(name)) = (known(v.attr("namespace")), known(v.attr("name"))) else { return diags };
    let store_ref = v.attr("spec").attr("secret_store_ref");
    let Some(store) = known(store_ref.attr("name")) else { return diags };
    let path = AttrPath::root("spec").attr("secret_store_ref").attr("name");
    let es_label = format!("ExternalSecret {namespace}/{name}");
    match store_ref.attr("kind") {
        Value::Unknown => diags,
        Value::String(kind) if kind == "ClusterSecretStore" => {
            if ctx.planned.cluster_store(&store).is_some() {
                return diags;
            }
            let found = async {
                let api: Api<ClusterSecretStore> = Api::all(k::client(ctx).await?);
                k::get(&api, &store, &format!("ClusterSecretStore {store}")).await
            }
            .await;
            match found {
                Ok(Some(_)) => {}
                Ok(None) => diags.push(Diagnostic::attribute_error(
                    path,
                    "ClusterSecretStore not found",
                    format!(
                        "{es_label} uses ClusterSecretStore '{store}', which is neither in the cluster nor in this plan. Declare a secretbridge_cluster_secret_store named '{store}', or set secret_store_ref.kind = \"SecretStore\" for a store in namespace '{namespace}'. {ORDER_HINT}"
                    ),
                )),
                Err(e) => diags.push(lookup_warning(&format!("ClusterSecretStore {store}"), &e)),
            }
            diags
        }
        _ => {
            let planned = ctx.planned.secret_stores_named(&store);
            if planned.iter().any(|s| s.namespace.as_deref() == Some(namespace.as_str())) {
                return diags;
            }
            let mut elsewhere: Vec<String> = planned.into_iter().filter_map(|s| s.namespace).collect();
            let found = async {
                let client = k::client(ctx).await?;
                let api: Api<SecretStore> = Api::namespaced(client.clone(), &namespace);
                if k::get(&api, &store, &format!("SecretStore {namespace}/{store}")).await?.is_some() {
                    return Ok::<_, Diagnostics>(true);
                }
                let all: Api<SecretStore> = Api::all(client);
                match all.list(&ListParams::default()).await {
                    Ok(list) => {
                        elsewhere.extend(list.items.into_iter().filter(|s| s.metadata.name.as_deref() == Some(store.as_str())).filter_map(|s| s.metadata.namespace));
                        Ok(false)
                    }
                    // No SecretStore API at all: nothing exists anywhere.
                    Err(::kube::Error::Api(s)) if s.code == 404 => Ok(false),
                    Err(e) => Err(k::api_error("list", "SecretStores", &e)),
                }
            }
            .await;
            match found {
                Ok(true) => {}
                Ok(false) => {
                    elsewhere.sort();
                    elsewhere.dedup();
                    elsewhere.retain(|ns| ns != &namespace);
                    if elsewhere.is_empty() {
                        diags.push(Diagnostic::attribute_error(
                            path,
                            "SecretStore not found",
                            format!(
                                "{es_label} uses SecretStore '{store}', which is neither in namespace '{namespace}' of the cluster nor in this plan. Declare a secretbridge_secret_store named '{store}' in namespace '{namespace}'. {ORDER_HINT}"
                            ),
                        ));
                    } else {
                        let only = if elsewhere.len() == 1 { "namespace" } else { "namespaces" };
                        diags.push(Diagnostic::attribute_error(
                            path,
                            "SecretStore is in another namespace",
                            format!(
                                "{es_label} uses SecretStore '{store}' but it exists only in {only} {}. An ExternalSecret can only use a SecretStore in its own namespace: move the ExternalSecret to {}, or declare SecretStore '{store}' (with its ServiceAccount and IAM trust) in namespace '{namespace}', or use a ClusterSecretStore. If this configuration does declare SecretStore {namespace}/{store}, set name = secretbridge_secret_store.NAME.name so Terraform plans it before the ExternalSecret and this check sees it.",
                                quoted_list(&elsewhere),
                                quoted_list(&elsewhere),
                            ),
                        ));
                    }
                }
                Err(e) => diags.push(lookup_warning(&format!("SecretStore {namespace}/{store}"), &e)),
            }
            diags
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planned::PlannedIrsaRole;
    use std::collections::BTreeMap;

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<BTreeMap<_, _>>())
    }

    /// A configured provider without a `kubernetes {}` block: the checks use the plan only.
    fn ctx() -> ProviderContext {
        ProviderContext { configured: true, ..ProviderContext::default() }
    }

    fn sa(ns: &str, name: &str, arn: Value, gsa: Value) -> Value {
        obj(&[("namespace", s(ns)), ("name", s(name)), ("annotations", Value::Null), ("aws_role_arn", arn), ("gcp_service_account", gsa)])
    }

    fn binding(gsa: &str, ns: &str, ksa: &str) -> Value {
        obj(&[("service_account", s(gsa)), ("namespace", s(ns)), ("kubernetes_service_account", s(ksa))])
    }

    fn errors(d: &Diagnostics) -> Vec<String> {
        d.0.iter().filter(|d| d.severity == crate::plugin::diag::Severity::Error).map(|d| d.detail.clone()).collect()
    }

    fn warnings(d: &Diagnostics) -> Vec<String> {
        d.0.iter().filter(|d| d.severity == crate::plugin::diag::Severity::Warning).map(|d| d.detail.clone()).collect()
    }

    #[tokio::test]
    async fn irsa_role_trusting_another_service_account_is_an_error() {
        let ctx = ctx();
        ctx.planned.record_irsa_role(PlannedIrsaRole {
            name: "eso".into(),
            arn: Known::Unknown,
            namespace: Known::Value("default".into()),
            service_account: Known::Value("eso".into()),
        });
        let d = plan_service_account(&ctx, &sa("app", "eso", s("arn:aws:iam::123456789012:role/eso"), Value::Null)).await;
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{d:?}");
        assert!(errs[0].contains("ServiceAccount app/eso carries the ARN of IRSA role 'eso'"), "{}", errs[0]);
        assert!(errs[0].contains("admits only ServiceAccount default/eso"), "{}", errs[0]);
        // The matching ServiceAccount passes, and an unknown ARN proves nothing.
        assert!(errors(&plan_service_account(&ctx, &sa("default", "eso", s("arn:aws:iam::123456789012:role/eso"), Value::Null)).await).is_empty());
        assert!(errors(&plan_service_account(&ctx, &sa("app", "eso", Value::Unknown, Value::Null)).await).is_empty());
        // Recorded for the store checks, with the unknown annotation as such.
        let recorded = ctx.planned.service_account("app", "eso").expect("recorded");
        assert_eq!(recorded.annotations.get(AWS_ROLE_ARN_ANNOTATION), Some(&Known::Unknown));
    }

    #[tokio::test]
    async fn workload_identity_mismatch_is_caught_whichever_end_is_planned_second() {
        let gsa = "reader@proj.iam.gserviceaccount.com";
        // Binding first, then a KSA in another namespace naming the GSA.
        let first = ctx();
        assert!(errors(&plan_workload_identity(&first, &binding(gsa, "default", "reader")).await).is_empty(), "far end missing: no error");
        // A GSA may serve several KSAs and this KSA's binding may come later: a warning.
        let d = plan_service_account(&first, &sa("app", "reader", Value::Null, s(gsa))).await;
        assert!(errors(&d).is_empty(), "{d:?}");
        let warned = warnings(&d);
        assert_eq!(warned.len(), 1, "{d:?}");
        assert!(warned[0].contains("ServiceAccount app/reader names GSA") && warned[0].contains("admits KSA default/reader"), "{}", warned[0]);
        // Once a binding admits it, nothing is said.
        plan_workload_identity(&first, &binding(gsa, "app", "reader")).await;
        assert!(plan_service_account(&first, &sa("app", "reader", Value::Null, s(gsa))).await.0.is_empty());

        // KSA first (annotated with another GSA), then the binding for it.
        let second = ctx();
        assert!(errors(&plan_service_account(&second, &sa("app", "reader", Value::Null, s("other@proj.iam.gserviceaccount.com"))).await).is_empty());
        let d = plan_workload_identity(&second, &binding(&format!("projects/proj/serviceAccounts/{gsa}"), "app", "reader")).await;
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{d:?}");
        assert!(errs[0].contains("act as GSA reader@proj") && errs[0].contains("annotation names other@proj"), "{}", errs[0]);

        // Matching ends pass.
        let third = ctx();
        assert!(errors(&plan_service_account(&third, &sa("app", "reader", Value::Null, s(gsa))).await).is_empty());
        assert!(errors(&plan_workload_identity(&third, &binding(gsa, "app", "reader")).await).is_empty());
    }

    fn store(ns: &str, sa_ref: Value) -> Value {
        obj(&[
            ("namespace", s(ns)),
            ("name", s("aws")),
            (
                "spec",
                obj(&[(
                    "provider",
                    obj(&[
                        ("aws", obj(&[("service", s("ParameterStore")), ("region", s("eu-west-1")), ("auth", obj(&[("jwt", obj(&[("service_account_ref", sa_ref)]))]))])),
                        ("gcpsm", Value::Null),
                    ]),
                )]),
            ),
        ])
    }

    #[tokio::test]
    async fn store_checks_use_the_planned_service_account() {
        let ctx = ctx();
        // The ServiceAccount in the plan carries the role ARN: fine, and recorded.
        plan_service_account(&ctx, &sa("app", "eso", s("arn:aws:iam::1:role/eso"), Value::Null)).await;
        let ok = plan_store(&ctx, &store("app", obj(&[("name", s("eso")), ("namespace", Value::Null)])), true).await;
        assert!(errors(&ok).is_empty(), "{ok:?}");
        assert_eq!(ctx.planned.secret_stores_named("aws").len(), 1);
        // Another namespace in the reference.
        let d = plan_store(&ctx, &store("app", obj(&[("name", s("eso")), ("namespace", s("default"))])), true).await;
        assert!(errors(&d)[0].contains("SecretStore app/aws authenticates as ServiceAccount default/eso"), "{d:?}");
        // The planned ServiceAccount without the annotation.
        plan_service_account(&ctx, &sa("app", "plain", Value::Null, Value::Null)).await;
        let d = plan_store(&ctx, &store("app", obj(&[("name", s("plain")), ("namespace", Value::Null)])), true).await;
        assert!(errors(&d)[0].contains("has no eks.amazonaws.com/role-arn annotation"), "{d:?}");
        // An unknown reference is not judged.
        let d = plan_store(&ctx, &store("app", obj(&[("name", Value::Unknown), ("namespace", Value::Null)])), true).await;
        assert!(errors(&d).is_empty(), "{d:?}");
    }

    #[tokio::test]
    async fn store_and_service_account_are_checked_whichever_is_planned_second() {
        // The store first (as in a module whose IRSA role reads the
        // ExternalSecret's keys, so the store cannot reference its
        // ServiceAccount), then a ServiceAccount without the role annotation.
        let ctx = ctx();
        ctx.planned.record_store(PlannedStore {
            namespace: Some("app".into()),
            name: "aws".into(),
            provider: Some(StoreProviderKind::Aws),
            service_account: Some(PlannedServiceAccountRef { name: Known::Value("eso".into()), namespace: None }),
        });
        let d = plan_service_account(&ctx, &sa("app", "eso", Value::Null, Value::Null)).await;
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{d:?}");
        assert!(errs[0].contains("SecretStore app/aws authenticates as ServiceAccount app/eso through IRSA"), "{}", errs[0]);
        // With the annotation (even unknown until apply) it passes; so does a namesake elsewhere.
        assert!(errors(&plan_service_account(&ctx, &sa("app", "eso", Value::Unknown, Value::Null)).await).is_empty());
        assert!(errors(&plan_service_account(&ctx, &sa("other", "eso", Value::Null, Value::Null)).await).is_empty());
    }

    #[tokio::test]
    async fn a_service_account_planned_only_in_another_namespace_fails_whichever_is_planned_second() {
        // ServiceAccount first (the store references it): the store's plan fails.
        let ctx = ctx();
        plan_service_account(&ctx, &sa("b", "test-eso-sa", s("arn:aws:iam::1:role/eso"), Value::Null)).await;
        let d = plan_store(&ctx, &store("a", obj(&[("name", s("test-eso-sa")), ("namespace", Value::Null)])), true).await;
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{d:?}");
        assert!(errs[0].contains("SecretStore a/aws authenticates as ServiceAccount a/test-eso-sa") && errs[0].contains("only in namespace 'b'"), "{}", errs[0]);
        // The store first (a literal name): the ServiceAccount's plan fails.
        let ctx2 = super::tests::ctx();
        let d = plan_store(&ctx2, &store("a", obj(&[("name", s("test-eso-sa")), ("namespace", Value::Null)])), true).await;
        assert!(errors(&d).is_empty(), "{d:?}");
        assert!(warnings(&d).iter().any(|w| w.contains("neither in the cluster nor in this plan so far")), "{d:?}");
        let d = plan_service_account(&ctx2, &sa("b", "test-eso-sa", s("arn:aws:iam::1:role/eso"), Value::Null)).await;
        let errs = errors(&d);
        assert_eq!(errs.len(), 1, "{d:?}");
        assert!(errs[0].contains("SecretStore a/aws authenticates as ServiceAccount a/test-eso-sa") && errs[0].contains("in namespace 'b'"), "{}", errs[0]);
        // The right one in the plan: no error from either side.
        let ctx3 = super::tests::ctx();
        plan_service_account(&ctx3, &sa("a", "test-eso-sa", s("arn:aws:iam::1:role/eso"), Value::Null)).await;
        assert!(errors(&plan_store(&ctx3, &store("a", obj(&[("name", s("test-eso-sa")), ("namespace", Value::Null)])), true).await).is_empty());
        assert!(errors(&plan_service_account(&ctx3, &sa("b", "test-eso-sa", Value::Null, Value::Null)).await).is_empty());
    }

    #[tokio::test]
    async fn a_role_planned_after_its_service_accounts_checks_their_trust() {
        let ctx = ctx();
        plan_service_account(&ctx, &sa("b", "eso", s("arn:aws:iam::1:role/eso"), Value::Null)).await;
        let role = |ns: &str| PlannedIrsaRole {
            name: "eso".into(),
            arn: Known::Value("arn:aws:iam::1:role/eso".into()),
            namespace: Known::Value(ns.into()),
            service_account: Known::Value("eso".into()),
        };
        let errs = errors(&check_role_against_planned_service_accounts(&ctx, &role("a")));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("ServiceAccount b/eso carries the ARN of IRSA role 'eso'") && errs[0].contains("admits only ServiceAccount a/eso"), "{}", errs[0]);
        assert!(check_role_against_planned_service_accounts(&ctx, &role("b")).0.is_empty());
    }

    #[tokio::test]
    async fn external_secret_finds_its_store_in_the_plan() {
        let ctx = ctx();
        ctx.planned.record_store(PlannedStore { namespace: Some("app".into()), name: "aws".into(), provider: Some(StoreProviderKind::Aws), service_account: None });
        ctx.planned.record_store(PlannedStore { namespace: None, name: "global".into(), provider: Some(StoreProviderKind::Aws), service_account: None });
        let es = |ns: &str, store: &str, kind: &str| {
            obj(&[("namespace", s(ns)), ("name", s("db")), ("spec", obj(&[("secret_store_ref", obj(&[("name", s(store)), ("kind", s(kind))]))]))])
        };
        // Found in the plan: the check answers from it, without asking the cluster, so there is no
        // diagnostic at all (not even the warning an unreachable cluster gives).
        let d = plan_external_secret(&ctx, &es("app", "aws", "SecretStore")).await;
        assert!(d.0.is_empty(), "the planned SecretStore app/aws is found: {d:?}");
        let d = plan_external_secret(&ctx, &es("other", "global", "ClusterSecretStore")).await;
        assert!(d.0.is_empty(), "the planned ClusterSecretStore global is found from any namespace: {d:?}");
        // Not a match in the plan: the same names with the wrong namespace or kind go on to the
        // cluster, which this provider has no kubernetes {} block for: each says so.
        let misses = [
            ("SecretStore aws planned in namespace app only", es("other", "aws", "SecretStore")),
            ("a ClusterSecretStore name under kind SecretStore", es("app", "global", "SecretStore")),
            ("a SecretStore name under kind ClusterSecretStore", es("app", "aws", "ClusterSecretStore")),
            ("no store of that name", es("app", "missing", "SecretStore")),
        ];
        for (what, external_secret) in misses {
            let d = plan_external_secret(&ctx, &external_secret).await;
            assert!(!d.0.is_empty(), "{what}: not found in the plan, so the check must look further and report: {d:?}");
        }
    }
}
