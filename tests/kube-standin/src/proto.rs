//! Decoding of the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`) for the
//! built-in kinds kubectl's typed commands send (`kubectl create serviceaccount|token|secret|...`).
//! Field numbers are those of `k8s.io/api/*/generated.proto`; unknown fields are skipped.

use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    RepStr,
    StrMap,
    BytesMap,
    Msg(&'static [Field]),
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, Kind);

const OWNER_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];
const META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (11, "labels", Kind::StrMap),
    (12, "annotations", Kind::StrMap),
    (13, "ownerReferences", Kind::RepMsg(OWNER_REF)),
    (14, "finalizers", Kind::RepStr),
];
const OBJECT_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "namespace", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
];
const LOCAL_REF: &[Field] = &[(1, "name", Kind::Str)];
const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(META)),
    (2, "data", Kind::BytesMap),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::StrMap),
    (5, "immutable", Kind::Bool),
];
const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Msg(META)),
    (2, "data", Kind::StrMap),
    (3, "binaryData", Kind::BytesMap),
    (4, "immutable", Kind::Bool),
];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", Kind::Msg(META)),
    (2, "secrets", Kind::RepMsg(OBJECT_REF)),
    (3, "imagePullSecrets", Kind::RepMsg(LOCAL_REF)),
    (4, "automountServiceAccountToken", Kind::Bool),
];
const NAMESPACE_SPEC: &[Field] = &[(1, "finalizers", Kind::RepStr)];
const NAMESPACE: &[Field] = &[(1, "metadata", Kind::Msg(META)), (2, "spec", Kind::Msg(NAMESPACE_SPEC))];
const BOUND_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "apiVersion", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
];
const TOKEN_SPEC: &[Field] = &[
    (1, "audiences", Kind::RepStr),
    (3, "boundObjectRef", Kind::Msg(BOUND_REF)),
    (4, "expirationSeconds", Kind::Int),
];
const TOKEN_REQUEST: &[Field] = &[(1, "metadata", Kind::Msg(META)), (2, "spec", Kind::Msg(TOKEN_SPEC))];
const POLICY_RULE: &[Field] = &[
    (1, "verbs", Kind::RepStr),
    (2, "apiGroups", Kind::RepStr),
    (3, "resources", Kind::RepStr),
    (4, "resourceNames", Kind::RepStr),
    (5, "nonResourceURLs", Kind::RepStr),
];
const ROLE: &[Field] = &[(1, "metadata", Kind::Msg(META)), (2, "rules", Kind::RepMsg(POLICY_RULE))];
const SUBJECT: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "apiGroup", Kind::Str),
    (3, "name", Kind::Str),
    (4, "namespace", Kind::Str),
];
const ROLE_REF: &[Field] = &[(1, "apiGroup", Kind::Str), (2, "kind", Kind::Str), (3, "name", Kind::Str)];
const BINDING: &[Field] = &[
    (1, "metadata", Kind::Msg(META)),
    (2, "subjects", Kind::RepMsg(SUBJECT)),
    (3, "roleRef", Kind::Msg(ROLE_REF)),
];

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(slice)
    }

    /// Next (field number, wire type, payload); varints come back as their value's bytes.
    fn field(&mut self) -> Option<(u64, Payload<'a>)> {
        let key = self.varint()?;
        let payload = match key & 7 {
            0 => Payload::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Payload::Skip
            },
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Payload::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Payload::Skip
            },
            _ => return None,
        };
        Some((key >> 3, payload))
    }
}

enum Payload<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skip,
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Option<(String, Value)> {
    let mut r = Reader { bytes: b, pos: 0 };
    let mut key = String::new();
    let mut value = Value::String(String::new());
    while r.pos < b.len() {
        match r.field()? {
            (1, Payload::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, Payload::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v));
            }
            (2, Payload::Bytes(v)) => value = text(v),
            _ => {}
        }
    }
    Some((key, value))
}

fn decode_message(b: &[u8], fields: &[Field]) -> Option<Value> {
    let mut out = Map::new();
    let mut r = Reader { bytes: b, pos: 0 };
    while r.pos < b.len() {
        let (number, payload) = r.field()?;
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| *n == number) else {
            continue;
        };
        let name = name.to_string();
        match (kind, payload) {
            // Generated protobuf code writes empty strings too; JSON omits them.
            (Kind::Str, Payload::Bytes([])) => {}
            (Kind::Str, Payload::Bytes(v)) => {
                out.insert(name, text(v));
            }
            (Kind::Int, Payload::Varint(v)) => {
                out.insert(name, json!(v as i64));
            }
            (Kind::Bool, Payload::Varint(v)) => {
                out.insert(name, json!(v != 0));
            }
            (Kind::RepStr, Payload::Bytes(v)) => {
                let list = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(text(v));
                }
            }
            (Kind::StrMap | Kind::BytesMap, Payload::Bytes(v)) => {
                let (k, val) = map_entry(v, matches!(kind, Kind::BytesMap))?;
                let map = out.entry(name).or_insert_with(|| json!({}));
                map[k] = val;
            }
            (Kind::Msg(sub), Payload::Bytes(v)) => {
                out.insert(name, decode_message(v, sub)?);
            }
            (Kind::RepMsg(sub), Payload::Bytes(v)) => {
                let item = decode_message(v, sub)?;
                let list = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(item);
                }
            }
            _ => {}
        }
    }
    Some(Value::Object(out))
}

/// Decodes a protobuf-encoded object (with the `k8s\0` envelope) into JSON.
/// `None` when the bytes are malformed or the kind is not one this stand-in understands.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(b"k8s\x00")?;
    let mut r = Reader { bytes: envelope, pos: 0 };
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    while r.pos < envelope.len() {
        match r.field()? {
            (1, Payload::Bytes(type_meta)) => {
                let tm = decode_message(type_meta, &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)])?;
                api_version = tm["apiVersion"].as_str().unwrap_or_default().to_string();
                kind = tm["kind"].as_str().unwrap_or_default().to_string();
            }
            (2, Payload::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let schema = match kind.as_str() {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Namespace" => NAMESPACE,
        "TokenRequest" => TOKEN_REQUEST,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => BINDING,
        _ => return None,
    };
    let mut object = decode_message(raw, schema)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Some(object)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_service_account_envelope() {
        let meta = [field(1, b"bot"), field(3, b"ns")].concat();
        let raw = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"ServiceAccount")].concat();
        let body = [b"k8s\x00".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let object = decode(&body).unwrap();
        assert_eq!(object["metadata"]["name"], "bot");
        assert_eq!(object["metadata"]["namespace"], "ns");
        assert_eq!(object["kind"], "ServiceAccount");
    }
}
