//! `deploy invoke`: invoke a function's live alias and print what it returned.

use anstream::{eprintln, println};
use serde_json::Value;

use super::common::{deployed, function_name, paint_error, Failure, Outcome};
use super::{InvokeArgs, Settings};

pub(super) async fn run(s: &Settings, a: InvokeArgs) -> Outcome {
    let payload = match a.payload.as_deref() {
        None => b"{}".to_vec(),
        Some(p) => match p.strip_prefix('@') {
            Some(file) => std::fs::read(file)
                .map_err(|e| Failure::new(format!("cannot read the payload from {file}: {e}")))?,
            None => p.as_bytes().to_vec(),
        },
    };
    if let Err(e) = serde_json::from_slice::<Value>(&payload) {
        return Err(Failure::new(format!(
            "the payload is not JSON: {e}\n  hint: --payload '{{\"key\": \"value\"}}' or --payload @event.json"
        )));
    }
    let (loaded, state, clients) = deployed(s).await?;
    let name = function_name(&loaded, &state, &a.function)?;
    let inv = crate::aws::lambda::invoke(&clients, &name, payload, a.asynchronous, a.logs)
        .await
        .map_err(Failure::new)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inv).expect("invocation serializes")
        );
    } else {
        if let Some(tail) = &inv.log_tail {
            eprintln!("{}", tail.trim_end());
        }
        if a.asynchronous {
            eprintln!("Queued an invocation of {name}:live (HTTP {}).", inv.status);
        } else {
            let shown = serde_json::from_str::<Value>(&inv.payload)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| inv.payload.clone());
            println!("{shown}");
        }
        if let Some(error) = &inv.function_error {
            eprintln!(
                "{} {name} version {} failed ({error}); the payload above is its error",
                paint_error(),
                inv.executed_version.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(if inv.function_error.is_some() { 1 } else { 0 })
}
