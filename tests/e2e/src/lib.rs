//! `make demo` and the example tests: `examples-terraform/` applied with real
//! Terraform against the loopback stack (`secretbridge-stack`), with the real
//! controller syncing the result.
//!
//! [`run_demo`] is the whole demo as one function, so a test runs exactly
//! what `make demo` runs; the `secretbridge-demo` binary only parses its
//! arguments and prints.

use secretbridge_harness::{TfVersion, Terraform, repo_root};
use secretbridge_stack::{ControllerOptions, Stack, StackError, StackOptions, secret_strings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Version the provider binary is laid out as in the Terraform mirror.
pub const PROVIDER_VERSION: &str = "0.1.0";

/// The three values seeded in each cloud, as `(secret key, AWS parameter, GCP secret, value)`.
pub const SEED: &[(&str, &str, &str, &str)] = &[
    ("dburl", "/multicloud/db/url", "multicloud-db-url", "postgres://db.multicloud.internal:5432/app"),
    ("user", "/multicloud/db/user", "multicloud-db-user", "multicloud"),
    ("password", "/multicloud/db/password", "multicloud-db-password", "s3cr3t-multicloud"),
];

/// Namespaces of `examples-terraform/local`'s two halves (its variable defaults).
pub const AWS_NAMESPACE: &str = "multicloud-aws";
/// See [`AWS_NAMESPACE`].
pub const GCP_NAMESPACE: &str = "multicloud-gcp";
/// Name of the ExternalSecret and Secret in both namespaces.
pub const SECRET_NAME: &str = "multicloud-db-info";

/// How long an ExternalSecret may take to become Ready on a loaded machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the demo or an example run failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Starting, seeding or querying the stack failed.
    #[error("{action} failed: {source}")]
    Stack {
        /// What was being done.
        action: String,
        /// The stack's error.
        #[source]
        source: Box<StackError>,
    },
    /// A Terraform command failed.
    #[error("terraform {action} failed: {source}")]
    Terraform {
        /// The command.
        action: String,
        /// The harness error, with Terraform's output.
        #[source]
        source: Box<secretbridge_harness::HarnessError>,
    },
    /// Copying the example folders failed.
    #[error("copying {path} failed: {source}")]
    Copy {
        /// The file or folder.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
    /// The synced Secret is not what was seeded.
    #[error("Secret {namespace}/{name} holds {found:?}, expected the seeded values; controller log tail:\n{log}")]
    WrongSecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Keys found.
        found: Vec<String>,
        /// The controller's last log lines.
        log: String,
    },
}

fn stack_error(action: impl Into<String>) -> impl FnOnce(StackError) -> DemoError {
    let action = action.into();
    move |source| DemoError::Stack { action, source: Box::new(source) }
}

/// What the demo needs from outside: the binaries `make demo` built.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `secretbridge-controller` binary.
    pub controller_binary: PathBuf,
    /// The `terraform-provider-secretbridge` binary.
    pub provider_binary: PathBuf,
    /// The Terraform CLI to run.
    pub terraform: TfVersion,
}

/// One synced Secret, as the demo prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedSecret {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Secret type.
    pub type_: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Decoded values by key.
    pub data: BTreeMap<String, String>,
}

impl SyncedSecret {
    /// `kubectl describe secret`, plus the decoded values.
    pub fn describe(&self) -> String {
        let mut out = format!("Name:         {}\nNamespace:    {}\nLabels:       ", self.name, self.namespace);
        if self.labels.is_empty() {
            out.push_str("<none>\n");
        } else {
            let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&labels.join("\n              "));
            out.push('\n');
        }
        out.push_str(&format!("\nType:  {}\n\nData\n====\n", self.type_));
        for (key, value) in &self.data {
            out.push_str(&format!("{key}:  {} bytes\n", value.len()));
        }
        out.push_str("\nDecoded values\n==============\n");
        for (key, value) in &self.data {
            out.push_str(&format!("{key}: {value}\n"));
        }
        out
    }
}

/// Copies `examples-terraform/{local,modules,...}` into `dest`, so Terraform's
/// `.terraform/` and state never land in the source tree.
pub fn copy_examples(dest: &Path) -> Result<(), DemoError> {
    copy_dir(&repo_root().join("examples-terraform"), dest)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), DemoError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Copy { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".terraform") || name.to_string_lossy().ends_with(".tfstate") {
            continue; // leftovers of a manual run
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(&name))?;
        } else {
            std::fs::copy(&path, to.join(&name)).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// A Terraform runner for one example folder (relative to
/// `examples-terraform/`), with the provider installed from a filesystem
/// mirror (so `init` runs for real and installs the local modules) and the
/// AWS credentials moto accepts.
pub fn example_terraform(version: TfVersion, provider_binary: &Path, folder: &str) -> Result<ExampleRun, DemoError> {
    let terraform = Terraform::new(version)
        .and_then(|t| t.with_filesystem_mirror(provider_binary, PROVIDER_VERSION))
        .map_err(|source| DemoError::Terraform { action: "set-up".into(), source: Box::new(source) })?
        .with_env("AWS_ACCESS_KEY_ID", secretbridge_stack::AWS_STATIC_KEY)
        .with_env("AWS_SECRET_ACCESS_KEY", secretbridge_stack::AWS_STATIC_KEY)
        .with_env("AWS_EC2_METADATA_DISABLED", "true")
        .with_timeout(Duration::from_secs(600));
    copy_examples(terraform.work_dir())?;
    Ok(ExampleRun { terraform, chdir: format!("-chdir={folder}") })
}

/// One example folder inside a Terraform runner's working directory.
pub struct ExampleRun {
    terraform: Terraform,
    chdir: String,
}

impl ExampleRun {
    /// Sets a Terraform variable (`TF_VAR_name`).
    pub fn var(&mut self, name: &str, value: impl Into<std::ffi::OsString>) {
        self.terraform.set_env(format!("TF_VAR_{name}"), value);
    }

    /// Sets an environment variable for Terraform and the provider (e.g.
    /// `HOME`, so an example's `~/.kube/config` default is a test's file).
    pub fn env(&mut self, key: &str, value: impl Into<std::ffi::OsString>) {
        self.terraform.set_env(key, value);
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<secretbridge_harness::TfOutput, DemoError> {
        let mut all = vec![self.chdir.as_str()];
        all.extend_from_slice(args);
        self.terraform.run(&all).map_err(|source| DemoError::Terraform { action: action.into(), source: Box::new(source) })
    }

    /// `terraform init`.
    pub fn init(&self) -> Result<(), DemoError> {
        self.run("init", &["init", "-input=false", "-no-color"]).map(drop)
    }

    /// `terraform apply -auto-approve`; returns what it printed.
    pub fn apply(&self) -> Result<String, DemoError> {
        self.run("apply", &["apply", "-auto-approve", "-input=false", "-no-color"]).map(|o| o.stdout)
    }

    /// `terraform plan -detailed-exitcode`: an error showing the plan unless it is empty.
    pub fn expect_empty_plan(&self) -> Result<(), DemoError> {
        let mut all = vec![self.chdir.as_str()];
        all.extend_from_slice(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
        let output = self.terraform.run_any(&all).map_err(|source| DemoError::Terraform { action: "plan".into(), source: Box::new(source) })?;
        match output.exit_code {
            Some(0) => Ok(()),
            _ => Err(DemoError::Terraform {
                action: "plan after apply (expected no changes)".into(),
                source: Box::new(secretbridge_harness::HarnessError::PlanNotEmpty { version: self.terraform.version().as_str(), output: Box::new(output) }),
            }),
        }
    }

    /// `terraform destroy -auto-approve`.
    pub fn destroy(&self) -> Result<(), DemoError> {
        self.run("destroy", &["destroy", "-auto-approve", "-input=false", "-no-color"]).map(drop)
    }

    /// `terraform output -json NAME`.
    pub fn output(&self, name: &str) -> Result<serde_json::Value, DemoError> {
        let out = self.run("output", &["output", "-json", name])?;
        serde_json::from_str(&out.stdout).map_err(|e| DemoError::Task(format!("terraform output {name} is not JSON: {e}")))
    }
}

/// Runs a blocking closure (Terraform) off the runtime the stack's servers use.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, DemoError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| DemoError::Task(e.to_string()))
}

/// Seeds the three parameters (through moto's admin endpoint) and the three
/// GCP secrets of [`SEED`].
pub async fn seed_clouds(stack: &Stack) -> Result<(), DemoError> {
    for (_, parameter, secret, value) in SEED {
        stack.put_parameter(parameter, value).await.map_err(stack_error(format!("seeding parameter {parameter}")))?;
        stack.seed_secret(secret, &[value.as_bytes()]).map_err(stack_error(format!("seeding GCP secret {secret}")))?;
    }
    Ok(())
}

/// Sets the variables of `examples-terraform/local` for this stack.
pub fn local_variables(run: &mut ExampleRun, stack: &Stack) -> Result<(), DemoError> {
    run.var("kubeconfig_path", stack.kubeconfig_path());
    run.var("cluster_oidc_issuer_url", stack.issuer());
    run.var("aws_endpoint", stack.moto_endpoint().map_err(stack_error("reading moto's endpoint"))?);
    run.var("region", stack.aws_region());
    run.var("gcp_endpoint", stack.gcp_endpoint().map_err(stack_error("reading the GCP endpoint"))?);
    run.var("gcp_project", stack.gcp_project());
    run.var("gcp_access_token", stack.gcp().map_err(stack_error("reading the GCP stand-in"))?.admin_token());
    run.var("aws_namespace", AWS_NAMESPACE);
    run.var("gcp_namespace", GCP_NAMESPACE);
    Ok(())
}

/// Reads a synced Secret for printing.
pub async fn synced_secret(stack: &Stack, namespace: &str, name: &str) -> Result<SyncedSecret, DemoError> {
    let secret = stack
        .get_secret(namespace, name)
        .await
        .map_err(stack_error(format!("reading Secret {namespace}/{name}")))?;
    let secret = secret.unwrap_or_default();
    Ok(SyncedSecret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        type_: secret.type_.clone().unwrap_or_else(|| "Opaque".to_string()),
        labels: secret.metadata.labels.clone().unwrap_or_default(),
        data: secret_strings(&secret),
    })
}

/// The whole demo: start the stack, seed both clouds, `terraform init` and
/// `apply` `examples-terraform/local` (and check that a second plan is
/// empty), start the controller, wait for both
/// ExternalSecrets to be Ready and return the synced Secrets. Everything it
/// started stops when it returns. `progress` gets one line per step.
pub async fn run_demo(options: &DemoOptions, progress: &mut (dyn FnMut(&str) + Send)) -> Result<Vec<SyncedSecret>, DemoError> {
    let started = Instant::now();
    let mut step = |text: &str| progress(&format!("[{:>5.1}s] {text}", started.elapsed().as_secs_f64()));
    step("starting the Kubernetes stand-in, moto behind aws-guard, and the GCP stand-in");
    let stack = Stack::start(StackOptions::default()).await.map_err(stack_error("starting the stack"))?;
    step("seeding three SSM parameters and three GCP secrets");
    seed_clouds(&stack).await?;
    for namespace in [AWS_NAMESPACE, GCP_NAMESPACE] {
        stack.ensure_namespace(namespace).await.map_err(stack_error(format!("creating namespace {namespace}")))?;
    }
    let mut run = example_terraform(options.terraform, &options.provider_binary, "local")?;
    local_variables(&mut run, &stack)?;
    step(&format!("terraform {} init (examples-terraform/local)", options.terraform));
    let run = blocking(move || run.init().map(|()| run)).await??;
    step("terraform apply -auto-approve");
    let run = blocking(move || run.apply().map(|_| run)).await??;
    step("terraform plan: a second plan must show no changes");
    let run = blocking(move || run.expect_empty_plan().map(|()| run)).await??;
    step("starting secretbridge-controller");
    let controller = stack
        .start_controller(ControllerOptions::new(&options.controller_binary))
        .await
        .map_err(stack_error("starting the controller"))?;
    let mut secrets = Vec::new();
    for namespace in [AWS_NAMESPACE, GCP_NAMESPACE] {
        step(&format!("waiting for ExternalSecret {namespace}/{SECRET_NAME} to be Ready"));
        stack
            .wait_ready(namespace, SECRET_NAME, READY_TIMEOUT)
            .await
            .map_err(|source| DemoError::Stack { action: format!("waiting for {namespace}/{SECRET_NAME} (controller log:\n{})", controller.log_tail()), source: Box::new(source) })?;
        let secret = synced_secret(&stack, namespace, SECRET_NAME).await?;
        let expected: BTreeMap<String, String> = SEED.iter().map(|(key, _, _, value)| (key.to_string(), value.to_string())).collect();
        if secret.data != expected {
            return Err(DemoError::WrongSecret {
                namespace: namespace.to_string(),
                name: SECRET_NAME.to_string(),
                found: secret.data.keys().cloned().collect(),
                log: controller.log_tail(),
            });
        }
        secrets.push(secret);
    }
    step("stopping everything");
    drop(controller);
    drop(run);
    drop(stack);
    Ok(secrets)
}
