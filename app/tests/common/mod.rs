//! Test harness: real Valkey / Redis servers on free ports, a fake OpenTDB source and
//! JWKS endpoint, signed tokens, and a client for the router.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/deploy-tools/bin")
        .join(name);
    if cached.exists() {
        return cached;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run `eval \"$(tests/tools/install)\"` (or set {var})");
}

#[derive(Clone, Copy, PartialEq)]
pub enum Flavor {
    Standalone,
    /// One node holding all 16,384 slots: enough for CROSSSLOT errors to surface.
    Cluster,
    /// redis-server with TLS only.
    Tls,
}

/// A server process, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    bus_port: u16,
    pub flavor: Flavor,
    dir: tempfile::TempDir,
    pub ca_file: Option<PathBuf>,
}

impl Server {
    pub async fn start(flavor: Flavor) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server {
            child: None,
            port: free_port(),
            bus_port: free_port(),
            flavor,
            dir,
            ca_file: None,
        };
        if flavor == Flavor::Tls {
            s.ca_file = Some(write_certs(s.dir.path()));
        }
        s.launch().await;
        s
    }

    fn args(&self) -> Vec<String> {
        let d = self.dir.path().display().to_string();
        let mut a: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            d.clone(),
        ];
        match self.flavor {
            Flavor::Standalone => a.extend(["--port".into(), self.port.to_string()]),
            Flavor::Cluster => a.extend([
                "--port".into(),
                self.port.to_string(),
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                format!("{d}/nodes.conf"),
                // The bus port defaults to port + 10000, which fails above 55535.
                "--cluster-port".into(),
                self.bus_port.to_string(),
            ]),
            Flavor::Tls => a.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                format!("{d}/server.crt"),
                "--tls-key-file".into(),
                format!("{d}/server.key"),
                "--tls-ca-cert-file".into(),
                format!("{d}/ca.crt"),
                "--tls-auth-clients".into(),
                "no".into(),
            ]),
        }
        a
    }

    async fn launch(&mut self) {
        let bin = match self.flavor {
            Flavor::Tls => binary("REDIS_SERVER", "redis-server"),
            _ => binary("VALKEY_SERVER", "valkey-server"),
        };
        let child = Command::new(&bin)
            .args(self.args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(mut c) = self.raw().await {
                if self.flavor == Flavor::Cluster {
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut c)
                        .await
                        .unwrap_or_default();
                    if !info.contains("cluster_state:ok") {
                        let _: Result<(), _> = redis::cmd("CLUSTER")
                            .arg("ADDSLOTSRANGE")
                            .arg(0)
                            .arg(16383)
                            .query_async(&mut c)
                            .await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server on port {} did not become ready", self.port);
    }

    /// A plain connection to the server (not through the app).
    pub async fn raw(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        trivia::install_tls_provider();
        let client = match &self.ca_file {
            Some(ca) => redis::Client::build_with_tls(
                format!("rediss://localhost:{}", self.port),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).unwrap()),
                },
            )?,
            None => redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?,
        };
        client.get_multiplexed_async_connection().await
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, empty (cluster slots reassigned).
    pub async fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.path().join("nodes.conf"));
        self.launch().await;
    }

    /// Settings for the app pointing at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "VALKEY_ENDPOINT".to_string(),
                if self.flavor == Flavor::Tls {
                    "localhost"
                } else {
                    "127.0.0.1"
                }
                .to_string(),
            ),
            ("VALKEY_PORT".into(), self.port.to_string()),
            (
                "VALKEY_TLS".into(),
                (self.flavor == Flavor::Tls).to_string(),
            ),
            ("VALKEY_TIMEOUT_MS".into(), "500".into()),
        ];
        if let Some(ca) = &self.ca_file {
            v.push(("VALKEY_TLS_CA".into(), ca.display().to_string()));
        }
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_certs(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    dir.join("ca.crt")
}

/// A fake OpenTDB source and JWKS endpoint on one local server.
pub struct Fakes {
    pub url: String,
    /// Calls to `api.php` (question batches), not counting token calls.
    pub fetches: Arc<AtomicUsize>,
    /// Response codes to answer with, in order, before answering normally.
    pub codes: Arc<Mutex<VecDeque<u8>>>,
    pub token_requests: Arc<AtomicUsize>,
    pub token_resets: Arc<AtomicUsize>,
    /// Delay before answering a batch (to widen race windows).
    pub delay_ms: Arc<AtomicUsize>,
    /// What the JWKS endpoint serves (the fixture until a test rotates it).
    pub jwks: Arc<Mutex<String>>,
    pub jwks_fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fakes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const ISSUER_PATH: &str = "/pool";
pub const CLIENT_ID: &str = "test-client";

impl Fakes {
    pub async fn start() -> Self {
        use axum::extract::{Query, State};
        use axum::routing::get;
        #[derive(Clone)]
        struct S {
            fetches: Arc<AtomicUsize>,
            codes: Arc<Mutex<VecDeque<u8>>>,
            token_requests: Arc<AtomicUsize>,
            token_resets: Arc<AtomicUsize>,
            delay_ms: Arc<AtomicUsize>,
            jwks: Arc<Mutex<String>>,
            jwks_fetches: Arc<AtomicUsize>,
        }
        let s = S {
            fetches: Arc::default(),
            codes: Arc::default(),
            token_requests: Arc::default(),
            token_resets: Arc::default(),
            delay_ms: Arc::default(),
            jwks: Arc::new(Mutex::new(include_str!("../fixtures/jwks.json").into())),
            jwks_fetches: Arc::default(),
        };
        let app = axum::Router::new()
            .route(
                "/api.php",
                get(|State(s): State<S>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    let delay = s.delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                    }
                    if let Some(code) = s.codes.lock().unwrap().pop_front() {
                        return axum::Json(json!({"response_code": code, "results": []}));
                    }
                    let amount: usize = q.get("amount").and_then(|a| a.parse().ok()).unwrap_or(10);
                    let cat = q.get("category").cloned().unwrap_or_default();
                    let results: Vec<Value> = (0..amount)
                        .map(|i| {
                            json!({
                                "type": "multiple",
                                "difficulty": "medium",
                                "category": "Fake",
                                "question": format!("Source question {i} of category {cat}: what is &quot;{i}&quot; &amp; more?"),
                                "correct_answer": format!("Right {i}"),
                                "incorrect_answers": [format!("Wrong A{i}"), format!("Wrong B{i}"), format!("Wrong &#039;C{i}&#039;")],
                            })
                        })
                        .collect();
                    axum::Json(json!({"response_code": 0, "results": results}))
                }),
            )
            .route(
                "/api_token.php",
                get(|State(s): State<S>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    if q.get("command").map(String::as_str) == Some("reset") {
                        s.token_resets.fetch_add(1, Ordering::SeqCst);
                    } else {
                        s.token_requests.fetch_add(1, Ordering::SeqCst);
                    }
                    axum::Json(json!({"response_code": 0, "response_message": "ok", "token": "tok"}))
                }),
            )
            .route(
                "/pool/.well-known/jwks.json",
                get(|State(s): State<S>| async move {
                    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    let body = s.jwks.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }),
            )
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fakes {
            url,
            fetches: s.fetches,
            codes: s.codes,
            token_requests: s.token_requests,
            token_resets: s.token_resets,
            delay_ms: s.delay_ms,
            jwks: s.jwks,
            jwks_fetches: s.jwks_fetches,
            task,
        }
    }

    pub fn issuer(&self) -> String {
        format!("{}{ISSUER_PATH}", self.url)
    }

    /// A token as Cognito would issue it for `user`, who chose `user` as display name.
    pub fn token(&self, user: &str) -> String {
        self.token_with(user, "id", CLIENT_ID, 3600, "test-key-1")
    }

    pub fn token_with(
        &self,
        user: &str,
        token_use: &str,
        client: &str,
        expires_in: i64,
        kid: &str,
    ) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "sub": format!("sub-{user}"),
            "cognito:username": format!("0f8fad5b-d9cb-469f-a165-70867728950e-{user}"),
            "preferred_username": user,
            "email": format!("{user}@example.com"),
            "iss": self.issuer(),
            "token_use": token_use,
            "iat": now,
            "exp": now + expires_in,
        });
        if token_use == "id" {
            claims["aud"] = json!(client);
        } else {
            claims["client_id"] = json!(client);
        }
        self.sign(&claims, kid)
    }

    /// An ID token for `user` with `changes` applied to its claims (a `null` removes one).
    pub fn token_changed(&self, user: &str, changes: Value) -> String {
        let mut claims = json!({
            "sub": format!("sub-{user}"),
            "preferred_username": user,
            "iss": self.issuer(),
            "token_use": "id",
            "aud": CLIENT_ID,
            "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 3600,
        });
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => claims.as_object_mut().unwrap().remove(k),
                v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        self.sign(&claims, "test-key-1")
    }

    /// Signs `claims` with the test key, naming it `kid`.
    pub fn sign(&self, claims: &Value, kid: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.into());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
            "../fixtures/jwt-signing-key.pem"
        ))
        .unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// Builds the app against `server` and `fakes`, like `trivia-api` in local mode.
pub fn app(
    server: &Server,
    fakes: &Fakes,
    extra: &[(&str, &str)],
) -> (axum::Router, trivia::AppState) {
    let mut env: Vec<(String, String)> = server.env();
    env.push(("COGNITO_ISSUER".into(), fakes.issuer()));
    env.push(("COGNITO_CLIENT_ID".into(), CLIENT_ID.into()));
    env.push(("QUESTION_SOURCE_URL".into(), fakes.url.clone()));
    for (k, v) in extra {
        env.push((k.to_string(), v.to_string()));
    }
    let map: std::collections::HashMap<String, String> = env.into_iter().collect();
    let config = trivia::config::Config::from_lookup(|k| map.get(k).cloned()).unwrap();
    let state = trivia::AppState::new(&config);
    (trivia::router(state.clone()), state)
}

/// One request through the router: (status, headers, body as JSON).
pub async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, headers, value)
}

/// One request through the router: (status, JSON body).
pub async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let (status, _, value) = send(app, req).await;
    (status, value)
}
