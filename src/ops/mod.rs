//! Operations the commands are made of: plan, apply a plan, destroy. They hold the
//! environment's lock for their duration, refuse a saved plan whose state moved, refuse
//! data loss unless allowed, and persist state through the backend after every step.
//!
//! The larger operations live in their own modules: the rollout after an apply
//! (first runs, smoke checks, rollback), destroy and its final snapshots, sweeps by
//! tag, garbage collection of expired environments, and environments' files. They
//! take plain inputs and return data; the CLI renders it.

pub mod destroy;
pub mod environments;
pub mod gc;
pub mod import;
pub mod rollout;
pub mod surgery;
pub mod sweep;

pub use sweep::{discover, record_found, Found};

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{self, Config, EventSink, Report};
use crate::model::Address;
use crate::plan::desired::Desired;
use crate::plan::{self, Operation, Plan};
use crate::provider::Providers;
use crate::state::{Backend, LockGuard, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Engine(#[from] engine::EngineError),
    #[error("{0}")]
    Plan(String),
    #[error("{0}")]
    Refused(String),
    #[error("the state of `{environment}` changed since this plan was made ({was}); run `deploy plan` again")]
    StalePlan { environment: String, was: String },
    /// A cloud call outside the engine failed (the message says which).
    #[error("{0}")]
    Cloud(String),
    /// An environment cannot be created as asked (name, lifetime, files).
    #[error("{0}")]
    Environment(String),
    #[error("the template `{template}` does not make a valid environment named `{name}` (see above); nothing was written")]
    InvalidTemplate {
        template: String,
        name: String,
        diagnostics: crate::spec::Diagnostics,
    },
    #[error(
        "refusing to sweep `{environment}`: {} resource(s) tagged with it are not ephemeral or are protected:\n  {}\n  hint: sweep removes ephemeral environments only; destroy others with `deploy destroy` from their state",
        .refused.len(),
        .refused.join("\n  ")
    )]
    SweepRefused {
        environment: String,
        refused: Vec<String>,
    },
}

/// A plan made under the environment's lock, with the state it was made against.
pub struct Planned {
    pub plan: Plan,
    pub state: Option<State>,
    /// The lock, still held, when the plan was made with [`Locking::ForApply`].
    pub lock: Option<LockGuard>,
}

/// Which lock a plan runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// None: read-only, nothing is written (`plan --lock=false`).
    No,
    /// The environment's lock, for the plan's duration.
    ForPlan,
    /// The environment's lock as an apply's, kept in [`Planned::lock`] for
    /// [`apply_held`]: nothing can change between the plan and its apply (as
    /// `terraform apply` holds it), and the state is not read again.
    ForApply,
}

/// Plans `desired` against the recorded state, refreshing from the cloud unless
/// `providers` is `None` (`--no-refresh`). With no recorded state there is nothing to
/// refresh and the plan counts as refreshed.
pub async fn plan(
    backend: &Backend,
    desired: &Desired,
    providers: Option<&Providers>,
    config: &Config,
    events: &EventSink,
    targets: &[Address],
) -> Result<Planned, OpsError> {
    plan_with(
        backend,
        desired,
        providers,
        config,
        events,
        targets,
        Locking::ForPlan,
    )
    .await
}

/// [`plan`] under the lock `locking` names. Without one (read-only, e.g. a
/// pull-request comment while an apply runs) nothing is written: what is adopted
/// (creates interrupted, resources found by tags) shows in the plan but is recorded
/// only by a locked run.
pub async fn plan_with(
    backend: &Backend,
    desired: &Desired,
    providers: Option<&Providers>,
    config: &Config,
    events: &EventSink,
    targets: &[Address],
    locking: Locking,
) -> Result<Planned, OpsError> {
    let lock = match locking {
        Locking::No => None,
        Locking::ForPlan => Some(take_lock(backend, &desired.environment, "plan", events)?),
        Locking::ForApply => Some(take_lock(backend, &desired.environment, "apply", events)?),
    };
    let writer = lock.is_some().then_some(backend);
    let recorded = match (backend.read(&desired.environment)?, providers) {
        (None, Some(p)) => adopt_untracked(writer, desired, p, events).await?,
        (recorded, _) => recorded,
    };
    let state = adopt(writer, recorded, providers, config, events).await?;
    let actual = match (providers, &state) {
        (Some(p), Some(s)) => Some(engine::refresh(s, p, config, events).await?),
        (Some(_), None) => Some(plan::Actual::new()),
        (None, _) => None,
    };
    let plan = plan::plan(plan::Inputs {
        desired,
        state: state.as_ref(),
        actual: actual.as_ref(),
        targets,
    })
    .map_err(OpsError::Plan)?;
    let lock = lock.filter(|_| locking == Locking::ForApply);
    Ok(Planned { plan, state, lock })
}

/// Takes `environment`'s lock for `operation`, saying so when it was taken over.
fn take_lock(
    backend: &Backend,
    environment: &str,
    operation: &str,
    events: &EventSink,
) -> Result<LockGuard, OpsError> {
    let lock = backend.lock(environment, operation)?;
    if let Some(message) = lock.took_over() {
        events(&engine::Event::LockTakenOver {
            message: message.to_string(),
        });
    }
    Ok(lock)
}

/// No state is not "nothing exists" (a new laptop, a teammate without the state, a
/// lost file): the resources tagged with this project and environment whose
/// `deploy:address` is one of the spec's are recorded, so the plan updates them
/// instead of creating second copies. Returns the new state, or `None` when nothing
/// of the environment exists. Kinds without tags (app clients) cannot be found so.
async fn adopt_untracked(
    backend: Option<&Backend>,
    desired: &Desired,
    providers: &Providers,
    events: &EventSink,
) -> Result<Option<State>, OpsError> {
    let want = BTreeMap::from([
        ("deploy:project".to_string(), desired.project.clone()),
        (
            "deploy:environment".to_string(),
            desired.environment.clone(),
        ),
    ]);
    let found = sweep::discover(providers, &want).await?;
    if found.is_empty() {
        return Ok(None);
    }
    let mut state = State::new(&desired.project, &desired.environment);
    let mut others = 0;
    for f in found {
        let wanted = f
            .tag("deploy:address")
            .map(|a| Address::new(a.to_string()))
            .and_then(|a| desired.resources.get(&a))
            .filter(|r| r.kind == f.kind && !state.resources.contains_key(&r.address));
        let Some(r) = wanted else {
            others += 1;
            continue;
        };
        state.resources.insert(
            r.address.clone(),
            crate::state::ResourceState {
                kind: f.kind,
                id: f.observed.id.clone(),
                inputs: f.observed.inputs.clone(),
                outputs: f.observed.outputs.clone(),
                depends_on: r.depends_on.clone(),
                protect: r.protect,
                pending: false,
            },
        );
    }
    adopt_app_clients(&mut state, desired, providers).await?;
    events(&engine::Event::FoundWithoutState {
        environment: desired.environment.clone(),
        adopted: state.resources.keys().cloned().collect(),
        others,
    });
    if state.resources.is_empty() {
        return Ok(None);
    }
    if let Some(backend) = backend {
        backend.write(&mut state)?;
    }
    Ok(Some(state))
}

/// App clients carry no tags: each of the spec's clients whose pool is recorded, and
/// which is not, is looked for by its name within its pool and recorded when exactly
/// one has it. Returns the addresses and ids recorded.
pub(crate) async fn adopt_app_clients(
    state: &mut State,
    desired: &Desired,
    providers: &Providers,
) -> Result<Vec<(Address, String)>, OpsError> {
    let mut adopted = Vec::new();
    for address in &desired.order {
        let r = &desired.resources[address];
        if r.kind != crate::model::Kind::UserPoolClient || state.resources.contains_key(address) {
            continue;
        }
        let resolved: Option<crate::model::Attrs> = {
            let lookup = engine::lookup_in(state);
            r.inputs
                .iter()
                .map(|(k, v)| crate::model::substitute(v, &lookup).map(|x| (k.clone(), x)))
                .collect()
        };
        let (Some(inputs), Ok(provider)) = (resolved, providers.get(r.kind)) else {
            continue;
        };
        let target = crate::provider::Target {
            address,
            name: inputs
                .get("name")
                .and_then(|v| v.as_str())
                .map(String::from),
            tags: BTreeMap::new(),
            inputs: Some(&inputs),
        };
        let found = provider
            .find(&target)
            .await
            .map_err(|e| OpsError::Plan(format!("cannot look for {address}: {e}")))?;
        if let [one] = found.as_slice() {
            state.resources.insert(
                address.clone(),
                crate::state::ResourceState {
                    kind: r.kind,
                    id: one.id.clone(),
                    inputs: one.inputs.clone(),
                    outputs: one.outputs.clone(),
                    depends_on: r.depends_on.clone(),
                    protect: r.protect,
                    pending: false,
                },
            );
            adopted.push((address.clone(), one.id.clone()));
        }
    }
    Ok(adopted)
}

/// Records resources that interrupted creates left behind (see
/// [`engine::adopt_intents`]), writing state if anything changed.
async fn adopt(
    backend: Option<&Backend>,
    state: Option<State>,
    providers: Option<&Providers>,
    config: &Config,
    events: &EventSink,
) -> Result<Option<State>, OpsError> {
    match (state, providers) {
        (Some(mut s), Some(p)) if !s.intents.is_empty() => {
            engine::adopt_intents(&mut s, p, config, events).await?;
            if let Some(backend) = backend {
                backend.write(&mut s)?;
            }
            Ok(Some(s))
        }
        (state, _) => Ok(state),
    }
}

/// Plans the destruction of everything recorded for `environment`.
pub async fn plan_destroy(
    backend: &Backend,
    environment: &str,
    region: &str,
    providers: Option<&Providers>,
    config: &Config,
    events: &EventSink,
) -> Result<Planned, OpsError> {
    let _lock = take_lock(backend, environment, "plan", events)?;
    let state = adopt(
        Some(backend),
        backend.read(environment)?,
        providers,
        config,
        events,
    )
    .await?;
    let actual = match (providers, &state) {
        (Some(p), Some(s)) => Some(engine::refresh(s, p, config, events).await?),
        (Some(_), None) => Some(plan::Actual::new()),
        (None, _) => None,
    };
    let project = state
        .as_ref()
        .map(|s| s.project.clone())
        .unwrap_or_default();
    let plan = plan::plan_destroy(
        &project,
        environment,
        region,
        state.as_ref(),
        actual.as_ref(),
    );
    Ok(Planned {
        plan,
        state,
        lock: None,
    })
}

/// Why each refused change is refused, as lines for the user.
pub fn refusal_lines(plan: &Plan, allow_data_loss: bool) -> Vec<String> {
    plan.refusals(allow_data_loss)
        .into_iter()
        .map(|(c, flag_would_allow)| {
            let what = if c.action == crate::model::Action::Delete { "delete" } else { "replace" };
            if flag_would_allow {
                format!("{} would be {what}d and its data lost; pass --allow-data-loss if that is intended", c.address)
            } else {
                format!("{} is protected (`protect: true` in the spec) and cannot be {what}d; set `protect: false` first if you really mean it", c.address)
            }
        })
        .collect()
}

/// Refuses `plan` when it would lose data (without `allow_data_loss`) or touch a
/// protected resource.
fn refuse_loss(plan: &Plan, allow_data_loss: bool) -> Result<(), OpsError> {
    let refusals = refusal_lines(plan, allow_data_loss);
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Refused(refusals.join("\n")))
    }
}

/// Applies `plan` exactly: refuses if the state moved since it was made or if it would
/// lose data without `allow_data_loss`; writes state after every step.
pub async fn apply(
    backend: &Backend,
    plan: &Plan,
    providers: Providers,
    config: Config,
    events: EventSink,
    allow_data_loss: bool,
) -> Result<(State, Report), OpsError> {
    // Before the lock is taken, too.
    refuse_loss(plan, allow_data_loss)?;
    let (lock, state) = hold(backend, plan, &events)?;
    apply_held(
        backend,
        plan,
        lock,
        state,
        providers,
        config,
        events,
        allow_data_loss,
    )
    .await
}

/// Takes the lock an apply of `plan` needs (named for its operation) and reads the
/// state under it, for [`apply_held`].
pub fn hold(
    backend: &Backend,
    plan: &Plan,
    events: &EventSink,
) -> Result<(LockGuard, Option<State>), OpsError> {
    let operation = match plan.operation {
        Operation::Apply => "apply",
        Operation::Destroy => "destroy",
    };
    let lock = take_lock(backend, &plan.environment, operation, events)?;
    let state = backend.read(&plan.environment)?;
    Ok((lock, state))
}

/// [`apply`] under `lock`, already held, from `state`, already read under it (a plan
/// made with [`Locking::ForApply`] and its state).
#[allow(clippy::too_many_arguments)]
pub async fn apply_held(
    backend: &Backend,
    plan: &Plan,
    lock: LockGuard,
    state: Option<State>,
    providers: Providers,
    config: Config,
    events: EventSink,
    allow_data_loss: bool,
) -> Result<(State, Report), OpsError> {
    refuse_loss(plan, allow_data_loss)?;
    let (lineage, serial) = state
        .as_ref()
        .map(|s| (Some(s.lineage), s.serial))
        .unwrap_or((None, 0));
    if lineage != plan.state_lineage || serial != plan.state_serial {
        let was = match plan.state_lineage {
            Some(_) => format!("serial {} when planned, {serial} now", plan.state_serial),
            None => "it had no state when planned".into(),
        };
        return Err(OpsError::StalePlan {
            environment: plan.environment.clone(),
            was,
        });
    }
    let state = state.unwrap_or_else(|| State::new(&plan.project, &plan.environment));
    let persist = persister(backend.clone(), lock);
    Ok(engine::apply(plan, state, persist, providers, config, events).await?)
}

fn persister(backend: Backend, mut lock: LockGuard) -> engine::Persist {
    Box::new(move |state: &mut State| {
        // Never write over state that another run may own now.
        lock.confirm()?;
        backend.write(state)?;
        Ok(())
    })
}

/// Reads a saved plan file.
pub fn read_plan(path: &Path) -> Result<Plan, OpsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OpsError::Plan(format!("cannot read the plan file {}: {e}", path.display()))
    })?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| OpsError::Plan(format!("{} is not a saved plan: {e}", path.display())))?;
    if plan.format != plan::diff::PLAN_FORMAT {
        return Err(OpsError::Plan(format!(
            "{} was saved by another version of deploy (plan format {})",
            path.display(),
            plan.format
        )));
    }
    Ok(plan)
}

/// The project's other environments, as (name, their resources' kinds and inputs), for
/// comparing limits in cost warnings. Specs that do not load are skipped.
pub fn sibling_resources(
    dir: &Path,
    except: &str,
) -> Vec<(String, Vec<(crate::model::Kind, crate::model::Attrs)>)> {
    crate::spec::list_environments(dir)
        .into_iter()
        .filter_map(|name| {
            let (_, d) = plan::load_desired(&dir.join(format!("{name}.yaml"))).ok()?;
            (d.environment != except).then(|| {
                (
                    d.environment.clone(),
                    d.resources
                        .into_values()
                        .map(|r| (r.kind, r.inputs))
                        .collect(),
                )
            })
        })
        .collect()
}

/// Prices the environment as the spec wants it.
pub fn estimate_desired(
    desired: &Desired,
    assumptions: &crate::cost::Assumptions,
) -> crate::cost::Estimate {
    let priced: Vec<crate::cost::Priced> = desired
        .order
        .iter()
        .map(|a| {
            let r = &desired.resources[a];
            crate::cost::Priced {
                address: &r.address,
                kind: r.kind,
                inputs: &r.inputs,
                outputs: None,
            }
        })
        .collect();
    crate::cost::estimate(&desired.environment, &desired.region, &priced, assumptions)
}

/// Prices the environment as the state records it.
pub fn estimate_recorded(
    state: Option<&State>,
    environment: &str,
    region: &str,
    assumptions: &crate::cost::Assumptions,
) -> crate::cost::Estimate {
    let priced: Vec<crate::cost::Priced> = state
        .iter()
        .flat_map(|s| s.resources.iter())
        .map(|(a, r)| crate::cost::Priced {
            address: a,
            kind: r.kind,
            inputs: &r.inputs,
            outputs: Some(&r.outputs),
        })
        .collect();
    crate::cost::estimate(environment, region, &priced, assumptions)
}

/// Fills in the plan's monthly estimate before and after, with warnings about the
/// result. `desired` is `None` for a destroy (nothing is left after).
pub fn attach_cost(
    plan: &mut Plan,
    desired: Option<&Desired>,
    state: Option<&State>,
    siblings: &[(String, Vec<(crate::model::Kind, crate::model::Attrs)>)],
) {
    let assumptions = desired.map(|d| d.cost_assumptions).unwrap_or_default();
    let before = estimate_recorded(state, &plan.environment, &plan.region, &assumptions);
    let (after, warnings) = match desired {
        Some(d) => {
            let priced: Vec<crate::cost::Priced> = d
                .resources
                .values()
                .map(|r| crate::cost::Priced {
                    address: &r.address,
                    kind: r.kind,
                    inputs: &r.inputs,
                    outputs: None,
                })
                .collect();
            (
                estimate_desired(d, &assumptions).monthly_usd,
                crate::cost::warnings(&d.environment, &priced, siblings),
            )
        }
        None => (crate::cost::Range::default(), Vec::new()),
    };
    plan.cost = Some(crate::cost::Delta {
        before: before.monthly_usd,
        after,
        warnings,
    });
}
