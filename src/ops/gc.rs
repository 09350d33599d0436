//! Garbage collection of ephemeral environments: found by their tags alone (no spec
//! file, no state needed), each with its earliest expiry.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::OpsError;
use crate::provider::Providers;

/// An ephemeral environment the cloud holds resources of.
pub struct Ephemeral {
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

/// Every environment with resources tagged `deploy:ephemeral=true`, by name.
pub async fn ephemeral_environments(providers: &Providers) -> Result<Vec<Ephemeral>, OpsError> {
    let want = BTreeMap::from([("deploy:ephemeral".to_string(), "true".to_string())]);
    let found = super::discover(providers, &want).await?;
    // Environment → (earliest expiry, resources).
    let mut envs: BTreeMap<String, (Option<SystemTime>, usize)> = BTreeMap::new();
    for f in &found {
        let Some(env) = f.tag("deploy:environment") else {
            continue;
        };
        let expiry = f
            .tag("deploy:expires-at")
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let e = envs.entry(env.to_string()).or_insert((expiry, 0));
        e.0 = match (e.0, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        e.1 += 1;
    }
    Ok(envs
        .into_iter()
        .map(|(environment, (expires_at, resources))| Ephemeral {
            environment,
            expires_at,
            resources,
        })
        .collect())
}
