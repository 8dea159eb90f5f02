//! `decodingStrategy` and `dataFrom.extract`: turning fetched remote values
//! into the bytes written to Secret keys.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secretbridge_shared::DecodingStrategy;
use std::collections::BTreeMap;

/// Base64 engines that accept input with or without `=` padding, as remote
/// values are written both ways.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Why a fetched value could not be decoded or extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `decodingStrategy: Base64` or `Base64URL` on a value that is not base64.
    #[error("value of {key:?} is not valid {strategy}: store it encoded or set decodingStrategy to None or Auto")]
    NotBase64 {
        /// The remote key (or extracted key).
        key: String,
        /// The strategy that failed.
        strategy: &'static str,
    },
    /// `dataFrom.extract` on a value that is not a JSON object.
    #[error("dataFrom.extract of {key:?} needs a JSON object, but the remote value is {found}; use `data` with the whole value instead")]
    NotAnObject {
        /// The remote key.
        key: String,
        /// What was found (e.g. `not JSON`, `a JSON array`).
        found: &'static str,
    },
}

impl DecodeError {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::NotBase64 { .. } => "DecodingFailed",
            DecodeError::NotAnObject { .. } => "ExtractNotAnObject",
        }
    }
}

/// Applies a decoding strategy to a fetched value; `key` names it in errors.
pub fn decode(key: &str, value: Vec<u8>, strategy: DecodingStrategy) -> Result<Vec<u8>, DecodeError> {
    let trimmed = value.trim_ascii();
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => {
            STANDARD_LENIENT
                .decode(trimmed)
                .map_err(|_| DecodeError::NotBase64 {
                    key: key.to_string(),
                    strategy: "Base64",
                })
        }
        DecodingStrategy::Base64Url => {
            URL_SAFE_LENIENT
                .decode(trimmed)
                .map_err(|_| DecodeError::NotBase64 {
                    key: key.to_string(),
                    strategy: "Base64URL",
                })
        }
        DecodingStrategy::Auto => match STANDARD_LENIENT.decode(trimmed) {
            Ok(decoded) => Ok(decoded),
            Err(_) => match URL_SAFE_LENIENT.decode(trimmed) {
                Ok(decoded) => Ok(decoded),
                Err(_) => Ok(value),
            },
        },
    }
}

/// `dataFrom.extract`: each top-level key of a JSON object becomes a Secret
/// key; string values are written as text, others as compact JSON. The
/// decoding strategy applies to each value.
pub fn extract_object(
    key: &str,
    raw: &[u8],
    strategy: DecodingStrategy,
) -> Result<BTreeMap<String, Vec<u8>>, DecodeError> {
    let document: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| DecodeError::NotAnObject {
            key: key.to_string(),
            found: "not JSON",
        })?;
    let serde_json::Value::Object(map) = document else {
        return Err(DecodeError::NotAnObject {
            key: key.to_string(),
            found: match document {
                serde_json::Value::Array(_) => "a JSON array",
                serde_json::Value::String(_) => "a JSON string",
                serde_json::Value::Number(_) => "a JSON number",
                serde_json::Value::Bool(_) => "a JSON boolean",
                _ => "JSON null",
            },
        });
    };
    map.into_iter()
        .map(|(name, value)| {
            let bytes = crate::property::leaf_bytes(&value);
            let decoded = decode(&format!("{key}.{name}"), bytes, strategy)?;
            Ok((name, decoded))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_decode_as_documented() {
        assert_eq!(decode("k", b"aGVsbG8=".to_vec(), DecodingStrategy::None), Ok(b"aGVsbG8=".to_vec()));
        assert_eq!(decode("k", b"aGVsbG8=".to_vec(), DecodingStrategy::Base64), Ok(b"hello".to_vec()));
        assert_eq!(decode("k", b"aGVsbG8".to_vec(), DecodingStrategy::Base64), Ok(b"hello".to_vec()));
        // 0xfb 0xff encodes to "+/8" in standard and "-_8" in URL-safe base64.
        assert_eq!(decode("k", b"-_8=".to_vec(), DecodingStrategy::Base64Url), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode("k", b"+/8=".to_vec(), DecodingStrategy::Auto), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode("k", b"-_8=".to_vec(), DecodingStrategy::Auto), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode("k", b"not base64!".to_vec(), DecodingStrategy::Auto), Ok(b"not base64!".to_vec()));
    }

    #[test]
    fn strict_strategies_name_the_key() {
        let error = decode("/app/key", b"%%%".to_vec(), DecodingStrategy::Base64);
        assert_eq!(
            error,
            Err(DecodeError::NotBase64 { key: "/app/key".into(), strategy: "Base64" })
        );
        assert!(decode("k", b"+/8=".to_vec(), DecodingStrategy::Base64Url).is_err());
    }

    #[test]
    fn extract_turns_an_object_into_keys() {
        let raw = br#"{"user":"admin","port":5432,"tls":{"on":true}}"#;
        let keys = extract_object("db", raw, DecodingStrategy::None);
        let expected: BTreeMap<String, Vec<u8>> = [
            ("port".to_string(), b"5432".to_vec()),
            ("tls".to_string(), br#"{"on":true}"#.to_vec()),
            ("user".to_string(), b"admin".to_vec()),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys, Ok(expected));
        let encoded = extract_object("db", br#"{"a":"aGk="}"#, DecodingStrategy::Base64);
        assert_eq!(encoded.ok().and_then(|m| m.get("a").cloned()), Some(b"hi".to_vec()));
    }

    #[test]
    fn extract_refuses_non_objects() {
        assert!(matches!(
            extract_object("db", b"[1]", DecodingStrategy::None),
            Err(DecodeError::NotAnObject { found: "a JSON array", .. })
        ));
        assert!(matches!(
            extract_object("db", b"plain", DecodingStrategy::None),
            Err(DecodeError::NotAnObject { found: "not JSON", .. })
        ));
    }
}
