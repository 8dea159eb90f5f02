//! GCP seeding with the stand-in's admin rights: secrets and versions,
//! service accounts, and the IAM grants Workload Identity needs.

use crate::{Stack, StackError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// `roles/secretmanager.secretAccessor`: read secret versions.
pub const SECRET_ACCESSOR: &str = "roles/secretmanager.secretAccessor";
/// `roles/iam.workloadIdentityUser`: mint tokens for a GSA as a federated KSA.
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

impl Stack {
    /// Creates a secret in the stack's project with one version per payload
    /// (versions 1, 2, ... in order; the last one is `latest`).
    pub fn seed_secret(&self, name: &str, payloads: &[&[u8]]) -> Result<(), StackError> {
        self.gcp()?
            .seed_secret(self.gcp_project(), name, payloads)
            .map_err(StackError::gcp(format!("seeding secret {name}")))
    }

    /// Adds a version to an existing secret through the REST API (as the
    /// admin); returns the new version's resource name.
    pub async fn add_secret_version(&self, name: &str, payload: &[u8]) -> Result<String, StackError> {
        let path = format!("/v1/projects/{}/secrets/{name}:addVersion", self.gcp_project());
        let body = json!({"payload": {"data": STANDARD.encode(payload)}});
        let answer = self.gcp_admin_call("POST", path, Some(body)).await?;
        Ok(answer["name"].as_str().unwrap_or_default().to_string())
    }

    /// Deletes a secret and all its versions.
    pub async fn delete_gcp_secret(&self, name: &str) -> Result<(), StackError> {
        let path = format!("/v1/projects/{}/secrets/{name}", self.gcp_project());
        self.gcp_admin_call("DELETE", path, None).await.map(|_| ())
    }

    /// Disables one version (`projects/P/secrets/S/versions/N`); reads of it then fail.
    pub async fn disable_secret_version(&self, name: &str, version: u32) -> Result<(), StackError> {
        let path = format!("/v1/projects/{}/secrets/{name}/versions/{version}:disable", self.gcp_project());
        self.gcp_admin_call("POST", path, Some(json!({}))).await.map(|_| ())
    }

    /// Creates a GCP service account in the stack's project; returns its email.
    pub fn create_gsa(&self, account_id: &str) -> Result<String, StackError> {
        self.gcp()?
            .seed_service_account(self.gcp_project(), account_id)
            .map_err(StackError::gcp(format!("creating service account {account_id}")))
    }

    /// The IAM member a Kubernetes ServiceAccount is federated as:
    /// `serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]`.
    pub fn ksa_member(&self, namespace: &str, service_account: &str) -> String {
        format!("serviceAccount:{}[{namespace}/{service_account}]", self.workload_pool())
    }

    /// Lets the federated KSA impersonate the GSA (`roles/iam.workloadIdentityUser` on the GSA).
    pub fn grant_workload_identity_user(&self, gsa_email: &str, namespace: &str, service_account: &str) -> Result<(), StackError> {
        let resource = format!("projects/{}/serviceAccounts/{gsa_email}", self.gcp_project());
        let member = self.ksa_member(namespace, service_account);
        self.gcp()?
            .grant(&resource, WORKLOAD_IDENTITY_USER, &member)
            .map_err(StackError::gcp(format!("granting {member} workloadIdentityUser on {gsa_email}")))
    }

    /// Grants `member` (e.g. `serviceAccount:EMAIL` or [`Stack::ksa_member`])
    /// `roles/secretmanager.secretAccessor` on one secret.
    pub fn grant_secret_accessor(&self, secret: &str, member: &str) -> Result<(), StackError> {
        let resource = format!("projects/{}/secrets/{secret}", self.gcp_project());
        self.gcp()?
            .grant(&resource, SECRET_ACCESSOR, member)
            .map_err(StackError::gcp(format!("granting {member} secretAccessor on {secret}")))
    }

    async fn gcp_admin_call(&self, method: &'static str, path: String, body: Option<Value>) -> Result<Value, StackError> {
        let standin = self.gcp()?;
        let addr = standin.addr();
        let authorization = format!("Bearer {}", standin.admin_token());
        let action = format!("{method} {path} on the GCP stand-in");
        let answer = tokio::task::spawn_blocking(move || {
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let headers = [("Authorization", authorization.as_str()), ("Content-Type", "application/json")];
            secretbridge_harness::http_request(addr, method, &path, &headers, &bytes)
        })
        .await
        .map_err(|e| StackError::Http { action: action.clone(), message: e.to_string() })?
        .map_err(|e| StackError::Http { action: action.clone(), message: e.to_string() })?;
        if !(200..300).contains(&answer.status) {
            return Err(StackError::Http { action, message: format!("HTTP {}: {}", answer.status, answer.text()) });
        }
        Ok(serde_json::from_str(&answer.text()).unwrap_or(Value::Null))
    }
}
