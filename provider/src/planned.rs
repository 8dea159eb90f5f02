//! What this provider process has seen planned: the objects the current
//! Terraform run declares, recorded by each resource's plan hook
//! ([`crate::plugin::resource::Resource::modify_plan`]) so that resources
//! planned later can check themselves against them before anything is
//! applied (the namespace pitfall: ExternalSecret → store → ServiceAccount
//! → IAM trust).
//!
//! Terraform starts one provider process per operation (plan, apply,
//! refresh), so the registry holds one run's configuration. It plans a
//! resource after the resources its configuration *references*; two
//! resources with no reference between them may be planned in any order,
//! or at the same time, so a check that finds nothing here must say that a
//! reference would order the plan.
//!
//! Values still unknown at plan time ("known after apply") are recorded as
//! [`Known::Unknown`]: a check never concludes a mismatch from them.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// A planned value that may not be known until apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known<T> {
    /// The value the plan will apply.
    Value(T),
    /// Known only after apply (it references a computed attribute).
    Unknown,
}

impl<T> Known<T> {
    /// The value, if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Known::Value(v) => Some(v),
            Known::Unknown => None,
        }
    }
}

/// A planned `secretbridge_service_account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Every annotation it will carry, the cloud ones included.
    pub annotations: BTreeMap<String, Known<String>>,
    /// False when the annotation map itself is unknown, so a missing key
    /// proves nothing.
    pub annotations_complete: bool,
}

/// Which backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreProviderKind {
    /// AWS SSM Parameter Store or Secrets Manager.
    Aws,
    /// GCP Secret Manager.
    GcpSm,
}

/// The ServiceAccount a store authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedServiceAccountRef {
    /// Name of the ServiceAccount.
    pub name: Known<String>,
    /// The namespace the reference names, if it names one.
    pub namespace: Option<Known<String>>,
}

/// A planned `secretbridge_secret_store` (namespace set) or
/// `secretbridge_cluster_secret_store` (namespace `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStore {
    /// Namespace of a SecretStore; `None` for a ClusterSecretStore.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Backend, when known.
    pub provider: Option<StoreProviderKind>,
    /// The ServiceAccount it authenticates as, if it uses one.
    pub service_account: Option<PlannedServiceAccountRef>,
}

/// A planned `secretbridge_aws_irsa_role` and the ServiceAccount its trust admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedIrsaRole {
    /// Role name.
    pub name: String,
    /// Role ARN, usually known only after apply.
    pub arn: Known<String>,
    /// Namespace in the trust's `sub` condition.
    pub namespace: Known<String>,
    /// ServiceAccount name in the trust's `sub` condition.
    pub service_account: Known<String>,
}

/// A planned `secretbridge_gcp_workload_identity`: a GSA that a KSA may act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWorkloadIdentity {
    /// The GSA's email.
    pub gsa: Known<String>,
    /// The KSA's namespace.
    pub namespace: Known<String>,
    /// The KSA's name.
    pub service_account: Known<String>,
}

/// Everything recorded so far.
#[derive(Debug, Clone, Default)]
pub struct PlannedSet {
    /// ServiceAccounts by (namespace, name).
    pub service_accounts: BTreeMap<(String, String), PlannedServiceAccount>,
    /// SecretStores by (namespace, name).
    pub secret_stores: BTreeMap<(String, String), PlannedStore>,
    /// ClusterSecretStores by name.
    pub cluster_stores: BTreeMap<String, PlannedStore>,
    /// IRSA roles by name.
    pub irsa_roles: BTreeMap<String, PlannedIrsaRole>,
    /// Workload Identity bindings, in the order they were planned.
    pub workload_identities: Vec<PlannedWorkloadIdentity>,
    /// The remote-key prefix of each planned store, by (namespace, name)
    /// (namespace `None` for a ClusterSecretStore): what the controller puts
    /// before every key, so `remote_refs` names what it reads.
    pub store_prefixes: BTreeMap<(Option<String>, String), Known<Option<String>>>,
}

/// The per-process registry; cheap to share (`Arc` in the provider context).
#[derive(Debug, Default)]
pub struct PlannedObjects {
    inner: Mutex<PlannedSet>,
}

impl PlannedObjects {
    fn lock(&self) -> MutexGuard<'_, PlannedSet> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> PlannedSet {
        self.lock().clone()
    }

    /// Records a planned ServiceAccount (replacing an earlier record of it).
    pub fn record_service_account(&self, sa: PlannedServiceAccount) {
        self.lock()
            .service_accounts
            .insert((sa.namespace.clone(), sa.name.clone()), sa);
    }

    /// The planned ServiceAccount `namespace/name`.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<PlannedServiceAccount> {
        self.lock()
            .service_accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Planned ServiceAccounts whose annotation `key` is `value` (or unknown
    /// when `include_unknown`).
    pub fn service_accounts_annotated(
        &self,
        key: &str,
        value: &str,
        include_unknown: bool,
    ) -> Vec<PlannedServiceAccount> {
        self.lock()
            .service_accounts
            .values()
            .filter(|sa| match sa.annotations.get(key) {
                Some(Known::Value(v)) => v == value,
                Some(Known::Unknown) => include_unknown,
                None => false,
            })
            .cloned()
            .collect()
    }

    /// Records a planned SecretStore (`namespace` set) or ClusterSecretStore.
    pub fn record_store(&self, store: PlannedStore) {
        let mut set = self.lock();
        match &store.namespace {
            Some(ns) => {
                set.secret_stores
                    .insert((ns.clone(), store.name.clone()), store);
            }
            None => {
                set.cluster_stores.insert(store.name.clone(), store);
            }
        }
    }

    /// Records the remote-key prefix of a planned store.
    pub fn record_store_prefix(&self, namespace: Option<&str>, name: &str, prefix: Known<Option<String>>) {
        self.lock().store_prefixes.insert((namespace.map(str::to_owned), name.to_owned()), prefix);
    }

    /// The remote-key prefix of the planned store `namespace/name`, if planned.
    pub fn store_prefix(&self, namespace: Option<&str>, name: &str) -> Option<Known<Option<String>>> {
        self.lock().store_prefixes.get(&(namespace.map(str::to_owned), name.to_owned())).cloned()
    }

    /// Planned SecretStores called `name`, in any namespace.
    pub fn secret_stores_named(&self, name: &str) -> Vec<PlannedStore> {
        self.lock()
            .secret_stores
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The planned ClusterSecretStore `name`.
    pub fn cluster_store(&self, name: &str) -> Option<PlannedStore> {
        self.lock().cluster_stores.get(name).cloned()
    }

    /// Records a planned IRSA role.
    pub fn record_irsa_role(&self, role: PlannedIrsaRole) {
        self.lock().irsa_roles.insert(role.name.clone(), role);
    }

    /// The planned IRSA role with this ARN, or, since ARNs are often known
    /// only after apply, with the name the ARN ends in (`.../role/NAME`).
    pub fn irsa_role_for_arn(&self, arn: &str) -> Option<PlannedIrsaRole> {
        let set = self.lock();
        if let Some(r) = set
            .irsa_roles
            .values()
            .find(|r| r.arn.known().is_some_and(|a| a == arn))
        {
            return Some(r.clone());
        }
        let name = arn.rsplit('/').next()?;
        set.irsa_roles
            .get(name)
            .filter(|r| r.arn == Known::Unknown)
            .cloned()
    }

    /// Records a planned Workload Identity binding.
    pub fn record_workload_identity(&self, binding: PlannedWorkloadIdentity) {
        let mut set = self.lock();
        set.workload_identities.retain(|b| b != &binding);
        set.workload_identities.push(binding);
    }

    /// Planned Workload Identity bindings for the GSA `gsa`.
    pub fn workload_identities_for_gsa(&self, gsa: &str) -> Vec<PlannedWorkloadIdentity> {
        self.lock()
            .workload_identities
            .iter()
            .filter(|b| b.gsa.known().is_some_and(|g| g == gsa))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Known<String> {
        Known::Value(s.to_owned())
    }

    #[test]
    fn records_are_found_by_their_keys() {
        let reg = PlannedObjects::default();
        reg.record_service_account(PlannedServiceAccount {
            namespace: "app".into(),
            name: "db".into(),
            annotations: [(
                "eks.amazonaws.com/role-arn".to_owned(),
                k("arn:aws:iam::1:role/db"),
            )]
            .into(),
            annotations_complete: true,
        });
        assert!(reg.service_account("app", "db").is_some());
        assert!(reg.service_account("default", "db").is_none());
        assert_eq!(
            reg.service_accounts_annotated(
                "eks.amazonaws.com/role-arn",
                "arn:aws:iam::1:role/db",
                false
            )
            .len(),
            1
        );
        assert!(
            reg.service_accounts_annotated(
                "eks.amazonaws.com/role-arn",
                "arn:aws:iam::1:role/other",
                true
            )
            .is_empty()
        );

        reg.record_store(PlannedStore {
            namespace: Some("default".into()),
            name: "aws".into(),
            provider: Some(StoreProviderKind::Aws),
            service_account: None,
        });
        reg.record_store(PlannedStore {
            namespace: None,
            name: "global".into(),
            provider: None,
            service_account: None,
        });
        assert_eq!(reg.secret_stores_named("aws").len(), 1);
        assert!(reg.cluster_store("global").is_some());
        assert!(
            reg.cluster_store("aws").is_none(),
            "a namespaced store is no cluster store"
        );

        reg.record_irsa_role(PlannedIrsaRole {
            name: "db".into(),
            arn: Known::Unknown,
            namespace: k("app"),
            service_account: k("db"),
        });
        assert_eq!(
            reg.irsa_role_for_arn("arn:aws:iam::1:role/team/db")
                .map(|r| r.name),
            Some("db".to_owned()),
            "by name while the ARN is unknown"
        );
        reg.record_irsa_role(PlannedIrsaRole {
            name: "db".into(),
            arn: k("arn:aws:iam::1:role/db"),
            namespace: k("app"),
            service_account: k("db"),
        });
        assert!(
            reg.irsa_role_for_arn("arn:aws:iam::2:role/db").is_none(),
            "a known ARN must match exactly"
        );

        let binding = PlannedWorkloadIdentity {
            gsa: k("a@p.iam.gserviceaccount.com"),
            namespace: k("app"),
            service_account: k("db"),
        };
        reg.record_workload_identity(binding.clone());
        reg.record_workload_identity(binding);
        assert_eq!(
            reg.workload_identities_for_gsa("a@p.iam.gserviceaccount.com")
                .len(),
            1,
            "re-planning records once"
        );
        assert_eq!(reg.snapshot().service_accounts.len(), 1);
    }
}
