//! Finding an environment by its tags when its state is lost or stale: list every
//! kind's resources carrying the tags, refuse what may not be swept, and record the
//! rest in state so a destroy deletes it.

use std::collections::{BTreeMap, BTreeSet};

use super::OpsError;
use crate::engine;
use crate::model::{Address, Kind};
use crate::provider::{Observed, Providers};
use crate::state::{Backend, ResourceState, State};

/// A resource a sweep found by its tags.
pub struct Found {
    pub kind: Kind,
    pub observed: Observed,
}

impl Found {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.observed
            .inputs
            .get("tags")
            .and_then(|t| t.get(key))
            .and_then(serde_json::Value::as_str)
    }
}

/// Every resource carrying all of `tags`, in every kind the providers know.
pub async fn discover(
    providers: &Providers,
    tags: &BTreeMap<String, String>,
) -> Result<Vec<Found>, OpsError> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let Ok(p) = providers.get(kind) else {
            continue;
        };
        let listed = engine::retry(
            &engine::RetryPolicy::default(),
            || p.list(tags),
            |_, _, _| {},
        )
        .await
        .map_err(|e| OpsError::Plan(format!("cannot list {kind} resources: {e}")))?;
        out.extend(
            listed
                .into_iter()
                .filter(|o| o.carries(tags))
                .map(|observed| Found { kind, observed }),
        );
    }
    Ok(out)
}

/// Where a kind sits in creation order; a sweep deletes higher ranks first.
fn rank(kind: Kind) -> u8 {
    use Kind::*;
    match kind {
        Vpc | IamRole | UserPool => 0,
        Subnet | InternetGateway | ElasticIp | SecurityGroup | UserPoolClient => 1,
        NatGateway | RouteTable | SecurityGroupRule | ServerlessCache | LogGroup => 2,
        SsmParameter | LambdaFunction => 3,
        RestApi | ScheduleRule => 4,
    }
}

/// Records `found` in the environment's state (creating it when lost), so destroy
/// deletes it too: resources already recorded keep their record; the others go under
/// their `deploy:address` tag, or `swept.KIND.ID` when that is taken or missing, and
/// depend on everything found of an earlier rank. Returns the addresses added.
pub fn record_found(
    backend: &Backend,
    project: &str,
    environment: &str,
    found: &[Found],
) -> Result<Vec<Address>, OpsError> {
    // A sweep runs when the state is lost or stale; a dead holder's lock is taken
    // over silently here (the sweep's own output says what it found).
    let _lock = backend.lock(environment, "sweep")?;
    let mut state = backend
        .read(environment)?
        .unwrap_or_else(|| State::new(project, environment));
    let known: BTreeSet<(Kind, String)> = state
        .resources
        .values()
        .map(|r| (r.kind, r.id.clone()))
        .collect();
    let mut added = Vec::new();
    let mut placed: Vec<(Address, Kind)> = state
        .resources
        .iter()
        .map(|(a, r)| (a.clone(), r.kind))
        .collect();
    let mut fresh = Vec::new();
    for f in found {
        if known.contains(&(f.kind, f.observed.id.clone())) {
            continue;
        }
        let by_tag = f
            .tag("deploy:address")
            .map(|a| Address::new(a.to_string()))
            .filter(|a| !state.resources.contains_key(a) && !fresh.iter().any(|(x, _)| x == a));
        let address = by_tag.unwrap_or_else(|| {
            Address::new(format!(
                "swept.{:?}.{}",
                f.kind,
                f.observed.id.replace(['/', '.'], "-")
            ))
        });
        fresh.push((address, f));
    }
    for (address, f) in &fresh {
        placed.push((address.clone(), f.kind));
    }
    for (address, f) in fresh {
        let depends_on = placed
            .iter()
            .filter(|(a, k)| rank(*k) < rank(f.kind) && a != &address)
            .map(|(a, _)| a.clone())
            .collect();
        state.resources.insert(
            address.clone(),
            ResourceState {
                kind: f.kind,
                id: f.observed.id.clone(),
                inputs: f.observed.inputs.clone(),
                outputs: f.observed.outputs.clone(),
                depends_on,
                protect: f.tag("deploy:protected") == Some("true"),
                pending: false,
            },
        );
        added.push(address);
    }
    backend.write(&mut state)?;
    Ok(added)
}

/// What a sweep of one environment found: everything tagged with it, and why any of it
/// may not be swept.
pub struct Scan {
    pub found: Vec<Found>,
    pub refused: Vec<String>,
}

/// Everything tagged with `environment` (of `project`, when known), and the reasons
/// any of it may not be swept (not tagged ephemeral, or protected). Without a project,
/// finding several refuses: two projects' `pr-7` in one account are not one
/// environment.
pub async fn scan(
    providers: &Providers,
    project: Option<&str>,
    environment: &str,
) -> Result<Scan, OpsError> {
    let mut want = BTreeMap::from([("deploy:environment".to_string(), environment.to_string())]);
    if let Some(project) = project.filter(|p| !p.is_empty()) {
        want.insert("deploy:project".to_string(), project.to_string());
    }
    let found = discover(providers, &want).await?;
    let projects: BTreeSet<&str> = found
        .iter()
        .filter_map(|f| f.tag("deploy:project"))
        .collect();
    if projects.len() > 1 {
        return Err(OpsError::Refused(format!(
            "resources of {} projects carry deploy:environment={environment} ({}); a sweep of one would take the others'\n  hint: run it with the project's spec (-e PATH), which names its project",
            projects.len(),
            projects.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let refused = found
        .iter()
        .filter_map(|f| {
            let what = format!(
                "{} {} ({})",
                f.kind,
                f.observed.id,
                f.tag("deploy:address").unwrap_or("not deploy's")
            );
            if f.tag("deploy:protected") == Some("true") {
                Some(format!("{what}: tagged deploy:protected"))
            } else if f.tag("deploy:ephemeral") != Some("true") {
                Some(format!("{what}: not tagged deploy:ephemeral=true"))
            } else {
                None
            }
        })
        .collect();
    Ok(Scan { found, refused })
}

/// A finished sweep: how many resources carried the environment's tag, and the
/// addresses of those it added to the state.
pub struct Swept {
    pub found: usize,
    pub added: Vec<Address>,
}

/// Scans for `environment`'s resources and records those the state lacks; refuses,
/// changing nothing, when any of them is not ephemeral or is protected.
pub async fn sweep(
    backend: &Backend,
    providers: &Providers,
    project: Option<&str>,
    environment: &str,
) -> Result<Swept, OpsError> {
    let Scan { found, refused } = scan(providers, project, environment).await?;
    if !refused.is_empty() {
        return Err(OpsError::SweepRefused {
            environment: environment.to_string(),
            refused,
        });
    }
    let project = found
        .iter()
        .find_map(|f| f.tag("deploy:project").map(String::from))
        .unwrap_or_default();
    let added = record_found(backend, &project, environment, &found)?;
    Ok(Swept {
        found: found.len(),
        added,
    })
}
