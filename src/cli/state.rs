//! `deploy state list|show|rm|mv|history|migrate`: the recorded state, read, changed
//! or moved without calling AWS (other than the state's own store, and `mv` moving
//! the moved resources' address tags).

use anstream::println;
use serde_json::json;

use super::common::{Failure, Outcome};
use super::{Settings, StateCommand};
use crate::model::Address;
use crate::ops::surgery;
use crate::state::{Backend, State};

fn recorded(backend: &Backend, environment: &str) -> Result<State, Failure> {
    backend.read(environment)?.ok_or_else(|| {
        Failure::new(format!(
            "`{environment}` has no state at {}",
            backend.state_location(environment)
        ))
    })
}

pub(super) async fn run(s: &Settings, c: StateCommand) -> Outcome {
    let environment = s.env_name()?;
    let backend = s.backend()?;
    match c {
        StateCommand::List(a) => {
            let state = recorded(&backend, &environment)?;
            if a.json {
                let rows: Vec<_> = state
                    .resources
                    .iter()
                    .map(|(a, r)| json!({"address": a, "kind": r.kind, "id": r.id}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("rows serialize")
                );
            } else {
                let width = state
                    .resources
                    .keys()
                    .map(|a| a.as_str().len())
                    .max()
                    .unwrap_or(0);
                for (a, r) in &state.resources {
                    println!("{:<width$}  {:<20} {}", a.as_str(), r.kind.as_str(), r.id);
                }
            }
        }
        StateCommand::Show { address, json } => {
            let state = recorded(&backend, &environment)?;
            let address = Address::new(address);
            let Some(r) = state.resources.get(&address) else {
                let hint = crate::spec::diag::did_you_mean(
                    address.as_str(),
                    state.resources.keys().map(Address::as_str),
                )
                .map(|s| format!("\n  hint: did you mean `{s}`?"))
                .unwrap_or_default();
                return Err(Failure::new(format!(
                    "`{address}` is not in the state of `{environment}`{hint}"
                )));
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(r).expect("state serializes")
                );
            } else {
                println!("{address} ({}) {}", r.kind, r.id);
                for (title, attrs) in [("inputs", &r.inputs), ("outputs", &r.outputs)] {
                    println!("  {title}:");
                    for (k, v) in attrs {
                        println!("    {k} = {v}");
                    }
                }
                if !r.depends_on.is_empty() {
                    let deps: Vec<&str> = r.depends_on.iter().map(Address::as_str).collect();
                    println!("  depends on: {}", deps.join(", "));
                }
            }
        }
        StateCommand::Rm { addresses } => {
            let addresses: Vec<Address> = addresses.into_iter().map(Address::new).collect();
            let done = surgery::remove(&backend, &environment, &addresses)?;
            for a in &done.changed {
                println!("Forgot {a} (it still exists in AWS).");
            }
            println!(
                "State of `{environment}` is now serial {}; it was kept as {}.",
                done.serial, done.backup
            );
        }
        StateCommand::Mv {
            from,
            to,
            state_only,
        } => {
            let done = surgery::rename(
                &backend,
                &environment,
                &Address::new(&from),
                &Address::new(&to),
            )?;
            for a in &done.changed {
                println!("Moved to {a}.");
            }
            println!(
                "State of `{environment}` is now serial {}; it was kept as {}.",
                done.serial, done.backup
            );
            if !state_only {
                return retag(s, &backend, &environment, &done.changed).await;
            }
        }
        StateCommand::History(a) => {
            let versions = backend.history(&environment)?;
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&versions).expect("versions serialize")
                );
            } else if versions.is_empty() {
                println!(
                    "No stored versions of `{environment}` at {}.",
                    backend.state_location(&environment)
                );
            } else {
                println!("{}:", backend.state_location(&environment));
                for v in &versions {
                    let when = v
                        .modified
                        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                        .unwrap_or_else(|| "-".into());
                    let what = match (v.deleted, v.serial) {
                        (true, _) => "(removed)".to_string(),
                        (false, Some(n)) => format!("serial {n}"),
                        (false, None) => "serial ?".to_string(),
                    };
                    let latest = if v.latest { "  (current)" } else { "" };
                    println!("  {when}  {what:<12} {:>8} B  {}{latest}", v.size, v.id);
                }
            }
        }
        StateCommand::Migrate { to } => {
            let region = s
                .spec_path()
                .ok()
                .and_then(|p| crate::spec::check(p).0)
                .map(|l| l.spec.region)
                .unwrap_or_default();
            let target = s.backend_at(Some(&to), None, &region)?;
            let done = surgery::migrate(&backend, &target, &environment)?;
            println!(
                "Moved the state of `{environment}` (serial {}, lineage {}) from {} to {}.",
                done.serial,
                done.lineage,
                backend.state_location(&environment),
                target.state_location(&environment)
            );
            if let Some(kept) = done.kept {
                println!("The old copy is kept as {kept}.");
            }
            let section = if to == "local" {
                "remove the `state:` section from the spec (or stop passing --state-url)"
                    .to_string()
            } else {
                let l = crate::state::S3Location::parse(&to).map_err(Failure::new)?;
                format!(
                    "set `state: {{ s3: {{ bucket: {}, prefix: {} }} }}` in the spec (or pass --state-url {to})",
                    l.bucket,
                    if l.prefix.is_empty() { "\"\"" } else { &l.prefix }
                )
            };
            println!("Next: {section}, so that every run uses the new location.");
        }
    }
    Ok(0)
}

/// Moves the tags of what `state mv` moved to their new address (see
/// [`surgery::tag_moves`]); AWS is called only when some differ. The state is moved
/// already: a failure here leaves tag-only updates for the next apply, and says so.
async fn retag(s: &Settings, backend: &Backend, environment: &str, moved: &[Address]) -> Outcome {
    let later = "the state is moved; the next apply updates the tags (a plan shows them)";
    let Ok((_, desired)) = super::common::load_full(s) else {
        return Err(Failure::new(format!(
            "cannot retag the moved resources: the spec does not load (see above); {later}"
        )));
    };
    let moves = surgery::tag_moves(backend, environment, moved, &desired)?;
    if moves.is_empty() {
        return Ok(0);
    }
    let providers = super::common::aws_providers(&desired.region)
        .await
        .map_err(|e| {
            Failure::new(format!(
                "cannot retag the moved resources: {}\n  {later}",
                e.message
            ))
        })?;
    let failed = surgery::retag(backend, environment, &moves, &providers).await?;
    for m in moves
        .iter()
        .filter(|m| !failed.iter().any(|(a, _)| *a == m.address))
    {
        let mut what = m.set.clone();
        what.extend(m.removed.iter().map(|k| format!("-{k}")));
        println!("Retagged {} ({}).", m.address, what.join(", "));
    }
    for (address, error) in &failed {
        anstream::eprintln!("could not retag {address}: {error}");
    }
    if !failed.is_empty() {
        return Err(Failure::new(format!(
            "{} moved resource(s) could not be retagged (see above); {later}",
            failed.len()
        )));
    }
    Ok(0)
}
