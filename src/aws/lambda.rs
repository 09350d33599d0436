//! Lambda functions with versions and a `live` alias. The provider owns Lambda's
//! sequencing: wait until Active and the last update Successful before the next change
//! (configuration, then code), then publish a version and move the alias. Creating a
//! function right after its role fails until IAM propagates; that error is retryable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime, VpcConfig};
use serde_json::{json, Value};

use super::{all_pages, classify, has_tags, if_ours, str_of, tag_changes, tags_of, Clients, Tags};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct Function(pub Arc<Clients>);

const ALIAS: &str = "live";

/// The code a function gets when it is created without a build (`--no-build`): a
/// script that says so and fails. Reproducible like every zip here.
pub fn placeholder_zip() -> Vec<u8> {
    crate::artifact::pack(
        b"#!/bin/sh\necho 'placeholder: this function was created with --no-build; run deploy apply to ship its code' >&2\nexit 1\n",
    )
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(inputs: &Attrs) -> HashMap<String, String> {
    inputs
        .get("environment")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn arch(inputs: &Attrs) -> Architecture {
    if inputs.get("architecture").and_then(Value::as_str) == Some("arm64") {
        Architecture::Arm64
    } else {
        Architecture::X8664
    }
}

fn vpc(inputs: &Attrs) -> VpcConfig {
    VpcConfig::builder()
        .set_subnet_ids(Some(strings(inputs.get("subnet_ids"))))
        .set_security_group_ids(Some(strings(inputs.get("security_group_ids"))))
        .build()
}

fn int(inputs: &Attrs, key: &str) -> Option<i32> {
    inputs.get(key).and_then(Value::as_i64).map(|v| v as i32)
}

/// Versions kept besides the live one and the one it replaced.
pub const KEEP_VERSIONS: usize = 3;

/// The numbered versions to delete: all but `live`, `previous` and the newest
/// [`KEEP_VERSIONS`] others.
fn versions_to_prune(mut versions: Vec<u64>, live: &str, previous: Option<&str>) -> Vec<u64> {
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.dedup();
    let pinned = |v: &u64| {
        Some(v.to_string().as_str()) == Some(live) || previous == Some(v.to_string().as_str())
    };
    versions
        .into_iter()
        .filter(|v| !pinned(v))
        .skip(KEEP_VERSIONS)
        .collect()
}

/// Whether the version `live` serves is what `$LATEST` holds: same code and same
/// configuration. Not so after a run died between an update and its publish.
fn same_release(
    latest: &aws_sdk_lambda::types::FunctionConfiguration,
    live: &aws_sdk_lambda::types::FunctionConfiguration,
) -> bool {
    let env = |c: &aws_sdk_lambda::types::FunctionConfiguration| {
        c.environment().and_then(|e| e.variables()).cloned()
    };
    let network = |c: &aws_sdk_lambda::types::FunctionConfiguration| {
        c.vpc_config()
            .map(|v| {
                let mut subnets = v.subnet_ids().to_vec();
                let mut groups = v.security_group_ids().to_vec();
                subnets.sort();
                groups.sort();
                (subnets, groups)
            })
            .filter(|(s, g)| !s.is_empty() || !g.is_empty())
    };
    latest.code_sha256() == live.code_sha256()
        && latest.role() == live.role()
        && latest.handler() == live.handler()
        && latest.runtime() == live.runtime()
        && latest.memory_size() == live.memory_size()
        && latest.timeout() == live.timeout()
        && latest.architectures() == live.architectures()
        && env(latest) == env(live)
        && network(latest) == network(live)
}

impl Function {
    /// The zip to ship for `inputs`: the built one its `code_sha256` names, checked
    /// against that hash, or the placeholder when nothing was built.
    fn code(&self, inputs: &Attrs) -> Result<Vec<u8>, ProviderError> {
        let Some(sha) = inputs.get("code_sha256").and_then(Value::as_str) else {
            return Ok(placeholder_zip());
        };
        let name = inputs.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some(dir) = &self.0.code_dir else {
            return Err(ProviderError::fatal(format!(
                "the code of function {name} ({sha}) was not built in this run; run `deploy build` or apply without --no-build"
            )));
        };
        let path = crate::artifact::code_path(dir, sha);
        let bytes = std::fs::read(&path).map_err(|e| {
            ProviderError::fatal(format!(
                "the code of function {name} ({sha}) is not at {}: {e}\n  hint: run `deploy build -e ENV` (a saved plan ships the code built when it was made)",
                path.display()
            ))
        })?;
        if crate::artifact::code_sha256(&bytes) != sha {
            return Err(ProviderError::fatal(format!(
                "{} changed since it was built (its hash is no longer {sha}); build again",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Waits until the function accepts the next change.
    async fn settled(&self, name: &str) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let cfg = self
                .0
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(classify)?;
            let state = cfg
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "Active".into());
            let update = cfg
                .last_update_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "Successful".into());
            if state == "Failed" || update == "Failed" {
                let why = cfg
                    .state_reason()
                    .or(cfg.last_update_status_reason())
                    .unwrap_or("no reason given");
                return Err(ProviderError::fatal(format!(
                    "function {name} failed: {why}"
                )));
            }
            if state == "Active" && update == "Successful" {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(600) {
                return Err(ProviderError::fatal(format!(
                    "function {name} stayed {state}/{update} for 10 minutes"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Publishes what is deployed as a version and points the alias at it.
    async fn release(&self, name: &str) -> Result<(), ProviderError> {
        let mut busy = 0;
        let version = loop {
            match self
                .0
                .lambda
                .publish_version()
                .function_name(name)
                .send()
                .await
                .map_err(classify)
            {
                Ok(v) => break v.version().unwrap_or("1").to_string(),
                // An update still in progress: wait and publish again, a bounded
                // number of times (someone else may keep changing the function).
                Err(e) if e.class == ErrorClass::Conflict && busy < 20 => {
                    busy += 1;
                    self.settled(name).await?
                }
                Err(e) => return Err(e),
            }
        };
        // What the alias served until now: kept for rollback.
        let previous = match self
            .0
            .lambda
            .get_alias()
            .function_name(name)
            .name(ALIAS)
            .send()
            .await
            .map_err(classify)
        {
            Ok(a) => a.function_version().map(String::from),
            Err(e) if e.class == ErrorClass::NotFound => None,
            Err(e) => return Err(e),
        };
        match self
            .0
            .lambda
            .update_alias()
            .function_name(name)
            .name(ALIAS)
            .function_version(&version)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) => {}
            Err(e) if e.class == ErrorClass::NotFound => {
                self.0
                    .lambda
                    .create_alias()
                    .function_name(name)
                    .name(ALIAS)
                    .function_version(&version)
                    .send()
                    .await
                    .map_err(classify)?;
            }
            Err(e) => return Err(e),
        }
        self.prune(name, &version, previous.as_deref()).await
    }

    /// Deletes old versions: every publish makes one, and each holds a copy of the
    /// code (Lambda's code storage is limited per region). Kept: the live one, the one
    /// it replaced (rollback), and the newest [`KEEP_VERSIONS`] others.
    async fn prune(
        &self,
        name: &str,
        live: &str,
        previous: Option<&str>,
    ) -> Result<(), ProviderError> {
        let mut versions: Vec<u64> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .0
                .lambda
                .list_versions_by_function()
                .function_name(name)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(classify)?;
            versions.extend(
                page.versions()
                    .iter()
                    .filter_map(|v| v.version()?.parse::<u64>().ok()),
            );
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for v in versions_to_prune(versions, live, previous) {
            match self
                .0
                .lambda
                .delete_function()
                .function_name(name)
                .qualifier(v.to_string())
                .send()
                .await
                .map_err(classify)
            {
                // Gone already, or still referenced (another alias): leave it.
                Ok(_) => {}
                Err(e) if matches!(e.class, ErrorClass::NotFound | ErrorClass::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Observed>, ProviderError> {
        // Both reads at once: refresh time is round trips. The function ($LATEST, with
        // its tags) and what the alias serves.
        let (function, live) = tokio::join!(
            self.0.lambda.get_function().function_name(name).send(),
            self.0
                .lambda
                .get_function()
                .function_name(name)
                .qualifier(ALIAS)
                .send(),
        );
        let out = match function.map_err(classify) {
            Ok(o) => o,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let live = match live.map_err(classify) {
            Ok(l) => l.configuration().cloned(),
            Err(e) if e.class == ErrorClass::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(latest) = out.configuration() else {
            return Ok(None);
        };
        let arn = latest.function_arn().unwrap_or_default().to_string();
        // Configuration as $LATEST has it (an out-of-band change there is drift: the
        // next publish would ship it); code as the alias serves it (a rolled-back or
        // never-published zip is a difference).
        let cfg = latest;
        let live_code = live.as_ref().unwrap_or(latest).code_sha256();
        let vpc = cfg.vpc_config();
        let env: serde_json::Map<String, Value> = cfg
            .environment()
            .and_then(|e| e.variables())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            .unwrap_or_default();
        let mut tags: std::collections::BTreeMap<String, String> = out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        tags.retain(|k, _| !k.starts_with("aws:"));
        let mut inputs = Attrs::from([
            ("name".into(), json!(cfg.function_name())),
            ("role_arn".into(), json!(cfg.role())),
            ("runtime".into(), json!(cfg.runtime().map(|r| r.as_str()))),
            ("handler".into(), json!(cfg.handler())),
            (
                "architecture".into(),
                json!(cfg
                    .architectures()
                    .first()
                    .map(|a| a.as_str())
                    .unwrap_or("x86_64")),
            ),
            ("memory_mb".into(), json!(cfg.memory_size())),
            ("timeout_s".into(), json!(cfg.timeout())),
            (
                "subnet_ids".into(),
                json!(vpc.map(|v| v.subnet_ids()).unwrap_or_default()),
            ),
            (
                "security_group_ids".into(),
                json!(vpc.map(|v| v.security_group_ids()).unwrap_or_default()),
            ),
            ("environment".into(), Value::Object(env)),
            ("tags".into(), json!(tags)),
            ("code_sha256".into(), json!(live_code)),
        ]);
        inputs.insert(
            "published".into(),
            json!(live.as_ref().is_some_and(|l| same_release(latest, l))),
        );
        let mut outputs = Attrs::from([("id".into(), json!(name)), ("arn".into(), json!(arn))]);
        if let Some(l) = &live {
            outputs.insert("version".into(), json!(l.version()));
            outputs.insert("alias_arn".into(), json!(format!("{arn}:{ALIAS}")));
        }
        Ok(Some(Observed {
            id: name.into(),
            inputs,
            outputs,
        }))
    }
}

#[async_trait]
impl Provider for Function {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        if_ours(self.get(name).await?, target, |o| async move {
            Ok(tags_of(&o.inputs))
        })
        .await
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let names = all_pages(|marker| async move {
            let page = self
                .0
                .lambda
                .list_functions()
                .set_marker(marker)
                .send()
                .await
                .map_err(classify)?;
            let names = page
                .functions()
                .iter()
                .filter_map(|f| f.function_name().map(String::from))
                .collect();
            Ok((names, page.next_marker().map(String::from)))
        })
        .await?;
        let mut out = Vec::new();
        for name in names {
            if let Some(o) = self.get(&name).await? {
                if has_tags(&tags_of(&o.inputs), want) {
                    out.push(o);
                }
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let name = str_of(inputs, "name")?;
        let tags: HashMap<String, String> = tags_of(inputs).into_iter().collect();
        self.0
            .lambda
            .create_function()
            .function_name(name)
            .role(str_of(inputs, "role_arn")?)
            .runtime(Runtime::Providedal2023)
            .handler(str_of(inputs, "handler")?)
            .architectures(arch(inputs))
            .set_memory_size(int(inputs, "memory_mb"))
            .set_timeout(int(inputs, "timeout_s"))
            .vpc_config(vpc(inputs))
            .environment(
                Environment::builder()
                    .set_variables(Some(env_of(inputs)))
                    .build(),
            )
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(self.code(inputs)?))
                    .build(),
            )
            .set_tags(Some(tags))
            .customize()
            .config_override(once!(aws_sdk_lambda))
            .send()
            .await
            .map_err(classify)?;
        self.settled(name).await?;
        self.release(name).await?;
        self.get(name).await?.ok_or_else(|| {
            ProviderError::new(
                ErrorClass::Retryable,
                format!("function {name} is not visible yet"),
            )
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let changed = |keys: &[&str]| keys.iter().any(|k| before.get(*k) != after.get(*k));
        // New code when a build says so, or when what is built changed; read before
        // any call, so a missing zip changes nothing.
        let built = after.get("code_sha256");
        let code = if (built.is_some() && before.get("code_sha256") != built)
            || changed(&["architecture", "code"])
        {
            if built.is_none() {
                return Err(ProviderError::fatal(format!(
                    "the code of function {id} changed (crate, binary or architecture) but was not built; apply without --no-build"
                )));
            }
            Some(self.code(after)?)
        } else {
            None
        };
        self.settled(id).await?;
        if changed(&[
            "role_arn",
            "handler",
            "runtime",
            "memory_mb",
            "timeout_s",
            "subnet_ids",
            "security_group_ids",
            "environment",
        ]) {
            self.0
                .lambda
                .update_function_configuration()
                .function_name(id)
                .role(str_of(after, "role_arn")?)
                .handler(str_of(after, "handler")?)
                .set_memory_size(int(after, "memory_mb"))
                .set_timeout(int(after, "timeout_s"))
                .vpc_config(vpc(after))
                .environment(
                    Environment::builder()
                        .set_variables(Some(env_of(after)))
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
            self.settled(id).await?;
        }
        if let Some(code) = code {
            self.0
                .lambda
                .update_function_code()
                .function_name(id)
                .architectures(arch(after))
                .zip_file(Blob::new(code))
                .send()
                .await
                .map_err(classify)?;
            self.settled(id).await?;
        }
        let tags = tag_changes(before, after);
        if !tags.is_empty() {
            let arn = self
                .0
                .lambda
                .get_function_configuration()
                .function_name(id)
                .send()
                .await
                .map_err(classify)?
                .function_arn()
                .unwrap_or_default()
                .to_string();
            if !tags.removed.is_empty() {
                self.0
                    .lambda
                    .untag_resource()
                    .resource(&arn)
                    .set_tag_keys(Some(tags.removed.clone()))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            if !tags.set.is_empty() {
                self.0
                    .lambda
                    .tag_resource()
                    .resource(&arn)
                    .set_tags(Some(tags.set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(classify)?;
            }
        }
        self.release(id).await?;
        self.get(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("function {id} is gone")))
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        self.0
            .lambda
            .delete_function()
            .function_name(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        match self.get(id).await? {
            Some(o) if o.outputs.contains_key("alias_arn") => Ok(Readiness::Ready(o)),
            Some(_) => Ok(Readiness::Pending("publishing".into())),
            None => Err(ProviderError::not_found(format!(
                "function {id} is not visible yet"
            ))),
        }
    }
}

/// What one invocation of a function's `live` alias returned.
#[derive(Debug, serde::Serialize)]
pub struct Invocation {
    /// 200 for a synchronous call, 202 for an asynchronous one.
    pub status: i32,
    pub executed_version: Option<String>,
    /// `Unhandled` when the function failed; the payload then holds its error.
    pub function_error: Option<String>,
    pub payload: String,
    /// The last 4 KB of the invocation's log, when asked for.
    pub log_tail: Option<String>,
}

/// Invokes the `live` alias of `name`: synchronously with the log tail, or queued
/// (`asynchronous`, as a schedule or an event source would).
pub async fn invoke(
    c: &Clients,
    name: &str,
    payload: Vec<u8>,
    asynchronous: bool,
    tail: bool,
) -> Result<Invocation, String> {
    use aws_sdk_lambda::types::{InvocationType, LogType};
    let mut call = c
        .lambda
        .invoke()
        .function_name(name)
        .qualifier(ALIAS)
        .payload(Blob::new(payload));
    call = if asynchronous {
        call.invocation_type(InvocationType::Event)
    } else {
        call.invocation_type(InvocationType::RequestResponse)
    };
    if tail && !asynchronous {
        call = call.log_type(LogType::Tail);
    }
    // A synchronous call lasts as long as the function may run (up to 15 minutes),
    // longer than the control-plane attempt timeout.
    let timeouts = aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(15 * 60 + 30))
        .build();
    let out = call
        .customize()
        .config_override(aws_sdk_lambda::config::Config::builder().timeout_config(timeouts))
        .send()
        .await
        .map_err(|e| format!("invoking {name}:{ALIAS}: {}", classify(e)))?;
    let log_tail = out.log_result().and_then(|b64| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    });
    Ok(Invocation {
        status: out.status_code(),
        executed_version: out.executed_version().map(String::from),
        function_error: out.function_error().map(String::from),
        payload: out
            .payload()
            .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
            .unwrap_or_default(),
        log_tail,
    })
}

/// Points the `live` alias at `version` (a rollback).
pub async fn point_alias(c: &Clients, name: &str, version: &str) -> Result<(), String> {
    c.lambda
        .update_alias()
        .function_name(name)
        .name(ALIAS)
        .function_version(version)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot point {name}:{ALIAS} at version {version}: {}",
                classify(e)
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod prune_tests {
    use super::versions_to_prune;

    #[test]
    fn the_live_the_previous_and_three_more_versions_are_kept() {
        let all: Vec<u64> = (1..=10).collect();
        assert_eq!(
            versions_to_prune(all.clone(), "10", Some("9")),
            vec![5, 4, 3, 2, 1]
        );
        // After a rollback the live version is an old one; it stays, as does the
        // one it replaced.
        assert_eq!(
            versions_to_prune(all.clone(), "2", Some("10")),
            vec![6, 5, 4, 3, 1]
        );
        assert!(versions_to_prune(vec![1, 2], "2", Some("1")).is_empty());
        assert!(versions_to_prune(Vec::new(), "1", None).is_empty());
    }
}
