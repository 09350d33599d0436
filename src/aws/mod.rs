//! AWS providers through the official SDK, one module per service. They implement the
//! [`Provider`](crate::provider::Provider) trait; ordering, retries and waiting policy
//! stay in the engine. Credentials come from the standard chain (environment,
//! profiles, SSO, instance metadata); `AWS_ENDPOINT_URL` and its per-service variants
//! are honoured, which is how tests point the SDK at the emulator.

/// A service's config override that sends a call once, without the SDK's own retries:
/// for creates that AWS does not make idempotent. A timeout or 5xx then reaches the
/// engine, which looks the resource up by its tags before it creates again.
macro_rules! once {
    ($service:ident) => {
        $service::config::Builder::default()
            .retry_config(aws_config::retry::RetryConfig::disabled())
    };
}

mod apigateway;
pub mod cognito;
pub mod ec2;
pub mod elasticache;
mod errors;
pub mod events;
mod iam;
pub mod lambda;
mod listing;
pub mod logs;
pub mod ssm;
pub(crate) mod tags;

pub(crate) use errors::classify;
pub(crate) use listing::{
    all_pages, carrying, has_tags, if_ours, read_tagged, split_id, tags_from,
};
pub(crate) use listing::{if_read_ours, Tags};
pub(crate) use tags::{identity_tags, retag, tag_changes, tags_of, with_tags};

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::config::ProvideCredentials;

use crate::model::Kind;
use crate::provider::{ErrorClass, ProviderError, Providers};

/// Clients for every service the providers use, built once.
#[derive(Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub region: String,
    /// The API Gateway endpoint when it is not AWS's (the local cloud): stage URLs are
    /// then its path-form data plane.
    pub apigateway_endpoint: Option<String>,
    /// The account the credentials belong to (from STS).
    pub account: String,
    /// Where built function zips are kept by hash (see `artifact::code_dir`); without
    /// it, new functions get a stand-in that refuses to run.
    pub code_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no AWS credentials found (looked in the environment, ~/.aws profiles, SSO and instance metadata)\n  hint: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; for the local emulator, eval \"$(tests/emulator/start)\"")]
    NoCredentials,
    #[error("cannot reach AWS at {endpoint}: {reason}\n  hint: check the network; for the local emulator, start it with eval \"$(tests/emulator/start)\"")]
    Unreachable { endpoint: String, reason: String },
    #[error("AWS refused the credentials: {0}\n  hint: check AWS_PROFILE or the access keys, and that the session has not expired")]
    Rejected(String),
}

/// Loads configuration and credentials, failing fast and plainly when there are none.
pub async fn clients(region: &str) -> Result<Clients, SetupError> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build();
    let config = aws_config::from_env()
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts)
        .load()
        .await;
    let provider = config
        .credentials_provider()
        .ok_or(SetupError::NoCredentials)?;
    // The chain's last resort is the instance metadata service, which can take a long
    // time to give up off EC2: bound it.
    match tokio::time::timeout(Duration::from_secs(3), provider.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return Err(SetupError::NoCredentials),
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| format!("https://sts.{region}.amazonaws.com"));
    let sts = aws_sdk_sts::Client::new(&config);
    // Throttling and 5xx answers are tried again a few times (a busy account, a
    // hostile emulator); refused credentials and nothing answering are said at once.
    let mut attempt = 0u32;
    let account = loop {
        attempt += 1;
        match tokio::time::timeout(Duration::from_secs(5), sts.get_caller_identity().send()).await {
            Ok(Ok(who)) => break who.account().unwrap_or_default().to_string(),
            Ok(Err(e)) => {
                let answered = e.raw_response().is_some();
                let e = classify(e);
                let transient =
                    answered && matches!(e.class, ErrorClass::Throttled | ErrorClass::Retryable);
                if transient && attempt < 5 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    continue;
                }
                return Err(match e.class {
                    ErrorClass::Retryable | ErrorClass::Throttled if !answered => {
                        SetupError::Unreachable {
                            endpoint,
                            reason: e.message,
                        }
                    }
                    ErrorClass::Retryable | ErrorClass::Throttled => SetupError::Unreachable {
                        endpoint,
                        reason: format!("still failing after {attempt} attempts: {}", e.message),
                    },
                    _ => SetupError::Rejected(e.to_string()),
                });
            }
            Err(_) => {
                return Err(SetupError::Unreachable {
                    endpoint,
                    reason: "no answer within 5 s".into(),
                })
            }
        }
    };
    Ok(Clients {
        account,
        code_dir: None,
        ec2: aws_sdk_ec2::Client::new(&config),
        elasticache: aws_sdk_elasticache::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        lambda: aws_sdk_lambda::Client::new(&config),
        apigateway: aws_sdk_apigateway::Client::new(&config),
        cognito: aws_sdk_cognitoidentityprovider::Client::new(&config),
        events: aws_sdk_eventbridge::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        region: region.to_string(),
        apigateway_endpoint: ["AWS_ENDPOINT_URL_API_GATEWAY", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .map(|v| v.trim_end_matches('/').to_string()),
    })
}

/// The providers for every kind implemented so far.
pub fn providers(c: &Clients) -> Providers {
    let shared = Arc::new(c.clone());
    let mut p = Providers::new();
    ec2::register(&shared, &mut p);
    p.insert(
        Kind::ServerlessCache,
        Arc::new(elasticache::ServerlessCache(shared.clone())),
    );
    p.insert(Kind::SsmParameter, Arc::new(ssm::Parameter(shared.clone())));
    p.insert(Kind::IamRole, Arc::new(iam::Role(shared.clone())));
    p.insert(
        Kind::LambdaFunction,
        Arc::new(lambda::Function(shared.clone())),
    );
    p.insert(Kind::UserPool, Arc::new(cognito::UserPool(shared.clone())));
    p.insert(
        Kind::ScheduleRule,
        Arc::new(events::ScheduleRule(shared.clone())),
    );
    p.insert(Kind::RestApi, Arc::new(apigateway::RestApi(shared.clone())));
    p.insert(
        Kind::UserPoolClient,
        Arc::new(cognito::UserPoolClient(shared.clone())),
    );
    p.insert(Kind::LogGroup, Arc::new(logs::LogGroup(shared.clone())));
    p
}

/// Runs a follow-up call on a resource created moments ago, retrying "not found":
/// AWS's reads and writes are eventually consistent right after a create.
pub(crate) async fn eventually<T, F, Fut>(f: F) -> Result<T, ProviderError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match f().await {
            Err(e)
                if e.class == ErrorClass::NotFound
                    && started.elapsed() < Duration::from_secs(120) =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Readiness of a kind that is ready as soon as it can be read: missing right after a
/// create means "not visible yet" (eventual consistency), which the engine waits out.
pub(crate) fn ready_when_visible(
    found: Option<crate::provider::Observed>,
    what: &str,
    id: &str,
) -> Result<crate::provider::Readiness, ProviderError> {
    found
        .map(crate::provider::Readiness::Ready)
        .ok_or_else(|| ProviderError::not_found(format!("{what} {id} is not visible yet")))
}

pub(crate) fn str_of<'a>(
    inputs: &'a crate::model::Attrs,
    key: &str,
) -> Result<&'a str, ProviderError> {
    inputs
        .get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| ProviderError::fatal(format!("input `{key}` is missing or not a string")))
}
