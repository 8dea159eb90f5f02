//! Fresh workspace binaries for tests in any crate.
//!
//! A test in `tests/` (or in another crate) that needs, say, the provider
//! binary cannot rely on cargo having built it: cargo only builds a package's
//! own binaries for its own integration tests. [`workspace_bin`] runs
//! `cargo build -p <package> --bin <bin>` once per test process, with the
//! profile and target directory of the running test binary (read off its own
//! path, `<target>/[<triple>/]<profile>/deps/<test>`), so a developer's plain
//! `cargo test` always runs against the current code and nothing is rebuilt
//! twice.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::{HarnessError, Result};
use crate::paths::repo_root;
use crate::terraform::PROVIDER_BINARY;

/// Where and how the running test binary was built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuildLayout {
    target_dir: PathBuf,
    /// `Some(triple)` when built with `--target`.
    triple: Option<String>,
    /// The profile's output directory name (`debug`, `release`, ...).
    profile_dir: String,
}

impl BuildLayout {
    /// The `--profile` name that writes into `profile_dir`.
    fn profile(&self) -> &str {
        match self.profile_dir.as_str() {
            "debug" => "dev",
            other => other,
        }
    }

    fn output_dir(&self) -> PathBuf {
        let mut dir = self.target_dir.clone();
        if let Some(triple) = &self.triple {
            dir.push(triple);
        }
        dir.push(&self.profile_dir);
        dir
    }
}

/// Reads the layout off an executable path inside a cargo target directory.
/// `is_target_root` says whether a directory is the target dir itself (cargo
/// writes `CACHEDIR.TAG` there).
fn layout_from_exe(exe: &Path, is_target_root: &dyn Fn(&Path) -> bool) -> Result<BuildLayout> {
    let unknown = |problem: &str| HarnessError::TargetDirUnknown {
        exe: exe.to_path_buf(),
        problem: problem.to_owned(),
    };
    let mut dir = exe.parent().ok_or_else(|| unknown("no parent directory"))?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().ok_or_else(|| unknown("deps/ has no parent"))?;
    }
    let profile_dir = dir
        .file_name()
        .ok_or_else(|| unknown("no profile directory"))?
        .to_string_lossy()
        .into_owned();
    let above = dir
        .parent()
        .ok_or_else(|| unknown("profile dir has no parent"))?;
    if is_target_root(above) {
        return Ok(BuildLayout {
            target_dir: above.to_path_buf(),
            triple: None,
            profile_dir,
        });
    }
    let triple = above
        .file_name()
        .ok_or_else(|| unknown("no target triple directory"))?
        .to_string_lossy()
        .into_owned();
    let target_dir = above
        .parent()
        .ok_or_else(|| unknown("triple dir has no parent"))?;
    if is_target_root(target_dir) {
        Ok(BuildLayout {
            target_dir: target_dir.to_path_buf(),
            triple: Some(triple),
            profile_dir,
        })
    } else {
        Err(unknown(
            "no CACHEDIR.TAG above it: not inside a cargo target directory",
        ))
    }
}

fn current_layout() -> Result<BuildLayout> {
    let exe = std::env::current_exe().map_err(|error| HarnessError::TargetDirUnknown {
        exe: PathBuf::from("<current_exe>"),
        problem: error.to_string(),
    })?;
    layout_from_exe(&exe, &|dir| dir.join("CACHEDIR.TAG").is_file())
}

fn cargo_program() -> OsString {
    // Cargo sets CARGO for the processes it runs; fall back to the cargo that
    // compiled this crate, then to PATH.
    std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(OsString::from))
        .unwrap_or_else(|| OsString::from("cargo"))
}

fn build(package: &str, bin: &str) -> Result<PathBuf> {
    let layout = current_layout()?;
    let mut command = Command::new(cargo_program());
    command
        .current_dir(repo_root())
        .args(["build", "--quiet", "-p", package, "--bin", bin, "--profile"])
        .arg(layout.profile())
        .arg("--target-dir")
        .arg(&layout.target_dir);
    if let Some(triple) = &layout.triple {
        command.args(["--target", triple]);
    }
    let command_line = format!("{command:?}");
    let output = command.output().map_err(|source| HarnessError::Spawn {
        program: command_line.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(HarnessError::CargoBuild {
            command: command_line,
            exit: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let path = layout.output_dir().join(bin);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::BuiltBinaryMissing { path })
    }
}

type BuildCache = Mutex<HashMap<(String, String), Result<PathBuf, String>>>;

/// Names a directory of binaries that are already built and current, e.g.
/// `target/debug` right after `cargo test --workspace --no-run` (what `make
/// test` does). Binaries found there are used as they are, because `cargo
/// build -p` from inside a test resolves a narrower feature set than the
/// workspace build, which recompiles dependencies and relinks the binary.
pub const PREBUILT_BIN_DIR_ENV: &str = "SECRETBRIDGE_PREBUILT_BIN_DIR";

/// Builds `bin` of workspace package `package` (once per test process; the
/// result, success or failure, is shared by every later caller) and returns
/// the binary's path.
pub fn try_workspace_bin(package: &str, bin: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PREBUILT_BIN_DIR_ENV) {
        let prebuilt = Path::new(&dir).join(bin);
        if prebuilt.is_file() {
            return Ok(prebuilt);
        }
    }
    static BUILT: OnceLock<BuildCache> = OnceLock::new();
    let cache = BUILT.get_or_init(BuildCache::default);
    // Holding the lock while building serialises builds: cargo would anyway.
    let mut built = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (package.to_owned(), bin.to_owned());
    let result = built
        .entry(key)
        .or_insert_with(|| build(package, bin).map_err(|error| error.to_string()));
    result.clone().map_err(|message| HarnessError::CargoBuild {
        command: format!("cargo build -p {package} --bin {bin} (cached result)"),
        exit: "failed earlier in this test process".to_owned(),
        stderr: message,
    })
}

/// [`try_workspace_bin`] for tests: panics with cargo's output on failure.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    match try_workspace_bin(package, bin) {
        Ok(path) => path,
        Err(error) => panic!("{error}"),
    }
}

/// The freshly built `terraform-provider-secretbridge` binary, or the one
/// named by `SECRETBRIDGE_TEST_PROVIDER_BIN` when that is set (to test a
/// prebuilt binary; nothing is built then).
pub fn provider_binary() -> Result<PathBuf> {
    if let Some(prebuilt) = std::env::var_os("SECRETBRIDGE_TEST_PROVIDER_BIN") {
        let path = PathBuf::from(prebuilt);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::BuiltBinaryMissing { path })
        };
    }
    try_workspace_bin(PROVIDER_BINARY, PROVIDER_BINARY)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_debug_layout() {
        let layout = layout_from_exe(Path::new("/t/debug/deps/it-abc"), &|dir| {
            dir == Path::new("/t")
        })
        .unwrap();
        assert_eq!(layout.target_dir, Path::new("/t"));
        assert_eq!(layout.triple, None);
        assert_eq!(layout.profile(), "dev");
        assert_eq!(layout.output_dir(), Path::new("/t/debug"));
    }

    #[test]
    fn reads_cross_target_release_layout() {
        let layout = layout_from_exe(
            Path::new("/t/x86_64-unknown-linux-gnu/release/deps/it-abc"),
            &|dir| dir == Path::new("/t"),
        )
        .unwrap();
        assert_eq!(layout.triple.as_deref(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(layout.profile(), "release");
        assert_eq!(
            layout.output_dir(),
            Path::new("/t/x86_64-unknown-linux-gnu/release")
        );
    }

    #[test]
    fn rejects_paths_outside_a_target_dir() {
        assert!(layout_from_exe(Path::new("/usr/bin/it"), &|_| false).is_err());
    }
}
