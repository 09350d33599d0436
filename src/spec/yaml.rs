//! Reading spec files: YAML with positions, the `extends` chain and its deep merge, and
//! the conversion to JSON that schema validation and deserialization work on.
//!
//! Every value and key keeps the file, line and column it came from (after merging, a
//! value inherited from `base.yaml` still points into `base.yaml`), recorded in a
//! [`SourceMap`] keyed by JSON pointer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use marked_yaml::loader::LoaderOptions;
use marked_yaml::types::{MarkedMappingNode, Node};
use marked_yaml::LoadError;
use serde_json::{Map, Number, Value};

use super::diag::{Diagnostic, Diagnostics, Pos};

#[derive(Debug, Clone, Copy)]
struct Loc {
    file: u32,
    line: u32,
    col: u32,
}

/// Where each part of the merged document came from, by JSON pointer (`/network/vpc_cidr`).
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<PathBuf>,
    values: HashMap<String, Loc>,
    keys: HashMap<String, Loc>,
}

impl SourceMap {
    /// The files that made up the document, the environment's own file first.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn pos(&self, loc: Loc) -> Pos {
        Pos {
            file: self.files[loc.file as usize].clone(),
            line: loc.line as usize,
            col: loc.col as usize,
        }
    }

    /// Position of the value at `pointer`, or of its nearest ancestor present in a file
    /// (a defaulted field points at the mapping that omitted it).
    pub fn value(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.values.get(p) {
                return self.pos(*loc);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => {
                    return Pos {
                        file: self.files.first().cloned().unwrap_or_default(),
                        line: 1,
                        col: 1,
                    }
                }
            }
        }
    }

    /// Position of the key that introduces `pointer`, falling back to its value.
    pub fn key(&self, pointer: &str) -> Pos {
        match self.keys.get(pointer) {
            Some(loc) => self.pos(*loc),
            None => self.value(pointer),
        }
    }
}

/// Escapes one JSON pointer segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A spec document after `extends` merging, as JSON, with its source map.
pub struct Document {
    pub value: Value,
    pub sources: SourceMap,
}

/// Reads `path` and everything it extends, merges them and converts to JSON.
pub fn load(path: &Path) -> Result<Document, Diagnostics> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut chain: Vec<Node> = Vec::new();
    let mut next = Some((path.to_path_buf(), None::<Pos>));
    while let Some((file, referenced_at)) = next.take() {
        let idx = files.len();
        let canonical = file.canonicalize().unwrap_or_else(|_| file.clone());
        if let Some(first) = files
            .iter()
            .position(|f| f.canonicalize().unwrap_or_else(|_| f.clone()) == canonical)
        {
            let mut cycle: Vec<String> = files[first..]
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            cycle.push(file.display().to_string());
            let pos = referenced_at.unwrap_or_else(|| start_of(&file));
            return Err(one(Diagnostic::new(
                pos,
                format!("`extends` forms a loop: {}", cycle.join(" → ")),
            )
            .hint("remove `extends` from one of these files")));
        }
        files.push(file.clone());
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                let (pos, what) = match referenced_at {
                    Some(p) => (p, "the file named by `extends`"),
                    None => (start_of(&file), "the spec file"),
                };
                return Err(one(Diagnostic::new(
                    pos,
                    format!("cannot read {what} {}: {}", file.display(), io_reason(&e)),
                )
                .hint(
                    "check the path; `extends` is relative to the file that contains it",
                )));
            }
        };
        let node = parse(idx, &file, &text)?;
        let mapping = node.as_mapping().expect("parse only returns mappings");
        if let Some(ext) = mapping.get_node("extends") {
            let ext_pos = marker_pos(&file, ext);
            match ext.as_scalar() {
                Some(s) if !s.as_str().trim().is_empty() => {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    next = Some((normalize(&dir.join(s.as_str())), Some(ext_pos)));
                }
                _ => {
                    return Err(one(Diagnostic::new(
                        ext_pos,
                        "`extends` must be a file name",
                    )
                    .hint("for example `extends: base.yaml`")))
                }
            }
        }
        chain.push(node);
    }

    // Merge from the root of the chain down: each child wins over what it extends.
    let mut merged = chain.pop().expect("at least one file");
    while let Some(child) = chain.pop() {
        merged = merge(merged, child);
    }
    if let Some(m) = merged.as_mapping_mut() {
        m.remove("extends");
    }

    let mut sources = SourceMap {
        files,
        ..Default::default()
    };
    let value = to_json(&merged, String::new(), &mut sources);
    Ok(Document { value, sources })
}

/// Removes `.` and folds `dir/..` without touching the file system, so messages name
/// `environments/base.yaml` rather than `tests/../environments/base.yaml`.
/// One file's document as it is written, without following `extends` (what an
/// editor checks against the schema).
pub fn file_value(path: &Path) -> Result<Value, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        one(Diagnostic::new(
            start_of(path),
            format!("cannot read {}: {}", path.display(), io_reason(&e)),
        ))
    })?;
    let node = parse(0, path, &text)?;
    let mut sources = SourceMap::default();
    Ok(to_json(&node, String::new(), &mut sources))
}

fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

fn one(d: Diagnostic) -> Diagnostics {
    Diagnostics(vec![d])
}

fn start_of(file: &Path) -> Pos {
    Pos {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn marker_pos(file: &Path, node: &Node) -> Pos {
    match node.span().start() {
        Some(m) => Pos {
            file: file.to_path_buf(),
            line: m.line(),
            col: m.column(),
        },
        None => start_of(file),
    }
}

fn parse(idx: usize, file: &Path, text: &str) -> Result<Node, Diagnostics> {
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Err(one(Diagnostic::new(start_of(file), "the file is empty")
            .hint(
                "a spec needs at least `project`, `environment`, `region` and `network`",
            )));
    }
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(idx, text, options).map_err(|e| one(load_error(file, e)))
}

fn load_error(file: &Path, e: LoadError) -> Diagnostic {
    let at = |m: &marked_yaml::Marker| Pos {
        file: file.to_path_buf(),
        line: m.line(),
        col: m.column(),
    };
    match e {
        LoadError::TopLevelMustBeMapping(m) => Diagnostic::new(
            at(&m),
            "the top level of a spec must be a mapping of keys to values",
        )
        .hint("start with `project: NAME`"),
        LoadError::TopLevelMustBeSequence(m) => {
            Diagnostic::new(at(&m), "unexpected sequence at the top level")
        }
        LoadError::UnexpectedAnchor(m) => Diagnostic::new(
            at(&m),
            "YAML anchors and aliases are not supported in specs",
        )
        .hint("use `extends:` to share settings between environments"),
        LoadError::MappingKeyMustBeScalar(m) => {
            Diagnostic::new(at(&m), "mapping keys must be plain names")
        }
        LoadError::UnexpectedTag(m) => {
            Diagnostic::new(at(&m), "YAML tags (`!name`) are not supported in specs")
        }
        LoadError::ScanError(m, err) => {
            #[allow(deprecated)]
            let reason = std::error::Error::description(&err).to_string();
            Diagnostic::new(at(&m), format!("invalid YAML: {reason}"))
                .hint("check indentation, quotes and `key: value` spacing around this line")
        }
        LoadError::DuplicateKey(inner) => {
            let pos = inner
                .key
                .span()
                .start()
                .map(at)
                .unwrap_or_else(|| start_of(file));
            let first = inner
                .prev_key
                .span()
                .start()
                .map(|m| format!("line {}", m.line()))
                .unwrap_or_else(|| "earlier".into());
            Diagnostic::new(
                pos,
                format!(
                    "duplicate key `{}` (first defined on {first})",
                    inner.key.as_str()
                ),
            )
            .hint("remove one of them")
        }
    }
}

/// Deep merge: mappings merge key by key with the child winning, anything else
/// (scalars, lists) is replaced by the child's value.
fn merge(base: Node, child: Node) -> Node {
    match (base, child) {
        (Node::Mapping(mut b), Node::Mapping(c)) => {
            let span = *c.span();
            for (k, v) in c.iter() {
                let merged = match b.remove(k.as_str()) {
                    Some(bv) => merge(bv, v.clone()),
                    None => v.clone(),
                };
                b.insert(k.clone(), merged);
            }
            let mut m = MarkedMappingNode::new(
                span,
                b.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            );
            *m.span_mut() = span;
            Node::Mapping(m)
        }
        (_, c) => c,
    }
}

fn loc_of(node_span: &marked_yaml::Span) -> Option<Loc> {
    node_span.start().map(|m| Loc {
        file: m.source() as u32,
        line: m.line() as u32,
        col: m.column() as u32,
    })
}

fn to_json(node: &Node, pointer: String, sources: &mut SourceMap) -> Value {
    if let Some(loc) = loc_of(node.span()) {
        sources.values.insert(pointer.clone(), loc);
    }
    match node {
        Node::Scalar(s) => scalar(s),
        Node::Sequence(seq) => Value::Array(
            seq.iter()
                .enumerate()
                .map(|(i, n)| to_json(n, format!("{pointer}/{i}"), sources))
                .collect(),
        ),
        Node::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let child = format!("{pointer}/{}", escape(k.as_str()));
                if let Some(loc) = loc_of(k.span()) {
                    sources.keys.insert(child.clone(), loc);
                }
                out.insert(k.as_str().to_string(), to_json(v, child, sources));
            }
            Value::Object(out)
        }
    }
}

/// YAML 1.2 core-schema typing of a plain scalar; quoted scalars stay strings.
fn scalar(s: &marked_yaml::types::MarkedScalarNode) -> Value {
    let text = s.as_str();
    if !s.may_coerce() {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| {
            b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
        });
    if looks_float {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}
