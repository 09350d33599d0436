//! `deploy apply`: plan (or read a saved plan), show it, ask, apply it, then roll the
//! code out (first runs, smoke checks, rollback on failure). Also how any plan is
//! shown, confirmed and run under signal handling (`destroy` runs its plan so too).

use std::path::PathBuf;

use anstream::{eprintln, print, println};

use super::common::{aws_clients, build_code, config, confirm, load_full, progress};
use super::common::{Failure, Outcome};
use super::signals::Signals;
use super::{ApplyArgs, Settings};
use crate::artifact::Workspace;
use crate::model::Action;
use crate::ops;
use crate::ops::rollout::{self, Verdict};
use crate::plan::{Operation, Plan};
use crate::render;
use crate::state::{Backend, LockGuard, State};

pub(super) async fn run(s: &Settings, a: ApplyArgs) -> Outcome {
    let mut code_dir = None;
    let mut loaded_spec = None;
    let mut held = None;
    let backend;
    let plan = match &a.plan {
        Some(file) => {
            let plan = ops::read_plan(file)?;
            if let Some(env) = &s.env {
                let name = s.env_name()?;
                if name != plan.environment {
                    return Err(Failure::new(format!(
                        "{} is a plan for `{}`, not `{env}`",
                        file.display(),
                        plan.environment
                    )));
                }
            }
            backend = s.backend()?;
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
            // One lock from the plan to the end of its apply: nothing can change
            // between them, and the state the plan read is the state applied to.
            backend = s.backend_for(Some(&loaded))?;
            let planned = super::plan::make(
                s,
                &backend,
                &loaded,
                &desired,
                a.no_refresh,
                a.parallelism,
                &a.target,
                ops::Locking::ForApply,
            )
            .await?;
            loaded_spec = Some(loaded);
            held = planned.lock.map(|lock| Held {
                lock,
                state: planned.state,
            });
            planned.plan
        }
    };
    if code_dir.is_none() {
        // Where an earlier build left the zips (for `--no-build` and saved plans).
        code_dir = s
            .spec_path()
            .ok()
            .and_then(|p| Workspace::discover(p).ok())
            .map(|w| w.code_dir());
    }
    let Executed {
        code,
        before,
        after,
    } = execute(
        s,
        &backend,
        &plan,
        held,
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
    let Some(after) = after else {
        return Ok(code);
    };
    let clients = aws_clients(&plan.region, code_dir).await?;
    let quiet = s.quiet;
    let show = |e: &rollout::Event| {
        match e {
        rollout::Event::FirstRun {
            schedule,
            function,
            expression,
        } => {
            if !quiet {
                eprintln!(
                    "Started {function} once now: schedule {schedule} was just created ({expression} from here on)."
                );
            }
        }
        rollout::Event::FirstRunFailed {
            schedule,
            function,
            error,
        } => eprintln!(
            "warning: schedule {schedule} was created, but running {function} once now failed: {error}"
        ),
        rollout::Event::Smoked(report) => print!("{}", render::smoke(report)),
        rollout::Event::RolledBack(m) => eprintln!(
            "rolled back {} ({}): the live alias is on version {} again (version {} failed the checks)",
            m.address, m.function, m.from, m.to
        ),
        rollout::Event::RollbackFailed { address, error } => {
            eprintln!("could not roll back {address}: {error}")
        }
    }
    };
    let verdict = rollout::after_apply(
        &backend,
        &loaded.spec,
        &plan,
        before.as_ref(),
        after,
        &clients,
        !a.no_smoke,
        &show,
    )
    .await?;
    match verdict {
        Verdict::Live => Ok(0),
        Verdict::FailedNothingToRollBack => Err(Failure::new(
            "smoke checks failed (see above); no code was rolled out by this apply, so nothing was rolled back",
        )),
        Verdict::RolledBack(n) => Err(Failure::new(format!(
            "smoke checks failed after a code rollout; rolled back {n} function(s) to the previous version"
        ))),
        Verdict::RollbackIncomplete => Err(Failure::new(
            "smoke checks failed after a code rollout and the rollback did not complete (see above)",
        )),
    }
}

/// The environment's lock, held since the plan was made, and the state it was made
/// against.
pub(super) struct Held {
    pub lock: LockGuard,
    pub state: Option<State>,
}

/// How [`execute`] ended: the exit code, and the state before and after the apply
/// (none when nothing was applied).
pub(super) struct Executed {
    pub code: i32,
    pub before: Option<State>,
    pub after: Option<State>,
}

/// Shows `plan`, asks (unless `yes`), and applies it under `held` (else under the lock
/// taken now), stopping on Ctrl-C or SIGTERM; the exit code says whether every step
/// succeeded (0), some failed (1) or the run was interrupted (130).
#[allow(clippy::too_many_arguments)]
pub(super) async fn execute(
    s: &Settings,
    backend: &Backend,
    plan: &Plan,
    held: Option<Held>,
    yes: bool,
    allow_data_loss: bool,
    parallelism: u16,
    code_dir: Option<PathBuf>,
) -> Result<Executed, Failure> {
    let nothing = |code| Executed {
        code,
        before: None,
        after: None,
    };
    print!("{}", render::plan(plan, allow_data_loss));
    if !plan.has_changes() {
        return Ok(nothing(0));
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
    let changes = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .count();
    confirm(
        s,
        &format!("\n{verb} {changes} change(s) to `{}`?", plan.environment),
        yes,
    )?;
    let config = config(parallelism);
    let events = progress(s);
    let Held { lock, state } = match held {
        Some(held) => held,
        None => {
            let (lock, state) = ops::hold(backend, plan, &events)?;
            Held { lock, state }
        }
    };
    let before = state.clone();
    let signals = Signals::watch(config.interrupt.clone());
    let mut run = Box::pin(ops::apply_held(
        backend,
        plan,
        lock,
        state,
        providers,
        config,
        events,
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
    let (after, report) = result?;
    println!("{}", render::report(&report, plan.operation));
    let code = if report.was_interrupted() {
        130
    } else if report.ok() {
        0
    } else {
        1
    };
    Ok(Executed {
        code,
        before,
        after: Some(after),
    })
}
