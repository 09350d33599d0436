//! The API Gateway REST API (its resources, methods, authorizer and stage are one
//! resource: they are deployed together).

use serde::{Deserialize, Serialize};

use super::{Inputs, Outputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_headers: Vec<String>,
    pub max_age_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRoute {
    pub method: String,
    pub path: String,
    /// The function alias the route proxies to.
    pub function_arn: String,
    /// `none` or `cognito`.
    pub auth: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestApiInputs {
    pub name: String,
    pub stage: String,
    pub cors: Option<Cors>,
    pub routes: Vec<ApiRoute>,
    /// The user pool of the Cognito authorizer, when a route needs one.
    pub authorizer_pool_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestApiOutputs {
    pub id: String,
    pub execution_arn: String,
    pub invoke_url: String,
    pub deployment_id: String,
}

impl Outputs for RestApiOutputs {
    const NAMES: &'static [&'static str] = &["id", "execution_arn", "invoke_url", "deployment_id"];
    fn example() -> Self {
        Self {
            id: "a1b2c3".into(),
            execution_arn: "arn:aws:execute-api:us-east-1:123456789012:a1b2c3".into(),
            invoke_url: "https://a1b2c3.execute-api.us-east-1.amazonaws.com/v1".into(),
            deployment_id: "d1".into(),
        }
    }
}

impl Inputs for RestApiInputs {
    const KIND: Kind = Kind::RestApi;
    // Everything changes in place: the definition is put again and redeployed.
    const REPLACE_ON: &'static [&'static str] = &[];
    type Outputs = RestApiOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-api".into(),
            stage: "v1".into(),
            cors: Some(Cors {
                allow_origins: vec!["https://example.com".into()],
                allow_headers: vec!["authorization".into()],
                max_age_s: 600,
            }),
            routes: vec![ApiRoute {
                method: "GET".into(),
                path: "/questions".into(),
                function_arn: "arn:aws:lambda:us-east-1:1:function:trivia-dev-api:live".into(),
                auth: "cognito".into(),
            }],
            authorizer_pool_arn: Some("arn:aws:cognito-idp:us-east-1:1:userpool/x".into()),
        }
    }
}
