//! Who is calling. As a Lambda, API Gateway's Cognito authorizer has checked the token
//! and put its claims in the request context. Locally, the bearer JWT is verified here
//! against the pool's JWKS (signature, issuer, client, expiry, token use), fetched on
//! first use and cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::config::Cognito;
use crate::error::AppError;

/// A signed-in player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    /// The pool's stable user id (`sub`).
    pub id: String,
    /// What leaderboards show: the username or email.
    pub name: String,
}

impl Player {
    fn from_claims(claims: &serde_json::Value) -> Option<Self> {
        let get = |k: &str| {
            claims
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let id = get("sub")?;
        let name = get("cognito:username")
            .or_else(|| get("username"))
            .or_else(|| get("email"))
            .unwrap_or_else(|| id.clone());
        Some(Self { id, name })
    }
}

/// The claims API Gateway's Cognito authorizer passed to the function.
pub fn from_lambda_context(ctx: &lambda_http::request::RequestContext) -> Option<Player> {
    // Only REST API events are enabled; another event kind would be a compile error here.
    let lambda_http::request::RequestContext::ApiGatewayV1(c) = ctx;
    let claims = c
        .authorizer
        .other
        .get("claims")
        .or_else(|| c.authorizer.fields.get("claims"))?;
    Player::from_claims(claims)
}

#[derive(Deserialize)]
struct Claims {
    token_use: Option<String>,
    aud: Option<String>,
    client_id: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Value,
}

/// Verifies bearer tokens against a Cognito pool.
pub struct Verifier {
    cognito: Cognito,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

/// JWKS are refetched at most this often when a token names an unknown key.
const REFRESH_AFTER: Duration = Duration::from_secs(60);

impl Verifier {
    pub fn new(cognito: Cognito) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client builds");
        Arc::new(Self {
            cognito,
            http,
            keys: RwLock::new(None),
        })
    }

    async fn fetch(&self) -> Result<JwkSet, AppError> {
        let unavailable = |e: String| {
            AppError::IdentityUnavailable(format!(
                "cannot fetch the signing keys from {}: {e}",
                self.cognito.jwks_url
            ))
        };
        let resp = self
            .http
            .get(&self.cognito.jwks_url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("HTTP {}", resp.status())));
        }
        resp.json::<JwkSet>()
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AppError> {
        {
            let cached = self.keys.read().await;
            if let Some((set, fetched)) = cached.as_ref() {
                if let Some(jwk) = set.find(kid) {
                    return DecodingKey::from_jwk(jwk).map_err(|_| {
                        AppError::Unauthorized("the token's signing key is unusable".into())
                    });
                }
                if fetched.elapsed() < REFRESH_AFTER {
                    return Err(AppError::Unauthorized(
                        "the token is signed by an unknown key".into(),
                    ));
                }
            }
        }
        let set = self.fetch().await?;
        let found = set.find(kid).cloned();
        *self.keys.write().await = Some((set, Instant::now()));
        match found {
            Some(jwk) => DecodingKey::from_jwk(&jwk)
                .map_err(|_| AppError::Unauthorized("the token's signing key is unusable".into())),
            None => Err(AppError::Unauthorized(
                "the token is signed by an unknown key".into(),
            )),
        }
    }

    /// The player a bearer token belongs to.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Player, AppError> {
        // The raw token, as API Gateway's Cognito authorizer documents it, or after
        // `Bearer `, as OAuth clients send it.
        let token = authorization
            .map(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
                    .unwrap_or(h)
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthorized("sign in first: send `Authorization: <ID token>`".into())
            })?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AppError::Unauthorized("the token is not a JWT".into()))?;
        let kid = header
            .kid
            .ok_or_else(|| AppError::Unauthorized("the token names no signing key".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.cognito.issuer]);
        validation.validate_aud = false;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| AppError::Unauthorized(format!("the token is not valid: {e}")))?;
        let c = data.claims;
        let client_ok = match c.token_use.as_deref() {
            Some("id") => c.aud.as_deref() == Some(self.cognito.client_id.as_str()),
            Some("access") => c.client_id.as_deref() == Some(self.cognito.client_id.as_str()),
            _ => {
                return Err(AppError::Unauthorized(
                    "the token is neither an id nor an access token".into(),
                ))
            }
        };
        if !client_ok {
            return Err(AppError::Unauthorized(
                "the token was issued to another app client".into(),
            ));
        }
        Player::from_claims(&c.rest)
            .ok_or_else(|| AppError::Unauthorized("the token has no subject".into()))
    }
}
