//! ElastiCache Serverless caches (engine `valkey`). Modify changes one usage-limit
//! field per request and waits for `available` between requests; delete takes a final
//! snapshot when the cache keeps snapshots.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticache::types::{
    CacheUsageLimits, DataStorage, DataStorageUnit, EcpuPerSecond, Tag,
};
use serde_json::json;

use super::{all_pages, carrying, classify, if_ours, retag, tag_changes, tags_from, tags_of};
use super::{with_tags, Clients, Tags};
use crate::kinds::cache::ServerlessCacheInputs;
use crate::kinds::Inputs;
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct ServerlessCache(pub Arc<Clients>);

/// The API takes its limits as 32-bit integers; the spec's ranges fit.
fn int(v: impl TryInto<i32>) -> Option<i32> {
    v.try_into().ok()
}

fn storage(max: u32, min: Option<u32>) -> DataStorage {
    DataStorage::builder()
        .set_maximum(int(max))
        .set_minimum(min.and_then(int))
        .unit(DataStorageUnit::Gb)
        .build()
}

fn ecpu(max: u64, min: Option<u64>) -> EcpuPerSecond {
    EcpuPerSecond::builder()
        .set_maximum(int(max))
        .set_minimum(min.and_then(int))
        .build()
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

impl ServerlessCache {
    async fn tags(&self, arn: &str) -> Result<Tags, ProviderError> {
        let out = self
            .0
            .elasticache
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(classify)?;
        Ok(tags_from(out.tag_list().iter().filter_map(|t| {
            Some((t.key()?, t.value().unwrap_or_default()))
        })))
    }

    async fn describe(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_elasticache::types::ServerlessCache>, ProviderError> {
        match self
            .0
            .elasticache
            .describe_serverless_caches()
            .serverless_cache_name(name)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => Ok(out.serverless_caches().first().cloned()),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn observe(c: &aws_sdk_elasticache::types::ServerlessCache) -> Observed {
        let name = c.serverless_cache_name().unwrap_or_default().to_string();
        let limits = c.cache_usage_limits();
        let data = limits.and_then(|l| l.data_storage());
        let cpu = limits.and_then(|l| l.ecpu_per_second());
        let mut inputs = Attrs::from([
            ("name".into(), json!(name)),
            ("engine".into(), json!(c.engine())),
            (
                "major_engine_version".into(),
                json!(c.major_engine_version()),
            ),
            (
                "max_storage_gb".into(),
                json!(data.and_then(|d| d.maximum())),
            ),
            (
                "max_ecpu_per_second".into(),
                json!(cpu.and_then(|e| e.maximum())),
            ),
            (
                "snapshot_retention_limit".into(),
                json!(c.snapshot_retention_limit()),
            ),
            ("daily_snapshot_time".into(), json!(c.daily_snapshot_time())),
            ("subnet_ids".into(), json!(c.subnet_ids())),
            ("security_group_ids".into(), json!(c.security_group_ids())),
        ]);
        if let Some(m) = data.and_then(|d| d.minimum()) {
            inputs.insert("min_storage_gb".into(), json!(m));
        }
        if let Some(m) = cpu.and_then(|e| e.minimum()) {
            inputs.insert("min_ecpu_per_second".into(), json!(m));
        }
        let mut outputs = Attrs::from([("id".into(), json!(name)), ("arn".into(), json!(c.arn()))]);
        if let Some(e) = c.endpoint() {
            outputs.insert("endpoint".into(), json!(e.address()));
            outputs.insert("port".into(), json!(e.port()));
        }
        if let Some(e) = c.reader_endpoint() {
            outputs.insert("reader_endpoint".into(), json!(e.address()));
            outputs.insert("reader_port".into(), json!(e.port()));
        }
        Observed {
            id: name,
            inputs,
            outputs,
        }
    }

    /// One modify request, retried while the cache is busy with the previous one.
    async fn modify(
        &self,
        name: &str,
        apply: impl Fn(aws_sdk_elasticache::operation::modify_serverless_cache::builders::ModifyServerlessCacheFluentBuilder) -> aws_sdk_elasticache::operation::modify_serverless_cache::builders::ModifyServerlessCacheFluentBuilder,
    ) -> Result<(), ProviderError> {
        for attempt in 0.. {
            let call = apply(
                self.0
                    .elasticache
                    .modify_serverless_cache()
                    .serverless_cache_name(name),
            );
            match call.send().await.map_err(classify) {
                Ok(_) => return Ok(()),
                Err(e) if e.class == ErrorClass::Conflict && attempt < 120 => {
                    tokio::time::sleep(Duration::from_millis(250 * (attempt as u64 + 1).min(20)))
                        .await
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }
}

#[async_trait]
impl Provider for ServerlessCache {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        Ok(self
            .describe(id)
            .await?
            .filter(|c| c.status() != Some("deleting"))
            .map(|c| Self::observe(&c)))
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        let found = self.describe(name).await?;
        let ours = if_ours(found, target, |c| async move {
            self.tags(c.arn().unwrap_or_default()).await
        });
        Ok(ours.await?.iter().map(Self::observe).collect())
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let caches = all_pages(|token| async move {
            let page = self
                .0
                .elasticache
                .describe_serverless_caches()
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let next = page.next_token().map(String::from);
            Ok((page.serverless_caches.unwrap_or_default(), next))
        })
        .await?;
        let tagged = carrying(caches, want, |c| async move {
            self.tags(c.arn().unwrap_or_default()).await
        });
        Ok(tagged
            .await?
            .iter()
            .map(|(c, tags)| with_tags(Self::observe(c), tags))
            .collect())
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let ServerlessCacheInputs {
            name,
            engine,
            major_engine_version,
            max_storage_gb,
            min_storage_gb,
            max_ecpu_per_second,
            min_ecpu_per_second,
            snapshot_retention_limit,
            daily_snapshot_time,
            subnet_ids,
            security_group_ids,
        } = ServerlessCacheInputs::from_attrs(inputs)?;
        let out = self
            .0
            .elasticache
            .create_serverless_cache()
            .serverless_cache_name(&name)
            .engine(engine)
            .major_engine_version(major_engine_version)
            .cache_usage_limits(
                CacheUsageLimits::builder()
                    .data_storage(storage(max_storage_gb, min_storage_gb))
                    .ecpu_per_second(ecpu(max_ecpu_per_second, min_ecpu_per_second))
                    .build(),
            )
            .set_subnet_ids(Some(subnet_ids))
            .set_security_group_ids(Some(security_group_ids))
            .set_snapshot_retention_limit(int(snapshot_retention_limit))
            .daily_snapshot_time(daily_snapshot_time)
            .set_tags(Some(tag_list(&tags_of(inputs))))
            .customize()
            .config_override(once!(aws_sdk_elasticache))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .serverless_cache()
            .map(Self::observe)
            .unwrap_or_else(|| Observed {
                id: name,
                inputs: inputs.clone(),
                outputs: Attrs::new(),
            }))
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let changed = |keys: &[&str]| crate::kinds::changed(before, after, keys);
        let ServerlessCacheInputs {
            // Create-only: a change replaces the cache.
            name: _,
            engine: _,
            subnet_ids: _,
            major_engine_version,
            max_storage_gb,
            min_storage_gb,
            max_ecpu_per_second,
            min_ecpu_per_second,
            snapshot_retention_limit,
            daily_snapshot_time,
            security_group_ids,
        } = ServerlessCacheInputs::from_attrs(after)?;
        // Usage limits: one field per request, or the API may refuse.
        if changed(&["max_storage_gb", "min_storage_gb"]) {
            let limits = CacheUsageLimits::builder()
                .data_storage(storage(max_storage_gb, min_storage_gb))
                .build();
            self.modify(id, |m| m.cache_usage_limits(limits.clone()))
                .await?;
        }
        if changed(&["max_ecpu_per_second", "min_ecpu_per_second"]) {
            let limits = CacheUsageLimits::builder()
                .ecpu_per_second(ecpu(max_ecpu_per_second, min_ecpu_per_second))
                .build();
            self.modify(id, |m| m.cache_usage_limits(limits.clone()))
                .await?;
        }
        let major = changed(&["major_engine_version"]).then_some(major_engine_version);
        if major.is_some()
            || changed(&[
                "snapshot_retention_limit",
                "daily_snapshot_time",
                "security_group_ids",
            ])
        {
            self.modify(id, |m| {
                m.set_snapshot_retention_limit(int(snapshot_retention_limit))
                    .daily_snapshot_time(daily_snapshot_time.clone())
                    .set_security_group_ids(Some(security_group_ids.clone()))
                    .set_major_engine_version(major.clone())
            })
            .await?;
        }
        if !tag_changes(before, after).is_empty() {
            let arn = self
                .describe(id)
                .await?
                .and_then(|c| c.arn().map(String::from))
                .ok_or_else(|| ProviderError::not_found(format!("cache {id} is gone")))?;
            let (cache, arn) = (&self.0.elasticache, arn.as_str());
            retag(
                before,
                after,
                |keys| async move {
                    cache
                        .remove_tags_from_resource()
                        .resource_name(arn)
                        .set_tag_keys(Some(keys))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
                |tags| async move {
                    cache
                        .add_tags_to_resource()
                        .resource_name(arn)
                        .set_tags(Some(tag_list(&tags)))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
            )
            .await?;
        }
        Ok(Observed {
            id: id.into(),
            inputs: after.clone(),
            outputs: Attrs::new(),
        })
    }

    /// A cache being deleted keeps its name until it is gone: a create of the same name
    /// (the next apply, a delete-first replacement) is refused until then.
    async fn deleted(&self, id: &str) -> Result<bool, ProviderError> {
        Ok(self.describe(id).await?.is_none())
    }

    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError> {
        // A cache that keeps snapshots leaves a final one behind.
        let keeps_snapshots = ServerlessCacheInputs::from_recorded(inputs)
            .is_ok_and(|i| i.snapshot_retention_limit > 0);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let snapshot = keeps_snapshots.then(|| format!("{id}-final-{stamp}"));
        self.0
            .elasticache
            .delete_serverless_cache()
            .serverless_cache_name(id)
            .set_final_snapshot_name(snapshot)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::InProgress)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        match self.describe(id).await? {
            None => Err(ProviderError::not_found(format!(
                "cache {id} is not visible yet"
            ))),
            Some(c) => Ok(match c.status() {
                Some("available") => Readiness::Ready(Self::observe(&c)),
                Some("create-failed") => Readiness::Failed(
                    "creation failed; it must be deleted and created again".into(),
                ),
                other => Readiness::Pending(other.unwrap_or("creating").into()),
            }),
        }
    }
}

/// The serverless cache snapshots taken from caches whose names start with `prefix`
/// (an environment's `{project}-{environment}-`): (snapshot, cache, created).
pub async fn snapshots(
    c: &Clients,
    prefix: &str,
) -> Result<Vec<(String, String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .elasticache
            .describe_serverless_cache_snapshots()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| format!("listing cache snapshots: {}", classify(e)))?;
        for snap in page.serverless_cache_snapshots() {
            let cache = snap
                .serverless_cache_configuration()
                .and_then(|c| c.serverless_cache_name())
                .unwrap_or_default();
            if cache.starts_with(prefix) {
                out.push((
                    snap.serverless_cache_snapshot_name()
                        .unwrap_or_default()
                        .to_string(),
                    cache.to_string(),
                    snap.create_time().map(|t| t.to_string()),
                ));
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Deletes a serverless cache snapshot; one already gone counts as deleted.
pub async fn delete_snapshot(c: &Clients, name: &str) -> Result<(), String> {
    match c
        .elasticache
        .delete_serverless_cache_snapshot()
        .serverless_cache_snapshot_name(name)
        .send()
        .await
        .map_err(classify)
    {
        Ok(_) => Ok(()),
        Err(e) if e.class == ErrorClass::NotFound => Ok(()),
        Err(e) => Err(format!("deleting cache snapshot {name}: {e}")),
    }
}

/// The cache's endpoint address and port as AWS reports them now.
pub async fn endpoint(c: &Clients, name: &str) -> Result<(String, i32), String> {
    let out = c
        .elasticache
        .describe_serverless_caches()
        .serverless_cache_name(name)
        .send()
        .await
        .map_err(|e| format!("cache {name}: {}", classify(e)))?;
    out.serverless_caches()
        .first()
        .and_then(|x| x.endpoint())
        .map(|e| {
            (
                e.address().unwrap_or_default().to_string(),
                e.port().unwrap_or_default(),
            )
        })
        .ok_or_else(|| format!("cache {name} has no endpoint"))
}
