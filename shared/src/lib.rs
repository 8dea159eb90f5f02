//! The one spec of secretbridge: CRD and Terraform resource types, no IO.
