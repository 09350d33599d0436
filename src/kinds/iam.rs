//! IAM roles the functions run as.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ArnOutputs, Inputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamRoleInputs {
    pub name: String,
    /// The trust policy document.
    pub assume_role_policy: Value,
    pub managed_policy_arns: Vec<String>,
    /// The role's one inline policy document (`null`: none).
    pub inline_policy: Option<Value>,
}

impl Inputs for IamRoleInputs {
    const KIND: Kind = Kind::IamRole;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-api".into(),
            assume_role_policy: json!({"Version": "2012-10-17", "Statement": []}),
            managed_policy_arns: vec![
                "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".into(),
            ],
            inline_policy: Some(json!({"Version": "2012-10-17", "Statement": []})),
        }
    }
}
