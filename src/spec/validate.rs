//! Checks a merged spec document: first against the JSON Schema (types, unknown keys,
//! enums, ranges), then the rules that span fields (CIDR containment and overlap, AWS
//! name limits once prefixed, schedule expressions, references by logical name).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ipnet::Ipv4Net;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::diag::{did_you_mean, Diagnostic, Diagnostics};
use super::model::{NatMode, Rule, Spec, SubnetSet};
use super::yaml::{escape, SourceMap};

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

/// Cross-field rules on a schema-valid spec.
pub fn semantics(spec: &Spec, sources: &SourceMap, out: &mut Diagnostics) {
    let mut v = Checker { spec, sources, out };
    v.identity();
    let subnets = v.network();
    v.security_groups();
    v.valkey(&subnets);
    v.cognito();
    v.functions(&subnets);
    v.api();
    v.schedules();
    v.logs();
}

/// A diagnostic just recorded, to which a hint may be added.
struct Added<'a>(&'a mut Diagnostic);

impl Added<'_> {
    fn hint(self, hint: impl Into<String>) {
        self.0.hint = Some(hint.into());
    }
}

struct Checker<'a> {
    spec: &'a Spec,
    sources: &'a SourceMap,
    out: &'a mut Diagnostics,
}

/// Subnets that parsed, by set, for the checks that refer to them.
#[derive(Default)]
struct Subnets {
    public: BTreeSet<String>,
    private: BTreeSet<String>,
}

const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

impl Checker<'_> {
    fn err(&mut self, pointer: &str, message: impl Into<String>) -> Added<'_> {
        self.out
            .push(Diagnostic::new(self.sources.value(pointer), message));
        Added(self.out.0.last_mut().expect("just pushed"))
    }

    fn key_err(&mut self, pointer: &str, message: impl Into<String>) -> Added<'_> {
        self.out
            .push(Diagnostic::new(self.sources.key(pointer), message));
        Added(self.out.0.last_mut().expect("just pushed"))
    }

    fn prefix(&self) -> String {
        format!("{}-{}", self.spec.project, self.spec.environment)
    }

    fn identity(&mut self) {
        for (key, value) in [
            ("project", &self.spec.project),
            ("environment", &self.spec.environment),
        ] {
            if value.is_empty() {
                self.err("", format!("missing required key `{key}`"))
                    .hint(format!(
                        "add `{key}: NAME` (lowercase letters, digits and hyphens)"
                    ));
            } else if !is_slug(value) {
                self.err(&format!("/{key}"), format!("`{key}` must be lowercase letters, digits and single hyphens, starting with a letter; found `{value}`"))
                    .hint("AWS resource names are built from it, and several services accept only this form");
            }
        }
        if let Some(e) = &self.spec.ephemeral {
            if humantime::parse_rfc3339(&e.expires_at).is_err() {
                self.err(
                    "/ephemeral/expires_at",
                    format!("`{}` is not an RFC 3339 UTC time", e.expires_at),
                )
                .hint("for example `2026-11-23T12:00:00Z`");
            }
        }
        let region = &self.spec.region;
        if region.is_empty() {
            self.err("", "missing required key `region`")
                .hint("add `region: us-east-1` (or your region)");
        } else if !is_region(region) {
            self.err("/region", format!("`{region}` is not an AWS region name"))
                .hint("for example `us-east-1` or `eu-west-2`");
        } else if !KNOWN_REGIONS.contains(&region.as_str()) {
            let hint = did_you_mean(region, KNOWN_REGIONS.iter().copied())
                .map(|r| format!("did you mean `{r}`?"))
                .unwrap_or_else(|| "regions are named like `us-east-1` or `eu-west-2`".into());
            self.err(
                "/region",
                format!("`{region}` is not a region in any AWS partition this build knows"),
            )
            .hint(hint);
        }
        for (k, val) in &self.spec.tags {
            let p = format!("/tags/{}", escape(k));
            if k.starts_with("aws:") || k.starts_with("deploy:") {
                self.key_err(&p, format!("tag key `{k}` uses a reserved prefix"))
                    .hint("`aws:` belongs to AWS and `deploy:` to this tool");
            } else if k.is_empty() || k.len() > 128 || val.len() > 256 {
                self.key_err(
                    &p,
                    "tag keys must be 1–128 characters and values at most 256",
                );
            }
        }
    }

    fn network(&mut self) -> Subnets {
        let net = &self.spec.network;
        let mut found = Subnets::default();
        let needs_network = !net.public_subnets.is_empty()
            || !net.private_subnets.is_empty()
            || self.spec.valkey.is_some();
        if net.vpc_cidr.is_empty() {
            if needs_network {
                self.err("/network", "missing `network.vpc_cidr`")
                    .hint("for example `vpc_cidr: 10.0.0.0/16`");
            }
            return found;
        }
        let vpc = match parse_cidr(&net.vpc_cidr) {
            Ok(c) => c,
            Err(why) => {
                self.err(
                    "/network/vpc_cidr",
                    format!("`{}` is not a valid IPv4 CIDR block: {why}", net.vpc_cidr),
                )
                .hint("for example `10.0.0.0/16`");
                return found;
            }
        };
        if !(16..=28).contains(&vpc.prefix_len()) {
            self.err(
                "/network/vpc_cidr",
                format!(
                    "a VPC block must be between /16 and /28, found /{}",
                    vpc.prefix_len()
                ),
            );
        }
        let mut seen: Vec<(String, Ipv4Net, String)> = Vec::new();
        for (set, map) in [
            ("public_subnets", &net.public_subnets),
            ("private_subnets", &net.private_subnets),
        ] {
            for (az, cidr) in map {
                let p = format!("/network/{set}/{}", escape(az));
                // Counted even when its block is wrong, so later checks do not echo it.
                if set == "public_subnets" {
                    found.public.insert(az.clone());
                } else {
                    found.private.insert(az.clone());
                }
                if !(az.len() == 1 && az.chars().all(|c| c.is_ascii_lowercase())) {
                    let example = format!(
                        "`a` means {}a",
                        if self.spec.region.is_empty() {
                            "us-east-1"
                        } else {
                            &self.spec.region
                        }
                    );
                    self.key_err(
                        &p,
                        format!("subnet key `{az}` must be an availability-zone letter"),
                    )
                    .hint(example);
                    continue;
                }
                let net4 = match parse_cidr(cidr) {
                    Ok(c) => c,
                    Err(why) => {
                        self.err(
                            &p,
                            format!("`{cidr}` is not a valid IPv4 CIDR block: {why}"),
                        )
                        .hint("for example `10.0.1.0/24`");
                        continue;
                    }
                };
                if !vpc.contains(&net4) {
                    self.err(&p, format!("subnet {cidr} is outside the VPC block {vpc}"))
                        .hint(format!("pick a block inside {vpc}"));
                    continue;
                }
                if !(16..=28).contains(&net4.prefix_len()) {
                    self.err(
                        &p,
                        format!(
                            "a subnet block must be between /16 and /28, found /{}",
                            net4.prefix_len()
                        ),
                    );
                }
                if let Some((other_p, other, _)) = seen
                    .iter()
                    .find(|(_, o, _)| o.contains(&net4.network()) || net4.contains(&o.network()))
                {
                    let other_at = self.sources.value(other_p);
                    self.err(
                        &p,
                        format!(
                            "subnet {cidr} overlaps {other} ({}:{})",
                            other_at.line, other_at.col
                        ),
                    )
                    .hint("subnets of one VPC must not share addresses");
                    continue;
                }
                seen.push((p, net4, az.clone()));
            }
        }
        match net.nat {
            NatMode::Single if !net.private_subnets.is_empty() && net.public_subnets.is_empty() => {
                self.err(
                    "/network/nat",
                    "a NAT gateway needs a public subnet to live in",
                )
                .hint("add `public_subnets`, or set `nat: none`");
            }
            NatMode::PerAz => {
                for az in net
                    .private_subnets
                    .keys()
                    .filter(|az| !net.public_subnets.contains_key(*az))
                {
                    self.err("/network/nat", format!("`nat: per_az` needs a public subnet in every AZ with a private subnet; AZ `{az}` has none"))
                        .hint(format!("add `public_subnets.{az}`, or use `nat: single`"));
                }
            }
            _ => {}
        }
        found
    }

    fn check_groups(&mut self, pointer: &str, names: &[String]) {
        for (i, g) in names.iter().enumerate() {
            if !self.spec.security_groups.contains_key(g) {
                let hint = did_you_mean(g, self.spec.security_groups.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "define it under `security_groups`".into());
                self.err(
                    &format!("{pointer}/{i}"),
                    format!("unknown security group `{g}`"),
                )
                .hint(hint);
            }
        }
    }

    fn security_groups(&mut self) {
        for (name, sg) in &self.spec.security_groups {
            let base = format!("/security_groups/{}", escape(name));
            if !is_slug(name) {
                self.key_err(&base, format!("security group name `{name}` must be lowercase letters, digits and hyphens"));
            }
            let mut rules_seen = HashSet::new();
            let egress = sg.egress.as_deref().unwrap_or(&[]);
            for (dir, rules) in [("ingress", sg.ingress.as_slice()), ("egress", egress)] {
                for (i, rule) in rules.iter().enumerate() {
                    let p = format!("{base}/{dir}/{i}");
                    self.rule(&p, rule);
                    if !rules_seen.insert((dir, rule_id(rule))) {
                        self.err(&p, format!("duplicate {dir} rule"))
                            .hint("remove one of them");
                    }
                }
            }
        }
    }

    fn rule(&mut self, p: &str, rule: &Rule) {
        if let Err(why) = parse_ports(&rule.ports) {
            self.err(&format!("{p}/ports"), why)
                .hint("a port `443` or a range `\"6379-6380\"`");
        }
        match (&rule.cidr, &rule.group) {
            (Some(_), Some(_)) => {
                self.err(p, "a rule names either a `cidr` or a `group`, not both")
                    .hint("split it into two rules");
            }
            (None, None) => {
                self.err(p, "a rule needs a peer: `cidr` or `group`")
                    .hint("for example `cidr: 0.0.0.0/0` or `group: lambda`");
            }
            (Some(c), None) => {
                if let Err(why) = parse_cidr(c) {
                    self.err(
                        &format!("{p}/cidr"),
                        format!("`{c}` is not a valid IPv4 CIDR block: {why}"),
                    );
                }
            }
            (None, Some(g)) => self.check_groups(p, std::slice::from_ref(g)),
        }
    }

    fn valkey(&mut self, subnets: &Subnets) {
        let Some(cache) = &self.spec.valkey else {
            return;
        };
        let name = format!("{}-cache", self.prefix());
        if name.len() > 40 {
            self.err(
                "/project",
                format!(
                    "the cache name `{name}` is {} characters; ElastiCache allows at most 40",
                    name.len()
                ),
            )
            .hint("shorten `project` or `environment`");
        }
        if name.contains("--") {
            self.err(
                "/valkey",
                format!("the cache name `{name}` contains `--`, which ElastiCache refuses"),
            );
        }
        let chosen = match cache.subnets {
            SubnetSet::Private => &subnets.private,
            SubnetSet::Public => &subnets.public,
        };
        if chosen.len() < 2 && !self.spec.network.vpc_cidr.is_empty() {
            let set = if cache.subnets == SubnetSet::Private {
                "private"
            } else {
                "public"
            };
            self.err(
                "/valkey/subnets",
                format!(
                    "the cache needs at least two {set} subnets in distinct AZs; the spec has {}",
                    chosen.len()
                ),
            )
            .hint(format!(
                "add another entry under `network.{set}_subnets`, e.g. `b: 10.0.3.0/24`"
            ));
        }
        if let Some(min) = cache.min_storage_gb {
            if min > cache.max_storage_gb {
                self.err(
                    "/valkey/min_storage_gb",
                    format!(
                        "minimum storage {min} GB is above the maximum {} GB",
                        cache.max_storage_gb
                    ),
                );
            }
        }
        if let Some(min) = cache.min_ecpu_per_second {
            if min > cache.max_ecpu_per_second {
                self.err(
                    "/valkey/min_ecpu_per_second",
                    format!(
                        "minimum ECPU/s {min} is above the maximum {}",
                        cache.max_ecpu_per_second
                    ),
                );
            }
        }
        if !is_hh_mm(&cache.daily_snapshot_time) {
            self.err(
                "/valkey/daily_snapshot_time",
                format!(
                    "`{}` is not a time of day as HH:MM (UTC)",
                    cache.daily_snapshot_time
                ),
            )
            .hint("for example `03:00`");
        }
        self.check_groups("/valkey/security_groups", &cache.security_groups);
        if cache.security_groups.is_empty() {
            self.err(
                "/valkey",
                "the cache has no `security_groups`; AWS would put it in the VPC's default group",
            )
            .hint("name a group whose ingress admits your functions on 6379-6380");
        }
        if let Some(path) = &cache.publish_to_ssm {
            if let Err(why) = ssm_path(path) {
                self.err("/valkey/publish_to_ssm", why)
                    .hint("for example `/trivia-dev/valkey`");
            }
        }
    }

    fn cognito(&mut self) {
        let Some(c) = &self.spec.cognito else { return };
        for name in c.clients.keys() {
            if !is_slug(name) {
                self.key_err(
                    &format!("/cognito/clients/{}", escape(name)),
                    format!("client name `{name}` must be lowercase letters, digits and hyphens"),
                );
            }
        }
        for (name, client) in &c.clients {
            if client.auth_flows.is_empty() {
                self.err(
                    &format!("/cognito/clients/{}", escape(name)),
                    "a client needs at least one auth flow",
                )
                .hint("for example `auth_flows: [user_password, refresh_token]`");
            }
        }
    }

    fn functions(&mut self, subnets: &Subnets) {
        for (name, f) in &self.spec.functions {
            let base = format!("/functions/{}", escape(name));
            let physical = format!("{}-{name}", self.prefix());
            if !is_slug(name) {
                self.key_err(
                    &base,
                    format!("function name `{name}` must be lowercase letters, digits and hyphens"),
                );
            } else if physical.len() > 64 {
                self.key_err(&base, format!("the function and role name `{physical}` is {} characters; AWS allows at most 64", physical.len()))
                    .hint("use a shorter function name");
            }
            if let Some(vpc) = &f.vpc {
                self.check_groups(&format!("{base}/vpc/security_groups"), &vpc.security_groups);
                let set = match vpc.subnets {
                    SubnetSet::Private => &subnets.private,
                    SubnetSet::Public => &subnets.public,
                };
                if set.is_empty() && !self.spec.network.vpc_cidr.is_empty() {
                    self.err(
                        &format!("{base}/vpc/subnets"),
                        "the function is placed in the VPC but the spec has no such subnets",
                    );
                }
                if vpc.security_groups.is_empty() {
                    self.err(
                        &format!("{base}/vpc"),
                        "a VPC function needs at least one security group",
                    );
                }
            }
            for key in f.env.keys() {
                let p = format!("{base}/env/{}", escape(key));
                let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    self.key_err(
                        &p,
                        format!("`{key}` is not a valid environment variable name"),
                    )
                    .hint("letters, digits and underscores, starting with a letter");
                } else if RESERVED_ENV.contains(&key.as_str()) {
                    self.key_err(&p, format!("`{key}` is reserved by the Lambda runtime"));
                } else if [
                    crate::plan::desired::CORS_ORIGINS,
                    crate::plan::desired::CORS_HEADERS,
                    crate::plan::desired::CORS_MAX_AGE,
                ]
                .contains(&key.as_str())
                {
                    self.key_err(&p, format!("`{key}` is set from `api.cors`"))
                        .hint("set the origins, headers and max age under `api.cors` instead");
                }
            }
        }
    }

    fn unknown_function(&mut self, pointer: &str, name: &str) {
        let hint = did_you_mean(name, self.spec.functions.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "define it under `functions`".into());
        self.err(pointer, format!("unknown function `{name}`"))
            .hint(hint);
    }

    fn api(&mut self) {
        let Some(api) = &self.spec.api else { return };
        if api.stage.is_empty()
            || !api
                .stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || api.stage.len() > 128
        {
            self.err(
                "/api/stage",
                format!(
                    "stage name `{}` may hold only letters, digits, `-` and `_`",
                    api.stage
                ),
            );
        }
        if api.routes.is_empty() {
            self.err("/api/routes", "the API has no routes")
                .hint("add at least one `{ method, path, function }`");
        }
        if let Some(cors) = &api.cors {
            if cors.allow_origins.is_empty() {
                self.err("/api/cors/allow_origins", "no origins are allowed")
                    .hint("list the front end's origins (`https://app.example.com`), or remove `cors`");
            }
            for (i, origin) in cors.allow_origins.iter().enumerate() {
                if let Err((why, hint)) = cors_origin(origin) {
                    self.err(&format!("/api/cors/allow_origins/{i}"), why)
                        .hint(hint);
                }
            }
            if cors.allow_origins.len() > 1 && cors.allow_origins.iter().any(|o| o == "*") {
                self.err(
                    "/api/cors/allow_origins",
                    "`*` allows every origin, so it cannot be listed with others",
                )
                .hint("keep `*` alone, or list only the origins to allow");
            }
            for (i, header) in cors.allow_headers.iter().enumerate() {
                if !is_header_name(header) {
                    self.err(
                        &format!("/api/cors/allow_headers/{i}"),
                        format!("`{header}` is not an HTTP header name"),
                    )
                    .hint("letters, digits and `-` (e.g. `Content-Type`)");
                }
            }
        }
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, r) in api.routes.iter().enumerate() {
            let p = format!("/api/routes/{i}");
            if !self.spec.functions.contains_key(&r.function) {
                self.unknown_function(&format!("{p}/function"), &r.function);
            }
            if let Err(why) = route_path(&r.path) {
                self.err(&format!("{p}/path"), why);
            }
            if r.auth == super::model::Auth::Cognito && self.spec.cognito.is_none() {
                self.err(
                    &format!("{p}/auth"),
                    "the route requires Cognito sign-in but the spec has no `cognito` section",
                )
                .hint("add `cognito:` or set `auth: none`");
            }
            if let Some(first) = seen.insert((r.method.as_str().to_string(), r.path.clone()), i) {
                let at = self.sources.value(&format!("/api/routes/{first}"));
                self.err(
                    &p,
                    format!(
                        "duplicate route {} {} (also on line {})",
                        r.method.as_str(),
                        r.path,
                        at.line
                    ),
                );
            }
        }
    }

    fn logs(&mut self) {
        let days = self.spec.logs.retention_days;
        if !super::model::LOG_RETENTION_DAYS.contains(&days) {
            let nearest = super::model::LOG_RETENTION_DAYS
                .iter()
                .min_by_key(|d| d.abs_diff(days))
                .copied()
                .unwrap_or(14);
            self.err(
                "/logs/retention_days",
                format!("CloudWatch Logs cannot keep events for {days} days"),
            )
            .hint(format!(
                "use one of its periods, e.g. {nearest} (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)"
            ));
        }
    }

    fn schedules(&mut self) {
        for (name, s) in &self.spec.schedules {
            let base = format!("/schedules/{}", escape(name));
            let physical = format!("{}-{name}", self.prefix());
            if !is_slug(name) {
                self.key_err(
                    &base,
                    format!("schedule name `{name}` must be lowercase letters, digits and hyphens"),
                );
            } else if physical.len() > 64 {
                self.key_err(&base, format!("the rule name `{physical}` is {} characters; EventBridge allows at most 64", physical.len()));
            }
            if let Err((why, hint)) = schedule_expression(&s.expression) {
                self.err(&format!("{base}/expression"), why).hint(hint);
            }
            if !self.spec.functions.contains_key(&s.function) {
                self.unknown_function(&format!("{base}/function"), &s.function);
            }
        }
    }
}

fn rule_id(r: &Rule) -> String {
    format!(
        "{}:{}:{:?}:{:?}",
        r.protocol.as_str(),
        r.ports,
        r.cidr,
        r.group
    )
}

/// Lowercase letters, digits and single hyphens, starting with a letter, no trailing hyphen.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The regions of the AWS SDK's endpoint partitions (aws, aws-cn, aws-us-gov, the
/// isolated and sovereign ones), as the SDK crates this build uses list them. A region
/// newer than the build is refused with that said; update the SDK to get it.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "eusc-de-east-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// An origin as browsers send it (`scheme://host[:port]`), or `*`.
pub fn cors_origin(origin: &str) -> Result<(), (String, String)> {
    if origin == "*" {
        return Ok(());
    }
    let url = reqwest::Url::parse(origin).map_err(|e| {
        (
            format!("`{origin}` is not an origin: {e}"),
            "write it as `https://host` or `http://host:port`".to_string(),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err((
            format!("`{origin}` is not an http or https origin"),
            "write it as `https://host` or `http://host:port`".into(),
        ));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err((
            format!("`{origin}` is not an origin as browsers send it (no path, no trailing `/`, lowercase host, no default port)"),
            format!("write `{canonical}`"),
        ));
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        && !name.contains('\'')
}

fn is_hh_mm(s: &str) -> bool {
    match s.split_once(':') {
        Some((h, m)) => {
            h.len() == 2
                && m.len() == 2
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        }
        None => false,
    }
}

/// Parses an IPv4 CIDR block, insisting the address is the block's network address.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| "expected ADDRESS/PREFIX such as 10.0.1.0/24".to_string())?;
    if net.network() != net.addr() {
        return Err(format!(
            "host bits are set; the block starting there is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `443` or `"6379-6380"` → (from, to).
pub fn parse_ports(v: &Value) -> Result<(u16, u16), String> {
    let range = match v {
        Value::Number(n) => n.as_u64().map(|p| (p, p)),
        Value::String(s) => match s.split_once('-') {
            Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
            None => s.trim().parse().ok().map(|p| (p, p)),
        },
        _ => None,
    };
    match range {
        Some((a, b)) if (1..=65535).contains(&a) && (1..=65535).contains(&b) && a <= b => {
            Ok((a as u16, b as u16))
        }
        Some((a, b)) if a > b => Err(format!("port range {a}-{b} runs backwards")),
        Some(_) => Err("ports must be between 1 and 65535".into()),
        None => Err(format!(
            "`{}` is not a port or a port range",
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        )),
    }
}

fn ssm_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("SSM path `{p}` must start with `/`"));
    }
    if p.ends_with('/') {
        return Err(format!("SSM path `{p}` must not end with `/`"));
    }
    let first = p
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!(
            "SSM names may not begin with `aws` or `ssm` (found `{p}`)"
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "SSM path `{p}` contains `{c}`; allowed are letters, digits and `_ . - /`"
        ));
    }
    if p.len() > 1000 {
        return Err("SSM names are at most 1011 characters".into());
    }
    Ok(())
}

fn route_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("route path `{p}` must start with `/`"));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(format!("route path `{p}` must not end with `/`"));
    }
    for seg in p.split('/').skip(1).filter(|s| !s.is_empty()) {
        let inner = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let name = inner
            .map(|s| s.strip_suffix('+').unwrap_or(s))
            .unwrap_or(seg);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(format!("route path segment `{seg}` is not valid; use letters, digits, `-_.` or `{{param}}`"));
        }
    }
    Ok(())
}

/// Checks an EventBridge schedule expression; on failure, the reason and a hint.
pub fn schedule_expression(e: &str) -> Result<(), (String, String)> {
    if let Some(inner) = e.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err((
                format!("`{e}` is not `rate(VALUE UNIT)`"),
                "for example `rate(6 hours)`".into(),
            ));
        };
        let Ok(n) = n.parse::<u32>() else {
            return Err((
                format!("`{n}` in `{e}` is not a whole number"),
                "for example `rate(6 hours)`".into(),
            ));
        };
        if n == 0 {
            return Err((
                format!("`{e}` has a rate of zero"),
                "use a positive value".into(),
            ));
        }
        let singular = ["minute", "hour", "day"];
        let plural = ["minutes", "hours", "days"];
        if n == 1 && !singular.contains(&unit) {
            let fix = unit.trim_end_matches('s');
            return Err((
                format!("`{e}`: a rate of 1 takes a singular unit"),
                format!("write `rate(1 {fix})`"),
            ));
        }
        if n > 1 && !plural.contains(&unit) {
            let fix = if singular.contains(&unit) {
                format!("{unit}s")
            } else {
                "hours".into()
            };
            return Err((
                format!("`{e}`: a rate above 1 takes a plural unit (minutes, hours, days)"),
                format!("write `rate({n} {fix})`"),
            ));
        }
        return Ok(());
    }
    if let Some(inner) = e.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err((
                format!("`{e}` has {} fields; EventBridge cron has six: minutes hours day-of-month month day-of-week year", fields.len()),
                "for example `cron(0 3 * * ? *)`".into(),
            ));
        }
        let allowed = |f: &str| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || ",-*/?#".contains(c))
        };
        if let Some(bad) = fields.iter().find(|f| !allowed(f)) {
            return Err((
                format!("cron field `{bad}` in `{e}` has characters cron does not accept"),
                "use digits, names and `, - * / ? L W #`".into(),
            ));
        }
        if fields[..2]
            .iter()
            .chain(&fields[3..4])
            .chain(&fields[5..])
            .any(|f| f.contains('?'))
        {
            return Err((
                format!("`{e}`: `?` is allowed only in day-of-month or day-of-week"),
                "for example `cron(0 3 * * ? *)`".into(),
            ));
        }
        if (fields[2] == "?") == (fields[4] == "?") {
            return Err((
                format!("`{e}`: exactly one of day-of-month and day-of-week must be `?`"),
                "for example `cron(0 3 * * ? *)` (every day at 03:00 UTC)".into(),
            ));
        }
        let numeric_in = |f: &str, lo: u32, hi: u32| {
            f.split([',', '-', '/'])
                .filter(|p| !p.is_empty() && *p != "*")
                .all(|p| {
                    p.parse::<u32>().is_ok_and(|n| n >= lo && n <= hi) || p.parse::<u32>().is_err()
                })
        };
        if !numeric_in(fields[0], 0, 59) || !numeric_in(fields[1], 0, 23) {
            return Err((
                format!("`{e}`: minutes are 0–59 and hours 0–23"),
                "times are in UTC".into(),
            ));
        }
        return Ok(());
    }
    Err((
        format!("`{e}` is not a schedule expression"),
        "use `rate(6 hours)` or `cron(0 3 * * ? *)`".into(),
    ))
}
