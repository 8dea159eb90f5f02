//! Generated protocol types (see `provider/proto/`).
#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// Terraform plugin protocol 6 messages and the `Provider` service.
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's stdio, controller and broker services.
pub mod go_plugin {
    tonic::include_proto!("plugin");
}

/// The standard gRPC health service.
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}
