//! Every function of every shipped environment boots in the local cloud's Lambda
//! runtime with its planned configuration, as AWS would start it: the real release
//! `bootstrap`, Lambda mode, the environment variables the plan gives it. A function
//! that exits at cold start (a configuration its own checks refuse) fails here, not
//! on its first request in production.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::aws::{ok, Emulator};

/// Stand-ins for the values references resolve to at apply time: the shapes AWS gives
/// them (nothing listens at the cache address, so /health answers 503 quickly).
fn resolved(reference: &str) -> String {
    let r = reference.trim_start_matches("${").trim_end_matches('}');
    match r.rsplit('.').next().unwrap_or_default() {
        "endpoint" => "127.0.0.1".into(),
        "port" => "1".into(),
        "arn" => format!("arn:aws:iam::123456789012:role/{r}"),
        _ if r.starts_with("cognito.user_pool") => "us-east-1_AbCdEfGhI".into(),
        _ => "1example23456789012345678a".into(),
    }
}

/// The planned environment variables of each function of `spec`: (name, binary, env).
fn planned(spec: &std::path::Path) -> Vec<(String, String, BTreeMap<String, String>)> {
    let loaded = deploy::spec::load(spec).unwrap_or_else(|d| panic!("{}: {d:?}", spec.display()));
    let desired = deploy::plan::desired::expand(&loaded).unwrap();
    desired
        .resources
        .values()
        .filter(|r| r.kind == deploy::model::Kind::LambdaFunction)
        .map(|r| {
            let env = r.inputs["environment"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().unwrap();
                    let v = if v.starts_with("${") {
                        resolved(v)
                    } else {
                        v.to_string()
                    };
                    (k.clone(), v)
                })
                .collect();
            (
                r.inputs["name"].as_str().unwrap().to_string(),
                r.inputs["code"]["bin"].as_str().unwrap().to_string(),
                env,
            )
        })
        .collect()
}

/// A REST proxy event for `GET /health` through stage v1, as API Gateway sends it.
fn health_event() -> Value {
    json!({
        "resource": "/health", "path": "/health", "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "resourceId": "r1",
            "resourcePath": "/health", "httpMethod": "GET", "requestId": "boot-test",
            "stage": "v1", "path": "/v1/health", "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "boot-test"},
            "requestTimeEpoch": 0, "domainName": "localhost"
        },
        "body": null, "isBase64Encoded": false
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_of_every_environment_boots_in_lambda_mode() {
    let em = Emulator::start(&[]);
    // A checkout's layout: the shipped environments, plus one `deploy env create` makes.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let environments = dir.path().join("environments");
    std::fs::create_dir_all(&environments).unwrap();
    std::fs::create_dir_all(dir.path().join("templates/environments")).unwrap();
    for f in [
        "base.yaml",
        "dev.yaml",
        "staging.yaml",
        "prod.yaml",
        "local.yaml",
    ] {
        std::fs::copy(repo.join("environments").join(f), environments.join(f)).unwrap();
    }
    std::fs::copy(
        repo.join("templates/environments/ephemeral.yaml"),
        dir.path().join("templates/environments/ephemeral.yaml"),
    )
    .unwrap();
    let mut created = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"));
    created
        .current_dir(dir.path())
        .args(["env", "create", "pr-7", "--ttl", "2h"]);
    em.aim(&mut created);
    ok(&created.output().unwrap());

    // The release binaries, built as `deploy build` builds them for Lambda.
    let mut build = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"));
    build
        .args(["build", "--json", "-e"])
        .arg(environments.join("dev.yaml"));
    em.aim(&mut build);
    build.env_remove("DEPLOY_NO_BUILD");
    let built: Value = serde_json::from_str(&ok(&build.output().unwrap())).unwrap();
    let zips: BTreeMap<String, Vec<u8>> = built
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let function = b["function"].as_str().unwrap();
            let bin = if function == "api" {
                "trivia-api"
            } else {
                "trivia-preloader"
            };
            (
                bin.to_string(),
                std::fs::read(b["path"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();

    let cfg = em.sdk().await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let role = iam
        .create_role()
        .role_name("boot-test")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap().arn().to_string();
    let lambda = aws_sdk_lambda::Client::new(&cfg);

    let mut failures = Vec::new();
    let mut booted = 0;
    for environment in ["dev", "staging", "prod", "local", "pr-7"] {
        let spec = environments.join(format!("{environment}.yaml"));
        for (name, bin, vars) in planned(&spec) {
            lambda
                .create_function()
                .function_name(&name)
                .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
                .handler("bootstrap")
                .role(&role)
                .timeout(10)
                .code(
                    aws_sdk_lambda::types::FunctionCode::builder()
                        .zip_file(aws_sdk_lambda::primitives::Blob::new(zips[&bin].clone()))
                        .build(),
                )
                .environment(
                    aws_sdk_lambda::types::Environment::builder()
                        .set_variables(Some(vars.into_iter().collect()))
                        .build(),
                )
                .send()
                .await
                .unwrap();
            let event = if bin == "trivia-api" {
                health_event()
            } else {
                json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
            };
            let out = lambda
                .invoke()
                .function_name(&name)
                .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
                .send()
                .await
                .unwrap();
            let payload =
                String::from_utf8_lossy(out.payload().map(|p| p.as_ref()).unwrap_or_default())
                    .into_owned();
            if let Some(error) = out.function_error() {
                failures.push(format!(
                    "{environment}: {name} failed at boot ({error}): {payload}"
                ));
                continue;
            }
            let v: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            if bin == "trivia-api" {
                // A proxy response from the app itself: a status and its JSON body.
                let body: Value =
                    serde_json::from_str(v["body"].as_str().unwrap_or("")).unwrap_or(Value::Null);
                if !v["statusCode"].is_u64() || body["valkey"].is_null() {
                    failures.push(format!(
                        "{environment}: {name} answered no proxy response from /health: {payload}"
                    ));
                    continue;
                }
            } else if !v.is_object() {
                failures.push(format!(
                    "{environment}: {name} returned no report: {payload}"
                ));
                continue;
            }
            booted += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(booted, 10, "two functions in each of five environments");
}
