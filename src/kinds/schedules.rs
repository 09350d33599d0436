//! EventBridge schedules that invoke functions.

use serde::{Deserialize, Serialize};

use super::{ArnOutputs, Inputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRuleInputs {
    pub name: String,
    /// `rate(…)` or `cron(…)`.
    pub expression: String,
    pub enabled: bool,
    /// The function alias it invokes.
    pub target_arn: String,
}

impl Inputs for ScheduleRuleInputs {
    const KIND: Kind = Kind::ScheduleRule;
    const REPLACE_ON: &'static [&'static str] = &["name"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-preload".into(),
            expression: "rate(1 day)".into(),
            enabled: true,
            target_arn: "arn:aws:lambda:us-east-1:1:function:trivia-dev-preloader:live".into(),
        }
    }
}
