//! Bad input to the GCP resources is rejected at plan time, on both CLIs,
//! with the attribute's file and line and a fix: an invalid `account_id`, a
//! member not in `type:value` form, a namespace or KSA name that is not a DNS
//! name, and a secret name with characters GCP does not allow.

use crate::acceptance::Workdir;
use crate::gcp_common::GcpEnv;

const BAD: &str = r#"resource "secretbridge_gcp_service_account" "bad" {
  account_id = "Bad_Id"
}

resource "secretbridge_gcp_secret_access" "bad_member" {
  member  = "alice@example.com"
  secrets = ["fine"]
}

resource "secretbridge_gcp_secret_access" "bad_secret" {
  member  = "user:alice@example.com"
  secrets = ["fine", "bad name!"]
}

resource "secretbridge_gcp_workload_identity" "bad" {
  service_account            = "app@p.iam.gserviceaccount.com"
  namespace                  = "Apps_NS"
  kubernetes_service_account = "Bad_KSA"
}
"#;

#[test]
fn bad_gcp_input_fails_at_plan_with_attribute_paths() {
    let env = GcpEnv::start();
    for version in ["1.0.3", "1.15.5"] {
        let w = Workdir::new(version);
        env.write_config(&w, BAD);
        let out = w.run(&["plan", "-no-color", "-input=false"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        // Each offending attribute is quoted from its line (lines 14.. after the provider block).
        for line in [
            "account_id = \"Bad_Id\"",
            "member  = \"alice@example.com\"",
            "secrets = [\"fine\", \"bad name!\"]",
            "namespace                  = \"Apps_NS\"",
            "kubernetes_service_account = \"Bad_KSA\"",
        ] {
            assert!(text.contains(line), "{line} not pointed at:\n{text}");
        }
        for message in [
            "Invalid secret name",
            "may use only letters, digits, '-' and '_'",
            "Invalid Kubernetes namespace",
            "Invalid Kubernetes ServiceAccount name",
            "must be a DNS label",
        ] {
            assert!(text.contains(message), "{message} missing:\n{text}");
        }
        // A pattern failure also says what a good value looks like (the
        // attribute's description); Terraform wraps lines, so compare words.
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for hint in [
            "6 to 30 lowercase letters, digits and hyphens, starting with a letter",
            "IAM member, e.g. `serviceAccount:app@P.iam.gserviceaccount.com`",
        ] {
            assert!(words.contains(hint), "{hint} missing:\n{text}");
        }
        assert_eq!(
            env.standin.call_counts().values().sum::<u64>(),
            0,
            "nothing reached GCP"
        );
    }
}
