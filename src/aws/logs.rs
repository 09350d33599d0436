//! CloudWatch Logs: the functions' log groups as resources (created before the
//! function with the spec's retention, so Lambda never creates one that keeps logs
//! forever), and reads of their events for `deploy logs` and the tests that look for
//! a request's `START`/`REPORT` lines.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use serde_json::{json, Value};

use super::{all_pages, carrying, classify, if_read_ours, ready_when_visible, retag, tag_changes};
use super::{tags_from, tags_of, with_tags, Clients, Tags};
use crate::kinds::functions::LogGroupInputs;
use crate::kinds::{ArnOutputs, IdOutputs, Inputs, Outputs};
use crate::model::Attrs;
use crate::provider::{Deletion, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct LogGroup(pub Arc<Clients>);

impl LogGroup {
    /// The groups whose names start with `prefix` and that carry the tags `want`,
    /// with their tags; a group deleted meanwhile is left out.
    async fn described(&self, prefix: &str, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let groups = all_pages(|token| async move {
            let page = self
                .0
                .logs
                .describe_log_groups()
                .log_group_name_prefix(prefix)
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let groups = page
                .log_groups()
                .iter()
                .filter_map(|g| {
                    let arn = g
                        .log_group_arn()
                        .map(String::from)
                        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
                        .unwrap_or_default();
                    Some((g.log_group_name()?.to_string(), arn, g.retention_in_days()))
                })
                .collect();
            Ok((groups, page.next_token().map(String::from)))
        })
        .await?;
        let tagged = carrying(groups, want, |(_, arn, _)| async move {
            let out = self
                .0
                .logs
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(classify)?;
            Ok(tags_from(
                out.tags()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ))
        })
        .await?;
        Ok(tagged
            .into_iter()
            .map(|((name, arn, days), tags)| {
                let inputs = match days.map(u32::try_from) {
                    Some(Ok(retention_days)) => LogGroupInputs {
                        name: name.clone(),
                        retention_days,
                    }
                    .to_attrs(),
                    // Logs kept forever: no number of days, read as it is (null).
                    _ => Attrs::from([
                        ("name".into(), json!(name)),
                        ("retention_days".into(), json!(days)),
                    ]),
                };
                let observed = Observed {
                    id: name.clone(),
                    inputs,
                    outputs: ArnOutputs { id: name, arn }.to_attrs(),
                };
                with_tags(observed, &tags)
            })
            .collect())
    }

    async fn get(&self, name: &str) -> Result<Option<Observed>, ProviderError> {
        Ok(self
            .described(name, &Tags::new())
            .await?
            .into_iter()
            .find(|o| o.id == name))
    }

    async fn retain(&self, name: &str, days: u32) -> Result<(), ProviderError> {
        self.0
            .logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(days as i32)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn arn(&self, name: &str) -> Result<String, ProviderError> {
        self.get(name)
            .await?
            .and_then(|o| {
                o.outputs
                    .get("arn")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .ok_or_else(|| ProviderError::not_found(format!("log group {name} is not visible yet")))
    }
}

#[async_trait]
impl Provider for LogGroup {
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
        // The environment's functions' groups share a prefix; without one, every
        // function's group is looked at.
        let prefix = match (want.get("deploy:project"), want.get("deploy:environment")) {
            (Some(p), Some(e)) => function_group(&format!("{p}-{e}-")),
            _ => function_group(""),
        };
        self.described(&prefix, want).await
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let LogGroupInputs {
            name,
            retention_days,
        } = LogGroupInputs::from_attrs(inputs)?;
        let name = name.as_str();
        let tags: HashMap<String, String> = tags_of(inputs).into_iter().collect();
        match self
            .0
            .logs
            .create_log_group()
            .log_group_name(name)
            .set_tags(Some(tags.clone()))
            .customize()
            .config_override(once!(aws_sdk_cloudwatchlogs))
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) => {}
            // The function's group already exists: Lambda made it for a function that
            // ran before deploy managed its logs. The name is the function's own, so
            // deploy takes it over: retention and tags as the spec says.
            Err(e) if e.code.as_deref() == Some("ResourceAlreadyExistsException") => {
                let arn = super::eventually(|| self.arn(name)).await?;
                self.0
                    .logs
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(classify)?;
            }
            Err(e) => return Err(e),
        }
        super::eventually(|| self.retain(name, retention_days)).await?;
        Ok(Observed {
            id: name.to_string(),
            inputs: inputs.clone(),
            outputs: IdOutputs { id: name.into() }.to_attrs(),
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let LogGroupInputs {
            name: _, // the group's id: a new name is a new group
            retention_days,
        } = LogGroupInputs::from_attrs(after)?;
        // A group that keeps its logs forever reads `retention_days: null`, which does
        // not fit the struct: no retention, so a change.
        let old = LogGroupInputs::from_attrs(before).ok();
        if old.map(|o| o.retention_days) != Some(retention_days) {
            self.retain(id, retention_days).await?;
        }
        // The ARN is looked up once, and only when the tags change.
        if !tag_changes(before, after).is_empty() {
            let arn = &self.arn(id).await?;
            let logs = &self.0.logs;
            retag(
                before,
                after,
                |keys| async move {
                    logs.untag_resource()
                        .resource_arn(arn)
                        .set_tag_keys(Some(keys))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
                |tags| async move {
                    logs.tag_resource()
                        .resource_arn(arn)
                        .set_tags(Some(tags.into_iter().collect()))
                        .send()
                        .await
                        .map_err(classify)
                        .map(drop)
                },
            )
            .await?;
        }
        self.get(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("log group {id} is gone")))
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        self.0
            .logs
            .delete_log_group()
            .log_group_name(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "log group", id)
    }
}

/// One log line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEvent {
    pub id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

/// The log group Lambda writes a function's output to.
pub fn function_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

/// Every event of `group` since `start_ms` (inclusive), oldest first, containing
/// `filter` when given. A group that does not exist yet has no events.
pub async fn events(
    c: &Clients,
    group: &str,
    start_ms: i64,
    filter: Option<&str>,
) -> Result<Vec<LogEvent>, String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let mut call = c
            .logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .set_next_token(token.take());
        if let Some(text) = filter {
            call = call.filter_pattern(quoted_term(text));
        }
        let page = match call.send().await {
            Ok(p) => p,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(Vec::new()),
            Err(e) => {
                return Err(format!(
                    "reading {group}: {}",
                    e.message()
                        .map(String::from)
                        .unwrap_or_else(|| e.to_string())
                ))
            }
        };
        out.extend(page.events().iter().map(|e| LogEvent {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().unwrap_or_default(),
            stream: e.log_stream_name().unwrap_or_default().to_string(),
            message: e.message().unwrap_or_default().trim_end().to_string(),
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// A filter pattern matching events that contain `text` as is: CloudWatch reads bare
/// words as separate terms and gives `-`, `?` and quotes meanings of their own.
fn quoted_term(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_text_is_one_quoted_term() {
        assert_eq!(quoted_term("Task timed out"), "\"Task timed out\"");
        assert_eq!(quoted_term("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(
            function_group("trivia-dev-api"),
            "/aws/lambda/trivia-dev-api"
        );
    }
}
