//! The API Gateway REST API, from an OpenAPI document built with the real ARNs: Lambda
//! proxy integrations to each function's `live` alias, the Cognito authorizer, CORS
//! preflights answered by the functions, and gateway responses. Definitions go in
//! with `PutRestApi` in overwrite mode, and a deployment to the stage follows whenever
//! the definition's hash changes (forgetting that is a classic way to ship nothing).
//!
//! Ids are `API_ID/STAGE`: reading a stage needs both.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_apigateway::primitives::Blob;
use aws_sdk_apigateway::types::PutMode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::events::{allow_invoke, revoke_invoke};
use super::{all_pages, classify, has_tags, ready_when_visible, retag, tags_from};
use super::{split_id, tags_of, Clients, Tags};
use crate::kinds::api::{ApiRoute, Cors, RestApiInputs};
use crate::kinds::Inputs;
use crate::model::Attrs;
use crate::provider::{Deletion, ErrorClass, Observed, Provider, ProviderError, Readiness, Target};

pub(super) struct RestApi(pub Arc<Clients>);

/// A literal for a `responseParameters` map: single-quoted, as API Gateway wants.
/// Spec validation allows no quote in origins or header names; one here is refused
/// rather than let through to change the document's meaning.
fn literal(value: &str) -> Result<Value, ProviderError> {
    if value.contains('\'') {
        return Err(ProviderError::fatal(format!(
            "`{value}` cannot be a response header value (it holds a quote)"
        )));
    }
    Ok(json!(format!("'{value}'")))
}

/// The OpenAPI document for these inputs, and its hash. Built as data: values from the
/// spec are JSON strings, never spliced into text.
///
/// - Each route is a Lambda proxy integration to its function's alias, behind the
///   Cognito authorizer when it asks for sign-in.
/// - With `cors`, each path answers `OPTIONS` through the same proxy integration
///   without authorization: the function echoes an allowed `Origin` (API Gateway's own
///   MOCK preflight can only send one fixed origin).
/// - Gateway responses (the authorizer's 401, throttling, 5xx) carry CORS headers too,
///   or a browser reports them as network errors. They cannot check the origin: with
///   one allowed origin (or `*`) it is sent as is; with several, the request's
///   `Origin` is echoed, which exposes only API Gateway's own error bodies.
pub fn render(region: &str, inputs: &RestApiInputs) -> Result<(String, String), ProviderError> {
    let doc = document(region, inputs)?;
    let text = serde_json::to_string_pretty(&doc).expect("document serializes");
    let hash = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((text, hash))
}

fn document(region: &str, inputs: &RestApiInputs) -> Result<Value, ProviderError> {
    let RestApiInputs {
        name,
        // The stage is where the document is deployed, not part of it.
        stage: _,
        cors,
        routes,
        authorizer_pool_arn,
    } = inputs;
    let integration = |function_arn: &str| {
        json!({
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": format!("arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"),
                "passthroughBehavior": "when_no_match",
            },
            "responses": {},
        })
    };
    let mut by_path: BTreeMap<&str, Vec<&ApiRoute>> = BTreeMap::new();
    for r in routes {
        by_path.entry(r.path.as_str()).or_default().push(r);
    }
    let mut paths = Map::new();
    for (path, rs) in by_path {
        let mut item = Map::new();
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name.trim_end_matches('+'), "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            item.insert("parameters".into(), json!(params));
        }
        for r in &rs {
            let ApiRoute {
                method,
                path: _, // grouped by above
                function_arn,
                auth,
            } = r;
            let mut op = integration(function_arn);
            if auth == "cognito" {
                op["security"] = json!([{"cognito": []}]);
            }
            let method = method.to_ascii_lowercase();
            item.insert(
                if method == "any" {
                    "x-amazon-apigateway-any-method".into()
                } else {
                    method
                },
                op,
            );
        }
        if cors.is_some() && !item.contains_key("options") {
            item.insert("options".into(), integration(&rs[0].function_arn));
        }
        paths.insert(path.to_string(), Value::Object(item));
    }
    let mut doc = json!({
        "openapi": "3.0.1",
        "info": {
            "title": name,
            "version": "1",
            "description": "Deployed by deploy; edits made in the console are overwritten.",
        },
        "paths": paths,
        "components": {"securitySchemes": {}},
    });
    if let Some(pool) = authorizer_pool_arn {
        doc["components"]["securitySchemes"]["cognito"] = json!({
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "cognito_user_pools",
            "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [pool]},
        });
    }
    if let Some(Cors {
        allow_origins: origins,
        allow_headers,
        // Preflights are answered by the function, which knows the max age.
        max_age_s: _,
    }) = cors
    {
        let origin = match origins.as_slice() {
            [one] => literal(one)?,
            _ => json!("method.request.header.Origin"),
        };
        let mut headers = Map::new();
        headers.insert(
            "gatewayresponse.header.Access-Control-Allow-Origin".into(),
            origin,
        );
        headers.insert(
            "gatewayresponse.header.Access-Control-Allow-Headers".into(),
            literal(&allow_headers.join(","))?,
        );
        if origins.len() != 1 || origins[0] != "*" {
            headers.insert("gatewayresponse.header.Vary".into(), literal("Origin")?);
        }
        let responses = json!({"responseParameters": headers});
        doc["x-amazon-apigateway-gateway-responses"] =
            json!({"DEFAULT_4XX": responses.clone(), "DEFAULT_5XX": responses});
    }
    Ok(doc)
}

/// The function aliases the routes invoke.
fn functions(inputs: &RestApiInputs) -> BTreeSet<&str> {
    inputs
        .routes
        .iter()
        .map(|r| r.function_arn.as_str())
        .collect()
}

/// The stage's URL: AWS's, or the local cloud's path form (nothing resolves
/// `*.execute-api.amazonaws.com` to this machine).
fn invoke_url(c: &Clients, api: &str, stage: &str) -> String {
    match &c.apigateway_endpoint {
        Some(endpoint) => format!("{endpoint}/restapis/{api}/{stage}/_user_request_/"),
        None => format!(
            "https://{api}.execute-api.{}.amazonaws.com/{stage}/",
            c.region
        ),
    }
}

fn split(id: &str) -> Result<(&str, &str), ProviderError> {
    split_id(id, "API_ID/STAGE")
}

impl RestApi {
    /// Every REST API's id, name and tags (GetRestApis returns the tags).
    async fn apis(&self) -> Result<Vec<(String, String, Tags)>, ProviderError> {
        all_pages(|position| async move {
            let page = self
                .0
                .apigateway
                .get_rest_apis()
                .limit(500)
                .set_position(position)
                .send()
                .await
                .map_err(classify)?;
            let apis: Vec<(String, String, Tags)> = page
                .items()
                .iter()
                .filter_map(|a| {
                    let tags = a
                        .tags()
                        .map(|t| tags_from(t.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
                    Some((
                        a.id()?.to_string(),
                        a.name().unwrap_or_default().to_string(),
                        tags.unwrap_or_default(),
                    ))
                })
                .collect();
            // An empty page ends the listing whatever the position says.
            let next = page
                .position()
                .map(String::from)
                .filter(|_| !apis.is_empty());
            Ok((apis, next))
        })
        .await
    }

    fn outputs(&self, api: &str, stage: &str, account: &str, deployment: Option<&str>) -> Attrs {
        let region = &self.0.region;
        Attrs::from([
            ("id".into(), json!(api)),
            (
                "execution_arn".into(),
                json!(format!("arn:aws:execute-api:{region}:{account}:{api}")),
            ),
            ("invoke_url".into(), json!(invoke_url(&self.0, api, stage))),
            ("deployment_id".into(), json!(deployment)),
        ])
    }

    /// Lets the API invoke the functions, then deploys the current definition to the
    /// stage: granted first, so a new route is never served without its permission.
    async fn deploy(
        &self,
        api: &str,
        inputs: &RestApiInputs,
        hash: &str,
    ) -> Result<String, ProviderError> {
        let stage = &inputs.stage;
        let source = format!(
            "arn:aws:execute-api:{}:{}:{api}/*",
            self.0.region, self.0.account
        );
        for f in functions(inputs) {
            allow_invoke(
                &self.0,
                f,
                &format!("apigateway-{api}"),
                "apigateway.amazonaws.com",
                &source,
            )
            .await?;
        }
        let d = self
            .0
            .apigateway
            .create_deployment()
            .rest_api_id(api)
            .stage_name(stage)
            .description(format!("definition sha256:{hash}"))
            .send()
            .await
            .map_err(classify)?;
        Ok(d.id().unwrap_or_default().to_string())
    }

    /// The deployment the stage serves, if the stage exists.
    async fn stage_deployment(
        &self,
        api: &str,
        stage: &str,
    ) -> Result<Option<String>, ProviderError> {
        match self
            .0
            .apigateway
            .get_stage()
            .rest_api_id(api)
            .stage_name(stage)
            .send()
            .await
            .map_err(classify)
        {
            Ok(s) => Ok(s.deployment_id().map(String::from)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The definition hash the stage's deployment was made from (its description says
    /// `definition sha256:HASH`), if the stage exists.
    async fn deployed_hash(&self, api: &str, stage: &str) -> Result<Option<String>, ProviderError> {
        let Some(deployment) = self.stage_deployment(api, stage).await? else {
            return Ok(None);
        };
        match self
            .0
            .apigateway
            .get_deployment()
            .rest_api_id(api)
            .deployment_id(deployment)
            .send()
            .await
            .map_err(classify)
        {
            Ok(d) => Ok(d
                .description()
                .and_then(|t| t.strip_prefix("definition sha256:"))
                .map(String::from)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let (api, stage) = split(id)?;
        let out = match self
            .0
            .apigateway
            .get_rest_api()
            .rest_api_id(api)
            .send()
            .await
            .map_err(classify)
        {
            Ok(o) => o,
            Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let deployment = self.stage_deployment(api, stage).await?;
        let tags: BTreeMap<String, String> = out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let inputs = Attrs::from([
            ("name".into(), json!(out.name())),
            ("stage".into(), json!(stage)),
            ("tags".into(), json!(tags)),
        ]);
        Ok(Some(Observed {
            id: id.into(),
            inputs,
            outputs: self.outputs(api, stage, &self.0.account, deployment.as_deref()),
        }))
    }
}

#[async_trait]
impl Provider for RestApi {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.get(id).await
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let Some(name) = &target.name else {
            return Ok(Vec::new());
        };
        // The spec's stage (an API from an interrupted run is read as its spec says).
        let stage = target
            .inputs
            .and_then(|i| i.get("stage"))
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| target.tags.get("deploy:stage").cloned())
            .unwrap_or_else(|| "v1".into());
        let mut found = Vec::new();
        for (api, api_name, tags) in self.apis().await? {
            if api_name != *name
                || tags.get("deploy:address").map(String::as_str) != Some(target.address.as_str())
            {
                continue;
            }
            found.extend(self.get(&format!("{api}/{stage}")).await?);
        }
        Ok(found)
    }

    async fn list(&self, want: &Tags) -> Result<Vec<Observed>, ProviderError> {
        let mut out = Vec::new();
        for (api, _, tags) in self.apis().await? {
            if !has_tags(&tags, want) {
                continue;
            }
            let stages = self
                .0
                .apigateway
                .get_stages()
                .rest_api_id(&api)
                .send()
                .await
                .map_err(classify)?;
            let stage = stages
                .item()
                .first()
                .and_then(|s| s.stage_name())
                .unwrap_or("v1")
                .to_string();
            out.push(Observed {
                id: format!("{api}/{stage}"),
                inputs: Attrs::from([("tags".into(), json!(tags))]),
                outputs: self.outputs(&api, &stage, &self.0.account, None),
            });
        }
        Ok(out)
    }

    async fn create(
        &self,
        _target: &Target<'_>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<Observed, ProviderError> {
        let typed = RestApiInputs::from_attrs(inputs)?;
        let (doc, hash) = render(&self.0.region, &typed)?;
        // Created with its tags, then given its definition (overwrite: the document
        // says everything).
        let tags: std::collections::HashMap<String, String> = tags_of(inputs).into_iter().collect();
        let out = self
            .0
            .apigateway
            .create_rest_api()
            .name(&typed.name)
            .set_tags(Some(tags))
            .customize()
            .config_override(once!(aws_sdk_apigateway))
            .send()
            .await
            .map_err(classify)?;
        let api = out
            .id()
            .ok_or_else(|| ProviderError::new(ErrorClass::Retryable, "AWS returned no API id"))?
            .to_string();
        self.0
            .apigateway
            .put_rest_api()
            .rest_api_id(&api)
            .mode(PutMode::Overwrite)
            .fail_on_warnings(false)
            .body(Blob::new(doc.into_bytes()))
            .send()
            .await
            .map_err(classify)?;
        let deployment = self.deploy(&api, &typed, &hash).await?;
        let stage = &typed.stage;
        Ok(Observed {
            id: format!("{api}/{stage}"),
            inputs: inputs.clone(),
            outputs: self.outputs(&api, stage, &self.0.account, Some(&deployment)),
        })
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let (api, _) = split(id)?;
        // A read sees the name and stage only; recorded routes name the grants to drop.
        let old = RestApiInputs::from_recorded(before).ok();
        let new = RestApiInputs::from_attrs(after)?;
        let (doc, hash) = render(&self.0.region, &new)?;
        // What the stage serves, by the hash its deployment was made from: a run that
        // died between PutRestApi and CreateDeployment, or an API created by a run
        // whose answer was lost, is redeployed even though `before` looks current.
        let deployed = self.deployed_hash(api, &new.stage).await?;
        if deployed.as_deref() != Some(hash.as_str())
            || crate::kinds::changed(before, after, &["stage"])
        {
            // Overwrite resets what the document does not say; the document says it all.
            self.0
                .apigateway
                .put_rest_api()
                .rest_api_id(api)
                .mode(PutMode::Overwrite)
                .fail_on_warnings(false)
                .body(Blob::new(doc.into_bytes()))
                .send()
                .await
                .map_err(classify)?;
            if let Some(old) = &old {
                for gone in functions(old).difference(&functions(&new)) {
                    revoke_invoke(&self.0, gone, &format!("apigateway-{api}")).await;
                }
            }
            self.deploy(api, &new, &hash).await?;
        }
        let (gateway, arn) = (
            &self.0.apigateway,
            &format!("arn:aws:apigateway:{}::/restapis/{api}", self.0.region),
        );
        retag(
            before,
            after,
            |keys| async move {
                gateway
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
            |tags| async move {
                gateway
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
        )
        .await?;
        let stage = new.stage.as_str();
        let new_id = format!("{api}/{stage}");
        let mut o = self
            .get(&new_id)
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("API {api} is gone")))?;
        o.outputs = self.outputs(
            api,
            stage,
            &self.0.account,
            o.outputs.get("deployment_id").and_then(Value::as_str),
        );
        Ok(o)
    }

    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError> {
        let (api, _) = split(id)?;
        self.0
            .apigateway
            .delete_rest_api()
            .rest_api_id(api)
            .send()
            .await
            .map_err(classify)?;
        // Recorded inputs that no longer parse leave the grants (harmless: the API
        // they name is gone).
        if let Ok(recorded) = RestApiInputs::from_recorded(inputs) {
            for f in functions(&recorded) {
                revoke_invoke(&self.0, f, &format!("apigateway-{api}")).await;
            }
        }
        Ok(Deletion::Done)
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        ready_when_visible(self.get(id).await?, "API", id)
    }
}
