//! `deploy plan`: what apply would change, and why; and the planning `apply` shares.

use std::path::Path;

use anstream::{eprint, print, println};

use super::common::{aws_clients, build_code, config, load_full, progress, Failure, Outcome};
use super::{PlanArgs, ReportFormat, Settings};
use crate::model::Address;
use crate::ops;
use crate::plan::desired::Desired;
use crate::plan::Plan;
use crate::provider::Providers;
use crate::render;
use crate::spec::{self, Diagnostics};
use crate::state::Backend;

pub(super) async fn run(s: &Settings, a: PlanArgs) -> Outcome {
    let (loaded, mut desired) = load_full(s)?;
    if !a.no_build {
        let (_, built) = build_code(s, &loaded, None)?;
        for b in &built {
            desired.set_code(&b.function, &b.code_sha256);
        }
    }
    let locking = if a.lock {
        ops::Locking::ForPlan
    } else {
        ops::Locking::No
    };
    let plan = make(
        s,
        &s.backend_for(Some(&loaded))?,
        &loaded,
        &desired,
        a.no_refresh,
        a.parallelism,
        &a.target,
        locking,
    )
    .await?
    .plan;
    if let Some(out) = &a.out {
        write_plan(out, &plan)?;
    }
    let format = if a.json { ReportFormat::Json } else { a.format };
    if format == ReportFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serializes")
        );
    } else if format == ReportFormat::Markdown {
        print!("{}", render::markdown::plan(&plan, false));
    } else {
        print!("{}", render::plan(&plan, false));
        if let Some(out) = &a.out {
            println!(
                "\nSaved the plan to {}. Apply exactly this with `deploy apply --plan {}`.",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if a.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// Plans `desired` under the lock `locking` names, refreshing from the cloud unless
/// `no_refresh`, with the account it would be applied in and its monthly cost.
#[allow(clippy::too_many_arguments)]
pub(super) async fn make(
    s: &Settings,
    backend: &Backend,
    loaded: &spec::LoadedSpec,
    desired: &Desired,
    no_refresh: bool,
    parallelism: u16,
    targets: &[String],
    locking: ops::Locking,
) -> Result<ops::Planned, Failure> {
    let (providers, account) = refresh_providers(loaded, desired, no_refresh).await?;
    let targets: Vec<Address> = targets.iter().map(|t| Address::new(t.clone())).collect();
    let mut planned = ops::plan_with(
        backend,
        desired,
        providers.as_ref(),
        &config(parallelism),
        &progress(s),
        &targets,
        locking,
    )
    .await?;
    planned.plan.account = account;
    let siblings = ops::sibling_resources(&s.siblings_dir(), &desired.environment);
    ops::attach_cost(
        &mut planned.plan,
        Some(desired),
        planned.state.as_ref(),
        &siblings,
    );
    Ok(planned)
}

/// Providers for a refreshing plan, and the account the credentials belong to: none
/// for `--no-refresh`; an empty set when there is no state (nothing to read). The
/// credentials are checked (one identity call) even when there is no state to
/// refresh: a plan that cannot be applied should not look like one that can.
async fn refresh_providers(
    loaded: &spec::LoadedSpec,
    desired: &Desired,
    no_refresh: bool,
) -> Result<(Option<Providers>, Option<String>), Failure> {
    if no_refresh {
        return Ok((None, None));
    }
    let clients = aws_clients(&desired.region, None).await?;
    check_zones(&clients, loaded).await?;
    let account = Some(clients.account.clone());
    // Also without state: what is tagged with the environment is looked for then.
    Ok((Some(crate::aws::providers(&clients)), account))
}

/// Every subnet's zone letter names a zone this account has in the region.
async fn check_zones(
    clients: &crate::aws::Clients,
    loaded: &spec::LoadedSpec,
) -> Result<(), Failure> {
    let zones = crate::aws::ec2::zones(clients).await.map_err(|e| {
        Failure::new(format!(
            "cannot list the availability zones of {}: {e}",
            clients.region
        ))
    })?;
    let region = &clients.region;
    let letters = |z: &String| z.strip_prefix(region.as_str()).map(str::to_string);
    let have: Vec<String> = zones.iter().filter_map(letters).collect();
    let mut d = Diagnostics::default();
    let network = &loaded.spec.network;
    for (set, subnets) in [
        ("public_subnets", &network.public_subnets),
        ("private_subnets", &network.private_subnets),
    ] {
        for letter in subnets.keys().filter(|l| !have.contains(l)) {
            d.push(
                spec::Diagnostic::new(
                    loaded.sources.key(&format!("/network/{set}/{}", spec::yaml::escape(letter))),
                    format!(
                        "availability zone {region}{letter} does not exist in this account (it has {})",
                        have.iter().map(|l| format!("{region}{l}")).collect::<Vec<_>>().join(", ")
                    ),
                )
                .hint(format!(
                    "use one of the letters {}; zone letters differ by region and account",
                    have.join(", ")
                )),
            );
        }
    }
    if d.is_empty() {
        return Ok(());
    }
    eprint!("{}", render::diagnostics(&d.finish()));
    Err(Failure::shown())
}

fn write_plan(path: &Path, plan: &Plan) -> Result<(), Failure> {
    let body = serde_json::to_vec_pretty(plan).expect("plan serializes");
    std::fs::write(path, body)
        .map_err(|e| Failure::new(format!("cannot write the plan to {}: {e}", path.display())))
}
