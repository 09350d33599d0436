//! `deploy env create` and `deploy env list`.

use std::time::{Duration, SystemTime};

use anstream::{eprint, println};
use serde_json::{json, Value};

use super::common::{Failure, Outcome};
use super::{EnvCommand, Settings};
use crate::ops::environments;
use crate::ops::OpsError;
use crate::render;

pub(super) fn run(s: &Settings, c: EnvCommand) -> Outcome {
    match c {
        EnvCommand::Create {
            name,
            template,
            ttl,
            if_missing,
        } => {
            if if_missing {
                ensure(s, &name, &template, ttl.as_deref())
            } else {
                create(
                    s,
                    &name,
                    &template,
                    ttl.as_deref().unwrap_or(environments::DEFAULT_TTL),
                )
            }
        }
        EnvCommand::List(a) => list(s, a.json),
    }
}

/// `env create --if-missing`: create, or keep (extending its expiry) what exists.
fn ensure(s: &Settings, name: &str, template: &str, ttl: Option<&str>) -> Outcome {
    let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    match environments::ensure(&s.environments_dir, name, template, ttl, SystemTime::now()) {
        Ok(environments::Ensured::Created(created)) => {
            let ttl = ttl.unwrap_or(environments::DEFAULT_TTL);
            let kept = keep_recorded(s, &created.path, name, ttl)?;
            println!(
                "Created {} ({} resources, ephemeral, expires {}{}).",
                created.path.display(),
                created.resources,
                at(kept.unwrap_or(created.expires_at)),
                if kept.is_some() {
                    ", as its state records: more than half its lifetime is left"
                } else {
                    ""
                }
            );
            Ok(0)
        }
        Ok(environments::Ensured::Extended { path, from, to }) => {
            println!(
                "{} exists; extended its expiry from {} to {} (resources are retagged at the next apply).",
                path.display(),
                at(from),
                at(to)
            );
            Ok(0)
        }
        Ok(environments::Ensured::Kept { path, expires_at }) => {
            println!(
                "{} exists (expires {}); nothing to do.",
                path.display(),
                at(expires_at)
            );
            Ok(0)
        }
        Err(e) => {
            if let OpsError::InvalidTemplate { diagnostics, .. } = &e {
                eprint!("{}", render::diagnostics(diagnostics));
            }
            Err(Failure::from(e))
        }
    }
}

/// A file made afresh (a new checkout) for an environment that may exist: its state's
/// recorded expiry is kept while more than half of `ttl` is left (see
/// [`environments::keep_recorded`]). A state that cannot be read is said, and the new
/// expiry stands.
fn keep_recorded(
    s: &Settings,
    path: &std::path::Path,
    name: &str,
    ttl: &str,
) -> Result<Option<SystemTime>, Failure> {
    let Some(loaded) = crate::spec::check(path).0 else {
        return Ok(None);
    };
    let recorded = s
        .backend_for(Some(&loaded))
        .and_then(|b| b.read(name).map_err(Failure::from));
    let recorded = match recorded {
        Ok(state) => state.as_ref().and_then(environments::recorded_expiry),
        Err(e) => {
            anstream::eprintln!(
                "warning: could not read the state of `{name}` to keep its recorded expiry: {}",
                e.message
            );
            None
        }
    };
    match recorded {
        Some(t) => Ok(environments::keep_recorded(
            &s.environments_dir,
            name,
            t,
            ttl,
            SystemTime::now(),
        )?),
        None => Ok(None),
    }
}

fn create(s: &Settings, name: &str, template: &str, ttl: &str) -> Outcome {
    let created =
        match environments::create(&s.environments_dir, name, template, ttl, SystemTime::now()) {
            Ok(c) => c,
            Err(e) => {
                if let OpsError::InvalidTemplate { diagnostics, .. } = &e {
                    eprint!("{}", render::diagnostics(diagnostics));
                }
                return Err(Failure::from(e));
            }
        };
    println!(
        "Created {} ({} resources, ephemeral, expires {}).\nNext: deploy apply -e {name}; remove it with deploy destroy -e {name}.",
        created.path.display(),
        created.resources,
        humantime::format_rfc3339_seconds(created.expires_at)
    );
    Ok(0)
}

fn list(s: &Settings, as_json: bool) -> Outcome {
    let backend_for = |l: &crate::spec::LoadedSpec| s.backend_for(Some(l)).ok();
    let rows: Vec<Value> = environments::list(&s.environments_dir, &backend_for, SystemTime::now())
        .into_iter()
        .map(|e| {
            json!({
                "environment": e.environment,
                "file": e.file,
                "kind": if e.ephemeral { "ephemeral" } else { "standard" },
                "created_at": e.created_at,
                "age_s": e.age_s,
                "expires_at": e.expires_at,
                "expired": e.expired,
                "resources": e.resources,
                "retained": e.retained.iter().map(|r| json!({"kind": r.kind, "name": r.name, "source": r.source})).collect::<Vec<_>>(),
            })
        })
        .collect();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return Ok(0);
    }
    println!(
        "{:<16} {:<10} {:>8} {:<22} {:>9}  kept",
        "environment", "kind", "age", "expires", "resources"
    );
    for r in &rows {
        let age = r["age_s"]
            .as_u64()
            .map(|a| humantime::format_duration(Duration::from_secs(a / 60 * 60)).to_string())
            .unwrap_or_else(|| "-".into());
        let expires = match (r["expires_at"].as_str(), r["expired"].as_bool()) {
            (Some(e), Some(true)) => format!("{e} (expired)"),
            (Some(e), _) => e.to_string(),
            _ => "-".into(),
        };
        let kept: Vec<&str> = r["retained"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k["name"].as_str()).collect())
            .unwrap_or_default();
        println!(
            "{:<16} {:<10} {:>8} {:<22} {:>9}  {}",
            r["environment"].as_str().unwrap_or_default(),
            r["kind"].as_str().unwrap_or_default(),
            if age.is_empty() { "0m".into() } else { age },
            expires,
            r["resources"],
            if kept.is_empty() {
                "-".to_string()
            } else {
                format!("final snapshot {}", kept.join(", "))
            }
        );
    }
    Ok(0)
}
