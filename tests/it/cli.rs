//! The `deploy` binary as a user runs it: exit codes, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `deploy` from the repository root with colours off and no terminal.
pub fn deploy(args: &[&str], state_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy"));
    cmd.current_dir(repo())
        .args(args)
        .env("NO_COLOR", "1")
        // Plans here are about the spec; tests/it/ship.rs covers the build.
        .env("DEPLOY_NO_BUILD", "1")
        .env_remove("DEPLOY_ENV")
        .stdin(Stdio::null());
    match state_dir {
        Some(d) => cmd.env("DEPLOY_STATE_DIR", d),
        None => cmd.env(
            "DEPLOY_STATE_DIR",
            std::env::temp_dir().join(format!("deploy-cli-{}", std::process::id())),
        ),
    };
    cmd.output().expect("deploy runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_shipped_environment_validates() {
    for env in ["dev", "staging", "prod"] {
        let out = deploy(&["validate", "-e", env], None);
        assert_eq!(out.status.code(), Some(0), "{env}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("is valid"));
    }
}

#[test]
fn every_malformed_spec_fails_with_a_position_and_a_message() {
    let dir = repo().join("tests/specs/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "the corpus has {} specs", files.len());
    for file in files {
        let body = std::fs::read_to_string(&file).unwrap();
        let expect = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", file.display()));
        let rel = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = deploy(&["validate", "-e", &rel], None);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{rel}: {stderr}");
        assert!(!stderr.contains("panicked"), "{rel} panicked: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains(expect))
            .unwrap_or_else(|| panic!("{rel}: expected `{expect}` in:\n{stderr}"));
        // FILE:LINE:COL: error: …
        let mut parts = line.splitn(4, ':');
        let (file_part, l, c) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(file_part.ends_with(".yaml"), "{rel}: no file in `{line}`");
        assert!(
            l.parse::<usize>().is_ok_and(|n| n > 0) && c.parse::<usize>().is_ok_and(|n| n > 0),
            "{rel}: no line:col in `{line}`"
        );
        assert!(stderr.contains("problem"), "{rel}: no count");
    }
}

#[test]
fn every_problem_of_a_spec_is_reported_at_once() {
    let out = deploy(
        &["validate", "-e", "tests/specs/multi/many-problems.yaml"],
        None,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    for expected in [
        "many-problems.yaml:9:8: error: subnet 10.5.9.0/24 is outside",
        "rate(1 hours)",
        "unknown function `preloadr`",
        "`valkey.cache` has no attribute `endpont`",
        "did you mean `endpoint`?",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 problems found"), "{stderr}");
}

#[test]
fn validate_json_lists_problems_with_positions() {
    let out = deploy(
        &[
            "validate",
            "-e",
            "tests/specs/bad/unknown-key-network.yaml",
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["line"], 5);
    assert_eq!(v["problems"][0]["column"], 3);
    assert_eq!(v["problems"][0]["hint"], "did you mean `vpc_cidr`?");
}

#[test]
fn plan_without_refresh_on_empty_state_creates_everything_summary_first() {
    let out = deploy(&["plan", "-e", "dev", "--no-refresh"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Plan: 28 to create, 0 to update, 0 to replace, 0 to delete."),
        "{stdout}"
    );
    assert!(stdout.contains("+ valkey.cache (serverless_cache)"));
    assert!(
        !stdout.contains('\u{1b}'),
        "NO_COLOR output has escape codes"
    );

    let json = deploy(&["plan", "-e", "dev", "--no-refresh", "--json"], None);
    let plan: deploy::plan::Plan = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan.summary.create, 28);
    assert_eq!(plan.changes.len(), 28);
    assert!(!plan.refreshed);
}

#[test]
fn detailed_exitcode_is_two_when_there_are_changes() {
    let out = deploy(
        &["plan", "-e", "dev", "--no-refresh", "--detailed-exitcode"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_saved_plan_round_trips_and_apply_says_plainly_that_there_are_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.plan.json");
    let out = deploy(
        &[
            "plan",
            "-e",
            "dev",
            "--no-refresh",
            "--out",
            file.to_str().unwrap(),
        ],
        Some(dir.path()),
    );
    assert_eq!(out.status.code(), Some(0));
    let saved: deploy::plan::Plan = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved.summary.create, 28);
    let apply = deploy(
        &["apply", "-e", "dev", "--plan", file.to_str().unwrap()],
        Some(dir.path()),
    );
    assert_eq!(apply.status.code(), Some(1));
    assert!(
        text(&apply.stderr).contains("no AWS credentials found"),
        "{}",
        text(&apply.stderr)
    );
    let wrong = deploy(
        &["apply", "-e", "prod", "--plan", file.to_str().unwrap()],
        Some(dir.path()),
    );
    assert!(
        text(&wrong.stderr).contains("is a plan for `dev`, not `prod`"),
        "{}",
        text(&wrong.stderr)
    );
}

#[test]
fn a_plan_with_no_state_still_checks_the_credentials_first() {
    // Nothing recorded, so nothing to refresh: the plan would be all creates, but
    // it could never be applied, and it must not look as if it could.
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = deploy(&["plan", "-e", "dev"], Some(dir.path()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no AWS credentials found"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Offline on request.
    let offline = deploy(&["plan", "-e", "dev", "--no-refresh"], Some(dir.path()));
    assert_eq!(offline.status.code(), Some(0), "{}", text(&offline.stderr));
    assert!(!text(&offline.stdout).contains("in account"));
}

#[test]
fn missing_or_unknown_environment_gets_a_plain_message() {
    let out = deploy(&["plan"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no environment given"));
    let out = deploy(&["validate", "-e", "dve"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("did you mean `dev`?"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_held_lock_is_reported_and_unlock_breaks_it() {
    let dir = tempfile::tempdir().unwrap();
    let backend = deploy::state::Backend::local(dir.path());
    std::mem::forget(backend.lock("dev", "apply").unwrap());
    let out = deploy(&["plan", "-e", "dev", "--no-refresh"], Some(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("environment `dev` is locked by")
            && stderr.contains("deploy unlock -e dev"),
        "{stderr}"
    );
    let status = deploy(&["status", "-e", "dev"], Some(dir.path()));
    assert!(text(&status.stdout).contains("Locked by"));
    let unlock = deploy(&["unlock", "-e", "dev"], Some(dir.path()));
    assert!(text(&unlock.stdout).contains("Released the lock"));
    assert_eq!(
        deploy(&["plan", "-e", "dev", "--no-refresh"], Some(dir.path()))
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn status_and_output_read_the_recorded_state() {
    let dir = tempfile::tempdir().unwrap();
    crate::lifecycle::apply_dev_into(dir.path());
    let status = deploy(&["status", "-e", "dev", "--json"], Some(dir.path()));
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["resources"], 28);
    assert_eq!(v["by_kind"]["lambda_function"], 2);
    let url = deploy(
        &["output", "-e", "dev", "api.rest_api.invoke_url"],
        Some(dir.path()),
    );
    assert_eq!(url.status.code(), Some(0), "{}", text(&url.stderr));
    assert!(text(&url.stdout).starts_with("https://"));
    let typo = deploy(
        &["output", "-e", "dev", "api.rest_api.invoke_ur"],
        Some(dir.path()),
    );
    assert!(text(&typo.stderr).contains("did you mean `api.rest_api.invoke_url`?"));
    // With state recorded, a refreshing plan needs AWS and says plainly, fast, that
    // there are no credentials.
    let started = std::time::Instant::now();
    let plan = deploy(&["plan", "-e", "dev"], Some(dir.path()));
    assert_eq!(plan.status.code(), Some(1));
    assert!(
        text(&plan.stderr).contains("no AWS credentials found"),
        "{}",
        text(&plan.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Without refresh, the recorded state matches the spec.
    let plan = deploy(
        &["plan", "-e", "dev", "--no-refresh", "--detailed-exitcode"],
        Some(dir.path()),
    );
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}

#[test]
fn credentials_but_nothing_answering_gets_its_own_plain_message() {
    let dir = tempfile::tempdir().unwrap();
    crate::lifecycle::apply_dev_into(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .current_dir(repo())
        .args(["plan", "-e", "dev"])
        .env("NO_COLOR", "1")
        .env("DEPLOY_NO_BUILD", "1")
        .env("DEPLOY_STATE_DIR", dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach AWS at http://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn the_editor_schema_accepts_every_shipped_file_and_keeps_whole_specs_whole() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("templates/spec.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("environments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(repo().join("templates/environments/ephemeral.yaml"));
    for file in files {
        let doc = deploy::spec::yaml::file_value(&file).unwrap_or_else(|d| panic!("{d}"));
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
    // A file that extends nothing must still say everything.
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.yaml");
    std::fs::write(
        &whole,
        "project: trivia\nenvironment: dev\nregion: us-east-1\nfunctions:\n  api: { bin: trivia-api }\n",
    )
    .unwrap();
    let doc = deploy::spec::yaml::file_value(&whole).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"crate\" is a required property")),
        "{errors:?}"
    );
    // An extending file is still checked for shapes and unknown keys.
    let partial = dir.path().join("partial.yaml");
    std::fs::write(
        &partial,
        "extends: base.yaml\nenvironment: dev\nfunctions:\n  api: { memory_mb: lots }\n",
    )
    .unwrap();
    let doc = deploy::spec::yaml::file_value(&partial).unwrap();
    assert!(!validator.is_valid(&doc));
}

#[test]
fn schema_matches_the_committed_copy_the_editors_use() {
    let out = deploy(&["schema"], None);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("templates/spec.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        printed, committed,
        "run `deploy schema > templates/spec.schema.json`"
    );
    for env in ["base", "dev", "staging", "prod"] {
        let body =
            std::fs::read_to_string(repo().join(format!("environments/{env}.yaml"))).unwrap();
        assert!(
            body.starts_with("# yaml-language-server: $schema=../templates/spec.schema.json"),
            "{env}.yaml lacks the modeline"
        );
    }
}

#[test]
fn the_ephemeral_template_is_yaml_editors_can_check() {
    // Editors read it through its modeline before `deploy env create` renders it.
    let body =
        std::fs::read_to_string(repo().join("templates/environments/ephemeral.yaml")).unwrap();
    assert!(body.starts_with("# yaml-language-server: $schema=../spec.schema.json"));
    if let Err(e) = marked_yaml::parse_yaml(0, &body) {
        panic!("templates/environments/ephemeral.yaml is not valid YAML: {e}");
    }
}

#[test]
fn usage_errors_exit_1_so_detailed_exitcode_2_always_means_changes() {
    let out = deploy(
        &["plan", "-e", "dev", "--detailed-exitcode", "--no-such-flag"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--no-such-flag"));
    assert_eq!(deploy(&["--help"], None).status.code(), Some(0));
}

#[test]
fn completions_are_generated() {
    let out = deploy(&["completions", "bash"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("deploy"));
}

#[test]
fn cost_json_lists_each_billable_resource_with_its_basis() {
    let out = deploy(&["cost", "-e", "dev", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["environment"], "dev");
    let item = |addr: &str| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["address"] == addr)
            .cloned()
            .unwrap_or_else(|| panic!("no {addr}"))
    };
    assert_eq!(item("network.nat.a")["monthly_usd"]["low"], 32.85);
    assert_eq!(item("network.eip.a")["monthly_usd"]["low"], 3.65);
    assert_eq!(item("valkey.cache")["monthly_usd"]["low"], 6.13);
    assert_eq!(item("valkey.cache")["monthly_usd"]["high"], 61.32);
    assert!(item("network.nat.a")["basis"]
        .as_str()
        .unwrap()
        .contains("730 h × $0.045/h"));
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "vpc" && i["kind"] != "iam_role"),
        "free kinds are not listed"
    );
    let sum: f64 = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["monthly_usd"]["low"].as_f64().unwrap())
        .sum();
    assert!((v["monthly_usd"]["low"].as_f64().unwrap() - sum).abs() < 0.011);
    assert_eq!(v["assumptions"]["requests_per_day"], 10000.0);
}

#[test]
fn cost_flags_override_the_assumptions() {
    let base = deploy(&["cost", "-e", "dev", "--json"], None);
    let busy = deploy(
        &[
            "cost",
            "-e",
            "dev",
            "--json",
            "--requests-per-day",
            "1000000",
            "--nat-gb-per-month",
            "100",
        ],
        None,
    );
    let high = |o: &Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["monthly_usd"]["high"]
            .as_f64()
            .unwrap()
    };
    assert!(
        high(&busy) > high(&base) + 100.0,
        "{} vs {}",
        high(&busy),
        high(&base)
    );
    let bad = deploy(&["cost", "-e", "dev", "--requests-per-day", "-5"], None);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn cost_warns_about_a_nat_per_az_outside_production() {
    let out = deploy(&["cost", "-e", "tests/specs/cost/dev-per-az.yaml"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("runs 2 NAT gateways")
            && stdout.contains("`nat: single` would save about $36.50"),
        "{stdout}"
    );
    assert!(stdout.contains("billed even when idle"), "{stdout}");
    // Production is expected to use a NAT gateway per AZ and the largest limits.
    let prod = deploy(&["cost", "-e", "prod"], None);
    assert!(
        !text(&prod.stdout).contains("Worth a look"),
        "{}",
        text(&prod.stdout)
    );
}

#[test]
fn every_environment_prices_and_plans_end_with_the_estimate() {
    for (env, high) in [
        ("dev", "$99.30"),
        ("staging", "$160.62"),
        ("prod", "$381.31"),
    ] {
        let out = deploy(&["cost", "-e", env], None);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("at the assumed load"), "{env}");
        let plan = deploy(&["plan", "-e", env, "--no-refresh"], None);
        let stdout = text(&plan.stdout);
        assert!(
            stdout.contains(&format!("Monthly estimate: $0.00 → {high} (+{high})")),
            "{env}: {stdout}"
        );
        let json = deploy(&["plan", "-e", env, "--no-refresh", "--json"], None);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(
            format!("${:.2}", v["cost"]["after"]["high"].as_f64().unwrap()),
            high
        );
        assert_eq!(v["cost"]["before"]["high"], 0.0);
    }
}

#[test]
fn state_surgery_renames_and_forgets_without_touching_aws_and_keeps_backups() {
    let dir = tempfile::tempdir().unwrap();
    crate::lifecycle::apply_dev_into(dir.path());
    let list = deploy(&["state", "list", "-e", "dev"], Some(dir.path()));
    let listed = text(&list.stdout);
    assert_eq!(listed.lines().count(), 28, "{listed}");
    assert!(listed
        .lines()
        .any(|l| l.starts_with("function.api ") && l.contains("lambda_function")));

    let mv = deploy(
        &["state", "mv", "-e", "dev", "function.api", "function.web"],
        Some(dir.path()),
    );
    assert_eq!(mv.status.code(), Some(0), "{}", text(&mv.stderr));
    let moved = text(&mv.stdout);
    assert!(
        moved.contains("Moved to function.web.") && moved.contains("Moved to function.web.logs."),
        "{moved}"
    );
    // The spec still says function.api: the plan would now make it and delete the moved one.
    let plan = deploy(
        &["plan", "-e", "dev", "--no-refresh", "--detailed-exitcode"],
        Some(dir.path()),
    );
    assert_eq!(plan.status.code(), Some(2));
    // Moved back, nothing is left to do.
    deploy(
        &["state", "mv", "-e", "dev", "function.web", "function.api"],
        Some(dir.path()),
    );
    let settled = deploy(
        &["plan", "-e", "dev", "--no-refresh", "--detailed-exitcode"],
        Some(dir.path()),
    );
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));

    let show = deploy(
        &["state", "show", "-e", "dev", "function.api", "--json"],
        Some(dir.path()),
    );
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["kind"], "lambda_function");
    let typo = deploy(
        &["state", "show", "-e", "dev", "function.apy"],
        Some(dir.path()),
    );
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stderr).contains("did you mean `function.api`?"));

    let rm = deploy(
        &["state", "rm", "-e", "dev", "schedule.preload-questions"],
        Some(dir.path()),
    );
    assert!(
        text(&rm.stdout).contains("Forgot schedule.preload-questions (it still exists in AWS).")
    );
    let plan = deploy(&["plan", "-e", "dev", "--no-refresh"], Some(dir.path()));
    assert!(
        text(&plan.stdout).contains("+ schedule.preload-questions"),
        "{}",
        text(&plan.stdout)
    );
    // Every surgery kept the state as it was.
    assert_eq!(
        std::fs::read_dir(dir.path().join("backups"))
            .unwrap()
            .count(),
        3
    );
}

/// A spec that does not load still says where its state is when its `state:` section
/// can be read; when not even that can, the command says so instead of looking in the
/// state directory (which would show an S3 environment as never applied, or unlocked).
#[test]
fn a_broken_spec_still_names_its_state_or_says_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("broken.yaml");
    std::fs::write(
        &invalid,
        format!(
            "extends: {}\nenvironment: broken\nstate:\n  s3:\n    bucket: acme-state\n    prefix: trivia\nnot_a_key: 1\n",
            repo().join("environments/dev.yaml").display()
        ),
    )
    .unwrap();
    let unreadable = dir.path().join("unreadable.yaml");
    std::fs::write(&unreadable, "environment: unreadable\nstate: [s3\n").unwrap();
    let status = |spec: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy"));
        cmd.args(["status", "-e"])
            .arg(spec)
            .env("NO_COLOR", "1")
            .env("DEPLOY_STATE_DIR", dir.path().join("state"))
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("DEPLOY_STATE_URL")
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    };
    let (_, said) = status(&invalid);
    assert!(said.contains("s3://acme-state/trivia"), "{said}");
    assert!(
        !said.contains(&dir.path().join("state").display().to_string()),
        "{said}"
    );
    let (code, said) = status(&unreadable);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("cannot tell where the state of `unreadable` is")
            && said.contains("--state-url"),
        "{said}"
    );
}
