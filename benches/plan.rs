//! Prints figures for the engine foundation's targets (it asserts nothing):
//! - validate + plan (no refresh) of a generated spec with about 1,000 resources:
//!   wall time and peak RSS, measured in a fresh child process per run;
//! - `deploy validate -e dev` as a whole process, start-up included.
//!
//! Run with `cargo bench --bench plan`.
#![allow(clippy::print_stdout)]

use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn generated_spec(functions: usize, schedules: usize, groups: usize) -> String {
    let mut s = String::from(
        "project: bench\nenvironment: big\nregion: us-east-1\nnetwork:\n  vpc_cidr: 10.0.0.0/16\n  public_subnets: { a: 10.0.1.0/24, b: 10.0.2.0/24, c: 10.0.3.0/24 }\n  private_subnets: { a: 10.0.11.0/24, b: 10.0.12.0/24, c: 10.0.13.0/24 }\n  nat: per_az\n",
    );
    s.push_str("security_groups:\n");
    for g in 0..groups {
        let _ = writeln!(s, "  g{g}:\n    ingress:\n      - {{ ports: 443, cidr: 10.0.0.0/16 }}\n    egress:\n      - {{ ports: \"6379-6380\", group: g{} }}", (g + 1) % groups);
    }
    s.push_str("valkey:\n  max_storage_gb: 5\n  max_ecpu_per_second: 10000\n  security_groups: [g0]\n  publish_to_ssm: /bench-big/valkey\n");
    s.push_str("cognito:\n  clients: { web: { auth_flows: [user_password] } }\nfunctions:\n");
    for f in 0..functions {
        let _ = writeln!(
            s,
            "  f{f}:\n    crate: app\n    bin: trivia-api\n    memory_mb: 256\n    vpc: {{ security_groups: [g{}] }}\n    env: {{ VALKEY_ENDPOINT: \"${{valkey.endpoint}}\", PARAM: \"${{ssm.valkey-port.name}}\" }}",
            f % groups
        );
    }
    s.push_str("api:\n  routes:\n");
    for f in 0..functions {
        let _ = writeln!(
            s,
            "    - {{ method: GET, path: /f{f}, function: f{f}, auth: cognito }}"
        );
    }
    s.push_str("schedules:\n");
    for i in 0..schedules {
        let _ = writeln!(
            s,
            "  s{i}: {{ expression: rate({} minutes), function: f{} }}",
            i + 2,
            i % functions
        );
    }
    s
}

/// The child: load, validate, expand and plan once, then report time and peak RSS.
fn child(path: &Path) {
    let started = Instant::now();
    let (_, desired) = deploy::plan::load_desired(path).expect("the generated spec is valid");
    let plan = deploy::plan::plan(deploy::plan::Inputs {
        desired: &desired,
        state: None,
        actual: None,
        targets: &[],
    })
    .expect("plans");
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    println!("{} {} {}", plan.changes.len(), elapsed.as_micros(), hwm_kb);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, generated_spec(440, 60, 20)).expect("write spec");

    let me = std::env::current_exe().expect("own path");
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut resources = 0;
    for _ in 0..RUNS {
        let out = Command::new(&me)
            .arg("--child")
            .arg(&path)
            .output()
            .expect("child runs");
        let line = String::from_utf8_lossy(&out.stdout);
        let mut f = line
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        resources = f.next().unwrap_or(0);
        times.push(Duration::from_micros(f.next().unwrap_or(0)));
        rss.push(f.next().unwrap_or(0));
    }
    let max_rss_mb = *rss.iter().max().unwrap_or(&0) as f64 / 1024.0;
    println!(
        "validate + plan (no refresh), {resources} resources, {RUNS} runs in fresh processes:"
    );
    println!(
        "  median {:.1} ms, worst {:.1} ms (target < 300 ms)",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3
    );
    println!("  peak RSS {max_rss_mb:.1} MB (target < 100 MB; includes the process itself)");

    let bin = env!("CARGO_BIN_EXE_deploy");
    let root = env!("CARGO_MANIFEST_DIR");
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = Command::new(bin)
            .current_dir(root)
            .args(["validate", "-e", "dev"])
            .output()
            .expect("deploy runs");
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "validate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("`deploy validate -e dev` as a process, {RUNS} runs:");
    println!(
        "  median {:.1} ms, worst {:.1} ms (target < 30 ms)",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3
    );
}
