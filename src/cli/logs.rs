//! `deploy logs`: a function's log lines (every function's, without FUNCTION), once or
//! following.

use std::time::Duration;

use anstream::println;
use serde_json::json;

use super::common::{deployed, function_name, Failure, Outcome};
use super::{LogsArgs, Settings};

pub(super) async fn run(s: &Settings, a: LogsArgs) -> Outcome {
    let since = humantime::parse_duration(&a.since).map_err(|e| {
        Failure::new(format!(
            "--since `{}` is not a duration ({e}); e.g. 10m, 2h, 1d",
            a.since
        ))
    })?;
    let (loaded, state, clients) = deployed(s).await?;
    let functions: Vec<(String, String)> = match &a.function {
        Some(f) => vec![(f.clone(), function_name(&loaded, &state, f)?)],
        None => loaded
            .spec
            .functions
            .keys()
            .filter_map(|f| Some((f.clone(), function_name(&loaded, &state, f).ok()?)))
            .collect(),
    };
    let width = functions.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    let now_ms = |d: Duration| {
        std::time::SystemTime::now()
            .checked_sub(d)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    };
    let mut from = now_ms(since);
    let mut seen = std::collections::HashSet::new();
    loop {
        let mut batch = Vec::new();
        for (logical, name) in &functions {
            let group = crate::aws::logs::function_group(name);
            for e in crate::aws::logs::events(&clients, &group, from, a.filter.as_deref())
                .await
                .map_err(Failure::new)?
            {
                if seen.insert(e.id.clone()) {
                    batch.push((logical, e));
                }
            }
        }
        batch.sort_by_key(|x| x.1.timestamp);
        for (logical, e) in &batch {
            from = from.max(e.timestamp);
            if a.json {
                println!(
                    "{}",
                    json!({"function": logical, "timestamp": e.timestamp, "stream": e.stream, "message": e.message})
                );
            } else {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(e.timestamp.max(0) as u64);
                let prefix = if functions.len() > 1 {
                    format!("{logical:width$}  ")
                } else {
                    String::new()
                };
                println!(
                    "{} {prefix}{}",
                    humantime::format_rfc3339_millis(at),
                    e.message
                );
            }
        }
        if !a.follow {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    Ok(0)
}
