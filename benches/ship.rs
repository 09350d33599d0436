//! Prints the wall time of a code-only redeploy against the emulator (target < 2 s),
//! asserting nothing. The environment is applied once; then the preloader function
//! alternates between two binaries that are already built, so cargo compiles nothing
//! and the figure is deploy's own work: cargo's up-to-date check, packing and hashing,
//! refresh, plan, and the code, version and alias calls. Smoke checks are off.
//!
//! Run with `cargo bench --bench ship` (`--profile dev` builds faster; the figure is
//! then for a debug `deploy`).
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod common;
use common::LocalCloud as Emulator;

fn deploy(em: &Emulator, dir: &Path, args: &[&str]) -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .current_dir(root())
        .args(args)
        .arg("-e")
        .arg(dir.join("local.yaml"))
        .env("DEPLOY_STATE_DIR", dir.join("state"))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", em.0))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .env_remove("DEPLOY_NO_BUILD")
        .output()
        .unwrap();
    let took = started.elapsed();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    (took, log)
}

fn edit(path: &Path, from: &str, to: &str) {
    let t = std::fs::read_to_string(path).unwrap();
    assert!(t.contains(from));
    std::fs::write(path, t.replacen(from, to, 1)).unwrap();
}

fn main() {
    let em = Emulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    for f in ["base.yaml", "local.yaml"] {
        std::fs::copy(root().join("environments").join(f), dir.path().join(f)).unwrap();
    }
    let base = dir.path().join("base.yaml");
    // Both binaries built up front, so no run below compiles anything.
    let (first, _) = deploy(&em, dir.path(), &["apply", "--yes", "--no-smoke", "-q"]);
    println!(
        "first apply (with the release build of app/): {:.1} s",
        first.as_secs_f64()
    );

    let mut times = Vec::new();
    for i in 0..6 {
        if i % 2 == 0 {
            edit(&base, "bin: trivia-preloader", "bin: trivia-api");
        } else {
            edit(
                &base,
                "bin: trivia-api\n    architecture: x86_64\n    memory_mb: 256",
                "bin: trivia-preloader\n    architecture: x86_64\n    memory_mb: 256",
            );
        }
        let (took, log) = deploy(&em, dir.path(), &["apply", "--yes", "--no-smoke"]);
        assert!(log.contains("1 updated"), "{log}");
        let built = log
            .lines()
            .find_map(|l| {
                l.strip_prefix("Built in ")?
                    .strip_suffix(" s.")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        times.push((took.as_secs_f64(), built));
    }
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, build) = times[times.len() / 2];
    println!(
        "code-only redeploy (1 function: code, version, alias), {} runs: median {median:.2} s wall, of which the build step {build:.2} s (cargo up-to-date check, ELF checks, zip, hash); min {:.2} s, max {:.2} s; target < 2 s",
        times.len(),
        times[0].0,
        times[times.len() - 1].0
    );
}
