//! Garbage collection of ephemeral environments: found by their tags alone (no spec
//! file, no state needed), each with its earliest expiry.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::OpsError;
use crate::provider::Providers;

/// An ephemeral environment the cloud holds resources of.
pub struct Ephemeral {
    /// Its `deploy:project` tag: environments of two projects may share a name.
    pub project: Option<String>,
    pub environment: String,
    /// The earliest `deploy:expires-at` among its resources; `None` when none has one.
    pub expires_at: Option<SystemTime>,
    pub resources: usize,
}

impl Ephemeral {
    /// Whether it is past its expiry at `now` (never, without one).
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Every environment with resources tagged `deploy:ephemeral=true`, by project and
/// name.
pub async fn ephemeral_environments(providers: &Providers) -> Result<Vec<Ephemeral>, OpsError> {
    let want = BTreeMap::from([("deploy:ephemeral".to_string(), "true".to_string())]);
    let found = super::discover(providers, &want).await?;
    // (Project, environment) → (earliest expiry, resources).
    type Key = (Option<String>, String);
    let mut envs: BTreeMap<Key, (Option<SystemTime>, usize)> = BTreeMap::new();
    for f in &found {
        let Some(env) = f.tag("deploy:environment") else {
            continue;
        };
        let expiry = f
            .tag("deploy:expires-at")
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let project = f.tag("deploy:project").map(String::from);
        let e = envs
            .entry((project, env.to_string()))
            .or_insert((expiry, 0));
        e.0 = match (e.0, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        e.1 += 1;
    }
    Ok(envs
        .into_iter()
        .map(
            |((project, environment), (expires_at, resources))| Ephemeral {
                project,
                environment,
                expires_at,
                resources,
            },
        )
        .collect())
}
