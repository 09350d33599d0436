//! The command line, and the only place that prints: clap definitions (`args`),
//! settings resolved once from flags and the environment (`settings`), and one file
//! per command that reads its arguments, delegates to [`crate::ops`] and renders.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod apply;
mod args;
mod backend;
mod build;
mod common;
mod cost;
mod destroy;
mod env;
mod gc;
mod import;
mod invoke;
mod local;
mod logs;
mod output;
mod plan;
mod settings;
mod signals;
mod smoke;
mod state;
mod status;
mod unlock;
mod validate;

use anstream::{eprintln, print, println};

pub use args::*;
pub use common::{Failure, Outcome};
pub use settings::Settings;

use common::paint_error;

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
    let name = command_name(&cli.command);
    let result = runtime.block_on(dispatch(cli.command, &settings));
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                if crate::render::github::in_actions() {
                    // An annotation on the run's summary (spec problems were annotated
                    // at their lines already).
                    print!(
                        "{}",
                        crate::render::github::error(&format!("deploy {name}"), &f.message)
                    );
                }
                eprintln!("{} {}", paint_error(), f.message);
            }
            f.code
        }
    }
}

/// The subcommand's name as typed (`plan`, `state`), for messages.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Validate(_) => "validate",
        Command::Plan(_) => "plan",
        Command::Apply(_) => "apply",
        Command::Destroy(_) => "destroy",
        Command::Env(_) => "env",
        Command::Gc(_) => "gc",
        Command::Build(_) => "build",
        Command::Smoke(_) => "smoke",
        Command::Invoke(_) => "invoke",
        Command::Logs(_) => "logs",
        Command::Local(_) => "local",
        Command::Cost(_) => "cost",
        Command::Output(_) => "output",
        Command::Status(_) => "status",
        Command::Unlock => "unlock",
        Command::State(_) => "state",
        Command::Import(_) => "import",
        Command::Backend(_) => "backend",
        Command::Schema => "schema",
        Command::Completions { .. } => "completions",
    }
}

async fn dispatch(command: Command, s: &Settings) -> Outcome {
    match command {
        Command::Validate(a) => validate::run(s, a),
        Command::Plan(a) => plan::run(s, a).await,
        Command::Apply(a) => apply::run(s, a).await,
        Command::Destroy(a) => destroy::run(s, a).await,
        Command::Build(a) => build::run(s, a),
        Command::Gc(a) => gc::run(s, a).await,
        Command::Env(c) => env::run(s, c),
        Command::Smoke(a) => smoke::run(s, a).await,
        Command::Invoke(a) => invoke::run(s, a).await,
        Command::Logs(a) => logs::run(s, a).await,
        Command::Local(c) => local::run(c).await,
        Command::Cost(a) => cost::run(s, a),
        Command::Output(a) => output::run(s, a),
        Command::Status(a) => status::run(s, a.json),
        Command::Unlock => unlock::run(s),
        Command::State(c) => state::run(s, c).await,
        Command::Import(a) => import::run(s, a).await,
        Command::Backend(c) => backend::run(s, c).await,
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::spec::model::editor_schema())
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
