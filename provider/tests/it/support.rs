//! Shared helpers: an in-process provider server and value builders.

use std::collections::BTreeMap;
use std::path::PathBuf;

use terraform_provider_secretbridge::plugin::proto::tfplugin6::DynamicValue;
use terraform_provider_secretbridge::plugin::value::{self, Type, Value};

/// A string value.
pub fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// An object value from pairs.
pub fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<BTreeMap<_, _>>())
}

/// Encodes `v` as msgpack for `ty`.
pub fn dv(v: &Value, ty: &Type) -> Option<DynamicValue> {
    Some(DynamicValue { msgpack: value::to_msgpack(v, ty).expect("encodes"), json: Vec::new() })
}

/// Decodes a DynamicValue.
pub fn undv(d: Option<DynamicValue>, ty: &Type) -> Value {
    let d = d.expect("a value");
    value::from_msgpack(&d.msgpack, ty).expect("decodes")
}

/// The provider binary the tests drive: the one in
/// `SECRETBRIDGE_PREBUILT_BIN_DIR` when that directory holds it (`make test`
/// points it at this very build, `make bench` at its release-built copy),
/// otherwise the one cargo built beside this test binary.
pub fn provider_bin() -> PathBuf {
    const NAME: &str = "terraform-provider-secretbridge";
    std::env::var_os(secretbridge_harness::PREBUILT_BIN_DIR_ENV)
        .map(|dir| PathBuf::from(dir).join(NAME))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-secretbridge")))
}
