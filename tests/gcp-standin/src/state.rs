//! The stand-in's in-memory world: projects, service accounts, secrets, tokens,
//! IAM policies, call counters and injected faults.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

use crate::ProjectSpec;
use crate::auth::Principal;
use crate::http::ApiError;
use crate::iam::StoredPolicy;

/// The error an injected fault answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCode {
    /// HTTP 503 `UNAVAILABLE`.
    Unavailable,
    /// HTTP 429 `RESOURCE_EXHAUSTED` (throttling).
    ResourceExhausted,
}

pub(crate) struct Fault {
    pub(crate) method: Option<String>,
    pub(crate) code: FaultCode,
    pub(crate) remaining: u32,
}

pub(crate) struct ServiceAccount {
    pub(crate) project: String,
    pub(crate) email: String,
    pub(crate) unique_id: String,
    pub(crate) display_name: String,
    pub(crate) description: String,
    pub(crate) etag_counter: u64,
    pub(crate) policy: StoredPolicy,
}

/// The state of one secret version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionState {
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VersionState::Enabled => "ENABLED",
            VersionState::Disabled => "DISABLED",
            VersionState::Destroyed => "DESTROYED",
        }
    }
}

pub(crate) struct SecretVersion {
    pub(crate) number: u64,
    pub(crate) create_time: String,
    pub(crate) destroy_time: Option<String>,
    pub(crate) state: VersionState,
    pub(crate) data: Vec<u8>,
    pub(crate) client_checksum: bool,
    pub(crate) etag_counter: u64,
}

pub(crate) struct Secret {
    pub(crate) create_time: String,
    pub(crate) replication: Value,
    pub(crate) labels: Value,
    pub(crate) annotations: Value,
    pub(crate) versions: Vec<SecretVersion>,
    pub(crate) etag_counter: u64,
    pub(crate) policy: StoredPolicy,
}

pub(crate) struct State {
    pub(crate) projects: Vec<ProjectSpec>,
    pub(crate) project_policies: BTreeMap<String, StoredPolicy>,
    /// Keyed by email.
    pub(crate) service_accounts: BTreeMap<String, ServiceAccount>,
    /// Keyed by (project ID, secret ID).
    pub(crate) secrets: BTreeMap<(String, String), Secret>,
    pub(crate) tokens: HashMap<String, (Principal, Instant)>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) calls: BTreeMap<String, u64>,
    /// The email the metadata server issues tokens for; `None`: no service
    /// account attached (404).
    pub(crate) metadata_service_account: Option<String>,
    counter: u64,
}

/// RFC 3339 with nanoseconds, UTC, as GCP's JSON timestamps.
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

impl State {
    pub(crate) fn new(projects: &[ProjectSpec]) -> Self {
        let mut state = Self {
            projects: Vec::new(),
            project_policies: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
            secrets: BTreeMap::new(),
            tokens: HashMap::new(),
            faults: Vec::new(),
            calls: BTreeMap::new(),
            metadata_service_account: None,
            counter: 0,
        };
        for project in projects {
            state.add_project(project);
        }
        state
    }

    pub(crate) fn add_project(&mut self, project: &ProjectSpec) {
        if self.project(&project.id).is_none() {
            self.projects.push(project.clone());
            self.project_policies.insert(project.id.clone(), StoredPolicy::default());
        }
    }

    /// A process-unique, increasing number for etags and IDs.
    pub(crate) fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Finds a project by ID or number.
    pub(crate) fn project(&self, id_or_number: &str) -> Option<&ProjectSpec> {
        self.projects
            .iter()
            .find(|project| project.id == id_or_number || project.number.to_string() == id_or_number)
    }

    /// Counts a call and pops an injected fault for it, if one is armed.
    pub(crate) fn record_call(&mut self, rpc: &str) -> Option<ApiError> {
        *self.calls.entry(rpc.to_owned()).or_default() += 1;
        let fault = self
            .faults
            .iter_mut()
            .find(|fault| fault.remaining > 0 && fault.method.as_deref().is_none_or(|method| method == rpc))?;
        fault.remaining -= 1;
        let code = fault.code;
        self.faults.retain(|fault| fault.remaining > 0);
        Some(match code {
            FaultCode::Unavailable => ApiError::new(503, "UNAVAILABLE", "The service is currently unavailable (injected fault)."),
            FaultCode::ResourceExhausted => ApiError::new(
                429,
                "RESOURCE_EXHAUSTED",
                format!("Quota exceeded for quota metric '{rpc} requests' (injected fault)."),
            ),
        })
    }

    pub(crate) fn create_service_account(
        &mut self,
        project: &str,
        account_id: &str,
        display_name: String,
        description: String,
    ) -> Result<&ServiceAccount, ApiError> {
        let Some(project) = self.project(project).cloned() else {
            return Err(ApiError::denied(project.to_owned()));
        };
        let valid_chars = account_id.starts_with(|c: char| c.is_ascii_lowercase())
            && account_id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && account_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(6..=30).contains(&account_id.len()) || !valid_chars {
            return Err(ApiError::invalid(format!(
                "Invalid account ID '{account_id}': it must be 6 to 30 characters and match the regexp [a-z]([-a-z0-9]*[a-z0-9])."
            )));
        }
        let email = format!("{account_id}@{}.iam.gserviceaccount.com", project.id);
        if self.service_accounts.contains_key(&email) {
            return Err(ApiError::exists(format!(
                "Service account {account_id} already exists within project projects/{}.",
                project.id
            )));
        }
        let counter = self.next_counter();
        let unique_id = format!("1{:020}", project.number.wrapping_mul(1_000_000).wrapping_add(counter));
        let account = ServiceAccount {
            project: project.id.clone(),
            email: email.clone(),
            unique_id,
            display_name,
            description,
            etag_counter: counter,
            policy: StoredPolicy::default(),
        };
        Ok(self.service_accounts.entry(email).or_insert(account))
    }

    /// Finds a service account by email or unique ID.
    pub(crate) fn service_account_key(&self, email_or_id: &str) -> Option<String> {
        if self.service_accounts.contains_key(email_or_id) {
            return Some(email_or_id.to_owned());
        }
        self.service_accounts
            .values()
            .find(|account| account.unique_id == email_or_id)
            .map(|account| account.email.clone())
    }

    pub(crate) fn seed_secret(&mut self, project: &str, secret_id: &str, payloads: &[&[u8]]) -> Result<(), ApiError> {
        let Some(project) = self.project(project).cloned() else {
            return Err(ApiError::denied(project.to_owned()));
        };
        let key = (project.id.clone(), secret_id.to_owned());
        if self.secrets.contains_key(&key) {
            return Err(ApiError::exists(format!("Secret [{secret_id}] already exists.")));
        }
        let etag_counter = self.next_counter();
        let mut secret = Secret {
            create_time: now_rfc3339(),
            replication: serde_json::json!({"automatic": {}}),
            labels: Value::Null,
            annotations: Value::Null,
            versions: Vec::new(),
            etag_counter,
            policy: StoredPolicy::default(),
        };
        for (index, payload) in payloads.iter().enumerate() {
            let etag_counter = self.next_counter();
            secret.versions.push(SecretVersion {
                number: index as u64 + 1,
                create_time: now_rfc3339(),
                destroy_time: None,
                state: VersionState::Enabled,
                data: payload.to_vec(),
                client_checksum: false,
                etag_counter,
            });
        }
        self.secrets.insert(key, secret);
        Ok(())
    }

    /// Adds a member to a role on `projects/P`, `projects/P/serviceAccounts/E` or
    /// `projects/P/secrets/S`.
    pub(crate) fn grant(&mut self, resource: &str, role: &str, member: &str) -> Result<(), ApiError> {
        let parts: Vec<&str> = resource.split('/').collect();
        let project_id = match parts.get(1).and_then(|project| self.project(project)) {
            Some(project) => project.id.clone(),
            None => return Err(ApiError::denied(resource.to_owned())),
        };
        let policy = match parts.as_slice() {
            ["projects", _] => self.project_policies.get_mut(&project_id),
            ["projects", _, "serviceAccounts", email] => {
                let key = self.service_account_key(email);
                key.and_then(|key| self.service_accounts.get_mut(&key)).map(|account| &mut account.policy)
            }
            ["projects", _, "secrets", secret] => {
                self.secrets.get_mut(&(project_id, (*secret).to_owned())).map(|secret| &mut secret.policy)
            }
            _ => return Err(ApiError::invalid(format!("unsupported resource {resource}"))),
        };
        match policy {
            Some(policy) => policy.grant(role, member),
            None => Err(ApiError::not_found(format!("{resource} not found"))),
        }
    }
}
