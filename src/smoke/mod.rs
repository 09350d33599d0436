//! Checks that a deployed environment works, end to end, against its real endpoints:
//! the health route (Valkey reachable, over TLS, with its latency), a temporary Cognito
//! user who plays one round through the protected routes and shows up on the
//! leaderboard, refusal without a token, CORS preflight, the schedules, and the SSM
//! parameters. The temporary user and their game data are removed afterwards.
//! Against the local cloud the checks take the same path: its API Gateway data plane,
//! its Cognito authorizer and its Lambda runtime running the deployed `bootstrap`.
//!
//! The AWS services the checks read or change besides the API (Cognito, EventBridge,
//! SSM, ElastiCache) sit behind narrow traits, implemented for the SDK clients in
//! [`aws`], so what the checks conclude can be tested without a cloud.

mod aws;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::aws::Clients;
use crate::model::Address;
use crate::spec::model::Spec;
use crate::state::State;

/// Cognito, as the round uses it: a temporary user who signs in and is removed.
trait Identity {
    /// A confirmed user with a permanent password. An error starting with "cannot
    /// create" means nothing was created, so there is nothing to clean up.
    async fn create_user(
        &self,
        pool: &str,
        username: &str,
        display_name: &str,
        password: &str,
    ) -> Result<(), String>;
    /// Signs in with the user's password; returns the ID token.
    async fn sign_in(&self, client: &str, username: &str, password: &str)
        -> Result<String, String>;
    /// Deletes a user; one already gone counts as deleted.
    async fn delete_user(&self, pool: &str, username: &str) -> Result<(), String>;
}

/// EventBridge: whether a rule is enabled, and the ARNs it targets.
trait Schedules {
    async fn rule_status(&self, rule: &str) -> Result<(bool, Vec<String>), String>;
}

/// SSM: the values of those of `names` that exist.
trait Parameters {
    async fn values(&self, names: &[String]) -> Result<BTreeMap<String, String>, String>;
}

/// ElastiCache: a serverless cache's endpoint, address and port.
trait Cache {
    async fn endpoint(&self, cache: &str) -> Result<(String, i32), String>;
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: String,
    /// Where the HTTP checks went.
    pub target: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

struct Recorder {
    checks: Vec<Check>,
}

impl Recorder {
    fn push(&mut self, check: &str, started: Instant, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        self.checks.push(Check {
            check: check.into(),
            ok,
            detail: result.unwrap_or_else(|e| e),
            latency_ms: Some(ms(started.elapsed())),
        });
        ok
    }

    fn skip(&mut self, check: &str, why: &str) {
        self.checks.push(Check {
            check: check.into(),
            ok: false,
            detail: format!("not run: {why}"),
            latency_ms: None,
        });
    }
}

fn resource<'a>(state: &'a State, address: &str) -> Option<&'a crate::state::ResourceState> {
    state.resources.get(&Address::new(address))
}

fn text<'a>(attrs: &'a crate::model::Attrs, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

/// The API's base URL from the environment's outputs (`…/v1`, no trailing slash).
pub fn api_url(state: &State) -> Option<String> {
    resource(state, "api.rest_api")
        .and_then(|r| text(&r.outputs, "invoke_url"))
        .map(|u| u.trim_end_matches('/').to_string())
}

/// Runs every check; never fails itself, a problem is a failed check. The HTTP checks
/// go to `target` (the API's base URL); when there is none, they fail with its reason.
pub async fn run_on(
    clients: &Clients,
    spec: &Spec,
    state: &State,
    target: Result<String, String>,
) -> Report {
    run(clients, spec, state, target).await
}

async fn run(
    cloud: &(impl Identity + Schedules + Parameters + Cache),
    spec: &Spec,
    state: &State,
    target: Result<String, String>,
) -> Report {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client with default TLS builds");
    let mut r = Recorder { checks: Vec::new() };
    let require_tls = spec.smoke.as_ref().is_none_or(|s| s.require_tls);
    let base = match target {
        Ok(u) => u.trim_end_matches('/').to_string(),
        Err(why) => {
            if spec.api.is_some() {
                r.push("health", Instant::now(), Err(why));
                for c in [
                    "refused without token",
                    "cors preflight",
                    "sign in",
                    "play a round",
                    "leaderboard",
                ] {
                    r.skip(c, "the API is not reachable");
                }
            }
            String::new()
        }
    };

    if spec.api.is_some() && !base.is_empty() {
        // Health: through the API, Valkey from inside the VPC.
        let t = Instant::now();
        let res = async {
            let resp = http
                .get(format!("{base}/health"))
                .send()
                .await
                .map_err(|e| format!("GET /health: {}", error_chain(&e)))?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let valkey = &body["valkey"];
            if !status.is_success() || valkey["reachable"] != json!(true) {
                return Err(format!(
                    "GET /health answered {status}: {}",
                    valkey["error"].as_str().unwrap_or("Valkey not reachable")
                ));
            }
            let tls = valkey["tls"] == json!(true);
            if require_tls && !tls {
                return Err("Valkey is reachable but not over TLS".into());
            }
            Ok(format!(
                "Valkey reachable{} in {} ms (version {})",
                if tls { " over TLS" } else { " (TLS off)" },
                valkey["latency_ms"],
                body["version"].as_str().unwrap_or("?")
            ))
        }
        .await;
        r.push("health", t, res);

        // A protected route without a token.
        let t = Instant::now();
        let res = async {
            let resp = http
                .post(format!("{base}/games"))
                .json(&json!({"category": "general"}))
                .send()
                .await
                .map_err(|e| format!("POST /games: {}", error_chain(&e)))?;
            match resp.status().as_u16() {
                401 | 403 => Ok(format!("POST /games without a token: {}", resp.status())),
                s => Err(format!(
                    "POST /games without a token answered {s}, not 401/403"
                )),
            }
        }
        .await;
        r.push("refused without token", t, res);

        // CORS preflight, from an origin the spec allows.
        let cors = spec.api.as_ref().and_then(|a| a.cors.as_ref());
        if let Some(cors) = cors {
            let t = Instant::now();
            let origin = cors
                .allow_origins
                .iter()
                .find(|o| o.as_str() != "*")
                .cloned()
                .unwrap_or_else(|| "https://smoke.example.com".into());
            let res = async {
                let resp = http
                    .request(reqwest::Method::OPTIONS, format!("{base}/games"))
                    .header("Origin", &origin)
                    .header("Access-Control-Request-Method", "POST")
                    .header(
                        "Access-Control-Request-Headers",
                        "authorization,content-type",
                    )
                    .send()
                    .await
                    .map_err(|e| format!("OPTIONS /games: {}", error_chain(&e)))?;
                let allow = resp
                    .headers()
                    .get("access-control-allow-origin")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                match (resp.status().is_success(), allow) {
                    (true, Some(o)) if o == origin || o == "*" => {
                        Ok(format!("preflight {} allows origin {o}", resp.status()))
                    }
                    (_, allow) => Err(format!(
                        "preflight from {origin} answered {} with Access-Control-Allow-Origin {}",
                        resp.status(),
                        allow.unwrap_or_else(|| "missing".into())
                    )),
                }
            }
            .await;
            r.push("cors preflight", t, res);
        }

        round(&mut r, cloud, spec, state, &http, &base).await;
    }

    schedules(&mut r, cloud, spec, state).await;
    parameters(&mut r, cloud, state).await;

    Report {
        environment: state.environment.clone(),
        target: base,
        ok: r.checks.iter().all(|c| c.ok),
        checks: r.checks,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// A temporary user signs in, plays one round, checks the leaderboard, and is removed
/// with their data.
async fn round(
    r: &mut Recorder,
    identity: &impl Identity,
    spec: &Spec,
    state: &State,
    http: &reqwest::Client,
    base: &str,
) {
    let Some(pool) = resource(state, "cognito.user_pool").map(|p| p.id.clone()) else {
        r.skip("sign in", "the environment has no user pool");
        return;
    };
    let client = spec.cognito.as_ref().and_then(|c| {
        c.clients
            .iter()
            .find(|(_, cl)| {
                cl.auth_flows
                    .contains(&crate::spec::model::AuthFlow::UserPassword)
            })
            .and_then(|(name, _)| resource(state, &format!("cognito.client.{name}")))
            .and_then(|c| text(&c.outputs, "id").map(String::from))
    });
    let Some(client) = client else {
        r.skip(
            "sign in",
            "no app client allows user_password sign-in (add it to a client's auth_flows)",
        );
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let username = format!("deploy-smoke-{}@example.com", &suffix[..12]);
    let password = format!("Sm0ke!{suffix}");

    let t = Instant::now();
    let token = async {
        let display_name = format!("smoke-{}", &suffix[..8]);
        identity
            .create_user(&pool, &username, &display_name, &password)
            .await?;
        identity.sign_in(&client, &username, &password).await
    }
    .await;
    let created = !matches!(&token, Err(e) if e.starts_with("cannot create"));
    let token = match token {
        Ok(tok) => {
            r.push(
                "sign in",
                t,
                Ok(format!("temporary user {username} signed in")),
            );
            Some(tok)
        }
        Err(e) => {
            r.push("sign in", t, Err(e));
            None
        }
    };

    if let Some(token) = &token {
        let t = Instant::now();
        let res = play(http, base, token).await;
        if r.push("play a round", t, res) {
            let t = Instant::now();
            let res = async {
                let v = call(
                    http,
                    reqwest::Method::GET,
                    base,
                    "/leaderboard/me",
                    token,
                    None,
                )
                .await?;
                match v["rank"].as_u64() {
                    Some(rank) => Ok(format!("the player is ranked {rank} this week")),
                    None => Err(format!("the player is not on this week's leaderboard: {v}")),
                }
            }
            .await;
            r.push("leaderboard", t, res);
        } else {
            r.skip("leaderboard", "the round failed");
        }
    } else {
        r.skip("play a round", "sign-in failed");
        r.skip("leaderboard", "sign-in failed");
    }

    // Cleanup runs whatever happened above.
    if created {
        let t = Instant::now();
        let mut notes = Vec::new();
        let mut failed = Vec::new();
        if let Some(token) = &token {
            match call(http, reqwest::Method::DELETE, base, "/me", token, None).await {
                Ok(v) => notes.push(format!("{} game keys removed", v["keys_changed"])),
                Err(e) => failed.push(format!("their game data was not removed: {e}")),
            }
        }
        match identity.delete_user(&pool, &username).await {
            Ok(()) => notes.push("user deleted".into()),
            Err(e) => failed.push(format!("user {username} was not deleted: {e}")),
        }
        let res = if failed.is_empty() {
            Ok(notes.join("; "))
        } else {
            Err(failed.join("; "))
        };
        r.push("cleanup", t, res);
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = http
        .request(method.clone(), format!("{base}{path}"))
        // The raw ID token: the form API Gateway's Cognito authorizer documents.
        .header(reqwest::header::AUTHORIZATION, token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {}", error_chain(&e)))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{method} {path} answered {status}: {v}"));
    }
    Ok(v)
}

async fn play(http: &reqwest::Client, base: &str, token: &str) -> Result<String, String> {
    use reqwest::Method;
    let cats = call(http, Method::GET, base, "/categories", token, None).await?;
    let category = cats["categories"][0]["id"]
        .as_str()
        .ok_or_else(|| format!("GET /categories listed none: {cats}"))?
        .to_string();
    let started = call(
        http,
        Method::POST,
        base,
        "/games",
        token,
        Some(json!({"category": category})),
    )
    .await?;
    let game = started["game_id"]
        .as_str()
        .ok_or_else(|| format!("POST /games gave no game_id: {started}"))?;
    let q = &started["question"];
    let (qid, choice) = (q["id"].as_str(), q["choices"][0].as_str());
    let (Some(qid), Some(choice)) = (qid, choice) else {
        return Err(format!("POST /games gave no question: {started}"));
    };
    let answered = call(
        http,
        Method::POST,
        base,
        &format!("/games/{game}/answers"),
        token,
        Some(json!({"question_id": qid, "answer": choice})),
    )
    .await?;
    let finished = call(
        http,
        Method::POST,
        base,
        &format!("/games/{game}/finish"),
        token,
        None,
    )
    .await?;
    Ok(format!(
        "{category}: answered {} ({}), finished with score {}",
        answered["answered"],
        if answered["correct"] == json!(true) {
            "correct"
        } else {
            "wrong"
        },
        finished["score"]
    ))
}

async fn schedules(r: &mut Recorder, events: &impl Schedules, spec: &Spec, state: &State) {
    for (name, s) in &spec.schedules {
        let check = format!("schedule {name}");
        let t = Instant::now();
        let rule = resource(state, &format!("schedule.{name}"))
            .and_then(|x| text(&x.inputs, "name"))
            .map(String::from);
        let alias = resource(state, &format!("function.{}", s.function))
            .and_then(|x| text(&x.outputs, "alias_arn"))
            .map(String::from);
        let (Some(rule), Some(alias)) = (rule, alias) else {
            r.skip(&check, "the rule or its function is not in state");
            continue;
        };
        let res = async {
            let (enabled, targets) = events.rule_status(&rule).await?;
            if enabled != s.enabled {
                return Err(format!(
                    "rule {rule} is {}, the spec says {}",
                    if enabled { "enabled" } else { "disabled" },
                    if s.enabled { "enabled" } else { "disabled" }
                ));
            }
            if !targets.iter().any(|t| t == &alias) {
                return Err(format!(
                    "rule {rule} targets {} instead of the {} alias {alias}",
                    if targets.is_empty() {
                        "nothing".to_string()
                    } else {
                        targets.join(", ")
                    },
                    s.function
                ));
            }
            Ok(format!(
                "rule {rule} is {} and targets {alias}",
                if enabled { "enabled" } else { "disabled" }
            ))
        }
        .await;
        r.push(&check, t, res);
    }
}

async fn parameters(r: &mut Recorder, cloud: &(impl Parameters + Cache), state: &State) {
    let names: BTreeMap<&str, String> = ["endpoint", "port"]
        .into_iter()
        .filter_map(|w| {
            resource(state, &format!("ssm.valkey-{w}"))
                .and_then(|x| text(&x.inputs, "name"))
                .map(|n| (w, n.to_string()))
        })
        .collect();
    if names.is_empty() {
        return;
    }
    let Some(cache) = resource(state, "valkey.cache").map(|c| c.id.clone()) else {
        return;
    };
    let t = Instant::now();
    let res = async {
        let (endpoint, port) = cloud.endpoint(&cache).await?;
        let values = cloud
            .values(&names.values().cloned().collect::<Vec<_>>())
            .await?;
        let mut problems = Vec::new();
        for (what, want) in [("endpoint", endpoint.clone()), ("port", port.to_string())] {
            if let Some(name) = names.get(what) {
                match values.get(name) {
                    Some(v) if v == &want => {}
                    Some(v) => {
                        problems.push(format!("{name} is `{v}`, the cache's {what} is `{want}`"))
                    }
                    None => problems.push(format!("{name} does not exist")),
                }
            }
        }
        if problems.is_empty() {
            Ok(format!(
                "{} hold {endpoint}:{port}",
                names.values().cloned().collect::<Vec<_>>().join(" and ")
            ))
        } else {
            Err(problems.join("; "))
        }
    }
    .await;
    r.push("ssm parameters", t, res);
}

#[cfg(test)]
mod tests;
