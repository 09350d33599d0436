//! Cognito user pools and app clients. `UpdateUserPool` resets whatever it is not sent,
//! so updates always send the whole desired configuration.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, DeletionProtectionType, ExplicitAuthFlowsType, PasswordPolicyType,
    UserPoolPolicyType, UsernameAttributeType, UsernameConfigurationType,
};
use serde_json::{json, Value};

use super::{all_pages, classify, has_tags, if_read_ours, ready_when_visible, tags_of};
use super::{split_id, Clients, Tags};
use crate::kinds::identity::{UserPoolClientInputs, UserPoolInputs};
use crate::kinds::{IdOutputs, Inputs, Outputs};
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct UserPool(pub Arc<Clients>);
pub(super) struct UserPoolClient(pub Arc<Clients>);

fn policies(password_min_length: u8) -> UserPoolPolicyType {
    UserPoolPolicyType::builder()
        .password_policy(
            PasswordPolicyType::builder()
                .minimum_length(password_min_length.into())
                .build(),
        )
        .build()
}

fn protection(on: bool) -> DeletionProtectionType {
    if on {
        DeletionProtectionType::Active
    } else {
        DeletionProtectionType::Inactive
    }
}

impl UserPool {
    /// Every pool's id and name.
    async fn pools(&self) -> Result<Vec<(String, String)>, ProviderError> {
        all_pages(|token| async move {
            let page = self
                .0
                .cognito
                .list_user_pools()
                .max_results(60)
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let pools = page
                .user_pools()
                .iter()
                .filter_map(|p| Some((p.id()?.to_string(), p.name()?.to_string())))
                .collect();
            Ok((pools, page.next_token().map(String::from)))
        })
        .await
    }

    fn outputs(&self, id: &str, arn: Option<&str>) -> Attrs {
        let issuer = format!("https://cognito-idp.{}.amazonaws.com/{id}", self.0.region);
        Attrs::from([
            ("id".into(), json!(id)),
            ("arn".into(), json!(arn)),
            (
                "jwks_url".into(),
                json!(format!("{issuer}/.well-known/jwks.json")),
            ),
            ("issuer".into(), json!(issuer)),
        ])
    }

    async fn get(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let out = match self
            .0
            .cognito
            .describe_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(o) => o,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(p) = out.user_pool() else {
            return Ok(None);
        };
        let min = p
            .policies()
            .and_then(|x| x.password_policy())
            .and_then(|x| x.minimum_length());
        let mut inputs = UserPoolInputs {
            name: p.name().unwrap_or_default().to_string(),
            password_min_length: min.and_then(|m| u8::try_from(m).ok()).unwrap_or_default(),
            username_attributes: p
                .username_attributes()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            case_sensitive: p
                .username_configuration()
                .map(|u| u.case_sensitive())
                .unwrap_or(false),
            deletion_protection: p.deletion_protection() == Some(&DeletionProtectionType::Active),
        }
        .to_attrs();
        if min.is_none() {
            // No password policy read: unknown, not zero.
            inputs.insert("password_min_length".into(), Value::Null);
        }
        // In key order, as every other kind's: a map read in AWS's order would render
        // differently from one run to the next.
        let tags: std::collections::BTreeMap<&String, &String> =
            p.user_pool_tags().into_iter().flatten().collect();
        inputs.insert("tags".into(), json!(tags));
        Ok(Some(Observed {
            id: id.into(),
            inputs,
            outputs: self.outputs(id, p.arn()),
        }))
    }
}

#[async_trait]
impl Provider for UserPool {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        // Pool names are not unique: every pool of this name that carries our tag.
        let mut found = Vec::new();
        for (id, _) in self.pools().await?.iter().filter(|(_, n)| n == name) {
            let pool = self.get(id).await?;
            found.extend(if_read_ours(pool, target));
        }
        Ok(found)
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let mut out = Vec::new();
        for (id, _) in self.pools().await? {
            if let Some(o) = self.get(&id).await? {
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
        let UserPoolInputs {
            name,
            password_min_length,
            username_attributes,
            case_sensitive,
            deletion_protection,
        } = UserPoolInputs::from_attrs(inputs)?;
        let tags: HashMap<String, String> = tags_of(inputs).into_iter().collect();
        let out = self
            .0
            .cognito
            .create_user_pool()
            .pool_name(name)
            .policies(policies(password_min_length))
            .set_username_attributes(Some(
                username_attributes
                    .iter()
                    .map(|a| UsernameAttributeType::from(a.as_str()))
                    .collect(),
            ))
            .username_configuration(
                UsernameConfigurationType::builder()
                    .case_sensitive(case_sensitive)
                    .build()
                    .map_err(|e| ProviderError::fatal(e.to_string()))?,
            )
            .deletion_protection(protection(deletion_protection))
            .set_user_pool_tags(Some(tags))
            .customize()
            .config_override(once!(aws_sdk_cognitoidentityprovider))
            .send()
            .await
            .map_err(classify)?;
        let pool = out.user_pool().ok_or_else(|| {
            ProviderError::new(ErrorClass::Retryable, "AWS returned no user pool")
        })?;
        let id = pool.id().unwrap_or_default().to_string();
        Ok(Observed {
            id: id.clone(),
            inputs: inputs.clone(),
            outputs: self.outputs(&id, pool.arn()),
        })
    }

    async fn update(
        &self,
        id: &str,
        _before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let UserPoolInputs {
            // Fixed when the pool is made: a change replaces it.
            name: _,
            username_attributes: _,
            case_sensitive: _,
            password_min_length,
            deletion_protection,
        } = UserPoolInputs::from_attrs(after)?;
        // UpdateUserPool resets what it is not sent, and takes the tags whole (the
        // emulator has no Cognito tag calls; the result on AWS is the same).
        let tags: HashMap<String, String> = tags_of(after).into_iter().collect();
        self.0
            .cognito
            .update_user_pool()
            .user_pool_id(id)
            .policies(policies(password_min_length))
            .deletion_protection(protection(deletion_protection))
            .set_user_pool_tags(Some(tags))
            .send()
            .await
            .map_err(classify)?;
        self.get(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("user pool {id} is gone")))
    }

    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError> {
        // The plan has already refused this unless data loss was allowed; AWS-side
        // protection must come off before the pool can go.
        let recorded = UserPoolInputs::from_recorded(inputs).ok();
        if let Some(recorded) = recorded.filter(|r| r.deletion_protection) {
            self.0
                .cognito
                .update_user_pool()
                .user_pool_id(id)
                .policies(policies(recorded.password_min_length))
                .deletion_protection(DeletionProtectionType::Inactive)
                .send()
                .await
                .map_err(classify)?;
        }
        self.0
            .cognito
            .delete_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "user pool", id)
    }
}

fn flows(names: &[String]) -> Vec<ExplicitAuthFlowsType> {
    names
        .iter()
        .map(|f| ExplicitAuthFlowsType::from(f.as_str()))
        .collect()
}

/// Client ids are `POOL_ID/CLIENT_ID`: the API always needs both.
fn split(id: &str) -> Result<(&str, &str), ProviderError> {
    split_id(id, "POOL_ID/CLIENT_ID")
}

impl UserPoolClient {
    async fn get(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let (pool, client) = split(id)?;
        let out = match self
            .0
            .cognito
            .describe_user_pool_client()
            .user_pool_id(pool)
            .client_id(client)
            .send()
            .await
            .map_err(classify)
        {
            Ok(o) => o,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(c) = out.user_pool_client() else {
            return Ok(None);
        };
        let inputs = UserPoolClientInputs {
            name: c.client_name().unwrap_or_default().to_string(),
            user_pool_id: pool.to_string(),
            explicit_auth_flows: c
                .explicit_auth_flows()
                .iter()
                .map(|f| f.as_str().to_string())
                .collect(),
            generate_secret: c.client_secret().is_some(),
            prevent_user_existence_errors: c
                .prevent_user_existence_errors()
                .map_or("LEGACY", |p| p.as_str())
                .to_string(),
        };
        Ok(Some(Observed {
            id: id.into(),
            inputs: inputs.to_attrs(),
            outputs: IdOutputs { id: client.into() }.to_attrs(),
        }))
    }
}

fn existence_errors(
    setting: &str,
) -> aws_sdk_cognitoidentityprovider::types::PreventUserExistenceErrorTypes {
    aws_sdk_cognitoidentityprovider::types::PreventUserExistenceErrorTypes::from(setting)
}

#[async_trait]
impl Provider for UserPoolClient {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    /// Clients carry no tags: one is found by its name within its pool (the engine
    /// only looks after a create that may have happened, and skips clients the state
    /// already records).
    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let (Some(name), Some(pool)) = (
            &target.name,
            target
                .inputs
                .and_then(|i| i.get("user_pool_id"))
                .and_then(Value::as_str),
        ) else {
            return Ok(Vec::new());
        };
        let clients = all_pages(|token| async move {
            let page = self
                .0
                .cognito
                .list_user_pool_clients()
                .user_pool_id(pool)
                .max_results(60)
                .set_next_token(token)
                .send()
                .await
                .map_err(classify)?;
            let clients = page
                .user_pool_clients()
                .iter()
                .filter(|c| c.client_name() == Some(name.as_str()))
                .filter_map(|c| c.client_id().map(String::from))
                .collect();
            Ok((clients, page.next_token().map(String::from)))
        });
        let clients = match clients.await {
            Ok(c) => c,
            // The pool is gone, and its clients with it.
            Err(e) if e.class == ErrorClass::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for client in clients {
            found.extend(self.get(&format!("{pool}/{client}")).await?);
        }
        Ok(found)
    }

    async fn list(
        &self,
        _want: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Observed>, ProviderError> {
        // Clients carry no tags and cannot outlive their pool: deleting the pool
        // (found by its tags) deletes them.
        Ok(Vec::new())
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let UserPoolClientInputs {
            name,
            user_pool_id: pool,
            explicit_auth_flows,
            generate_secret,
            prevent_user_existence_errors,
        } = UserPoolClientInputs::from_attrs(inputs)?;
        let out = self
            .0
            .cognito
            .create_user_pool_client()
            .user_pool_id(&pool)
            .client_name(name)
            .set_explicit_auth_flows(Some(flows(&explicit_auth_flows)))
            .prevent_user_existence_errors(existence_errors(&prevent_user_existence_errors))
            .generate_secret(generate_secret)
            .customize()
            .config_override(once!(aws_sdk_cognitoidentityprovider))
            .send()
            .await
            .map_err(classify)?;
        let client = out
            .user_pool_client()
            .and_then(|c| c.client_id())
            .ok_or_else(|| {
                ProviderError::new(ErrorClass::Retryable, "AWS returned no client id")
            })?;
        Ok(Observed {
            id: format!("{pool}/{client}"),
            inputs: inputs.clone(),
            outputs: IdOutputs { id: client.into() }.to_attrs(),
        })
    }

    async fn update(
        &self,
        id: &str,
        _before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let (pool, client) = split(id)?;
        let UserPoolClientInputs {
            // Fixed when the client is made: a change replaces it.
            user_pool_id: _,
            generate_secret: _,
            name,
            explicit_auth_flows,
            prevent_user_existence_errors,
        } = UserPoolClientInputs::from_attrs(after)?;
        self.0
            .cognito
            .update_user_pool_client()
            .user_pool_id(pool)
            .client_id(client)
            .client_name(name)
            .set_explicit_auth_flows(Some(flows(&explicit_auth_flows)))
            // UpdateUserPoolClient resets what it is not sent.
            .prevent_user_existence_errors(existence_errors(&prevent_user_existence_errors))
            .send()
            .await
            .map_err(classify)?;
        self.get(id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("client {id} is gone")))
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        let (pool, client) = split(id)?;
        self.0
            .cognito
            .delete_user_pool_client()
            .user_pool_id(pool)
            .client_id(client)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "client", id)
    }
}

/// A confirmed user with a permanent password, for the smoke checks. No message is
/// sent. Errors start with "cannot create" so the caller knows nothing needs cleanup.
pub async fn temporary_user(
    c: &Clients,
    pool: &str,
    username: &str,
    display_name: &str,
    password: &str,
) -> Result<(), String> {
    c.cognito
        .admin_create_user()
        .user_pool_id(pool)
        .username(username)
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(username)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .user_attributes(
            AttributeType::builder()
                .name("email_verified")
                .value("true")
                .build()
                .map_err(|e| e.to_string())?,
        )
        // What leaderboards show (the pool's standard attribute).
        .user_attributes(
            AttributeType::builder()
                .name("preferred_username")
                .value(display_name)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("cannot create a temporary user in {pool}: {}", classify(e)))?;
    c.cognito
        .admin_set_user_password()
        .user_pool_id(pool)
        .username(username)
        .password(password)
        .permanent(true)
        .send()
        .await
        .map_err(|e| format!("cannot set the temporary user's password: {}", classify(e)))?;
    Ok(())
}

/// Signs in with `USER_PASSWORD_AUTH`; returns the ID token (what a Cognito user-pool
/// authorizer checks).
pub async fn sign_in(
    c: &Clients,
    client: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let out = c
        .cognito
        .initiate_auth()
        .client_id(client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
        .map_err(|e| format!("USER_PASSWORD_AUTH sign-in failed: {}", classify(e)))?;
    out.authentication_result()
        .and_then(|a| a.id_token())
        .map(String::from)
        .ok_or_else(|| {
            format!(
                "sign-in returned no tokens (challenge {:?})",
                out.challenge_name().map(|c| c.as_str())
            )
        })
}

/// Deletes a user; one already gone counts as deleted.
pub async fn delete_user(c: &Clients, pool: &str, username: &str) -> Result<(), String> {
    match c
        .cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username(username)
        .send()
        .await
        .map_err(classify)
    {
        Ok(_) => Ok(()),
        Err(e) if e.class == ErrorClass::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
