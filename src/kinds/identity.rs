//! Cognito: the user pool and its app clients.

use serde::{Deserialize, Serialize};

use super::{IdOutputs, Inputs, Outputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPoolInputs {
    pub name: String,
    pub password_min_length: u8,
    /// `email`, `phone_number`: what users sign in with.
    pub username_attributes: Vec<String>,
    pub case_sensitive: bool,
    pub deletion_protection: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPoolOutputs {
    pub id: String,
    pub arn: String,
    pub issuer: String,
    pub jwks_url: String,
}

impl Outputs for UserPoolOutputs {
    const NAMES: &'static [&'static str] = &["id", "arn", "issuer", "jwks_url"];
    fn example() -> Self {
        Self {
            id: "us-east-1_abc".into(),
            arn: "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc".into(),
            issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc".into(),
            jwks_url:
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc/.well-known/jwks.json"
                    .into(),
        }
    }
}

impl Inputs for UserPoolInputs {
    const KIND: Kind = Kind::UserPool;
    // Sign-in attributes and case sensitivity are fixed when a pool is made.
    const REPLACE_ON: &'static [&'static str] = &["name", "username_attributes", "case_sensitive"];
    const STATEFUL: bool = true;
    type Outputs = UserPoolOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-users".into(),
            password_min_length: 8,
            username_attributes: vec!["email".into()],
            case_sensitive: false,
            deletion_protection: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPoolClientInputs {
    pub name: String,
    pub user_pool_id: String,
    pub explicit_auth_flows: Vec<String>,
    pub generate_secret: bool,
    /// `ENABLED`: sign-in and recovery answer alike whether the user exists or not.
    pub prevent_user_existence_errors: String,
}

impl Inputs for UserPoolClientInputs {
    const KIND: Kind = Kind::UserPoolClient;
    const REPLACE_ON: &'static [&'static str] = &["user_pool_id", "generate_secret"];
    type Outputs = IdOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-web".into(),
            user_pool_id: "us-east-1_abc".into(),
            explicit_auth_flows: vec!["ALLOW_USER_SRP_AUTH".into()],
            generate_secret: false,
            prevent_user_existence_errors: "ENABLED".into(),
        }
    }
}
