//! Compiles the tfplugin6, go-plugin and health protos with the system protoc
//! (Debian `protobuf-compiler`, installed by `make setup`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/tfplugin6.proto",
            "proto/go_plugin.proto",
            "proto/health.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
