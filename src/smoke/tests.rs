//! What the checks conclude from what Cognito, EventBridge, SSM and ElastiCache answer,
//! with those services in memory. The API itself is not reachable here, so the HTTP
//! checks either do not run or fail to connect.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::*;
use crate::model::Kind;
use crate::state::ResourceState;

const ALIAS: &str = "arn:aws:lambda:us-east-1:123456789012:function:trivia-dev-refill:live";

/// The cloud as the checks see it; every call that changes something is recorded.
struct Cloud {
    create_error: Option<String>,
    sign_in: Result<String, String>,
    created: Mutex<Vec<String>>,
    deleted: Mutex<Vec<String>>,
    rules: BTreeMap<String, (bool, Vec<String>)>,
    parameters: BTreeMap<String, String>,
    endpoint: (String, i32),
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud {
            create_error: None,
            sign_in: Ok("id-token".into()),
            created: Mutex::default(),
            deleted: Mutex::default(),
            rules: BTreeMap::from([("trivia-dev-refill".into(), (true, vec![ALIAS.into()]))]),
            parameters: BTreeMap::from([
                ("/trivia-dev/valkey/endpoint".into(), "cache.local".into()),
                ("/trivia-dev/valkey/port".into(), "6379".into()),
            ]),
            endpoint: ("cache.local".into(), 6379),
        }
    }
}

impl Identity for Cloud {
    async fn create_user(
        &self,
        pool: &str,
        username: &str,
        _display_name: &str,
        _password: &str,
    ) -> Result<(), String> {
        if let Some(e) = &self.create_error {
            return Err(e.clone());
        }
        self.created
            .lock()
            .unwrap()
            .push(format!("{pool}/{username}"));
        Ok(())
    }

    async fn sign_in(
        &self,
        _client: &str,
        _username: &str,
        _password: &str,
    ) -> Result<String, String> {
        self.sign_in.clone()
    }

    async fn delete_user(&self, pool: &str, username: &str) -> Result<(), String> {
        self.deleted
            .lock()
            .unwrap()
            .push(format!("{pool}/{username}"));
        Ok(())
    }
}

impl Schedules for Cloud {
    async fn rule_status(&self, rule: &str) -> Result<(bool, Vec<String>), String> {
        self.rules
            .get(rule)
            .cloned()
            .ok_or_else(|| format!("rule {rule}: not found"))
    }
}

impl Parameters for Cloud {
    async fn values(&self, names: &[String]) -> Result<BTreeMap<String, String>, String> {
        Ok(names
            .iter()
            .filter_map(|n| Some((n.clone(), self.parameters.get(n)?.clone())))
            .collect())
    }
}

impl Cache for Cloud {
    async fn endpoint(&self, _cache: &str) -> Result<(String, i32), String> {
        Ok(self.endpoint.clone())
    }
}

fn spec(with_api: bool) -> Spec {
    let mut s = json!({
        "project": "trivia",
        "environment": "dev",
        "region": "us-east-1",
        "cognito": { "clients": { "web": { "auth_flows": ["user_password", "refresh_token"] } } },
        "schedules": { "refill": { "expression": "rate(6 hours)", "function": "refill" } },
    });
    if with_api {
        s["api"] = json!({ "routes": [] });
    }
    serde_json::from_value(s).unwrap()
}

fn resource(kind: Kind, id: &str, inputs: Value, outputs: Value) -> ResourceState {
    let attrs = |v: Value| serde_json::from_value(v).unwrap();
    ResourceState {
        kind,
        id: id.into(),
        inputs: attrs(inputs),
        outputs: attrs(outputs),
        depends_on: Default::default(),
        protect: false,
        pending: false,
    }
}

/// A deployed environment: user pool and client, the schedule and its function, the
/// cache and its two parameters.
fn state() -> State {
    let mut s = State::new("trivia", "dev");
    for (address, r) in [
        (
            "cognito.user_pool",
            resource(Kind::UserPool, "us-east-1_pool", json!({}), json!({})),
        ),
        (
            "cognito.client.web",
            resource(
                Kind::UserPoolClient,
                "client-1",
                json!({}),
                json!({"id": "client-1"}),
            ),
        ),
        (
            "schedule.refill",
            resource(
                Kind::ScheduleRule,
                "trivia-dev-refill",
                json!({"name": "trivia-dev-refill"}),
                json!({}),
            ),
        ),
        (
            "function.refill",
            resource(
                Kind::LambdaFunction,
                "trivia-dev-refill",
                json!({}),
                json!({"alias_arn": ALIAS}),
            ),
        ),
        (
            "valkey.cache",
            resource(
                Kind::ServerlessCache,
                "trivia-dev-cache",
                json!({}),
                json!({}),
            ),
        ),
        (
            "ssm.valkey-endpoint",
            resource(
                Kind::SsmParameter,
                "/trivia-dev/valkey/endpoint",
                json!({"name": "/trivia-dev/valkey/endpoint"}),
                json!({}),
            ),
        ),
        (
            "ssm.valkey-port",
            resource(
                Kind::SsmParameter,
                "/trivia-dev/valkey/port",
                json!({"name": "/trivia-dev/valkey/port"}),
                json!({}),
            ),
        ),
    ] {
        s.resources.insert(Address::new(address), r);
    }
    s
}

fn check<'a>(report: &'a [Check], name: &str) -> &'a Check {
    report
        .iter()
        .find(|c| c.check == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {report:#?}"))
}

/// The base URL of an API that is not listening: a port just freed.
fn unreachable_api() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/v1")
}

async fn round_with(cloud: &Cloud, base: &str) -> Vec<Check> {
    let mut r = Recorder { checks: Vec::new() };
    round(
        &mut r,
        cloud,
        &spec(true),
        &state(),
        &reqwest::Client::new(),
        base,
    )
    .await;
    r.checks
}

#[tokio::test]
async fn a_failed_sign_in_fails_the_round_and_the_user_is_still_deleted() {
    let cloud = Cloud {
        sign_in: Err("USER_PASSWORD_AUTH sign-in failed: NotAuthorizedException".into()),
        ..Cloud::default()
    };
    let checks = round_with(&cloud, "http://127.0.0.1:9/v1").await;

    let names: Vec<&str> = checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(names, ["sign in", "play a round", "leaderboard", "cleanup"]);
    let sign_in = check(&checks, "sign in");
    assert!(!sign_in.ok);
    assert_eq!(
        sign_in.detail,
        "USER_PASSWORD_AUTH sign-in failed: NotAuthorizedException"
    );
    for skipped in ["play a round", "leaderboard"] {
        let c = check(&checks, skipped);
        assert!(!c.ok);
        assert_eq!(c.detail, "not run: sign-in failed");
        assert_eq!(c.latency_ms, None);
    }
    let cleanup = check(&checks, "cleanup");
    assert!(cleanup.ok, "{cleanup:?}");
    assert_eq!(cleanup.detail, "user deleted");
    let created = cloud.created.lock().unwrap().clone();
    assert_eq!(created.len(), 1);
    assert!(created[0].starts_with("us-east-1_pool/deploy-smoke-"));
    assert_eq!(*cloud.deleted.lock().unwrap(), created);
}

#[tokio::test]
async fn a_user_that_was_never_created_is_not_cleaned_up() {
    let cloud = Cloud {
        create_error: Some("cannot create a temporary user in us-east-1_pool: throttled".into()),
        ..Cloud::default()
    };
    let checks = round_with(&cloud, "http://127.0.0.1:9/v1").await;

    let sign_in = check(&checks, "sign in");
    assert!(!sign_in.ok);
    assert_eq!(
        sign_in.detail,
        "cannot create a temporary user in us-east-1_pool: throttled"
    );
    assert!(checks.iter().all(|c| c.check != "cleanup"), "{checks:#?}");
    assert!(cloud.deleted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_user_whose_password_could_not_be_set_is_deleted() {
    let cloud = Cloud {
        create_error: Some("cannot set the temporary user's password: InvalidPassword".into()),
        ..Cloud::default()
    };
    let checks = round_with(&cloud, "http://127.0.0.1:9/v1").await;

    assert!(!check(&checks, "sign in").ok);
    assert!(check(&checks, "cleanup").ok);
    assert_eq!(cloud.deleted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn when_the_round_fails_after_sign_in_the_user_is_deleted_and_the_lost_data_reported() {
    let cloud = Cloud::default();
    let base = unreachable_api();
    let checks = round_with(&cloud, &base).await;

    assert!(check(&checks, "sign in").ok);
    let play = check(&checks, "play a round");
    assert!(!play.ok);
    assert!(
        play.detail.starts_with("GET /categories: "),
        "{}",
        play.detail
    );
    assert_eq!(
        check(&checks, "leaderboard").detail,
        "not run: the round failed"
    );
    let cleanup = check(&checks, "cleanup");
    assert!(!cleanup.ok);
    assert!(
        cleanup
            .detail
            .starts_with("their game data was not removed: DELETE /me: "),
        "{}",
        cleanup.detail
    );
    assert_eq!(cloud.deleted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_client_allowing_password_sign_in_the_round_is_not_run() {
    let cloud = Cloud::default();
    let mut spec = spec(true);
    spec.cognito.as_mut().unwrap().clients.clear();
    let mut r = Recorder { checks: Vec::new() };
    round(
        &mut r,
        &cloud,
        &spec,
        &state(),
        &reqwest::Client::new(),
        "http://127.0.0.1:9/v1",
    )
    .await;

    assert_eq!(r.checks.len(), 1);
    assert_eq!(
        r.checks[0].detail,
        "not run: no app client allows user_password sign-in (add it to a client's auth_flows)"
    );
    assert!(cloud.created.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_disabled_rule_fails_its_schedule_check() {
    let mut cloud = Cloud::default();
    cloud
        .rules
        .insert("trivia-dev-refill".into(), (false, vec![ALIAS.into()]));
    let report = run(&cloud, &spec(false), &state(), Err("no API".into())).await;

    assert!(!report.ok);
    let c = check(&report.checks, "schedule refill");
    assert!(!c.ok);
    assert_eq!(
        c.detail,
        "rule trivia-dev-refill is disabled, the spec says enabled"
    );
}

#[tokio::test]
async fn a_rule_not_targeting_the_function_alias_fails_its_schedule_check() {
    let mut cloud = Cloud::default();
    cloud
        .rules
        .insert("trivia-dev-refill".into(), (true, Vec::new()));
    let report = run(&cloud, &spec(false), &state(), Err("no API".into())).await;
    assert_eq!(
        check(&report.checks, "schedule refill").detail,
        format!("rule trivia-dev-refill targets nothing instead of the refill alias {ALIAS}")
    );

    let unaliased = ALIAS.trim_end_matches(":live");
    cloud
        .rules
        .insert("trivia-dev-refill".into(), (true, vec![unaliased.into()]));
    let report = run(&cloud, &spec(false), &state(), Err("no API".into())).await;
    let c = check(&report.checks, "schedule refill");
    assert!(!c.ok);
    assert_eq!(
        c.detail,
        format!("rule trivia-dev-refill targets {unaliased} instead of the refill alias {ALIAS}")
    );
}

#[tokio::test]
async fn parameters_not_holding_the_cache_endpoint_fail() {
    let mut cloud = Cloud {
        endpoint: ("new-cache.local".into(), 6379),
        ..Cloud::default()
    };
    cloud.parameters.remove("/trivia-dev/valkey/port");
    let report = run(&cloud, &spec(false), &state(), Err("no API".into())).await;

    assert!(!report.ok);
    let c = check(&report.checks, "ssm parameters");
    assert!(!c.ok);
    assert_eq!(
        c.detail,
        "/trivia-dev/valkey/endpoint is `cache.local`, the cache's endpoint is `new-cache.local`; \
         /trivia-dev/valkey/port does not exist"
    );
}

#[tokio::test]
async fn when_everything_answers_as_deployed_every_check_passes() {
    let cloud = Cloud::default();
    let report = run(&cloud, &spec(false), &state(), Err("no API".into())).await;

    assert!(report.ok, "{report:#?}");
    let details: Vec<(&str, &str)> = report
        .checks
        .iter()
        .map(|c| (c.check.as_str(), c.detail.as_str()))
        .collect();
    assert_eq!(
        details,
        [
            (
                "schedule refill",
                format!("rule trivia-dev-refill is enabled and targets {ALIAS}").as_str()
            ),
            (
                "ssm parameters",
                "/trivia-dev/valkey/endpoint and /trivia-dev/valkey/port hold cache.local:6379"
            ),
        ]
    );
    assert_eq!(report.target, "");
    assert!(cloud.created.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_fails_health_and_skips_the_http_checks() {
    let cloud = Cloud::default();
    let report = run(
        &cloud,
        &spec(true),
        &state(),
        Err("the environment has no API".into()),
    )
    .await;

    assert!(!report.ok);
    let health = check(&report.checks, "health");
    assert!(!health.ok);
    assert_eq!(health.detail, "the environment has no API");
    for skipped in [
        "refused without token",
        "cors preflight",
        "sign in",
        "play a round",
        "leaderboard",
    ] {
        assert_eq!(
            check(&report.checks, skipped).detail,
            "not run: the API is not reachable"
        );
    }
    assert!(check(&report.checks, "schedule refill").ok);
    assert!(check(&report.checks, "ssm parameters").ok);
    assert!(cloud.created.lock().unwrap().is_empty());
}
