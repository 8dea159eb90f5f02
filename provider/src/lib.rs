//! Terraform provider (tfplugin6) that wires cloud access for secretbridge.
