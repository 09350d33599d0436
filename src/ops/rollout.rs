//! What follows a successful apply: the first run of newly created schedules that ask
//! for one, the smoke checks against the live environment, and, when new code fails
//! them, moving the functions' `live` alias back to the version that served before.

use serde_json::json;

use super::OpsError;
use crate::aws::Clients;
use crate::model::{Action, Address, Kind};
use crate::plan::Plan;
use crate::smoke;
use crate::spec::model::Spec;
use crate::state::{Backend, State};

/// A function whose live version an apply moved.
pub struct Moved {
    pub address: Address,
    /// The deployed function's name.
    pub function: String,
    pub from: String,
    pub to: String,
}

/// What happens during a rollout, in order, for the CLI to show as it happens.
pub enum Event<'a> {
    /// A just-created schedule's function was started once.
    FirstRun {
        schedule: &'a str,
        function: &'a str,
        expression: &'a str,
    },
    /// Starting it failed; the schedule stands.
    FirstRunFailed {
        schedule: &'a str,
        function: &'a str,
        error: String,
    },
    /// The smoke checks ran.
    Smoked(&'a smoke::Report),
    /// A function's alias is on its previous version again.
    RolledBack(&'a Moved),
    RollbackFailed {
        address: &'a Address,
        error: String,
    },
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The checks passed, or were not asked for.
    Live,
    /// The checks failed, but this apply rolled out no code: nothing to roll back.
    FailedNothingToRollBack,
    /// The checks failed and this many functions went back to their previous version.
    RolledBack(usize),
    /// The checks failed and at least one rollback failed too.
    RollbackIncomplete,
}

/// Follows an apply of `plan` that changed something: `before` is the state it started
/// from, `after` the state it left. Runs the smoke checks unless `check` is false.
#[allow(clippy::too_many_arguments)]
pub async fn after_apply(
    backend: &Backend,
    spec: &Spec,
    plan: &Plan,
    before: Option<&State>,
    after: State,
    clients: &Clients,
    check: bool,
    events: &dyn Fn(&Event),
) -> Result<Verdict, OpsError> {
    first_runs(spec, plan, &after, clients, events).await;
    if !check {
        return Ok(Verdict::Live);
    }
    let report = run_smoke(spec, &after, clients, None).await;
    events(&Event::Smoked(&report));
    if report.ok {
        return Ok(Verdict::Live);
    }
    // New code that fails its checks goes back to the version that served before.
    let moved = rolled_out(before, &after);
    if moved.is_empty() {
        return Ok(Verdict::FailedNothingToRollBack);
    }
    roll_back(backend, &plan.environment, after, &moved, clients, events).await
}

/// Runs, once and asynchronously, the function of every schedule this apply created
/// whose spec asks for it (`run_after_apply`), so the environment does not wait a whole
/// period for the first run. A failure to start it is reported, not an error: the
/// schedule stands.
pub async fn first_runs(
    spec: &Spec,
    plan: &Plan,
    state: &State,
    clients: &Clients,
    events: &dyn Fn(&Event),
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
            Ok(_) => events(&Event::FirstRun {
                schedule: name,
                function: &schedule.function,
                expression: &schedule.expression,
            }),
            Err(error) => events(&Event::FirstRunFailed {
                schedule: name,
                function: &schedule.function,
                error,
            }),
        }
    }
}

/// Functions whose live version this apply moved.
pub fn rolled_out(before: Option<&State>, after: &State) -> Vec<Moved> {
    let Some(before) = before else {
        return Vec::new();
    };
    after
        .resources
        .iter()
        .filter(|(_, r)| r.kind == Kind::LambdaFunction)
        .filter_map(|(address, r)| {
            let old = before.resources.get(address)?;
            let from = old.outputs.get("version")?.as_str()?;
            let to = r.outputs.get("version")?.as_str()?;
            (from != to && old.id == r.id).then(|| Moved {
                address: address.clone(),
                function: r.id.clone(),
                from: from.to_string(),
                to: to.to_string(),
            })
        })
        .collect()
}

/// Points each moved function's alias back at its previous version, under the
/// environment's lock, and records the versions in state (`after` when none is read).
async fn roll_back(
    backend: &Backend,
    environment: &str,
    after: State,
    moved: &[Moved],
    clients: &Clients,
    events: &dyn Fn(&Event),
) -> Result<Verdict, OpsError> {
    let _lock = backend.lock(environment, "rollback")?;
    let mut state = backend.read(environment)?.unwrap_or(after);
    let mut outcomes = Vec::new();
    for m in moved {
        let outcome = crate::aws::lambda::point_alias(clients, &m.function, &m.from).await;
        if outcome.is_ok() {
            if let Some(r) = state.resources.get_mut(&m.address) {
                r.outputs.insert("version".into(), json!(m.from));
            }
        }
        outcomes.push((m, outcome));
    }
    backend.write(&mut state)?;
    let mut failed = false;
    for (m, outcome) in outcomes {
        match outcome {
            Ok(()) => events(&Event::RolledBack(m)),
            Err(error) => {
                failed = true;
                events(&Event::RollbackFailed {
                    address: &m.address,
                    error,
                });
            }
        }
    }
    Ok(if failed {
        Verdict::RollbackIncomplete
    } else {
        Verdict::RolledBack(moved.len())
    })
}

/// Runs the smoke checks against `url`, or the API's invoke URL.
pub async fn run_smoke(
    spec: &Spec,
    state: &State,
    clients: &Clients,
    url: Option<String>,
) -> smoke::Report {
    let target = url.ok_or(()).or_else(|()| {
        smoke::api_url(state)
            .ok_or_else(|| "the environment's state has no API invoke URL".to_string())
    });
    smoke::run_on(clients, spec, state, target).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ResourceState;

    fn function(id: &str, version: &str) -> ResourceState {
        ResourceState {
            kind: Kind::LambdaFunction,
            id: id.into(),
            inputs: Default::default(),
            outputs: [("version".to_string(), json!(version))].into(),
            depends_on: Default::default(),
            protect: false,
            pending: false,
        }
    }

    fn state(functions: &[(&str, ResourceState)]) -> State {
        let mut s = State::new("trivia", "dev");
        for (address, r) in functions {
            s.resources
                .insert(Address::new(address.to_string()), r.clone());
        }
        s
    }

    #[test]
    fn only_functions_whose_live_version_moved_in_place_are_rolled_back() {
        let before = state(&[
            ("function.api", function("trivia-dev-api", "3")),
            ("function.preloader", function("trivia-dev-preloader", "7")),
            ("function.worker", function("trivia-dev-worker", "1")),
        ]);
        let after = state(&[
            // New code: version 3 → 4, the same function.
            ("function.api", function("trivia-dev-api", "4")),
            // Untouched.
            ("function.preloader", function("trivia-dev-preloader", "7")),
            // Replaced by another function: its old versions are gone with it.
            ("function.worker", function("trivia-dev-worker-2", "1")),
            // Created by this apply: nothing to go back to.
            ("function.new", function("trivia-dev-new", "1")),
        ]);
        let moved = rolled_out(Some(&before), &after);
        let got: Vec<(&str, &str, &str, &str)> = moved
            .iter()
            .map(|m| {
                (
                    m.address.as_str(),
                    m.function.as_str(),
                    m.from.as_str(),
                    m.to.as_str(),
                )
            })
            .collect();
        assert_eq!(got, [("function.api", "trivia-dev-api", "3", "4")]);
        assert!(rolled_out(None, &after).is_empty());
    }
}
