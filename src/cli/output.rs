//! `deploy output`: outputs recorded in state (endpoints, ARNs, the API's URL).

use std::collections::BTreeMap;

use anstream::println;
use serde_json::Value;

use super::common::{Failure, Outcome};
use super::{OutputArgs, Settings};
use crate::spec;

fn recorded_outputs(s: &Settings) -> Result<(String, BTreeMap<String, Value>), Failure> {
    let environment = s.env_name()?;
    let state = s.backend()?.read(&environment)?;
    let mut out = BTreeMap::new();
    for (address, r) in state.iter().flat_map(|st| st.resources.iter()) {
        for (k, v) in &r.outputs {
            out.insert(format!("{address}.{k}"), v.clone());
        }
    }
    Ok((environment, out))
}

pub(super) fn run(s: &Settings, a: OutputArgs) -> Outcome {
    let (environment, outputs) = recorded_outputs(s)?;
    if let Some(name) = &a.name {
        let Some(v) = outputs.get(name) else {
            let hint = spec::diag::did_you_mean(name, outputs.keys().map(String::as_str))
                .map(|m| format!("\n  hint: did you mean `{m}`?"))
                .unwrap_or_default();
            return Err(Failure::new(format!(
                "`{environment}` has no output `{name}`{hint}"
            )));
        };
        match (a.json, v) {
            (false, Value::String(text)) => println!("{text}"),
            _ => println!("{v}"),
        }
        return Ok(0);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outputs).expect("outputs serialize")
        );
    } else if outputs.is_empty() {
        println!(
            "`{environment}` has no recorded outputs; run `deploy apply -e {environment}` first."
        );
    } else {
        let width = outputs.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in &outputs {
            let text = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            println!("{k:<width$} = {text}");
        }
    }
    Ok(0)
}
