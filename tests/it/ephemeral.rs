//! Ephemeral environments against the emulator in hostile mode (throttling, 5xx,
//! eventual consistency, lingering ENIs): created from the template, applied, and torn
//! down without leaking, also when destroy is killed halfway, when the state file is
//! lost, and when something was added out of band; `deploy gc` removes exactly the
//! expired ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::aws::{leftovers, Emulator};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A project directory of its own: `environments/base.yaml` and the ephemeral
/// template, with state beside them.
pub(crate) struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("environments")).unwrap();
        std::fs::create_dir_all(dir.path().join("templates/environments")).unwrap();
        std::fs::copy(
            repo().join("environments/base.yaml"),
            dir.path().join("environments/base.yaml"),
        )
        .unwrap();
        std::fs::copy(
            repo().join("templates/environments/ephemeral.yaml"),
            dir.path().join("templates/environments/ephemeral.yaml"),
        )
        .unwrap();
        Project { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, em: &Emulator, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy"));
        cmd.current_dir(self.path())
            .args(args)
            .env("DEPLOY_STATE_DIR", self.path().join("state"));
        em.aim(&mut cmd);
        cmd
    }

    fn run(&self, em: &Emulator, args: &[&str]) -> Output {
        self.command(em, args).output().unwrap()
    }

    fn ok(&self, em: &Emulator, args: &[&str]) -> String {
        let out = self.run(em, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "deploy {args:?}\nstdout:\n{}\nstderr:\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_state_and_an_out_of_band_group_are_swept_in_hostile_mode() {
    let em = Emulator::start(&["--hostile"]);
    let p = Project::new();
    p.ok(&em, &["env", "create", "pr-1", "--ttl", "2h"]);
    let spec = std::fs::read_to_string(p.path().join("environments/pr-1.yaml")).unwrap();
    assert!(spec.contains("environment: \"pr-1\"") && spec.contains("expires_at:"));
    p.ok(&em, &["apply", "-e", "pr-1", "--yes"]);

    // Every resource carries the ephemeral marker and its expiry.
    let cfg = em.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let vpc = vpcs
        .vpcs()
        .iter()
        .find(|v| {
            v.tags()
                .iter()
                .any(|t| t.key() == Some("deploy:environment") && t.value() == Some("pr-1"))
        })
        .unwrap();
    let keys: Vec<&str> = vpc.tags().iter().filter_map(|t| t.key()).collect();
    assert!(keys.contains(&"deploy:ephemeral") && keys.contains(&"deploy:expires-at"));

    // Out of band: a security group with the environment's tags.
    let tags: Vec<aws_sdk_ec2::types::Tag> = vpc
        .tags()
        .iter()
        .filter(|t| t.key() != Some("deploy:address") && t.key() != Some("Name"))
        .cloned()
        .collect();
    let made = ec2
        .create_security_group()
        .group_name("pr-1-extra")
        .description("added by hand")
        .vpc_id(vpc.vpc_id().unwrap())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await;
    // Hostile mode may lose the answer after making the group; the SDK's retry then
    // finds it made.
    if let Err(e) = made {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        assert_eq!(e.code(), Some("InvalidGroup.Duplicate"), "{e:?}");
    }

    // The state is lost.
    std::fs::remove_dir_all(p.path().join("state")).unwrap();
    let log = p.ok(&em, &["destroy", "-e", "pr-1", "--sweep", "--yes"]);
    assert!(
        log.contains("swept."),
        "the extra group is named as found: {log}"
    );
    assert_eq!(leftovers(&em, "pr-1").await, Vec::<String>::new(), "{log}");
}

/// Two environments of one project in one account: the second's first plan (no state,
/// so it looks for what is tagged with it) finds nothing of the first's, NAT gateway
/// included (a tag filter the emulator once ignored made it adopt, then replace, the
/// other environment's NAT gateway).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_environment_adopts_nothing_of_its_neighbour() {
    let em = Emulator::start(&[]);
    let p = Project::new();
    p.ok(&em, &["env", "create", "pr-5"]);
    p.ok(&em, &["env", "create", "pr-6"]);
    p.ok(&em, &["apply", "-e", "pr-5", "--yes"]);
    let out = p.run(&em, &["plan", "-e", "pr-6", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("has no state, but"),
        "{}",
        text(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert!(!actions.is_empty());
    assert!(
        actions.iter().all(|a| *a == "create"),
        "only creates: {actions:?}"
    );
    p.ok(&em, &["destroy", "-e", "pr-5", "--yes"]);
}

/// Two projects' previews of the same pull-request number in one account: a sweep of
/// one (its state lost) takes only its own project's resources, and without a spec to
/// name the project it refuses rather than take both.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_takes_only_its_own_projects_environment() {
    let em = Emulator::start(&[]);
    let (trivia, quiz) = (Project::new(), Project::new());
    let base = quiz.path().join("environments/base.yaml");
    let text_of = std::fs::read_to_string(&base).unwrap();
    assert!(text_of.contains("project: trivia"));
    std::fs::write(
        &base,
        text_of.replacen("project: trivia", "project: quiz", 1),
    )
    .unwrap();
    // Its own parameter path, as its own template would have.
    let template = quiz.path().join("templates/environments/ephemeral.yaml");
    let text_of = std::fs::read_to_string(&template).unwrap();
    assert!(text_of.contains("/trivia-{{name}}/"));
    std::fs::write(
        &template,
        text_of.replace("/trivia-{{name}}/", "/quiz-{{name}}/"),
    )
    .unwrap();
    for p in [&trivia, &quiz] {
        p.ok(&em, &["env", "create", "pr-8"]);
        p.ok(&em, &["apply", "-e", "pr-8", "--yes", "--no-smoke"]);
    }
    let mut before = leftovers(&em, "pr-8").await;
    before.sort();

    // By name alone (no spec names the project), the environment is two projects'.
    let spec = trivia.path().join("environments/pr-8.yaml");
    let kept = trivia.path().join("pr-8.yaml.kept");
    std::fs::rename(&spec, &kept).unwrap();
    let refused = trivia.run(&em, &["destroy", "-e", "pr-8", "--sweep", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("resources of 2 projects carry deploy:environment=pr-8"),
        "{}",
        text(&refused.stderr)
    );
    let mut now = leftovers(&em, "pr-8").await;
    now.sort();
    assert_eq!(now, before, "nothing was deleted");

    // With its spec, trivia's state lost, the sweep takes trivia's pr-8 only.
    std::fs::rename(&kept, &spec).unwrap();
    std::fs::remove_dir_all(trivia.path().join("state")).unwrap();
    trivia.ok(&em, &["destroy", "-e", "pr-8", "--sweep", "--yes"]);
    let left = leftovers(&em, "pr-8").await;
    assert!(!left.is_empty() && left.len() < before.len(), "{left:?}");
    let plan = quiz.run(&em, &["plan", "-e", "pr-8", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    quiz.ok(&em, &["destroy", "-e", "pr-8", "--yes"]);
    assert_eq!(leftovers(&em, "pr-8").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroy_killed_halfway_resumes_to_nothing_in_hostile_mode() {
    let em = Emulator::start(&["--hostile"]);
    let p = Project::new();
    p.ok(&em, &["env", "create", "pr-2"]);
    p.ok(&em, &["apply", "-e", "pr-2", "--yes"]);
    let mut child = p
        .command(&em, &["destroy", "-e", "pr-2", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = child.kill(); // SIGKILL: no cleanup runs
    let _ = child.wait();
    p.ok(&em, &["unlock", "-e", "pr-2"]);
    // No data-loss flag: the environment is ephemeral.
    let log = p.ok(&em, &["destroy", "-e", "pr-2", "--yes"]);
    assert!(log.contains("needs no --allow-data-loss"), "{log}");
    assert_eq!(leftovers(&em, "pr-2").await, Vec::<String>::new(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ephemeral_environments_final_snapshots_go_with_it() {
    let em = Emulator::start(&[]);
    let p = Project::new();
    p.ok(&em, &["env", "create", "pr-9"]);
    let file = p.path().join("environments/pr-9.yaml");
    let spec = std::fs::read_to_string(&file).unwrap();
    assert!(spec.contains("snapshot_retention_days: 0"));
    std::fs::write(
        &file,
        spec.replace("snapshot_retention_days: 0", "snapshot_retention_days: 1"),
    )
    .unwrap();
    p.ok(&em, &["apply", "-e", "pr-9", "--yes", "--no-smoke"]);
    let log = p.ok(&em, &["destroy", "-e", "pr-9", "--yes"]);
    assert!(
        log.contains("deleted the final cache snapshot trivia-pr-9-cache-final-"),
        "{log}"
    );
    let left = aws_sdk_elasticache::Client::new(&em.sdk().await)
        .describe_serverless_cache_snapshots()
        .serverless_cache_name("trivia-pr-9-cache")
        .send()
        .await
        .unwrap();
    let live: Vec<_> = left
        .serverless_cache_snapshots()
        .iter()
        .filter(|s| s.status() != Some("deleting"))
        .collect();
    assert!(live.is_empty(), "{live:?}");
    assert_eq!(leftovers(&em, "pr-9").await, Vec::<String>::new(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_destroys_exactly_the_expired_environment_and_sweep_guards_others() {
    let em = Emulator::start(&["--hostile"]);
    let p = Project::new();
    // A small stack keeps three applies quick; the ephemeral tags are what matter.
    let small = |name: &str, ephemeral: Option<&str>| {
        let mut spec = format!(
            "project: trivia\nenvironment: {name}\nregion: us-east-1\nnetwork:\n  vpc_cidr: 10.9.0.0/16\n  private_subnets:\n    a: 10.9.1.0/24\n  nat: none\nsecurity_groups:\n  app:\n    description: app\n"
        );
        if let Some(expires) = ephemeral {
            spec.push_str(&format!("ephemeral:\n  expires_at: \"{expires}\"\n"));
        }
        std::fs::write(p.path().join(format!("environments/{name}.yaml")), spec).unwrap();
    };
    small("pr-old", Some("2020-01-01T00:00:00Z"));
    small("pr-new", Some("2099-01-01T00:00:00Z"));
    small("keep", None);
    for env in ["pr-old", "pr-new", "keep"] {
        p.ok(&em, &["apply", "-e", env, "--yes"]);
    }
    let out = p.run(&em, &["env", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(String, String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["environment"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
                r["expired"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("pr-old".into(), "ephemeral".into(), true)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("pr-new".into(), "ephemeral".into(), false)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("keep".into(), "standard".into(), false)),
        "{kinds:?}"
    );

    // A sweep refuses an environment that is not ephemeral, and changes nothing.
    let out = p.run(&em, &["destroy", "-e", "keep", "--sweep", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not tagged deploy:ephemeral"),
        "{}",
        text(&out.stderr)
    );
    assert!(!leftovers(&em, "keep").await.is_empty());

    let dry = p.ok(&em, &["gc", "--dry-run"]);
    assert!(dry.contains("would destroy pr-old"), "{dry}");
    assert!(dry.contains("keep     pr-new"), "{dry}");
    assert!(
        !dry.contains("keep     keep") && !dry.contains(" keep:"),
        "non-ephemeral is invisible to gc: {dry}"
    );
    assert!(
        !leftovers(&em, "pr-old").await.is_empty(),
        "dry run deleted something"
    );

    // gc works from tags: even with the spec files gone.
    std::fs::remove_file(p.path().join("environments/pr-old.yaml")).unwrap();
    let log = p.ok(&em, &["gc"]);
    assert!(log.contains("destroyed pr-old"), "{log}");
    assert_eq!(
        leftovers(&em, "pr-old").await,
        Vec::<String>::new(),
        "{log}"
    );
    assert!(!leftovers(&em, "pr-new").await.is_empty(), "{log}");
    assert!(!leftovers(&em, "keep").await.is_empty(), "{log}");
}
