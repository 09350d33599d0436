//! Prints figures of the local cloud's data plane, asserting nothing:
//! - the API Gateway data plane's added latency per warm request (the round trip a
//!   client sees minus the function's own `REPORT` duration, paired by request id),
//!   p50 and p99 at 1 caller (targets p50 ≤ 3 ms, p99 ≤ 10 ms) and at 16 callers;
//! - the app's cold start, process spawn to first response (`Init Duration` + the first
//!   invocation's `Duration`; target ≤ 30 ms);
//! - invocations per second through one warm instance (Lambda's Invoke API, and the
//!   gateway), one caller.
//!
//! The function is the release `trivia-api` behind a `/{proxy+}` route; the requests
//! hit a path the app answers 404 without touching Valkey, so the figures are the
//! platform's. Run with `cargo bench --bench local_cloud`.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod common;
use common::LocalCloud;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples (no REPORT line matched)".into();
    }
    v.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v[v.len() - 1],
        v.len()
    )
}

/// `REPORT` durations (and init durations) by Lambda request id, and the Lambda request
/// id of each gateway request id, from the function's log group.
async fn log_index(
    logs: &aws_sdk_cloudwatchlogs::Client,
) -> (HashMap<String, (f64, f64)>, HashMap<String, String>) {
    let mut reports = HashMap::new();
    let mut lambda_of = HashMap::new();
    let mut token = None;
    loop {
        let page = logs
            .filter_log_events()
            .log_group_name("/aws/lambda/bench-api")
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        for e in page.events() {
            let m = e.message().unwrap_or_default();
            if let Some(rest) = m.strip_prefix("REPORT RequestId: ") {
                let id = rest.split('\t').next().unwrap().trim().to_string();
                let field = |name: &str| {
                    rest.split('\t')
                        .find_map(|f| f.trim().strip_prefix(name))
                        .and_then(|v| v.trim_end_matches(" ms").parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                reports.insert(id, (field("Duration: "), field("Init Duration: ")));
            } else if let Ok(v) = serde_json::from_str::<Value>(m) {
                if let (Some(g), Some(l)) =
                    (v["request_id"].as_str(), v["lambda_request_id"].as_str())
                {
                    lambda_of.insert(g.to_string(), l.to_string());
                }
            }
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    (reports, lambda_of)
}

/// Sends `n` requests, one after another, and returns (gateway request id, round trip).
async fn requests(http: &reqwest::Client, url: &str, n: usize) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = http.get(url).send().await.unwrap();
        let id = resp.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string();
        let _ = resp.bytes().await.unwrap();
        out.push((id, t.elapsed().as_secs_f64() * 1e3));
    }
    out
}

#[tokio::main]
async fn main() {
    let cloud = LocalCloud::start(&[]);
    let port = cloud.0;
    let endpoint = format!("http://127.0.0.1:{port}");

    // The release trivia-api, built as `deploy build` builds it for Lambda.
    let built = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .current_dir(root())
        .args(["build", "api", "--json", "-q", "-e", "local"])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let built: Value = serde_json::from_slice(&built.stdout).unwrap();
    let zip = std::fs::read(built[0]["path"].as_str().unwrap()).unwrap();

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let role = iam
        .create_role()
        .role_name("bench")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function = lambda
        .create_function()
        .function_name("bench-api")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .memory_size(512)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("VALKEY_ENDPOINT", "127.0.0.1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = function.function_arn().unwrap().to_string();
    let apigw = aws_sdk_apigateway::Client::new(&sdk);
    let api = apigw.create_rest_api().name("bench").send().await.unwrap();
    let api_id = api.id().unwrap().to_string();
    let doc = json!({
        "openapi": "3.0.1",
        "info": {"title": "bench", "version": "1"},
        "paths": {"/{proxy+}": {"x-amazon-apigateway-any-method": {
            "parameters": [{"name": "proxy", "in": "path", "required": true, "schema": {"type": "string"}}],
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy", "httpMethod": "POST",
                "uri": format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"),
            },
            "responses": {}
        }}}
    });
    apigw
        .put_rest_api()
        .rest_api_id(&api_id)
        .mode(aws_sdk_apigateway::types::PutMode::Overwrite)
        .body(aws_sdk_apigateway::primitives::Blob::new(doc.to_string()))
        .send()
        .await
        .unwrap();
    apigw
        .create_deployment()
        .rest_api_id(&api_id)
        .stage_name("v1")
        .send()
        .await
        .unwrap();
    let url = format!("{endpoint}/restapis/{api_id}/v1/_user_request_/bench/nothing-here");
    let http = reqwest::Client::new();

    // Warm up, then one caller.
    requests(&http, &url, 50).await;
    let one = requests(&http, &url, 1000).await;
    // Sixteen callers at once.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(
            async move { requests(&http, &url, 150).await },
        ));
    }
    let mut sixteen = Vec::new();
    for t in tasks {
        sixteen.extend(t.await.unwrap());
    }

    // Cold starts: every warm instance stopped before each invocation.
    let stop = format!("{endpoint}/_deploy/lambda/instances");
    let mut cold_ids = Vec::new();
    for _ in 0..15 {
        http.delete(&stop).send().await.unwrap();
        let (id, _) = requests(&http, &url, 1).await.remove(0);
        cold_ids.push(id);
    }

    // Invocations per second through one warm instance.
    let event = json!({"resource": "/{proxy+}", "path": "/bench", "httpMethod": "GET",
        "headers": {}, "requestContext": {"stage": "v1", "requestId": "x", "path": "/v1/bench"}})
    .to_string();
    let invoke = || {
        lambda
            .invoke()
            .function_name("bench-api")
            .payload(Blob::new(event.clone()))
            .send()
    };
    invoke().await.unwrap();
    let window = Duration::from_secs(3);
    let (t, mut n) = (Instant::now(), 0u32);
    while t.elapsed() < window {
        invoke().await.unwrap();
        n += 1;
    }
    let invoke_rate = f64::from(n) / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let through_gateway = requests(&http, &url, 300).await.len() as f64 / t.elapsed().as_secs_f64();

    // Pair round trips with the functions' REPORT lines.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let (reports, lambda_of) = log_index(&logs).await;
    let added = |sample: &[(String, f64)]| -> Vec<f64> {
        sample
            .iter()
            .filter_map(|(g, rtt)| {
                let (duration, _) = reports.get(lambda_of.get(g)?)?;
                Some(rtt - duration)
            })
            .collect()
    };
    let cold: Vec<f64> = cold_ids
        .iter()
        .filter_map(|g| {
            let (duration, init) = reports.get(lambda_of.get(g)?)?;
            (*init > 0.0).then_some(init + duration)
        })
        .collect();

    println!(
        "gateway added latency, 1 caller (target p50 ≤ 3 ms, p99 ≤ 10 ms): {}",
        summary(added(&one))
    );
    println!(
        "gateway added latency, 16 callers (up to 10 instances): {}",
        summary(added(&sixteen))
    );
    println!(
        "cold start, process spawn to first response (Init Duration + Duration; target ≤ 30 ms): {}",
        summary(cold)
    );
    println!(
        "one warm instance, one caller: {invoke_rate:.0} invocations/s through Lambda's Invoke API, {through_gateway:.0} requests/s through the gateway"
    );
    drop(cloud);
}
