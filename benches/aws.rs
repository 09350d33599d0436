//! Prints figures for the AWS providers' targets (asserts nothing), against the
//! emulator:
//! - a no-op `deploy plan -e local` with 50 ms injected per call: API calls per
//!   resource (target ≤ 1 on average) and wall time against 6× the latency;
//! - `deploy apply` from scratch under the realistic-timing profile (real AWS
//!   durations × 0.01) against the dependency graph's critical path (target ≤ 1.15×).
//!
//! Run with `cargo bench --bench aws`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deploy::model::Kind;

const SCALE: f64 = 0.01;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod common;
use common::LocalCloud as Emulator;

/// The control-plane calls the emulator counted (and, with `reset`, zeroes them).
fn calls(em: &Emulator, reset: bool) -> serde_json::Value {
    control(em.0, if reset { "DELETE" } else { "GET" }, "/_deploy/calls")
}

/// A plain HTTP/1.0 request to the emulator's control endpoint (no client library:
/// the only dependency is a socket).
fn control(port: u16, method: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str(body).unwrap()
}

fn deploy(
    em: &Emulator,
    state: &Path,
    args: &[&str],
    scale: Option<f64>,
) -> (Duration, std::process::Output) {
    deploy_env(em, state, args, scale, "local")
}

fn deploy_env(
    em: &Emulator,
    state: &Path,
    args: &[&str],
    scale: Option<f64>,
    env: &str,
) -> (Duration, std::process::Output) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deploy"));
    c.current_dir(root())
        .args(args)
        .args(["-e", env, "-q"])
        .env("DEPLOY_STATE_DIR", state)
        .env("DEPLOY_NO_BUILD", "1")
        .env("DEPLOY_NO_SMOKE", "1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", em.0))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(s) = scale {
        c.env("DEPLOY_WAIT_SCALE", s.to_string());
    }
    let started = Instant::now();
    let out = c.output().unwrap();
    (started.elapsed(), out)
}

/// Real AWS seconds for a resource of each kind to exist and settle (mirrors the
/// emulator's realistic profile in tests/emulator/deploy_emulator/timing.py).
fn real_seconds(kind: Kind) -> f64 {
    let call = 0.08;
    match kind {
        Kind::ServerlessCache => 240.0 + 2.0 * call,
        Kind::NatGateway => 90.0 + 2.0 * call,
        Kind::LambdaFunction => 30.0 + 5.0 * call,
        Kind::IamRole => 3.0 * call,
        Kind::RouteTable => 4.0 * call,
        Kind::RestApi => 4.0 * call,
        Kind::ScheduleRule => 4.0 * call,
        _ => 2.0 * call,
    }
}

fn critical_path(desired: &deploy::plan::desired::Desired) -> f64 {
    let mut finish: BTreeMap<&deploy::model::Address, f64> = BTreeMap::new();
    for a in &desired.order {
        let r = &desired.resources[a];
        let start = r
            .depends_on
            .iter()
            .filter_map(|d| finish.get(d))
            .fold(0.0f64, |m, v| m.max(*v));
        finish.insert(a, start + real_seconds(r.kind) * SCALE);
    }
    finish.values().fold(0.0, |m, v| m.max(*v))
}

fn main() {
    let (_, desired) = deploy::plan::load_desired(&root().join("environments/local.yaml")).unwrap();
    let resources = desired.resources.len();

    // No-op plan with 50 ms per call.
    let em = Emulator::start(&["--latency-ms", "50"]);
    let state = tempfile::tempdir().unwrap();
    let (_, out) = deploy(&em, state.path(), &["apply", "--yes"], None);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut times = Vec::new();
    let mut counted = 0;
    for _ in 0..5 {
        calls(&em, true);
        let (t, out) = deploy(&em, state.path(), &["plan", "--detailed-exitcode"], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "the plan is not empty: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        times.push(t);
        counted = calls(&em, false)["total"].as_u64().unwrap();
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("no-op `deploy plan -e local`, {resources} resources, 50 ms injected per call:");
    println!(
        "  {counted} API calls = {:.2} per resource (target ≤ 1)",
        counted as f64 / resources as f64
    );
    println!(
        "  wall time median {:.0} ms = {:.1}× the per-call latency (target ≤ 6×)",
        median.as_secs_f64() * 1e3,
        median.as_secs_f64() / 0.05
    );
    drop(em);

    // Apply from scratch under realistic timing.
    let em = Emulator::start(&["--profile", "realistic", "--scale", &SCALE.to_string()]);
    let state = tempfile::tempdir().unwrap();
    // moto loads each service's backend (and IAM its ~1,000 managed policies) on first
    // use: warm it with a throwaway environment so that cost is not billed to the engine.
    let warm = state.path().join("warmup.yaml");
    let base = root().join("environments/base.yaml");
    std::fs::write(
        &warm,
        format!(
            "extends: {}\nenvironment: warmup\nvalkey:\n  publish_to_ssm: /trivia-warmup/valkey\n",
            base.display()
        ),
    )
    .unwrap();
    let warm = warm.to_string_lossy().into_owned();
    let (_, out) = deploy_env(&em, state.path(), &["apply", "--yes"], Some(SCALE), &warm);
    assert!(
        out.status.success(),
        "warm-up apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    deploy_env(
        &em,
        state.path(),
        &["destroy", "--yes", "--allow-data-loss"],
        Some(SCALE),
        &warm,
    );
    let (t, out) = deploy(&em, state.path(), &["apply", "--yes"], Some(SCALE));
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = critical_path(&desired);
    println!("apply from scratch, realistic timing × {SCALE}:");
    println!(
        "  wall time {:.2} s; critical path of the graph {:.2} s; ratio {:.2}× (target ≤ 1.15×)",
        t.as_secs_f64(),
        path,
        t.as_secs_f64() / path
    );
}
