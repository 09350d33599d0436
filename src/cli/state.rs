//! `deploy state list|show|rm|mv`: the recorded state, read or changed without calling
//! AWS.

use anstream::println;
use serde_json::json;

use super::common::{Failure, Outcome};
use super::{Settings, StateCommand};
use crate::model::Address;
use crate::ops::surgery;
use crate::state::{LocalBackend, State};

fn recorded(backend: &LocalBackend, environment: &str) -> Result<State, Failure> {
    backend.read(environment)?.ok_or_else(|| {
        Failure::new(format!(
            "`{environment}` has no state at {}",
            backend.path(environment).display()
        ))
    })
}

pub(super) fn run(s: &Settings, c: StateCommand) -> Outcome {
    let environment = s.env_name()?;
    let backend = LocalBackend::new(&s.state_dir);
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
                done.serial,
                done.backup.display()
            );
        }
        StateCommand::Mv { from, to } => {
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
                done.serial,
                done.backup.display()
            );
        }
    }
    Ok(0)
}
