//! A Kubernetes API server stand-in for tests, speaking the real REST API.
