//! `deploy destroy`: delete everything the environment's state records (after a sweep
//! by tags with `--sweep`), then deal with its caches' final snapshots.

use anstream::eprintln;

use super::common::{aws_clients, aws_providers, config, progress, Outcome};
use super::{DestroyArgs, Settings};
use crate::ops::destroy::{self, FinalSnapshot};
use crate::ops::sweep;
use crate::spec;

pub(super) async fn run(s: &Settings, a: DestroyArgs) -> Outcome {
    // A sweep works from tags: the spec file may be gone too.
    let (environment, region, project) = match (s.spec_path(), a.sweep, &s.env) {
        (Ok(path), _, _) => {
            let loaded = spec::check(path).0;
            (
                super::settings::name_in(path, loaded.as_ref()),
                loaded
                    .as_ref()
                    .map(|l| l.spec.region.clone())
                    .unwrap_or_default(),
                loaded.map(|l| l.spec.project),
            )
        }
        (Err(_), true, Some(name)) if !name.contains('/') && !name.ends_with(".yaml") => (
            name.clone(),
            std::env::var("AWS_REGION").unwrap_or_default(),
            None,
        ),
        (Err(e), _, _) => return Err(e),
    };
    destroy_env(s, project.as_deref(), &environment, &region, &a).await
}

/// Destroys `environment` (of `project`, when known) in `region`, after a sweep by
/// tags when asked.
pub(super) async fn destroy_env(
    s: &Settings,
    project: Option<&str>,
    environment: &str,
    region: &str,
    a: &DestroyArgs,
) -> Outcome {
    let backend = s.backend()?;
    if a.sweep {
        let providers = aws_providers(region).await?;
        let swept = sweep::sweep(&backend, &providers, project, environment).await?;
        if !s.quiet {
            eprintln!(
                "Sweep: {} resource(s) tagged deploy:environment={environment}; {} not in state were added to it: {}",
                swept.found,
                swept.added.len(),
                if swept.added.is_empty() {
                    "-".to_string()
                } else {
                    swept.added.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                }
            );
        }
    }
    let clients = aws_clients(region, None).await?;
    let prepared = destroy::prepare(
        &backend,
        environment,
        region,
        &clients,
        &config(a.parallelism),
        &progress(s),
    )
    .await?;
    if prepared.ephemeral && !a.allow_data_loss && !s.quiet {
        eprintln!("`{environment}` is ephemeral: destroying it needs no --allow-data-loss.");
    }
    let code = super::apply::execute(
        s,
        &backend,
        &prepared.plan,
        None,
        a.yes,
        a.allow_data_loss || prepared.ephemeral,
        a.parallelism,
        None,
    )
    .await?
    .code;
    if code == 0 && prepared.plan.has_changes() {
        let quiet = s.quiet;
        let show = |f: &FinalSnapshot| {
            match f {
            FinalSnapshot::Deleted { name } => {
                if !quiet {
                    eprintln!(
                        "deleted the final cache snapshot {name} (the environment is ephemeral)"
                    );
                }
            }
            FinalSnapshot::Kept { name, cache } => eprintln!(
                "kept the final snapshot {name} of {cache}: it is billed until deleted (restore from it, or delete it in the ElastiCache console or with `aws elasticache delete-serverless-cache-snapshot`)"
            ),
        }
        };
        destroy::final_snapshots(
            &backend,
            &clients,
            &prepared.project(),
            environment,
            a.sweep || prepared.ephemeral,
            &show,
        )
        .await?;
    }
    Ok(code)
}
