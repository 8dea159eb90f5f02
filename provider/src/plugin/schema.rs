//! Turns a Rust type's schemars JSON Schema into a tfplugin6 [`Schema`],
//! the cty [`Type`] Terraform will encode values with, and the plan-time
//! [`RuleTree`] (defaults, enums, patterns, requires-replace...).
//!
//! Convention (JSON Schema extension keys on properties, set with
//! `#[schemars(extend("x-terraform-computed" = true))]`):
//! - `x-terraform-computed`: Optional+Computed (the provider may fill it in);
//! - `x-terraform-computed-only`: Computed only (not settable);
//! - `x-terraform-sensitive`, `x-terraform-write-only`,
//!   `x-terraform-requires-replace`, `x-terraform-use-state-for-unknown`;
//! - `x-terraform-block`: render a nested object (or list/set/map of objects)
//!   as a block instead of a protocol-6 nested attribute;
//! - JSON Schema `default` is a plan-time default (the attribute becomes
//!   Optional+Computed); `enum`/`const`, `pattern`, `minLength`/`maxLength`,
//!   `minimum`/`maximum` are validated with attribute paths.

use std::collections::BTreeMap;

use serde_json::{Map, Value as J};

use super::proto::tfplugin6::{
    Schema, StringKind,
    schema::{Attribute, Block, NestedBlock, Object, nested_block, object},
};
use super::value::{Type, ValueError};

/// How nested objects are shaped in Terraform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// One object.
    Single,
    /// A list of objects.
    List,
    /// A set of objects.
    Set,
    /// A map of objects.
    Map,
}

/// Plan-time behaviour of one attribute, read from its annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrRules {
    /// Whether the attribute must be set in configuration.
    pub required: bool,
    /// Whether the provider may compute it (Optional+Computed or Computed).
    pub computed: bool,
    /// Computed only: configuration cannot set it.
    pub computed_only: bool,
    /// Hidden in plan output.
    pub sensitive: bool,
    /// Never stored in state or plan (Terraform 1.11+).
    pub write_only: bool,
    /// A change to it replaces the resource.
    pub requires_replace: bool,
    /// Keep the prior state's value instead of "known after apply".
    pub use_state_for_unknown: bool,
    /// Value planned when configuration leaves it null.
    pub default: Option<J>,
    /// Allowed values.
    pub allowed: Option<Vec<J>>,
    /// Regular expression a string must match.
    pub pattern: Option<String>,
    /// Minimum string length / collection size.
    pub min_length: Option<u64>,
    /// Maximum string length / collection size.
    pub max_length: Option<u64>,
    /// Minimum number.
    pub minimum: Option<f64>,
    /// Maximum number.
    pub maximum: Option<f64>,
    /// The attribute's description, quoted in validation errors so a bad
    /// value's diagnostic says what a good one looks like.
    pub description: String,
}

/// Rules for one attribute and, for nested objects, their attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrNode {
    /// This attribute's own rules.
    pub rules: AttrRules,
    /// The property name in the Rust model's JSON (the Terraform name is its snake_case form).
    pub json_name: String,
    /// Nested object attributes, with how they nest.
    pub nested: Option<(Nesting, RuleTree)>,
    /// Rendered as a block: an absent list, set or map of blocks is empty,
    /// never null, in Terraform's values.
    pub block: bool,
}

/// Rules for every attribute of a block, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleTree {
    /// Attribute (and block) name to its rules.
    pub attrs: BTreeMap<String, AttrNode>,
    /// Groups of attributes of which exactly one group must be set (from an
    /// enum of struct variants).
    pub one_of: Vec<Vec<String>>,
}

/// Internal marker carrying enum-variant groups from shape to block.
const ONE_OF_KEY: &str = "x-secretbridge-one-of";

/// The products of converting one Rust type.
#[derive(Debug, Clone)]
pub struct GeneratedSchema {
    /// What GetProviderSchema returns for it.
    pub schema: Schema,
    /// The object type Terraform encodes its values with.
    pub ty: Type,
    /// Plan and validation rules.
    pub rules: RuleTree,
}

/// Why a Rust model could not become a Terraform value.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model did not serialize to JSON.
    #[error(transparent)]
    Serialize(#[from] serde_json::Error),
    /// The JSON did not fit the schema's type.
    #[error(transparent)]
    Value(#[from] super::value::ValueError),
}

impl GeneratedSchema {
    /// A Terraform value as the Rust model this schema was generated from.
    pub fn to_model<M: serde::de::DeserializeOwned>(&self, v: &super::value::Value) -> Result<M, serde_json::Error> {
        serde_json::from_value(value_to_model_json(v, &self.rules))
    }

    /// A Rust model as a Terraform value of this schema's type.
    pub fn from_model<M: serde::Serialize>(&self, model: &M) -> Result<super::value::Value, ModelError> {
        Ok(model_json_to_value(&serde_json::to_value(model)?, &self.ty, &self.rules)?)
    }
}

/// Options for [`generate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SchemaOptions {
    /// Render every nested object at the top level as a block (provider
    /// configuration: `aws { ... }`), as if it had `x-terraform-block`.
    pub top_level_objects_as_blocks: bool,
}

/// Why a Rust type could not become a Terraform schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A `$ref` pointed nowhere.
    #[error("schema of {type_name}: unresolved reference {reference}; is the type deriving JsonSchema?")]
    UnresolvedRef {
        /// The Rust type being converted.
        type_name: String,
        /// The dangling reference.
        reference: String,
    },
    /// A JSON Schema construct with no Terraform equivalent.
    #[error("schema of {type_name}: property {path} uses {construct}, which has no Terraform equivalent; use a plain struct, Vec, BTreeMap or enum of strings")]
    Unsupported {
        /// The Rust type being converted.
        type_name: String,
        /// The property path.
        path: String,
        /// What was found.
        construct: String,
    },
}

/// Converts `T`'s JSON Schema to a Terraform schema at `version`.
pub fn generate<T: schemars::JsonSchema>(version: i64, options: SchemaOptions) -> Result<GeneratedSchema, SchemaError> {
    let root = schemars::schema_for!(T);
    let json = root.as_value().clone();
    generate_from_json(&T::schema_name(), &json, version, options)
}

/// Converts a JSON Schema document (schemars output) to a Terraform schema.
pub fn generate_from_json(
    type_name: &str,
    root: &J,
    version: i64,
    options: SchemaOptions,
) -> Result<GeneratedSchema, SchemaError> {
    let conv = Converter { type_name, root, options };
    let (block, ty, rules) = conv.block(root, &mut Vec::new(), true, false)?;
    Ok(GeneratedSchema { schema: Schema { version, block: Some(Block { version, ..block }) }, ty, rules })
}

struct Converter<'a> {
    type_name: &'a str,
    root: &'a J,
    options: SchemaOptions,
}

/// What a property's schema turned out to be, after resolving refs and nullability.
enum Shape {
    Primitive(Type),
    Object(J),
    Collection(Nesting, Box<Shape>),
}

impl Converter<'_> {
    fn unsupported(&self, path: &[String], construct: impl Into<String>) -> SchemaError {
        SchemaError::Unsupported { type_name: self.type_name.to_owned(), path: path.join("."), construct: construct.into() }
    }

    /// Follows `$ref` (also through a single-element `allOf`), merging the
    /// referring schema's own keys (description, extensions) over the target.
    fn resolve(&self, schema: &J) -> Result<J, SchemaError> {
        let Some(obj) = schema.as_object() else { return Ok(schema.clone()) };
        let target_ref = obj.get("$ref").and_then(J::as_str).map(str::to_owned).or_else(|| {
            obj.get("allOf")
                .and_then(J::as_array)
                .filter(|a| a.len() == 1)
                .and_then(|a| a[0].get("$ref"))
                .and_then(J::as_str)
                .map(str::to_owned)
        });
        let Some(reference) = target_ref else { return Ok(schema.clone()) };
        let pointer = reference.trim_start_matches('#');
        let target = self.root.pointer(pointer).ok_or_else(|| SchemaError::UnresolvedRef {
            type_name: self.type_name.to_owned(),
            reference: reference.clone(),
        })?;
        let mut merged = self.resolve(target)?;
        if let Some(m) = merged.as_object_mut() {
            for (k, v) in obj {
                if k != "$ref" && k != "allOf" {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(merged)
    }

    /// Strips `null` alternatives; returns the schema and whether it was nullable.
    fn strip_null(&self, schema: &J) -> Result<(J, bool), SchemaError> {
        let schema = self.resolve(schema)?;
        let Some(obj) = schema.as_object() else { return Ok((schema, false)) };
        if let Some(J::Array(types)) = obj.get("type") {
            let non_null: Vec<&J> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
            let nullable = non_null.len() != types.len();
            let mut copy = obj.clone();
            if non_null.len() == 1 {
                copy.insert("type".into(), non_null[0].clone());
            }
            return Ok((J::Object(copy), nullable));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(J::Array(alts)) = obj.get(key) {
                let non_null: Vec<&J> = alts.iter().filter(|a| a.get("type").and_then(J::as_str) != Some("null")).collect();
                if non_null.len() == 1 && alts.len() == 2 {
                    let (mut inner, _) = self.strip_null(non_null[0])?;
                    if let Some(m) = inner.as_object_mut() {
                        for (k, v) in obj {
                            if k != key {
                                m.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    return Ok((inner, true));
                }
            }
        }
        Ok((schema, false))
    }

    fn shape(&self, schema: &J, path: &[String]) -> Result<Shape, SchemaError> {
        let (schema, _) = self.strip_null(schema)?;
        if let Some(merged) = self.merge_object_alternatives(&schema)? {
            return Ok(Shape::Object(merged));
        }
        if let Some(values) = enum_values(&schema) {
            let ty = match values.first() {
                Some(J::Number(_)) => Type::Number,
                Some(J::Bool(_)) => Type::Bool,
                _ => Type::String,
            };
            return Ok(Shape::Primitive(ty));
        }
        let ty = schema.get("type").and_then(J::as_str).unwrap_or("");
        Ok(match ty {
            "string" => Shape::Primitive(Type::String),
            "integer" | "number" => Shape::Primitive(Type::Number),
            "boolean" => Shape::Primitive(Type::Bool),
            "array" => {
                let items = schema.get("items").ok_or_else(|| self.unsupported(path, "an array without items"))?;
                let nesting = if schema.get("uniqueItems") == Some(&J::Bool(true)) { Nesting::Set } else { Nesting::List };
                Shape::Collection(nesting, Box::new(self.shape(items, path)?))
            }
            "object" => {
                if schema.get("properties").is_some() {
                    Shape::Object(schema.clone())
                } else if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                    Shape::Collection(Nesting::Map, Box::new(self.shape(values, path)?))
                } else {
                    // Free-form JSON object.
                    Shape::Primitive(Type::Dynamic)
                }
            }
            "" if schema.as_object().is_some_and(|o| o.is_empty()) => Shape::Primitive(Type::Dynamic),
            "" if schema == J::Bool(true) => Shape::Primitive(Type::Dynamic),
            other => return Err(self.unsupported(path, format!("type {other:?} ({schema})"))),
        })
    }

    /// An enum of struct variants (serde's externally tagged `{"aws": {...}}`)
    /// is `oneOf` objects with one property each. Terraform has no sum
    /// types, so it becomes one object with every variant's properties
    /// optional, plus an exactly-one-of rule checked at plan time.
    fn merge_object_alternatives(&self, schema: &J) -> Result<Option<J>, SchemaError> {
        let Some(alts) = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(J::as_array) else {
            return Ok(None);
        };
        let mut properties = Map::new();
        let mut groups = Vec::new();
        for alt in alts {
            let alt = self.resolve(alt)?;
            let Some(props) = alt.get("properties").and_then(J::as_object) else { return Ok(None) };
            let mut group = Vec::new();
            for (k, v) in props {
                let mut prop = self.resolve(v)?;
                if let (Some(m), Some(d)) = (prop.as_object_mut(), alt.get("description")) {
                    m.entry("description").or_insert_with(|| d.clone());
                }
                properties.insert(k.clone(), prop);
                group.push(J::from(k.clone()));
            }
            groups.push(J::Array(group));
        }
        let mut merged = schema.as_object().cloned().unwrap_or_default();
        merged.remove("oneOf");
        merged.remove("anyOf");
        merged.insert("type".into(), J::from("object"));
        merged.insert("properties".into(), J::Object(properties));
        merged.insert(ONE_OF_KEY.into(), J::Array(groups));
        Ok(Some(J::Object(merged)))
    }

    fn shape_type(&self, shape: &Shape, path: &mut Vec<String>) -> Result<Type, SchemaError> {
        Ok(match shape {
            Shape::Primitive(t) => t.clone(),
            Shape::Object(schema) => self.block(schema, path, false, true)?.1,
            Shape::Collection(n, inner) => {
                let t = Box::new(self.shape_type(inner, path)?);
                match n {
                    Nesting::List => Type::List(t),
                    Nesting::Set => Type::Set(t),
                    Nesting::Map => Type::Map(t),
                    Nesting::Single => *t,
                }
            }
        })
    }

    /// Converts an object schema into a block: attributes, nested blocks,
    /// its object type and its rules.
    fn block(&self, schema: &J, path: &mut Vec<String>, top: bool, in_attribute: bool) -> Result<(Block, Type, RuleTree), SchemaError> {
        let schema = self.resolve(schema)?;
        let empty = Map::new();
        let props = schema.get("properties").and_then(J::as_object).unwrap_or(&empty);
        let required: Vec<&str> =
            schema.get("required").and_then(J::as_array).map(|a| a.iter().filter_map(J::as_str).collect()).unwrap_or_default();
        let mut block = Block {
            description: description(&schema),
            description_kind: StringKind::Markdown as i32,
            ..Block::default()
        };
        let mut types = BTreeMap::new();
        let mut rules = RuleTree {
            one_of: schema
                .get(ONE_OF_KEY)
                .and_then(J::as_array)
                .map(|groups| {
                    groups
                        .iter()
                        .map(|g| g.as_array().map(|names| names.iter().filter_map(J::as_str).map(snake_case).collect()).unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default(),
            ..RuleTree::default()
        };
        // Deterministic order: alphabetical by Terraform name, as Terraform prints them.
        let mut names: Vec<(String, &String)> = props.keys().map(|k| (snake_case(k), k)).collect();
        names.sort();
        for (tf_name, json_name) in names {
            let prop = &props[json_name];
            let name = &tf_name;
            path.push(name.clone());
            let (resolved, nullable) = self.strip_null(prop)?;
            let flag = |key: &str| resolved.get(key) == Some(&J::Bool(true));
            let mut r = AttrRules {
                computed_only: flag("x-terraform-computed-only"),
                sensitive: flag("x-terraform-sensitive"),
                write_only: flag("x-terraform-write-only"),
                requires_replace: flag("x-terraform-requires-replace"),
                use_state_for_unknown: flag("x-terraform-use-state-for-unknown"),
                default: resolved.get("default").filter(|d| !d.is_null()).cloned(),
                allowed: enum_values(&resolved),
                pattern: resolved.get("pattern").and_then(J::as_str).map(str::to_owned),
                min_length: resolved.get("minLength").or(resolved.get("minItems")).and_then(J::as_u64),
                max_length: resolved.get("maxLength").or(resolved.get("maxItems")).and_then(J::as_u64),
                minimum: resolved.get("minimum").and_then(J::as_f64),
                maximum: resolved.get("maximum").and_then(J::as_f64),
                description: description(&resolved),
                ..AttrRules::default()
            };
            r.computed = r.computed_only || flag("x-terraform-computed") || r.default.is_some();
            r.required = required.contains(&json_name.as_str()) && !nullable && !r.computed && r.default.is_none();
            let as_block = flag("x-terraform-block") || (top && self.options.top_level_objects_as_blocks);
            let shape = self.shape(&resolved, path)?;
            let desc = description(&resolved);

            let (object_schema, nesting) = match &shape {
                Shape::Object(s) => (Some(s.clone()), Nesting::Single),
                Shape::Collection(n, inner) => match &**inner {
                    Shape::Object(s) => (Some(s.clone()), *n),
                    _ => (None, Nesting::Single),
                },
                Shape::Primitive(_) => (None, Nesting::Single),
            };
            // Inside a nested attribute everything stays an attribute.
            let inner = match &object_schema {
                Some(obj_schema) => Some(self.block(obj_schema, path, false, in_attribute)?),
                None => None,
            };
            // Terraform 1.0.x crashes planning a nested attribute that the
            // configuration leaves null (its nested attributes were
            // experimental), so every object is a block except a required
            // object of plain values (`secret_store_ref = { name = ... }`).
            // A block has no default: an object default only tells reads
            // which block to leave out (see `drop_default_blocks`).
            let holds_objects = inner.as_ref().is_some_and(|(b, _, _)| !b.block_types.is_empty() || b.attributes.iter().any(|a| a.nested_type.is_some()));
            let as_block = !in_attribute && (as_block || (object_schema.is_some() && (!r.required || holds_objects)));
            match inner {
                Some((inner_block, inner_ty, inner_rules)) if as_block => {
                    r.computed = false;
                    let (mode, ty) = match nesting {
                        Nesting::Single => (nested_block::NestingMode::Single, inner_ty),
                        Nesting::List => (nested_block::NestingMode::List, Type::List(Box::new(inner_ty))),
                        Nesting::Set => (nested_block::NestingMode::Set, Type::Set(Box::new(inner_ty))),
                        Nesting::Map => (nested_block::NestingMode::Map, Type::Map(Box::new(inner_ty))),
                    };
                    block.block_types.push(NestedBlock {
                        type_name: name.clone(),
                        block: Some(Block { description: desc, ..inner_block }),
                        nesting: mode as i32,
                        // A required single block: Terraform wants MinItems and
                        // MaxItems equal (both 1) in NestingSingle mode.
                        min_items: i64::from(r.required && nesting == Nesting::Single),
                        max_items: i64::from(r.required && nesting == Nesting::Single),
                    });
                    types.insert(name.clone(), ty);
                    rules.attrs.insert(name.clone(), AttrNode { rules: r, json_name: json_name.clone(), nested: Some((nesting, inner_rules)), block: true });
                }
                Some((inner_block, inner_ty, inner_rules)) => {
                    // No blocks in here: an object holding objects is a block
                    // itself, and inside an attribute everything is an attribute.
                    let (mode, ty) = match nesting {
                        Nesting::Single => (object::NestingMode::Single, inner_ty),
                        Nesting::List => (object::NestingMode::List, Type::List(Box::new(inner_ty))),
                        Nesting::Set => (object::NestingMode::Set, Type::Set(Box::new(inner_ty))),
                        Nesting::Map => (object::NestingMode::Map, Type::Map(Box::new(inner_ty))),
                    };
                    // Exactly one of type and nested_type may be set: Terraform
                    // rejects schemas with both.
                    block.attributes.push(Attribute {
                        name: name.clone(),
                        r#type: Vec::new(),
                        nested_type: Some(Object { attributes: inner_block.attributes, nesting: mode as i32 }),
                        description: desc,
                        description_kind: StringKind::Markdown as i32,
                        required: r.required,
                        optional: !r.required && !r.computed_only,
                        computed: r.computed,
                        sensitive: r.sensitive,
                        deprecated: false,
                        write_only: r.write_only,
                    });
                    types.insert(name.clone(), ty);
                    rules.attrs.insert(name.clone(), AttrNode { rules: r, json_name: json_name.clone(), nested: Some((nesting, inner_rules)), block: false });
                }
                None => {
                    let ty = self.shape_type(&shape, path)?;
                    block.attributes.push(Attribute {
                        name: name.clone(),
                        r#type: ty.to_json_bytes(),
                        nested_type: None,
                        description: desc,
                        description_kind: StringKind::Markdown as i32,
                        required: r.required,
                        optional: !r.required && !r.computed_only,
                        computed: r.computed,
                        sensitive: r.sensitive,
                        deprecated: false,
                        write_only: r.write_only,
                    });
                    types.insert(name.clone(), ty);
                    rules.attrs.insert(name.clone(), AttrNode { rules: r, json_name: json_name.clone(), nested: None, block: false });
                }
            }
            path.pop();
        }
        Ok((block, Type::Object(types), rules))
    }
}

/// Terraform attribute name for a model property: `serviceAccountRef` ->
/// `service_account_ref`, `projectID` -> `project_id`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(char::is_ascii_lowercase),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// Converts a Terraform value to the Rust model's JSON: property names
/// restored, nulls dropped (so `Option` and `#[serde(default)]` apply).
pub fn value_to_model_json(v: &super::value::Value, tree: &RuleTree) -> J {
    use super::value::Value;
    let Value::Map(entries) = v else { return v.to_serde_json() };
    let mut out = Map::new();
    for (name, value) in entries {
        if value.is_null() || matches!(value, Value::Unknown) {
            continue;
        }
        let Some(node) = tree.attrs.get(name) else {
            out.insert(name.clone(), value.to_serde_json());
            continue;
        };
        let json = match (&node.nested, value) {
            // No blocks is how Terraform says "absent" for repeated blocks.
            (Some((_, _)), Value::List(items)) if node.block && items.is_empty() => continue,
            (Some((Nesting::Map, _)), Value::Map(items)) if node.block && items.is_empty() => continue,
            (Some((Nesting::Single, inner)), v) => value_to_model_json(v, inner),
            (Some((_, inner)), Value::List(items)) => J::Array(items.iter().map(|i| value_to_model_json(i, inner)).collect()),
            (Some((_, inner)), Value::Map(m)) => J::Object(m.iter().map(|(k, i)| (k.clone(), value_to_model_json(i, inner))).collect()),
            (_, v) => v.to_serde_json(),
        };
        out.insert(node.json_name.clone(), json);
    }
    J::Object(out)
}

/// Leaves out single blocks that `reference` (the plan, or the prior
/// state) does not have and that hold exactly their object default: the
/// model always carries such an object, while the configuration that left
/// the block out must read back without it.
pub fn drop_default_blocks(v: &mut super::value::Value, reference: &super::value::Value, tree: &RuleTree) {
    use super::value::Value;
    let Value::Map(entries) = v else { return };
    for (name, node) in &tree.attrs {
        let Some((Nesting::Single, inner)) = &node.nested else { continue };
        let Some(slot) = entries.get_mut(name) else { continue };
        if slot.is_null() {
            continue;
        }
        let theirs = reference.attr(name);
        match &node.rules.default {
            Some(default) if node.block && theirs.is_null() => {
                if value_to_model_json(slot, inner) == strip_nulls(default) {
                    *slot = Value::Null;
                }
            }
            _ => drop_default_blocks(slot, theirs, inner),
        }
    }
}

fn strip_nulls(json: &J) -> J {
    match json {
        J::Object(m) => J::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect()),
        other => other.clone(),
    }
}

/// Converts the Rust model's JSON to a Terraform value of type `ty`
/// (Terraform attribute names; absent properties become null).
pub fn model_json_to_value(json: &J, ty: &Type, tree: &RuleTree) -> Result<super::value::Value, super::value::ValueError> {
    use super::value::Value;
    let (J::Object(props), Type::Object(attr_types)) = (json, ty) else { return Value::from_serde_json(json, ty) };
    let mut out = BTreeMap::new();
    for (name, aty) in attr_types {
        let Some(node) = tree.attrs.get(name) else {
            out.insert(name.clone(), Value::from_serde_json(props.get(name).unwrap_or(&J::Null), aty)?);
            continue;
        };
        let prop = props.get(&node.json_name).unwrap_or(&J::Null);
        let v = match (&node.nested, prop, aty) {
            (Some((Nesting::List | Nesting::Set, _)), J::Null, _) if node.block => Value::List(Vec::new()),
            (Some((Nesting::Map, _)), J::Null, _) if node.block => Value::Map(BTreeMap::new()),
            (_, J::Null, _) => Value::Null,
            (Some((Nesting::Single, inner)), p, t) => model_json_to_value(p, t, inner)?,
            (Some((_, inner)), J::Array(items), Type::List(et) | Type::Set(et)) => {
                Value::List(items.iter().map(|i| model_json_to_value(i, et, inner)).collect::<Result<_, _>>()?)
            }
            (Some((_, inner)), J::Object(m), Type::Map(et)) => Value::Map(
                m.iter().map(|(k, i)| Ok((k.clone(), model_json_to_value(i, et, inner)?))).collect::<Result<_, super::value::ValueError>>()?,
            ),
            (_, p, t) => Value::from_serde_json(p, t)?,
        };
        out.insert(name.clone(), v);
    }
    Ok(Value::Map(out))
}

fn description(schema: &J) -> String {
    schema.get("description").and_then(J::as_str).unwrap_or("").trim().to_owned()
}

/// `enum: [...]`, `const`, or `oneOf: [{const}...]` values, if the schema is an enumeration.
fn enum_values(schema: &J) -> Option<Vec<J>> {
    if let Some(J::Array(values)) = schema.get("enum") {
        return Some(values.iter().filter(|v| !v.is_null()).cloned().collect());
    }
    if let Some(c) = schema.get("const") {
        return Some(vec![c.clone()]);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(J::Array(alts)) = schema.get(key) {
            let mut out = Vec::new();
            for alt in alts {
                if let Some(c) = alt.get("const") {
                    out.push(c.clone());
                } else if let Some(J::Array(values)) = alt.get("enum") {
                    out.extend(values.iter().cloned());
                } else if alt.get("type").and_then(J::as_str) == Some("null") {
                } else {
                    return None;
                }
            }
            return Some(out);
        }
    }
    None
}

/// Renders a schema in the shape of `terraform providers schema -json`
/// (stable, sorted), for the golden file.
pub fn schema_to_json(schema: &Schema) -> J {
    let mut out = Map::new();
    out.insert("version".into(), J::from(schema.version));
    if let Some(block) = &schema.block {
        out.insert("block".into(), block_to_json(block));
    }
    J::Object(out)
}

fn block_to_json(block: &Block) -> J {
    let mut out = Map::new();
    if !block.attributes.is_empty() {
        let attrs: Map<String, J> = block.attributes.iter().map(|a| (a.name.clone(), attribute_to_json(a))).collect();
        out.insert("attributes".into(), J::Object(attrs));
    }
    if !block.block_types.is_empty() {
        let blocks: Map<String, J> = block
            .block_types
            .iter()
            .map(|b| {
                let mut m = Map::new();
                let mode = nested_block::NestingMode::try_from(b.nesting).unwrap_or(nested_block::NestingMode::Invalid);
                m.insert("nesting_mode".into(), J::from(mode.as_str_name().to_ascii_lowercase()));
                if let Some(inner) = &b.block {
                    m.insert("block".into(), block_to_json(inner));
                }
                if b.min_items > 0 {
                    m.insert("min_items".into(), J::from(b.min_items));
                }
                if b.max_items > 0 {
                    m.insert("max_items".into(), J::from(b.max_items));
                }
                (b.type_name.clone(), J::Object(m))
            })
            .collect();
        out.insert("block_types".into(), J::Object(blocks));
    }
    if !block.description.is_empty() {
        out.insert("description".into(), J::from(block.description.clone()));
        out.insert("description_kind".into(), J::from("markdown"));
    }
    J::Object(out)
}

fn attribute_to_json(a: &Attribute) -> J {
    let mut m = Map::new();
    if let Some(nested) = &a.nested_type {
        let mode = object::NestingMode::try_from(nested.nesting).unwrap_or(object::NestingMode::Invalid);
        let attrs: Map<String, J> = nested.attributes.iter().map(|a| (a.name.clone(), attribute_to_json(a))).collect();
        m.insert(
            "nested_type".into(),
            serde_json::json!({"attributes": attrs, "nesting_mode": mode.as_str_name().to_ascii_lowercase()}),
        );
    } else {
        let ty: J = serde_json::from_slice(&a.r#type).unwrap_or(J::Null);
        m.insert("type".into(), ty);
    }
    if !a.description.is_empty() {
        m.insert("description".into(), J::from(a.description.clone()));
        m.insert("description_kind".into(), J::from("markdown"));
    }
    for (key, on) in [
        ("required", a.required),
        ("optional", a.optional),
        ("computed", a.computed),
        ("sensitive", a.sensitive),
        ("write_only", a.write_only),
    ] {
        if on {
            m.insert(key.into(), J::Bool(true));
        }
    }
    J::Object(m)
}

/// The type Terraform encodes a block's values with, read back from the
/// wire schema: what a client of GetProviderSchema (a test, the benchmark
/// driver) needs to encode configs and decode states the way Terraform does.
pub fn block_value_type(block: &Block) -> Result<Type, ValueError> {
    let mut attributes = BTreeMap::new();
    for attribute in &block.attributes {
        let ty = match &attribute.nested_type {
            Some(nested) => {
                let inner = Type::Object(
                    nested
                        .attributes
                        .iter()
                        .map(|a| Ok((a.name.clone(), wire_type(a)?)))
                        .collect::<Result<_, ValueError>>()?,
                );
                match object::NestingMode::try_from(nested.nesting).unwrap_or(object::NestingMode::Invalid) {
                    object::NestingMode::List => Type::List(Box::new(inner)),
                    object::NestingMode::Set => Type::Set(Box::new(inner)),
                    object::NestingMode::Map => Type::Map(Box::new(inner)),
                    object::NestingMode::Single | object::NestingMode::Invalid => inner,
                }
            }
            None => wire_type(attribute)?,
        };
        attributes.insert(attribute.name.clone(), ty);
    }
    for nested in &block.block_types {
        let inner = match &nested.block {
            Some(block) => block_value_type(block)?,
            None => Type::Object(BTreeMap::new()),
        };
        let ty = match nested_block::NestingMode::try_from(nested.nesting).unwrap_or(nested_block::NestingMode::Invalid) {
            nested_block::NestingMode::List => Type::List(Box::new(inner)),
            nested_block::NestingMode::Set => Type::Set(Box::new(inner)),
            nested_block::NestingMode::Map => Type::Map(Box::new(inner)),
            nested_block::NestingMode::Single | nested_block::NestingMode::Group | nested_block::NestingMode::Invalid => inner,
        };
        attributes.insert(nested.type_name.clone(), ty);
    }
    Ok(Type::Object(attributes))
}

/// An attribute's type from its JSON type notation.
fn wire_type(attribute: &Attribute) -> Result<Type, ValueError> {
    let notation = serde_json::from_slice(&attribute.r#type).map_err(|e| ValueError::TypeNotation {
        notation: String::from_utf8_lossy(&attribute.r#type).into_owned(),
        reason: e.to_string(),
    })?;
    Type::from_json(&notation)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    /// A test resource.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    struct Sample {
        /// The name.
        #[schemars(extend("x-terraform-requires-replace" = true), length(min = 1, max = 63), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
        object_name: String,
        /// Optional note.
        note: Option<String>,
        /// Server-side id.
        #[schemars(extend("x-terraform-computed-only" = true, "x-terraform-use-state-for-unknown" = true))]
        id: Option<String>,
        /// A secret.
        #[schemars(extend("x-terraform-sensitive" = true))]
        password: Option<String>,
        /// Mode.
        #[serde(default = "default_mode")]
        mode: Mode,
        /// Labels.
        labels: Option<BTreeMap<String, String>>,
        /// Ports.
        #[schemars(range(min = 1, max = 65535))]
        ports: Option<Vec<u16>>,
        /// One nested object.
        target: Option<Target>,
        /// Many nested objects.
        rules: Vec<Target>,
        /// A block.
        #[schemars(extend("x-terraform-block" = true))]
        settings: Option<Target>,
    }

    /// Where things go.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Target {
        /// Namespace.
        namespace: String,
        /// Key.
        key: Option<String>,
    }

    /// Modes.
    #[derive(Serialize, Deserialize, JsonSchema, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        /// Fast.
        Fast,
        /// Slow.
        Slow,
    }

    fn default_mode() -> Mode {
        Mode::Fast
    }

    fn attr<'a>(b: &'a Block, name: &str) -> &'a Attribute {
        b.attributes.iter().find(|a| a.name == name).unwrap()
    }

    #[test]
    fn struct_becomes_block_with_markers() {
        let g = generate::<Sample>(2, SchemaOptions::default()).unwrap();
        let b = g.schema.block.as_ref().unwrap();
        assert_eq!(g.schema.version, 2);
        assert_eq!(b.description, "A test resource.");
        let name = attr(b, "object_name");
        assert!(name.required && !name.optional && !name.computed);
        assert_eq!(name.description, "The name.");
        assert_eq!(name.r#type, br#""string""#);
        let note = attr(b, "note");
        assert!(note.optional && !note.required);
        let id = attr(b, "id");
        assert!(id.computed && !id.optional && !id.required);
        assert!(attr(b, "password").sensitive);
        let mode = attr(b, "mode");
        assert!(mode.optional && mode.computed, "a default makes it optional+computed");
        assert_eq!(attr(b, "labels").r#type, br#"["map","string"]"#);
        assert_eq!(attr(b, "ports").r#type, br#"["list","number"]"#);

        // A required list of plain objects stays a nested attribute.
        let rules = attr(b, "rules");
        assert!(rules.required && rules.r#type.is_empty(), "nested attributes carry no type");
        let nested = rules.nested_type.as_ref().unwrap();
        assert_eq!(nested.nesting, object::NestingMode::List as i32);
        assert_eq!(nested.attributes.len(), 2);

        // Optional objects are blocks, marked or not.
        let blocks: Vec<(&str, i32)> = b.block_types.iter().map(|b| (b.type_name.as_str(), b.nesting)).collect();
        assert_eq!(blocks, [("settings", nested_block::NestingMode::Single as i32), ("target", nested_block::NestingMode::Single as i32)]);

        let r = &g.rules.attrs["object_name"].rules;
        assert!(r.requires_replace);
        assert_eq!(r.min_length, Some(1));
        assert_eq!(r.max_length, Some(63));
        assert_eq!(r.pattern.as_deref(), Some("^[a-z][a-z0-9-]*$"));
        assert!(g.rules.attrs["id"].rules.use_state_for_unknown);
        let m = &g.rules.attrs["mode"].rules;
        assert_eq!(m.default, Some(J::from("fast")));
        assert_eq!(m.allowed, Some(vec![J::from("fast"), J::from("slow")]));
        let Type::Object(attrs) = &g.ty else { panic!("object type") };
        assert_eq!(attrs["target"].to_json().to_string(), r#"["object",{"key":"string","namespace":"string"}]"#);
        assert_eq!(attrs["settings"].to_json().to_string(), r#"["object",{"key":"string","namespace":"string"}]"#);
    }

    /// A CRD-style model.
    #[derive(Serialize, Deserialize, JsonSchema, PartialEq, Debug)]
    #[serde(rename_all = "camelCase")]
    struct CamelModel {
        /// Ref.
        service_account_ref: CamelRef,
        /// Items.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        match_items: Vec<CamelRef>,
        /// Plain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project_id: Option<String>,
    }

    /// Ref.
    #[derive(Serialize, Deserialize, JsonSchema, PartialEq, Debug)]
    #[serde(rename_all = "camelCase")]
    struct CamelRef {
        /// Name.
        account_name: String,
    }

    #[test]
    fn camel_case_model_round_trips_through_terraform_names() {
        let g = generate::<CamelModel>(0, SchemaOptions::default()).unwrap();
        let b = g.schema.block.as_ref().unwrap();
        let names: Vec<&str> = b.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["project_id", "service_account_ref"]);
        assert_eq!(b.block_types[0].type_name, "match_items", "an optional list of objects is a block");
        let model = CamelModel {
            service_account_ref: CamelRef { account_name: "a".into() },
            match_items: vec![CamelRef { account_name: "b".into() }],
            project_id: Some("p".into()),
        };
        let json = serde_json::to_value(&model).unwrap();
        let value = model_json_to_value(&json, &g.ty, &g.rules).unwrap();
        assert_eq!(value.attr("service_account_ref").attr("account_name"), &crate::plugin::value::Value::String("a".into()));
        let back: CamelModel = serde_json::from_value(value_to_model_json(&value, &g.rules)).unwrap();
        assert_eq!(back, model);
    }

    #[test]
    fn camel_case_properties_get_snake_case_names() {
        assert_eq!(snake_case("serviceAccountRef"), "service_account_ref");
        assert_eq!(snake_case("projectID"), "project_id");
        assert_eq!(snake_case("clusterProjectID"), "cluster_project_id");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("HTTPServer"), "http_server");
    }

    #[test]
    fn provider_style_top_level_objects_become_blocks() {
        let g = generate::<Sample>(0, SchemaOptions { top_level_objects_as_blocks: true }).unwrap();
        let b = g.schema.block.unwrap();
        let names: Vec<&str> = b.block_types.iter().map(|b| b.type_name.as_str()).collect();
        assert_eq!(names, ["rules", "settings", "target"]);
        assert_eq!(b.block_types[0].nesting, nested_block::NestingMode::List as i32);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod block_tests {
    use super::*;
    use crate::plugin::value::Value;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, JsonSchema, Default, PartialEq, Debug)]
    #[serde(rename_all = "camelCase")]
    struct Policy {
        /// Who owns it.
        #[serde(default = "owner")]
        owned_by: String,
    }

    fn owner() -> String {
        "Owner".into()
    }

    #[derive(Serialize, Deserialize, JsonSchema, Default)]
    #[serde(rename_all = "camelCase")]
    struct Leaf {
        /// A name.
        name: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    struct Res {
        /// Required, plain values only: stays a nested attribute.
        store_ref: Leaf,
        /// Optional: a block, so Terraform 1.0.x never sees it null as an attribute.
        extra: Option<Leaf>,
        /// Defaulted object: a block whose default reads as absent.
        #[serde(default = "default_policy")]
        policy: Policy,
    }

    fn default_policy() -> Policy {
        Policy { owned_by: owner() }
    }

    #[test]
    fn optional_objects_become_blocks_and_required_plain_objects_stay_attributes() {
        let g = generate::<Res>(0, SchemaOptions::default()).unwrap();
        let b = g.schema.block.as_ref().unwrap();
        let blocks: Vec<&str> = b.block_types.iter().map(|b| b.type_name.as_str()).collect();
        assert_eq!(blocks, ["extra", "policy"]);
        let store_ref = b.attributes.iter().find(|a| a.name == "store_ref").unwrap();
        assert!(store_ref.nested_type.is_some() && store_ref.required);
        assert!(!g.rules.attrs["policy"].rules.computed, "a block cannot be computed");
    }

    #[test]
    fn a_block_holding_only_its_default_reads_back_absent_unless_planned() {
        let g = generate::<Res>(0, SchemaOptions::default()).unwrap();
        let model = Res { store_ref: Leaf { name: "a".into() }, extra: None, policy: default_policy() };
        let reference_without = g.from_model(&Res { policy: default_policy(), extra: None, store_ref: Leaf { name: "a".into() } }).unwrap();
        let mut without = reference_without.clone();
        if let Value::Map(m) = &mut without {
            m.insert("policy".into(), Value::Null);
        }
        let mut v = g.from_model(&model).unwrap();
        drop_default_blocks(&mut v, &without, &g.rules);
        assert!(v.attr("policy").is_null(), "left out of the configuration: stays out");
        let mut v = g.from_model(&model).unwrap();
        drop_default_blocks(&mut v, &reference_without, &g.rules);
        assert!(!v.attr("policy").is_null(), "written in the configuration: stays in");
        let changed = Res { policy: Policy { owned_by: "Orphan".into() }, ..model };
        let mut v = g.from_model(&changed).unwrap();
        drop_default_blocks(&mut v, &without, &g.rules);
        assert!(!v.attr("policy").is_null(), "a changed value is drift, shown");
    }
}
