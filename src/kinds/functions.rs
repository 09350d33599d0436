//! Lambda functions and the log groups they write to.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ArnOutputs, Inputs, Outputs};
use crate::model::Kind;

/// Which crate and binary of the workspace a function runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCode {
    #[serde(rename = "crate")]
    pub krate: String,
    pub bin: String,
}

/// A function's environment variables, in the order the spec and the planner list
/// them (the order plans show); equal regardless of order.
#[derive(Debug, Clone, Default)]
pub struct Variables(pub Vec<(String, String)>);

impl Variables {
    pub fn insert(&mut self, key: String, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl PartialEq for Variables {
    fn eq(&self, other: &Self) -> bool {
        fn sorted(v: &Variables) -> Vec<(&str, &str)> {
            let mut pairs: Vec<(&str, &str)> = v.iter().collect();
            pairs.sort();
            pairs
        }
        sorted(self) == sorted(other)
    }
}

impl Serialize for Variables {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Variables {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Variables;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of variable names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Variables, A::Error> {
                let mut out = Variables::default();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.0.push((k, v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaFunctionInputs {
    pub name: String,
    pub role_arn: String,
    pub runtime: String,
    pub handler: String,
    /// `arm64` or `x86_64`.
    pub architecture: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// In a VPC when not empty.
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub environment: Variables,
    pub code: FunctionCode,
    /// The built zip's `CodeSha256`; unknown without a build (the live code stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
    /// The alias the API and schedules invoke.
    pub alias: String,
    /// Whether the alias serves what `$LATEST` holds: a run that died between an
    /// update and its publish leaves it behind, which reads as `false`.
    pub published: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaFunctionOutputs {
    pub id: String,
    pub arn: String,
    /// The version the alias points at.
    pub version: String,
    pub alias_arn: String,
}

impl Outputs for LambdaFunctionOutputs {
    const NAMES: &'static [&'static str] = &["id", "arn", "version", "alias_arn"];
    fn example() -> Self {
        Self {
            id: "trivia-dev-api".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:trivia-dev-api".into(),
            version: "3".into(),
            alias_arn: "arn:aws:lambda:us-east-1:123456789012:function:trivia-dev-api:live".into(),
        }
    }
}

impl Inputs for LambdaFunctionInputs {
    const KIND: Kind = Kind::LambdaFunction;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    const STRING_INPUTS: &'static [&'static str] = &["environment"];
    type Outputs = LambdaFunctionOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-api".into(),
            role_arn: "arn:aws:iam::123456789012:role/trivia-dev-api".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architecture: "arm64".into(),
            memory_mb: 512,
            timeout_s: 10,
            subnet_ids: vec!["subnet-1".into()],
            security_group_ids: vec!["sg-1".into()],
            environment: Variables(vec![
                ("VALKEY_PORT".into(), "6379".into()),
                ("CORS_MAX_AGE_S".into(), "600".into()),
            ]),
            code: FunctionCode {
                krate: "trivia".into(),
                bin: "api".into(),
            },
            code_sha256: Some("n3Tn0cmjuMCGzxoz7N8sZ9mZ0KnNnBnMl1gUWMHuzbk=".into()),
            alias: "live".into(),
            published: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogGroupInputs {
    /// `/aws/lambda/FUNCTION`: the group Lambda writes the function's logs to.
    pub name: String,
    pub retention_days: u32,
}

impl Inputs for LogGroupInputs {
    const KIND: Kind = Kind::LogGroup;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "/aws/lambda/trivia-dev-api".into(),
            retention_days: 14,
        }
    }
}
