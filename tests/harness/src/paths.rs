//! Where the repository and the tools that `make setup` installs live.

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};

/// The repository root (the workspace that holds `tests/harness`).
///
/// Taken from this crate's own manifest directory at compile time, so it is
/// right whichever crate's test calls it and whatever the current directory.
pub fn repo_root() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| harness.to_path_buf(), Path::to_path_buf)
}

/// The git-ignored folder `make setup` installs tools into (`<root>/.tools`).
pub fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

/// `<root>/.tools/<relative>`, or [`HarnessError::ToolMissing`] telling the
/// developer to run `make setup`.
pub(crate) fn require_tool(tool: &str, relative: &str) -> Result<PathBuf> {
    let path = tools_dir().join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::ToolMissing {
            tool: tool.to_owned(),
            path,
            repo_root: repo_root(),
        })
    }
}
