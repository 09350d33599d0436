//! Clap definitions: every flag and subcommand, as the user types them. Nothing here
//! is read after [`super::Settings`] and the commands' own argument structs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "deploy",
    version,
    about = "Plan, apply and destroy a serverless app with a Valkey cache on AWS, one YAML spec per environment"
)]
pub struct Cli {
    /// Environment name (resolved in `environments/`) or a path to a spec file.
    #[arg(short = 'e', long = "env", global = true, env = "DEPLOY_ENV")]
    pub env: Option<String>,
    /// Where state files and locks live.
    #[arg(
        long,
        global = true,
        env = "DEPLOY_STATE_DIR",
        default_value = ".deploy/state"
    )]
    pub state_dir: PathBuf,
    /// Keep state and locks in S3 (`s3://BUCKET/PREFIX`) instead of what the spec's
    /// `state:` section says (or the local directory).
    #[arg(long, global = true, env = "DEPLOY_STATE_URL", value_name = "URL")]
    pub state_url: Option<String>,
    /// How long to wait for the environment's lock when another run holds it (e.g.
    /// `5m`), instead of stopping at once.
    #[arg(long, global = true, env = "DEPLOY_LOCK_TIMEOUT", value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<std::time::Duration>,
    /// More output (retries, every wait).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Less output (no progress lines).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a spec without calling AWS; every problem is reported as FILE:LINE:COL.
    Validate(ValidateArgs),
    /// Show what apply would change, and why.
    Plan(PlanArgs),
    /// Make the environment match its spec (shows the plan and asks first).
    Apply(ApplyArgs),
    /// Delete everything the environment's state records, dependents first.
    Destroy(DestroyArgs),
    /// Create and list environments (ephemeral ones from a template).
    #[command(subcommand)]
    Env(EnvCommand),
    /// Destroy every ephemeral environment past its expiry, found by tags.
    Gc(GcArgs),
    /// Build the functions' code for Lambda (release, checked, reproducible zips).
    Build(BuildArgs),
    /// Check the live environment end to end (also run after every apply).
    Smoke(SmokeArgs),
    /// Invoke a function's live alias and print what it returned.
    Invoke(InvokeArgs),
    /// Print a function's log lines (every function's, without FUNCTION).
    Logs(LogsArgs),
    /// Run the local cloud: an AWS emulator that executes what is deployed.
    #[command(subcommand)]
    Local(LocalCommand),
    /// Estimate the environment's monthly AWS bill, resource by resource.
    Cost(CostArgs),
    /// Print outputs recorded in state (endpoints, ARNs, the API's URL).
    Output(OutputArgs),
    /// Summarize the recorded state and its lock.
    Status(JsonFlag),
    /// Break a lock left behind by a run that died.
    Unlock,
    /// Look into the recorded state, or change it without touching AWS.
    #[command(subcommand)]
    State(StateCommand),
    /// Record an existing AWS resource at ADDRESS, so deploy manages it from now on
    /// (the next plan shows how it differs from the spec).
    Import(ImportArgs),
    /// Set up where a team keeps its state.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Print the JSON Schema of environment specs.
    Schema,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Every recorded address, with its kind and AWS id.
    List(JsonFlag),
    /// One recorded resource: id, inputs as applied, outputs, dependencies.
    Show {
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget resources without deleting them (an address names what is below it too).
    /// The state as it was is kept under `backups/`.
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Rename an address (and what is below it) without destroying anything, e.g.
    /// after renaming a function in the spec. The state as it was is kept. The moved
    /// resources' tags then follow their new address in AWS (`deploy:address`, the tag
    /// that finds them when state is lost, and a `Name` derived from it), as the spec
    /// wants them at the new address; nothing is created, replaced or deleted.
    Mv {
        from: String,
        to: String,
        /// Change the state only: leave the tags to the next apply (a plan shows
        /// them as tag-only updates).
        #[arg(long)]
        state_only: bool,
    },
    /// The stored versions of the state, newest first (S3 keeps one per write in a
    /// versioned bucket; a directory keeps the backups of surgery and migration).
    History(JsonFlag),
    /// Move the environment's state to another backend (`s3://BUCKET/PREFIX`, or
    /// `local` for the state directory), keeping its serial and lineage; refuses if
    /// the target already holds state. The old copy is kept as a backup.
    Migrate {
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Where the spec declares it, e.g. `security_group.cache`.
    pub address: String,
    /// Its AWS id (group id, user pool id, function name…).
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Create (or fix) the S3 bucket state is kept in: versioned, encrypted, public
    /// access blocked, TLS only, old versions expired. Safe to run again.
    Bootstrap {
        /// The bucket (default: the spec's `state.s3.bucket`).
        #[arg(long)]
        bucket: Option<String>,
        /// Days an old state version is kept after it is replaced.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i32).range(1..=36500))]
        keep_versions_days: i32,
        /// The bucket's region (default: the spec's `state.s3.region`, else its region).
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// How `validate` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    Text,
    Json,
    /// GitHub Actions annotations (`::error file=…,line=…,col=…::…`) on stdout, shown
    /// on the pull request's diff; the text report still goes to stderr.
    Github,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Machine-readable output (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ValidateFormat,
}

/// How `plan` and `smoke` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    /// A pull-request comment body, opening with a hidden marker naming the
    /// environment (`<!-- deploy:plan ENV -->`) so a workflow updates one comment.
    Markdown,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Machine-readable output (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Save the plan, for `deploy apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan from recorded state alone, without calling AWS.
    #[arg(long)]
    pub no_refresh: bool,
    /// Take the environment's lock while planning (as apply does). `--lock=false`
    /// plans read-only, without the lock and writing nothing (e.g. a pull-request
    /// comment while an apply runs); such a plan cannot be saved.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", conflicts_with = "out")]
    pub lock: bool,
    /// Only this resource (or address prefix) and what it depends on. Repeatable.
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Refresh reads in flight at once (reads are cheap: one wave covers a typical
    /// environment).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Do not build the functions' code: plan with the code already deployed.
    #[arg(long, env = "DEPLOY_NO_BUILD", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_build: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply a plan saved by `deploy plan --out FILE`, exactly as saved.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "no_refresh"])]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow replacing or deleting resources that hold data (caches, user pools).
    #[arg(long)]
    pub allow_data_loss: bool,
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    #[arg(long)]
    pub no_refresh: bool,
    /// Steps in flight at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Do not build the functions' code: keep the code already deployed (new functions
    /// get a placeholder that refuses to run).
    #[arg(long, env = "DEPLOY_NO_BUILD", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_build: bool,
    /// Do not run the smoke checks after applying (and so never roll back).
    #[arg(long, env = "DEPLOY_NO_SMOKE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_smoke: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also find everything tagged with the environment, in every service, even when
    /// the state is lost or stale (ephemeral environments only).
    #[arg(long)]
    pub sweep: bool,
    #[arg(long)]
    pub allow_data_loss: bool,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Render an ephemeral environment from `templates/environments/TEMPLATE.yaml`
    /// into `environments/NAME.yaml`.
    Create {
        /// The environment's name (e.g. `pr-42`).
        name: String,
        /// The template, in `templates/environments/`.
        #[arg(long = "from", default_value = "ephemeral")]
        template: String,
        /// How long it may live before `deploy gc` destroys it (`24h`, `3d`; default
        /// 24h). With `--if-missing`, an existing environment's expiry moves to now +
        /// TTL when that is later.
        #[arg(long)]
        ttl: Option<String>,
        /// Succeed, creating nothing, when the environment exists (an ephemeral one):
        /// what a pull request's workflow runs on every push.
        #[arg(long)]
        if_missing: bool,
    },
    /// Every environment with its kind, age, expiry and resource count.
    List(JsonFlag),
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be destroyed.
    #[arg(long)]
    pub dry_run: bool,
    /// The region to collect in (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Only this function (by its name in the spec).
    pub function: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Machine-readable output (the same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Send the HTTP checks here instead of the API's invoke URL.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function, by its name in the spec.
    pub function: String,
    /// The event: JSON, or `@FILE` to read it from a file (default `{}`).
    #[arg(long, value_name = "JSON|@FILE")]
    pub payload: Option<String>,
    /// Queue the invocation and return at once (as a schedule does).
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// Also print the last 4 KB of the invocation's log.
    #[arg(long)]
    pub logs: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function, by its name in the spec (default: every function).
    pub function: Option<String>,
    /// How far back to start (`10m`, `2h`, `1d`).
    #[arg(long, default_value = "10m")]
    pub since: String,
    /// Keep printing new lines until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines containing this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Install (first use) and start the local cloud in the background, then print
    /// the `export` lines that aim deploy and AWS SDKs at it.
    Start(LocalStartArgs),
    /// Stop the local cloud and everything it started (caches, functions).
    Stop(LocalPortArg),
    /// Whether it runs, and what it runs.
    Status(LocalPortArg),
}

#[derive(Debug, Args)]
pub struct LocalPortArg {
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct LocalStartArgs {
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Behave like AWS at its worst: throttling, 5xx, eventual consistency (control
    /// plane only).
    #[arg(long)]
    pub hostile: bool,
    /// Timing profile of the control plane: fast, hostile or realistic.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// With `--profile realistic`: real durations times this (e.g. 0.01).
    #[arg(long, value_name = "FACTOR")]
    pub scale: Option<f64>,
    /// Extra latency per control-plane call.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<f64>,
    /// Seed of hostile mode's dice, for a reproducible run.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// With `--hostile`: the share of create calls that take effect but answer 500,
    /// as a lost response does (default 0.1).
    #[arg(long, value_name = "RATE")]
    pub lose_responses: Option<f64>,
    /// Multiplies schedule periods (tests: 0.001 turns rate(6 hours) into 21.6 s).
    #[arg(long, value_name = "FACTOR")]
    pub schedule_scale: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    #[arg(long)]
    pub json: bool,
    /// API requests per day (default: the spec's `cost.requests_per_day`, else 10,000).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub requests_per_day: Option<f64>,
    /// KB of cache traffic per request; 1 ECPU ≈ 1 KB (default 4).
    #[arg(long, value_name = "KB", allow_negative_numbers = true)]
    pub kb_per_request: Option<f64>,
    /// GB a month through the NAT gateway(s) (default 5).
    #[arg(long, value_name = "GB", allow_negative_numbers = true)]
    pub nat_gb_per_month: Option<f64>,
    /// Average function run time in ms (default 50).
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub function_duration_ms: Option<f64>,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// One output, e.g. `api.rest_api.invoke_url`; prints just its value.
    pub name: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn lock_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); for example `90s` or `10m`"))?;
    if d > std::time::Duration::from_secs(24 * 3600) {
        return Err(format!("`{text}` is longer than a day"));
    }
    Ok(d)
}
