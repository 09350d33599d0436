//! The contract between the engine and the clouds it drives: one [`Provider`] per
//! resource kind (read, find, create, update, delete, wait) and the classification of
//! their errors, which decides whether the engine retries.

pub mod memory;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Address, Attrs, Kind};

/// What kind of failure a provider call hit; decides retry behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The resource does not exist (a delete treats this as done).
    NotFound,
    /// Rate limited: retry with backoff.
    Throttled,
    /// A transient failure (5xx, eventual consistency, propagation delay): retry.
    Retryable,
    /// The resource is busy (an update in progress, a dependency still attached):
    /// retry for a while.
    Conflict,
    /// Retrying will not help.
    Fatal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProviderError {
    pub class: ErrorClass,
    /// The service's error code, when there is one (`RequestLimitExceeded`).
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ProviderError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            code: None,
            message: message.into(),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NotFound, message)
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }

    /// The cloud says the object already exists (its name or rule is taken).
    pub fn is_already_exists(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c.contains("AlreadyExist")
                || c.ends_with(".Duplicate")
                || matches!(c, "EntityAlreadyExists" | "ResourceConflictException")
        })
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::Throttled | ErrorClass::Retryable | ErrorClass::Conflict
        )
    }
}

/// A resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    /// Inputs as the cloud sees them (for drift detection).
    pub inputs: Attrs,
    /// Attributes the cloud assigned.
    pub outputs: Attrs,
}

impl Observed {
    /// Whether its `tags` input holds every one of `tags`. Listing by tags checks this
    /// too rather than trusting the service's filter alone: a filter an API (or an
    /// emulator) ignores would otherwise hand over another environment's resources.
    pub fn carries<'a>(&self, tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
        let have = self.inputs.get("tags");
        tags.into_iter().all(|(k, v)| {
            have.and_then(|t| t.get(k))
                .and_then(serde_json::Value::as_str)
                == Some(v.as_str())
        })
    }
}

/// Whether a created or updated resource has settled.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready(Observed),
    /// Still settling, with the cloud's status word (`creating`, `pending`…).
    Pending(String),
    /// Settled in a failed state; needs a replace.
    Failed(String),
}

/// Whether a delete has finished when the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Done,
    /// Accepted; poll `read` until the resource is gone.
    InProgress,
}

/// What a create or delete is told about the resource besides its inputs.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub address: &'a Address,
    /// The physical name, for kinds whose name is their identity (roles, functions).
    pub name: Option<String>,
    /// `deploy:*` plus spec tags, for lookup after a crash.
    pub tags: BTreeMap<String, String>,
    /// The resolved inputs, when known: kinds without tags are found within their
    /// parent (an app client within its user pool).
    pub inputs: Option<&'a Attrs>,
}

/// Drives one kind of resource.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The resource's current attributes, or `None` if it is gone.
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError>;
    /// Several resources of this kind at once; providers whose API can describe many
    /// resources in one call override this (refresh calls it once per kind).
    async fn read_many(
        &self,
        ids: &[String],
    ) -> Result<std::collections::BTreeMap<String, Option<Observed>>, ProviderError> {
        let mut out = std::collections::BTreeMap::new();
        for id in ids {
            out.insert(id.clone(), self.read(id).await?);
        }
        Ok(out)
    }
    /// Whether `read_many` describes in one call (refresh then batches this kind
    /// instead of reading each resource in parallel).
    fn batches_reads(&self) -> bool {
        false
    }
    /// Every resource carrying this `deploy:address` tag (adoption after a crash). An
    /// old object awaiting deletion carries the same tag, so this may return several.
    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError>;
    /// Every resource of this kind carrying all of `tags` (a sweep of an environment
    /// whose state is lost or stale). Inputs include the resource's `tags`. A kind
    /// that cannot be listed says so rather than reporting nothing.
    async fn list(&self, tags: &BTreeMap<String, String>) -> Result<Vec<Observed>, ProviderError> {
        let _ = tags;
        Err(ProviderError::fatal(
            "this kind of resource cannot be listed by tags",
        ))
    }
    /// Every resource of this kind inside `parent` (a security group's rules), whatever
    /// its tags: `deploy import` adopts them with their parent. A kind without a parent
    /// says so.
    async fn within(&self, parent: &str) -> Result<Vec<Observed>, ProviderError> {
        let _ = parent;
        Err(ProviderError::fatal(
            "this kind of resource is not listed within a parent",
        ))
    }
    /// Whether repeating a create that may have happened is harmless: the API takes a
    /// client token (`CreateNatGateway`) or is an upsert (`PutRule`). For every other
    /// kind the engine looks the resource up by its address tag after an ambiguous
    /// failure before it creates again, and the provider must send the create call
    /// once (no SDK-level retries).
    fn create_is_idempotent(&self) -> bool {
        false
    }
    /// Starts creating; `client_token` makes a retried create idempotent.
    async fn create(
        &self,
        target: &Target<'_>,
        inputs: &Attrs,
        client_token: &str,
    ) -> Result<Observed, ProviderError>;
    /// Changes what can change in place, from `before` to `after`.
    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError>;
    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError>;
    /// After a delete that was [`Deletion::InProgress`]: whether it is over, so that
    /// its name is free again. `read` may already call a resource on its way out gone.
    async fn deleted(&self, id: &str) -> Result<bool, ProviderError> {
        Ok(self.read(id).await?.is_none())
    }
    /// Polled after create and update until ready or failed.
    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError>;
}

/// The provider for each kind.
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: BTreeMap<Kind, Arc<dyn Provider>>,
}

impl Providers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, kind: Kind, p: Arc<dyn Provider>) {
        self.by_kind.insert(kind, p);
    }

    pub fn get(&self, kind: Kind) -> Result<Arc<dyn Provider>, ProviderError> {
        self.by_kind.get(&kind).cloned().ok_or_else(|| {
            ProviderError::fatal(format!(
                "no provider for {kind} resources is available in this build"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_needs_every_tag_with_its_value() {
        let o = Observed {
            id: "nat-1".into(),
            inputs: serde_json::from_value(serde_json::json!({
                "tags": {"deploy:environment": "pr-5", "deploy:project": "trivia"}
            }))
            .unwrap(),
            outputs: Attrs::new(),
        };
        let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(o.carries(&want(&[("deploy:environment", "pr-5")])));
        assert!(o.carries(&want(&[
            ("deploy:environment", "pr-5"),
            ("deploy:project", "trivia")
        ])));
        assert!(!o.carries(&want(&[("deploy:environment", "pr-6")])));
        assert!(!o.carries(&want(&[("deploy:address", "network.nat.a")])));
        let untagged = Observed {
            inputs: Attrs::new(),
            ..o
        };
        assert!(!untagged.carries(&want(&[("deploy:environment", "pr-5")])));
        assert!(untagged.carries(&want(&[])));
    }
}
