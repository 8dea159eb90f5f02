//! Shared setup for the end-to-end tests.

use secretbridge_stack::{ControllerOptions, ControllerProcess, Stack, StackOptions};
use std::time::Duration;

/// Generous upper bound for one sync to show up on a loaded 2-core machine.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The controller binary cargo built for this test.
pub fn controller_options() -> ControllerOptions {
    ControllerOptions::new(env!("CARGO_BIN_EXE_secretbridge-controller"))
}

/// A stack with only the parts a test needs.
pub async fn stack(aws: bool, gcp: bool) -> Stack {
    Stack::start(StackOptions { aws, gcp, ..StackOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("starting the stack failed: {e}"))
}

/// The controller, started against `stack`.
pub async fn controller(stack: &Stack) -> ControllerProcess {
    stack
        .start_controller(controller_options())
        .await
        .unwrap_or_else(|e| panic!("starting the controller failed: {e}"))
}

/// A seed fixture from `shared/tests/fixtures/seed/`, moved to our API group.
pub fn seed_fixture(name: &str) -> String {
    let path = secretbridge_stack::harness::repo_root().join("shared/tests/fixtures/seed").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", path.display()))
        .replace("external-secrets.io/v1alpha1", secretbridge_shared::names::API_VERSION)
}

/// Unwraps with the controller's log tail in the panic message.
pub trait OrLogs<T> {
    /// Like `expect`, printing what the controller logged.
    fn or_logs(self, controller: &ControllerProcess, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrLogs<T> for Result<T, E> {
    fn or_logs(self, controller: &ControllerProcess, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{what}: {error}\n--- controller log tail ---\n{}", controller.log_tail()),
        }
    }
}

/// An error and its causes, as one line: a StackError's message alone does
/// not say what the API server answered.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
