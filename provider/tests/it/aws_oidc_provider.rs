//! `secretbridge_aws_oidc_provider` on both Terraform CLIs against moto
//! behind the aws-guard: create with the thumbprint computed from a local
//! TLS issuer, empty re-plan, in-place update (tags, explicit thumbprints),
//! client IDs (skipped only where the endpoint lacks the API, i.e. moto),
//! out-of-band tag drift repaired, replace on `url`, import by ARN with an
//! empty plan, destroy with IAM listed afterwards. Plus the thumbprint
//! itself against issuers with known chains.

use terraform_provider_secretbridge::aws::thumbprint;

use crate::acceptance::Workdir;
use crate::aws_common::{AwsEnv, ChainIssuer, apply, assert_empty_plan, oidc_arn, shown};

const ADDRESS: &str = "secretbridge_aws_oidc_provider.eks";
const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

fn config(url: &str, team: &str, thumbprints: Option<&str>, client_ids: Option<&[&str]>) -> String {
    let thumbprints = thumbprints.map(|t| format!("  thumbprints = [\"{t}\"]\n")).unwrap_or_default();
    let client_ids = client_ids
        .map(|ids| format!("  client_ids = [{}]\n", ids.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ")))
        .unwrap_or_default();
    format!(
        r#"resource "secretbridge_aws_oidc_provider" "eks" {{
  url = "{url}"
{thumbprints}{client_ids}  tags = {{
    team = "{team}"
  }}
}}
"#
    )
}

struct Remote {
    client_ids: Vec<String>,
    thumbprints: Vec<String>,
    tags: Vec<(String, String)>,
}

fn remote(env: &AwsEnv, arn: &str) -> Option<Remote> {
    match env.rt.block_on(env.iam().get_open_id_connect_provider().open_id_connect_provider_arn(arn).send()) {
        Ok(out) => {
            let mut tags: Vec<(String, String)> = out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
            tags.sort();
            Some(Remote { client_ids: out.client_id_list().to_vec(), thumbprints: out.thumbprint_list().to_vec(), tags })
        }
        Err(e) => {
            let code = aws_sdk_iam::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
            assert_eq!(code.as_deref(), Some("NoSuchEntity"), "unexpected error reading {arn}: {e:?}");
            None
        }
    }
}

fn lifecycle(env: &AwsEnv, issuer: &ChainIssuer, version: &str) {
    let w = Workdir::new(version);
    let tag = if version == "1.0.3" { "old" } else { "new" };
    let url = format!("{}/{tag}", issuer.url);
    let arn = oidc_arn(&url);

    // Create: the thumbprint comes from the issuer's chain.
    env.write_config(&w, &config(&url, "a", None, None));
    apply(&w);
    let got = remote(env, &arn).expect("provider created");
    assert_eq!(got.thumbprints, vec![issuer.expected_thumbprint()]);
    assert_eq!(got.client_ids, vec![DEFAULT_AUDIENCE.to_owned()], "client_ids default");
    assert_eq!(got.tags, vec![("team".to_owned(), "a".to_owned())]);
    let values = shown(&w, ADDRESS);
    assert_eq!(values["arn"], arn.as_str());
    assert_eq!(values["id"], arn.as_str());
    assert_eq!(values["thumbprints"], serde_json::json!([issuer.expected_thumbprint()]));
    assert_empty_plan(&w, "after create");

    // In place: tags and explicit thumbprints (as air-gapped setups give them).
    let pinned = "0123456789abcdef0123456789abcdef01234567";
    env.write_config(&w, &config(&url, "b", Some(pinned), None));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    apply(&w);
    let got = remote(env, &arn).expect("same provider");
    assert_eq!(got.thumbprints, vec![pinned.to_owned()]);
    assert_eq!(got.tags, vec![("team".to_owned(), "b".to_owned())]);
    assert_empty_plan(&w, "after update");

    // Client IDs update in place (AddClientID / RemoveClientID, which the guard implements).
    env.write_config(&w, &config(&url, "b", Some(pinned), Some(&[DEFAULT_AUDIENCE, "extra-audience"])));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place") && !plan.contains("must be replaced"), "{plan}");
    apply(&w);
    let got = remote(env, &arn).expect("same provider, not replaced");
    assert_eq!(got.client_ids, vec![DEFAULT_AUDIENCE.to_owned(), "extra-audience".to_owned()]);
    assert_eq!(got.thumbprints, vec![pinned.to_owned()], "the update keeps the thumbprints");
    assert_eq!(got.tags, vec![("team".to_owned(), "b".to_owned())], "the update keeps the tags");
    assert_empty_plan(&w, "after adding a client ID");
    // Swap: one added and one removed in the same apply.
    env.write_config(&w, &config(&url, "b", Some(pinned), Some(&["other-audience"])));
    apply(&w);
    assert_eq!(remote(env, &arn).expect("provider").client_ids, vec!["other-audience".to_owned()]);
    assert_empty_plan(&w, "after swapping client IDs");
    env.write_config(&w, &config(&url, "b", Some(pinned), None));
    apply(&w);
    assert_eq!(remote(env, &arn).expect("provider").client_ids, vec![DEFAULT_AUDIENCE.to_owned()]);
    let calls = env.guard.stats();
    assert!(
        calls.calls("AddClientIDToOpenIDConnectProvider") >= 3 && calls.calls("RemoveClientIDFromOpenIDConnectProvider") >= 2,
        "the provider's client-ID update path ran: {calls:?}"
    );
    assert_empty_plan(&w, "after the client ID step");

    // Drift: a tag added out of band shows in the plan and is removed.
    env.rt
        .block_on(
            env.iam()
                .tag_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .tags(aws_sdk_iam::types::Tag::builder().key("rogue").value("yes").build().expect("tag"))
                .send(),
        )
        .expect("tag out of band");
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("rogue"), "{plan}");
    apply(&w);
    assert_eq!(remote(env, &arn).expect("provider").tags, vec![("team".to_owned(), "b".to_owned())]);
    assert_empty_plan(&w, "after drift repair");

    // Replace on url.
    let url2 = format!("{}/{tag}-2", issuer.url);
    let arn2 = oidc_arn(&url2);
    env.write_config(&w, &config(&url2, "b", None, None));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("must be replaced") && plan.contains("forces replacement"), "{plan}");
    apply(&w);
    assert!(remote(env, &arn).is_none(), "old provider deleted");
    assert_eq!(remote(env, &arn2).expect("new provider").thumbprints, vec![issuer.expected_thumbprint()]);
    assert_empty_plan(&w, "after replace");

    // Import by ARN, then an empty plan.
    w.ok(&["state", "rm", ADDRESS]);
    w.ok(&["import", "-no-color", "-input=false", ADDRESS, &arn2]);
    assert_empty_plan(&w, "after import");

    // Destroy leaves no provider of this lifecycle.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let left: Vec<String> = env.oidc_provider_arns().into_iter().filter(|a| a == &arn || a == &arn2).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn aws_oidc_provider_lifecycle_on_both_clis() {
    let env = AwsEnv::start(None);
    let issuer = env.rt.block_on(ChainIssuer::start(false));
    for version in ["1.0.3", "1.15.5"] {
        lifecycle(&env, &issuer, version);
    }
    assert!(env.oidc_provider_arns().is_empty(), "IAM still lists {:?}", env.oidc_provider_arns());
}

#[test]
fn thumbprint_is_the_sha1_of_the_last_certificate_the_issuer_presents() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for send_root in [false, true] {
        let issuer = rt.block_on(ChainIssuer::start(send_root));
        assert_eq!(issuer.sent.len(), if send_root { 3 } else { 2 });
        let got = rt.block_on(thumbprint::issuer_thumbprint(&format!("{}/some/path", issuer.url))).expect("thumbprint");
        // The top of what is sent: the intermediate, or the root when sent.
        assert_eq!(got, issuer.expected_thumbprint(), "send_root = {send_root}");
        let leaf = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &issuer.sent[0]);
        let leaf: String = leaf.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(got, leaf, "not the leaf");
    }
    // http:// is refused before any connection.
    let err = rt.block_on(thumbprint::issuer_thumbprint("http://127.0.0.1:1")).expect_err("http refused");
    assert!(err.to_string().contains("is not an https:// URL"), "{err}");
}
