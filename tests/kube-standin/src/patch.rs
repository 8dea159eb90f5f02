//! Patches (JSON, merge, strategic merge) and field ownership for server-side apply.
//!
//! Ownership is tracked per manager as a set of leaf field paths. Maps are recursed into;
//! `metadata.finalizers` (a set) and `metadata.ownerReferences` (keyed by uid) are associative,
//! one leaf per element (`v:"x"`, `k:{"uid":"..."}` path components, as in `fieldsV1`); every
//! other list is atomic (one leaf), as CRD lists without `x-kubernetes-list-type` are.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A field path: the map keys from the object root to a leaf.
pub type FieldPath = Vec<String>;
/// A set of owned leaf paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// Metadata fields that are not tracked by field management.
const UNTRACKED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Applies a strategic merge patch for built-in kinds.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        if let Some(m) = replaced.as_object_mut() {
            m.remove("$patch");
        }
        *target = replaced;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if let Some(list_key) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(remove)) =
                (target_map.get_mut(list_key), value)
            {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Array(items) => {
                let existing = target_map.entry(key.clone()).or_insert(Value::Null);
                merge_list(key, existing, items);
            }
            Value::Object(_) => {
                let existing = target_map
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                strategic_merge(existing, value);
            }
            other => {
                target_map.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The patch merge key of the lists our built-in kinds carry (from the Kubernetes API types).
fn merge_key(list: &str) -> Option<&'static str> {
    match list {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env"
        | "imagePullSecrets" | "secrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

fn merge_list(key: &str, existing: &mut Value, patch_items: &[Value]) {
    if key == "finalizers" {
        let mut merged = existing.as_array().cloned().unwrap_or_default();
        for item in patch_items {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        *existing = Value::Array(merged);
        return;
    }
    let Some(merge_key) = merge_key(key) else {
        *existing = Value::Array(patch_items.to_vec());
        return;
    };
    let mut merged = existing.as_array().cloned().unwrap_or_default();
    for item in patch_items {
        let id = &item[merge_key];
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        let position = merged.iter().position(|m| &m[merge_key] == id);
        match (position, delete) {
            (Some(i), true) => {
                merged.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut merged[i], item),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item);
                merged.push(fresh);
            }
        }
    }
    *existing = Value::Array(merged);
}

/// The leaf paths of an object that field management tracks.
pub fn tracked_leaves(object: &Value, include_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(map) = object {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "status" if !include_status => {}
                "metadata" => {
                    if let Value::Object(meta) = value {
                        for (mk, mv) in meta {
                            if !UNTRACKED_METADATA.contains(&mk.as_str()) {
                                collect_leaves(mv, vec!["metadata".into(), mk.clone()], &mut out);
                            }
                        }
                    }
                }
                _ => collect_leaves(value, vec![key.clone()], &mut out),
            }
        }
    }
    out
}

/// The path component of one element of an associative list, if the list at `list_path` is one.
fn element_component(list_path: &[String], item: &Value) -> Option<String> {
    match (list_path, item) {
        ([m, f], Value::String(_)) if m == "metadata" && f == "finalizers" => Some(format!("v:{item}")),
        ([m, o], Value::Object(fields)) if m == "metadata" && o == "ownerReferences" => {
            fields.get("uid").map(|uid| format!("k:{}", json!({"uid": uid})))
        }
        _ => None,
    }
}

fn is_element(component: &str) -> bool {
    component.starts_with("k:") || component.starts_with("v:")
}

/// Whether a list item is the element a `k:`/`v:` component names.
fn element_matches(component: &str, item: &Value) -> bool {
    if let Some(value) = component.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item);
    }
    if let Some(keys) = component.strip_prefix("k:") {
        return serde_json::from_str::<Value>(keys)
            .ok()
            .and_then(|k| k.as_object().cloned())
            .is_some_and(|k| k.iter().all(|(name, v)| item.get(name) == Some(v)));
    }
    false
}

fn collect_leaves(value: &Value, path: FieldPath, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let mut child = path.clone();
                child.push(k.clone());
                collect_leaves(v, child, out);
            }
        }
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|i| element_component(&path, i).is_some()) =>
        {
            for item in items {
                if let Some(component) = element_component(&path, item) {
                    let mut child = path.clone();
                    child.push(component);
                    out.insert(child);
                }
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = object;
    for key in path {
        current = match current {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) if is_element(key) => items.iter().find(|i| element_matches(key, i))?,
            _ => return None,
        };
    }
    Some(current)
}

/// Sets a value at a path, creating intermediate maps (and list elements).
pub fn set_at(object: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *object = value;
        return;
    };
    if is_element(first) {
        if !object.is_array() {
            *object = Value::Array(Vec::new());
        }
        if let Value::Array(items) = object {
            let index = match items.iter().position(|i| element_matches(first, i)) {
                Some(i) => i,
                None => {
                    items.push(Value::Null);
                    items.len() - 1
                }
            };
            set_at(&mut items[index], rest, value);
        }
        return;
    }
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    if let Value::Object(map) = object {
        let slot = map.entry(first.clone()).or_insert(Value::Null);
        if !rest.is_empty() && slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        set_at(slot, rest, value);
    }
}

/// Removes the value at a path (and maps or lists left empty by the removal, below the top level).
pub fn remove_at(object: &mut Value, path: &[String]) {
    remove_inner(object, path, 0);
}

fn remove_inner(current: &mut Value, path: &[String], depth: usize) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let emptied = |v: &Value| match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match current {
        Value::Object(map) => {
            if rest.is_empty() {
                map.remove(first);
            } else if let Some(child) = map.get_mut(first) {
                remove_inner(child, rest, depth + 1);
                if depth >= 1 && emptied(child) {
                    map.remove(first);
                }
            }
        }
        Value::Array(items) if is_element(first) => {
            if let Some(i) = items.iter().position(|item| element_matches(first, item)) {
                if rest.is_empty() {
                    items.remove(i);
                } else {
                    remove_inner(&mut items[i], rest, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Renders a field set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut current = &mut root;
        for key in path {
            let Some(map) = current.as_object_mut() else {
                break;
            };
            let field = if is_element(key) { key.clone() } else { format!("f:{key}") };
            current = map.entry(field).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

/// Parses `fieldsV1` into leaf paths. Keys other than `f:` (list element keys) end the path there.
pub fn from_fields_v1(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_fields(fields, Vec::new(), &mut out);
    out
}

fn walk_fields(node: &Value, path: FieldPath, out: &mut FieldSet) {
    let Some(map) = node.as_object() else {
        return;
    };
    let known = |k: &String| k.starts_with("f:") || is_element(k) || k == ".";
    let only_known = map.keys().all(known);
    if map.is_empty() || !only_known || map.contains_key(".") {
        if !path.is_empty() {
            out.insert(path.clone());
        }
        if !only_known || map.is_empty() {
            return;
        }
    }
    for (key, child) in map {
        let component = match key.strip_prefix("f:") {
            Some(name) => name.to_string(),
            None if is_element(key) => key.clone(),
            None => continue,
        };
        let mut next = path.clone();
        next.push(component);
        walk_fields(child, next, out);
    }
}

/// Renders a path like structured-merge-diff does (`.spec.target.name`).
pub fn render_path(path: &[String]) -> String {
    path.iter()
        .map(|k| {
            if let Some(value) = k.strip_prefix("v:") {
                format!("[={value}]")
            } else if let Some(keys) = k.strip_prefix("k:") {
                let fields: Vec<String> = serde_json::from_str::<Map<String, Value>>(keys)
                    .map(|m| m.iter().map(|(n, v)| format!("{n}={v}")).collect())
                    .unwrap_or_default();
                format!("[{}]", fields.join(","))
            } else {
                format!(".{k}")
            }
        })
        .collect()
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct ManagerEntry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version the manager used.
    pub api_version: String,
    /// Timestamp.
    pub time: String,
    /// Subresource (`status`) or empty.
    pub subresource: String,
    /// Owned leaves.
    pub fields: FieldSet,
}

impl ManagerEntry {
    /// Reads the entries of an object.
    pub fn read_all(object: &Value) -> Vec<ManagerEntry> {
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| ManagerEntry {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation: e["operation"].as_str().unwrap_or_default().to_string(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                fields: from_fields_v1(&e["fieldsV1"]),
            })
            .collect()
    }

    /// Writes entries back (dropping empty ones, like the real server).
    pub fn write_all(object: &mut Value, entries: &[ManagerEntry]) {
        let rendered: Vec<Value> = entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager,
                    "operation": e.operation,
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields_v1(&e.fields),
                });
                if !e.subresource.is_empty() {
                    v["subresource"] = json!(e.subresource);
                }
                v
            })
            .collect();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if rendered.is_empty() {
                meta.remove("managedFields");
            } else {
                meta.insert("managedFields".into(), Value::Array(rendered));
            }
        }
    }

    /// How the real server names a manager in conflict messages.
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            if self.time.is_empty() {
                s = format!("{s} using {}", self.api_version);
            } else {
                s = format!("{s} using {} at {}", self.api_version, self.time);
            }
        }
        s
    }
}

/// Records a non-apply write: the writer owns every leaf it changed; removed leaves lose owners.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
    include_status: bool,
) {
    let mut entries = match old {
        Some(old) if new["metadata"].get("managedFields").is_none() => ManagerEntry::read_all(old),
        _ => ManagerEntry::read_all(new),
    };
    let new_leaves = tracked_leaves(new, include_status);
    let old_leaves = old.map(|o| tracked_leaves(o, include_status)).unwrap_or_default();
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_leaves.difference(&new_leaves).cloned().collect();
    for entry in &mut entries {
        entry.fields.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let position = entries.iter().position(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        });
        let entry = match position {
            Some(i) => &mut entries[i],
            None => {
                entries.push(ManagerEntry {
                    manager: manager.to_string(),
                    operation: "Update".into(),
                    api_version: api_version.to_string(),
                    time: String::new(),
                    subresource: subresource.to_string(),
                    fields: FieldSet::new(),
                });
                let last = entries.len() - 1;
                &mut entries[last]
            }
        };
        entry.fields.extend(changed);
        entry.time = now.to_string();
        entry.api_version = api_version.to_string();
    }
    ManagerEntry::write_all(new, &entries);
}

/// The outcome of a server-side apply merge.
pub enum ApplyOutcome {
    /// The merged object.
    Merged(Value),
    /// Conflicts with other managers: (manager as printed, path).
    Conflicts(Vec<(String, String)>),
}

/// Server-side apply of `config` by `manager` onto `live` (or onto nothing, for a create).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: &str,
    now: &str,
    include_status: bool,
) -> ApplyOutcome {
    let mut entries = live.map(ManagerEntry::read_all).unwrap_or_default();
    let applied = tracked_leaves(config, include_status);
    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for entry in &entries {
            if entry.manager == manager && entry.operation == "Apply" {
                continue;
            }
            for path in applied.intersection(&entry.fields) {
                if value_at(live, path) != value_at(config, path) {
                    conflicts.push((entry.printed(), render_path(path), path.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return ApplyOutcome::Conflicts(conflicts.into_iter().map(|(m, p, _)| (m, p)).collect());
    }
    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    // Forced: the other managers lose the conflicting fields.
    for (_, _, path) in &conflicts {
        for entry in &mut entries {
            if !(entry.manager == manager && entry.operation == "Apply") {
                entry.fields.remove(path);
            }
        }
    }
    let previously: FieldSet = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for dropped in previously.difference(&applied) {
        if !others.contains(dropped) {
            remove_at(&mut merged, dropped);
        }
    }
    for path in &applied {
        if let Some(value) = value_at(config, path) {
            let keep_existing = value.as_object().is_some_and(Map::is_empty)
                && value_at(&merged, path).is_some_and(Value::is_object);
            if !keep_existing {
                set_at(&mut merged, path, value.clone());
            }
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource));
    entries.push(ManagerEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: subresource.to_string(),
        fields: applied,
    });
    if merged.get("metadata").is_none() {
        merged["metadata"] = json!({});
    }
    ManagerEntry::write_all(&mut merged, &entries);
    ApplyOutcome::Merged(merged)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_leaf_paths() {
        let object = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v", "l": "w"}});
        let leaves = tracked_leaves(&object, false);
        assert_eq!(from_fields_v1(&to_fields_v1(&leaves)), leaves);
        assert!(leaves.contains(&vec!["metadata".to_string(), "labels".into(), "a".into()]));
        assert!(!leaves.iter().any(|p| p[1] == "name"));
    }

    #[test]
    fn finalizers_and_owner_references_are_associative() {
        let object = json!({"metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "u1", "name": "o"}]}});
        let leaves = tracked_leaves(&object, false);
        assert!(leaves.contains(&vec!["metadata".to_string(), "finalizers".into(), "v:\"a\"".into()]));
        assert!(leaves.contains(&vec!["metadata".to_string(), "ownerReferences".into(), "k:{\"uid\":\"u1\"}".into()]));
        assert_eq!(from_fields_v1(&to_fields_v1(&leaves)), leaves);
        let mut copy = object.clone();
        remove_at(&mut copy, &["metadata".to_string(), "finalizers".into(), "v:\"a\"".into()]);
        assert_eq!(copy["metadata"]["finalizers"], json!(["b"]));
        set_at(&mut copy, &["metadata".to_string(), "finalizers".into(), "v:\"c\"".into()], json!("c"));
        assert_eq!(copy["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(render_path(&["metadata".to_string(), "finalizers".into(), "v:\"c\"".into()]), ".metadata.finalizers[=\"c\"]");
    }

    #[test]
    fn strategic_merge_merges_lists_by_key_and_finalizers_as_sets() {
        let mut target = json!({"metadata": {"finalizers": ["a"]}, "secrets": [{"name": "s1"}]});
        strategic_merge(
            &mut target,
            &json!({"metadata": {"finalizers": ["b"]}, "secrets": [{"name": "s2"}]}),
        );
        assert_eq!(target["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(target["secrets"], json!([{"name": "s1"}, {"name": "s2"}]));
    }
}
