//! Property paths into JSON values, in the subset of gjson syntax that ESO
//! manifests use: dotted keys (`name.first`), array indexes (`friends.1.first`)
//! and escaped dots (`a\.b` is the key `a.b`).
//!
//! A string leaf is returned as its text; any other leaf (number, bool, null,
//! object, array) as compact JSON, which is what ESO writes.

use serde_json::Value;

/// Why a property could not be read from a remote value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    /// The path was empty or had an empty segment such as `a..b`.
    #[error("property path {path:?} has an empty segment: write keys separated by single dots, e.g. \"db.password\"")]
    EmptySegment {
        /// The path as written.
        path: String,
    },
    /// The path ends with a lone backslash.
    #[error("property path {path:?} ends with a backslash: escape a dot as \"\\\\.\" and nothing else")]
    DanglingEscape {
        /// The path as written.
        path: String,
    },
    /// The remote value is not JSON, so no property can be read from it.
    #[error("property {path:?} cannot be read: the remote value is not JSON; remove `property` to use the whole value")]
    NotJson {
        /// The path as written.
        path: String,
    },
    /// A segment names a key or index that does not exist.
    #[error("property {path:?}: {segment:?} not found{detail}; check the path against the remote JSON")]
    NotFound {
        /// The path as written.
        path: String,
        /// The segment that did not resolve.
        segment: String,
        /// Extra context, e.g. the array length.
        detail: String,
    },
}

impl PropertyError {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PropertyError::EmptySegment { .. } | PropertyError::DanglingEscape { .. } => {
                "InvalidPropertyPath"
            }
            PropertyError::NotJson { .. } => "PropertyOfNonJson",
            PropertyError::NotFound { .. } => "PropertyNotFound",
        }
    }
}

/// Splits a path into its segments, unescaping `\.` (and `\\`).
pub fn parse_path(path: &str) -> Result<Vec<String>, PropertyError> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => {
                    return Err(PropertyError::DanglingEscape {
                        path: path.to_string(),
                    });
                }
            },
            '.' => {
                if current.is_empty() {
                    return Err(PropertyError::EmptySegment {
                        path: path.to_string(),
                    });
                }
                segments.push(std::mem::take(&mut current));
            }
            other => current.push(other),
        }
    }
    if current.is_empty() {
        return Err(PropertyError::EmptySegment {
            path: path.to_string(),
        });
    }
    segments.push(current);
    Ok(segments)
}

/// Reads `path` from a JSON document given as raw bytes.
pub fn extract_property(raw: &[u8], path: &str) -> Result<Vec<u8>, PropertyError> {
    let segments = parse_path(path)?;
    let document: Value = serde_json::from_slice(raw).map_err(|_| PropertyError::NotJson {
        path: path.to_string(),
    })?;
    let mut node = &document;
    for segment in &segments {
        node = match node {
            Value::Object(map) => map.get(segment).ok_or_else(|| PropertyError::NotFound {
                path: path.to_string(),
                segment: segment.clone(),
                detail: String::new(),
            })?,
            Value::Array(items) => {
                let index: usize = segment.parse().map_err(|_| PropertyError::NotFound {
                    path: path.to_string(),
                    segment: segment.clone(),
                    detail: " (the value there is an array: use a number)".to_string(),
                })?;
                items.get(index).ok_or_else(|| PropertyError::NotFound {
                    path: path.to_string(),
                    segment: segment.clone(),
                    detail: format!(" (the array has {} items)", items.len()),
                })?
            }
            _ => {
                return Err(PropertyError::NotFound {
                    path: path.to_string(),
                    segment: segment.clone(),
                    detail: " (the value before it is not an object or array)".to_string(),
                });
            }
        };
    }
    Ok(leaf_bytes(node))
}

/// The bytes a JSON leaf is written as: a string's text, anything else as compact JSON.
pub fn leaf_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOC: &str = r#"{
        "name": {"first": "Tom", "last": "Anderson"},
        "age": 37,
        "children": ["Sara", "Alex", "Jack"],
        "fav.movie": "Deer Hunter",
        "friends": [
            {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
            {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]}
        ],
        "active": true,
        "nothing": null
    }"#;

    fn get(path: &str) -> Result<String, PropertyError> {
        extract_property(DOC.as_bytes(), path).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[test]
    fn reads_the_gjson_readme_paths() {
        assert_eq!(get("name.last").as_deref(), Ok("Anderson"));
        assert_eq!(get("age").as_deref(), Ok("37"));
        assert_eq!(get("children.1").as_deref(), Ok("Alex"));
        assert_eq!(get("friends.1.last").as_deref(), Ok("Craig"));
        assert_eq!(get("friends.0.nets.2").as_deref(), Ok("tw"));
        assert_eq!(get(r"fav\.movie").as_deref(), Ok("Deer Hunter"));
    }

    #[test]
    fn non_string_leaves_are_compact_json() {
        assert_eq!(get("children").as_deref(), Ok(r#"["Sara","Alex","Jack"]"#));
        assert_eq!(get("name").as_deref(), Ok(r#"{"first":"Tom","last":"Anderson"}"#));
        assert_eq!(get("active").as_deref(), Ok("true"));
        assert_eq!(get("nothing").as_deref(), Ok("null"));
    }

    #[test]
    fn errors_name_the_path_and_the_segment() {
        let missing = get("name.middle");
        assert!(matches!(&missing, Err(PropertyError::NotFound { segment, .. }) if segment == "middle"));
        let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("name.middle"), "{message}");
        assert!(matches!(get("children.3"), Err(PropertyError::NotFound { detail, .. }) if detail.contains("3 items")));
        assert!(matches!(get("children.x"), Err(PropertyError::NotFound { .. })));
        assert!(matches!(get("age.x"), Err(PropertyError::NotFound { .. })));
        assert!(matches!(get("a..b"), Err(PropertyError::EmptySegment { .. })));
        assert!(matches!(get(""), Err(PropertyError::EmptySegment { .. })));
        assert!(matches!(get("a\\"), Err(PropertyError::DanglingEscape { .. })));
        assert!(matches!(
            extract_property(b"plain text", "a"),
            Err(PropertyError::NotJson { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(path in "\\PC{0,24}", doc in "\\PC{0,48}") {
            let _ = extract_property(doc.as_bytes(), &path);
            let _ = extract_property(DOC.as_bytes(), &path);
        }

        #[test]
        fn escaped_keys_round_trip(key in "[a-z.\\\\]{1,12}") {
            let escaped = key.replace('\\', "\\\\").replace('.', "\\.");
            let doc = serde_json::json!({ key.clone(): "v" }).to_string();
            prop_assert_eq!(extract_property(doc.as_bytes(), &escaped), Ok(b"v".to_vec()));
        }
    }
}
