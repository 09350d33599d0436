//! Prints what keeping state in S3 costs an apply (asserts nothing): `deploy apply -e
//! local` from scratch, under the emulator's realistic-timing profile (real AWS
//! durations × 0.01) with 20 ms injected per call, S3 included, with state in S3
//! (conditional writes after every step, the lock's heartbeat) against state in the
//! local directory. Target: under 10% slower.
//!
//! Run with `cargo bench --bench state`.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::LocalCloud;

const SCALE: f64 = 0.01;
const ROUNDS: usize = 5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(
    cloud: &LocalCloud,
    state: &Path,
    url: Option<&str>,
    env: &str,
    args: &[&str],
) -> Duration {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deploy"));
    c.current_dir(root())
        .args(args)
        .args(["-e", env, "-q"])
        .env("DEPLOY_STATE_DIR", state)
        .env("DEPLOY_NO_BUILD", "1")
        .env("DEPLOY_NO_SMOKE", "1")
        .env("DEPLOY_WAIT_SCALE", SCALE.to_string())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", cloud.0))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("DEPLOY_STATE_URL");
    if let Some(url) = url {
        c.env("DEPLOY_STATE_URL", url);
    }
    let started = Instant::now();
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "deploy {args:?} -e {env} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let cloud = LocalCloud::start(&[
        "--profile",
        "realistic",
        "--scale",
        &SCALE.to_string(),
        "--latency-ms",
        "20",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_deploy"));
    bootstrap
        .args(["backend", "bootstrap", "--bucket", "bench-state"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", cloud.0))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
    assert!(bootstrap.output().unwrap().status.success());
    // Each apply makes an environment of its own (a cache being deleted keeps its
    // name for a while, as on AWS), from the same spec as `local`. The first pair
    // warms moto up (it loads each service's backend on first use) and is not counted.
    let spec = |name: &str| -> String {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "extends: {}\nenvironment: {name}\nvalkey:\n  publish_to_ssm: /trivia-{name}/valkey\n",
                root().join("environments/local.yaml").display()
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let url = Some("s3://bench-state/trivia");
    let (mut local, mut s3) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        // Which goes first alternates, and each environment is destroyed before the
        // next apply: the emulator slows as it holds more, which would favour the first.
        let mut modes = [("l", None), ("s", url)];
        if round % 2 == 1 {
            modes.reverse();
        }
        for (mode, url) in modes {
            let env = spec(&format!("bench-{mode}{round}"));
            let took = deploy(&cloud, &state, url, &env, &["apply", "--yes"]);
            if round > 0 {
                if url.is_some() { &mut s3 } else { &mut local }.push(took);
            }
            deploy(
                &cloud,
                &state,
                url,
                &env,
                &["destroy", "--yes", "--allow-data-loss"],
            );
        }
    }
    let (l, s) = (median(local.clone()), median(s3.clone()));
    println!(
        "apply from scratch of `local`, realistic timing × {SCALE}, 20 ms per call, median of {ROUNDS}:"
    );
    println!(
        "  local state {:.2} s {:?}",
        l.as_secs_f64(),
        local
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    println!(
        "  S3 state    {:.2} s {:?}",
        s.as_secs_f64(),
        s3.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    println!(
        "  S3 / local  {:.3}× (target < 1.10×)",
        s.as_secs_f64() / l.as_secs_f64()
    );
}
