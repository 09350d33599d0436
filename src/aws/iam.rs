//! IAM execution roles: trust policy, managed policies, one inline policy (`deploy`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::{all_pages, carrying, classify, if_ours, ready_when_visible, retag, tags_from};
use super::{read_tagged, tags_of, Clients, Tags};
use crate::kinds::iam::IamRoleInputs;
use crate::kinds::{ArnOutputs, Inputs, Outputs};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct Role(pub Arc<Clients>);

const INLINE: &str = "deploy";

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// IAM returns policy documents URL-encoded.
fn document(raw: Option<&str>) -> Value {
    let decoded = raw
        .map(|r| {
            percent_encoding::percent_decode_str(r)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

impl Role {
    async fn tags(&self, name: &str) -> Result<Tags, ProviderError> {
        let out = self
            .0
            .iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(classify)?;
        Ok(tags_from(out.tags().iter().map(|t| (t.key(), t.value()))))
    }

    async fn get(&self, name: &str) -> Result<Option<Observed>, ProviderError> {
        // All reads at once: refresh time is round trips.
        let (role, attached, inline) = tokio::join!(
            self.0.iam.get_role().role_name(name).send(),
            self.0
                .iam
                .list_attached_role_policies()
                .role_name(name)
                .send(),
            self.0
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(INLINE)
                .send(),
        );
        let role = match role.map_err(classify) {
            Ok(out) => out.role().cloned(),
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(role) = role else { return Ok(None) };
        let attached = match attached.map_err(classify) {
            Ok(a) => a,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // The inline policy as IAM holds it, so a change made outside deploy shows.
        let inline = match inline.map_err(classify) {
            Ok(p) => Some(document(Some(p.policy_document()))),
            Err(e) if e.class == ErrorClass::NotFound => None,
            Err(e) => return Err(e),
        };
        let inputs = IamRoleInputs {
            name: role.role_name().to_string(),
            assume_role_policy: document(role.assume_role_policy_document()),
            managed_policy_arns: attached
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(String::from))
                .collect(),
            inline_policy: inline,
        };
        let outputs = ArnOutputs {
            id: name.into(),
            arn: role.arn().to_string(),
        };
        Ok(Some(Observed {
            id: name.into(),
            inputs: inputs.to_attrs(),
            outputs: outputs.to_attrs(),
        }))
    }

    async fn set_inline(&self, name: &str, policy: Option<&Value>) -> Result<(), ProviderError> {
        match policy.filter(|p| !p.is_null()) {
            Some(p) => {
                self.0
                    .iam
                    .put_role_policy()
                    .role_name(name)
                    .policy_name(INLINE)
                    .policy_document(p.to_string())
                    .send()
                    .await
                    .map_err(classify)?;
            }
            None => match self
                .0
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(INLINE)
                .send()
                .await
                .map_err(classify)
            {
                Ok(_) => {}
                Err(e) if e.class == ErrorClass::NotFound => {}
                Err(e) => return Err(e),
            },
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Role {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        // The tags first: a role that is not ours is not read further.
        let ours = if_ours(Some(name.clone()), target, |n| async move {
            self.tags(&n).await
        })
        .await?;
        match ours.first() {
            Some(name) => Ok(self.get(name).await?.into_iter().collect()),
            None => Ok(Vec::new()),
        }
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let names = all_pages(|marker| async move {
            let page = self
                .0
                .iam
                .list_roles()
                .set_marker(marker)
                .send()
                .await
                .map_err(classify)?;
            let names = page
                .roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .collect();
            let next = page
                .marker()
                .map(String::from)
                .filter(|_| page.is_truncated());
            Ok((names, next))
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
        let IamRoleInputs {
            name,
            assume_role_policy,
            managed_policy_arns,
            inline_policy,
        } = IamRoleInputs::from_attrs(inputs)?;
        let out = self
            .0
            .iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(assume_role_policy.to_string())
            .set_tags(Some(tag_list(&tags_of(inputs))))
            .customize()
            .config_override(once!(aws_sdk_iam))
            .send()
            .await
            .map_err(classify)?;
        for arn in managed_policy_arns {
            self.0
                .iam
                .attach_role_policy()
                .role_name(&name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(classify)?;
        }
        self.set_inline(&name, inline_policy.as_ref()).await?;
        let outputs = ArnOutputs {
            id: name.clone(),
            arn: out.role().map(|r| r.arn().to_string()).unwrap_or_default(),
        };
        Ok(Observed {
            id: name,
            inputs: inputs.clone(),
            outputs: outputs.to_attrs(),
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let changed = |keys: &[&str]| crate::kinds::changed(before, after, keys);
        // Managed policies attached before (unreadable: none, so all are attached again).
        let was: Vec<String> = before
            .get("managed_policy_arns")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let IamRoleInputs {
            name: _, // the role's id: a new name is a new role
            assume_role_policy,
            managed_policy_arns,
            inline_policy,
        } = IamRoleInputs::from_attrs(after)?;
        if changed(&["assume_role_policy"]) {
            self.0
                .iam
                .update_assume_role_policy()
                .role_name(id)
                .policy_document(assume_role_policy.to_string())
                .send()
                .await
                .map_err(classify)?;
        }
        for arn in managed_policy_arns.iter().filter(|a| !was.contains(a)) {
            self.0
                .iam
                .attach_role_policy()
                .role_name(id)
                .policy_arn(arn)
                .send()
                .await
                .map_err(classify)?;
        }
        for arn in was.iter().filter(|a| !managed_policy_arns.contains(a)) {
            self.0
                .iam
                .detach_role_policy()
                .role_name(id)
                .policy_arn(arn)
                .send()
                .await
                .map_err(classify)?;
        }
        if changed(&["inline_policy"]) {
            self.set_inline(id, inline_policy.as_ref()).await?;
        }
        let iam = &self.0.iam;
        retag(
            before,
            after,
            |keys| async move {
                iam.untag_role()
                    .role_name(id)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
            |tags| async move {
                iam.tag_role()
                    .role_name(id)
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
            .ok_or_else(|| ProviderError::not_found(format!("role {id} is gone")))
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        let attached = self
            .0
            .iam
            .list_attached_role_policies()
            .role_name(id)
            .send()
            .await
            .map_err(classify)?;
        for p in attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
        {
            self.0
                .iam
                .detach_role_policy()
                .role_name(id)
                .policy_arn(p)
                .send()
                .await
                .map_err(classify)?;
        }
        self.set_inline(id, None).await?;
        self.0
            .iam
            .delete_role()
            .role_name(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "role", id)
    }
}
