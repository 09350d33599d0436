//! `deploy gc`: destroy every ephemeral environment past its expiry, found by tags.

use anstream::println;

use super::common::{aws_providers, Outcome};
use super::{DestroyArgs, GcArgs, Settings};
use crate::ops;

pub(super) async fn run(s: &Settings, a: GcArgs) -> Outcome {
    let region = a.region.clone().unwrap_or_else(|| "us-east-1".into());
    let providers = aws_providers(&region).await?;
    let envs = ops::gc::ephemeral_environments(&providers).await?;
    let now = std::time::SystemTime::now();
    let mut failed = 0;
    if envs.is_empty() {
        println!("No ephemeral environments in {region}.");
    }
    for e in &envs {
        let (env, count) = (&e.environment, e.resources);
        let when = e
            .expires_at
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_else(|| "never (no deploy:expires-at tag)".into());
        if !e.expired(now) {
            println!("keep     {env}: {count} resource(s), expires {when}");
            continue;
        }
        if a.dry_run {
            println!("would destroy {env}: {count} resource(s), expired {when}");
            continue;
        }
        println!("destroy  {env}: {count} resource(s), expired {when}");
        // Found by its tags alone: no spec file is read.
        let args = DestroyArgs {
            yes: true,
            sweep: true,
            allow_data_loss: false,
            parallelism: a.parallelism,
        };
        let code = Box::pin(super::destroy::destroy_env(
            s,
            e.project.as_deref(),
            env,
            &region,
            &args,
        ))
        .await;
        match code {
            Ok(0) => println!("destroyed {env}"),
            Ok(c) => {
                failed += 1;
                println!("FAILED   {env}: destroy exited {c}");
            }
            Err(f) => {
                failed += 1;
                println!("FAILED   {env}: {}", f.message);
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
