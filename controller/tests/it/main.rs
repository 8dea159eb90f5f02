//! Integration tests of the controller binary: `convert` as a user runs it,
//! and the generated CRD and flag references under `docs/`.

mod convert_cli;
mod docs;
