//! Structural-schema handling for custom resources: pruning, defaulting and validation,
//! in the order kube-apiserver applies them (prune and default while decoding, then validate).

use serde_json::{Map, Value, json};

use crate::status::FieldError;

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn is_int_or_string(schema: &Value) -> bool {
    schema["x-kubernetes-int-or-string"].as_bool() == Some(true)
}

/// Drops fields the schema does not specify (unless preserved) and nulls of non-nullable fields.
pub fn prune(value: &mut Value, schema: &Value, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = preserves_unknown(schema)
                || schema.get("additionalProperties") == Some(&Value::Bool(true));
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if root && (key == "apiVersion" || key == "kind" || key == "metadata") {
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(additional);
                match sub {
                    Some(sub) => {
                        let drop_null = map.get(&key).is_some_and(Value::is_null)
                            && sub["nullable"].as_bool() != Some(true);
                        if drop_null {
                            map.remove(&key);
                        } else if let Some(child) = map.get_mut(&key) {
                            prune(child, sub, false);
                        }
                    }
                    None if keep_unknown => {}
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default` values of absent fields, recursively.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (key, sub) in props {
                    if !map.contains_key(key)
                        && let Some(default) = sub.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(child, sub);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(child, additional);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn body_path(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

/// Validates a custom resource (minus metadata) against its schema.
pub fn validate(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() && schema["nullable"].as_bool() == Some(true) {
        return;
    }
    if is_int_or_string(schema) {
        if !(value.is_string() || type_name(value) == "integer") {
            errors.push(FieldError::type_invalid(
                path,
                &json!(type_name(value)),
                &format!(
                    "{} in body must be of type integer,string: {:?}",
                    body_path(path),
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(expected) = schema["type"].as_str() {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(FieldError::type_invalid(
                path,
                &json!(actual),
                &format!("{} in body must be of type {expected}: {actual:?}", body_path(path)),
            ));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(FieldError::not_supported(path, value, allowed));
    }
    match value {
        Value::String(s) => validate_string(s, value, schema, path, errors),
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"].as_bool() == Some(true);
                if (exclusive && v <= min) || (!exclusive && v < min) {
                    let rel = if exclusive { "greater than" } else { "greater than or equal to" };
                    errors.push(FieldError::invalid(
                        path,
                        value,
                        &format!("{} in body should be {rel} {}", body_path(path), schema["minimum"]),
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"].as_bool() == Some(true);
                if (exclusive && v >= max) || (!exclusive && v > max) {
                    let rel = if exclusive { "less than" } else { "less than or equal to" };
                    errors.push(FieldError::invalid(
                        path,
                        value,
                        &format!("{} in body should be {rel} {}", body_path(path), schema["maximum"]),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                errors.push(FieldError::invalid(
                    path,
                    value,
                    &format!("{} in body should have at least {min} items", body_path(path)),
                ));
            }
            if let Some(max) = schema["maxItems"].as_u64()
                && (items.len() as u64) > max
            {
                errors.push(FieldError::invalid(
                    path,
                    value,
                    &format!("{} in body should have at most {max} items", body_path(path)),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item, item_schema, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => validate_object(map, schema, path, errors),
        _ => {}
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[combinator].as_array() {
            let valid = alternatives
                .iter()
                .filter(|alt| {
                    let mut sub = Vec::new();
                    validate(value, alt, path, &mut sub);
                    sub.is_empty()
                })
                .count();
            let failed = if combinator == "oneOf" { valid != 1 } else { valid == 0 };
            if failed {
                let what = if combinator == "oneOf" {
                    "must validate one and only one schema (oneOf)"
                } else {
                    "must validate at least one schema (anyOf)"
                };
                errors.push(FieldError::invalid(
                    path,
                    value,
                    &format!("{} in body {what}", body_path(path)),
                ));
            }
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for alt in all {
            validate(value, alt, path, errors);
        }
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema["minLength"].as_u64()
        && len < min
    {
        errors.push(FieldError::invalid(
            path,
            value,
            &format!("{} in body should be at least {min} chars long", body_path(path)),
        ));
    }
    if let Some(max) = schema["maxLength"].as_u64()
        && len > max
    {
        errors.push(FieldError::invalid(
            path,
            value,
            &format!("{} in body should be at most {max} chars long", body_path(path)),
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match regex::Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => errors.push(FieldError::invalid(
                path,
                value,
                &format!("{} in body should match '{pattern}'", body_path(path)),
            )),
            _ => {}
        }
    }
}

fn validate_object(map: &Map<String, Value>, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(key) = required.as_str()
            && !map.contains_key(key)
        {
            errors.push(FieldError::required(&child_path(path, key), ""));
        }
    }
    let props = schema["properties"].as_object();
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if path.is_empty() && (key == "apiVersion" || key == "kind" || key == "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(key)) {
            validate(child, sub, &child_path(path, key), errors);
        } else if let Some(sub) = additional {
            validate(child, sub, &child_path(path, key), errors);
        }
    }
    if let Some(min) = schema["minProperties"].as_u64()
        && (map.len() as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            &Value::Object(map.clone()),
            &format!("{} in body should have at least {min} properties", body_path(path)),
        ));
    }
}
