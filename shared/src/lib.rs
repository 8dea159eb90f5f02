//! The one spec of secretbridge.
//!
//! Types only: the CRDs the controller reconciles (`SecretStore`,
//! `ClusterSecretStore`, `ExternalSecret`, group `secretbridge.io/v1`, with
//! ESO's v1 field names), the shapes of the Terraform resources, and the names
//! both halves must agree on. The CRD YAML, the Terraform schemas and the docs
//! are generated from these types, and their doc comments become the
//! descriptions everywhere. Nothing here does IO.

pub mod condition;
pub mod crd;
pub mod duration;
pub mod external_secret;
pub mod names;
pub mod rules;
pub mod store;
pub mod terraform;

pub use condition::{Condition, ConditionStatus};
pub use external_secret::{
    CreationPolicy, DecodingStrategy, DeletionPolicy, ExternalSecret, ExternalSecretData,
    ExternalSecretDataFrom, ExternalSecretSpec, ExternalSecretStatus, ExternalSecretTarget,
    ExternalSecretTemplate, RefreshPolicy, RemoteRef, SecretStoreRef, StoreKind,
};
pub use store::{
    AwsAuth, AwsJwtAuth, AwsProvider, AwsService, ClusterSecretStore, ClusterSecretStoreCondition,
    ClusterSecretStoreSpec, GcpSmAuth, GcpSmProvider, GcpWorkloadIdentity, RetrySettings,
    SecretStore, SecretStoreSpec, SecretStoreStatus, ServiceAccountSelector, StoreProvider,
};
