//! Terraform values (cty) and their two wire encodings: msgpack (every
//! DynamicValue Terraform sends in requests) and JSON (raw state given to
//! UpgradeResourceState).
//!
//! Values are decoded against a [`Type`], because the msgpack form does not
//! carry object attribute types, and because `null` and unknown can appear
//! anywhere. Numbers keep their exact text when they do not fit an `i64` or
//! an `f64`, as cty does.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;

/// A Terraform type, as written in the protocol's JSON type notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `"bool"`
    Bool,
    /// `"number"`
    Number,
    /// `"string"`
    String,
    /// `"dynamic"`: the value carries its own type on the wire.
    Dynamic,
    /// `["list", T]`
    List(Box<Type>),
    /// `["set", T]`
    Set(Box<Type>),
    /// `["map", T]`
    Map(Box<Type>),
    /// `["object", {name: T}]`
    Object(BTreeMap<String, Type>),
    /// `["tuple", [T...]]`
    Tuple(Vec<Type>),
}

/// A Terraform number: exact integer, exact float, or decimal text for
/// anything that fits neither (cty numbers are arbitrary precision).
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// A number that is an integer within `i64`.
    Int(i64),
    /// A number exactly representable as `f64` (including infinities).
    Float(f64),
    /// Decimal text of a number that fits neither `i64` nor `f64` exactly.
    Big(String),
}

/// A Terraform value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null of whatever type the position has.
    Null,
    /// A value not known until apply.
    Unknown,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// Elements of a list, set or tuple.
    List(Vec<Value>),
    /// Attributes of an object, or entries of a map.
    Map(BTreeMap<String, Value>),
    /// A value at a `dynamic` position, with the concrete type it was sent with.
    Dynamic(Type, Box<Value>),
}

/// Why a value or type could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The msgpack bytes ended early or held an unexpected marker.
    #[error("malformed msgpack at {path}: {reason}")]
    Msgpack {
        /// Where in the value it happened.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The JSON text was not valid for the type.
    #[error("malformed JSON value at {path}: {reason}")]
    Json {
        /// Where in the value it happened.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A type in JSON notation was not understood.
    #[error("invalid type notation {notation}: {reason}")]
    TypeNotation {
        /// The offending notation.
        notation: String,
        /// What was wrong.
        reason: String,
    },
    /// The value does not fit the type it is encoded as.
    #[error("value at {path} does not conform to type {ty}")]
    Mismatch {
        /// Where in the value it happened.
        path: String,
        /// The expected type.
        ty: String,
    },
}

impl Type {
    /// The protocol's JSON notation for this type (`"string"`, `["list","string"]`...).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Type::Bool => J::from("bool"),
            Type::Number => J::from("number"),
            Type::String => J::from("string"),
            Type::Dynamic => J::from("dynamic"),
            Type::List(t) => J::Array(vec![J::from("list"), t.to_json()]),
            Type::Set(t) => J::Array(vec![J::from("set"), t.to_json()]),
            Type::Map(t) => J::Array(vec![J::from("map"), t.to_json()]),
            Type::Object(attrs) => J::Array(vec![
                J::from("object"),
                J::Object(attrs.iter().map(|(k, t)| (k.clone(), t.to_json())).collect()),
            ]),
            Type::Tuple(elems) => J::Array(vec![
                J::from("tuple"),
                J::Array(elems.iter().map(Type::to_json).collect()),
            ]),
        }
    }

    /// The JSON notation as bytes, as the Schema.Attribute.type field wants.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// Parses the protocol's JSON type notation.
    pub fn from_json(json: &serde_json::Value) -> Result<Type, ValueError> {
        use serde_json::Value as J;
        let bad = |reason: &str| ValueError::TypeNotation {
            notation: json.to_string(),
            reason: reason.to_owned(),
        };
        match json {
            J::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(bad("unknown primitive type")),
            },
            J::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().ok_or_else(|| bad("kind must be a string"))?;
                match kind {
                    "list" => Ok(Type::List(Box::new(Type::from_json(&parts[1])?))),
                    "set" => Ok(Type::Set(Box::new(Type::from_json(&parts[1])?))),
                    "map" => Ok(Type::Map(Box::new(Type::from_json(&parts[1])?))),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or_else(|| bad("object attributes must be a map"))?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or_else(|| bad("tuple elements must be a list"))?;
                        Ok(Type::Tuple(elems.iter().map(Type::from_json).collect::<Result<_, _>>()?))
                    }
                    _ => Err(bad("unknown collection kind")),
                }
            }
            _ => Err(bad("expected a string or a [kind, argument] list")),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Number {
    /// Builds the canonical number from decimal text, the way cty would
    /// serialise it: integer if it fits `i64`, float if it round-trips
    /// exactly, text otherwise.
    pub fn from_text(text: &str) -> Option<Number> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        if let Ok(i) = text.parse::<i64>() {
            return Some(Number::Int(i));
        }
        let f = text.parse::<f64>().ok()?;
        if f.is_finite() && is_exact_float_text(text, f) {
            return Some(Number::from_f64(f));
        }
        Some(Number::Big(normalise_decimal(text)))
    }

    /// Canonical number for an `f64` (integral values within `i64` become `Int`).
    pub fn from_f64(f: f64) -> Number {
        // -2^63 ..< 2^63: every integral f64 in it converts to i64 exactly.
        if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) {
            // In range and integral, so the cast is exact.
            Number::Int(f as i64)
        } else {
            Number::Float(f)
        }
    }

    /// The number as decimal text (JSON number syntax).
    pub fn to_text(&self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Float(f) if f.is_finite() => {
                let s = format!("{f}");
                s
            }
            Number::Float(f) if *f > 0.0 => "Infinity".to_owned(),
            Number::Float(_) => "-Infinity".to_owned(),
            Number::Big(s) => s.clone(),
        }
    }

    /// The number as `f64`, rounding big numbers.
    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::Float(f) => *f,
            Number::Big(s) => s.parse().unwrap_or(f64::NAN),
        }
    }
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Whether `f` represents the decimal `text` exactly (so no precision is lost).
fn is_exact_float_text(text: &str, f: f64) -> bool {
    // Rust prints the shortest text that round-trips; if the input has more
    // significant digits than that, the float is only an approximation.
    let shortest = format!("{f:e}");
    significant_digits(&shortest) == significant_digits(text)
}

fn significant_digits(text: &str) -> String {
    let mantissa = text.split(['e', 'E']).next().unwrap_or("");
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent: i64 = text
        .split_once(['e', 'E'])
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let digits: String = int_part
        .chars()
        .chain(frac_part.chars())
        .filter(char::is_ascii_digit)
        .collect();
    let lead = digits.len() - digits.trim_start_matches('0').len();
    let trimmed = digits.trim_start_matches('0').trim_end_matches('0');
    if trimmed.is_empty() {
        return "0".to_owned();
    }
    // Position of the decimal point relative to the first significant digit.
    let int_digits = int_part.chars().filter(char::is_ascii_digit).count() as i64;
    let point = int_digits - lead as i64 + exponent;
    format!("{trimmed}e{point}")
}

fn normalise_decimal(text: &str) -> String {
    text.trim_start_matches('+').to_owned()
}

// ---------------------------------------------------------------------------
// msgpack

const UNKNOWN_EXT_BYTES: [u8; 3] = [0xd4, 0, 0];

/// Encodes `value` as msgpack for type `ty`, as Terraform expects in a DynamicValue.
pub fn to_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::with_capacity(64);
    encode_msgpack(&mut out, value, ty, &mut Vec::new())?;
    Ok(out)
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() { "(root)".to_owned() } else { path.join(".") }
}

fn encode_msgpack(out: &mut Vec<u8>, value: &Value, ty: &Type, path: &mut Vec<String>) -> Result<(), ValueError> {
    let mismatch = |path: &[String]| ValueError::Mismatch { path: path_text(path), ty: ty.to_string() };
    let io = |path: &[String], e: rmp::encode::ValueWriteError| ValueError::Msgpack {
        path: path_text(path),
        reason: e.to_string(),
    };
    match (value, ty) {
        (Value::Unknown, _) => {
            out.extend_from_slice(&UNKNOWN_EXT_BYTES);
            Ok(())
        }
        (Value::Dynamic(inner_ty, inner), Type::Dynamic) => {
            if matches!(**inner, Value::Unknown) && *inner_ty == Type::Dynamic {
                out.extend_from_slice(&UNKNOWN_EXT_BYTES);
                return Ok(());
            }
            rmp::encode::write_array_len(out, 2).map_err(|e| io(path, e))?;
            rmp::encode::write_bin(out, &inner_ty.to_json_bytes()).map_err(|e| io(path, e))?;
            encode_msgpack(out, inner, inner_ty, path)
        }
        (Value::Null, _) => {
            rmp::encode::write_nil(out).map_err(|e| ValueError::Msgpack { path: path_text(path), reason: e.to_string() })
        }
        (Value::Bool(b), Type::Bool) => {
            rmp::encode::write_bool(out, *b).map_err(|e| ValueError::Msgpack { path: path_text(path), reason: e.to_string() })
        }
        (Value::Number(n), Type::Number) => {
            match n {
                Number::Int(i) => {
                    rmp::encode::write_sint(out, *i).map_err(|e| io(path, e))?;
                }
                // Finite floats go as their shortest decimal text, which cty
                // parses at full precision, so 0.1 in config and 0.1 from us
                // compare equal (a binary f64 would not).
                Number::Float(f) if f.is_finite() => {
                    rmp::encode::write_str(out, &n.to_text()).map_err(|e| io(path, e))?
                }
                Number::Float(f) => rmp::encode::write_f64(out, *f).map_err(|e| io(path, e))?,
                Number::Big(s) => rmp::encode::write_str(out, s).map_err(|e| io(path, e))?,
            }
            Ok(())
        }
        (Value::String(s), Type::String) => rmp::encode::write_str(out, s).map_err(|e| io(path, e)),
        (Value::List(items), Type::List(elem) | Type::Set(elem)) => {
            rmp::encode::write_array_len(out, len_u32(items.len())).map_err(|e| io(path, e))?;
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                encode_msgpack(out, item, elem, path)?;
                path.pop();
            }
            Ok(())
        }
        (Value::List(items), Type::Tuple(elems)) if items.len() == elems.len() => {
            rmp::encode::write_array_len(out, len_u32(items.len())).map_err(|e| io(path, e))?;
            for (i, (item, elem)) in items.iter().zip(elems).enumerate() {
                path.push(i.to_string());
                encode_msgpack(out, item, elem, path)?;
                path.pop();
            }
            Ok(())
        }
        (Value::Map(entries), Type::Map(elem)) => {
            rmp::encode::write_map_len(out, len_u32(entries.len())).map_err(|e| io(path, e))?;
            for (k, v) in entries {
                rmp::encode::write_str(out, k).map_err(|e| io(path, e))?;
                path.push(k.clone());
                encode_msgpack(out, v, elem, path)?;
                path.pop();
            }
            Ok(())
        }
        (Value::Map(entries), Type::Object(attrs)) => {
            // Every attribute of the type is written, missing ones as null,
            // in sorted order (BTreeMap) as cty does.
            rmp::encode::write_map_len(out, len_u32(attrs.len())).map_err(|e| io(path, e))?;
            for (k, aty) in attrs {
                rmp::encode::write_str(out, k).map_err(|e| io(path, e))?;
                path.push(k.clone());
                encode_msgpack(out, entries.get(k).unwrap_or(&Value::Null), aty, path)?;
                path.pop();
            }
            if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                path.push(extra.clone());
                return Err(mismatch(path));
            }
            Ok(())
        }
        (v, Type::Dynamic) => {
            // A concrete value at a dynamic position: infer its type.
            let inferred = infer_type(v);
            encode_msgpack(out, &Value::Dynamic(inferred, Box::new(v.clone())), &Type::Dynamic, path)
        }
        _ => Err(mismatch(path)),
    }
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Infers the type of a value that was given without one (for `dynamic`
/// positions): objects for maps, tuples for lists.
pub fn infer_type(value: &Value) -> Type {
    match value {
        Value::Null | Value::Unknown => Type::Dynamic,
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::List(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        Value::Map(entries) => Type::Object(entries.iter().map(|(k, v)| (k.clone(), infer_type(v))).collect()),
        Value::Dynamic(ty, _) => ty.clone(),
    }
}

/// Decodes msgpack bytes as a value of type `ty`.
pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let mut reader = MsgpackReader { bytes, pos: 0 };
    let value = reader.value(ty, &mut Vec::new())?;
    if reader.pos != bytes.len() {
        return Err(ValueError::Msgpack {
            path: "(root)".to_owned(),
            reason: format!("{} trailing bytes", bytes.len() - reader.pos),
        });
    }
    Ok(value)
}

struct MsgpackReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl MsgpackReader<'_> {
    fn err(&self, path: &[String], reason: impl Into<String>) -> ValueError {
        ValueError::Msgpack { path: path_text(path), reason: format!("{} (offset {})", reason.into(), self.pos) }
    }

    fn take(&mut self, n: usize, path: &[String]) -> Result<&[u8], ValueError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.err(path, "unexpected end of input"));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn uint(&mut self, n: usize, path: &[String]) -> Result<u64, ValueError> {
        let raw = self.take(n, path)?;
        Ok(raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn peek(&self, path: &[String]) -> Result<u8, ValueError> {
        self.bytes.get(self.pos).copied().ok_or_else(|| self.err(path, "unexpected end of input"))
    }

    /// Reads the next item without a type: returns the raw scalar form.
    fn scalar(&mut self, path: &[String]) -> Result<Scalar, ValueError> {
        let marker = self.peek(path)?;
        self.pos += 1;
        Ok(match marker {
            0x00..=0x7f => Scalar::Int(i128::from(marker)),
            0xe0..=0xff => Scalar::Int(i128::from(marker as i8)),
            0xc0 => Scalar::Nil,
            0xc2 => Scalar::Bool(false),
            0xc3 => Scalar::Bool(true),
            0xcc => Scalar::Int(i128::from(self.uint(1, path)?)),
            0xcd => Scalar::Int(i128::from(self.uint(2, path)?)),
            0xce => Scalar::Int(i128::from(self.uint(4, path)?)),
            0xcf => Scalar::Int(i128::from(self.uint(8, path)?)),
            0xd0 => Scalar::Int(i128::from(self.uint(1, path)? as u8 as i8)),
            0xd1 => Scalar::Int(i128::from(self.uint(2, path)? as u16 as i16)),
            0xd2 => Scalar::Int(i128::from(self.uint(4, path)? as u32 as i32)),
            0xd3 => Scalar::Int(i128::from(self.uint(8, path)? as i64)),
            0xca => Scalar::Float(f64::from(f32::from_bits(self.uint(4, path)? as u32))),
            0xcb => Scalar::Float(f64::from_bits(self.uint(8, path)?)),
            0xa0..=0xbf => Scalar::Str(self.string_body(usize::from(marker & 0x1f), path)?),
            0xd9 => {
                let n = self.uint(1, path)? as usize;
                Scalar::Str(self.string_body(n, path)?)
            }
            0xda => {
                let n = self.uint(2, path)? as usize;
                Scalar::Str(self.string_body(n, path)?)
            }
            0xdb => {
                let n = self.uint(4, path)? as usize;
                Scalar::Str(self.string_body(n, path)?)
            }
            0xc4..=0xc6 => {
                let width = match marker {
                    0xc4 => 1,
                    0xc5 => 2,
                    _ => 4,
                };
                let n = self.uint(width, path)? as usize;
                Scalar::Bin(self.take(n, path)?.to_vec())
            }
            0x90..=0x9f => Scalar::Array(usize::from(marker & 0x0f)),
            0xdc => Scalar::Array(self.uint(2, path)? as usize),
            0xdd => Scalar::Array(self.uint(4, path)? as usize),
            0x80..=0x8f => Scalar::Map(usize::from(marker & 0x0f)),
            0xde => Scalar::Map(self.uint(2, path)? as usize),
            0xdf => Scalar::Map(self.uint(4, path)? as usize),
            // fixext 1/2/4/8/16 and ext 8/16/32: any extension is an unknown value
            // (type 0 plain, type 0x0c with refinements we do not need).
            0xd4 => self.skip_ext(2, path)?,
            0xd5 => self.skip_ext(3, path)?,
            0xd6 => self.skip_ext(5, path)?,
            0xd7 => self.skip_ext(9, path)?,
            0xd8 => self.skip_ext(17, path)?,
            0xc7 => {
                let n = self.uint(1, path)? as usize;
                self.skip_ext(n + 1, path)?
            }
            0xc8 => {
                let n = self.uint(2, path)? as usize;
                self.skip_ext(n + 1, path)?
            }
            0xc9 => {
                let n = self.uint(4, path)? as usize;
                self.skip_ext(n + 1, path)?
            }
            other => return Err(self.err(path, format!("unsupported msgpack marker 0x{other:02x}"))),
        })
    }

    fn skip_ext(&mut self, n: usize, path: &[String]) -> Result<Scalar, ValueError> {
        self.take(n, path)?;
        Ok(Scalar::Unknown)
    }

    fn string_body(&mut self, n: usize, path: &[String]) -> Result<String, ValueError> {
        let raw = self.take(n, path)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err(path, "string is not UTF-8"))
    }

    fn value(&mut self, ty: &Type, path: &mut Vec<String>) -> Result<Value, ValueError> {
        let scalar = self.scalar(path)?;
        match scalar {
            Scalar::Nil => return Ok(Value::Null),
            Scalar::Unknown => return Ok(Value::Unknown),
            _ => {}
        }
        match (ty, scalar) {
            (Type::Dynamic, Scalar::Array(2)) => {
                let type_json = match self.scalar(path)? {
                    Scalar::Bin(b) => b,
                    Scalar::Str(s) => s.into_bytes(),
                    _ => return Err(self.err(path, "dynamic value must start with its type as JSON bytes")),
                };
                let json: serde_json::Value = serde_json::from_slice(&type_json)
                    .map_err(|e| self.err(path, format!("dynamic type is not JSON: {e}")))?;
                let inner_ty = Type::from_json(&json)?;
                let inner = self.value(&inner_ty, path)?;
                Ok(Value::Dynamic(inner_ty, Box::new(inner)))
            }
            (Type::Bool, Scalar::Bool(b)) => Ok(Value::Bool(b)),
            (Type::Number, Scalar::Int(i)) => Ok(Value::Number(match i64::try_from(i) {
                Ok(i) => Number::Int(i),
                Err(_) => Number::Big(i.to_string()),
            })),
            (Type::Number, Scalar::Float(f)) => Ok(Value::Number(Number::from_f64(f))),
            (Type::Number, Scalar::Str(s)) => Number::from_text(&s)
                .map(Value::Number)
                .ok_or_else(|| self.err(path, format!("number text {s:?} is not a number"))),
            (Type::String, Scalar::Str(s)) => Ok(Value::String(s)),
            (Type::List(elem) | Type::Set(elem), Scalar::Array(n)) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for i in 0..n {
                    path.push(i.to_string());
                    items.push(self.value(elem, path)?);
                    path.pop();
                }
                Ok(Value::List(items))
            }
            (Type::Tuple(elems), Scalar::Array(n)) if n == elems.len() => {
                let mut items = Vec::with_capacity(n);
                for (i, elem) in elems.iter().enumerate() {
                    path.push(i.to_string());
                    items.push(self.value(elem, path)?);
                    path.pop();
                }
                Ok(Value::List(items))
            }
            (Type::Map(elem), Scalar::Map(n)) => {
                let mut entries = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key(path)?;
                    path.push(key.clone());
                    let v = self.value(elem, path)?;
                    path.pop();
                    entries.insert(key, v);
                }
                Ok(Value::Map(entries))
            }
            (Type::Object(attrs), Scalar::Map(n)) => {
                let mut entries = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key(path)?;
                    path.push(key.clone());
                    let aty = attrs
                        .get(&key)
                        .ok_or_else(|| self.err(path, "attribute not in the schema"))?;
                    let v = self.value(aty, path)?;
                    path.pop();
                    entries.insert(key, v);
                }
                for k in attrs.keys() {
                    entries.entry(k.clone()).or_insert(Value::Null);
                }
                Ok(Value::Map(entries))
            }
            (ty, _) => Err(ValueError::Mismatch { path: path_text(path), ty: ty.to_string() }),
        }
    }

    fn key(&mut self, path: &[String]) -> Result<String, ValueError> {
        match self.scalar(path)? {
            Scalar::Str(s) => Ok(s),
            _ => Err(self.err(path, "map key must be a string")),
        }
    }
}

enum Scalar {
    Nil,
    Unknown,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(usize),
    Map(usize),
}

// ---------------------------------------------------------------------------
// JSON

/// Encodes a wholly known value as cty JSON (as stored in state files).
pub fn to_json(value: &Value, ty: &Type) -> Result<String, ValueError> {
    let mut out = String::with_capacity(64);
    write_json(&mut out, value, ty, &mut Vec::new())?;
    Ok(out)
}

fn write_json(out: &mut String, value: &Value, ty: &Type, path: &mut Vec<String>) -> Result<(), ValueError> {
    let mismatch = |path: &[String]| ValueError::Mismatch { path: path_text(path), ty: ty.to_string() };
    match (value, ty) {
        (Value::Unknown, _) => Err(ValueError::Json {
            path: path_text(path),
            reason: "unknown values cannot be written as JSON".to_owned(),
        }),
        (Value::Null, _) => {
            out.push_str("null");
            Ok(())
        }
        (Value::Dynamic(inner_ty, inner), Type::Dynamic) => {
            out.push_str("{\"value\":");
            write_json(out, inner, inner_ty, path)?;
            out.push_str(",\"type\":");
            out.push_str(&inner_ty.to_json().to_string());
            out.push('}');
            Ok(())
        }
        (v, Type::Dynamic) => write_json(out, &Value::Dynamic(infer_type(v), Box::new(v.clone())), ty, path),
        (Value::Bool(b), Type::Bool) => {
            out.push_str(if *b { "true" } else { "false" });
            Ok(())
        }
        (Value::Number(n), Type::Number) => {
            if let Number::Float(f) = n
                && !f.is_finite()
            {
                return Err(ValueError::Json { path: path_text(path), reason: "infinity has no JSON form".to_owned() });
            }
            out.push_str(&n.to_text());
            Ok(())
        }
        (Value::String(s), Type::String) => {
            out.push_str(&serde_json::Value::from(s.as_str()).to_string());
            Ok(())
        }
        (Value::List(items), Type::List(elem) | Type::Set(elem)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(i.to_string());
                write_json(out, item, elem, path)?;
                path.pop();
            }
            out.push(']');
            Ok(())
        }
        (Value::List(items), Type::Tuple(elems)) if items.len() == elems.len() => {
            out.push('[');
            for (i, (item, elem)) in items.iter().zip(elems).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(i.to_string());
                write_json(out, item, elem, path)?;
                path.pop();
            }
            out.push(']');
            Ok(())
        }
        (Value::Map(entries), Type::Map(elem)) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                out.push(':');
                path.push(k.clone());
                write_json(out, v, elem, path)?;
                path.pop();
            }
            out.push('}');
            Ok(())
        }
        (Value::Map(entries), Type::Object(attrs)) => {
            out.push('{');
            for (i, (k, aty)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                out.push(':');
                path.push(k.clone());
                write_json(out, entries.get(k).unwrap_or(&Value::Null), aty, path)?;
                path.pop();
            }
            out.push('}');
            Ok(())
        }
        _ => Err(mismatch(path)),
    }
}

/// Decodes cty JSON as a value of type `ty`, keeping big numbers exact.
pub fn from_json(text: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let raw: &RawValue = serde_json::from_slice(text)
        .map_err(|e| ValueError::Json { path: "(root)".to_owned(), reason: e.to_string() })?;
    json_value(raw, ty, &mut Vec::new(), false)
}

/// Like [`from_json`], but object attributes the type does not have are
/// dropped instead of refused: a stored state may still carry attributes a
/// newer schema removed.
pub fn from_json_dropping_unknown_attributes(text: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let raw: &RawValue = serde_json::from_slice(text)
        .map_err(|e| ValueError::Json { path: "(root)".to_owned(), reason: e.to_string() })?;
    json_value(raw, ty, &mut Vec::new(), true)
}

fn json_value(raw: &RawValue, ty: &Type, path: &mut Vec<String>, lenient: bool) -> Result<Value, ValueError> {
    let text = raw.get().trim();
    let bad = |path: &[String], reason: String| ValueError::Json { path: path_text(path), reason };
    if text == "null" {
        return Ok(Value::Null);
    }
    match ty {
        Type::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad(path, format!("expected a bool, got {text}"))),
        },
        Type::Number => {
            let literal = if text.starts_with('"') {
                serde_json::from_str::<String>(text).map_err(|e| bad(path, e.to_string()))?
            } else {
                text.to_owned()
            };
            Number::from_text(&literal)
                .map(Value::Number)
                .ok_or_else(|| bad(path, format!("expected a number, got {text}")))
        }
        Type::String => {
            if text.starts_with('"') {
                serde_json::from_str::<String>(text).map(Value::String).map_err(|e| bad(path, e.to_string()))
            } else if text == "true" || text == "false" || Number::from_text(text).is_some() {
                // cty converts primitives to string when reading JSON.
                Ok(Value::String(text.to_owned()))
            } else {
                Err(bad(path, format!("expected a string, got {text}")))
            }
        }
        Type::List(elem) | Type::Set(elem) => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(json_value(item, elem, path, lenient)?);
                path.pop();
            }
            Ok(Value::List(out))
        }
        Type::Tuple(elems) => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
            if items.len() != elems.len() {
                return Err(bad(path, format!("tuple needs {} elements, got {}", elems.len(), items.len())));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, elem)) in items.into_iter().zip(elems).enumerate() {
                path.push(i.to_string());
                out.push(json_value(item, elem, path, lenient)?);
                path.pop();
            }
            Ok(Value::List(out))
        }
        Type::Map(elem) => {
            let entries: BTreeMap<String, &RawValue> =
                serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                path.push(k.clone());
                out.insert(k.clone(), json_value(v, elem, path, lenient)?);
                path.pop();
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries: BTreeMap<String, &RawValue> =
                serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                path.push(k.clone());
                let aty = match attrs.get(&k) {
                    Some(aty) => aty,
                    None if lenient => {
                        path.pop();
                        continue;
                    }
                    None => return Err(bad(path, "attribute not in the schema".to_owned())),
                };
                out.insert(k.clone(), json_value(v, aty, path, lenient)?);
                path.pop();
            }
            for k in attrs.keys() {
                out.entry(k.clone()).or_insert(Value::Null);
            }
            Ok(Value::Map(out))
        }
        Type::Dynamic => {
            #[derive(serde::Deserialize)]
            struct Wrapped<'a> {
                #[serde(borrow)]
                value: &'a RawValue,
                #[serde(rename = "type")]
                ty: serde_json::Value,
            }
            let wrapped: Wrapped<'_> = serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
            let inner_ty = Type::from_json(&wrapped.ty)?;
            let inner = json_value(wrapped.value, &inner_ty, path, lenient)?;
            Ok(Value::Dynamic(inner_ty, Box::new(inner)))
        }
    }
}

// ---------------------------------------------------------------------------
// serde bridge

impl Value {
    /// Whether this value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(items) => items.iter().any(Value::contains_unknown),
            Value::Map(entries) => entries.values().any(Value::contains_unknown),
            Value::Dynamic(_, inner) => inner.contains_unknown(),
            _ => false,
        }
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The attribute `name` of an object value (null when absent).
    pub fn attr(&self, name: &str) -> &Value {
        match self {
            Value::Map(entries) => entries.get(name).unwrap_or(&Value::Null),
            _ => &Value::Null,
        }
    }

    /// Converts a known value to plain JSON, for serde deserialisation into
    /// typed config. Unknown values become null (callers check
    /// [`Value::contains_unknown`] first when that matters).
    pub fn to_serde_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null | Value::Unknown => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(Number::Int(i)) => J::from(*i),
            Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Number(Number::Big(s)) => s.parse::<u64>().map(J::from).unwrap_or_else(|_| {
                serde_json::Number::from_f64(s.parse().unwrap_or(f64::NAN)).map_or(J::Null, J::Number)
            }),
            Value::String(s) => J::String(s.clone()),
            Value::List(items) => J::Array(items.iter().map(Value::to_serde_json).collect()),
            Value::Map(entries) => {
                J::Object(entries.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.to_serde_json())).collect())
            }
            Value::Dynamic(_, inner) => inner.to_serde_json(),
        }
    }

    /// Builds a value of type `ty` from plain JSON (serde output of typed state).
    /// Attributes absent from the JSON become null.
    pub fn from_serde_json(json: &serde_json::Value, ty: &Type) -> Result<Value, ValueError> {
        use serde_json::Value as J;
        let mismatch = || ValueError::Mismatch { path: "(serde)".to_owned(), ty: ty.to_string() };
        Ok(match (json, ty) {
            (J::Null, _) => Value::Null,
            (J::Bool(b), Type::Bool) => Value::Bool(*b),
            (J::Number(n), Type::Number) => Value::Number(Number::from_text(&n.to_string()).ok_or_else(mismatch)?),
            (J::String(s), Type::String) => Value::String(s.clone()),
            (J::Number(n), Type::String) => Value::String(n.to_string()),
            (J::Bool(b), Type::String) => Value::String(b.to_string()),
            (J::Array(items), Type::List(elem) | Type::Set(elem)) => {
                Value::List(items.iter().map(|i| Value::from_serde_json(i, elem)).collect::<Result<_, _>>()?)
            }
            (J::Array(items), Type::Tuple(elems)) if items.len() == elems.len() => Value::List(
                items.iter().zip(elems).map(|(i, t)| Value::from_serde_json(i, t)).collect::<Result<_, _>>()?,
            ),
            (J::Object(entries), Type::Map(elem)) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), Value::from_serde_json(v, elem)?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
            (J::Object(entries), Type::Object(attrs)) => {
                let mut out = BTreeMap::new();
                for (k, aty) in attrs {
                    out.insert(k.clone(), Value::from_serde_json(entries.get(k).unwrap_or(&J::Null), aty)?);
                }
                Value::Map(out)
            }
            (other, Type::Dynamic) => {
                let inner = json_to_untyped(other);
                Value::Dynamic(infer_type(&inner), Box::new(inner))
            }
            _ => return Err(mismatch()),
        })
    }
}

fn json_to_untyped(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Number::from_text(&n.to_string()).map_or(Value::Null, Value::Number),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::List(items.iter().map(json_to_untyped).collect()),
        J::Object(entries) => Value::Map(entries.iter().map(|(k, v)| (k.clone(), json_to_untyped(v))).collect()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obj(attrs: &[(&str, Type)]) -> Type {
        Type::Object(attrs.iter().map(|(k, t)| ((*k).to_owned(), t.clone())).collect())
    }

    #[test]
    fn unknown_is_fixext1_type_zero() {
        assert_eq!(to_msgpack(&Value::Unknown, &Type::String).unwrap(), vec![0xd4, 0, 0]);
        // A refined unknown (ext 0x0c with a map body) also decodes as unknown.
        let refined = [0xd4, 0x0c, 0x80];
        assert_eq!(from_msgpack(&refined, &Type::String).unwrap(), Value::Unknown);
        let refined_long = [0xc7, 3, 0x0c, 0x81, 0x01, 0xc2];
        assert_eq!(from_msgpack(&refined_long, &Type::String).unwrap(), Value::Unknown);
    }

    #[test]
    fn nested_unknown_inside_object_and_list_round_trips() {
        let ty = obj(&[("name", Type::String), ("tags", Type::List(Box::new(Type::String)))]);
        let v = Value::Map(BTreeMap::from([
            ("name".to_owned(), Value::Unknown),
            ("tags".to_owned(), Value::List(vec![Value::String("a".into()), Value::Unknown])),
        ]));
        let bytes = to_msgpack(&v, &ty).unwrap();
        assert_eq!(from_msgpack(&bytes, &ty).unwrap(), v);
        assert!(v.contains_unknown());
    }

    #[test]
    fn big_numbers_travel_as_decimal_strings() {
        let big = Number::from_text("123456789012345678901234567890").unwrap();
        assert!(matches!(big, Number::Big(_)));
        let bytes = to_msgpack(&Value::Number(big.clone()), &Type::Number).unwrap();
        assert_eq!(bytes[0], 0xbe, "a fixstr of 30 characters");
        assert_eq!(from_msgpack(&bytes, &Type::Number).unwrap(), Value::Number(big.clone()));
        let json = to_json(&Value::Number(big.clone()), &Type::Number).unwrap();
        assert_eq!(json, "123456789012345678901234567890");
        assert_eq!(from_json(json.as_bytes(), &Type::Number).unwrap(), Value::Number(big));
        // uint64 beyond i64 arrives as msgpack uint 64.
        let mut u = vec![0xcf];
        u.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            from_msgpack(&u, &Type::Number).unwrap(),
            Value::Number(Number::Big("18446744073709551615".into()))
        );
        // 0.1 is an exact f64 text; 0.1000000000000000000001 is not.
        assert_eq!(Number::from_text("0.1"), Some(Number::Float(0.1)));
        assert!(matches!(Number::from_text("0.1000000000000000000001"), Some(Number::Big(_))));
    }

    #[test]
    fn dynamic_value_is_type_json_then_value() {
        let v = Value::Dynamic(Type::List(Box::new(Type::String)), Box::new(Value::List(vec![Value::String("x".into())])));
        let bytes = to_msgpack(&v, &Type::Dynamic).unwrap();
        assert_eq!(bytes[0], 0x92);
        assert_eq!(from_msgpack(&bytes, &Type::Dynamic).unwrap(), v);
        let json = to_json(&v, &Type::Dynamic).unwrap();
        assert_eq!(json, r#"{"value":["x"],"type":["list","string"]}"#);
        assert_eq!(from_json(json.as_bytes(), &Type::Dynamic).unwrap(), v);
    }

    #[test]
    fn object_missing_attributes_decode_as_null() {
        let ty = obj(&[("a", Type::String), ("b", Type::Bool)]);
        let v = from_json(br#"{"a":"x"}"#, &ty).unwrap();
        assert_eq!(v.attr("b"), &Value::Null);
        assert!(from_json(br#"{"zzz":"x"}"#, &ty).is_err());
        let v = from_json_dropping_unknown_attributes(br#"{"a":"x","zzz":{"deep":1}}"#, &ty).unwrap();
        assert_eq!(v.attr("a"), &Value::String("x".into()));
        assert_eq!(v, from_json(br#"{"a":"x"}"#, &ty).unwrap());
    }

    #[test]
    fn type_notation_round_trips() {
        let ty = obj(&[("m", Type::Map(Box::new(Type::Set(Box::new(Type::Number))))), ("d", Type::Dynamic)]);
        assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
        assert_eq!(ty.to_json().to_string(), r#"["object",{"d":"dynamic","m":["map",["set","number"]]}]"#);
    }

    fn arb_type() -> impl Strategy<Value = Type> {
        let leaf = prop_oneof![Just(Type::Bool), Just(Type::Number), Just(Type::String), Just(Type::Dynamic)];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| Type::List(Box::new(t))),
                inner.clone().prop_map(|t| Type::Set(Box::new(t))),
                inner.clone().prop_map(|t| Type::Map(Box::new(t))),
                prop::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4).prop_map(Type::Object),
                prop::collection::vec(inner, 0..3).prop_map(Type::Tuple),
            ]
        })
    }

    fn arb_number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::Int),
            any::<f64>().prop_filter("finite non-integral", |f| f.is_finite() && f.fract() != 0.0).prop_map(Number::Float),
            "[1-9][0-9]{20,40}(\\.[0-9]{1,30})?".prop_map(|s| Number::from_text(&s).unwrap()),
        ]
    }

    fn arb_value(ty: Type, allow_unknown: bool) -> BoxedStrategy<Value> {
        let known: BoxedStrategy<Value> = match ty.clone() {
            Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Type::Number => arb_number().prop_map(Value::Number).boxed(),
            Type::String => ".{0,12}".prop_map(Value::String).boxed(),
            Type::Dynamic => prop_oneof![
                ".{0,5}".prop_map(|s| Value::Dynamic(Type::String, Box::new(Value::String(s)))),
                any::<bool>().prop_map(|b| Value::Dynamic(
                    Type::List(Box::new(Type::Bool)),
                    Box::new(Value::List(vec![Value::Bool(b)]))
                )),
            ]
            .boxed(),
            Type::List(elem) | Type::Set(elem) => prop::collection::vec(arb_value(*elem, allow_unknown), 0..3)
                .prop_map(Value::List)
                .boxed(),
            Type::Map(elem) => prop::collection::btree_map(".{0,4}", arb_value(*elem, allow_unknown), 0..3)
                .prop_map(Value::Map)
                .boxed(),
            Type::Object(attrs) => {
                let parts: Vec<BoxedStrategy<(String, Value)>> = attrs
                    .into_iter()
                    .map(|(k, t)| arb_value(t, allow_unknown).prop_map(move |v| (k.clone(), v)).boxed())
                    .collect();
                parts.prop_map(|kv| Value::Map(kv.into_iter().collect())).boxed()
            }
            Type::Tuple(elems) => {
                let parts: Vec<BoxedStrategy<Value>> = elems.into_iter().map(|t| arb_value(t, allow_unknown)).collect();
                parts.prop_map(Value::List).boxed()
            }
        };
        if allow_unknown {
            prop_oneof![6 => known, 1 => Just(Value::Null), 1 => Just(Value::Unknown)].boxed()
        } else {
            prop_oneof![6 => known, 1 => Just(Value::Null)].boxed()
        }
    }

    fn typed_value(allow_unknown: bool) -> impl Strategy<Value = (Type, Value)> {
        arb_type().prop_flat_map(move |ty| arb_value(ty.clone(), allow_unknown).prop_map(move |v| (ty.clone(), v)))
    }

    proptest! {
        #[test]
        fn msgpack_round_trips((ty, v) in typed_value(true)) {
            let bytes = to_msgpack(&v, &ty).unwrap();
            prop_assert_eq!(from_msgpack(&bytes, &ty).unwrap(), v);
        }

        #[test]
        fn json_round_trips((ty, v) in typed_value(false)) {
            let text = to_json(&v, &ty).unwrap();
            prop_assert_eq!(from_json(text.as_bytes(), &ty).unwrap(), v);
        }

        #[test]
        fn type_notation_round_trips_for_any_type(ty in arb_type()) {
            prop_assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
        }
    }
}
