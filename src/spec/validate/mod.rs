//! Checks a merged spec document: first against the JSON Schema ([`schema`]), then the
//! rules that span fields, one module per spec section (CIDR containment and overlap,
//! AWS name limits once prefixed, schedule expressions, references by logical name).
//! The values themselves are parsed by [`crate::spec::values`], shared with the planner.

mod api;
mod cognito;
mod functions;
mod identity;
mod network;
mod schedules;
mod schema;
mod security_groups;
mod valkey;

use std::collections::BTreeSet;

use super::diag::{did_you_mean, Diagnostic, Diagnostics};
use super::model::Spec;
use super::yaml::SourceMap;

pub use schema::{against_schema, dotted};

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

    fn unknown_function(&mut self, pointer: &str, name: &str) {
        let hint = did_you_mean(name, self.spec.functions.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "define it under `functions`".into());
        self.err(pointer, format!("unknown function `{name}`"))
            .hint(hint);
    }
}
