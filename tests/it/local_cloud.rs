//! The local cloud runs what is deployed: after `deploy apply -e local`, requests go
//! through the emulator's API Gateway data plane (routes, Cognito authorizer, CORS mock
//! integrations) to the deployed `bootstrap` running in its Lambda runtime, which
//! reaches the cache over TLS through its security groups; schedules fire; logs land
//! in CloudWatch Logs. Through the `deploy` binary and plain HTTP, as a user meets it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::aws::{ok, user_pool_and_client, Emulator, Env};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn deploy(env: &Env, em: &Emulator, args: &[&str]) -> std::process::Output {
    env.command(em, args)
        .env_remove("DEPLOY_NO_BUILD")
        .env_remove("DEPLOY_NO_SMOKE")
        .output()
        .unwrap()
}

/// How often the local Lambda runtime has invoked `function`.
async fn invocations(em: &Emulator, function: &str) -> u64 {
    let v: Value = reqwest::get(format!("{}/_deploy/lambda/functions", em.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v[function]["invocations"].as_u64().unwrap_or(0)
}

/// A user of `pool` signed in through `client`: their ID token.
async fn id_token(em: &Emulator, pool: &str, client: &str, username: &str) -> String {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&em.sdk().await);
    cognito
        .admin_create_user()
        .user_pool_id(pool)
        .username(username)
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    cognito
        .admin_set_user_password()
        .user_pool_id(pool)
        .username(username)
        .password("Corr3ct-Horse!")
        .permanent(true)
        .send()
        .await
        .unwrap();
    let auth = cognito
        .initiate_auth()
        .client_id(client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", "Corr3ct-Horse!")
        .send()
        .await
        .unwrap();
    auth.authentication_result()
        .unwrap()
        .id_token()
        .unwrap()
        .to_string()
}

/// Log lines of `group` through `deploy logs`, as JSON values.
fn logs(env: &Env, em: &Emulator, function: &str) -> Vec<Value> {
    let out = deploy(env, em, &["logs", function, "--since", "1h", "--json"]);
    ok(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_go_through_the_gateway_authorizer_and_runtime_as_on_aws() {
    // rate(6 hours) fires every 10.8 s.
    let em = Emulator::start(&["--schedule-scale", "0.0005"]);
    let env = Env::new();
    env.edit(
        "base.yaml",
        "run_after_apply: true",
        "run_after_apply: false",
    );

    let out = deploy(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("smoke checks passed"), "{log}");
    let url = ok(&deploy(&env, &em, &["output", "api.rest_api.invoke_url"]))
        .trim()
        .trim_end_matches('/')
        .to_string();
    assert!(url.contains("/_user_request_"), "{url}");
    let http = reqwest::Client::new();

    // A signed-in player gets their profile.
    let cfg = em.sdk().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&cfg);
    let (pool, client) = user_pool_and_client(&em).await;
    let token = id_token(&em, &pool, &client, "player@example.com").await;
    let me = http
        .get(format!("{url}/me"))
        .header("Authorization", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "{:?}", me.text().await);

    // Refusals come from the authorizer: the function never runs.
    let other_pool = cognito
        .create_user_pool()
        .pool_name("elsewhere")
        .send()
        .await
        .unwrap();
    let other_pool = other_pool.user_pool().unwrap().id().unwrap().to_string();
    let other_client = cognito
        .create_user_pool_client()
        .user_pool_id(&other_pool)
        .client_name("web")
        .explicit_auth_flows(
            aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowUserPasswordAuth,
        )
        .send()
        .await
        .unwrap();
    let other_client = other_client
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_string();
    let foreign = id_token(&em, &other_pool, &other_client, "stranger@example.com").await;
    // One character inside the signature (the last one also carries padding bits that
    // decoders ignore, so changing it may change nothing).
    let mut tampered: Vec<char> = token.chars().collect();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let before = invocations(&em, "trivia-local-api").await;
    for (why, header) in [
        ("no token", None),
        ("a tampered signature", Some(tampered.as_str())),
        ("another pool's token", Some(foreign.as_str())),
    ] {
        let mut req = http.get(format!("{url}/me"));
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["message"], "Unauthorized", "{why}");
    }
    assert_eq!(invocations(&em, "trivia-local-api").await, before);

    // An unknown route: API Gateway's own answer.
    let resp = http.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Missing Authentication Token"
    );

    // CORS preflight from the mock integration, with the spec's origins.
    let resp = http
        .request(reqwest::Method::OPTIONS, format!("{url}/games"))
        .header("Origin", "https://game.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");

    // A request the gateway answered leaves its invocation's START and REPORT lines,
    // found from the request id the gateway returned.
    let resp = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_string();
    let mut lambda_id = String::new();
    eventually(
        "the access log line of the request",
        Duration::from_secs(20),
        async || {
            let lines = logs(&env, &em, "api");
            lambda_id = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l["message"].as_str()?).ok())
                .find(|m| m["request_id"] == request_id.as_str())
                .and_then(|m| m["lambda_request_id"].as_str().map(String::from))
                .unwrap_or_default();
            !lambda_id.is_empty()
        },
    )
    .await;
    let lines = logs(&env, &em, "api");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with(&format!("START RequestId: {lambda_id}"))),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with(&format!("REPORT RequestId: {lambda_id}"))),
        "{messages:#?}"
    );
    // Every invocation, the smoke checks' included, has both.
    let starts = messages
        .iter()
        .filter(|m| m.starts_with("START RequestId:"))
        .count();
    let reports = messages
        .iter()
        .filter(|m| m.starts_with("REPORT RequestId:"))
        .count();
    assert!(starts >= 8, "{messages:#?}");
    assert_eq!(starts, reports, "{messages:#?}");

    // With run_after_apply off, the schedule fills every category on its own, and the
    // preloader saw a Scheduled Event.
    eventually(
        "the schedule's first run",
        Duration::from_secs(60),
        async || {
            let cats = http.get(format!("{url}/categories")).send().await.unwrap();
            let cats: Value = cats.json().await.unwrap();
            cats["categories"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["questions_loaded"].as_u64().unwrap_or(0) > 0)
        },
    )
    .await;
    let preloads = logs(&env, &em, "preloader");
    assert!(
        preloads.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"event\":\"Scheduled Event\""))),
        "{preloads:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_groups_and_init_crashes_behave_as_in_a_vpc() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    let out = deploy(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    let url = ok(&deploy(&env, &em, &["output", "api.rest_api.invoke_url"]))
        .trim()
        .trim_end_matches('/')
        .to_string();
    let http = reqwest::Client::new();

    // Without the functions' egress rule to the cache, a new instance's connection to
    // Valkey times out, as in a VPC: /health says 503, not a success.
    env.edit(
        "base.yaml",
        "      - { ports: \"6379-6380\", group: valkey, description: Valkey }\n",
        "",
    );
    ok(&deploy(&env, &em, &["apply", "--yes", "--no-smoke"]));
    // Established connections outlive a rule change on AWS too: start afresh.
    let stopped = reqwest::Client::new()
        .delete(format!("{}/_deploy/lambda/instances", em.url()))
        .send()
        .await
        .unwrap();
    assert!(stopped.status().is_success());
    let resp = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["valkey"]["reachable"], false, "{body}");

    // A configuration whose process exits at init: 502 at the gateway, the smoke checks
    // fail, and the live alias goes back to the version that worked.
    env.edit(
        "base.yaml",
        "    egress:\n      - { ports: 443, cidr: 0.0.0.0/0, description: AWS APIs and the question source }\n",
        "    egress:\n      - { ports: 443, cidr: 0.0.0.0/0, description: AWS APIs and the question source }\n      - { ports: \"6379-6380\", group: valkey, description: Valkey }\n",
    );
    ok(&deploy(&env, &em, &["apply", "--yes"]));
    env.edit(
        "local.yaml",
        "      QUESTION_SOURCE_URL: none\n",
        "      QUESTION_SOURCE_URL: none\n      VALKEY_PORT: not-a-port\n",
    );
    let out = deploy(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("502"), "{log}");
    assert!(log.contains("rolled back function.api"), "{log}");
    let resp = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let crash = logs(&env, &em, "api");
    assert!(
        crash.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("VALKEY_PORT"))),
        "the init crash's own words are in the log: {crash:#?}"
    );
}
