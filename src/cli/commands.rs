//! One function per command: parse settings, delegate to `ops`, render.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anstream::{eprint, eprintln, print, println};
use serde_json::{json, Value};

use super::{
    ApplyArgs, BuildArgs, Cli, Command, CostArgs, DestroyArgs, GcArgs, InvokeArgs, LocalCommand,
    LogsArgs, OutputArgs, PlanArgs, Settings, SmokeArgs,
};
use crate::artifact::{self, Artifact, Workspace};
use crate::engine::{Config, Event, EventSink};
use crate::model::{Action, Address};
use crate::ops::{self, OpsError};
use crate::plan::desired::Desired;
use crate::plan::{Operation, Plan};
use crate::provider::Providers;
use crate::render;
use crate::spec::{self, Diagnostics};
use crate::state::LocalBackend;

/// A command's failure: what to tell the user, and the exit code.
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        Failure::new(e.to_string())
    }
}

impl From<crate::state::StateError> for Failure {
    fn from(e: crate::state::StateError) -> Self {
        Failure::new(e.to_string())
    }
}

type Outcome = Result<i32, Failure>;

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let settings = Settings::from(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(dispatch(cli.command, &settings));
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{} {}", paint_error(), f.message);
            }
            f.code
        }
    }
}

fn paint_error() -> String {
    let s = anstyle::AnsiColor::Red.on_default().bold();
    format!("{s}error:{s:#}")
}

async fn dispatch(command: Command, s: &Settings) -> Outcome {
    match command {
        Command::Validate(a) => validate(s, a.json),
        Command::Plan(a) => plan(s, a).await,
        Command::Apply(a) => apply(s, a).await,
        Command::Destroy(a) => destroy(s, a).await,
        Command::Build(a) => build(s, a),
        Command::Gc(a) => gc(s, a).await,
        Command::Env(super::EnvCommand::Create {
            name,
            template,
            ttl,
        }) => env_create(s, &name, &template, &ttl),
        Command::Env(super::EnvCommand::List(a)) => env_list(s, a.json),
        Command::Smoke(a) => smoke(s, a).await,
        Command::Invoke(a) => invoke(s, a).await,
        Command::Logs(a) => logs(s, a).await,
        Command::Local(c) => local(c).await,
        Command::Cost(a) => cost(s, a),
        Command::Output(a) => output(s, a),
        Command::Status(a) => status(s, a.json),
        Command::Unlock => unlock(s),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&spec::model::editor_schema())
                    .expect("schema serializes")
            );
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "deploy", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// The spec file `-e` names, or a plain error saying what to pass.
fn spec_path(s: &Settings) -> Result<PathBuf, Failure> {
    let known = spec::list_environments(&s.environments_dir);
    let Some(env) = &s.env else {
        let list = if known.is_empty() {
            String::new()
        } else {
            format!(" (one of: {})", known.join(", "))
        };
        return Err(Failure::new(format!(
            "no environment given\n  hint: pass -e ENV{list}, or a path to a spec file"
        )));
    };
    let path = spec::resolve(env, &s.environments_dir);
    if !path.exists() {
        let hint = match spec::diag::did_you_mean(env, known.iter().map(String::as_str)) {
            Some(m) => format!("did you mean `{m}`?"),
            None if known.is_empty() => {
                format!("no environments found in {}/", s.environments_dir.display())
            }
            None => format!("known environments: {}", known.join(", ")),
        };
        return Err(Failure::new(format!(
            "no spec for environment `{env}`: {} does not exist\n  hint: {hint}",
            path.display()
        )));
    }
    Ok(path)
}

/// The environment's name for state and locks, without requiring a valid spec.
fn env_name(s: &Settings) -> Result<String, Failure> {
    let path = spec_path(s)?;
    if let (Some(loaded), _) = spec::check(&path) {
        if !loaded.spec.environment.is_empty() {
            return Ok(loaded.spec.environment);
        }
    }
    Ok(path
        .file_stem()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_default())
}

fn load(s: &Settings) -> Result<Desired, Failure> {
    load_full(s).map(|(_, d)| d)
}

/// The spec as written and the resources it expands to.
fn load_full(s: &Settings) -> Result<(spec::LoadedSpec, Desired), Failure> {
    let path = spec_path(s)?;
    match crate::plan::load_desired(&path) {
        Ok(both) => Ok(both),
        Err(d) => {
            eprint!("{}", render::diagnostics(&d));
            Err(Failure {
                message: String::new(),
                code: 1,
            })
        }
    }
}

fn diagnostics_json(d: &Diagnostics) -> Value {
    Value::Array(
        d.0.iter()
            .map(|x| json!({"file": x.pos.file, "line": x.pos.line, "column": x.pos.col, "message": x.message, "hint": x.hint}))
            .collect(),
    )
}

fn validate(s: &Settings, as_json: bool) -> Outcome {
    let path = spec_path(s)?;
    match crate::plan::load_desired(&path) {
        Ok((_, d)) => {
            if as_json {
                println!(
                    "{}",
                    json!({"valid": true, "file": path, "environment": d.environment, "resources": d.resources.len()})
                );
            } else {
                println!(
                    "{} is valid: {} resources in `{}`.",
                    path.display(),
                    d.resources.len(),
                    d.environment
                );
            }
            Ok(0)
        }
        Err(d) => {
            if as_json {
                println!(
                    "{}",
                    json!({"valid": false, "file": path, "problems": diagnostics_json(&d)})
                );
            } else {
                eprint!("{}", render::diagnostics(&d));
            }
            Ok(1)
        }
    }
}

/// The AWS providers for `region`, or a plain message saying why there are none
/// (no credentials, nothing answering, credentials refused).
async fn aws_providers(region: &str) -> Result<Providers, Failure> {
    aws_clients(region, None)
        .await
        .map(|c| crate::aws::providers(&c))
}

/// AWS clients for `region`; `code_dir` is where built zips are shipped from.
async fn aws_clients(
    region: &str,
    code_dir: Option<PathBuf>,
) -> Result<crate::aws::Clients, Failure> {
    let region = if region.is_empty() {
        "us-east-1"
    } else {
        region
    };
    match crate::aws::clients(region).await {
        Ok(mut c) => {
            c.code_dir = code_dir;
            Ok(c)
        }
        Err(e) => Err(Failure::new(e.to_string())),
    }
}

/// Builds the spec's functions (or only `only`), checked and packed.
fn build_code(
    s: &Settings,
    loaded: &spec::LoadedSpec,
    only: Option<&str>,
) -> Result<(Workspace, Vec<Artifact>), Failure> {
    let path = spec_path(s)?;
    let mut requests = crate::plan::desired::build_requests(&loaded.spec);
    if let Some(f) = only {
        requests.retain(|r| r.function == f);
        if requests.is_empty() {
            let known: Vec<&String> = loaded.spec.functions.keys().collect();
            return Err(Failure::new(format!(
                "no function `{f}` in {} (functions: {})",
                path.display(),
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let started = Instant::now();
    let ws = Workspace::discover(&path).map_err(|e| Failure::new(e.to_string()))?;
    if requests.is_empty() {
        return Ok((ws, Vec::new()));
    }
    if !s.quiet {
        eprintln!(
            "Building {} for Lambda provided.al2023 (cargo build --release)…",
            requests
                .iter()
                .map(|r| r.function.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let built =
        artifact::build(&ws, &requests, s.quiet).map_err(|e| Failure::new(e.to_string()))?;
    if !s.quiet {
        eprintln!("Built in {:.1} s.", started.elapsed().as_secs_f64());
    }
    Ok((ws, built))
}

/// Where zips are kept, when the workspace can be found (for `--no-build` and saved
/// plans, which ship what an earlier build left there).
fn known_code_dir(s: &Settings) -> Option<PathBuf> {
    let path = spec_path(s).ok()?;
    Workspace::discover(&path).ok().map(|w| w.code_dir())
}

fn progress(s: &Settings) -> EventSink {
    let (quiet, verbose) = (s.quiet, s.verbose);
    let last_wait: Mutex<HashMap<Address, Instant>> = Mutex::new(HashMap::new());
    Arc::new(move |e: &Event| {
        if quiet {
            return;
        }
        if let Event::Waiting { address, .. } = e {
            let mut seen = last_wait.lock().expect("progress lock");
            let due = seen
                .get(address)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if !due && !verbose {
                return;
            }
            seen.insert(address.clone(), Instant::now());
        }
        if let Some(line) = render::event(e, verbose) {
            eprintln!("{line}");
        }
    })
}

fn config(parallelism: u16) -> Config {
    // DEPLOY_WAIT_SCALE shrinks poll intervals and wait timeouts together, for an
    // emulator whose durations are real ones scaled down (its realistic profile).
    let wait_scale = std::env::var("DEPLOY_WAIT_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0 && *v <= 1.0)
        .unwrap_or(1.0);
    Config {
        parallelism: parallelism as usize,
        wait_scale,
        ..Config::default()
    }
}

fn targets(raw: &[String]) -> Vec<Address> {
    raw.iter().map(|t| Address::new(t.clone())).collect()
}

/// Providers for refreshing: none for `--no-refresh`; an empty set when there is no
/// state (nothing to read); otherwise the AWS providers.
/// Providers for a refreshing plan, and the account the credentials belong to. The
/// credentials are checked (one identity call) even when there is no state to
/// refresh: a plan that cannot be applied should not look like one that can.
/// Every subnet's zone letter names a zone this account has in the region.
async fn check_zones(
    clients: &crate::aws::Clients,
    loaded: &spec::LoadedSpec,
) -> Result<(), Failure> {
    let zones = crate::aws::ec2::zones(clients).await.map_err(|e| {
        Failure::new(format!(
            "cannot list the availability zones of {}: {e}",
            clients.region
        ))
    })?;
    let region = &clients.region;
    let letters = |z: &String| z.strip_prefix(region.as_str()).map(str::to_string);
    let have: Vec<String> = zones.iter().filter_map(letters).collect();
    let mut d = Diagnostics::default();
    let network = &loaded.spec.network;
    for (set, subnets) in [
        ("public_subnets", &network.public_subnets),
        ("private_subnets", &network.private_subnets),
    ] {
        for letter in subnets.keys().filter(|l| !have.contains(l)) {
            d.push(
                spec::Diagnostic::new(
                    loaded.sources.key(&format!("/network/{set}/{}", spec::yaml::escape(letter))),
                    format!(
                        "availability zone {region}{letter} does not exist in this account (it has {})",
                        have.iter().map(|l| format!("{region}{l}")).collect::<Vec<_>>().join(", ")
                    ),
                )
                .hint(format!(
                    "use one of the letters {}; zone letters differ by region and account",
                    have.join(", ")
                )),
            );
        }
    }
    if d.is_empty() {
        return Ok(());
    }
    eprint!("{}", render::diagnostics(&d.finish()));
    Err(Failure {
        message: String::new(),
        code: 1,
    })
}

async fn refresh_providers(
    s: &Settings,
    loaded: &spec::LoadedSpec,
    desired: &Desired,
    no_refresh: bool,
) -> Result<(Option<Providers>, Option<String>), Failure> {
    if no_refresh {
        return Ok((None, None));
    }
    let clients = aws_clients(&desired.region, None).await?;
    check_zones(&clients, loaded).await?;
    let account = Some(clients.account.clone());
    let backend = LocalBackend::new(&s.state_dir);
    let providers = match backend.read(&desired.environment)? {
        Some(state) if !state.is_empty() => crate::aws::providers(&clients),
        _ => Providers::new(),
    };
    Ok((Some(providers), account))
}

async fn plan(s: &Settings, a: PlanArgs) -> Outcome {
    let (loaded, mut desired) = load_full(s)?;
    if !a.no_build {
        let (_, built) = build_code(s, &loaded, None)?;
        for b in &built {
            desired.set_code(&b.function, &b.code_sha256);
        }
    }
    let (providers, account) = refresh_providers(s, &loaded, &desired, a.no_refresh).await?;
    let backend = LocalBackend::new(&s.state_dir);
    let planned = ops::plan(
        &backend,
        &desired,
        providers.as_ref(),
        &config(a.parallelism),
        &progress(s),
        &targets(&a.target),
    )
    .await?;
    let mut plan = planned.plan;
    plan.account = account;
    let siblings = siblings(s, &desired.environment);
    ops::attach_cost(&mut plan, Some(&desired), planned.state.as_ref(), &siblings);
    if let Some(out) = &a.out {
        write_plan(out, &plan)?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serializes")
        );
    } else {
        print!("{}", render::plan(&plan, false));
        if let Some(out) = &a.out {
            println!(
                "\nSaved the plan to {}. Apply exactly this with `deploy apply --plan {}`.",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if a.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

fn write_plan(path: &Path, plan: &Plan) -> Result<(), Failure> {
    let body = serde_json::to_vec_pretty(plan).expect("plan serializes");
    std::fs::write(path, body)
        .map_err(|e| Failure::new(format!("cannot write the plan to {}: {e}", path.display())))
}

/// Asks on the terminal; refuses outright when nobody can answer.
fn confirm(s: &Settings, question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !s.interactive {
        return Err(Failure::new("refusing to continue without confirmation: there is no terminal to ask on\n  hint: review the plan above and pass --yes"));
    }
    eprint!("{question} Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::new("cancelled; nothing was changed"))
    }
}

fn changes_count(plan: &Plan) -> usize {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .count()
}

async fn execute(
    s: &Settings,
    plan: &Plan,
    yes: bool,
    allow_data_loss: bool,
    parallelism: u16,
    code_dir: Option<PathBuf>,
) -> Outcome {
    print!("{}", render::plan(plan, allow_data_loss));
    if !plan.has_changes() {
        return Ok(0);
    }
    let refusals = ops::refusal_lines(plan, allow_data_loss);
    if !refusals.is_empty() {
        return Err(Failure::new("the plan would lose data or touch a protected resource (see above); nothing was changed"));
    }
    let providers = crate::aws::providers(&aws_clients(&plan.region, code_dir).await?);
    let verb = if plan.operation == Operation::Destroy {
        "Destroy"
    } else {
        "Apply"
    };
    confirm(
        s,
        &format!(
            "\n{verb} {} change(s) to `{}`?",
            changes_count(plan),
            plan.environment
        ),
        yes,
    )?;
    let config = config(parallelism);
    let signals = Signals::watch(config.interrupt.clone());
    let backend = LocalBackend::new(&s.state_dir);
    let mut run = Box::pin(ops::apply(
        &backend,
        plan,
        providers,
        config,
        progress(s),
        allow_data_loss,
    ));
    let result = tokio::select! {
        r = &mut run => r,
        in_flight = signals.abandoned() => {
            // Dropping the run stops its steps where they are; the lock goes with it.
            drop(run);
            signals.done();
            let steps: Vec<String> = in_flight.iter().map(|(a, op)| format!("{a} ({})", op.as_str())).collect();
            return Err(Failure::new(format!(
                "abandoned {} step(s) in flight: {}. State records every step that finished and the creates that were under way (the next run looks those up before creating again); the lock is released. Run the same command again to resume.",
                steps.len(),
                if steps.is_empty() { "none".to_string() } else { steps.join(", ") }
            ))
            .with_code(130));
        }
    };
    signals.done();
    let (_, report) = result?;
    println!("{}", render::report(&report, plan.operation));
    Ok(if report.was_interrupted() {
        130
    } else if report.ok() {
        0
    } else {
        1
    })
}

/// Ctrl-C and SIGTERM while an apply or destroy runs. The first stops the run: no new
/// step starts, waits stop (their resources stay recorded as pending), and steps in a
/// provider call finish it, which is named every 10 s. The second abandons those.
/// Once the run is over, a signal ends the process as usual.
struct Signals {
    abandon: Arc<tokio::sync::Notify>,
    interrupt: Arc<crate::engine::Interrupt>,
    running: Arc<std::sync::atomic::AtomicBool>,
}

impl Signals {
    fn watch(interrupt: Arc<crate::engine::Interrupt>) -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let this = Signals {
            abandon: Arc::default(),
            interrupt,
            running: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        let (abandon, interrupt, running) = (
            this.abandon.clone(),
            this.interrupt.clone(),
            this.running.clone(),
        );
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let mut seen = 0;
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "Ctrl-C",
                    _ = term.recv() => "SIGTERM",
                };
                if !running.load(std::sync::atomic::Ordering::SeqCst) {
                    std::process::exit(130);
                }
                seen += 1;
                if seen > 1 {
                    abandon.notify_one();
                    continue;
                }
                interrupt.stop();
                let in_flight = interrupt.in_flight();
                eprintln!(
                    "\n{name}: stopping. No new step starts; {} step(s) in flight finish their current call (Ctrl-C again abandons them).",
                    in_flight.len()
                );
                let (interrupt, running) = (interrupt.clone(), running.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        if !running.load(std::sync::atomic::Ordering::SeqCst) {
                            return;
                        }
                        let names: Vec<String> = interrupt
                            .in_flight()
                            .iter()
                            .map(|(a, op)| format!("{a} ({})", op.as_str()))
                            .collect();
                        if !names.is_empty() {
                            eprintln!(
                                "still finishing: {} — an AWS call in progress; stopping it midway could leave a resource half-made",
                                names.join(", ")
                            );
                        }
                    }
                });
            }
        });
        this
    }

    /// Resolves with the steps in flight when a second signal abandons them.
    async fn abandoned(&self) -> Vec<(Address, crate::engine::StepOp)> {
        self.abandon.notified().await;
        self.interrupt.in_flight()
    }

    /// The run is over: a signal now ends the process.
    fn done(&self) {
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn apply(s: &Settings, a: ApplyArgs) -> Outcome {
    let mut code_dir = None;
    let mut loaded_spec = None;
    let plan = match &a.plan {
        Some(file) => {
            let plan = ops::read_plan(file)?;
            if let Some(env) = &s.env {
                let name = env_name(s)?;
                if name != plan.environment {
                    return Err(Failure::new(format!(
                        "{} is a plan for `{}`, not `{env}`",
                        file.display(),
                        plan.environment
                    )));
                }
            }
            plan
        }
        None => {
            let (loaded, mut desired) = load_full(s)?;
            if !a.no_build {
                let (ws, built) = build_code(s, &loaded, None)?;
                for b in &built {
                    desired.set_code(&b.function, &b.code_sha256);
                }
                code_dir = Some(ws.code_dir());
            }
            let (providers, account) =
                refresh_providers(s, &loaded, &desired, a.no_refresh).await?;
            loaded_spec = Some(loaded);
            let backend = LocalBackend::new(&s.state_dir);
            let planned = ops::plan(
                &backend,
                &desired,
                providers.as_ref(),
                &config(a.parallelism),
                &progress(s),
                &targets(&a.target),
            )
            .await?;
            let mut plan = planned.plan;
            plan.account = account;
            let siblings = siblings(s, &desired.environment);
            ops::attach_cost(&mut plan, Some(&desired), planned.state.as_ref(), &siblings);
            plan
        }
    };
    if code_dir.is_none() {
        code_dir = known_code_dir(s);
    }
    let backend = LocalBackend::new(&s.state_dir);
    let before = backend.read(&plan.environment)?;
    let code = execute(
        s,
        &plan,
        a.yes,
        a.allow_data_loss,
        a.parallelism,
        code_dir.clone(),
    )
    .await?;
    if code != 0 || plan.operation != Operation::Apply {
        return Ok(code);
    }
    if !plan.has_changes() {
        if !s.quiet && !a.no_smoke {
            eprintln!("Nothing was rolled out, so the smoke checks did not run (`deploy smoke` runs them).");
        }
        return Ok(0);
    }
    // The spec as planned; a saved plan's spec is read now.
    let loaded = match loaded_spec {
        Some(l) => l,
        None => load_full(s)?.0,
    };
    let Some(after) = backend.read(&plan.environment)? else {
        return Ok(code);
    };
    let clients = aws_clients(&plan.region, code_dir.clone()).await?;
    first_runs(s, &loaded.spec, &plan, &after, &clients).await;
    if a.no_smoke {
        return Ok(0);
    }
    let report = run_smoke(&loaded.spec, &after, &clients, None).await;
    print!("{}", render::smoke(&report));
    if report.ok {
        return Ok(0);
    }
    // New code that fails its checks goes back to the version that served before.
    let rolled = rolled_out(before.as_ref(), &after);
    if rolled.is_empty() {
        return Err(Failure::new(
            "smoke checks failed (see above); no code was rolled out by this apply, so nothing was rolled back",
        ));
    }
    let _lock = backend.lock(&plan.environment, "rollback")?;
    let mut state = backend.read(&plan.environment)?.unwrap_or(after);
    let mut lines = Vec::new();
    let mut failed = false;
    for (address, name, from, to) in &rolled {
        match crate::aws::lambda::point_alias(&clients, name, from).await {
            Ok(()) => {
                if let Some(r) = state.resources.get_mut(address) {
                    r.outputs.insert("version".into(), json!(from));
                }
                lines.push(format!(
                    "rolled back {address} ({name}): the live alias is on version {from} again (version {to} failed the checks)"
                ));
            }
            Err(e) => {
                failed = true;
                lines.push(format!("could not roll back {address}: {e}"));
            }
        }
    }
    backend.write(&mut state)?;
    for l in &lines {
        eprintln!("{l}");
    }
    Err(Failure::new(if failed {
        "smoke checks failed after a code rollout and the rollback did not complete (see above)"
            .to_string()
    } else {
        format!(
            "smoke checks failed after a code rollout; rolled back {} function(s) to the previous version",
            rolled.len()
        )
    }))
}

/// Runs, once and asynchronously, the function of every schedule this apply created
/// whose spec asks for it (`run_after_apply`), so the environment does not wait a whole
/// period for the first run. A failure to start it is a warning: the schedule stands.
async fn first_runs(
    s: &Settings,
    spec: &spec::model::Spec,
    plan: &Plan,
    state: &crate::state::State,
    clients: &crate::aws::Clients,
) {
    for (name, schedule) in &spec.schedules {
        let created = plan.changes.iter().any(|c| {
            c.address.as_str() == format!("schedule.{name}")
                && matches!(
                    c.action,
                    Action::Create | Action::DeleteBeforeCreate | Action::CreateBeforeDelete
                )
        });
        if !(created && schedule.run_after_apply && schedule.enabled) {
            continue;
        }
        let Some(function) = state
            .resources
            .get(&Address::new(format!("function.{}", schedule.function)))
            .map(|r| r.id.clone())
        else {
            continue;
        };
        match crate::aws::lambda::invoke(clients, &function, b"{}".to_vec(), true, false).await {
            Ok(_) if !s.quiet => eprintln!(
                "Started {} once now: schedule {name} was just created ({} from here on).",
                schedule.function, schedule.expression
            ),
            Ok(_) => {}
            Err(e) => eprintln!(
                "warning: schedule {name} was created, but running {} once now failed: {e}",
                schedule.function
            ),
        }
    }
}

/// Functions whose live version this apply moved: (address, name, previous, new).
fn rolled_out(
    before: Option<&crate::state::State>,
    after: &crate::state::State,
) -> Vec<(Address, String, String, String)> {
    let Some(before) = before else {
        return Vec::new();
    };
    after
        .resources
        .iter()
        .filter(|(_, r)| r.kind == crate::model::Kind::LambdaFunction)
        .filter_map(|(address, r)| {
            let old = before.resources.get(address)?;
            let from = old.outputs.get("version")?.as_str()?;
            let to = r.outputs.get("version")?.as_str()?;
            (from != to && old.id == r.id).then(|| {
                (
                    address.clone(),
                    r.id.clone(),
                    from.to_string(),
                    to.to_string(),
                )
            })
        })
        .collect()
}

/// Runs the smoke checks against `url`, or the API's invoke URL.
async fn run_smoke(
    spec: &spec::model::Spec,
    state: &crate::state::State,
    clients: &crate::aws::Clients,
    url: Option<String>,
) -> crate::smoke::Report {
    let target = url.ok_or(()).or_else(|()| {
        crate::smoke::api_url(state)
            .ok_or_else(|| "the environment's state has no API invoke URL".to_string())
    });
    crate::smoke::run_on(clients, spec, state, target).await
}

/// Everything tagged with `environment`, and the reasons any of it may not be swept
/// (not tagged ephemeral, or protected).
async fn sweep_scan(
    providers: &Providers,
    environment: &str,
) -> Result<(Vec<ops::Found>, Vec<String>), Failure> {
    let want = BTreeMap::from([("deploy:environment".to_string(), environment.to_string())]);
    let found = ops::discover(providers, &want).await?;
    let refused = found
        .iter()
        .filter_map(|f| {
            let what = format!(
                "{} {} ({})",
                f.kind,
                f.observed.id,
                f.tag("deploy:address").unwrap_or("not deploy's")
            );
            if f.tag("deploy:protected") == Some("true") {
                Some(format!("{what}: tagged deploy:protected"))
            } else if f.tag("deploy:ephemeral") != Some("true") {
                Some(format!("{what}: not tagged deploy:ephemeral=true"))
            } else {
                None
            }
        })
        .collect();
    Ok((found, refused))
}

async fn gc(s: &Settings, a: GcArgs) -> Outcome {
    let region = a.region.clone().unwrap_or_else(|| "us-east-1".into());
    let providers = aws_providers(&region).await?;
    let want = BTreeMap::from([("deploy:ephemeral".to_string(), "true".to_string())]);
    let found = ops::discover(&providers, &want).await?;
    // Environment → (earliest expiry, resources).
    let mut envs: BTreeMap<String, (Option<std::time::SystemTime>, usize)> = BTreeMap::new();
    for f in &found {
        let Some(env) = f.tag("deploy:environment") else {
            continue;
        };
        let expiry = f
            .tag("deploy:expires-at")
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let e = envs.entry(env.to_string()).or_insert((expiry, 0));
        e.0 = match (e.0, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        e.1 += 1;
    }
    let now = std::time::SystemTime::now();
    let mut failed = 0;
    if envs.is_empty() {
        println!("No ephemeral environments in {region}.");
    }
    for (env, (expiry, count)) in &envs {
        let when = expiry
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_else(|| "never (no deploy:expires-at tag)".into());
        if !expiry.is_some_and(|t| t <= now) {
            println!("keep     {env}: {count} resource(s), expires {when}");
            continue;
        }
        if a.dry_run {
            println!("would destroy {env}: {count} resource(s), expired {when}");
            continue;
        }
        println!("destroy  {env}: {count} resource(s), expired {when}");
        // Found by its tags alone: no spec file is read.
        let args = DestroyArgs {
            yes: true,
            sweep: true,
            allow_data_loss: false,
            parallelism: a.parallelism,
        };
        let code = Box::pin(destroy_env(s, env, &region, &args)).await;
        match code {
            Ok(0) => println!("destroyed {env}"),
            Ok(c) => {
                failed += 1;
                println!("FAILED   {env}: destroy exited {c}");
            }
            Err(f) => {
                failed += 1;
                println!("FAILED   {env}: {}", f.message);
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Whether every resource recorded for the environment carries the ephemeral tag.
fn recorded_ephemeral(state: Option<&crate::state::State>) -> bool {
    state.is_some_and(|st| {
        !st.resources.is_empty()
            && st.resources.values().all(|r| {
                r.inputs
                    .get("tags")
                    .and_then(|t| t.get("deploy:ephemeral"))
                    .and_then(Value::as_str)
                    == Some("true")
            })
    })
}

fn env_create(s: &Settings, name: &str, template: &str, ttl: &str) -> Outcome {
    let slug = |x: &str| {
        x.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && x.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !x.ends_with('-')
            && !x.contains("--")
    };
    if !slug(name) {
        return Err(Failure::new(format!(
            "`{name}` is not a usable environment name\n  hint: lowercase letters, digits and single hyphens, starting with a letter (e.g. `pr-42`)"
        )));
    }
    let ttl_d = humantime::parse_duration(ttl).map_err(|e| {
        Failure::new(format!(
            "--ttl `{ttl}` is not a duration ({e})\n  hint: for example `24h`, `3d` or `90m`"
        ))
    })?;
    if ttl_d < Duration::from_secs(60) || ttl_d > Duration::from_secs(30 * 86400) {
        return Err(Failure::new(format!(
            "--ttl `{ttl}` must be between 1 minute and 30 days"
        )));
    }
    let dir = &s.environments_dir;
    let target = dir.join(format!("{name}.yaml"));
    if target.exists() {
        let kind = match spec::check(&target).0 {
            Some(l) if l.spec.ephemeral.is_some() => "an ephemeral environment",
            _ => "an existing environment that is not ephemeral; choose another name",
        };
        return Err(Failure::new(format!(
            "{} already exists: `{name}` is {kind}",
            target.display()
        )));
    }
    let template_path = dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("templates/environments")
        .join(format!("{template}.yaml"));
    let body = std::fs::read_to_string(&template_path).map_err(|e| {
        Failure::new(format!(
            "cannot read the template {}: {e}",
            template_path.display()
        ))
    })?;
    let now = std::time::SystemTime::now();
    let rendered = body
        .replace("{{name}}", name)
        .replace(
            "{{created_at}}",
            &humantime::format_rfc3339_seconds(now).to_string(),
        )
        .replace(
            "{{expires_at}}",
            &humantime::format_rfc3339_seconds(now + ttl_d).to_string(),
        );
    // Written beside the others under a temporary name, checked, then renamed: an
    // invalid result (a name too long once prefixed…) leaves nothing behind.
    let tmp = dir.join(format!(".{name}.yaml.tmp"));
    std::fs::write(&tmp, &rendered)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", tmp.display())))?;
    let checked = crate::plan::load_desired(&tmp);
    let desired = match checked {
        Ok((_, d)) => d,
        Err(d) => {
            let _ = std::fs::remove_file(&tmp);
            eprint!("{}", render::diagnostics(&d));
            return Err(Failure::new(format!(
                "the template `{template}` does not make a valid environment named `{name}` (see above); nothing was written"
            )));
        }
    };
    std::fs::rename(&tmp, &target)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", target.display())))?;
    println!(
        "Created {} ({} resources, ephemeral, expires {}).\nNext: deploy apply -e {name}; remove it with deploy destroy -e {name}.",
        target.display(),
        desired.resources.len(),
        humantime::format_rfc3339_seconds(now + ttl_d)
    );
    Ok(0)
}

fn env_list(s: &Settings, as_json: bool) -> Outcome {
    let backend = LocalBackend::new(&s.state_dir);
    let now = std::time::SystemTime::now();
    let mut rows = Vec::new();
    for name in spec::list_environments(&s.environments_dir) {
        let path = s.environments_dir.join(format!("{name}.yaml"));
        let Some(loaded) = spec::check(&path).0 else {
            continue;
        };
        let environment = if loaded.spec.environment.is_empty() {
            name.clone()
        } else {
            loaded.spec.environment.clone()
        };
        let state = backend.read(&environment).ok().flatten();
        let eph = loaded.spec.ephemeral.as_ref();
        let created = eph
            .and_then(|e| e.created_at.as_deref())
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let expires = eph.and_then(|e| humantime::parse_rfc3339(&e.expires_at).ok());
        rows.push(json!({
            "environment": environment,
            "file": path,
            "kind": if eph.is_some() { "ephemeral" } else { "standard" },
            "created_at": eph.and_then(|e| e.created_at.clone()),
            "age_s": created.and_then(|c| now.duration_since(c).ok()).map(|d| d.as_secs()),
            "expires_at": eph.map(|e| e.expires_at.clone()),
            "expired": expires.map(|x| x <= now),
            "resources": state.as_ref().map(|st| st.resources.len()).unwrap_or(0),
            "retained": state.as_ref().map(|st| st.retained.iter().map(|r| json!({"kind": r.kind, "name": r.name, "source": r.source})).collect::<Vec<_>>()).unwrap_or_default(),
        }));
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return Ok(0);
    }
    println!(
        "{:<16} {:<10} {:>8} {:<22} {:>9}  kept",
        "environment", "kind", "age", "expires", "resources"
    );
    for r in &rows {
        let age = r["age_s"]
            .as_u64()
            .map(|a| humantime::format_duration(Duration::from_secs(a / 60 * 60)).to_string())
            .unwrap_or_else(|| "-".into());
        let expires = match (r["expires_at"].as_str(), r["expired"].as_bool()) {
            (Some(e), Some(true)) => format!("{e} (expired)"),
            (Some(e), _) => e.to_string(),
            _ => "-".into(),
        };
        let kept: Vec<&str> = r["retained"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k["name"].as_str()).collect())
            .unwrap_or_default();
        println!(
            "{:<16} {:<10} {:>8} {:<22} {:>9}  {}",
            r["environment"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            if age.is_empty() { "0m".into() } else { age },
            expires,
            r["resources"],
            if kept.is_empty() {
                "-".to_string()
            } else {
                format!("final snapshot {}", kept.join(", "))
            }
        );
    }
    Ok(0)
}

fn build(s: &Settings, a: BuildArgs) -> Outcome {
    let (loaded, _) = load_full(s)?;
    let (_, built) = build_code(s, &loaded, a.function.as_deref())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&built).expect("artifacts serialize")
        );
    } else {
        for b in &built {
            println!(
                "{:<12} {:>10} bytes  {}  {}",
                b.function,
                b.bytes,
                b.code_sha256,
                b.path.display()
            );
        }
    }
    Ok(0)
}

/// The environment's spec, recorded state and clients, for the commands that work on
/// what is deployed (smoke, invoke, logs).
async fn deployed(
    s: &Settings,
) -> Result<(spec::LoadedSpec, crate::state::State, crate::aws::Clients), Failure> {
    let (loaded, desired) = load_full(s)?;
    let backend = LocalBackend::new(&s.state_dir);
    let state = backend
        .read(&desired.environment)?
        .filter(|st| !st.is_empty())
        .ok_or_else(|| {
            Failure::new(format!(
                "`{}` is not deployed (no state in {})\n  hint: run `deploy apply -e {}` first",
                desired.environment,
                s.state_dir.display(),
                desired.environment
            ))
        })?;
    let clients = aws_clients(&desired.region, None).await?;
    Ok((loaded, state, clients))
}

async fn smoke(s: &Settings, a: SmokeArgs) -> Outcome {
    let (loaded, state, clients) = deployed(s).await?;
    let report = run_smoke(&loaded.spec, &state, &clients, a.url).await;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", render::smoke(&report));
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// The deployed name of the spec's function `logical`.
fn function_name(
    loaded: &spec::LoadedSpec,
    state: &crate::state::State,
    logical: &str,
) -> Result<String, Failure> {
    if !loaded.spec.functions.contains_key(logical) {
        let known: Vec<&str> = loaded.spec.functions.keys().map(String::as_str).collect();
        return Err(Failure::new(format!(
            "the spec has no function `{logical}` (functions: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    state
        .resources
        .get(&Address::new(format!("function.{logical}")))
        .map(|r| r.id.clone())
        .ok_or_else(|| {
            Failure::new(format!(
                "function `{logical}` is not deployed yet\n  hint: run `deploy apply -e {}`",
                state.environment
            ))
        })
}

async fn invoke(s: &Settings, a: InvokeArgs) -> Outcome {
    let payload = match a.payload.as_deref() {
        None => b"{}".to_vec(),
        Some(p) => match p.strip_prefix('@') {
            Some(file) => std::fs::read(file)
                .map_err(|e| Failure::new(format!("cannot read the payload from {file}: {e}")))?,
            None => p.as_bytes().to_vec(),
        },
    };
    if let Err(e) = serde_json::from_slice::<Value>(&payload) {
        return Err(Failure::new(format!(
            "the payload is not JSON: {e}\n  hint: --payload '{{\"key\": \"value\"}}' or --payload @event.json"
        )));
    }
    let (loaded, state, clients) = deployed(s).await?;
    let name = function_name(&loaded, &state, &a.function)?;
    let inv = crate::aws::lambda::invoke(&clients, &name, payload, a.asynchronous, a.logs)
        .await
        .map_err(Failure::new)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inv).expect("invocation serializes")
        );
    } else {
        if let Some(tail) = &inv.log_tail {
            eprintln!("{}", tail.trim_end());
        }
        if a.asynchronous {
            eprintln!("Queued an invocation of {name}:live (HTTP {}).", inv.status);
        } else {
            let shown = serde_json::from_str::<Value>(&inv.payload)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| inv.payload.clone());
            println!("{shown}");
        }
        if let Some(error) = &inv.function_error {
            eprintln!(
                "{} {name} version {} failed ({error}); the payload above is its error",
                paint_error(),
                inv.executed_version.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(if inv.function_error.is_some() { 1 } else { 0 })
}

async fn logs(s: &Settings, a: LogsArgs) -> Outcome {
    let since = humantime::parse_duration(&a.since).map_err(|e| {
        Failure::new(format!(
            "--since `{}` is not a duration ({e}); e.g. 10m, 2h, 1d",
            a.since
        ))
    })?;
    let (loaded, state, clients) = deployed(s).await?;
    let functions: Vec<(String, String)> = match &a.function {
        Some(f) => vec![(f.clone(), function_name(&loaded, &state, f)?)],
        None => loaded
            .spec
            .functions
            .keys()
            .filter_map(|f| Some((f.clone(), function_name(&loaded, &state, f).ok()?)))
            .collect(),
    };
    let width = functions.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    let now_ms = |d: Duration| {
        std::time::SystemTime::now()
            .checked_sub(d)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    };
    let mut from = now_ms(since);
    let mut seen = std::collections::HashSet::new();
    loop {
        let mut batch = Vec::new();
        for (logical, name) in &functions {
            let group = crate::aws::logs::function_group(name);
            for e in crate::aws::logs::events(&clients, &group, from, a.filter.as_deref())
                .await
                .map_err(Failure::new)?
            {
                if seen.insert(e.id.clone()) {
                    batch.push((logical, e));
                }
            }
        }
        batch.sort_by_key(|x| x.1.timestamp);
        for (logical, e) in &batch {
            from = from.max(e.timestamp);
            if a.json {
                println!(
                    "{}",
                    json!({"function": logical, "timestamp": e.timestamp, "stream": e.stream, "message": e.message})
                );
            } else {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(e.timestamp.max(0) as u64);
                let prefix = if functions.len() > 1 {
                    format!("{logical:width$}  ")
                } else {
                    String::new()
                };
                println!(
                    "{} {prefix}{}",
                    humantime::format_rfc3339_millis(at),
                    e.message
                );
            }
        }
        if !a.follow {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(0)
}

async fn local(c: LocalCommand) -> Outcome {
    match c {
        LocalCommand::Start(a) => {
            let mut args = Vec::new();
            if a.hostile {
                args.push("--hostile".to_string());
            }
            for (flag, value) in [
                ("--profile", a.profile.clone()),
                ("--scale", a.scale.map(|v| v.to_string())),
                ("--latency-ms", a.latency_ms.map(|v| v.to_string())),
                ("--schedule-scale", a.schedule_scale.map(|v| v.to_string())),
                ("--seed", a.seed.map(|v| v.to_string())),
                ("--lose-responses", a.lose_responses.map(|v| v.to_string())),
            ] {
                if let Some(v) = value {
                    args.extend([flag.to_string(), v]);
                }
            }
            let running = crate::local::start(a.port, &args, &mut |line| eprintln!("{line}"))
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            eprintln!(
                "The local cloud runs on {} (pid {}, log {}). Aim deploy and AWS SDKs at it with:",
                running.endpoint,
                running.pid,
                running.log.display()
            );
            print!("{}", running.exports());
            Ok(0)
        }
        LocalCommand::Stop(a) => {
            let said = crate::local::stop(a.port)
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            eprintln!("{said}");
            Ok(0)
        }
        LocalCommand::Status(a) => match crate::local::status(a.port).await {
            Some(text) => {
                println!("{text}");
                Ok(0)
            }
            None => {
                println!("The local cloud is not running on port {}.", a.port);
                Ok(3)
            }
        },
    }
}

async fn destroy(s: &Settings, a: DestroyArgs) -> Outcome {
    // A sweep works from tags: the spec file may be gone too.
    let (environment, region) = match (spec_path(s), a.sweep, &s.env) {
        (Ok(path), _, _) => (
            env_name(s)?,
            spec::check(&path)
                .0
                .map(|l| l.spec.region)
                .unwrap_or_default(),
        ),
        (Err(_), true, Some(name)) if !name.contains('/') && !name.ends_with(".yaml") => (
            name.clone(),
            std::env::var("AWS_REGION").unwrap_or_default(),
        ),
        (Err(e), _, _) => return Err(e),
    };
    destroy_env(s, &environment, &region, &a).await
}

/// Destroys `environment` in `region` (after a sweep by tags when asked).
async fn destroy_env(s: &Settings, environment: &str, region: &str, a: &DestroyArgs) -> Outcome {
    let environment = environment.to_string();
    let region = region.to_string();
    if a.sweep {
        let providers = aws_providers(&region).await?;
        let (found, refused) = sweep_scan(&providers, &environment).await?;
        if !refused.is_empty() {
            return Err(Failure::new(format!(
                "refusing to sweep `{environment}`: {} resource(s) tagged with it are not ephemeral or are protected:\n  {}\n  hint: sweep removes ephemeral environments only; destroy others with `deploy destroy` from their state",
                refused.len(),
                refused.join("\n  ")
            )));
        }
        let project = found
            .iter()
            .find_map(|f| f.tag("deploy:project").map(String::from))
            .unwrap_or_default();
        let backend = LocalBackend::new(&s.state_dir);
        let added = ops::record_found(&backend, &project, &environment, &found)?;
        if !s.quiet {
            eprintln!(
                "Sweep: {} resource(s) tagged deploy:environment={environment}; {} not in state were added to it: {}",
                found.len(),
                added.len(),
                if added.is_empty() {
                    "-".to_string()
                } else {
                    added.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                }
            );
        }
    }
    let backend = LocalBackend::new(&s.state_dir);
    let clients = aws_clients(&region, None).await?;
    let providers = match backend.read(&environment)? {
        Some(state) if !state.is_empty() => Some(crate::aws::providers(&clients)),
        _ => Some(Providers::new()),
    };
    let planned = ops::plan_destroy(
        &backend,
        &environment,
        &region,
        providers.as_ref(),
        &config(a.parallelism),
        &progress(s),
    )
    .await?;
    let mut plan = planned.plan;
    plan.account = Some(clients.account.clone());
    ops::attach_cost(&mut plan, None, planned.state.as_ref(), &[]);
    // An ephemeral environment exists to be thrown away: its data-loss guard is off
    // (protected resources still refuse). Decided from the recorded tags, not the file.
    let ephemeral = recorded_ephemeral(planned.state.as_ref());
    if ephemeral && !a.allow_data_loss && !s.quiet {
        eprintln!("`{environment}` is ephemeral: destroying it needs no --allow-data-loss.");
    }
    let code = execute(
        s,
        &plan,
        a.yes,
        a.allow_data_loss || ephemeral,
        a.parallelism,
        None,
    )
    .await?;
    if code == 0 && plan.has_changes() {
        let project = planned
            .state
            .as_ref()
            .map(|st| st.project.clone())
            .unwrap_or_default();
        kept_snapshots(s, &clients, &project, &environment, a.sweep || ephemeral).await?;
    }
    Ok(code)
}

/// After a destroy: the environment's caches' final snapshots. An ephemeral
/// environment's (or a sweep's) are deleted; otherwise they are kept, recorded in the
/// state (`env list` shows them) and named, since they are still billed.
async fn kept_snapshots(
    s: &Settings,
    clients: &crate::aws::Clients,
    project: &str,
    environment: &str,
    remove: bool,
) -> Result<(), Failure> {
    if project.is_empty() {
        return Ok(());
    }
    let prefix = format!("{project}-{environment}-");
    let found = crate::aws::elasticache::snapshots(clients, &prefix)
        .await
        .map_err(Failure::new)?;
    let backend = LocalBackend::new(&s.state_dir);
    let _lock = backend.lock(environment, "destroy")?;
    let mut state = backend
        .read(environment)?
        .unwrap_or_else(|| crate::state::State::new(project, environment));
    if remove {
        for (name, _, _) in &found {
            crate::aws::elasticache::delete_snapshot(clients, name)
                .await
                .map_err(Failure::new)?;
            if !s.quiet {
                eprintln!("deleted the final cache snapshot {name} (the environment is ephemeral)");
            }
        }
        state.retained.clear();
    } else {
        state.retained = found
            .iter()
            .map(|(name, cache, created)| crate::state::Retained {
                kind: "cache_snapshot".into(),
                name: name.clone(),
                source: cache.clone(),
                created_at: created.clone(),
            })
            .collect();
        for (name, cache, _) in &found {
            eprintln!(
                "kept the final snapshot {name} of {cache}: it is billed until deleted (restore from it, or delete it in the ElastiCache console or with `aws elasticache delete-serverless-cache-snapshot`)"
            );
        }
    }
    backend.write(&mut state)?;
    Ok(())
}

/// The project's other environments, next to the one being planned.
fn siblings(
    s: &Settings,
    environment: &str,
) -> Vec<(String, Vec<(crate::model::Kind, crate::model::Attrs)>)> {
    let dir = spec_path(s)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| s.environments_dir.clone());
    ops::sibling_resources(&dir, environment)
}

fn cost(s: &Settings, a: CostArgs) -> Outcome {
    let desired = load(s)?;
    let mut assumptions = desired.cost_assumptions;
    for (flag, value, target) in [
        (
            "--requests-per-day",
            a.requests_per_day,
            &mut assumptions.requests_per_day,
        ),
        (
            "--kb-per-request",
            a.kb_per_request,
            &mut assumptions.kb_per_request,
        ),
        (
            "--nat-gb-per-month",
            a.nat_gb_per_month,
            &mut assumptions.nat_gb_per_month,
        ),
        (
            "--function-duration-ms",
            a.function_duration_ms,
            &mut assumptions.function_duration_ms,
        ),
    ] {
        if let Some(v) = value {
            if !v.is_finite() || v < 0.0 {
                return Err(Failure::new(format!(
                    "{flag} must be a number of zero or more, not {v}"
                )));
            }
            *target = v;
        }
    }
    let estimate = ops::estimate_desired(&desired, &assumptions);
    let priced: Vec<crate::cost::Priced> = desired
        .resources
        .values()
        .map(|r| crate::cost::Priced {
            address: &r.address,
            kind: r.kind,
            inputs: &r.inputs,
            outputs: None,
        })
        .collect();
    let warnings = crate::cost::warnings(
        &desired.environment,
        &priced,
        &siblings(s, &desired.environment),
    );
    if a.json {
        let mut v = serde_json::to_value(&estimate).expect("estimate serializes");
        v["warnings"] = json!(warnings);
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("estimate serializes")
        );
    } else {
        print!("{}", render::estimate(&estimate, &warnings));
    }
    Ok(0)
}

fn recorded_outputs(s: &Settings) -> Result<(String, BTreeMap<String, Value>), Failure> {
    let environment = env_name(s)?;
    let state = LocalBackend::new(&s.state_dir).read(&environment)?;
    let mut out = BTreeMap::new();
    for (address, r) in state.iter().flat_map(|st| st.resources.iter()) {
        for (k, v) in &r.outputs {
            out.insert(format!("{address}.{k}"), v.clone());
        }
    }
    Ok((environment, out))
}

fn output(s: &Settings, a: OutputArgs) -> Outcome {
    let (environment, outputs) = recorded_outputs(s)?;
    if let Some(name) = &a.name {
        let Some(v) = outputs.get(name) else {
            let hint = spec::diag::did_you_mean(name, outputs.keys().map(String::as_str))
                .map(|m| format!("\n  hint: did you mean `{m}`?"))
                .unwrap_or_default();
            return Err(Failure::new(format!(
                "`{environment}` has no output `{name}`{hint}"
            )));
        };
        match (a.json, v) {
            (false, Value::String(text)) => println!("{text}"),
            _ => println!("{v}"),
        }
        return Ok(0);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outputs).expect("outputs serialize")
        );
    } else if outputs.is_empty() {
        println!(
            "`{environment}` has no recorded outputs; run `deploy apply -e {environment}` first."
        );
    } else {
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in &outputs {
            let text = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            println!("{k:<width$} = {text}");
        }
    }
    Ok(0)
}

fn status(s: &Settings, as_json: bool) -> Outcome {
    let environment = env_name(s)?;
    let backend = LocalBackend::new(&s.state_dir);
    let state = backend.read(&environment)?;
    let lock = backend.lock_info(&environment)?;
    let by_kind: BTreeMap<String, usize> =
        state
            .iter()
            .flat_map(|st| st.resources.values())
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.kind.to_string()).or_default() += 1;
                m
            });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "environment": environment,
                "state_file": backend.path(&environment),
                "applied": state.is_some(),
                "serial": state.as_ref().map(|s| s.serial),
                "lineage": state.as_ref().map(|s| s.lineage),
                "resources": state.as_ref().map(|s| s.resources.len()).unwrap_or(0),
                "by_kind": by_kind,
                "pending_creates": state.as_ref().map(|s| s.intents.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                "deposed": state.as_ref().map(|s| s.deposed.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                "lock": lock,
            }))
            .expect("status serializes")
        );
        return Ok(0);
    }
    match &state {
        None => println!(
            "`{environment}` has no state at {}: never applied.",
            backend.path(&environment).display()
        ),
        Some(st) => {
            println!(
                "`{environment}`: {} resources recorded (state serial {}, lineage {}).",
                st.resources.len(),
                st.serial,
                st.lineage
            );
            for (k, n) in &by_kind {
                println!("  {k:<20} {n}");
            }
            if !st.intents.is_empty() {
                let a: Vec<&str> = st.intents.keys().map(Address::as_str).collect();
                println!(
                    "Interrupted creates (adopted on the next apply): {}",
                    a.join(", ")
                );
            }
            if !st.deposed.is_empty() {
                let a: Vec<&str> = st.deposed.keys().map(Address::as_str).collect();
                println!("Old objects awaiting deletion: {}", a.join(", "));
            }
        }
    }
    match lock {
        Some(l) => println!(
            "Locked by {}@{} (pid {}, `{}`) since {}{}.",
            l.owner,
            l.host,
            l.pid,
            l.operation,
            humantime::format_rfc3339_seconds(l.started_at),
            if l.holder_alive() {
                ""
            } else {
                "; that process is gone, so `deploy unlock` is safe"
            }
        ),
        None => println!("Not locked."),
    }
    Ok(0)
}

fn unlock(s: &Settings) -> Outcome {
    let environment = env_name(s)?;
    match LocalBackend::new(&s.state_dir).unlock(&environment)? {
        Some(l) => println!(
            "Released the lock on `{environment}` held by {}@{} (pid {}, `{}`).",
            l.owner, l.host, l.pid, l.operation
        ),
        None => println!("`{environment}` was not locked."),
    }
    Ok(0)
}
