//! Pull-request previews: idempotent environment creation and lifetime extension,
//! annotations for spec problems, and the workflow templates' own `run:` steps executed
//! against the emulator with S3 state.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A project of its own: `environments/base.yaml` and the ephemeral template.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (from, to) in [
            ("environments/base.yaml", "environments/base.yaml"),
            (
                "templates/environments/ephemeral.yaml",
                "templates/environments/ephemeral.yaml",
            ),
        ] {
            let to = dir.path().join(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo().join(from), to).unwrap();
        }
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

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
