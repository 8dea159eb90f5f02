//! Shared helpers: an in-process provider server and value builders.

use std::collections::BTreeMap;

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
