//! Shipping the app: the build step, code rollout by hash, smoke checks through the
//! local cloud's API Gateway and Lambda runtime, and rollback when new code fails them.
//! Against the emulator, through the `deploy` binary, with real release builds of
//! `app/`.

use std::process::Output;

use super::aws::{ok, user_pool_and_client, Emulator, Env};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `deploy` as a user runs it: building and smoke-checking.
fn ship(env: &Env, em: &Emulator, args: &[&str]) -> Output {
    env.command(em, args)
        .env_remove("DEPLOY_NO_BUILD")
        .env_remove("DEPLOY_NO_SMOKE")
        .output()
        .unwrap()
}

/// Calls that change something, by `service.Action`, from the emulator's counter.
fn writes(calls: &serde_json::Value) -> Vec<String> {
    let reads = ["Describe", "Get", "List"];
    let mut out: Vec<String> = calls["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            let action = k.split_once('.').map(|x| x.1).unwrap_or(k);
            !reads.iter().any(|r| action.starts_with(r)) && !action.starts_with("GET ")
        })
        .map(|(k, n)| format!("{k} x{n}"))
        .collect();
    out.sort();
    out
}

async fn alias_version(em: &Emulator, function: &str) -> String {
    let lambda = aws_sdk_lambda::Client::new(&em.sdk().await);
    lambda
        .get_alias()
        .function_name(function)
        .name("live")
        .send()
        .await
        .unwrap()
        .function_version()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn build_ship_smoke_and_roll_back_against_the_emulator() {
    let em = Emulator::start(&[]);
    let env = Env::new();

    // Two builds of unchanged code: byte-identical zips, the hash printed is the zip's.
    let first = ok(&ship(&env, &em, &["build", "--json"]));
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let api = first
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["function"] == "api")
        .unwrap()
        .clone();
    let zip1 = std::fs::read(api["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        api["code_sha256"].as_str().unwrap(),
        deploy::artifact::code_sha256(&zip1)
    );
    assert_eq!(api["bytes"].as_u64().unwrap(), zip1.len() as u64);
    std::fs::remove_file(api["path"].as_str().unwrap()).unwrap();
    let second = ok(&ship(&env, &em, &["build", "--json"]));
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    let zip2 = std::fs::read(api["path"].as_str().unwrap()).unwrap();
    assert_eq!(zip1, zip2, "two builds of the same code differ");
    assert_eq!(first, second);
    let bootstrap = deploy::artifact::unpack(&zip1).unwrap();
    deploy::artifact::check_binary(&bootstrap, "x86_64").unwrap();

    // The first apply builds, ships, and every smoke check passes through the gateway.
    let out = ship(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("All 9 smoke checks passed."), "{log}");
    for check in [
        "health",
        "sign in",
        "play a round",
        "leaderboard",
        "cleanup",
    ] {
        assert!(
            log.lines()
                .any(|l| l.trim_start().starts_with(check) && l.contains(" pass ")),
            "{check} did not pass:\n{log}"
        );
    }
    let v1 = alias_version(&em, "trivia-local-api").await;
    // The temporary user is gone.
    let (pool, _) = user_pool_and_client(&em).await;
    let users = aws_sdk_cognitoidentityprovider::Client::new(&em.sdk().await)
        .list_users()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert!(users.users().is_empty(), "{:?}", users.users());

    // Right after an apply: nothing to do, zero write calls.
    em.reset_calls();
    let out = ship(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("No changes."), "{log}");
    assert_eq!(writes(&em.calls()), Vec::<String>::new(), "{log}");

    // A code change (the preloader ships another binary) does only the code steps.
    env.edit("base.yaml", "bin: trivia-preloader", "bin: trivia-api");
    em.reset_calls();
    let out = ship(&env, &em, &["apply", "--yes", "--no-smoke"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(
        writes(&em.calls()),
        vec![
            "lambda.PublishVersion x1",
            "lambda.UpdateAlias x1",
            "lambda.UpdateFunctionCode x1"
        ],
        "{log}"
    );
    assert!(log.contains("1 updated"), "{log}");

    // A broken build: the API function ships the preloader, which answers API
    // Gateway's events with no proxy response: 502 at the gateway. Smoke fails, the
    // alias goes back, the exit code says so.
    env.edit("base.yaml", "bin: trivia-api", "bin: trivia-preloader");
    let out = ship(&env, &em, &["apply", "--yes"]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("health") && log.contains("FAIL"), "{log}");
    assert!(log.contains("502"), "{log}");
    assert!(
        log.contains(&format!(
            "rolled back function.api (trivia-local-api): the live alias is on version {v1} again"
        )),
        "{log}"
    );
    assert_eq!(alias_version(&em, "trivia-local-api").await, v1);
    // What serves now is the previous code, and it passes.
    let out = ship(&env, &em, &["smoke", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(out.status.code(), Some(0));
    // The next plan shows the rolled-back code as a difference, not as "no changes".
    let out = ship(&env, &em, &["plan"]);
    let log = text(&out.stdout);
    assert!(log.contains("code_sha256"), "{log}");
}

#[test]
fn a_binary_needing_newer_glibc_or_another_cpu_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("new.c");
    // arc4random arrived in glibc 2.36, after Amazon Linux 2023's 2.34.
    std::fs::write(
        &src,
        "#include <stdlib.h>\n#include <stdio.h>\nint main(void){printf(\"%u\\n\", arc4random());return 0;}\n",
    )
    .unwrap();
    let bin = dir.path().join("new");
    let status = std::process::Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .status()
        .expect("a C compiler (Rust links with it)");
    assert!(status.success());
    let bytes = std::fs::read(&bin).unwrap();
    let err = deploy::artifact::check_binary(&bytes, "x86_64").unwrap_err();
    assert!(err.contains("arc4random@GLIBC_2.36"), "{err}");
    let err = deploy::artifact::check_binary(&bytes, "arm64").unwrap_err();
    assert!(
        err.contains("built for x86_64") && err.contains("arm64"),
        "{err}"
    );
}
