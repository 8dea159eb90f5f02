//! `meta.k8s.io/v1` Table output for custom resources, from the CRD's `additionalPrinterColumns`
//! (kubectl asks for Tables and prints the columns; built-in kinds fall back to kubectl's own printers).

use serde_json::{Value, json};

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1")
    })
}

/// Evaluates the small JSONPath subset printer columns use: `.a.b`, `.a[0].b`, `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            current = current.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let selector = &after[..end];
            rest = &after[end + 1..];
            current = if let Some(filter) = selector.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (key, expected) = filter.split_once("==")?;
                let expected = expected.trim().trim_matches('"').trim_matches('\'');
                current
                    .as_array()?
                    .iter()
                    .find(|item| item.get(key.trim()).and_then(Value::as_str) == Some(expected))?
            } else {
                current.as_array()?.get(selector.parse::<usize>().ok()?)?
            };
        } else {
            return None;
        }
    }
    Some(current)
}

/// kubectl's `HumanDuration` (k8s.io/apimachinery/pkg/util/duration).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", s % 60) }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 { format!("{}d", h / 24) } else { format!("{}d{}h", h / 24, h % 24) }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        let y = h / (24 * 365);
        let d = (h / 24) % 365;
        if d == 0 { format!("{y}y") } else { format!("{y}y{d}d") }
    } else {
        format!("{}y", h / (24 * 365))
    }
}

fn age(timestamp: &Value) -> Value {
    let Some(ts) = timestamp.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return Value::Null;
    };
    json!(human_duration(jiff::Timestamp::now().as_second() - ts.as_second()))
}

/// Renders objects as a Table using the printer columns of a CRD version.
pub fn to_table(items: &[Value], printer_columns: &[Value], resource_version: &str) -> Value {
    let mut columns = vec![json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0})];
    let mut paths = vec![(".metadata.name".to_string(), "string".to_string())];
    let defaults = [json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})];
    let declared = if printer_columns.is_empty() { &defaults[..] } else { printer_columns };
    for column in declared {
        let kind = column["type"].as_str().unwrap_or("string").to_string();
        columns.push(json!({
            "name": column["name"],
            "type": kind,
            "format": column["format"].as_str().unwrap_or_default(),
            "description": column["description"].as_str().unwrap_or_default(),
            "priority": column["priority"].as_i64().unwrap_or(0),
        }));
        paths.push((column["jsonPath"].as_str().unwrap_or_default().to_string(), kind));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let cells: Vec<Value> = paths
                .iter()
                .map(|(path, kind)| match json_path(item, path) {
                    Some(v) if kind == "date" => age(v),
                    Some(v) => v.clone(),
                    None => Value::Null,
                })
                .collect();
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_and_ages() {
        let object = json!({"status": {"conditions": [{"type": "Other", "reason": "x"}, {"type": "Ready", "reason": "Synced"}]}, "spec": {"list": [{"n": 1}]}});
        assert_eq!(json_path(&object, ".status.conditions[?(@.type==\"Ready\")].reason"), Some(&json!("Synced")));
        assert_eq!(json_path(&object, ".spec.list[0].n"), Some(&json!(1)));
        assert_eq!(json_path(&object, ".spec.missing"), None);
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
