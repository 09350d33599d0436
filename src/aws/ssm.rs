//! SSM parameters. Tags and `Overwrite` cannot be combined: create with tags, update
//! with overwrite and then tag.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};
use serde_json::{json, Value};

use super::{classify, ready_when_visible, str_of, tags_of, Clients};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct Parameter(pub Arc<Clients>);

fn value_of(inputs: &Attrs) -> String {
    match inputs.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn kind_of(inputs: &Attrs) -> ParameterType {
    match inputs.get("type").and_then(Value::as_str) {
        Some("StringList") => ParameterType::StringList,
        Some("SecureString") => ParameterType::SecureString,
        _ => ParameterType::String,
    }
}

impl Parameter {
    async fn get(&self, name: &str) -> Result<Option<Observed>, ProviderError> {
        match self
            .0
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => Ok(out.parameter().map(|p| {
                let inputs = Attrs::from([
                    ("name".into(), json!(p.name())),
                    ("type".into(), json!(p.r#type().map(|t| t.as_str()))),
                    ("value".into(), json!(p.value())),
                ]);
                let outputs = Attrs::from([
                    ("id".into(), json!(name)),
                    ("arn".into(), json!(p.arn())),
                    ("version".into(), json!(p.version())),
                ]);
                Observed {
                    id: name.into(),
                    inputs,
                    outputs,
                }
            })),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn tag(
        &self,
        name: &str,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let tags: Vec<Tag> = tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        self.0
            .ssm
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl Provider for Parameter {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        let Some(found) = self.get(name).await? else {
            return Ok(Vec::new());
        };
        let tags = self
            .0
            .ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(classify)?;
        let ours = tags
            .tag_list()
            .iter()
            .any(|t| t.key() == "deploy:address" && t.value() == target.address.as_str());
        Ok(if ours { vec![found] } else { Vec::new() })
    }

    async fn list(
        &self,
        want: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .0
                .ssm
                .describe_parameters()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(classify)?;
            for p in page.parameters() {
                let Some(name) = p.name() else { continue };
                let tags = self
                    .0
                    .ssm
                    .list_tags_for_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .send()
                    .await
                    .map_err(classify)?;
                let pairs: Vec<(&str, &str)> = tags
                    .tag_list()
                    .iter()
                    .map(|t| (t.key(), t.value()))
                    .collect();
                if super::has_tags(pairs.iter().copied(), want) {
                    if let Some(o) = self.get(name).await? {
                        out.push(super::with_tags(o, &pairs));
                    }
                }
            }
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let name = str_of(inputs, "name")?;
        let tags: Vec<Tag> = tags_of(inputs)
            .into_iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        self.0
            .ssm
            .put_parameter()
            .name(name)
            .value(value_of(inputs))
            .r#type(kind_of(inputs))
            .set_tags(Some(tags))
            .customize()
            .config_override(once!(aws_sdk_ssm))
            .send()
            .await
            .map_err(classify)?;
        self.get(name).await?.ok_or_else(|| {
            ProviderError::new(
                ErrorClass::Retryable,
                format!("parameter {name} is not visible yet"),
            )
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        if before.get("value") != after.get("value") || before.get("type") != after.get("type") {
            self.0
                .ssm
                .put_parameter()
                .name(id)
                .value(value_of(after))
                .r#type(kind_of(after))
                .overwrite(true)
                .send()
                .await
                .map_err(classify)?;
        }
        let tags = super::tag_changes(before, after);
        if !tags.removed.is_empty() {
            self.0
                .ssm
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(id)
                .set_tag_keys(Some(tags.removed.clone()))
                .send()
                .await
                .map_err(classify)?;
        }
        if !tags.set.is_empty() {
            self.tag(id, &tags.set).await?;
        }
        self.get(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("parameter {id} is gone")))
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        self.0
            .ssm
            .delete_parameter()
            .name(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "parameter", id)
    }
}

/// The values of the parameters that exist among `names`.
pub async fn values(
    c: &Clients,
    names: &[String],
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let out = c
        .ssm
        .get_parameters()
        .set_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| format!("SSM parameters: {}", classify(e)))?;
    Ok(out
        .parameters()
        .iter()
        .filter_map(|p| Some((p.name()?.to_string(), p.value()?.to_string())))
        .collect())
}
