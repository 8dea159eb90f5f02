//! The acceptance lifecycle of the test-only resource on both real
//! Terraform CLIs: apply, empty re-plan, in-place update, replace, import
//! then empty plan, drift re-create, destroy, validation error with file and
//! line, and a sensitive value hidden in the plan.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Terraform working directory wired to this build of the provider
/// through dev_overrides.
pub struct Workdir {
    terraform: PathBuf,
    dir: tempfile::TempDir,
    objects: PathBuf,
    cli_config: PathBuf,
}

pub fn terraform_path(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_owned();
    root.join(".tools").join(format!("terraform-{version}")).join("terraform")
}

impl Workdir {
    pub fn new(version: &str) -> Workdir {
        let terraform = terraform_path(version);
        assert!(terraform.exists(), "{} missing: run `make setup`", terraform.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = dir.path().join("objects");
        std::fs::create_dir(&objects).expect("objects dir");
        let cli_config = dir.path().join("cli.tfrc");
        let bin = crate::support::provider_bin();
        let bin_dir = bin.parent().expect("bin dir");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"registry.terraform.io/secretbridge/secretbridge\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                bin_dir.display()
            ),
        )
        .expect("cli config");
        let work = dir.path().join("work");
        std::fs::create_dir(&work).expect("work dir");
        Workdir { terraform, dir, objects, cli_config }
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn objects(&self) -> &Path {
        &self.objects
    }

    pub fn write_config(&self, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    secretbridge = {{\n      source = \"secretbridge/secretbridge\"\n    }}\n  }}\n}}\n\nprovider \"secretbridge\" {{}}\n\n{body}"
        );
        std::fs::write(self.work().join("main.tf"), text).expect("write main.tf");
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    /// Runs with extra environment variables (e.g. `TF_LOG`, which `run` clears).
    pub fn run_with_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        Command::new(&self.terraform)
            .args(args)
            .current_dir(self.work())
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("SECRETBRIDGE_PROVIDER_TEST_RESOURCES", "1")
            .env("SECRETBRIDGE_TEST_OBJECT_DIR", &self.objects)
            .env_remove("TF_LOG")
            .envs(envs.iter().copied())
            .output()
            .expect("run terraform")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "terraform {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `plan -detailed-exitcode`: Some(false) empty, Some(true) changes; panics on error.
    pub fn plan_has_changes(&self) -> (bool, String) {
        let out = self.run(&["plan", "-no-color", "-detailed-exitcode", "-input=false"]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        match out.status.code() {
            Some(0) => (false, text),
            Some(2) => (true, text),
            _ => panic!("plan failed ({}):\n{text}", out.status),
        }
    }
}

fn object_config(name: &str, content: &str) -> String {
    format!(
        r#"resource "secretbridge_test_object" "a" {{
  name    = "{name}"
  content = "{content}"
  secret  = "hunter2-very-secret"
  labels  = {{
    team = "platform"
  }}
  owner {{
    team = "core"
  }}
}}
"#
    )
}

fn stored(w: &Workdir, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(w.objects().join(format!("{name}.json"))).expect("object file");
    serde_json::from_str(&text).expect("object json")
}

fn lifecycle(version: &str) {
    let w = Workdir::new(version);

    // Plan shows the sensitive value hidden.
    w.write_config(&object_config("alpha", "v1"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes, "{plan}");
    assert!(plan.contains("(sensitive value)"), "{plan}");
    assert!(!plan.contains("hunter2-very-secret"), "secret leaked into the plan:\n{plan}");

    // Apply creates; a re-plan is empty.
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(stored(&w, "alpha")["content"], "v1");
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "re-plan after apply not empty:\n{plan}");

    // In-place update.
    w.write_config(&object_config("alpha", "v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("updated in-place"), "{plan}");
    assert!(!plan.contains("must be replaced"), "{plan}");
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(stored(&w, "alpha")["content"], "v2");
    assert_eq!(stored(&w, "alpha")["revision"], 2);
    assert!(!w.plan_has_changes().0);

    // Replace on a requires-replace attribute.
    w.write_config(&object_config("beta", "v2"));
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("must be replaced") && plan.contains("forces replacement"), "{plan}");
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!w.objects().join("alpha.json").exists(), "old object removed");
    assert_eq!(stored(&w, "beta")["revision"], 1);
    assert!(!w.plan_has_changes().0);

    // Import, then an empty plan.
    w.ok(&["state", "rm", "secretbridge_test_object.a"]);
    w.ok(&["import", "-no-color", "-input=false", "secretbridge_test_object.a", "beta"]);
    let (changes, plan) = w.plan_has_changes();
    assert!(!changes, "plan after import not empty:\n{plan}");

    // Drift: deleted outside Terraform, the plan re-creates it.
    std::fs::remove_file(w.objects().join("beta.json")).expect("delete outside terraform");
    let (changes, plan) = w.plan_has_changes();
    assert!(changes && plan.contains("will be created"), "{plan}");
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert!(w.objects().join("beta.json").exists());

    // A data source reads the object by name.
    let with_data = format!(
        "{}\ndata \"secretbridge_test_object\" \"d\" {{\n  name = \"beta\"\n}}\n\noutput \"content\" {{\n  value = data.secretbridge_test_object.d.content\n}}\n",
        object_config("beta", "v2")
    );
    w.write_config(&with_data);
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(w.ok(&["output", "-raw", "content"]), "v2");
    assert!(!w.plan_has_changes().0);
    w.write_config(&object_config("beta", "v2"));

    if version != "1.0.3" {
        // A write-only value reaches the object but never the state or plan.
        // It does not cause a diff by itself, so the content changes along with it.
        let with_token = object_config("beta", "v3").replace("content =", "token_wo = \"tok-only-in-config\"\n  content =");
        w.write_config(&with_token);
        w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
        assert_eq!(stored(&w, "beta")["token"], "tok-only-in-config", "the object received the write-only value");
        let state = w.ok(&["show", "-json", "-no-color"]);
        assert!(!state.contains("tok-only-in-config"), "write-only value in state:\n{state}");
        let tfstate = std::fs::read_to_string(w.work().join("terraform.tfstate")).expect("state file");
        assert!(!tfstate.contains("tok-only-in-config"), "write-only value in terraform.tfstate");
        // Dropping a write-only value is no change either.
        w.write_config(&object_config("beta", "v3"));
        assert!(!w.plan_has_changes().0);

        // An ephemeral resource's value feeds a write-only attribute and is
        // stored nowhere by Terraform.
        let with_ephemeral = format!(
            "ephemeral \"secretbridge_test_token\" \"t\" {{\n  prefix = \"eph\"\n}}\n\n{}",
            object_config("beta", "v4").replace("content =", "token_wo = ephemeral.secretbridge_test_token.t.token\n  content =")
        );
        w.write_config(&with_ephemeral);
        w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
        let token = stored(&w, "beta")["token"].as_str().expect("token stored").to_owned();
        assert!(token.starts_with("eph-"), "{token}");
        let tfstate = std::fs::read_to_string(w.work().join("terraform.tfstate")).expect("state file");
        assert!(!tfstate.contains(&token), "ephemeral value in terraform.tfstate");
        w.write_config(&object_config("beta", "v4"));
        assert!(!w.plan_has_changes().0);
    } else {
        // Terraform 1.0.3 cannot keep write-only values out of state: refused with the attribute named.
        let with_token = object_config("beta", "v2").replace("content =", "token_wo = \"tok\"\n  content =");
        w.write_config(&with_token);
        let out = w.run(&["plan", "-no-color", "-input=false"]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains("Write-only attribute needs Terraform 1.11"), "{text}");
        w.write_config(&object_config("beta", "v2"));
    }

    // Destroy.
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!w.objects().join("beta.json").exists());

    // A validation error names the attribute's file and line.
    w.write_config(
        r#"resource "secretbridge_test_object" "bad" {
  content = "fine"
  name    = "Not_Valid"
}
"#,
    );
    let out = w.run(&["plan", "-no-color", "-input=false"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("must match the regular expression"), "{text}");
    // Line 13: the provider block and terraform block take lines 1-10.
    assert!(text.contains("on main.tf line 13"), "{text}");
    assert!(text.contains("name    = \"Not_Valid\""), "the offending line is quoted:\n{text}");
}

#[test]
fn lifecycle_terraform_1_0_3() {
    lifecycle("1.0.3");
}

#[test]
fn lifecycle_terraform_1_15_5() {
    lifecycle("1.15.5");
}
