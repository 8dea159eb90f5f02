//! Tool discovery and building workspace binaries from inside a test.

use std::process::Command;

use secretbridge_harness::{TfVersion, tools_dir, workspace_bin};

#[test]
fn workspace_bin_builds_and_finds_a_current_binary() {
    let bin = workspace_bin("secretbridge-harness", "secretbridge-tools");
    assert!(bin.is_file(), "{}", bin.display());
    // Same target dir and profile as this test binary.
    let this_test = std::env::current_exe().unwrap();
    let profile_dir = this_test.parent().unwrap().parent().unwrap();
    assert_eq!(bin.parent().unwrap(), profile_dir);
    // A second call is served from the per-process cache.
    assert_eq!(
        workspace_bin("secretbridge-harness", "secretbridge-tools"),
        bin
    );

    let output = Command::new(&bin).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for version in TfVersion::all() {
        assert!(
            stdout.contains(&format!("terraform-{version}/terraform")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&tools_dir().display().to_string()),
        "{stdout}"
    );
}

#[test]
fn workspace_bin_reports_unknown_package() {
    let error = secretbridge_harness::try_workspace_bin("no-such-package", "nope").unwrap_err();
    assert!(error.to_string().contains("no-such-package"), "{error}");
}
