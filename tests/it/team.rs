//! Team state: state and locks in the emulator's S3 (conditional writes made atomic
//! and, in hostile mode, throttled, conflicted and with answers lost), through the
//! `deploy` binary as a team runs it; import and state surgery against what is
//! deployed.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use deploy::state::{Backend, LockInfo, S3Backend, S3Location, State, StateError};

use crate::aws::{assert_all_accounted_for, leftovers, ok, Emulator, Env};

const BUCKET: &str = "team-state";
const URL: &str = "s3://team-state/trivia";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn s3(em: &Emulator) -> aws_sdk_s3::Client {
    let cfg = em.sdk().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    )
}

/// `deploy backend bootstrap --bucket team-state`, as a user runs it once.
fn bootstrap(em: &Emulator) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"));
    cmd.args(["backend", "bootstrap", "--bucket", BUCKET]);
    em.aim(&mut cmd);
    cmd.output().unwrap()
}

/// A backend on the emulator's bucket, as the binary makes one.
async fn backend(em: &Emulator, prefix: &str) -> Backend {
    let location = S3Location::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap();
    Backend::new(Arc::new(
        S3Backend::from_client(location, s3(em).await).unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_bootstrap_makes_a_versioned_private_encrypted_tls_only_bucket_and_runs_again() {
    let em = Emulator::start(&[]);
    let first = text(&bootstrap(&em).stdout);
    assert!(first.contains("created the bucket `team-state`"), "{first}");
    let again = bootstrap(&em);
    let again = ok(&again);
    assert!(again.contains("exists and is yours"), "{again}");
    let c = s3(&em).await;
    let versioning = c
        .get_bucket_versioning()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let sse = c
        .get_bucket_encryption()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let rule = &sse.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let block = c
        .get_public_access_block()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let policy = c.get_bucket_policy().bucket(BUCKET).send().await.unwrap();
    assert!(policy.policy().unwrap().contains("aws:SecureTransport"));
    let lifecycle = c
        .get_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifecycle.rules()[0]
            .noncurrent_version_expiration()
            .unwrap()
            .noncurrent_days(),
        Some(90)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_full_cycle_with_s3_state_in_hostile_mode() {
    let em = Emulator::start(&["--hostile", "--seed", "5"]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    ok(&env.deploy(&em, &["apply", "--yes"]));
    assert!(
        !env.dir.path().join("state/local.json").exists(),
        "no local state"
    );
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert_all_accounted_for(&em, &env).await;
    let status: serde_json::Value =
        serde_json::from_str(&ok(&env.deploy(&em, &["status", "--json"]))).unwrap();
    assert_eq!(status["state_file"], "s3://team-state/trivia/local.json");
    assert!(status["lock"].is_null(), "released: {status}");
    let serial = status["serial"].as_u64().unwrap();
    // A versioned bucket keeps every write: the history lists them newest first.
    let history: serde_json::Value =
        serde_json::from_str(&ok(&env.deploy(&em, &["state", "history", "--json"]))).unwrap();
    let versions = history.as_array().unwrap();
    assert_eq!(versions.len() as u64, serial, "one version per write");
    assert_eq!(versions[0]["serial"].as_u64(), Some(serial));
    assert_eq!(versions[0]["latest"], true);
    ok(&env.deploy(&em, &["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
    let calls = em.calls();
    assert!(
        calls["calls"]["s3.PutObject"].as_u64().unwrap() > serial,
        "{calls}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_applies_started_together_one_runs_and_the_other_names_the_holder_or_waits_with_a_lock_timeout(
) {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    let spawn = || {
        env.command(&em, &["apply", "--yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let (a, b) = (spawn(), spawn());
    let waiter = |c: std::process::Child| {
        std::thread::spawn(move || {
            let out = c.wait_with_output().unwrap();
            (out, started.elapsed())
        })
    };
    let (a, b) = (waiter(a), waiter(b));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let (won, lost) = match (a.0.status.success(), b.0.status.success()) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        _ => panic!(
            "exactly one apply must run:\nA: {}\nB: {}",
            text(&a.0.stderr),
            text(&b.0.stderr)
        ),
    };
    let said = text(&lost.0.stderr);
    assert!(
        said.contains("environment `local` is locked by")
            && said.contains("(pid ")
            && said.contains("ago")
            && (said.contains("`plan`") || said.contains("`apply`")),
        "{said}"
    );
    assert!(
        lost.1 < won.1,
        "the refused run exits before the other finishes ({:?} vs {:?})",
        lost.1,
        won.1
    );
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert_all_accounted_for(&em, &env).await;

    // With --lock-timeout a run waits for the holder instead (Terraform's
    // -lock-timeout), saying so once, and goes on when it lets go.
    let other = backend(&em, "trivia").await;
    let held = other.lock("local", "apply").unwrap();
    let short = env.deploy(&em, &["plan", "--lock-timeout", "1s"]);
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short.stderr).contains("waiting up to 1s for the lock on `local`")
            && text(&short.stderr).contains("environment `local` is locked by"),
        "{}",
        text(&short.stderr)
    );
    let letting_go = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        drop(held);
    });
    let started = Instant::now();
    let waited = env.deploy(
        &em,
        &["plan", "--lock-timeout", "1m", "--detailed-exitcode"],
    );
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    assert!(
        text(&waited.stderr).contains("waiting up to 1m for the lock on `local`, held by"),
        "{}",
        text(&waited.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    letting_go.join().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_holder_is_taken_over_once_its_lease_expires_and_the_next_apply_converges() {
    let em = Emulator::start(&["--latency-ms", "20"]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    let c = s3(&em).await;
    let lock_key = "trivia/local.lock";
    let mut child = env
        .command(&em, &["apply", "--yes"])
        .env("DEPLOY_LOCK_LEASE", "6s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed in the middle of its apply: once its state has been written a few times.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let serial = match c
            .get_object()
            .bucket(BUCKET)
            .key("trivia/local.json")
            .send()
            .await
        {
            Ok(o) => {
                let body = o.body.collect().await.unwrap().to_vec();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap()["serial"]
                    .as_u64()
                    .unwrap()
            }
            Err(_) => 0,
        };
        if serial >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the apply never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs, the lock stays
    child.wait().unwrap();
    // Seen from another machine: its pid means nothing here, only the lease counts.
    // That machine's clock runs an hour behind: the expiry it wrote is long past, but
    // the lease is reckoned from S3's time of its last write.
    let lock = c
        .get_object()
        .bucket(BUCKET)
        .key(lock_key)
        .send()
        .await
        .expect("the killed run's lock is left behind");
    let mut info: LockInfo =
        serde_json::from_slice(&lock.body.collect().await.unwrap().to_vec()).unwrap();
    info.machine = "another-machine/boot/ns/ci-runner-7".into();
    info.expires_at = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(info.lease_secs, Some(6));
    c.put_object()
        .bucket(BUCKET)
        .key(lock_key)
        .body(serde_json::to_vec(&info).unwrap().into())
        .send()
        .await
        .unwrap();
    let written: SystemTime = c
        .head_object()
        .bucket(BUCKET)
        .key(lock_key)
        .send()
        .await
        .unwrap()
        .last_modified()
        .copied()
        .unwrap()
        .try_into()
        .unwrap();
    let refused = env.deploy(&em, &["apply", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = text(&refused.stderr);
    assert!(
        said.contains("is locked by") && said.contains(&format!("pid {}", info.pid)),
        "{said}"
    );
    // Whole seconds, plus the one the reckoning adds.
    let expiry = written + Duration::from_secs(6 + 1);
    if let Ok(wait) = expiry.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(300)).await;
    }
    let took = env.deploy(&em, &["apply", "--yes"]);
    let all = format!("{}{}", text(&took.stdout), text(&took.stderr));
    assert_eq!(took.status.code(), Some(0), "{all}");
    assert!(
        all.contains("took over the lock on `local`") && all.contains("its lease expired"),
        "{all}"
    );
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert_all_accounted_for(&em, &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_writer_is_refused_and_the_newer_state_is_untouched() {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let a = backend(&em, "trivia").await;
    let b = backend(&em, "trivia").await;
    let mut held_by_a = a.lock("dev", "apply").unwrap();
    let mut ours = State::new("trivia", "dev");
    assert!(a.read("dev").unwrap().is_none());
    a.write(&mut ours).unwrap();
    // A stalls; its lock is broken and B goes on, writing twice.
    b.unlock("dev").unwrap();
    let _held_by_b = b.lock("dev", "apply").unwrap();
    let mut theirs = b.read("dev").unwrap().unwrap();
    theirs.retained.push(deploy::state::Retained {
        kind: "cache_snapshot".into(),
        name: "b-was-here".into(),
        source: "trivia-dev-cache".into(),
        created_at: None,
    });
    b.write(&mut theirs).unwrap();
    b.write(&mut theirs).unwrap();
    // A's next write finds the state moved on and writes nothing.
    let refused = a.write(&mut ours).unwrap_err();
    match &refused {
        StateError::Stale {
            ours: 2, theirs: 3, ..
        } => {}
        other => panic!("{other}"),
    }
    assert!(refused.to_string().contains("nothing was overwritten"));
    assert_eq!(
        ours.serial, 1,
        "the refused write leaves the serial as it was"
    );
    assert_eq!(b.read("dev").unwrap().unwrap(), theirs);
    assert!(matches!(
        held_by_a.renew(),
        Err(StateError::LockLost { .. })
    ));

    // Two runs that each found no state: the second's history is not the first's.
    let c = backend(&em, "trivia").await;
    let d = backend(&em, "trivia").await;
    assert!(c.read("qa").unwrap().is_none() && d.read("qa").unwrap().is_none());
    c.write(&mut State::new("trivia", "qa")).unwrap();
    let other = d.write(&mut State::new("trivia", "qa")).unwrap_err();
    assert!(matches!(other, StateError::Lineage { .. }), "{other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_without_the_lock_reads_while_another_run_holds_it() {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    let other = backend(&em, "trivia").await;
    let _held = other.lock("local", "apply").unwrap();
    let locked = env.deploy(&em, &["plan"]);
    assert_eq!(locked.status.code(), Some(1));
    assert!(text(&locked.stderr).contains("is locked by"));
    let read_only = env.deploy(&em, &["plan", "--lock=false", "--detailed-exitcode"]);
    assert_eq!(
        read_only.status.code(),
        Some(2),
        "{}",
        text(&read_only.stderr)
    );
    assert!(text(&read_only.stdout).contains("+ network.vpc"));
    let saved = env.deploy(&em, &["plan", "--lock=false", "--out", "p.json"]);
    assert_eq!(
        saved.status.code(),
        Some(1),
        "a read-only plan cannot be saved"
    );
    // And it wrote nothing.
    assert!(other.read("local").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrating_to_s3_and_back_keeps_serial_and_lineage() {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let local = Env::new();
    ok(&local.deploy(&em, &["apply", "--yes"]));
    let status = |env: &Env| -> serde_json::Value {
        serde_json::from_str(&ok(&env.deploy(&em, &["status", "--json"]))).unwrap()
    };
    let before = status(&local);

    let moved = ok(&local.deploy(&em, &["state", "migrate", "--to", URL]));
    assert!(
        moved.contains("to s3://team-state/trivia/local.json") && moved.contains("state: { s3:"),
        "{moved}"
    );
    assert!(!local.dir.path().join("state/local.json").exists());
    let remote = Env {
        dir: tempfile::tempdir().unwrap(),
        state_url: Some(URL.into()),
    };
    for f in ["base.yaml", "local.yaml"] {
        std::fs::copy(local.dir.path().join(f), remote.dir.path().join(f)).unwrap();
    }
    let there = status(&remote);
    assert_eq!(
        (&there["serial"], &there["lineage"]),
        (&before["serial"], &before["lineage"])
    );
    let plan = remote.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));

    // A target that holds state is refused, and nothing moves.
    backend(&em, "taken")
        .await
        .write(&mut State::new("trivia", "local"))
        .unwrap();
    let refused = remote.deploy(&em, &["state", "migrate", "--to", "s3://team-state/taken"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("already holds state"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(status(&remote)["serial"], before["serial"]);

    ok(&remote.deploy(&em, &["state", "migrate", "--to", "local"]));
    let back = Env {
        dir: remote.dir,
        state_url: None,
    };
    let home = status(&back);
    assert_eq!(
        (&home["serial"], &home["lineage"]),
        (&before["serial"], &before["lineage"])
    );
    let plan = back.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    // The S3 copy is an old version now: its history ends in a delete marker.
    let history = ok(&Env::with_state_url(URL).deploy(&em, &["state", "history"]));
    assert!(history.contains("(removed)"), "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_adopts_a_security_group_with_its_rules_and_a_user_pool_and_the_plan_shows_only_differences(
) {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let show = |address: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&env.deploy(&em, &["state", "show", address, "--json"]))).unwrap()
    };
    let group = show("security_group.valkey")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vpc = show("network.vpc")["id"].as_str().unwrap().to_string();
    let pool = show("cognito.user_pool")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Forgotten, as if made outside deploy; then changed outside it.
    ok(&env.deploy(
        &em,
        &[
            "state",
            "rm",
            "security_group.valkey",
            "cognito.user_pool",
            "cognito.client.web",
        ],
    ));
    let ec2 = aws_sdk_ec2::Client::new(&em.sdk().await);
    ec2.create_tags()
        .resources(&group)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("changed-by")
                .value("hand")
                .build(),
        )
        .send()
        .await
        .unwrap();

    // Refusals change nothing: another environment's group, an id that is not there.
    let foreign = ec2
        .create_security_group()
        .group_name("trivia-dev-valkey")
        .description("dev's")
        .vpc_id(&vpc)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("deploy:environment")
                        .value("dev")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let refused = env.deploy(
        &em,
        &[
            "import",
            "security_group.valkey",
            foreign.group_id().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("is tagged deploy:environment=dev"),
        "{}",
        text(&refused.stderr)
    );
    let missing = env.deploy(
        &em,
        &["import", "security_group.valkey", "sg-0123456789abcdef0"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("does not exist"));

    let imported = ok(&env.deploy(&em, &["import", "security_group.valkey", &group]));
    assert!(
        imported.contains("as security_group.valkey.")
            && imported.contains("Imported its rule sgr-"),
        "{imported}"
    );
    // The pool brings its app client, found by its name in the spec (it has no tags).
    let imported = ok(&env.deploy(&em, &["import", "cognito.user_pool", &pool]));
    assert!(
        imported.contains("Imported its app client ")
            && imported.contains(" as cognito.client.web."),
        "{imported}"
    );
    let plan = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    let out = text(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{out}");
    // Only the hand-made tag differs: no rule, group or pool is made again.
    assert!(out.contains("~ security_group.valkey"), "{out}");
    assert!(out.contains("changed-by"), "{out}");
    assert!(
        !out.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("+ ")
                || l.starts_with("- ")
                || l.starts_with("-/+")
                || l.starts_with("+/-")
        }),
        "{out}"
    );
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let settled = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn state_mv_of_a_renamed_security_group_leaves_nothing_to_do() {
    let em = Emulator::start(&[]);
    ok(&bootstrap(&em));
    let env = Env::with_state_url(URL);
    ok(&env.deploy(&em, &["apply", "--yes"]));
    // The spec renames the group `valkey` to `cache`, keeping its name in AWS.
    env.edit(
        "base.yaml",
        "  valkey:\n    description: The Valkey cache",
        "  cache:\n    name: trivia-local-valkey\n    description: The Valkey cache",
    );
    env.edit("base.yaml", "group: valkey", "group: cache");
    env.edit(
        "base.yaml",
        "security_groups: [valkey]",
        "security_groups: [cache]",
    );
    let before = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(before.status.code(), Some(2), "{}", text(&before.stdout));
    ok(&env.deploy(
        &em,
        &[
            "state",
            "mv",
            "security_group.valkey",
            "security_group.cache",
        ],
    ));
    ok(&env.deploy(
        &em,
        &[
            "state",
            "mv",
            "security_group.lambda.egress.tcp-6379-6380-sg-valkey",
            "security_group.lambda.egress.tcp-6379-6380-sg-cache",
        ],
    ));
    // Nothing is made again or deleted, and nothing is left to do: the moved
    // resources' tags followed their new address in AWS (the tag that finds them when
    // state is lost).
    let after = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    let ec2 = aws_sdk_ec2::Client::new(&em.sdk().await);
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("trivia-local-valkey")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let [group] = groups.security_groups() else {
        panic!("one group keeps the name: {groups:?}");
    };
    let address = group
        .tags()
        .iter()
        .find(|t| t.key() == Some("deploy:address"))
        .and_then(|t| t.value());
    assert_eq!(address, Some("security_group.cache"));

    // With --state-only the tags are left to the next apply: renamed again, to
    // `store`, the plan shows the three moved resources' tag-only updates.
    env.edit("base.yaml", "  cache:\n    name:", "  store:\n    name:");
    env.edit("base.yaml", "group: cache", "group: store");
    env.edit(
        "base.yaml",
        "security_groups: [cache]",
        "security_groups: [store]",
    );
    for (from, to) in [
        ("security_group.cache", "security_group.store"),
        (
            "security_group.lambda.egress.tcp-6379-6380-sg-cache",
            "security_group.lambda.egress.tcp-6379-6380-sg-store",
        ),
    ] {
        let out = ok(&env.deploy(&em, &["state", "mv", "--state-only", from, to]));
        assert!(!out.contains("Retagged"), "{out}");
    }
    let after = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    let out = text(&after.stdout);
    assert!(
        out.starts_with("Plan: 0 to create, 3 to update, 0 to replace, 0 to delete."),
        "{out}"
    );
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" → ") && !l.starts_with("Monthly"))
        .collect();
    assert_eq!(changes.len(), 3, "{out}");
    assert!(
        changes.iter().all(|l| {
            let after = l.split(" → ").nth(1).unwrap_or_default();
            l.trim_start().starts_with("~ tags:")
                && (after.contains("\"deploy:address\":\"security_group.store")
                    || after.contains("-sg-store\""))
        }),
        "{out}"
    );
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let settled = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));
}
