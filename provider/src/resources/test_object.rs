//! `secretbridge_test_object`: a test-only resource that keeps a JSON file
//! per object in the directory named by `SECRETBRIDGE_TEST_OBJECT_DIR`, so
//! acceptance tests have something outside Terraform to change (drift).
//! Registered only when `SECRETBRIDGE_PROVIDER_TEST_RESOURCES=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plugin::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::plugin::resource::{ProviderContext, Resource};

/// Environment variable that switches the test resources on.
pub const ENABLE_ENV: &str = "SECRETBRIDGE_PROVIDER_TEST_RESOURCES";
/// Environment variable naming the directory the objects are stored in.
pub const DIR_ENV: &str = "SECRETBRIDGE_TEST_OBJECT_DIR";

/// A JSON file managed by Terraform, for the provider's own acceptance tests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TestObject {
    /// File name without `.json`. Changing it replaces the object.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9-]*$"), extend("x-terraform-requires-replace" = true))]
    pub name: String,
    /// Content stored in the file; a change updates it in place.
    pub content: String,
    /// A secret stored with the object; hidden in plans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-sensitive" = true))]
    pub secret: Option<String>,
    /// How the file is written.
    #[serde(default = "default_format")]
    pub format: TestFormat,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Who owns the object (a nested attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TestOwner>,
    /// A token handed to the object but never kept in Terraform state
    /// (write-only, Terraform 1.11+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-write-only" = true))]
    pub token_wo: Option<String>,
    /// Same as `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
    pub id: Option<String>,
    /// Write counter, bumped on every create or update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub revision: Option<i64>,
}

/// The owner of a test object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TestOwner {
    /// Team name.
    pub team: String,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// File layout of a test object.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestFormat {
    /// Indented JSON.
    #[default]
    Pretty,
    /// One-line JSON.
    Compact,
}

fn default_format() -> TestFormat {
    TestFormat::Pretty
}

/// What is stored in the file.
#[derive(Serialize, Deserialize)]
struct Stored {
    content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    format: TestFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<TestOwner>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    revision: i64,
}

/// The test resource.
#[derive(Debug, Default, Clone)]
pub struct TestObjectResource {
    dir: Option<PathBuf>,
}

impl TestObjectResource {
    /// Objects in the directory named by `SECRETBRIDGE_TEST_OBJECT_DIR` at call time.
    pub fn from_env() -> TestObjectResource {
        TestObjectResource { dir: None }
    }

    /// Objects in `dir` (in-process tests).
    pub fn in_dir(dir: impl Into<PathBuf>) -> TestObjectResource {
        TestObjectResource { dir: Some(dir.into()) }
    }

    fn file_of(&self, name: &str) -> Result<PathBuf, Diagnostics> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => dir_from_env()?,
        };
        Ok(dir.join(format!("{name}.json")))
    }
}

fn dir_from_env() -> Result<PathBuf, Diagnostics> {
    std::env::var_os(DIR_ENV).map(PathBuf::from).ok_or_else(|| {
        Diagnostic::error("Test object directory not set", format!("set {DIR_ENV} to a writable directory for secretbridge_test_object.")).into()
    })
}

fn io_error(action: &str, path: &std::path::Path, e: &std::io::Error) -> Diagnostics {
    Diagnostic::error(format!("Could not {action} test object file"), format!("{}: {e}", path.display())).into()
}

async fn load(path: PathBuf, name: &str) -> Result<Option<TestObject>, Diagnostics> {
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", &path, &e)),
    };
    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
        Diagnostics::from(Diagnostic::error("Corrupt test object file", format!("{}: {e}; delete the file and apply again.", path.display())))
    })?;
    Ok(Some(TestObject {
        name: name.to_owned(),
        content: stored.content,
        secret: stored.secret,
        format: stored.format,
        labels: stored.labels,
        owner: stored.owner,
        token_wo: None,
        id: Some(name.to_owned()),
        revision: Some(stored.revision),
    }))
}

async fn store(path: PathBuf, obj: &TestObject, revision: i64) -> Result<TestObject, Diagnostics> {
    let stored = Stored {
        content: obj.content.clone(),
        secret: obj.secret.clone(),
        format: obj.format,
        labels: obj.labels.clone(),
        owner: obj.owner.clone(),
        token: obj.token_wo.clone(),
        revision,
    };
    let text = match obj.format {
        TestFormat::Pretty => serde_json::to_vec_pretty(&stored),
        TestFormat::Compact => serde_json::to_vec(&stored),
    }
    .map_err(|e| Diagnostics::from(Diagnostic::from_error(&e)))?;
    tokio::fs::write(&path, text).await.map_err(|e| io_error("write", &path, &e))?;
    Ok(TestObject { id: Some(obj.name.clone()), revision: Some(revision), token_wo: None, ..obj.clone() })
}

impl Resource for TestObjectResource {
    type State = TestObject;

    fn type_name(&self) -> &'static str {
        "secretbridge_test_object"
    }

    fn validate(&self, config: &TestObject) -> Diagnostics {
        let mut diags = Diagnostics::default();
        if config.content.contains("forbidden") {
            diags.push(Diagnostic::attribute_error(
                AttrPath::root("content"),
                "Forbidden content",
                "content must not contain the word \"forbidden\"; choose other content.",
            ));
        }
        diags
    }

    async fn create(&self, _: &ProviderContext, planned: TestObject) -> Result<TestObject, Diagnostics> {
        let path = self.file_of(&planned.name)?;
        if load(path.clone(), &planned.name).await?.is_some() {
            return Err(Diagnostic::error(
                "Test object already exists",
                format!("{} already exists; import it with `terraform import` instead.", planned.name),
            )
            .into());
        }
        store(path, &planned, 1).await
    }

    async fn read(&self, _: &ProviderContext, current: TestObject) -> Result<Option<TestObject>, Diagnostics> {
        load(self.file_of(&current.name)?, &current.name).await
    }

    async fn update(&self, _: &ProviderContext, prior: TestObject, planned: TestObject) -> Result<TestObject, Diagnostics> {
        store(self.file_of(&planned.name)?, &planned, prior.revision.unwrap_or(0) + 1).await
    }

    async fn delete(&self, _: &ProviderContext, prior: TestObject) -> Result<(), Diagnostics> {
        let path = self.file_of(&prior.name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", &path, &e)),
        }
    }

    async fn import(&self, _: &ProviderContext, id: String) -> Result<TestObject, Diagnostics> {
        load(self.file_of(&id)?, &id).await?.ok_or_else(|| {
            Diagnostic::error("Cannot import non-existent test object", format!("no file {id}.json in {DIR_ENV}; check the ID.")).into()
        })
    }
}

/// Data source model: look a test object up by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TestObjectData {
    /// File name without `.json`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Content stored in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub content: Option<String>,
    /// Write counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true))]
    pub revision: Option<i64>,
}

/// The test data source (same storage as [`TestObjectResource`]).
#[derive(Debug, Default, Clone)]
pub struct TestObjectDataSource {
    objects: TestObjectResource,
}

impl TestObjectDataSource {
    /// Objects in the directory named by `SECRETBRIDGE_TEST_OBJECT_DIR` at call time.
    pub fn from_env() -> TestObjectDataSource {
        TestObjectDataSource { objects: TestObjectResource::from_env() }
    }

    /// Objects in `dir` (in-process tests).
    pub fn in_dir(dir: impl Into<PathBuf>) -> TestObjectDataSource {
        TestObjectDataSource { objects: TestObjectResource::in_dir(dir) }
    }
}

impl crate::plugin::resource::DataSource for TestObjectDataSource {
    type Model = TestObjectData;

    fn type_name(&self) -> &'static str {
        "secretbridge_test_object"
    }

    async fn read(&self, _: &ProviderContext, config: TestObjectData) -> Result<TestObjectData, Diagnostics> {
        let found = load(self.objects.file_of(&config.name)?, &config.name).await?.ok_or_else(|| {
            Diagnostics::from(Diagnostic::attribute_error(
                AttrPath::root("name"),
                "Test object not found",
                format!("no test object named {:?}; create it first or fix the name.", config.name),
            ))
        })?;
        Ok(TestObjectData { name: config.name, content: Some(found.content), revision: found.revision })
    }
}

/// Ephemeral test token: a value that must never reach plan or state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TestToken {
    /// Prefix of the generated token.
    #[schemars(length(min = 1))]
    pub prefix: String,
    /// The generated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-sensitive" = true))]
    pub token: Option<String>,
}

/// `secretbridge_test_token`, the test ephemeral resource.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestTokenEphemeral;

impl crate::plugin::resource::EphemeralResource for TestTokenEphemeral {
    type Model = TestToken;

    fn type_name(&self) -> &'static str {
        "secretbridge_test_token"
    }

    async fn open(&self, _: &ProviderContext, config: TestToken) -> Result<TestToken, Diagnostics> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let token = format!("{}-{:x}-{}", config.prefix, nanos, std::process::id());
        Ok(TestToken { token: Some(token), ..config })
    }
}
