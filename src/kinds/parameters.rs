//! SSM parameters (the cache's endpoint and port, published for other consumers).

use serde::{Deserialize, Serialize};

use super::{Inputs, Outputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmParameterInputs {
    pub name: String,
    /// `String` or `SecureString`.
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmParameterOutputs {
    pub id: String,
    pub arn: String,
    pub version: i64,
}

impl Outputs for SsmParameterOutputs {
    const NAMES: &'static [&'static str] = &["id", "arn", "version"];
    fn example() -> Self {
        Self {
            id: "/trivia-dev/valkey/port".into(),
            arn: "arn:aws:ssm:us-east-1:123456789012:parameter/trivia-dev/valkey/port".into(),
            version: 1,
        }
    }
}

impl Inputs for SsmParameterInputs {
    const KIND: Kind = Kind::SsmParameter;
    const REPLACE_ON: &'static [&'static str] = &["name", "type"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    const STRING_INPUTS: &'static [&'static str] = &["value"];
    type Outputs = SsmParameterOutputs;
    fn example() -> Self {
        Self {
            name: "/trivia-dev/valkey/port".into(),
            kind: "String".into(),
            value: "6379".into(),
        }
    }
}
