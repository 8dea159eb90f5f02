//! Real Terraform CLIs, driven like terraform-plugin-testing drives them:
//! write a config, `init`, `apply`, check that a second `plan` is empty,
//! `import`, `destroy`, read `show -json` and outputs.
//!
//! Every [`Terraform`] has its own temporary directory holding the working
//! directory, its own CLI configuration file (always passed through
//! `TF_CLI_CONFIG_FILE`, whatever the machine sets) and, in mirror mode, the
//! provider mirror. The inherited environment loses every `TF_*` variable so a
//! developer's `TF_LOG`, `TF_PLUGIN_CACHE_DIR` or `TF_CLI_ARGS` cannot change a
//! run; the runner sets `TF_IN_AUTOMATION=1`, `TF_INPUT=0`,
//! `CHECKPOINT_DISABLE=1` and nothing else unless asked.
//!
//! Provider installation, chosen per runner:
//! * default: only a filesystem mirror (empty), so a config that needs any
//!   provider fails fast instead of reaching for the network;
//! * [`Terraform::with_dev_override`]: `dev_overrides` for
//!   [`PROVIDER_SOURCE`] pointing at the built provider's directory, plus
//!   `direct {}`. Skip `init` in this mode (Terraform says so itself);
//!   `plan`/`apply` start the binary directly.
//! * [`Terraform::with_filesystem_mirror`]: an unpacked mirror
//!   (`<mirror>/registry.terraform.io/secretbridge/secretbridge/<v>/linux_amd64/terraform-provider-secretbridge_v<v>`)
//!   and `filesystem_mirror` as the only source, so `init` really installs the
//!   provider and writes the lock file.
//!
//! Debugging: `SECRETBRIDGE_TEST_TF_LOG=trace` sets `TF_LOG` for every run;
//! `SECRETBRIDGE_TEST_KEEP_TMP=1` keeps the temporary directories and prints
//! where they are.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::Value;
use tempfile::TempDir;

use crate::error::{HarnessError, Result};
use crate::net::POLL_INTERVAL;
use crate::paths::require_tool;

/// The provider's source address, as `dev_overrides` and the mirror name it.
pub const PROVIDER_SOURCE: &str = "registry.terraform.io/secretbridge/secretbridge";

/// The provider's cargo package and binary name.
pub const PROVIDER_BINARY: &str = "terraform-provider-secretbridge";

/// Default upper bound for one terraform command.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A Terraform CLI version the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TfVersion {
    /// Terraform 1.0.3, the oldest version the provider supports.
    V1_0_3,
    /// Terraform 1.15.5, the newest.
    V1_15_5,
}

impl TfVersion {
    /// Every version, oldest first: acceptance tests loop over these.
    pub fn all() -> [TfVersion; 2] {
        [TfVersion::V1_0_3, TfVersion::V1_15_5]
    }

    /// The version number, e.g. `"1.15.5"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TfVersion::V1_0_3 => "1.0.3",
            TfVersion::V1_15_5 => "1.15.5",
        }
    }

    /// The CLI installed by `make setup`, or an error saying to run it.
    pub fn binary(self) -> Result<PathBuf> {
        let version = self.as_str();
        require_tool(
            &format!("terraform {version}"),
            &format!("terraform-{version}/terraform"),
        )
    }
}

impl fmt::Display for TfVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one terraform command printed and how it exited.
#[derive(Debug, Clone)]
pub struct TfOutput {
    /// The command line (`terraform plan -input=false ...`).
    pub command: String,
    /// The exit code; `None` if a signal ended it.
    pub exit_code: Option<i32>,
    /// Everything printed to stdout.
    pub stdout: String,
    /// Everything printed to stderr.
    pub stderr: String,
}

/// How the runner lets terraform find the secretbridge provider.
#[derive(Debug, Clone)]
enum ProviderInstall {
    /// No provider: an empty filesystem mirror is the only source.
    None,
    /// `dev_overrides` pointing at the directory holding the built binary.
    DevOverride { binary_dir: PathBuf },
    /// An unpacked filesystem mirror holding the provider.
    FilesystemMirror,
}

/// One terraform working directory and CLI configuration for one version.
#[derive(Debug)]
pub struct Terraform {
    version: TfVersion,
    binary: PathBuf,
    root: TempDir,
    work_dir: PathBuf,
    cli_config: PathBuf,
    mirror_dir: PathBuf,
    install: ProviderInstall,
    env: Vec<(OsString, OsString)>,
    tf_log: Option<String>,
    timeout: Duration,
}

impl Terraform {
    /// A runner with a fresh temporary working directory and no provider.
    pub fn new(version: TfVersion) -> Result<Self> {
        let binary = version.binary()?;
        let mut root = tempfile::Builder::new()
            .prefix(&format!("secretbridge-tf-{version}-"))
            .tempdir()
            .map_err(|source| HarnessError::CreateTempDir {
                purpose: "a terraform run",
                source,
            })?;
        if std::env::var_os("SECRETBRIDGE_TEST_KEEP_TMP").is_some() {
            root.disable_cleanup(true);
            eprintln!(
                "secretbridge-harness: keeping terraform {version} dir {}",
                root.path().display()
            );
        }
        let work_dir = root.path().join("work");
        let mirror_dir = root.path().join("mirror");
        create_dir(&work_dir)?;
        create_dir(&mirror_dir)?;
        let runner = Self {
            version,
            binary,
            cli_config: root.path().join("terraform.rc"),
            root,
            work_dir,
            mirror_dir,
            install: ProviderInstall::None,
            env: Vec::new(),
            tf_log: std::env::var("SECRETBRIDGE_TEST_TF_LOG")
                .ok()
                .filter(|level| !level.is_empty()),
            timeout: DEFAULT_TIMEOUT,
        };
        runner.write_cli_config()?;
        Ok(runner)
    }

    /// Uses `dev_overrides` for [`PROVIDER_SOURCE`], pointing at the directory
    /// of `provider_binary` (which must be named `terraform-provider-secretbridge`).
    pub fn with_dev_override(mut self, provider_binary: &Path) -> Result<Self> {
        let binary_dir = provider_binary
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        self.install = ProviderInstall::DevOverride { binary_dir };
        self.write_cli_config()?;
        Ok(self)
    }

    /// Lays `provider_binary` out as version `version` in this runner's own
    /// filesystem mirror and makes that mirror the only provider source.
    pub fn with_filesystem_mirror(mut self, provider_binary: &Path, version: &str) -> Result<Self> {
        lay_out_filesystem_mirror(&self.mirror_dir, provider_binary, version)?;
        self.install = ProviderInstall::FilesystemMirror;
        self.write_cli_config()?;
        Ok(self)
    }

    /// Adds an environment variable for every later command (e.g. a provider
    /// endpoint such as `AWS_ENDPOINT_URL`).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.set_env(key, value);
        self
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        let key = key.into();
        self.env.retain(|(existing, _)| *existing != key);
        self.env.push((key, value.into()));
    }

    /// Sets `TF_LOG` (e.g. `"trace"`) for every later command; its output
    /// lands in the command's stderr.
    pub fn with_log(mut self, level: &str) -> Self {
        self.tf_log = Some(level.to_owned());
        self
    }

    /// Changes the upper bound for one command (default 300 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The terraform version this runner uses.
    pub fn version(&self) -> TfVersion {
        self.version
    }

    /// The working directory the commands run in.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The CLI configuration file passed as `TF_CLI_CONFIG_FILE`.
    pub fn cli_config_path(&self) -> &Path {
        &self.cli_config
    }

    /// The filesystem mirror directory (empty unless
    /// [`Terraform::with_filesystem_mirror`] was used).
    pub fn mirror_dir(&self) -> &Path {
        &self.mirror_dir
    }

    /// The runner's temporary root (work dir, CLI config, mirror).
    pub fn temp_root(&self) -> &Path {
        self.root.path()
    }

    /// Replaces the configuration with `hcl`, as `main.tf`.
    pub fn write_config(&self, hcl: &str) -> Result<()> {
        self.write_file("main.tf", hcl)
    }

    /// Writes `contents` to `name` in the working directory.
    pub fn write_file(&self, name: &str, contents: &str) -> Result<()> {
        write(&self.work_dir.join(name), contents)
    }

    /// `terraform init`.
    pub fn init(&self) -> Result<TfOutput> {
        self.run(&["init", "-input=false", "-no-color"])
    }

    /// `terraform apply -auto-approve`.
    pub fn apply(&self) -> Result<TfOutput> {
        self.run(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `terraform plan`, returning what it printed (for assertions on the diff).
    pub fn plan(&self) -> Result<String> {
        Ok(self.run(&["plan", "-input=false", "-no-color"])?.stdout)
    }

    /// `terraform plan -detailed-exitcode`: `true` when nothing would change
    /// (exit 0), `false` when there are changes (exit 2), an error otherwise.
    pub fn plan_is_empty(&self) -> Result<bool> {
        let output = self.run_any(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])?;
        match output.exit_code {
            Some(0) => Ok(true),
            Some(2) => Ok(false),
            _ => Err(self.failed(output)),
        }
    }

    /// Like [`Terraform::plan_is_empty`] but an error (showing the plan) when
    /// the plan is not empty: the after-apply and after-import check.
    pub fn expect_empty_plan(&self) -> Result<()> {
        let output = self.run_any(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])?;
        match output.exit_code {
            Some(0) => Ok(()),
            Some(2) => Err(HarnessError::PlanNotEmpty {
                version: self.version.as_str(),
                output: Box::new(output),
            }),
            _ => Err(self.failed(output)),
        }
    }

    /// `terraform import <address> <id>`.
    pub fn import(&self, address: &str, id: &str) -> Result<TfOutput> {
        self.run(&["import", "-input=false", "-no-color", address, id])
    }

    /// `terraform destroy -auto-approve`.
    pub fn destroy(&self) -> Result<TfOutput> {
        self.run(&["destroy", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `terraform show -json`, parsed (the state: `values.root_module.resources`).
    pub fn state_json(&self) -> Result<Value> {
        parse_json(self.run(&["show", "-json", "-no-color"])?)
    }

    /// `terraform output -json <name>`, parsed.
    pub fn output(&self, name: &str) -> Result<Value> {
        parse_json(self.run(&["output", "-json", "-no-color", name])?)
    }

    /// The version the CLI reports (`terraform version -json`), e.g. `"1.0.3"`.
    pub fn cli_version(&self) -> Result<String> {
        let output = self.run(&["version", "-json"])?;
        let command = output.command.clone();
        let stdout = output.stdout.clone();
        let value = parse_json(output)?;
        value
            .get("terraform_version")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(HarnessError::ParseJson {
                command,
                problem: "no string field terraform_version".to_owned(),
                stdout,
            })
    }

    /// Runs `terraform <args>` and requires exit code 0.
    pub fn run(&self, args: &[&str]) -> Result<TfOutput> {
        let output = self.run_any(args)?;
        if output.exit_code == Some(0) {
            Ok(output)
        } else {
            Err(self.failed(output))
        }
    }

    /// Runs `terraform <args>` and requires it to fail (for diagnostics
    /// tests); returns what it printed.
    pub fn run_expect_failure(&self, args: &[&str]) -> Result<TfOutput> {
        let output = self.run_any(args)?;
        if output.exit_code == Some(0) {
            Err(HarnessError::TerraformUnexpectedSuccess {
                version: self.version.as_str(),
                output: Box::new(output),
            })
        } else {
            Ok(output)
        }
    }

    /// `terraform apply` that must fail; returns what it printed.
    pub fn apply_expect_failure(&self) -> Result<TfOutput> {
        self.run_expect_failure(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// Runs `terraform <args>` with any exit code; errors only when it cannot
    /// be started or exceeds the timeout (then its process group is killed).
    pub fn run_any(&self, args: &[&str]) -> Result<TfOutput> {
        let command_line = std::iter::once("terraform")
            .chain(args.iter().copied())
            .map(shell_word)
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so providers it starts are killed with it.
            .process_group(0);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("TF_") || name.starts_with("CHECKPOINT_") {
                command.env_remove(&key);
            }
        }
        command
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1");
        if let Some(level) = &self.tf_log {
            command.env("TF_LOG", level);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }

        let mut child = command.spawn().map_err(|source| HarnessError::Spawn {
            program: self.binary.display().to_string(),
            source,
        })?;
        let group = Pid::from_child(&child);
        let stdout_reader = child.stdout.take().map(spawn_reader);
        let stderr_reader = child.stderr.take().map(spawn_reader);
        let wait_error = |source| HarnessError::Wait {
            program: command_line.clone(),
            source,
        };

        let started = Instant::now();
        let status: Option<ExitStatus> = loop {
            if let Some(status) = child.try_wait().map_err(wait_error)? {
                break Some(status);
            }
            if started.elapsed() >= self.timeout {
                break None;
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        // Terraform stops its plugins itself; this catches any that lingered
        // (and everything, after a timeout). ESRCH means nothing was left.
        let _ = kill_process_group(group, Signal::KILL);
        if status.is_none() {
            let _ = child.wait();
        }
        let stdout = join_reader(stdout_reader);
        let stderr = join_reader(stderr_reader);

        match status {
            Some(status) => Ok(TfOutput {
                command: command_line,
                exit_code: status.code(),
                stdout,
                stderr,
            }),
            None => Err(HarnessError::TerraformTimedOut {
                version: self.version.as_str(),
                dir: self.work_dir.clone(),
                timeout: self.timeout,
                output: Box::new(TfOutput {
                    command: command_line,
                    exit_code: None,
                    stdout,
                    stderr,
                }),
            }),
        }
    }

    fn failed(&self, output: TfOutput) -> HarnessError {
        HarnessError::TerraformFailed {
            version: self.version.as_str(),
            dir: self.work_dir.clone(),
            output: Box::new(output),
        }
    }

    fn write_cli_config(&self) -> Result<()> {
        write(
            &self.cli_config,
            &cli_config_text(&self.install, &self.mirror_dir),
        )
    }
}

/// The CLI configuration for an installation mode.
fn cli_config_text(install: &ProviderInstall, mirror_dir: &Path) -> String {
    let mut text = String::from("disable_checkpoint = true\n\nprovider_installation {\n");
    match install {
        ProviderInstall::None | ProviderInstall::FilesystemMirror => {
            text.push_str(&format!(
                "  filesystem_mirror {{\n    path = {}\n  }}\n",
                hcl_string(&mirror_dir.to_string_lossy())
            ));
        }
        ProviderInstall::DevOverride { binary_dir } => {
            text.push_str(&format!(
                "  dev_overrides {{\n    {} = {}\n  }}\n  direct {{}}\n",
                hcl_string(PROVIDER_SOURCE),
                hcl_string(&binary_dir.to_string_lossy())
            ));
        }
    }
    text.push_str("}\n");
    text
}

/// Copies `provider_binary` into an unpacked filesystem mirror at `mirror_dir`
/// as [`PROVIDER_SOURCE`] version `version` for linux_amd64, the layout
/// `terraform init` installs from. Returns the path of the installed file.
pub fn lay_out_filesystem_mirror(
    mirror_dir: &Path,
    provider_binary: &Path,
    version: &str,
) -> Result<PathBuf> {
    let package_dir = mirror_dir
        .join(PROVIDER_SOURCE)
        .join(version)
        .join("linux_amd64");
    create_dir(&package_dir)?;
    let target = package_dir.join(format!("{PROVIDER_BINARY}_v{version}"));
    // A hard link is instant; across file systems fall back to a copy.
    if std::fs::hard_link(provider_binary, &target).is_err() {
        std::fs::copy(provider_binary, &target).map_err(|source| HarnessError::WriteFile {
            path: target.clone(),
            source,
        })?;
    }
    Ok(target)
}

fn hcl_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            // `${` and `%{` would start a template sequence.
            '$' => quoted.push_str("$$"),
            '%' => quoted.push_str("%%"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@[]".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn parse_json(output: TfOutput) -> Result<Value> {
    serde_json::from_str(&output.stdout).map_err(|error| HarnessError::ParseJson {
        command: output.command,
        problem: error.to_string(),
        stdout: output.stdout,
    })
}

fn spawn_reader(mut source: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn join_reader(reader: Option<std::thread::JoinHandle<String>>) -> String {
    reader
        .map(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| "<reader thread panicked>".to_owned())
        })
        .unwrap_or_default()
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| HarnessError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| HarnessError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hcl_string_escapes_quotes_backslashes_and_templates() {
        assert_eq!(hcl_string(r#"a"b\c${d}%{e}"#), r#""a\"b\\c$${d}%%{e}""#);
    }

    #[test]
    fn dev_override_config_names_provider_and_dir() {
        let config = cli_config_text(
            &ProviderInstall::DevOverride {
                binary_dir: PathBuf::from("/t/debug"),
            },
            Path::new("/m"),
        );
        assert!(
            config.contains(r#""registry.terraform.io/secretbridge/secretbridge" = "/t/debug""#)
        );
        assert!(config.contains("direct {}"));
        assert!(!config.contains("filesystem_mirror"));
    }

    #[test]
    fn mirror_config_has_no_direct_source() {
        let config = cli_config_text(&ProviderInstall::FilesystemMirror, Path::new("/m"));
        assert!(config.contains(r#"path = "/m""#));
        assert!(!config.contains("direct"));
    }

    #[test]
    fn shell_word_quotes_only_when_needed() {
        assert_eq!(shell_word("-auto-approve"), "-auto-approve");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
