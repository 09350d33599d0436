//! `deploy status`: the recorded state and its lock, summarized.

use std::collections::BTreeMap;

use anstream::println;
use serde_json::json;

use super::common::Outcome;
use super::Settings;
use crate::model::Address;

pub(super) fn run(s: &Settings, as_json: bool) -> Outcome {
    let environment = s.env_name()?;
    let backend = s.backend()?;
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
                "state_file": backend.state_location(&environment),
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
            backend.state_location(&environment)
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
