//! ESO's `provider.aws.role` (an `sts:AssumeRole` chained after the IRSA
//! exchange) and the ServiceAccount's `eks.amazonaws.com/audience`, end to
//! end through the AWS guard, which checks both sides of a chain (the IRSA
//! role's grant, the target's trust) and the token's `aud` as AWS does. One
//! stack and one controller; one namespace per case, the cases concurrent.

use crate::support::*;
use futures::future::FutureExt;
use secretbridge_shared::ConditionStatus;
use secretbridge_shared::names::{AWS_AUDIENCE_ANNOTATION, AWS_ROLE_ARN_ANNOTATION};
use secretbridge_stack::{AWS_AUDIENCE, ControllerProcess, Stack, metric_value, ready_condition};
use serde_json::{Value, json};

/// The audience of the annotated ServiceAccount's tokens (not STS's default).
const CUSTOM_AUDIENCE: &str = "secretbridge.example/irsa";
const KSA: &str = "app";

type CaseResult = Result<(), String>;

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The SecretStore `ssm` in `ns` authenticating as ServiceAccount `app`,
/// chaining into `role` when given.
async fn ssm_store(stack: &Stack, ns: &str, role: Option<&str>) -> CaseResult {
    let mut aws = json!({"service": "ParameterStore", "region": stack.aws_region(),
        "auth": {"jwt": {"serviceAccountRef": {"name": KSA}}}});
    if let Some(role) = role {
        aws["role"] = Value::String(role.to_string());
    }
    let store = json!({"apiVersion": "secretbridge.io/v1", "kind": "SecretStore", "metadata": {"name": "ssm", "namespace": ns},
        "spec": {"provider": {"aws": aws}}});
    stack.apply_value(&store, None).await.map(|_| ()).map_err(fail("applying the SecretStore"))
}

/// The ExternalSecret `db` -> Secret `db` with `v` from the parameter `key`.
async fn external_secret(stack: &Stack, ns: &str, key: &str) -> CaseResult {
    let es = json!({"apiVersion": "secretbridge.io/v1", "kind": "ExternalSecret", "metadata": {"name": "db", "namespace": ns},
        "spec": {"refreshInterval": "1h", "secretStoreRef": {"name": "ssm", "kind": "SecretStore"},
            "target": {"name": "db"}, "data": [{"secretKey": "v", "remoteRef": {"key": key}}]}});
    stack.apply_value(&es, None).await.map(|_| ()).map_err(fail("applying the ExternalSecret"))
}

/// The IRSA role may only chain into the target, which alone may read `/NS/db`.
async fn case_chain(stack: &Stack) -> CaseResult {
    let ns = stack.create_namespace("chain-ok").await.map_err(fail("namespace"))?;
    let key = format!("/{ns}/db");
    let irsa_name = format!("{ns}-irsa");
    let irsa = stack.create_irsa_role(&irsa_name, &ns, KSA, &[], &[]).await.map_err(fail("IRSA role"))?;
    let target = stack.create_chained_role(&format!("{ns}-target"), &irsa, &[&key], &[]).await.map_err(fail("target role"))?;
    stack.allow_assume_role(&irsa_name, &target).await.map_err(fail("sts:AssumeRole grant"))?;
    stack.create_service_account(&ns, KSA, &[(AWS_ROLE_ARN_ANNOTATION, &irsa)]).await.map_err(fail("ServiceAccount"))?;
    stack.put_parameter(&key, "chained").await.map_err(fail("parameter"))?;
    ssm_store(stack, &ns, Some(&target)).await?;
    external_secret(stack, &ns, &key).await?;
    stack.wait_secret_data(&ns, "db", &[("v", "chained")], SYNC_TIMEOUT).await.map_err(fail("sync through the chained role"))?;
    stack.wait_ready(&ns, "db", SYNC_TIMEOUT).await.map(|_| ()).map_err(fail("Ready after the chained sync"))
}

/// The target's trust names another role: the chain is refused, nothing is written.
async fn case_untrusted(stack: &Stack) -> CaseResult {
    let ns = stack.create_namespace("chain-denied").await.map_err(fail("namespace"))?;
    let key = format!("/{ns}/db");
    let irsa_name = format!("{ns}-irsa");
    let irsa = stack.create_irsa_role(&irsa_name, &ns, KSA, &[], &[]).await.map_err(fail("IRSA role"))?;
    let other = stack.create_irsa_role(&format!("{ns}-other"), &ns, "other", &[], &[]).await.map_err(fail("other role"))?;
    let target = stack.create_chained_role(&format!("{ns}-target"), &other, &[&key], &[]).await.map_err(fail("target role"))?;
    stack.allow_assume_role(&irsa_name, &target).await.map_err(fail("sts:AssumeRole grant"))?;
    stack.create_service_account(&ns, KSA, &[(AWS_ROLE_ARN_ANNOTATION, &irsa)]).await.map_err(fail("ServiceAccount"))?;
    stack.put_parameter(&key, "never-synced").await.map_err(fail("parameter"))?;
    ssm_store(stack, &ns, Some(&target)).await?;
    external_secret(stack, &ns, &key).await?;
    let failed = stack
        .wait_external_secret(&ns, "db", SYNC_TIMEOUT, "Ready=False for the refused chain", |es| {
            ready_condition(es).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await
        .map_err(fail("the refusal shows in status"))?;
    let message = ready_condition(&failed).and_then(|c| c.message.clone()).unwrap_or_default();
    for needle in ["AssumeRole", "AccessDenied", &format!("on resource: {target}"), "trust policy of", "spec.provider.aws.role"] {
        if !message.contains(needle) {
            return Err(format!("the condition should say {needle:?}: {message}"));
        }
    }
    match stack.get_secret(&ns, "db").await.map_err(fail("reading the Secret"))? {
        None => Ok(()),
        Some(secret) => Err(format!("a refused chain wrote the Secret: {:?}", secret.metadata.name)),
    }
}

/// The ServiceAccount asks for a custom token audience, which the IRSA
/// role's trust requires: the sync proves the token carried it.
async fn case_audience(stack: &Stack) -> CaseResult {
    let ns = stack.create_namespace("irsa-audience").await.map_err(fail("namespace"))?;
    let key = format!("/{ns}/db");
    let role = stack
        .create_irsa_role_for_audience(&ns, &ns, KSA, CUSTOM_AUDIENCE, &[&key], &[])
        .await
        .map_err(fail("IRSA role"))?;
    stack
        .create_service_account(&ns, KSA, &[(AWS_ROLE_ARN_ANNOTATION, &role), (AWS_AUDIENCE_ANNOTATION, CUSTOM_AUDIENCE)])
        .await
        .map_err(fail("ServiceAccount"))?;
    stack.put_parameter(&key, "audience").await.map_err(fail("parameter"))?;
    ssm_store(stack, &ns, None).await?;
    external_secret(stack, &ns, &key).await?;
    stack.wait_secret_data(&ns, "db", &[("v", "audience")], SYNC_TIMEOUT).await.map_err(fail("sync with the annotated audience"))?;
    Ok(())
}

/// The controller's own count of STS `AssumeRole` calls with this status (0 when no series).
async fn assume_role_calls(controller: &ControllerProcess, status: &str) -> f64 {
    let metrics = controller.metrics_text().await.unwrap_or_else(|e| panic!("reading the controller's metrics failed: {e}"));
    metric_value(&metrics, "secretbridge_provider_api_calls_total", &[("provider", "sts"), ("call", "AssumeRole"), ("status", status)])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_chaining_and_the_token_audience_annotation() {
    let stack = stack(true, false).await;
    // First, with both audiences: moto cannot add one to an existing provider.
    stack.create_oidc_provider_for(&[AWS_AUDIENCE, CUSTOM_AUDIENCE]).await.unwrap();
    let controller = controller(&stack).await;
    let cases = [
        ("chained role reads what the target grants", case_chain(&stack).boxed()),
        ("untrusted chain is refused", case_untrusted(&stack).boxed()),
        ("custom token audience", case_audience(&stack).boxed()),
    ];
    let (names, futures): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let failures: Vec<String> = names
        .into_iter()
        .zip(futures::future::join_all(futures).await)
        .filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}\n--- controller log tail ---\n{}", failures.join("\n"), controller.log_tail());

    assert!(assume_role_calls(&controller, "ok").await >= 1.0, "the controller counts the allowed AssumeRole");
    assert!(assume_role_calls(&controller, "AccessDenied").await >= 1.0, "the controller counts the refused AssumeRole");
    let guard = stack.guard().unwrap().stats();
    assert!(guard.calls("AssumeRole") >= 2 && guard.denied("AssumeRole") >= 1, "the guard saw both chains: {guard:?}");
}
