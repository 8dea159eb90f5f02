//! A GCP stand-in (IAM, Resource Manager, Secret Manager, token exchange) for tests.
