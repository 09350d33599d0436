//! `functions` (names once prefixed, VPC placement, environment variables) and `logs`
//! (their log groups' retention).

use super::{Checker, Subnets};
use crate::spec::model::SubnetSet;
use crate::spec::values::is_slug;
use crate::spec::yaml::escape;

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
    pub(super) fn functions(&mut self, subnets: &Subnets) {
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

    pub(super) fn logs(&mut self) {
        let days = self.spec.logs.retention_days;
        if !crate::spec::model::LOG_RETENTION_DAYS.contains(&days) {
            let nearest = crate::spec::model::LOG_RETENTION_DAYS
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
}
