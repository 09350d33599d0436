//! What the commands share: the failure type and exit codes, the progress printer,
//! the confirmation prompt, the engine's configuration, AWS clients, and loading and
//! building what a spec names.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anstream::{eprint, eprintln};

use super::Settings;
use crate::artifact::{self, Artifact, Workspace};
use crate::engine::{Config, Event, EventSink};
use crate::model::Address;
use crate::ops::OpsError;
use crate::plan::desired::Desired;
use crate::provider::Providers;
use crate::render;
use crate::spec;
use crate::state::State;

/// A command's failure: what to tell the user, and the exit code.
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl Failure {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure already explained above (diagnostics were printed): exit 1, say no more.
    pub(super) fn shown() -> Self {
        Self::new(String::new())
    }

    pub(super) fn with_code(mut self, code: i32) -> Self {
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

/// A command's exit code, or why it failed.
pub type Outcome = Result<i32, Failure>;

pub(super) fn paint_error() -> String {
    let s = anstyle::AnsiColor::Red.on_default().bold();
    format!("{s}error:{s:#}")
}

/// The spec as written and the resources it expands to; its problems are printed.
pub(super) fn load_full(s: &Settings) -> Result<(spec::LoadedSpec, Desired), Failure> {
    let path = s.spec_path()?;
    crate::plan::load_desired(path).map_err(|d| {
        if render::github::in_actions() {
            // On the pull request's diff, at each problem's line.
            anstream::print!("{}", render::github::diagnostics(&d));
        }
        eprint!("{}", render::diagnostics(&d));
        Failure::shown()
    })
}

/// AWS clients for `region` (us-east-1 when empty), or a plain message saying why there
/// are none (no credentials, nothing answering, credentials refused); `code_dir` is
/// where built zips are shipped from.
pub(super) async fn aws_clients(
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

/// The AWS providers for `region`.
pub(super) async fn aws_providers(region: &str) -> Result<Providers, Failure> {
    aws_clients(region, None)
        .await
        .map(|c| crate::aws::providers(&c))
}

/// Builds the spec's functions (or only `only`), checked and packed.
pub(super) fn build_code(
    s: &Settings,
    loaded: &spec::LoadedSpec,
    only: Option<&str>,
) -> Result<(Workspace, Vec<Artifact>), Failure> {
    let path = s.spec_path()?;
    let mut requests = crate::plan::desired::build_requests(&loaded.spec);
    if let Some(f) = only {
        requests.retain(|r| r.function == f);
        if requests.is_empty() {
            let known: Vec<&str> = loaded.spec.functions.keys().map(String::as_str).collect();
            return Err(Failure::new(format!(
                "no function `{f}` in {} (functions: {})",
                path.display(),
                known.join(", ")
            )));
        }
    }
    let started = Instant::now();
    let ws = Workspace::discover(path).map_err(|e| Failure::new(e.to_string()))?;
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

/// The engine's progress, printed on stderr: nothing with `--quiet`; a long wait every
/// 10 s (every poll with `--verbose`).
pub(super) fn progress(s: &Settings) -> EventSink {
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

pub(super) fn config(parallelism: u16) -> Config {
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

/// Asks on the terminal; refuses outright when nobody can answer.
pub(super) fn confirm(s: &Settings, question: &str, yes: bool) -> Result<(), Failure> {
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

/// The environment's spec, recorded state and clients, for the commands that work on
/// what is deployed (smoke, invoke, logs).
pub(super) async fn deployed(
    s: &Settings,
) -> Result<(spec::LoadedSpec, State, crate::aws::Clients), Failure> {
    let (loaded, desired) = load_full(s)?;
    let backend = s.backend()?;
    let state = backend
        .read(&desired.environment)?
        .filter(|st| !st.is_empty())
        .ok_or_else(|| {
            Failure::new(format!(
                "`{}` is not deployed (no state at {})\n  hint: run `deploy apply -e {}` first",
                desired.environment,
                backend.state_location(&desired.environment),
                desired.environment
            ))
        })?;
    let clients = aws_clients(&desired.region, None).await?;
    Ok((loaded, state, clients))
}

/// The deployed name of the spec's function `logical`.
pub(super) fn function_name(
    loaded: &spec::LoadedSpec,
    state: &State,
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
