//! State surgery: forgetting a resource without deleting it (`state rm`) and renaming
//! an address without destroying anything (`state mv`, Terraform's `moved`, which also
//! moves the resources' address tags). Each takes
//! the environment's lock, keeps a copy of the state as it was, and bumps the serial.

use super::OpsError;
use crate::model::Address;
use crate::plan::desired::Desired;
use crate::provider::Providers;
use crate::state::{Backend, State};

/// What a surgery did.
#[derive(Debug)]
pub struct Surgery {
    /// The addresses it removed or renamed (their new names for a rename).
    pub changed: Vec<Address>,
    /// The state as it was before, kept beside it.
    /// Where the state as it was is kept.
    pub backup: String,
    pub serial: u64,
}

fn refuse(message: String) -> OpsError {
    OpsError::Refused(message)
}

/// The recorded addresses `pattern` names: itself, or every address below it
/// (`function.api` names `function.api` and `function.api.logs`).
fn matching(state: &State, pattern: &Address) -> Vec<Address> {
    let below = format!("{pattern}.");
    state
        .resources
        .keys()
        .filter(|a| *a == pattern || a.as_str().starts_with(&below))
        .cloned()
        .collect()
}

fn locked_state(
    backend: &Backend,
    environment: &str,
    operation: &str,
) -> Result<(crate::state::LockGuard, State), OpsError> {
    let lock = backend.lock(environment, operation)?;
    let state = backend
        .read(environment)?
        .ok_or_else(|| refuse(format!("`{environment}` has no state")))?;
    Ok((lock, state))
}

/// Forgets `addresses` (and what is below each) without deleting anything in AWS.
/// What still depends on a forgotten resource keeps working; a later plan creates the
/// forgotten resource again unless the spec no longer has it.
pub fn remove(
    backend: &Backend,
    environment: &str,
    addresses: &[Address],
) -> Result<Surgery, OpsError> {
    let (_lock, mut state) = locked_state(backend, environment, "state rm")?;
    let mut changed = Vec::new();
    for pattern in addresses {
        let found = matching(&state, pattern);
        if found.is_empty() {
            let hint = crate::spec::diag::did_you_mean(
                pattern.as_str(),
                state.resources.keys().map(Address::as_str),
            )
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
            return Err(refuse(format!(
                "`{pattern}` is not in the state of `{environment}`{hint}; nothing was changed"
            )));
        }
        changed.extend(found);
    }
    let backup = backend.backup(&state)?;
    for a in &changed {
        state.resources.remove(a);
        for r in state.resources.values_mut() {
            r.depends_on.remove(a);
        }
    }
    backend.write(&mut state)?;
    Ok(Surgery {
        changed,
        backup,
        serial: state.serial,
    })
}

/// Renames `from` (and what is below it) to `to`: the resources stay as they are in
/// AWS, and the next plan matches them to the spec's new addresses ([`retag`] then
/// brings their address tags along).
pub fn rename(
    backend: &Backend,
    environment: &str,
    from: &Address,
    to: &Address,
) -> Result<Surgery, OpsError> {
    let (_lock, mut state) = locked_state(backend, environment, "state mv")?;
    let found = matching(&state, from);
    if found.is_empty() {
        return Err(refuse(format!(
            "`{from}` is not in the state of `{environment}`; nothing was changed"
        )));
    }
    let renamed: Vec<(Address, Address)> = found
        .iter()
        .map(|a| {
            let rest = &a.as_str()[from.as_str().len()..];
            (a.clone(), Address::new(format!("{to}{rest}")))
        })
        .collect();
    if let Some((_, taken)) = renamed
        .iter()
        .find(|(_, new)| state.resources.contains_key(new) && !found.contains(new))
    {
        return Err(refuse(format!(
            "`{taken}` is already in the state of `{environment}`; nothing was changed"
        )));
    }
    let backup = backend.backup(&state)?;
    let moved: Vec<_> = renamed
        .iter()
        .filter_map(|(old, new)| state.resources.remove(old).map(|r| (new.clone(), r)))
        .collect();
    state.resources.extend(moved);
    for r in state.resources.values_mut() {
        for (old, new) in &renamed {
            if r.depends_on.remove(old) {
                r.depends_on.insert(new.clone());
            }
        }
    }
    backend.write(&mut state)?;
    Ok(Surgery {
        changed: renamed.into_iter().map(|(_, new)| new).collect(),
        backup,
        serial: state.serial,
    })
}

/// A moved resource whose tags differ from what the spec wants at its new address.
#[derive(Debug)]
pub struct TagMove {
    pub address: Address,
    /// The tags set (new or changed values) and removed.
    pub set: Vec<String>,
    pub removed: Vec<String>,
    tags: serde_json::Value,
}

/// The resources `moved` names (their new addresses) whose tags differ from what the
/// spec wants at those addresses: `deploy:address`, the tag that finds a resource when
/// state is lost, and a `Name` derived from the address follow a rename. Addresses the
/// spec lacks, or has as another kind, are left alone.
pub fn tag_moves(
    backend: &Backend,
    environment: &str,
    moved: &[Address],
    desired: &Desired,
) -> Result<Vec<TagMove>, OpsError> {
    let Some(state) = backend.read(environment)? else {
        return Ok(Vec::new());
    };
    Ok(moved
        .iter()
        .filter_map(|address| {
            let recorded = state.resources.get(address)?;
            let wanted = desired
                .resources
                .get(address)
                .filter(|w| w.kind == recorded.kind)?;
            let tags = wanted.inputs.get("tags").filter(|t| t.is_object())?;
            let mut after = recorded.inputs.clone();
            after.insert("tags".into(), tags.clone());
            let changes = crate::aws::tags::tag_changes(&recorded.inputs, &after);
            (!changes.is_empty()).then(|| TagMove {
                address: address.clone(),
                set: changes.set.into_keys().collect(),
                removed: changes.removed,
                tags: tags.clone(),
            })
        })
        .collect())
}

/// Sets the tags of each of `moves` in AWS (an in-place update of the tags alone:
/// never a create, replace or delete), under the lock, recording each as it is done.
/// Returns why each one that failed did (the next apply retags it).
pub async fn retag(
    backend: &Backend,
    environment: &str,
    moves: &[TagMove],
    providers: &Providers,
) -> Result<Vec<(Address, String)>, OpsError> {
    let (_lock, mut state) = locked_state(backend, environment, "state mv")?;
    let mut failed = Vec::new();
    for m in moves {
        let Some(recorded) = state.resources.get(&m.address) else {
            continue;
        };
        let before = recorded.inputs.clone();
        let mut after = before.clone();
        after.insert("tags".into(), m.tags.clone());
        let result = match providers.get(recorded.kind) {
            Ok(p) => p.update(&recorded.id, &before, &after).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                if let Some(r) = state.resources.get_mut(&m.address) {
                    r.inputs = after;
                }
                backend.write(&mut state)?;
            }
            Err(e) => failed.push((m.address.clone(), e.to_string())),
        }
    }
    Ok(failed)
}

/// What a migration did.
#[derive(Debug)]
pub struct Migrated {
    pub serial: u64,
    pub lineage: uuid::Uuid,
    /// Where the source's copy was kept.
    pub kept: Option<String>,
}

/// Moves `environment`'s state from `source` to `target` as it is (serial and lineage
/// kept), under both locks; refuses when the target already holds state. The source's
/// copy is moved out of the way (a backup, an old version) so that no two live copies
/// exist.
pub fn migrate(
    source: &Backend,
    target: &Backend,
    environment: &str,
) -> Result<Migrated, OpsError> {
    if source.state_location(environment) == target.state_location(environment) {
        return Err(refuse(format!(
            "the state of `{environment}` is already at {}",
            target.state_location(environment)
        )));
    }
    let (_source_lock, state) = locked_state(source, environment, "state migrate")?;
    let _target_lock = target.lock(environment, "state migrate")?;
    if target.read(environment)?.is_some() {
        return Err(crate::state::StateError::Exists {
            location: target.state_location(environment),
        }
        .into());
    }
    target.create(&state)?;
    let kept = source.retire(environment)?;
    Ok(Migrated {
        serial: state.serial,
        lineage: state.lineage,
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::state::ResourceState;

    fn resource(kind: Kind, id: &str, depends_on: &[&str]) -> ResourceState {
        ResourceState {
            kind,
            id: id.into(),
            inputs: Default::default(),
            outputs: Default::default(),
            depends_on: depends_on.iter().map(|a| Address::new(*a)).collect(),
            protect: false,
            pending: false,
        }
    }

    fn seeded() -> (tempfile::TempDir, Backend) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::local(dir.path());
        let mut state = State::new("trivia", "dev");
        for (a, r) in [
            (
                "function.api",
                resource(
                    Kind::LambdaFunction,
                    "trivia-dev-api",
                    &["function.api.logs"],
                ),
            ),
            (
                "function.api.logs",
                resource(Kind::LogGroup, "/aws/lambda/trivia-dev-api", &[]),
            ),
            (
                "schedule.nightly",
                resource(Kind::ScheduleRule, "trivia-dev-nightly", &["function.api"]),
            ),
        ] {
            state.resources.insert(Address::new(a), r);
        }
        backend.write(&mut state).unwrap();
        (dir, backend)
    }

    #[test]
    fn rename_moves_a_resource_and_what_is_below_it_and_rewrites_edges() {
        let (_dir, backend) = seeded();
        let before = backend.read("dev").unwrap().unwrap();
        let done = rename(
            &backend,
            "dev",
            &Address::new("function.api"),
            &Address::new("function.web"),
        )
        .unwrap();
        assert_eq!(
            done.changed,
            vec![
                Address::new("function.web"),
                Address::new("function.web.logs")
            ]
        );
        let after = backend.read("dev").unwrap().unwrap();
        assert_eq!(after.serial, before.serial + 1);
        assert_eq!(
            after.resources[&Address::new("function.web")].id,
            "trivia-dev-api"
        );
        assert!(after.resources[&Address::new("schedule.nightly")]
            .depends_on
            .contains(&Address::new("function.web")));
        assert!(after.resources[&Address::new("function.web")]
            .depends_on
            .contains(&Address::new("function.web.logs")));
        // The state as it was is kept.
        let kept: State =
            serde_json::from_str(&std::fs::read_to_string(&done.backup).unwrap()).unwrap();
        assert_eq!(kept.serial, before.serial);
        assert!(kept.resources.contains_key(&Address::new("function.api")));
        assert!(
            backend.lock_info("dev").unwrap().is_none(),
            "the lock is released"
        );
    }

    #[test]
    fn rename_onto_a_recorded_address_or_from_nothing_changes_nothing() {
        let (_dir, backend) = seeded();
        let serial = backend.read("dev").unwrap().unwrap().serial;
        let taken = rename(
            &backend,
            "dev",
            &Address::new("function.api"),
            &Address::new("schedule.nightly"),
        );
        assert!(taken
            .unwrap_err()
            .to_string()
            .contains("already in the state"));
        let missing = rename(
            &backend,
            "dev",
            &Address::new("function.nope"),
            &Address::new("function.x"),
        );
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("is not in the state"));
        assert_eq!(backend.read("dev").unwrap().unwrap().serial, serial);
    }

    #[test]
    fn remove_forgets_without_touching_the_rest_and_suggests_near_misses() {
        let (_dir, backend) = seeded();
        let done = remove(&backend, "dev", &[Address::new("function.api.logs")]).unwrap();
        assert_eq!(done.changed, vec![Address::new("function.api.logs")]);
        let after = backend.read("dev").unwrap().unwrap();
        assert_eq!(after.resources.len(), 2);
        assert!(after.resources[&Address::new("function.api")]
            .depends_on
            .is_empty());
        let wrong = remove(&backend, "dev", &[Address::new("schedule.nighty")]).unwrap_err();
        assert!(
            wrong
                .to_string()
                .contains("did you mean `schedule.nightly`"),
            "{wrong}"
        );
    }
}
