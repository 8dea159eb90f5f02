//! The template language of `spec.target.template`: a small, safe subset of
//! Go templates that reads only the keys fetched for this ExternalSecret.
//! There is no access to the environment, files, the network or other
//! objects, no loops and no variables, so rendering always terminates and its
//! output is bounded by its input. See `controller/TEMPLATES.md`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;

/// The functions a template may call, for documentation and error messages.
pub const FUNCTIONS: &[&str] = &[
    "b64enc", "b64dec", "upper", "lower", "trim", "quote", "squote", "toJson", "index",
];

/// The most bytes one rendering may produce, at any stage of any pipeline:
/// Kubernetes' limit for a whole Secret. A pipeline such as `"x" | b64enc |
/// b64enc | …` grows by a third a stage; it stops here instead of taking the
/// controller's memory.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// Why a template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is malformed.
    #[error("template {name:?} does not parse at byte {offset}: {problem}")]
    Parse {
        /// Which template (e.g. `data.url`).
        name: String,
        /// Byte offset of the problem in the template text.
        offset: usize,
        /// What is wrong and how to write it.
        problem: String,
    },
    /// The template parsed but could not be evaluated against the fetched keys.
    #[error("template {name:?} failed: {problem}")]
    Render {
        /// Which template.
        name: String,
        /// What failed and what to do.
        problem: String,
    },
    /// Rendering would produce more than it may (see [`MAX_OUTPUT`]).
    #[error("template {name:?} renders more than {limit} bytes, the room left in the Secret (Kubernetes allows 1 MiB per Secret); shorten its pipeline or its input")]
    TooLarge {
        /// Which template.
        name: String,
        /// The bound it hit, in bytes.
        limit: usize,
    },
}

impl TemplateError {
    /// Stable reason code for conditions and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            TemplateError::Parse { .. } => "TemplateParseFailed",
            TemplateError::Render { .. } => "TemplateRenderFailed",
            TemplateError::TooLarge { .. } => "TemplateTooLarge",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// `.key`: a fetched key.
    Field(String),
    /// `.`: the whole set of keys (only `index` accepts it).
    Dot,
    /// `"text"`.
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Command {
    Value(Term),
    Call { function: String, args: Vec<Term> },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Vec<Command>),
}

enum Value<'a> {
    Bytes(Vec<u8>),
    Data(&'a BTreeMap<String, Vec<u8>>),
}

/// Renders `text` (named `name` in errors) against the fetched `data`, in at
/// most [`MAX_OUTPUT`] bytes.
pub fn render(name: &str, text: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, TemplateError> {
    render_within(name, text, data, MAX_OUTPUT)
}

/// Renders `text` in at most `limit` bytes: no stage of any pipeline, and not
/// the whole output, may pass it. Callers that render several templates into
/// one Secret pass what is left of the Secret's room.
pub fn render_within(name: &str, text: &str, data: &BTreeMap<String, Vec<u8>>, limit: usize) -> Result<Vec<u8>, TemplateError> {
    let limit = limit.min(MAX_OUTPUT);
    let too_large = || TemplateError::TooLarge { name: name.to_string(), limit };
    let nodes = parse(name, text)?;
    let mut out = Vec::new();
    for node in nodes {
        match node {
            Node::Text(literal) => {
                if out.len().saturating_add(literal.len()) > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(literal.as_bytes());
            }
            Node::Action(pipeline) => match run_pipeline(name, &pipeline, data, limit)? {
                Value::Bytes(bytes) => {
                    if out.len().saturating_add(bytes.len()) > limit {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&bytes);
                }
                Value::Data(_) => {
                    return Err(render_error(name, "`.` alone is the set of all keys; write `.key` or `index . \"key\"`"));
                }
            },
        }
    }
    Ok(out)
}

/// Checks that `text` parses, without data; used to report errors early.
pub fn validate(name: &str, text: &str) -> Result<(), TemplateError> {
    parse(name, text).map(|_| ())
}

fn render_error(name: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Render {
        name: name.to_string(),
        problem: problem.into(),
    }
}

fn parse(name: &str, text: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes = Vec::new();
    let mut rest = text;
    let mut offset = 0usize;
    let mut trim_next_text = false;
    while let Some(open) = rest.find("{{") {
        let mut literal = &rest[..open];
        if trim_next_text {
            literal = literal.trim_start();
        }
        let mut inner_start = open + 2;
        if rest[inner_start..].starts_with('-') {
            literal = literal.trim_end();
            inner_start += 1;
        }
        if !literal.is_empty() {
            nodes.push(Node::Text(literal.to_string()));
        }
        let close = rest[inner_start..]
            .find("}}")
            .ok_or_else(|| TemplateError::Parse {
                name: name.to_string(),
                offset: offset + open,
                problem: "`{{` is never closed with `}}`".to_string(),
            })?;
        let mut inner = &rest[inner_start..inner_start + close];
        trim_next_text = false;
        if let Some(stripped) = inner.strip_suffix('-') {
            inner = stripped;
            trim_next_text = true;
        }
        let pipeline = parse_pipeline(name, inner, offset + inner_start)?;
        nodes.push(Node::Action(pipeline));
        let consumed = inner_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    let tail = if trim_next_text { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        nodes.push(Node::Text(tail.to_string()));
    }
    Ok(nodes)
}

fn parse_pipeline(name: &str, inner: &str, base: usize) -> Result<Vec<Command>, TemplateError> {
    let tokens = tokenize(name, inner, base)?;
    let mut commands = Vec::new();
    let mut current: Vec<(usize, Token)> = Vec::new();
    for (position, token) in tokens.into_iter().chain(std::iter::once((base + inner.len(), Token::Pipe))) {
        if token == Token::Pipe {
            if current.is_empty() {
                return Err(TemplateError::Parse {
                    name: name.to_string(),
                    offset: position,
                    problem: "empty command: write `{{ .key }}` or `{{ .key | upper }}`".to_string(),
                });
            }
            commands.push(build_command(name, std::mem::take(&mut current))?);
        } else {
            current.push((position, token));
        }
    }
    Ok(commands)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Pipe,
    Ident(String),
    Term(Term),
}

fn tokenize(name: &str, inner: &str, base: usize) -> Result<Vec<(usize, Token)>, TemplateError> {
    let parse_error = |offset: usize, problem: &str| TemplateError::Parse {
        name: name.to_string(),
        offset,
        problem: problem.to_string(),
    };
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = inner.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let position = base + at;
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            tokens.push((position, Token::Pipe));
            i += 1;
        } else if c == '.' {
            i += 1;
            let mut field = String::new();
            while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '_') {
                field.push(chars[i].1);
                i += 1;
            }
            if i < chars.len() && !(chars[i].1.is_whitespace() || chars[i].1 == '|') {
                return Err(parse_error(
                    base + chars[i].0,
                    "a key after `.` may hold only letters, digits and `_`; for other keys write `index . \"my-key\"`",
                ));
            }
            let term = if field.is_empty() { Term::Dot } else { Term::Field(field) };
            tokens.push((position, Token::Term(term)));
        } else if c == '"' {
            i += 1;
            let mut text = String::new();
            let mut closed = false;
            while i < chars.len() {
                let (_, ch) = chars[i];
                i += 1;
                match ch {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        let Some(&(_, escaped)) = chars.get(i) else { break };
                        i += 1;
                        text.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '"' => '"',
                            '\\' => '\\',
                            _ => return Err(parse_error(position, "unknown escape in string: use \\n, \\t, \\r, \\\" or \\\\")),
                        });
                    }
                    other => text.push(other),
                }
            }
            if !closed {
                return Err(parse_error(position, "string literal is not closed with `\"`"));
            }
            tokens.push((position, Token::Term(Term::Literal(text))));
        } else if c.is_ascii_alphabetic() {
            let mut ident = String::new();
            while i < chars.len() && chars[i].1.is_ascii_alphanumeric() {
                ident.push(chars[i].1);
                i += 1;
            }
            tokens.push((position, Token::Ident(ident)));
        } else {
            return Err(parse_error(
                position,
                "unexpected character: the language has `.key`, \"strings\", functions and `|` only (see TEMPLATES.md)",
            ));
        }
    }
    Ok(tokens)
}

fn build_command(name: &str, tokens: Vec<(usize, Token)>) -> Result<Command, TemplateError> {
    let mut iter = tokens.into_iter();
    let Some((position, first)) = iter.next() else {
        return Err(TemplateError::Parse {
            name: name.to_string(),
            offset: 0,
            problem: "empty command".to_string(),
        });
    };
    match first {
        Token::Term(term) => {
            if let Some((extra, _)) = iter.next() {
                return Err(TemplateError::Parse {
                    name: name.to_string(),
                    offset: extra,
                    problem: "a value cannot take arguments: to apply a function write `{{ .key | upper }}`".to_string(),
                });
            }
            Ok(Command::Value(term))
        }
        Token::Ident(function) => {
            if !FUNCTIONS.contains(&function.as_str()) {
                return Err(TemplateError::Parse {
                    name: name.to_string(),
                    offset: position,
                    problem: format!("unknown function {function:?}: available are {}", FUNCTIONS.join(", ")),
                });
            }
            let mut args = Vec::new();
            for (at, token) in iter {
                match token {
                    Token::Term(term) => args.push(term),
                    _ => {
                        return Err(TemplateError::Parse {
                            name: name.to_string(),
                            offset: at,
                            problem: "function arguments must be `.key`, `.` or \"strings\"; nested calls are written with `|`".to_string(),
                        });
                    }
                }
            }
            Ok(Command::Call { function, args })
        }
        Token::Pipe => Err(TemplateError::Parse {
            name: name.to_string(),
            offset: position,
            problem: "empty command".to_string(),
        }),
    }
}

fn evaluate<'a>(name: &str, term: &Term, data: &'a BTreeMap<String, Vec<u8>>) -> Result<Value<'a>, TemplateError> {
    match term {
        Term::Dot => Ok(Value::Data(data)),
        Term::Literal(text) => Ok(Value::Bytes(text.as_bytes().to_vec())),
        Term::Field(key) => data.get(key).map(|v| Value::Bytes(v.clone())).ok_or_else(|| {
            let known: Vec<&str> = data.keys().map(String::as_str).collect();
            render_error(name, format!("no fetched key {key:?} (known keys: {}); add it under `data` or fix the name", known.join(", ")))
        }),
    }
}

fn run_pipeline<'a>(name: &str, pipeline: &[Command], data: &'a BTreeMap<String, Vec<u8>>, limit: usize) -> Result<Value<'a>, TemplateError> {
    let mut piped: Option<Value<'a>> = None;
    for command in pipeline {
        let value = match command {
            Command::Value(term) => {
                if piped.is_some() {
                    return Err(render_error(name, "a value cannot follow `|`: only functions can"));
                }
                evaluate(name, term, data)?
            }
            Command::Call { function, args } => {
                let mut values = args
                    .iter()
                    .map(|term| evaluate(name, term, data))
                    .collect::<Result<Vec<_>, _>>()?;
                let key_is_literal = function == "index" && matches!(args.last(), Some(Term::Literal(_)));
                if let Some(previous) = piped.take() {
                    values.push(previous);
                }
                call(name, function, values, key_is_literal)?
            }
        };
        // Checked after every stage, so no stage works on more than about
        // 4/3 of the limit (b64enc) or 6 times it (quote of control bytes).
        if matches!(&value, Value::Bytes(bytes) if bytes.len() > limit) {
            return Err(TemplateError::TooLarge { name: name.to_string(), limit });
        }
        piped = Some(value);
    }
    piped.ok_or_else(|| render_error(name, "empty action `{{ }}`"))
}

fn text_of(name: &str, function: &str, bytes: Vec<u8>) -> Result<String, TemplateError> {
    String::from_utf8(bytes).map_err(|_| render_error(name, format!("{function} needs text, but the value is binary; use b64enc")))
}

/// Calls one function. `key_is_literal` says whether `index`'s key was
/// written in the template: only then may an error quote it, since a key
/// piped in from a fetched value is a secret.
fn call<'a>(name: &str, function: &str, mut args: Vec<Value<'a>>, key_is_literal: bool) -> Result<Value<'a>, TemplateError> {
    let arity = if function == "index" { 2 } else { 1 };
    if args.len() != arity {
        return Err(render_error(
            name,
            format!("{function} takes {arity} argument(s), got {}", args.len()),
        ));
    }
    if function == "index" {
        let key = args.pop();
        let map = args.pop();
        return match (map, key) {
            (Some(Value::Data(map)), Some(Value::Bytes(key))) => {
                let key = text_of(name, function, key)?;
                map.get(&key).map(|v| Value::Bytes(v.clone())).ok_or_else(|| {
                    if key_is_literal {
                        render_error(name, format!("no fetched key {key:?}; add it under `data` or fix the name"))
                    } else {
                        render_error(name, "index found no fetched key named by the piped value (not shown: it is a fetched value)")
                    }
                })
            }
            _ => Err(render_error(name, "index is written `index . \"key\"`")),
        };
    }
    let bytes = match args.pop() {
        Some(Value::Bytes(bytes)) => bytes,
        _ => return Err(render_error(name, format!("{function} needs a value such as `.key`, not `.`"))),
    };
    let result = match function {
        "b64enc" => STANDARD.encode(&bytes).into_bytes(),
        "b64dec" => crate::decode::decode(name, bytes, secretbridge_shared::DecodingStrategy::Base64)
            .map_err(|_| render_error(name, "b64dec: the value is not base64"))?,
        "upper" => text_of(name, function, bytes)?.to_uppercase().into_bytes(),
        "lower" => text_of(name, function, bytes)?.to_lowercase().into_bytes(),
        "trim" => text_of(name, function, bytes)?.trim().as_bytes().to_vec(),
        "quote" => format!("{:?}", text_of(name, function, bytes)?).into_bytes(),
        "squote" => format!("'{}'", text_of(name, function, bytes)?).into_bytes(),
        "toJson" => serde_json::Value::String(text_of(name, function, bytes)?).to_string().into_bytes(),
        other => return Err(render_error(name, format!("unknown function {other:?}"))),
    };
    Ok(Value::Bytes(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        [
            ("user", "admin"),
            ("host", "db.internal"),
            ("password", " s3cret\n"),
            ("my-key", "dashed"),
            ("b64", "aGVsbG8="),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    fn ok(text: &str) -> String {
        match render("t", text, &data()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => panic!("{text:?}: {error}"),
        }
    }

    #[test]
    fn substitutes_keys_and_text() {
        assert_eq!(ok("postgres://{{ .user }}@{{.host}}:5432"), "postgres://admin@db.internal:5432");
        assert_eq!(ok("no actions"), "no actions");
        assert_eq!(ok(r#"{{ index . "my-key" }}"#), "dashed");
        assert_eq!(ok(r#"{{ "lit" }}"#), "lit");
    }

    #[test]
    fn functions_in_both_call_forms() {
        assert_eq!(ok("{{ .user | upper }}"), "ADMIN");
        assert_eq!(ok("{{ upper .user }}"), "ADMIN");
        assert_eq!(ok("{{ .password | trim | quote }}"), "\"s3cret\"");
        assert_eq!(ok("{{ .user | b64enc }}"), "YWRtaW4=");
        assert_eq!(ok("{{ .b64 | b64dec }}"), "hello");
        assert_eq!(ok("{{ .user | squote }}"), "'admin'");
        assert_eq!(ok("{{ .password | toJson }}"), "\" s3cret\\n\"");
        assert_eq!(ok("{{ .host | upper | lower }}"), "db.internal");
        assert_eq!(ok(r#"{{ index . "my-key" | upper }}"#), "DASHED");
    }

    #[test]
    fn trim_markers_remove_surrounding_space() {
        assert_eq!(ok("a  {{- .user -}}  b"), "aadminb");
        assert_eq!(ok("a  {{ .user -}}\n b"), "a  adminb");
    }

    #[test]
    fn errors_say_what_and_where() {
        let unknown_key = render("data.url", "{{ .nope }}", &data());
        assert!(matches!(&unknown_key, Err(TemplateError::Render { problem, .. }) if problem.contains("known keys")));
        assert!(matches!(render("t", "{{ env \"HOME\" }}", &data()), Err(TemplateError::Parse { problem, .. }) if problem.contains("unknown function")));
        assert!(matches!(render("t", "{{ .user ", &data()), Err(TemplateError::Parse { offset: 0, .. })));
        assert!(matches!(render("t", "{{ }}", &data()), Err(TemplateError::Parse { .. })));
        assert!(matches!(render("t", "{{ .a-b }}", &data()), Err(TemplateError::Parse { .. })));
        assert!(matches!(render("t", "{{ . }}", &data()), Err(TemplateError::Render { .. })));
        assert!(matches!(render("t", "{{ upper }}", &data()), Err(TemplateError::Render { .. })));
        assert!(matches!(render("t", "{{ .user | .host }}", &data()), Err(TemplateError::Render { .. })));
        assert!(matches!(render("t", "{{ readFile \"/etc/passwd\" }}", &data()), Err(TemplateError::Parse { .. })));
        assert!(matches!(render("t", "{{ \"open }}", &data()), Err(TemplateError::Parse { .. })));
    }

    /// Regression guard for GHSA-77v3-r3jw-j2v2 / CVE-2026-34984 (ESO
    /// templates that could read other objects or reach the network): the
    /// Go/sprig/Helm functions that do so do not exist here and are refused
    /// when the template is parsed, before any data is touched.
    #[test]
    fn functions_that_read_objects_files_env_or_network_do_not_exist() {
        const REACHING_OUT: &[&str] = &[
            "lookup", "getSecret", "getSecretKey", "fromSecret", "env", "expandenv", "readFile", "include",
            "tpl", "getHostByName", "httpGet", "fetch", "exec", "template", "call", "fromYaml", "fromJson",
        ];
        for function in REACHING_OUT {
            assert!(!FUNCTIONS.contains(function), "{function} must not be a template function");
            for text in [format!("{{{{ {function} \"x\" }}}}"), format!("{{{{ .user | {function} }}}}")] {
                let refused = validate("t", &text);
                assert!(
                    matches!(&refused, Err(TemplateError::Parse { problem, .. }) if problem.contains("unknown function")),
                    "{text}: {refused:?}"
                );
            }
        }
        // And the guard can fail: a real function passes the same check.
        assert_eq!(validate("t", "{{ upper \"x\" }}"), Ok(()));
    }

    /// The hostile tenant's template: sixty b64enc stages on a literal, no
    /// remote data needed. Unbounded it grows to about 1.2 GiB.
    #[test]
    fn a_b64enc_tower_stops_at_the_bound_naming_the_template_key() {
        let tower = format!("{{{{ \"x\"{} }}}}", " | b64enc".repeat(60));
        match render("template.data.k", &tower, &data()) {
            Err(TemplateError::TooLarge { name, limit }) => {
                assert_eq!(name, "template.data.k");
                assert_eq!(limit, MAX_OUTPUT);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // A tower that fits is rendered.
        assert_eq!(ok(r#"{{ "x" | b64enc | b64enc }}"#), "ZUE9PQ==");
        // Repeated actions count against the same bound as one pipeline.
        let wide = "{{ .user }}".repeat(200);
        assert!(matches!(render_within("t", &wide, &data(), 999), Err(TemplateError::TooLarge { limit: 999, .. })));
        assert_eq!(render_within("t", &wide, &data(), 1000).map(|v| v.len()), Ok(1000));
        assert!(matches!(render_within("t", "plain text", &data(), 5), Err(TemplateError::TooLarge { .. })));
    }

    #[test]
    fn index_never_quotes_a_key_that_came_from_a_value() {
        let leaked = render("t", "{{ .password | index . }}", &data()).expect_err("no such key");
        assert!(!leaked.to_string().contains("s3cret"), "{leaked}");
        let named = render("t", r#"{{ index . "nope" }}"#, &data()).expect_err("no such key");
        assert!(named.to_string().contains("nope"), "{named}");
    }

    proptest! {
        #[test]
        fn a_key_renders_to_its_exact_bytes(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            let data: BTreeMap<String, Vec<u8>> = [("k".to_string(), value.clone())].into_iter().collect();
            prop_assert_eq!(render("t", "{{ .k }}", &data), Ok(value.clone()));
            prop_assert_eq!(render("t", "{{ .k | b64enc | b64dec }}", &data), Ok(value));
        }

        #[test]
        fn validate_and_render_agree_on_parse_errors(text in "[{}| .\"a-z\\\\-]{0,40}") {
            let parsed = validate("t", &text);
            let rendered = render("t", &text, &data());
            prop_assert_eq!(parsed.is_err(), matches!(rendered, Err(TemplateError::Parse { .. })));
        }

        #[test]
        fn never_panics(text in "\\PC{0,64}") {
            let _ = render("t", &text, &data());
        }

        #[test]
        fn never_panics_on_template_like_input(text in "[{}| .\"a-z\\\\-]{0,40}") {
            let _ = render("t", &text, &data());
        }

        #[test]
        fn text_without_braces_is_unchanged(text in "[^{}]{0,64}") {
            prop_assert_eq!(render("t", &text, &data()), Ok(text.into_bytes()));
        }
    }
}
