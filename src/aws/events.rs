//! EventBridge scheduled rules targeting a function's `live` alias, with the Lambda
//! permission that lets the rule invoke it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Tag, Target as RuleTarget};
use serde_json::Value;

use super::{all_pages, carrying, classify, if_ours, ready_when_visible, retag, tags_from};
use super::{read_tagged, tags_of, Clients, Tags};
use crate::kinds::schedules::ScheduleRuleInputs;
use crate::kinds::{ArnOutputs, Inputs, Outputs};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct ScheduleRule(pub Arc<Clients>);

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

const TARGET_ID: &str = "function";

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER` → (NAME, QUALIFIER).
pub(super) fn function_and_qualifier(arn: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        [.., "function", name, qualifier] => (name.to_string(), Some(qualifier.to_string())),
        [.., "function", name] => (name.to_string(), None),
        _ => (arn.to_string(), None),
    }
}

/// Grants `principal` (from `source_arn`) permission to invoke the function behind
/// `function_arn`. Idempotent: a grant already in the function's policy is left alone,
/// so redeploying never opens a window in which invocations are refused. Only a
/// statement that says something else is replaced.
pub(super) async fn allow_invoke(
    c: &Clients,
    function_arn: &str,
    statement: &str,
    principal: &str,
    source_arn: &str,
) -> Result<(), ProviderError> {
    let (name, qualifier) = function_and_qualifier(function_arn);
    match granted(c, &name, qualifier.as_deref(), statement).await? {
        Some(grant) if grant.allows(principal, source_arn) => return Ok(()),
        Some(_) => {
            if let Err(e) = c
                .lambda
                .remove_permission()
                .function_name(&name)
                .set_qualifier(qualifier.clone())
                .statement_id(statement)
                .send()
                .await
                .map_err(classify)
            {
                if e.class != ErrorClass::NotFound {
                    return Err(e);
                }
            }
        }
        None => {}
    }
    let added = c
        .lambda
        .add_permission()
        .function_name(&name)
        .set_qualifier(qualifier.clone())
        .statement_id(statement)
        .action("lambda:InvokeFunction")
        .principal(principal)
        .source_arn(source_arn)
        .send()
        .await
        .map_err(classify);
    match added {
        Ok(_) => Ok(()),
        // A statement with this id appeared meanwhile (an earlier attempt whose
        // answer was lost): fine if it grants the same.
        Err(e) if e.is_already_exists() => {
            match granted(c, &name, qualifier.as_deref(), statement).await? {
                Some(grant) if grant.allows(principal, source_arn) => Ok(()),
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// One statement of a function's resource policy, as far as grants go.
#[derive(Debug, PartialEq)]
struct Grant {
    principal: Option<String>,
    source_arn: Option<String>,
    action: Option<String>,
}

impl Grant {
    fn allows(&self, principal: &str, source_arn: &str) -> bool {
        self.principal.as_deref() == Some(principal)
            && self.source_arn.as_deref() == Some(source_arn)
            && self.action.as_deref() == Some("lambda:InvokeFunction")
    }
}

/// The statement `sid` of a function policy document, if it has one.
fn statement_of(policy: &str, sid: &str) -> Option<Grant> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let statements = match doc.get("Statement")? {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let s = statements
        .into_iter()
        .find(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    Some(Grant {
        principal: text(s.pointer("/Principal/Service")).or_else(|| text(s.get("Principal"))),
        source_arn: text(s.pointer("/Condition/ArnLike/AWS:SourceArn")),
        action: text(s.get("Action")),
    })
}

async fn granted(
    c: &Clients,
    name: &str,
    qualifier: Option<&str>,
    statement: &str,
) -> Result<Option<Grant>, ProviderError> {
    match c
        .lambda
        .get_policy()
        .function_name(name)
        .set_qualifier(qualifier.map(String::from))
        .send()
        .await
        .map_err(classify)
    {
        Ok(out) => Ok(out.policy().and_then(|p| statement_of(p, statement))),
        Err(e) if e.class == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) async fn revoke_invoke(c: &Clients, function_arn: &str, statement: &str) {
    let (name, qualifier) = function_and_qualifier(function_arn);
    let _ = c
        .lambda
        .remove_permission()
        .function_name(name)
        .set_qualifier(qualifier)
        .statement_id(statement)
        .send()
        .await;
}

impl ScheduleRule {
    async fn tags(&self, arn: &str) -> Result<Tags, ProviderError> {
        let out = self
            .0
            .events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(classify)?;
        Ok(tags_from(out.tags().iter().map(|t| (t.key(), t.value()))))
    }

    async fn get(&self, name: &str) -> Result<Option<Observed>, ProviderError> {
        let rule = match self
            .0
            .events
            .describe_rule()
            .name(name)
            .send()
            .await
            .map_err(classify)
        {
            Ok(r) => r,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let targets = self
            .0
            .events
            .list_targets_by_rule()
            .rule(name)
            .send()
            .await
            .map_err(classify)?;
        let target = targets
            .targets()
            .iter()
            .find(|t| t.id() == TARGET_ID)
            .map(|t| t.arn().to_string());
        let mut inputs = ScheduleRuleInputs {
            name: rule.name().unwrap_or(name).to_string(),
            expression: rule.schedule_expression().unwrap_or_default().to_string(),
            enabled: rule.state() == Some(&RuleState::Enabled),
            target_arn: target.clone().unwrap_or_default(),
        }
        .to_attrs();
        if target.is_none() {
            // A rule whose target was removed shows as having none.
            inputs.insert("target_arn".into(), Value::Null);
        }
        let outputs = ArnOutputs {
            id: name.into(),
            arn: rule.arn().unwrap_or_default().to_string(),
        };
        Ok(Some(Observed {
            id: name.into(),
            inputs,
            outputs: outputs.to_attrs(),
        }))
    }

    /// Puts the rule (an upsert) and its target; new rules get their tags with it.
    async fn put(&self, inputs: &Attrs, with_tags: bool) -> Result<String, ProviderError> {
        let ScheduleRuleInputs {
            name,
            expression,
            enabled,
            target_arn: function,
        } = ScheduleRuleInputs::from_attrs(inputs)?;
        let state = if enabled {
            RuleState::Enabled
        } else {
            RuleState::Disabled
        };
        let mut call = self
            .0
            .events
            .put_rule()
            .name(&name)
            .schedule_expression(expression)
            .state(state);
        if with_tags {
            call = call.set_tags(Some(tag_list(&tags_of(inputs))));
        }
        let arn = call
            .send()
            .await
            .map_err(classify)?
            .rule_arn()
            .unwrap_or_default()
            .to_string();
        let target = RuleTarget::builder()
            .id(TARGET_ID)
            .arn(&function)
            .build()
            .map_err(|e| ProviderError::fatal(e.to_string()))?;
        let out = self
            .0
            .events
            .put_targets()
            .rule(&name)
            .targets(target)
            .send()
            .await
            .map_err(classify)?;
        // PutTargets answers 200 even when an entry failed.
        if out.failed_entry_count() > 0 {
            let why: Vec<String> = out
                .failed_entries()
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}",
                        f.error_code().unwrap_or("?"),
                        f.error_message().unwrap_or("?")
                    )
                })
                .collect();
            return Err(ProviderError::new(
                ErrorClass::Retryable,
                format!("PutTargets failed for rule {name}: {}", why.join("; ")),
            ));
        }
        allow_invoke(
            &self.0,
            &function,
            &format!("events-{name}"),
            "events.amazonaws.com",
            &arn,
        )
        .await?;
        Ok(arn)
    }
}

#[async_trait]
impl Provider for ScheduleRule {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        if_ours(self.get(name).await?, target, |o| async move {
            self.tags(o.outputs["arn"].as_str().unwrap_or_default())
                .await
        })
        .await
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let rules = all_pages(|token| async move {
            let page = self
                .0
                .events
                .list_rules()
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let rules = page
                .rules()
                .iter()
                .filter_map(|r| Some((r.name()?.to_string(), r.arn()?.to_string())))
                .collect();
            Ok((rules, page.next_token().map(String::from)))
        })
        .await?;
        let tagged = carrying(rules, want, |(_, arn)| async move { self.tags(&arn).await });
        read_tagged(
            tagged.await?,
            |(name, _)| async move { self.get(&name).await },
        )
        .await
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let arn = self.put(inputs, true).await?;
        let name = ScheduleRuleInputs::from_attrs(inputs)?.name;
        Ok(Observed {
            id: name.clone(),
            inputs: inputs.clone(),
            outputs: ArnOutputs { id: name, arn }.to_attrs(),
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let new = ScheduleRuleInputs::from_attrs(after)?;
        // The old target's grant goes; a rule whose target was lost reads none.
        if let Some(old) = before
            .get("target_arn")
            .and_then(Value::as_str)
            .filter(|old| *old != new.target_arn)
        {
            revoke_invoke(&self.0, old, &format!("events-{id}")).await;
        }
        let arn = self.put(after, false).await?;
        let events = &self.0.events;
        let arn = arn.as_str();
        retag(
            before,
            after,
            |keys| async move {
                events
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
            |tags| async move {
                events
                    .tag_resource()
                    .resource_arn(arn)
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
            .ok_or_else(|| ProviderError::not_found(format!("rule {id} is gone")))
    }

    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError> {
        // Targets go before the rule.
        match self
            .0
            .events
            .remove_targets()
            .rule(id)
            .ids(TARGET_ID)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) => {}
            Err(e) if e.class == ErrorClass::NotFound => return Ok(Deletion::Done),
            Err(e) => return Err(e),
        }
        self.0
            .events
            .delete_rule()
            .name(id)
            .send()
            .await
            .map_err(classify)?;
        if let Some(f) = inputs.get("target_arn").and_then(Value::as_str) {
            revoke_invoke(&self.0, f, &format!("events-{id}")).await;
        }
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "rule", id)
    }
}

/// Whether `rule` is enabled, and the ARNs it targets (for the smoke checks).
pub async fn rule_status(c: &Clients, rule: &str) -> Result<(bool, Vec<String>), String> {
    let (r, t) = tokio::join!(
        c.events.describe_rule().name(rule).send(),
        c.events.list_targets_by_rule().rule(rule).send(),
    );
    let r = r.map_err(|e| format!("rule {rule}: {}", classify(e)))?;
    let t = t.map_err(|e| format!("targets of rule {rule}: {}", classify(e)))?;
    Ok((
        r.state() == Some(&RuleState::Enabled),
        t.targets().iter().map(|x| x.arn().to_string()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_policy_statement_is_read_as_a_grant() {
        let policy = r#"{"Version":"2012-10-17","Id":"default","Statement":[
            {"Sid":"other","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:f"},
            {"Sid":"apigateway-abc","Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:f:live","Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:execute-api:us-east-1:1:abc/*"}}}]}"#;
        let g = super::statement_of(policy, "apigateway-abc").unwrap();
        assert!(g.allows(
            "apigateway.amazonaws.com",
            "arn:aws:execute-api:us-east-1:1:abc/*"
        ));
        assert!(!g.allows(
            "apigateway.amazonaws.com",
            "arn:aws:execute-api:us-east-1:1:xyz/*"
        ));
        assert!(!g.allows(
            "events.amazonaws.com",
            "arn:aws:execute-api:us-east-1:1:abc/*"
        ));
        assert!(super::statement_of(policy, "missing").is_none());
        assert!(super::statement_of("not json", "apigateway-abc").is_none());
    }
}
