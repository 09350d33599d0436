//! The vocabulary shared by plan, engine, state and providers: resource addresses,
//! kinds (and what each kind's attributes mean for planning), attribute maps,
//! references between resources, and plan actions.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A resource's stable logical address, e.g. `network.subnet.private-a`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(pub String);

impl Address {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attribute maps: a resource's inputs (from the spec) and outputs (from AWS).
pub type Attrs = BTreeMap<String, Value>;

/// Every kind of resource the tool manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    ElasticIp,
    NatGateway,
    RouteTable,
    SecurityGroup,
    SecurityGroupRule,
    ServerlessCache,
    SsmParameter,
    IamRole,
    LambdaFunction,
    UserPool,
    UserPoolClient,
    RestApi,
    ScheduleRule,
    LogGroup,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::InternetGateway,
        Kind::ElasticIp,
        Kind::NatGateway,
        Kind::RouteTable,
        Kind::SecurityGroup,
        Kind::SecurityGroupRule,
        Kind::ServerlessCache,
        Kind::SsmParameter,
        Kind::IamRole,
        Kind::LambdaFunction,
        Kind::UserPool,
        Kind::UserPoolClient,
        Kind::RestApi,
        Kind::ScheduleRule,
        Kind::LogGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet_gateway",
            Kind::ElasticIp => "elastic_ip",
            Kind::NatGateway => "nat_gateway",
            Kind::RouteTable => "route_table",
            Kind::SecurityGroup => "security_group",
            Kind::SecurityGroupRule => "security_group_rule",
            Kind::ServerlessCache => "serverless_cache",
            Kind::SsmParameter => "ssm_parameter",
            Kind::IamRole => "iam_role",
            Kind::LambdaFunction => "lambda_function",
            Kind::UserPool => "user_pool",
            Kind::UserPoolClient => "user_pool_client",
            Kind::RestApi => "rest_api",
            Kind::ScheduleRule => "schedule_rule",
            Kind::LogGroup => "log_group",
        }
    }

    /// Attributes AWS assigns, known only after create; references may name them.
    pub fn outputs(self) -> &'static [&'static str] {
        crate::kinds::declared(self).outputs
    }

    /// Inputs AWS cannot change in place: a change replaces the resource.
    pub fn replace_on(self) -> &'static [&'static str] {
        crate::kinds::declared(self).replace_on
    }

    /// Inputs that must be unique in the account (or VPC). If a replacement keeps them,
    /// the old resource must go before the new one can exist.
    pub fn unique_on(self) -> &'static [&'static str] {
        crate::kinds::declared(self).unique_on
    }

    /// Inputs the service stores as strings (see [`crate::kinds::Inputs::STRING_INPUTS`]).
    pub fn string_inputs(self) -> &'static [&'static str] {
        crate::kinds::declared(self).string_inputs
    }

    /// Whether replacing or deleting it loses data (cache contents, user accounts).
    pub fn stateful(self) -> bool {
        crate::kinds::declared(self).stateful
    }

    /// How long a create or update may take to settle, and how often to look.
    pub fn wait_limits(self) -> WaitLimits {
        let (timeout_min, poll_s) = match self {
            Kind::ServerlessCache => (40, 10),
            // Deleting them waits out Lambda's network interfaces (P99 ~35 min).
            Kind::SecurityGroup | Kind::Subnet => (45, 10),
            Kind::NatGateway => (10, 5),
            Kind::LambdaFunction => (5, 2),
            _ => (5, 2),
        };
        WaitLimits {
            timeout: Duration::from_secs(timeout_min * 60),
            poll: Duration::from_secs(poll_s),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    pub timeout: Duration,
    pub poll: Duration,
}

/// `${address.attribute}` inside a string input.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub address: Address,
    pub attribute: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}.{}}}", self.address, self.attribute)
    }
}

/// The raw texts between `${` and `}` in `s`, with their byte ranges (including the
/// delimiters).
pub fn reference_texts(s: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = s[from..].find("${").map(|i| from + i) {
        match s[start..].find('}') {
            Some(len) => {
                out.push((start..start + len + 1, &s[start + 2..start + len]));
                from = start + len + 1;
            }
            None => break,
        }
    }
    out
}

/// Splits a canonical reference text `a.b.c.attr` into address and attribute.
fn split_reference(text: &str) -> Option<Reference> {
    let (addr, attr) = text.rsplit_once('.')?;
    Some(Reference {
        address: Address::new(addr),
        attribute: attr.to_string(),
    })
}

/// Every reference in a value (canonical form), in order of appearance.
pub fn references(v: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    collect_refs(v, &mut out);
    out
}

fn collect_refs(v: &Value, out: &mut Vec<Reference>) {
    match v {
        Value::String(s) => out.extend(
            reference_texts(s)
                .into_iter()
                .filter_map(|(_, t)| split_reference(t)),
        ),
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// A value with references replaced. `lookup` returns `None` for a value not known yet;
/// the result is then `None` too (the attribute is "known after apply").
pub fn substitute(v: &Value, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Option<Value> {
    Some(match v {
        Value::String(s) => {
            let refs = reference_texts(s);
            if refs.is_empty() {
                return Some(v.clone());
            }
            // A string that is exactly one reference takes the referenced value's type.
            if refs.len() == 1 && refs[0].0 == (0..s.len()) {
                return lookup(&split_reference(refs[0].1)?);
            }
            let mut out = String::new();
            let mut last = 0;
            for (range, text) in refs {
                out.push_str(&s[last..range.start]);
                match lookup(&split_reference(text)?)? {
                    Value::String(x) => out.push_str(&x),
                    other => out.push_str(&other.to_string()),
                }
                last = range.end;
            }
            out.push_str(&s[last..]);
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, lookup))
                .collect::<Option<_>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| substitute(x, lookup).map(|x| (k.clone(), x)))
                .collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}

/// Applies [`Kind::string_inputs`] to resolved inputs.
pub fn stringify(kind: Kind, key: &str, v: Value) -> Value {
    if !kind.string_inputs().contains(&key) {
        return v;
    }
    fn text(v: Value) -> Value {
        match v {
            Value::Number(_) | Value::Bool(_) => Value::String(v.to_string()),
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, text(v))).collect()),
            other => other,
        }
    }
    text(v)
}

/// What the plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Delete the old resource, then create its replacement (names must stay unique).
    DeleteBeforeCreate,
    /// Create the replacement, move dependents to it, then delete the old one.
    CreateBeforeDelete,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::DeleteBeforeCreate => "-/+",
            Action::CreateBeforeDelete => "+/-",
            Action::Delete => "-",
        }
    }

    pub fn is_replace(self) -> bool {
        matches!(
            self,
            Action::DeleteBeforeCreate | Action::CreateBeforeDelete
        )
    }

    /// Verb for human output: "created", "updated", …
    pub fn past(self) -> &'static str {
        match self {
            Action::NoOp => "unchanged",
            Action::Create => "created",
            Action::Update => "updated",
            Action::DeleteBeforeCreate | Action::CreateBeforeDelete => "replaced",
            Action::Delete => "destroyed",
        }
    }
}
