//! The AWS providers against the emulator (moto's server mode plus this project's
//! extensions), through the `deploy` binary as a user runs it. Each test starts its own
//! emulator on a free port.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An emulator process, stopped on drop.
pub struct Emulator {
    pub port: u16,
}

impl Emulator {
    pub fn start(extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // As a user starts it: the local cloud shipped inside the binary.
        let out = Command::new(env!("CARGO_BIN_EXE_deploy"))
            .args(["local", "start", "--port", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("deploy runs");
        assert!(
            out.status.success(),
            "the emulator did not start: {}",
            text(&out.stderr)
        );
        Emulator { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            // A hostile emulator throttles 8% of calls: the tests' own reads retry as
            // patiently as deploy does, so that three throttles in a row are no failure.
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .endpoint_url(self.url())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await
    }

    /// Calls the emulator counted, by service and action.
    pub fn calls(&self) -> serde_json::Value {
        control(self.port, "GET", "/_deploy/calls")
    }

    /// Points a `deploy` command at this emulator with test credentials, no colour, no
    /// terminal. Provisioning tests ship placeholder code without smoke checks
    /// (tests/it/ship.rs removes DEPLOY_NO_BUILD and DEPLOY_NO_SMOKE).
    pub fn aim(&self, cmd: &mut Command) {
        cmd.env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", self.url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DEPLOY_NO_BUILD", "1")
            .env("DEPLOY_NO_SMOKE", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("DEPLOY_ENV")
            .env_remove("DEPLOY_STATE_URL")
            .env_remove("DEPLOY_LOCK_LEASE")
            .stdin(Stdio::null());
    }

    /// Starts counting calls from zero.
    pub fn reset_calls(&self) {
        control(self.port, "DELETE", "/_deploy/calls");
    }
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

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_deploy"))
            .args(["local", "stop", "--port", &self.port.to_string()])
            .output();
    }
}

/// A copy of the shipped `local` environment in a temp dir, with its own state (in the
/// temp dir, or at `state_url`).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub state_url: Option<String>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for f in ["base.yaml", "local.yaml"] {
            std::fs::copy(repo().join("environments").join(f), dir.path().join(f)).unwrap();
        }
        Env {
            dir,
            state_url: None,
        }
    }

    /// The same, keeping its state and lock at `url` (`s3://…`).
    pub fn with_state_url(url: &str) -> Self {
        Env {
            state_url: Some(url.to_string()),
            ..Env::new()
        }
    }

    pub fn spec(&self) -> PathBuf {
        self.dir.path().join("local.yaml")
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.path().join(file);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{from} not in {file}");
        std::fs::write(p, t.replacen(from, to, 1)).unwrap();
    }

    pub fn command(&self, em: &Emulator, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deploy"));
        let spec = self.spec();
        cmd.args(args)
            .arg("-e")
            .arg(&spec)
            .env("DEPLOY_STATE_DIR", self.dir.path().join("state"));
        em.aim(&mut cmd);
        if let Some(url) = &self.state_url {
            cmd.env("DEPLOY_STATE_URL", url);
        }
        cmd
    }

    pub fn deploy(&self, em: &Emulator, args: &[&str]) -> Output {
        self.command(em, args).output().unwrap()
    }
}

pub fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The one user pool in the emulator and its first app client: (pool id, client id).
pub async fn user_pool_and_client(em: &Emulator) -> (String, String) {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&em.sdk().await);
    let pools = cognito
        .list_user_pools()
        .max_results(10)
        .send()
        .await
        .unwrap();
    let pool = pools.user_pools()[0].id().unwrap().to_string();
    let clients = cognito
        .list_user_pool_clients()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let client = clients.user_pool_clients()[0]
        .client_id()
        .unwrap()
        .to_string();
    (pool, client)
}

/// Everything still tagged (or named) as this environment, listed service by service.
pub async fn leftovers(em: &Emulator, environment: &str) -> Vec<String> {
    let cfg = em.sdk().await;
    let mut left = Vec::new();
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let f = aws_sdk_ec2::types::Filter::builder()
        .name("tag:deploy:environment")
        .values(environment)
        .build();
    for v in ec2
        .describe_vpcs()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .vpcs()
    {
        left.push(format!("vpc {}", v.vpc_id().unwrap_or_default()));
    }
    for s in ec2
        .describe_subnets()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .subnets()
    {
        left.push(format!("subnet {}", s.subnet_id().unwrap_or_default()));
    }
    for g in ec2
        .describe_security_groups()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        left.push(format!(
            "security group {}",
            g.group_id().unwrap_or_default()
        ));
    }
    for n in ec2
        .describe_nat_gateways()
        .filter(f.clone())
        .send()
        .await
        .unwrap()
        .nat_gateways()
    {
        if n.state().map(|s| s.as_str()) != Some("deleted") {
            left.push(format!(
                "nat gateway {}",
                n.nat_gateway_id().unwrap_or_default()
            ));
        }
    }
    for a in ec2
        .describe_addresses()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .addresses()
    {
        left.push(format!(
            "elastic ip {}",
            a.allocation_id().unwrap_or_default()
        ));
    }
    for t in ec2
        .describe_route_tables()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .route_tables()
    {
        left.push(format!(
            "route table {}",
            t.route_table_id().unwrap_or_default()
        ));
    }
    for g in ec2
        .describe_internet_gateways()
        .filters(f.clone())
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        left.push(format!(
            "internet gateway {}",
            g.internet_gateway_id().unwrap_or_default()
        ));
    }
    let prefix = format!("trivia-{environment}-");
    for c in aws_sdk_elasticache::Client::new(&cfg)
        .describe_serverless_caches()
        .send()
        .await
        .unwrap()
        .serverless_caches()
    {
        if c.serverless_cache_name()
            .unwrap_or_default()
            .starts_with(&prefix)
        {
            left.push(format!(
                "cache {}",
                c.serverless_cache_name().unwrap_or_default()
            ));
        }
    }
    for p in aws_sdk_ssm::Client::new(&cfg)
        .describe_parameters()
        .send()
        .await
        .unwrap()
        .parameters()
    {
        if p.name()
            .unwrap_or_default()
            .starts_with(&format!("/trivia-{environment}/"))
        {
            left.push(format!("parameter {}", p.name().unwrap_or_default()));
        }
    }
    for r in aws_sdk_iam::Client::new(&cfg)
        .list_roles()
        .send()
        .await
        .unwrap()
        .roles()
    {
        if r.role_name().starts_with(&prefix) {
            left.push(format!("role {}", r.role_name()));
        }
    }
    for f in aws_sdk_lambda::Client::new(&cfg)
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
    {
        if f.function_name().unwrap_or_default().starts_with(&prefix) {
            left.push(format!(
                "function {}",
                f.function_name().unwrap_or_default()
            ));
        }
    }
    for p in aws_sdk_cognitoidentityprovider::Client::new(&cfg)
        .list_user_pools()
        .max_results(60)
        .send()
        .await
        .unwrap()
        .user_pools()
    {
        if p.name().unwrap_or_default().starts_with(&prefix) {
            left.push(format!("user pool {}", p.name().unwrap_or_default()));
        }
    }
    for a in aws_sdk_apigateway::Client::new(&cfg)
        .get_rest_apis()
        .send()
        .await
        .unwrap()
        .items()
    {
        if a.name().unwrap_or_default().starts_with(&prefix) {
            left.push(format!("rest api {}", a.name().unwrap_or_default()));
        }
    }
    for g in aws_sdk_cloudwatchlogs::Client::new(&cfg)
        .describe_log_groups()
        .log_group_name_prefix(format!("/aws/lambda/{prefix}"))
        .send()
        .await
        .unwrap()
        .log_groups()
    {
        left.push(format!(
            "log group {}",
            g.log_group_name().unwrap_or_default()
        ));
    }
    for r in aws_sdk_eventbridge::Client::new(&cfg)
        .list_rules()
        .send()
        .await
        .unwrap()
        .rules()
    {
        if r.name().unwrap_or_default().starts_with(&prefix) {
            left.push(format!("rule {}", r.name().unwrap_or_default()));
        }
    }
    left
}

async fn full_cycle(em: &Emulator) {
    let env = Env::new();
    ok(&env.deploy(em, &["apply", "--yes"]));
    let cfg = em.sdk().await;

    // Attributes and tags as the spec says.
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let vpcs = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:deploy:address")
                .values("network.vpc")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    let tags: Vec<(&str, &str)> = vpc
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(
        tags.contains(&("deploy:environment", "local"))
            && tags.contains(&("deploy:project", "trivia"))
            && tags.contains(&("owner", "games-team")),
        "{tags:?}"
    );
    let cache = aws_sdk_elasticache::Client::new(&cfg)
        .describe_serverless_caches()
        .serverless_cache_name("trivia-local-cache")
        .send()
        .await
        .unwrap();
    let cache = &cache.serverless_caches()[0];
    assert_eq!(cache.status(), Some("available"));
    assert_eq!(
        cache
            .cache_usage_limits()
            .unwrap()
            .ecpu_per_second()
            .unwrap()
            .maximum(),
        Some(3000)
    );
    let endpoint = cache.endpoint().unwrap().address().unwrap().to_string();
    let param = aws_sdk_ssm::Client::new(&cfg)
        .get_parameter()
        .name("/trivia-local/valkey/endpoint")
        .send()
        .await
        .unwrap();
    assert_eq!(param.parameter().unwrap().value(), Some(endpoint.as_str()));
    // App clients answer alike whether a user exists or not.
    let (pool, client) = user_pool_and_client(em).await;
    let client = aws_sdk_cognitoidentityprovider::Client::new(&cfg)
        .describe_user_pool_client()
        .user_pool_id(pool)
        .client_id(client)
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .user_pool_client()
            .unwrap()
            .prevent_user_existence_errors()
            .map(|p| p.as_str()),
        Some("ENABLED")
    );
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let f = lambda
        .get_function_configuration()
        .function_name("trivia-local-api")
        .send()
        .await
        .unwrap();
    assert_eq!(f.memory_size(), Some(512));
    assert_eq!(
        f.environment().unwrap().variables().unwrap()["VALKEY_ENDPOINT"],
        endpoint
    );
    let alias = lambda
        .get_alias()
        .function_name("trivia-local-api")
        .name("live")
        .send()
        .await
        .unwrap();
    assert!(alias.function_version().is_some_and(|v| v != "$LATEST"));

    // Each function's log group exists before it runs, with the spec's retention.
    let groups = aws_sdk_cloudwatchlogs::Client::new(&cfg)
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/trivia-local-")
        .send()
        .await
        .unwrap();
    let retention: Vec<(&str, Option<i32>)> = groups
        .log_groups()
        .iter()
        .map(|g| (g.log_group_name().unwrap(), g.retention_in_days()))
        .collect();
    assert_eq!(
        retention,
        vec![
            ("/aws/lambda/trivia-local-api", Some(14)),
            ("/aws/lambda/trivia-local-preloader", Some(14))
        ]
    );

    // A second plan has nothing to do.
    let second = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
    // The plan names where it would act: the credentials' account and the region.
    assert!(
        text(&second.stdout).contains("trivia-local in account 123456789012, us-east-1."),
        "{}",
        text(&second.stdout)
    );

    // Raising max ECPU updates the cache in place.
    env.edit(
        "local.yaml",
        "max_ecpu_per_second: 3000",
        "max_ecpu_per_second: 5000",
    );
    let plan = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2));
    assert!(
        text(&plan.stdout)
            .starts_with("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."),
        "{}",
        text(&plan.stdout)
    );
    ok(&env.deploy(em, &["apply", "--yes"]));
    let cache = aws_sdk_elasticache::Client::new(&cfg)
        .describe_serverless_caches()
        .serverless_cache_name("trivia-local-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache.serverless_caches()[0]
            .cache_usage_limits()
            .unwrap()
            .ecpu_per_second()
            .unwrap()
            .maximum(),
        Some(5000)
    );

    // A rule's description changes in place, and then reads back as applied.
    env.edit(
        "base.yaml",
        "group: valkey, description: Valkey }",
        "group: valkey, description: Valkey over TLS }",
    );
    let plan = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert!(
        text(&plan.stdout)
            .starts_with("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete."),
        "{}",
        text(&plan.stdout)
    );
    ok(&env.deploy(em, &["apply", "--yes"]));
    let settled = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));
    let described = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:deploy:address")
                .values("security_group.lambda.egress.tcp-6379-6380-sg-valkey")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.security_group_rules()[0].description(),
        Some("Valkey over TLS")
    );

    // A security group whose description changes is replaced before the old one goes:
    // the replacement takes a suffix (names are unique per VPC) and the function moves.
    env.edit(
        "base.yaml",
        "description: Functions that reach the cache and the internet",
        "description: The functions",
    );
    ok(&env.deploy(em, &["apply", "--yes"]));
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:deploy:address")
                .values("security_group.lambda")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let groups = groups.security_groups();
    assert_eq!(groups.len(), 1, "the old group is gone");
    assert_eq!(groups[0].group_name(), Some("trivia-local-lambda-2"));
    let vpc_config = lambda
        .get_function_configuration()
        .function_name("trivia-local-api")
        .send()
        .await
        .unwrap();
    assert_eq!(
        vpc_config.vpc_config().unwrap().security_group_ids(),
        [groups[0].group_id().unwrap().to_string()]
    );
    let settled = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));

    // A private subnet's new CIDR replaces it and the cache: refused without the flag.
    env.edit("base.yaml", "a: 10.0.2.0/24", "a: 10.0.5.0/24");
    let refused = env.deploy(em, &["apply", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stdout)
            .contains("valkey.cache would be replaced and its data lost; pass --allow-data-loss"),
        "{}",
        text(&refused.stdout)
    );
    assert!(text(&refused.stdout).contains("-/+ valkey.cache"));
    env.edit("base.yaml", "a: 10.0.5.0/24", "a: 10.0.2.0/24");
    let back = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(back.status.code(), Some(0), "{}", text(&back.stdout));

    // Out-of-band changes show as drift and apply repairs them.
    let rules = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:deploy:address")
                .values("security_group.lambda.egress.tcp-443-cidr-0.0.0.0/0")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let rule = &rules.security_group_rules()[0];
    ec2.revoke_security_group_egress()
        .group_id(rule.group_id().unwrap())
        .security_group_rule_ids(rule.security_group_rule_id().unwrap())
        .send()
        .await
        .unwrap();
    lambda
        .update_function_configuration()
        .function_name("trivia-local-api")
        .memory_size(256)
        .send()
        .await
        .unwrap();
    // The inline policy and the VPC's DNS settings are read back too.
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.put_role_policy()
        .role_name("trivia-local-api")
        .policy_name("deploy")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    ec2.modify_vpc_attribute()
        .vpc_id(vpc.vpc_id().unwrap())
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(drift.status.code(), Some(2));
    let out = text(&drift.stdout);
    assert!(
        out.contains("iam.role.api (iam_role)") && out.contains("drift inline_policy"),
        "{out}"
    );
    assert!(
        out.contains("drift enable_dns_hostnames: true → false"),
        "{out}"
    );
    assert!(
        out.contains("drift memory_mb: 512 → 256 (changed outside deploy)"),
        "{out}"
    );
    assert!(out.contains("security_group.lambda.egress.tcp-443-cidr-0.0.0.0/0 (security_group_rule) — deleted outside deploy"), "{out}");
    ok(&env.deploy(em, &["apply", "--yes"]));
    assert_eq!(
        lambda
            .get_function_configuration()
            .function_name("trivia-local-api")
            .send()
            .await
            .unwrap()
            .memory_size(),
        Some(512)
    );
    let repaired = env.deploy(em, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        repaired.status.code(),
        Some(0),
        "{}",
        text(&repaired.stdout)
    );

    // Destroy leaves nothing tagged with the environment, in any service.
    ok(&env.deploy(em, &["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(em, "local").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn full_cycle_against_the_emulator() {
    let em = Emulator::start(&[]);
    full_cycle(&em).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_cycle_in_hostile_mode() {
    let em = Emulator::start(&["--hostile", "--seed", "7"]);
    full_cycle(&em).await;
    let calls = em.calls();
    assert!(calls["total"].as_u64().unwrap() > 100);
}

/// Every object tagged with the environment is one the state accounts for, and no
/// name appears twice: nothing was made twice. The state is read as `deploy state
/// list` reads it, wherever it is kept.
pub async fn assert_all_accounted_for(em: &Emulator, env: &Env) {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&env.deploy(em, &["state", "list", "--json"]))).unwrap();
    let ids: std::collections::BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    let left = leftovers(em, "local").await;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &left {
        assert!(seen.insert(entry.clone()), "{entry} exists twice: {left:?}");
        let id = entry.rsplit(' ').next().unwrap();
        let ec2 = [
            "vpc-",
            "subnet-",
            "sg-",
            "nat-",
            "eipalloc-",
            "rtb-",
            "igw-",
        ];
        if ec2.iter().any(|p| id.starts_with(p)) {
            assert!(ids.contains(id), "{entry} is not in the state: a duplicate");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_hostile_apply_stops_promptly_releases_the_lock_and_the_rerun_converges() {
    let em = Emulator::start(&["--hostile", "--seed", "13"]);
    let env = Env::new();
    let mut child = env
        .command(&em, &["apply", "--yes", "--no-smoke"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first step is recorded, the engine runs: interrupt it.
    let state_file = env.dir.path().join("state/local.json");
    let waited = std::time::Instant::now();
    while !state_file.exists() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "the apply never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < std::time::Duration::from_secs(60),
            "still running 60 s after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("Ctrl-C: stopping."), "{stderr}");
    assert!(stdout.contains("Apply interrupted:"), "{stdout}");
    assert!(
        stdout.contains("run the same command again to resume"),
        "{stdout}"
    );
    assert!(
        !env.dir.path().join("state/local.lock").exists(),
        "the lock was left behind"
    );
    // The rerun needs no unlock, finishes the job, and made nothing twice.
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    assert_all_accounted_for(&em, &env).await;
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    ok(&env.deploy(&em, &["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_whose_responses_are_lost_leave_no_duplicates() {
    // Most creates take effect and then answer 500: a blind retry would make another.
    let em = Emulator::start(&["--hostile", "--seed", "3", "--lose-responses", "0.6"]);
    let env = Env::new();
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let lost = em.calls()["lost"].as_object().cloned().unwrap_or_default();
    let lost_total: u64 = lost.values().filter_map(|v| v.as_u64()).sum();
    assert!(
        lost_total >= 5,
        "too few lost responses to mean anything: {lost:?}"
    );
    // App clients carry no tags: they are found by name within their pool.
    let (pool, _) = user_pool_and_client(&em).await;
    let clients = aws_sdk_cognitoidentityprovider::Client::new(&em.sdk().await)
        .list_user_pool_clients()
        .user_pool_id(pool)
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(
        clients.user_pool_clients().len(),
        1,
        "{:?}",
        clients.user_pool_clients()
    );

    assert_all_accounted_for(&em, &env).await;
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    ok(&env.deploy(&em, &["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn old_function_versions_are_pruned_keeping_live_previous_and_three_more() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    let mut memory = 512;
    for next in [576, 640, 704, 768, 832, 896] {
        env.edit(
            "base.yaml",
            &format!("memory_mb: {memory}"),
            &format!("memory_mb: {next}"),
        );
        memory = next;
        ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    }
    let lambda = aws_sdk_lambda::Client::new(&em.sdk().await);
    let versions: Vec<String> = lambda
        .list_versions_by_function()
        .function_name("trivia-local-api")
        .send()
        .await
        .unwrap()
        .versions()
        .iter()
        .filter_map(|v| v.version().map(String::from))
        .filter(|v| v != "$LATEST")
        .collect();
    // Seven publishes: the live one, the one before it, and three more remain.
    assert_eq!(versions, vec!["3", "4", "5", "6", "7"], "{versions:?}");
    let live = lambda
        .get_alias()
        .function_name("trivia-local-api")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(live.function_version(), Some("7"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_caches_final_snapshot_is_kept_named_and_listed() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    env.edit(
        "local.yaml",
        "snapshot_retention_days: 0",
        "snapshot_retention_days: 1",
    );
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    let out = env.deploy(&em, &["destroy", "--yes", "--allow-data-loss"]);
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("kept the final snapshot trivia-local-cache-final-"),
        "{stderr}"
    );
    let snapshots = aws_sdk_elasticache::Client::new(&em.sdk().await)
        .describe_serverless_cache_snapshots()
        .serverless_cache_name("trivia-local-cache")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = snapshots
        .serverless_cache_snapshots()
        .iter()
        .filter_map(|s| s.serverless_cache_snapshot_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // `env list` (offline, from the state) names it.
    std::os::unix::fs::symlink(".", env.dir.path().join("environments")).unwrap();
    let mut list = env.command(&em, &["env", "list", "--json"]);
    list.current_dir(env.dir.path());
    let listed: serde_json::Value = serde_json::from_slice(&list.output().unwrap().stdout).unwrap();
    let local = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["environment"] == "local")
        .unwrap();
    assert_eq!(local["retained"][0]["name"], names[0]);
    assert_eq!(local["retained"][0]["source"], "trivia-local-cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_tag_untags_and_redeploying_the_api_keeps_its_permissions() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    ok(&env.deploy(&em, &["apply", "--yes"]));

    // A tag removed from the spec is removed with UntagResource, never by sending
    // TagResource with nothing, and SSM parameters lose it too.
    env.edit("base.yaml", "  owner: games-team\n", "");
    em.reset_calls();
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let calls = em.calls()["calls"].clone();
    // Lambda's tag calls are counted by path (`/2017-03-31/tags/ARN`).
    let by_prefix = |prefix: &str| -> u64 {
        calls
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    };
    assert!(
        by_prefix("lambda.DELETE /2017-03-31/") >= 2,
        "UntagResource: {calls}"
    );
    assert_eq!(
        by_prefix("lambda.POST /2017-03-31/"),
        0,
        "TagResource: {calls}"
    );
    let tags = aws_sdk_ssm::Client::new(&em.sdk().await)
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id("/trivia-local/valkey/endpoint")
        .send()
        .await
        .unwrap();
    assert!(
        !tags.tag_list().iter().any(|t| t.key() == "owner"),
        "{:?}",
        tags.tag_list()
    );
    let settled = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));

    // A new API definition is deployed without taking the functions' permission
    // away and granting it again (a window in which every call gets a 5xx).
    env.edit(
        "base.yaml",
        "    allow_origins: [\"*\"]",
        "    allow_origins: [\"*\"]\n    allow_headers: [Authorization, Content-Type, X-Request-Id]",
    );
    em.reset_calls();
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let calls = em.calls()["calls"].clone();
    let count = |k: &str| calls.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    assert!(
        count("apigateway.POST /restapis/{}/deployments") >= 1,
        "{calls}"
    );
    assert_eq!(count("lambda.RemovePermission"), 0, "{calls}");
    assert_eq!(count("lambda.AddPermission"), 0, "{calls}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configuration_left_unpublished_is_published_by_the_next_apply() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    // A run that died after UpdateFunctionConfiguration and before PublishVersion:
    // $LATEST already says what the spec now says, the alias still serves the old.
    let lambda = aws_sdk_lambda::Client::new(&em.sdk().await);
    lambda
        .update_function_configuration()
        .function_name("trivia-local-api")
        .memory_size(768)
        .send()
        .await
        .unwrap();
    env.edit("base.yaml", "memory_mb: 512", "memory_mb: 768");
    let plan = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stdout));
    assert!(
        text(&plan.stdout).contains("published: false → true"),
        "{}",
        text(&plan.stdout)
    );
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    let live = lambda
        .get_function_configuration()
        .function_name("trivia-local-api")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(live.memory_size(), Some(768));
    let after = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_apply_rerun_converges_without_duplicates() {
    let em = Emulator::start(&["--hostile", "--seed", "11"]);
    let env = Env::new();
    for kill_after_ms in [700u64, 1500, 2600, 4000] {
        let mut child = env
            .command(&em, &["apply", "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(kill_after_ms));
        let _ = child.kill(); // SIGKILL: no cleanup runs
        let _ = child.wait();
        env.deploy(&em, &["unlock"]);
    }
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let again = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    let cfg = em.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    let f = aws_sdk_ec2::types::Filter::builder()
        .name("tag:deploy:environment")
        .values("local")
        .build();
    assert_eq!(
        ec2.describe_vpcs()
            .filters(f.clone())
            .send()
            .await
            .unwrap()
            .vpcs()
            .len(),
        1,
        "one VPC"
    );
    let live_nats = ec2
        .describe_nat_gateways()
        .filter(f.clone())
        .send()
        .await
        .unwrap()
        .nat_gateways()
        .iter()
        .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
        .count();
    assert_eq!(live_nats, 1, "one NAT gateway");
    assert_eq!(
        aws_sdk_elasticache::Client::new(&cfg)
            .describe_serverless_caches()
            .send()
            .await
            .unwrap()
            .serverless_caches()
            .len(),
        1,
        "one cache"
    );
    let functions = aws_sdk_lambda::Client::new(&cfg)
        .list_functions()
        .send()
        .await
        .unwrap();
    assert_eq!(functions.functions().len(), 2, "two functions");
    let pools = aws_sdk_cognitoidentityprovider::Client::new(&cfg)
        .list_user_pools()
        .max_results(60)
        .send()
        .await
        .unwrap();
    assert_eq!(pools.user_pools().len(), 1, "one user pool");
    ok(&env.deploy(&em, &["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_and_destroy_without_a_terminal_or_yes_refuse_instead_of_hanging() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    let started = std::time::Instant::now();
    let out = env.deploy(&em, &["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refusing to continue without confirmation"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Nothing was created.
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
    ok(&env.deploy(&em, &["apply", "--yes"]));
    let out = env.deploy(&em, &["destroy", "--allow-data-loss"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("refusing to continue without confirmation"));
    assert!(
        !leftovers(&em, "local").await.is_empty(),
        "nothing was destroyed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_letter_the_region_lacks_is_refused_at_plan_time_with_its_line() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    // ap-northeast-1 has zones a, c and d: base.yaml's `private_subnets.b` names none.
    env.edit("base.yaml", "region: us-east-1", "region: ap-northeast-1");
    let plan = env.deploy(&em, &["plan"]);
    let err = text(&plan.stderr);
    assert_eq!(plan.status.code(), Some(1), "{err}");
    assert!(
        err.contains("base.yaml:18:5")
            && err.contains("availability zone ap-northeast-1b does not exist in this account")
            && err.contains("use one of the letters a, c, d"),
        "{err}"
    );
    let apply = env.deploy(&em, &["apply", "--yes", "--no-smoke"]);
    assert_eq!(apply.status.code(), Some(1));
    let calls = em.calls()["calls"].to_string();
    assert!(
        !calls.contains("Create"),
        "an apply refused at plan time creates nothing: {calls}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_state_file_is_rebuilt_from_tags_and_the_next_apply_makes_no_second_copy() {
    let em = Emulator::start(&[]);
    let env = Env::new();
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    std::fs::remove_file(env.dir.path().join("state").join("local.json")).unwrap();
    let plan = env.deploy(&em, &["plan"]);
    let (out, err) = (text(&plan.stdout), text(&plan.stderr));
    assert!(
        err.contains("`local` has no state, but") && err.contains("tagged with it are in the spec"),
        "{err}"
    );
    assert!(
        out.contains(" 0 to create,"),
        "nothing is planned twice:\n{out}"
    );
    ok(&env.deploy(&em, &["apply", "--yes", "--no-smoke"]));
    let settled = env.deploy(&em, &["plan", "--detailed-exitcode"]);
    assert_eq!(settled.status.code(), Some(0), "{}", text(&settled.stdout));
    assert_all_accounted_for(&em, &env).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_caches_name_is_free_when_destroy_returns() {
    // Real durations, scaled: a cache takes its time to go, and keeps its name until
    // then (as on AWS, a create of that name is refused meanwhile).
    let em = Emulator::start(&["--profile", "realistic", "--scale", "0.01"]);
    let env = Env::new();
    let scaled = |args: &[&str]| {
        env.command(&em, args)
            .env("DEPLOY_WAIT_SCALE", "0.01")
            .output()
            .unwrap()
    };
    ok(&scaled(&["apply", "--yes"]));
    ok(&scaled(&["destroy", "--yes", "--allow-data-loss"]));
    // Made again at once, as a reopened pull request's preview would be.
    ok(&scaled(&["apply", "--yes"]));
    ok(&scaled(&["destroy", "--yes", "--allow-data-loss"]));
    assert_eq!(leftovers(&em, "local").await, Vec::<String>::new());
}
