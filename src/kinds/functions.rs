//! Lambda functions and the log groups they write to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub environment: BTreeMap<String, String>,
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
            environment: BTreeMap::from([("VALKEY_PORT".into(), "6379".into())]),
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
