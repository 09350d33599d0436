//! The trivia game deployed by `deploy`: a JSON API on Valkey. The same router serves
//! API Gateway proxy events as a Lambda (`trivia-api` with `AWS_LAMBDA_RUNTIME_API`
//! set) and plain HTTP locally.

pub mod config;
pub mod error;
pub mod game;
pub mod identity;
pub mod keys;
pub mod questions;
pub mod store;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use error::AppError;
use game::Games;
use identity::{Player, Verifier};

/// Request bodies are tiny; anything bigger is refused.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Selects rustls's crypto provider for the process. Which providers are compiled in
/// depends on what else is built alongside (the AWS SDK brings another), and rustls
/// refuses to guess when there are two; choosing explicitly makes TLS work either way.
pub fn install_tls_provider() {
    // An error means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Version reported by `/health`.
pub fn build_version() -> &'static str {
    option_env!("TRIVIA_BUILD").unwrap_or(env!("CARGO_PKG_VERSION"))
}

/// How requests are tied to players.
#[derive(Clone)]
pub enum Auth {
    /// API Gateway's Cognito authorizer already checked the token (Lambda mode).
    Gateway,
    /// Verify bearer tokens here (local mode).
    Verify(Arc<Verifier>),
}

#[derive(Clone)]
pub struct AppState {
    pub games: Games,
    pub auth: Auth,
    pub cors: config::Cors,
}

impl AppState {
    /// Everything the router needs, built once per process from the configuration.
    pub fn new(config: &config::Config) -> Self {
        install_tls_provider();
        let store = store::Store::new(config.valkey.clone());
        let source = config
            .question_source
            .as_deref()
            .map(|url| Arc::new(questions::OpenTdb::new(url)));
        let loader = questions::Loader::new(store.clone(), source);
        let auth = match (&config.mode, &config.cognito) {
            (_, Some(c)) if config.mode != config::Mode::Lambda => {
                Auth::Verify(Verifier::new(c.clone()))
            }
            _ => Auth::Gateway,
        };
        Self {
            games: Games {
                store,
                loader,
                questions_per_game: config.questions_per_game,
            },
            auth,
            cors: config.cors.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Player {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match &state.auth {
            Auth::Gateway => parts
                .extensions
                .get::<lambda_http::request::RequestContext>()
                .and_then(identity::from_lambda_context)
                .ok_or_else(|| {
                    AppError::Unauthorized("sign in first: this route needs a Cognito token".into())
                }),
            Auth::Verify(v) => {
                v.verify(
                    parts
                        .headers
                        .get(header::AUTHORIZATION)
                        .and_then(|h| h.to_str().ok()),
                )
                .await
            }
        }
    }
}

/// A JSON body whose every rejection is a JSON 4xx.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(AppError::TooLarge(BODY_LIMIT)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::bad(
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(AppError::bad("invalid_body", e.body_text()))
            }
            Err(e) => Err(AppError::bad(
                "invalid_json",
                format!("the body is not valid JSON: {}", e.body_text()),
            )),
        }
    }
}

/// One JSON line per request on stdout, which Lambda sends to the function's log
/// stream: the gateway's request id (the `x-amzn-RequestId` its response carries) next
/// to Lambda's, so a request a user saw leads to its invocation's `START`/`REPORT`.
#[allow(clippy::print_stdout)]
pub async fn access_log(req: Request, next: axum::middleware::Next) -> Response {
    use lambda_http::RequestExt;
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let gateway = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV1(c)) => c.request_id.clone(),
        _ => None,
    };
    let lambda = req.lambda_context_ref().map(|c| c.request_id.clone());
    let resp = next.run(req).await;
    println!(
        "{}",
        json!({
            "request_id": gateway,
            "lambda_request_id": lambda,
            "method": method,
            "path": path,
            "status": resp.status().as_u16(),
            "ms": (started.elapsed().as_secs_f64() * 1e5).round() / 100.0,
        })
    );
    resp
}

/// API Gateway REST events carry the stage in the path (`/v1/games`); the routes do
/// not. Strips it, using the stage named in the request context.
pub fn strip_stage<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let Some(lambda_http::request::RequestContext::ApiGatewayV1(ctx)) =
        req.extensions()
            .get::<lambda_http::request::RequestContext>()
    else {
        return req;
    };
    let Some(stage) = ctx.stage.as_deref().filter(|s| !s.is_empty()) else {
        return req;
    };
    let prefix = format!("/{stage}");
    let path = req.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/".to_string(),
        Some(r) if r.starts_with('/') => r.to_string(),
        _ => return req,
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{rest}{query}").parse() {
        *req.uri_mut() = uri;
    }
    req
}

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.cors);
    let app = Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/categories", get(categories))
        .route("/games", post(start))
        .route("/games/{id}/question", get(question))
        .route("/games/{id}/answers", post(answer))
        .route("/games/{id}/finish", post(finish))
        .route("/leaderboard", get(leaderboard))
        .route("/leaderboard/me", get(leaderboard_me))
        .route("/me", get(me).delete(forget_me))
        .fallback(|| async { AppError::not_found("not_found", "no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    // Outermost, so error responses and rejected tokens carry the headers too (a
    // browser hides a response without them from the page, error and all), and
    // preflights are answered before any route asks for a token: API Gateway sends
    // them to the function unauthenticated.
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.with_state(state)
}

/// The CORS layer the settings describe, or none when no origin is allowed (the site
/// and the API share an origin and browsers need no headers).
fn cors_layer(c: &config::Cors) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let origins = match &c.origins {
        config::AllowedOrigins::None => return None,
        config::AllowedOrigins::Any => AllowOrigin::any(),
        config::AllowedOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::DELETE,
                axum::http::Method::OPTIONS,
            ])
            .allow_headers(AllowHeaders::list(c.headers.iter().cloned()))
            .max_age(c.max_age),
    )
}

/// A page that shows the game's state (cache health, categories, this week's board)
/// and how to play through the API.
async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../static/index.html"))
}

async fn health(State(s): State<AppState>) -> Response {
    match s.games.store.ping().await {
        Ok(latency) => {
            let mut loaded = serde_json::Map::new();
            for c in questions::CATEGORIES {
                loaded.insert(c.id.into(), json!(s.games.loader.count(&c).await.ok()));
            }
            Json(json!({
                "status": "ok",
                "version": build_version(),
                "valkey": {"reachable": true, "tls": s.games.store.tls(), "latency_ms": (latency.as_secs_f64() * 1e5).round() / 100.0},
                "questions_loaded": loaded,
            }))
            .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "version": build_version(), "valkey": {"reachable": false, "error": e.to_string()}})),
        )
            .into_response(),
    }
}

/// Removes the player's profile, "seen" sets and leaderboard entries, and their share
/// of the global statistics (the smoke checks' temporary players use it to leave
/// nothing behind).
async fn forget_me(State(s): State<AppState>, player: Player) -> Result<Json<Value>, AppError> {
    let removed = s.games.forget(&player).await?;
    Ok(Json(
        json!({"player": player.name, "keys_changed": removed}),
    ))
}

async fn categories(State(s): State<AppState>) -> Json<Value> {
    let mut out = Vec::new();
    for c in questions::CATEGORIES {
        out.push(json!({"id": c.id, "name": c.name, "questions_loaded": s.games.loader.count(&c).await.ok()}));
    }
    Json(json!({"categories": out}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartGame {
    category: String,
}

async fn start(
    State(s): State<AppState>,
    player: Player,
    Body(b): Body<StartGame>,
) -> Result<(StatusCode, Json<game::Started>), AppError> {
    let cat = questions::category(&b.category).ok_or_else(|| {
        let known: Vec<&str> = questions::CATEGORIES.iter().map(|c| c.id).collect();
        AppError::bad(
            "unknown_category",
            format!(
                "no category `{}`; choose one of {}",
                b.category,
                known.join(", ")
            ),
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(s.games.start(&player, cat).await?),
    ))
}

async fn question(
    State(s): State<AppState>,
    player: Player,
    Path(id): Path<String>,
) -> Result<Json<game::PublicQuestion>, AppError> {
    Ok(Json(s.games.question(&player, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    question_id: String,
    answer: String,
}

async fn answer(
    State(s): State<AppState>,
    player: Player,
    Path(id): Path<String>,
    Body(b): Body<AnswerBody>,
) -> Result<Json<game::Answered>, AppError> {
    Ok(Json(
        s.games
            .answer(&player, &id, &b.question_id, &b.answer)
            .await?,
    ))
}

async fn finish(
    State(s): State<AppState>,
    player: Player,
    Path(id): Path<String>,
) -> Result<Json<game::Finished>, AppError> {
    Ok(Json(s.games.finish(&player, &id).await?))
}

#[derive(Deserialize)]
struct BoardQuery {
    week: Option<String>,
    limit: Option<String>,
}

fn week_of(q: &BoardQuery) -> Result<String, AppError> {
    match &q.week {
        Some(w) => game::parse_week(w),
        None => Ok(game::current_week()),
    }
}

async fn leaderboard(
    State(s): State<AppState>,
    q: Result<Query<BoardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad("invalid_query", e.body_text()))?;
    let week = week_of(&q)?;
    let limit = match &q.limit {
        None => 10,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                AppError::bad(
                    "invalid_limit",
                    format!("limit `{l}` must be a number from 1 to 100"),
                )
            })?,
    };
    let top = s.games.leaderboard(&week, limit).await?;
    Ok(Json(json!({"week": week, "entries": top})))
}

async fn leaderboard_me(
    State(s): State<AppState>,
    player: Player,
    q: Result<Query<BoardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad("invalid_query", e.body_text()))?;
    let week = week_of(&q)?;
    let (rank, around) = s.games.around(&player, &week).await?;
    Ok(Json(
        json!({"week": week, "player": player.name, "rank": rank, "around": around}),
    ))
}

async fn me(State(s): State<AppState>, player: Player) -> Result<Json<Value>, AppError> {
    Ok(Json(s.games.profile(&player).await?))
}
