//! In-cluster controller that syncs cloud secrets into Kubernetes Secrets.
