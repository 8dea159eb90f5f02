//! Status conditions shared by stores and ExternalSecrets, with the reason
//! codes ESO uses so dashboards and `kubectl wait` carry over.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The one condition type secretbridge sets.
pub const READY: &str = "Ready";

/// Reason codes of the `Ready` condition. They are bounded and stable, so they
/// double as metric labels.
pub mod reason {
    /// The target Secret holds the current remote data.
    pub const SECRET_SYNCED: &str = "SecretSynced";
    /// The last sync failed; the message names the key and the backend error.
    pub const SECRET_SYNCED_ERROR: &str = "SecretSyncedError";
    /// The target Secret was deleted because the remote keys are gone
    /// (`deletionPolicy: Delete`).
    pub const SECRET_DELETED: &str = "SecretDeleted";
    /// A store's configuration was validated and credentials obtained.
    pub const STORE_VALID: &str = "Valid";
    /// A store's configuration is wrong; the message names the field.
    pub const INVALID_PROVIDER_CONFIG: &str = "InvalidProviderConfig";
    /// A store could not obtain credentials.
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
}

/// Status of a condition, as Kubernetes writes it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// One observation of an object's state (`status.conditions[]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type; secretbridge sets `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason code, e.g. `SecretSynced` or `SecretSyncedError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail: what failed and what to do. Never holds secret values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl Condition {
    /// A `Ready` condition with the given status, reason and message.
    pub fn ready(status: ConditionStatus, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: READY.to_string(),
            status,
            reason: Some(reason.to_string()),
            message: Some(message.into()),
            last_transition_time: None,
        }
    }

    /// Whether two conditions say the same thing, ignoring the transition
    /// time; writers use it to avoid rewriting an unchanged status.
    pub fn same_observation(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
    }
}

/// Finds the `Ready` condition in a list.
pub fn find_ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}
