//! SSM parameters. Tags and `Overwrite` cannot be combined: create with tags, update
//! with overwrite and then tag.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag};

use super::{all_pages, carrying, classify, if_ours, ready_when_visible, retag, tags_of};
use super::{read_tagged, Clients, Tags};
use crate::kinds::parameters::{SsmParameterInputs, SsmParameterOutputs};
use crate::kinds::{Inputs, Outputs};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct Parameter(pub Arc<Clients>);

fn parameter_type(kind: &str) -> ParameterType {
    match kind {
        "StringList" => ParameterType::StringList,
        "SecureString" => ParameterType::SecureString,
        _ => ParameterType::String,
    }
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
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
                let inputs = SsmParameterInputs {
                    name: p.name().unwrap_or(name).to_string(),
                    kind: p
                        .r#type()
                        .map(|t| t.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    value: p.value().unwrap_or_default().to_string(),
                };
                let outputs = SsmParameterOutputs {
                    id: name.into(),
                    arn: p.arn().unwrap_or_default().to_string(),
                    version: p.version(),
                };
                Observed {
                    id: name.into(),
                    inputs: inputs.to_attrs(),
                    outputs: outputs.to_attrs(),
                }
            })),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn tags(&self, name: &str) -> Result<Tags, ProviderError> {
        let out = self
            .0
            .ssm
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
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
        if_ours(self.get(name).await?, target, |o| async move {
            self.tags(&o.id).await
        })
        .await
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let names = all_pages(|token| async move {
            let page = self
                .0
                .ssm
                .describe_parameters()
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let names = page
                .parameters()
                .iter()
                .filter_map(|p| p.name().map(String::from))
                .collect();
            Ok((names, page.next_token().map(String::from)))
        })
        .await?;
        let tagged = carrying(names, want, |n| async move { self.tags(&n).await }).await?;
        read_tagged(tagged, |n| async move { self.get(&n).await }).await
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let SsmParameterInputs { name, kind, value } = SsmParameterInputs::from_attrs(inputs)?;
        self.0
            .ssm
            .put_parameter()
            .name(&name)
            .value(value)
            .r#type(parameter_type(&kind))
            .set_tags(Some(tag_list(&tags_of(inputs))))
            .customize()
            .config_override(once!(aws_sdk_ssm))
            .send()
            .await
            .map_err(classify)?;
        self.get(&name).await?.ok_or_else(|| {
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
        // Tags and Overwrite cannot be combined: the value first, then the tags.
        let new = SsmParameterInputs::from_attrs(after)?;
        if crate::kinds::changed(before, after, &["value", "type"]) {
            let SsmParameterInputs {
                name: _, // the parameter's id: a new name is a new parameter
                kind,
                value,
            } = new;
            self.0
                .ssm
                .put_parameter()
                .name(id)
                .value(value)
                .r#type(parameter_type(&kind))
                .overwrite(true)
                .send()
                .await
                .map_err(classify)?;
        }
        let ssm = &self.0.ssm;
        retag(
            before,
            after,
            |keys| async move {
                ssm.remove_tags_from_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(id)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
            |tags| async move {
                ssm.add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(id)
                    .set_tags(Some(tag_list(&tags)))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
        )
        .await?;
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
