//! Destroying an environment: the plan (priced, with whether the recorded tags make it
//! ephemeral) and, once it is applied, what becomes of its caches' final snapshots.

use super::environments::recorded_ephemeral;
use super::{OpsError, Planned};
use crate::aws::Clients;
use crate::engine::{Config, EventSink};
use crate::plan::Plan;
use crate::provider::Providers;
use crate::state::{Backend, Retained, State};

/// A destroy plan, ready to be shown and applied.
pub struct Prepared {
    pub plan: Plan,
    pub state: Option<State>,
    /// Every recorded resource is tagged ephemeral: the environment exists to be thrown
    /// away, so its data-loss guard is off (protected resources still refuse).
    pub ephemeral: bool,
}

impl Prepared {
    /// The project the state records (empty without state).
    pub fn project(&self) -> String {
        self.state
            .as_ref()
            .map(|st| st.project.clone())
            .unwrap_or_default()
    }
}

/// Plans the destruction of `environment` in `region`, refreshing what the state
/// records through `clients`, with the account and the monthly cost it saves.
pub async fn prepare(
    backend: &Backend,
    environment: &str,
    region: &str,
    clients: &Clients,
    config: &Config,
    events: &EventSink,
) -> Result<Prepared, OpsError> {
    let providers = match backend.read(environment)? {
        Some(state) if !state.is_empty() => crate::aws::providers(clients),
        _ => Providers::new(),
    };
    let Planned {
        mut plan, state, ..
    } = super::plan_destroy(
        backend,
        environment,
        region,
        Some(&providers),
        config,
        events,
    )
    .await?;
    plan.account = Some(clients.account.clone());
    super::attach_cost(&mut plan, None, state.as_ref(), &[]);
    // Decided from the recorded tags, not the spec file.
    let ephemeral = recorded_ephemeral(state.as_ref());
    Ok(Prepared {
        plan,
        state,
        ephemeral,
    })
}

/// What became of one final cache snapshot after a destroy.
pub enum FinalSnapshot {
    Deleted {
        name: String,
    },
    /// Still billed: recorded in the state for `env list`.
    Kept {
        name: String,
        cache: String,
    },
}

/// After a destroy: the environment's caches' final snapshots. With `remove` (an
/// ephemeral environment, or a sweep) they are deleted; otherwise they are kept and
/// recorded in the state. Each is reported to `report` as it is dealt with.
pub async fn final_snapshots(
    backend: &Backend,
    clients: &Clients,
    project: &str,
    environment: &str,
    remove: bool,
    report: &dyn Fn(&FinalSnapshot),
) -> Result<(), OpsError> {
    if project.is_empty() {
        return Ok(());
    }
    let prefix = format!("{project}-{environment}-");
    let found = crate::aws::elasticache::snapshots(clients, &prefix)
        .await
        .map_err(OpsError::Cloud)?;
    let _lock = backend.lock(environment, "destroy")?;
    let mut state = backend
        .read(environment)?
        .unwrap_or_else(|| State::new(project, environment));
    if remove {
        for (name, _, _) in &found {
            crate::aws::elasticache::delete_snapshot(clients, name)
                .await
                .map_err(OpsError::Cloud)?;
            report(&FinalSnapshot::Deleted { name: name.clone() });
        }
        state.retained.clear();
    } else {
        state.retained = found
            .iter()
            .map(|(name, cache, created)| Retained {
                kind: "cache_snapshot".into(),
                name: name.clone(),
                source: cache.clone(),
                created_at: created.clone(),
            })
            .collect();
        for (name, cache, _) in &found {
            report(&FinalSnapshot::Kept {
                name: name.clone(),
                cache: cache.clone(),
            });
        }
    }
    backend.write(&mut state)?;
    Ok(())
}
