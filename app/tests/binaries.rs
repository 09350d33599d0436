//! The two binaries as processes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Fakes, Flavor, Server};

fn run_with(bin: &str, env: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_or_malformed_setting_stops_the_api_with_one_line_naming_it() {
    let out = run_with(env!("CARGO_BIN_EXE_trivia-api"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("VALKEY_ENDPOINT"), "{stderr}");
    let out = run_with(
        env!("CARGO_BIN_EXE_trivia-api"),
        &[
            ("VALKEY_ENDPOINT".into(), "h".into()),
            ("VALKEY_PORT".into(), "99999".into()),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("VALKEY_PORT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_locally_and_the_preloader_runs_once() {
    let server = Server::start(Flavor::Cluster).await;
    let fakes = Fakes::start().await;
    let port = common::free_port();
    let mut env = server.env();
    env.extend([
        ("PORT".to_string(), port.to_string()),
        ("COGNITO_ISSUER".into(), fakes.issuer()),
        ("COGNITO_CLIENT_ID".into(), common::CLIENT_ID.into()),
        ("QUESTION_SOURCE_URL".into(), fakes.url.clone()),
    ]);

    let preload = {
        let env = env.clone();
        tokio::task::spawn_blocking(move || run_with(env!("CARGO_BIN_EXE_trivia-preloader"), &env))
            .await
            .unwrap()
    };
    assert_eq!(
        preload.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&preload.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&preload.stdout).unwrap();
    for c in trivia::questions::CATEGORIES {
        assert_eq!(report[c.id]["outcome"], "filled", "{report}");
    }

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trivia-api"));
    cmd.env_clear()
        .envs(env.iter().cloned())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    let mut body = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&url).await {
            body = Some((r.status(), r.json::<serde_json::Value>().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (status, health) = body.expect("the API answered");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["questions_loaded"]["science"], 50, "{health}");
}
