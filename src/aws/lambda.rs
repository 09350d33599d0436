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

use super::{all_pages, classify, has_tags, if_read_ours, retag, tag_changes, tags_from, tags_of};
use super::{Clients, Tags};
use crate::kinds::functions::{LambdaFunctionInputs, LambdaFunctionOutputs, Variables};
use crate::kinds::{ArnOutputs, Inputs, Outputs};
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

fn environment(vars: &Variables) -> Environment {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::builder().set_variables(Some(vars)).build()
}

fn arch(architecture: &str) -> Architecture {
    if architecture == "arm64" {
        Architecture::Arm64
    } else {
        Architecture::X8664
    }
}

fn vpc(subnet_ids: Vec<String>, security_group_ids: Vec<String>) -> VpcConfig {
    VpcConfig::builder()
        .set_subnet_ids(Some(subnet_ids))
        .set_security_group_ids(Some(security_group_ids))
        .build()
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
    /// The zip to ship for function `name`: the built one `code_sha256` names,
    /// checked against that hash, or the placeholder when nothing was built.
    fn code(&self, name: &str, code_sha256: Option<&str>) -> Result<Vec<u8>, ProviderError> {
        let Some(sha) = code_sha256 else {
            return Ok(placeholder_zip());
        };
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
        let versions = all_pages(|marker| async move {
            let page = self
                .0
                .lambda
                .list_versions_by_function()
                .function_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(classify)?;
            let versions = page
                .versions()
                .iter()
                .filter_map(|v| v.version()?.parse::<u64>().ok())
                .collect();
            Ok((versions, page.next_marker().map(String::from)))
        })
        .await?;
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
        let mut tags = tags_from(
            out.tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        tags.retain(|k, _| !k.starts_with("aws:"));
        // Attributes, not `LambdaFunctionInputs`: the API does not return which
        // crate and binary were built (`code`) nor the spec's alias; they are left out.
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
        let outputs = match live.as_ref().and_then(|l| l.version()) {
            Some(version) => LambdaFunctionOutputs {
                id: name.into(),
                alias_arn: format!("{arn}:{ALIAS}"),
                arn,
                version: version.into(),
            }
            .to_attrs(),
            // Not released yet: no alias, so no version it serves.
            None => ArnOutputs {
                id: name.into(),
                arn,
            }
            .to_attrs(),
        };
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
        Ok(if_read_ours(self.get(name).await?, target))
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
        let LambdaFunctionInputs {
            name,
            role_arn,
            runtime: _, // not sent: functions are created on provided.al2023 (below)
            handler,
            architecture,
            memory_mb,
            timeout_s,
            subnet_ids,
            security_group_ids,
            environment: variables,
            code: _, // which crate and binary: the build's; `code_sha256` names its zip
            code_sha256,
            alias: _,     // always `live` (ALIAS), made by the release below
            published: _, // read back, not set: the release below publishes
        } = LambdaFunctionInputs::from_attrs(inputs)?;
        let name = name.as_str();
        let zip = self.code(name, code_sha256.as_deref())?;
        let tags: HashMap<String, String> = tags_of(inputs).into_iter().collect();
        self.0
            .lambda
            .create_function()
            .function_name(name)
            .role(role_arn)
            .runtime(Runtime::Providedal2023)
            .handler(handler)
            .architectures(arch(&architecture))
            .memory_size(memory_mb as i32)
            .timeout(timeout_s as i32)
            .vpc_config(vpc(subnet_ids, security_group_ids))
            .environment(environment(&variables))
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
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
        // What changed is judged on the attributes: a read does not see the crate and
        // binary, and a missing input counts as changed.
        let changed = |keys: &[&str]| crate::kinds::changed(before, after, keys);
        let LambdaFunctionInputs {
            name,
            role_arn,
            // A change counts (below) but is not sent: functions run on provided.al2023.
            runtime: _,
            handler,
            architecture,
            memory_mb,
            timeout_s,
            subnet_ids,
            security_group_ids,
            environment: variables,
            // What is built; its zip is named by `code_sha256`.
            code: _,
            code_sha256,
            alias: _,     // always `live` (ALIAS)
            published: _, // read back, not set: the release below publishes
        } = LambdaFunctionInputs::from_attrs(after)?;
        // New code when a build says so, or when what is built changed; read before
        // any call, so a missing zip changes nothing.
        // What is built (crate and binary) is known only from state: a function found
        // without it keeps its code unless a build names other code.
        let other_build = before
            .get("code")
            .is_some_and(|was| Some(was) != after.get("code"));
        let zip = if (code_sha256.is_some() && changed(&["code_sha256"]))
            || changed(&["architecture"])
            || other_build
        {
            if code_sha256.is_none() {
                return Err(ProviderError::fatal(format!(
                    "the code of function {id} changed (crate, binary or architecture) but was not built; apply without --no-build"
                )));
            }
            Some(self.code(&name, code_sha256.as_deref())?)
        } else {
            None
        };
        self.settled(id).await?;
        // `runtime` counts as a change but is not sent, as before: functions run on
        // provided.al2023.
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
                .role(role_arn)
                .handler(handler)
                .memory_size(memory_mb as i32)
                .timeout(timeout_s as i32)
                .vpc_config(vpc(subnet_ids, security_group_ids))
                .environment(environment(&variables))
                .send()
                .await
                .map_err(classify)?;
            self.settled(id).await?;
        }
        if let Some(zip) = zip {
            self.0
                .lambda
                .update_function_code()
                .function_name(id)
                .architectures(arch(&architecture))
                .zip_file(Blob::new(zip))
                .send()
                .await
                .map_err(classify)?;
            self.settled(id).await?;
        }
        // The ARN is looked up once, and only when the tags change.
        if !tag_changes(before, after).is_empty() {
            let arn = &self
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
            let lambda = &self.0.lambda;
            retag(
                before,
                after,
                |keys| async move {
                    lambda
                        .untag_resource()
                        .resource(arn)
                        .set_tag_keys(Some(keys))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
                |tags| async move {
                    lambda
                        .tag_resource()
                        .resource(arn)
                        .set_tags(Some(tags.into_iter().collect()))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
            )
            .await?;
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
