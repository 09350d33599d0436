//! Pull-request previews: idempotent environment creation and lifetime extension,
//! annotations for spec problems, and the workflow templates' own `run:` steps executed
//! against the emulator with S3 state.

use std::path::{Path, PathBuf};

use crate::ephemeral::Project;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `deploy` in a project of its own (base.yaml and the ephemeral template), without a
/// cloud: what these commands do needs none.
trait Offline {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output;
    fn ok(&self, args: &[&str]) -> String;
    fn expiry(&self, name: &str) -> String;
}

impl Offline for Project {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy"));
        cmd.current_dir(self.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env("DEPLOY_NO_BUILD", "1")
            .env("DEPLOY_STATE_DIR", self.path().join("state"))
            .env_remove("DEPLOY_ENV")
            .env_remove("DEPLOY_STATE_URL")
            .env_remove("GITHUB_ACTIONS")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "deploy {args:?}\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn expiry(&self, name: &str) -> String {
        let spec =
            std::fs::read_to_string(self.path().join(format!("environments/{name}.yaml"))).unwrap();
        spec.lines()
            .find_map(|l| l.trim().strip_prefix("expires_at: "))
            .unwrap()
            .trim_matches('"')
            .to_string()
    }
}

#[test]
fn env_create_if_missing_creates_keeps_or_extends_and_never_shortens() {
    let p = Project::new();
    let made = p.ok(&["env", "create", "pr-7", "--if-missing", "--ttl", "2h"]);
    assert!(made.contains("Created environments/pr-7.yaml"), "{made}");
    let first = p.expiry("pr-7");

    // Again, as every push runs it: nothing changes.
    let kept = p.ok(&["env", "create", "pr-7", "--if-missing"]);
    assert!(
        kept.contains("exists") && kept.contains("nothing to do"),
        "{kept}"
    );
    assert_eq!(p.expiry("pr-7"), first);

    // A longer lifetime moves the expiry; the file still validates.
    let extended = p.ok(&["env", "create", "pr-7", "--if-missing", "--ttl", "72h"]);
    assert!(
        extended.contains(&format!("extended its expiry from {first} to ")),
        "{extended}"
    );
    let later = p.expiry("pr-7");
    assert!(later > first, "{later} after {first}");
    p.ok(&["validate", "-e", "pr-7"]);

    // A shorter one never shortens it.
    let shorter = p.ok(&["env", "create", "pr-7", "--if-missing", "--ttl", "1h"]);
    assert!(shorter.contains("nothing to do"), "{shorter}");
    assert_eq!(p.expiry("pr-7"), later);

    // Without --if-missing an existing environment is still refused, and a standard
    // environment is never taken for a preview.
    let again = p.run(&["env", "create", "pr-7"], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));
    let standard = p.run(
        &["env", "create", "base", "--if-missing", "--ttl", "2h"],
        &[],
    );
    assert_eq!(standard.status.code(), Some(1));
    assert!(
        text(&standard.stderr).contains("not ephemeral"),
        "{}",
        text(&standard.stderr)
    );
}

/// (line, col) of each `FILE:LINE:COL: error:` line.
fn positions(diagnostics: &str, file: &str) -> Vec<(usize, usize)> {
    diagnostics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{file}:"))?;
            let mut parts = rest.splitn(3, ':');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

/// (line, col) of each `::error file=FILE,line=…,col=…::` annotation.
fn annotated(stdout: &str, file: &str) -> Vec<(usize, usize)> {
    stdout
        .lines()
        .filter_map(|l| {
            let props = l
                .strip_prefix(&format!("::error file={file},"))?
                .split("::")
                .next()?;
            let get = |k: &str| {
                props
                    .split(',')
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse().ok())
            };
            Some((get("line")?, get("col")?))
        })
        .collect()
}

#[test]
fn spec_problems_become_annotations_at_the_lines_the_diagnostics_name() {
    let p = Project::new();
    p.ok(&["env", "create", "pr-7", "--ttl", "2h"]);
    let file = p.path().join("environments/pr-7.yaml");
    let spec = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        spec.replace("  nat: single", "  nat: sometimes")
            .replace("max_storage_gb: 1", "max_storage_gb: 0"),
    )
    .unwrap();

    let out = p.run(&["validate", "-e", "pr-7", "--format", "github"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let want = positions(&stderr, "environments/pr-7.yaml");
    assert_eq!(want.len(), 2, "{stderr}");
    assert_eq!(
        annotated(&stdout, "environments/pr-7.yaml"),
        want,
        "{stdout}"
    );
    assert!(
        stdout.lines().all(|l| l.starts_with("::error ")),
        "only annotations on stdout: {stdout}"
    );

    // Inside a GitHub Actions job, a plan that cannot load its spec says so the same
    // way; other failures become one annotation for the run.
    let actions = [("GITHUB_ACTIONS", "true")];
    let plan = p.run(&["plan", "-e", "pr-7", "--no-refresh"], &actions);
    assert_eq!(plan.status.code(), Some(1));
    assert_eq!(
        annotated(&text(&plan.stdout), "environments/pr-7.yaml"),
        want
    );
    let missing = p.run(&["plan", "-e", "pr-8", "--no-refresh"], &actions);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stdout).starts_with("::error title=deploy plan::"),
        "{}",
        text(&missing.stdout)
    );
}

/// Masks what differs between runs: times, AWS-assigned ids, ports, latencies.
fn redact(body: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
        (
            r"\b(vpc|subnet|sg|sgr|rtb|igw|nat|eipalloc|eni)-[0-9a-f]{8,17}\b",
            "[$1-id]",
        ),
        (r"us-east-1_[0-9A-Za-z]+", "[user-pool-id]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\b\d+(\.\d+)? ms\b", "[n] ms"),
        (r"/restapis/[0-9a-z]+/", "/restapis/[api-id]/"),
        // The smoke round's temporary player and its luck.
        (r"deploy-smoke-[0-9a-f]+@", "deploy-smoke-[id]@"),
        (
            r"[a-z-]+: answered \d+ \((correct|wrong)\), finished with score \d+",
            "[category]: answered [n], finished with score [n]",
        ),
        (r"\d+ game keys removed", "[n] game keys removed"),
        (r"ranked \d+ this week", "ranked [n] this week"),
    ];
    let mut out = body.to_string();
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// A checkout of the project as the workflow's runner sees it: fresh for every event
/// (environments/pr-N.yaml is not committed), inside the repository so that the
/// functions build from its cargo workspace.
fn checkout(work: &Path, edit: impl Fn(String) -> String) {
    let _ = std::fs::remove_dir_all(work);
    for (from, transform) in [
        ("environments/base.yaml", true),
        ("templates/environments/ephemeral.yaml", false),
    ] {
        let to = work.join(from);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(repo().join(from)).unwrap();
        if transform {
            text = edit(text);
        } else {
            // The emulator has no internet: the bundled question bank, as `local` uses.
            text.push_str("\nfunctions:\n  api:\n    env:\n      QUESTION_SOURCE_URL: none\n  preloader:\n    env:\n      QUESTION_SOURCE_URL: none\n");
        }
        std::fs::write(to, text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_workflow_opens_updates_and_closes_a_preview_with_its_own_run_steps() {
    use crate::aws::{leftovers, ok, Emulator};
    let Ok(python) = std::env::var("EMULATOR_PYTHON") else {
        panic!("EMULATOR_PYTHON is not set: run tests/run, or eval \"$(bash tests/tools/install)\" first");
    };
    let em = Emulator::start(&[]);
    let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_deploy"));
    bootstrap.args(["backend", "bootstrap", "--bucket", "team-state"]);
    em.aim(&mut bootstrap);
    ok(&bootstrap.output().unwrap());

    let scratch = repo().join(".deploy/tests");
    std::fs::create_dir_all(&scratch).unwrap();
    let root = tempfile::Builder::new()
        .prefix("preview-")
        .tempdir_in(&scratch)
        .unwrap();
    let work = root.path().join("checkout");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_deploy"), bin.join("deploy")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let context = serde_json::json!({
        "vars": {
            "DEPLOY_STATE_URL": "s3://team-state/previews",
            "AWS_REGION": "us-east-1",
            "DEPLOY_ROLE_ARN": "arn:aws:iam::123456789012:role/deploy-previews"
        }
    });
    let context_file = root.path().join("context.json");
    std::fs::write(&context_file, context.to_string()).unwrap();

    // The pull request's second push changes a spec value (the API's memory).
    let events = [
        ("opened", "memory_mb: 512"),
        ("synchronize", "memory_mb: 1024"),
        ("closed", "memory_mb: 1024"),
    ];
    for (action, memory) in events {
        checkout(&work, |base| base.replacen("memory_mb: 512", memory, 1));
        let event = serde_json::json!({
            "action": action,
            "number": 7,
            "pull_request": {
                "number": 7,
                "head": {"sha": "a".repeat(40), "ref": "feature", "repo": {"full_name": "acme/trivia"}},
                "base": {"ref": "main", "repo": {"full_name": "acme/trivia"}}
            },
            "repository": {"full_name": "acme/trivia"}
        });
        let event_file = root.path().join("event.json");
        std::fs::write(&event_file, event.to_string()).unwrap();
        // The steps, read from the workflow file itself.
        let listed = Command::new(&python)
            .arg(repo().join("tests/tools/workflow_steps.py"))
            .arg(repo().join("templates/ci/github/preview.yml"))
            .arg(&event_file)
            .arg(&context_file)
            .output()
            .unwrap();
        assert!(listed.status.success(), "{}", text(&listed.stderr));
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let steps = listed["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s["run"].as_str().unwrap().contains("deploy ")),
            "{action}: {listed}"
        );
        for step in steps {
            let name = step["name"].as_str().unwrap_or_default();
            let run = step["run"].as_str().unwrap();
            if run.contains("cargo build") {
                panic!(
                    "{action}: `{name}` would build deploy: the binary cache step must have hit"
                );
            }
            let script = root.path().join("step.sh");
            std::fs::write(&script, run).unwrap();
            let outputs = root.path().join("output");
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script)
                .current_dir(&work)
                .env("PATH", &path)
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_WORKSPACE", &work)
                .env("GITHUB_OUTPUT", &outputs)
                .env("GITHUB_STEP_SUMMARY", root.path().join("summary.md"))
                .env("GITHUB_PATH", root.path().join("path"))
                .env("GITHUB_EVENT_PATH", &event_file)
                .env("RUNNER_TEMP", root.path());
            em.aim(&mut cmd);
            // Built and smoke-checked for real, as on a runner.
            cmd.env_remove("DEPLOY_NO_BUILD")
                .env_remove("DEPLOY_NO_SMOKE");
            for (k, v) in step["env"].as_object().unwrap() {
                cmd.env(k, v.as_str().unwrap_or_default());
            }
            let out = cmd.output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{action}: step `{name}` failed\nstdout:\n{}\nstderr:\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        for body in ["plan.md", "preview.md"] {
            let file = work.join(body);
            if file.exists() {
                insta::assert_snapshot!(
                    format!("preview_{action}_{}", body.trim_end_matches(".md")),
                    redact(&std::fs::read_to_string(file).unwrap())
                );
            }
        }
    }
    assert_eq!(leftovers(&em, "pr-7").await, Vec::<String>::new());
}
