//! Who is calling. As a Lambda, API Gateway's Cognito authorizer has checked the token
//! and put its claims in the request context. Locally, the bearer JWT is verified here
//! against the pool's JWKS (signature, issuer, client, expiry, not-before, token use),
//! fetched on first use and cached for a while (see [`KeyRefresh`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
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
    /// What leaderboards and `/me` show: the name the player chose.
    pub name: String,
}

/// Display names longer than this are cut: they are repeated on every leaderboard row.
const NAME_MAX_CHARS: usize = 32;

impl Player {
    /// The player a token's claims describe. The name is the Cognito standard
    /// attribute `preferred_username`, which the player chooses at sign-up. Without one
    /// the name is derived from `sub`, never the email or the pool's username (a UUID
    /// in pools that sign in by email): leaderboards are public.
    fn from_claims(claims: &serde_json::Value) -> Option<Self> {
        let get = |k: &str| {
            claims
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let id = get("sub")?.to_string();
        let name = match get("preferred_username") {
            Some(chosen) => chosen.chars().take(NAME_MAX_CHARS).collect(),
            None => format!("player-{}", id.chars().take(8).collect::<String>()),
        };
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

/// How long fetched signing keys are trusted.
#[derive(Debug, Clone, Copy)]
pub struct KeyRefresh {
    /// Keys older than this are fetched again before use, so a key the pool has
    /// retired stops being accepted.
    pub max_age: Duration,
    /// A token naming a key the cache lacks causes a fetch (the pool may have added
    /// one), but at most once per this interval, so made-up key ids cannot turn every
    /// request into a call to the JWKS endpoint.
    pub unknown_key_interval: Duration,
}

impl Default for KeyRefresh {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(3600),
            unknown_key_interval: Duration::from_secs(60),
        }
    }
}

struct CachedKeys {
    set: JwkSet,
    fetched: Instant,
}

/// What the cache can say about a key id.
enum Lookup<'a> {
    Found(&'a Jwk),
    Unknown,
    Fetch,
}

impl KeyRefresh {
    fn lookup<'a>(&self, cached: Option<&'a CachedKeys>, kid: &str, now: Instant) -> Lookup<'a> {
        let Some(c) = cached else {
            return Lookup::Fetch;
        };
        let age = now.saturating_duration_since(c.fetched);
        if age >= self.max_age {
            return Lookup::Fetch;
        }
        match c.set.find(kid) {
            Some(jwk) => Lookup::Found(jwk),
            None if age >= self.unknown_key_interval => Lookup::Fetch,
            None => Lookup::Unknown,
        }
    }
}

/// Verifies bearer tokens against a Cognito pool.
pub struct Verifier {
    cognito: Cognito,
    http: reqwest::Client,
    refresh: KeyRefresh,
    keys: RwLock<Option<CachedKeys>>,
}

/// Allowed clock difference between the pool and this process, for `exp` and `nbf`.
const LEEWAY_S: u64 = 30;

impl Verifier {
    pub fn new(cognito: Cognito) -> Arc<Self> {
        Self::with_refresh(cognito, KeyRefresh::default())
    }

    pub fn with_refresh(cognito: Cognito, refresh: KeyRefresh) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("HTTP client builds");
        Arc::new(Self {
            cognito,
            http,
            refresh,
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
            let keys = self.keys.read().await;
            match self.refresh.lookup(keys.as_ref(), kid, Instant::now()) {
                Lookup::Found(jwk) => return decoding_key(jwk),
                Lookup::Unknown => return Err(unknown_key()),
                Lookup::Fetch => {}
            }
        }
        let mut keys = self.keys.write().await;
        // Requests that waited for the lock find the keys another one fetched.
        match self.refresh.lookup(keys.as_ref(), kid, Instant::now()) {
            Lookup::Found(jwk) => return decoding_key(jwk),
            Lookup::Unknown => return Err(unknown_key()),
            Lookup::Fetch => {}
        }
        let set = self.fetch().await?;
        let found = set.find(kid).map(decoding_key);
        *keys = Some(CachedKeys {
            set,
            fetched: Instant::now(),
        });
        found.unwrap_or_else(|| Err(unknown_key()))
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
        validation.leeway = LEEWAY_S;
        validation.validate_nbf = true;
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

fn decoding_key(jwk: &Jwk) -> Result<DecodingKey, AppError> {
    DecodingKey::from_jwk(jwk)
        .map_err(|_| AppError::Unauthorized("the token's signing key is unusable".into()))
}

fn unknown_key() -> AppError {
    AppError::Unauthorized("the token is signed by an unknown key; sign in again".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_display_name_is_the_preferred_username_and_never_the_email() {
        let named = json!({"sub": "5f1c2a9e-0000-4000-8000-000000000001", "preferred_username": " Ada ", "cognito:username": "5f1c2a9e-0000-4000-8000-000000000001", "email": "ada@example.com"});
        assert_eq!(Player::from_claims(&named).unwrap().name, "Ada");
        let anonymous = json!({"sub": "5f1c2a9e-0000-4000-8000-000000000001", "cognito:username": "ada", "email": "ada@example.com", "preferred_username": ""});
        let p = Player::from_claims(&anonymous).unwrap();
        assert_eq!(p.name, "player-5f1c2a9e");
        assert_eq!(p.id, "5f1c2a9e-0000-4000-8000-000000000001");
        let long = json!({"sub": "s", "preferred_username": "x".repeat(100)});
        assert_eq!(
            Player::from_claims(&long).unwrap().name.chars().count(),
            NAME_MAX_CHARS
        );
        assert_eq!(
            Player::from_claims(&json!({"sub": "abc"})).unwrap().name,
            "player-abc"
        );
        assert!(Player::from_claims(&json!({"preferred_username": "ada"})).is_none());
    }

    #[test]
    fn cached_keys_expire_and_unknown_keys_refetch_at_most_once_per_interval() {
        let refresh = KeyRefresh {
            max_age: Duration::from_secs(3600),
            unknown_key_interval: Duration::from_secs(60),
        };
        let set: JwkSet =
            serde_json::from_str(include_str!("../tests/fixtures/jwks.json")).unwrap();
        let kid = set.keys[0].common.key_id.clone().unwrap();
        let t0 = Instant::now();
        let cached = CachedKeys { set, fetched: t0 };
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(matches!(refresh.lookup(None, &kid, t0), Lookup::Fetch));
        assert!(matches!(
            refresh.lookup(Some(&cached), &kid, at(3599)),
            Lookup::Found(_)
        ));
        assert!(matches!(
            refresh.lookup(Some(&cached), &kid, at(3600)),
            Lookup::Fetch
        ));
        assert!(matches!(
            refresh.lookup(Some(&cached), "other", at(59)),
            Lookup::Unknown
        ));
        assert!(matches!(
            refresh.lookup(Some(&cached), "other", at(60)),
            Lookup::Fetch
        ));
    }
}
