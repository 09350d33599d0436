//! Renders JSON Schema failures (types, unknown keys, enums, ranges) as diagnostics in
//! a YAML author's words, each at the `FILE:LINE:COL` of the offending key or value,
//! with "did you mean" hints drawn from the schema itself.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::spec::diag::{did_you_mean, Diagnostic, Diagnostics};
use crate::spec::yaml::{escape, SourceMap};

/// Validates `value` against the spec's JSON Schema, one diagnostic per problem.
pub fn against_schema(schema: &Value, value: &Value, sources: &SourceMap, out: &mut Diagnostics) {
    // Compiled with draft 7 rules: they cover every keyword the generated schema uses,
    // and compiling under 2020-12 costs ~45 ms of meta-schema checking per process,
    // more than the rest of `deploy validate` together.
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(schema)
        .expect("the spec schema is valid");
    for err in validator.iter_errors(value) {
        let pointer = err.instance_path.as_str().to_string();
        let at = dotted(&pointer);
        match &err.kind {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = known_keys(schema, &pointer);
                for key in unexpected {
                    let child = format!("{pointer}/{}", escape(key));
                    let place = if at.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in `{at}`")
                    };
                    let mut d = Diagnostic::new(
                        sources.key(&child),
                        format!("unknown key `{key}` {place}"),
                    );
                    d = match did_you_mean(key, known.iter().map(String::as_str)) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None if !known.is_empty() => {
                            d.hint(format!("known keys here: {}", known.join(", ")))
                        }
                        None => d,
                    };
                    out.push(d);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let place = if at.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `{at}`")
                };
                out.push(Diagnostic::new(
                    sources.value(&pointer),
                    format!("missing required key `{name}` {place}"),
                ));
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => article(yaml_word(&t.to_string())),
                    TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| article(yaml_word(&t.to_string())))
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                out.push(
                    Diagnostic::new(
                        sources.value(&pointer),
                        format!(
                            "`{at}` must be {expected}, found {} {}",
                            article(type_name(&err.instance)),
                            short(&err.instance)
                        ),
                    )
                    .hint(type_hint(&err.instance)),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| {
                                v.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let found = err
                    .instance
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| err.instance.to_string());
                let mut d = Diagnostic::new(
                    sources.value(&pointer),
                    format!(
                        "`{at}` must be one of {}, found `{found}`",
                        choices.join(", ")
                    ),
                );
                if let Some(s) = did_you_mean(&found, choices.iter().map(String::as_str)) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                out.push(d);
            }
            ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. }
                if !choices_at(schema, &pointer).is_empty() =>
            {
                let choices = choices_at(schema, &pointer);
                let found = err
                    .instance
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| err.instance.to_string());
                let mut d = Diagnostic::new(
                    sources.value(&pointer),
                    format!(
                        "`{at}` must be one of {}, found `{found}`",
                        choices.join(", ")
                    ),
                );
                if let Some(s) = did_you_mean(&found, choices.iter().map(String::as_str)) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                out.push(d);
            }
            ValidationErrorKind::Minimum { limit } => out.push(Diagnostic::new(
                sources.value(&pointer),
                format!("`{at}` must be at least {limit}, found {}", err.instance),
            )),
            ValidationErrorKind::Maximum { limit } => out.push(Diagnostic::new(
                sources.value(&pointer),
                format!("`{at}` must be at most {limit}, found {}", err.instance),
            )),
            _ => out.push(Diagnostic::new(
                sources.value(&pointer),
                format!("`{at}`: {err}"),
            )),
        }
    }
}

/// JSON Schema's type names in the words a YAML author uses.
fn yaml_word(json_type: &str) -> &str {
    match json_type {
        "object" => "mapping",
        "array" => "list",
        "null" => "empty value",
        "boolean" => "boolean (true or false)",
        other => other,
    }
}

fn article(word: &str) -> String {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {word}"),
        _ => format!("a {word}"),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty value",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::Array(_) => "[…]".to_string(),
        Value::Object(_) => "{…}".to_string(),
        Value::Null => return String::new(),
        other => other.to_string(),
    };
    format!("({s})")
}

fn type_hint(v: &Value) -> String {
    match v {
        Value::Null => "the key has no value; give one or remove the key".into(),
        Value::String(s) if s.parse::<f64>().is_ok() => {
            "remove the quotes to write a number".into()
        }
        Value::Number(_) | Value::Bool(_) => "quote the value to write a string".into(),
        _ => "see `deploy schema` for the expected shape".into(),
    }
}

/// `/network/private_subnets/a` → `network.private_subnets.a`.
pub fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The property names the schema allows at `pointer`, for "did you mean".
fn known_keys(schema: &Value, pointer: &str) -> Vec<String> {
    schema_at(schema, pointer)
        .and_then(|s| {
            s.get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// The fixed values an enum-like schema at `pointer` allows (`enum`, or `oneOf` consts).
fn choices_at(schema: &Value, pointer: &str) -> Vec<String> {
    let Some(s) = schema_at(schema, pointer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let branches = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![s.clone()]);
    for b in branches {
        let b = resolve_ref(schema, &b);
        if let Some(c) = b.get("const").and_then(Value::as_str) {
            out.push(c.to_string());
        }
        if let Some(e) = b.get("enum").and_then(Value::as_array) {
            out.extend(e.iter().filter_map(Value::as_str).map(String::from));
        }
    }
    out
}

/// The (dereferenced) subschema that applies to the instance at `pointer`.
fn schema_at(schema: &Value, pointer: &str) -> Option<Value> {
    let deref = |s: &Value| -> Value { resolve_ref(schema, s).clone() };
    let mut s = deref(schema);
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        let next = if let Some(p) = s.get("properties").and_then(|p| p.get(&seg)) {
            p.clone()
        } else if let (Some(items), Ok(_)) = (s.get("items"), seg.parse::<usize>()) {
            items.clone()
        } else if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
            ap.clone()
        } else {
            return None;
        };
        s = deref(&next);
    }
    Some(s)
}

fn resolve_ref<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let target = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|name| root.get("$defs").and_then(|d| d.get(name)));
        match target {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}
