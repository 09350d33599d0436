//! State and locks in an S3 bucket, with conditional writes throughout:
//! - `PREFIX/ENV.json` is replaced only with `If-Match` on the ETag this process last
//!   read or wrote (compare-and-swap), created only with `If-None-Match: *`;
//! - `PREFIX/ENV.lock` is created with `If-None-Match: *`, renewed and taken over with
//!   `If-Match`, and deleted with `If-Match`;
//! - a conditional request whose answer was lost may have taken effect: a refusal is
//!   checked by reading back (same bytes, same lock token) before it counts as one.
//!
//! The store is synchronous (the engine persists between steps, and the lock's
//! heartbeat is a thread); its SDK calls run on a small runtime of its own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{parse, LockInfo, State, StateError, Store, Version};

/// Where in S3: `s3://BUCKET/PREFIX`, and the bucket's region when it is not the
/// environment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    pub region: Option<String>,
}

impl S3Location {
    /// Parses `s3://bucket/prefix` (the prefix may be empty or have several parts).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("`{url}` is not an S3 URL\n  hint: write it as s3://BUCKET/PREFIX")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket).map_err(|why| format!("`{url}`: {why}"))?;
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            region: None,
        })
    }

    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// Why `name` is not a valid S3 bucket name (general purpose buckets), if it is not.
pub fn check_bucket(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !ok_chars
        || !ends_ok(name.chars().next())
        || !ends_ok(name.chars().last())
        || name.contains("..")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Err(format!(
            "`{name}` is not a valid S3 bucket name (3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

/// The SDK's runtime for this store, shut down without blocking when the store goes
/// (it may be dropped inside the program's own runtime).
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// State and locks in S3.
#[derive(Debug)]
pub struct S3Backend {
    location: S3Location,
    client: aws_sdk_s3::Client,
    runtime: Runtime,
    /// The ETag of each state object as this process last read or wrote it (`None`:
    /// it was not there).
    seen: Mutex<HashMap<String, Option<String>>>,
    /// The ETag of each lock this process holds.
    locks: Mutex<HashMap<String, String>>,
}

/// A conditional write's refusal, or another failure.
enum Refusal {
    /// 412, or 404 for `If-Match` on a missing object: not the version expected.
    Precondition,
    Failed(StateError),
}

enum Condition<'a> {
    None,
    Absent,
    Matches(&'a str),
}

/// How many times a write answered `409 ConditionalRequestConflict` (a concurrent
/// conditional write) is tried again.
const CONFLICT_ATTEMPTS: u32 = 6;

impl S3Backend {
    /// A store at `location`, in its region or else `region`. Fails plainly when
    /// there are no credentials; the bucket is first touched by the first read.
    pub fn connect(location: S3Location, region: &str) -> Result<Self, StateError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("deploy-state-s3")
            .enable_all()
            .build()
            .map_err(|e| StateError::Remote(format!("cannot start the S3 client: {e}")))?;
        let region = location
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| {
                if region.is_empty() {
                    "us-east-1".into()
                } else {
                    region.to_string()
                }
            });
        let url = location.url();
        let client = run(&rt, async move { client(&region).await })
            .map_err(|e| StateError::Remote(format!("{e} (for the state in {url})")))?;
        Ok(Self {
            location,
            client,
            runtime: Runtime(Some(rt)),
            seen: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// A store at `location` using `client` as it is configured (tests aim it at an
    /// emulator).
    pub fn from_client(
        location: S3Location,
        client: aws_sdk_s3::Client,
    ) -> Result<Self, StateError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("deploy-state-s3")
            .enable_all()
            .build()
            .map_err(|e| StateError::Remote(format!("cannot start the S3 client: {e}")))?;
        Ok(Self {
            location,
            client,
            runtime: Runtime(Some(rt)),
            seen: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn location_of(&self) -> &S3Location {
        &self.location
    }

    fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.location.bucket)
    }

    fn block<F, T>(&self, f: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        run(self.runtime.0.as_ref().expect("runtime"), f)
    }

    /// An S3 failure as a plain message: what failed, where, and what to do.
    fn failure<E>(&self, action: &str, key: &str, e: &SdkError<E>) -> StateError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let url = self.url_of(key);
        let bucket = &self.location.bucket;
        let code = e.code().unwrap_or_default();
        let status = e.raw_response().map(|r| r.status().as_u16());
        let detail = DisplayErrorContext(e).to_string();
        StateError::Remote(match (code, status) {
            ("NoSuchBucket", _) => format!(
                "cannot {action} {url}: the state bucket `{bucket}` does not exist\n  hint: create it with `deploy backend bootstrap --bucket {bucket}`, or fix the `state:` section / `--state-url`"
            ),
            ("AccessDenied", _) | (_, Some(403)) => format!(
                "S3 refused to {action} {url} ({code}): the credentials lack a permission the state backend needs\n  hint: allow s3:GetObject, s3:PutObject and s3:DeleteObject on {bucket}/{}*, and s3:ListBucket and s3:ListBucketVersions on {bucket} (README, \"Team use\")",
                self.location.key("")
            ),
            ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) | (_, Some(301)) => format!(
                "cannot {action} {url}: the bucket is in another region ({detail})\n  hint: set `state: {{ s3: {{ region: … }} }}` to the bucket's region"
            ),
            _ if detail.contains("credentials") => format!(
                "cannot {action} {url}: no usable AWS credentials ({detail})\n  hint: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ),
            _ if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => format!(
                "cannot reach S3 to {action} {url}: {detail}\n  hint: check the network; for the local cloud, start it with `deploy local start`"
            ),
            _ => format!("cannot {action} {url}: {detail}"),
        })
    }

    /// The object's bytes and ETag, or `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        Ok(self.get_dated(key)?.map(|(bytes, etag, _)| (bytes, etag)))
    }

    /// [`Self::get`], with when S3 says the object was last written (its own clock).
    fn get_dated(&self, key: &str) -> Result<Option<Dated>, StateError> {
        let (client, bucket, k) = (
            self.client.clone(),
            self.location.bucket.clone(),
            key.to_string(),
        );
        let got = self.block(async move {
            let out = client.get_object().bucket(bucket).key(k).send().await?;
            let etag = out.e_tag().unwrap_or_default().to_string();
            let modified = out
                .last_modified()
                .and_then(|t| SystemTime::try_from(*t).ok());
            let bytes = out.body.collect().await.map(|b| b.to_vec());
            Ok::<_, SdkError<aws_sdk_s3::operation::get_object::GetObjectError>>(Some((
                bytes, etag, modified,
            )))
        });
        match got {
            Ok(Some((Ok(bytes), etag, modified))) => Ok(Some((bytes, etag, modified))),
            Ok(Some((Err(e), _, _))) => Err(StateError::Remote(format!(
                "cannot read {}: the download broke off ({e})",
                self.url_of(key)
            ))),
            Ok(None) => Ok(None),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.failure("read", key, &e)),
        }
    }

    /// Puts `body` at `key` under `condition`, trying again while S3 answers that a
    /// concurrent conditional write conflicted. Returns the new ETag.
    fn put(&self, key: &str, body: &[u8], condition: Condition) -> Result<String, Refusal> {
        for attempt in 0..CONFLICT_ATTEMPTS {
            let mut req = self
                .client
                .put_object()
                .bucket(&self.location.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.to_vec()));
            req = match condition {
                Condition::None => req,
                Condition::Absent => req.if_none_match("*"),
                Condition::Matches(etag) => req.if_match(etag),
            };
            match self.block(async move { req.send().await }) {
                Ok(out) => return Ok(out.e_tag().unwrap_or_default().to_string()),
                Err(e) => match refusal(&e) {
                    Some(Refused::Precondition) => return Err(Refusal::Precondition),
                    Some(Refused::Conflict) if attempt + 1 < CONFLICT_ATTEMPTS => {
                        std::thread::sleep(backoff(attempt));
                    }
                    _ => return Err(Refusal::Failed(self.failure("write", key, &e))),
                },
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Deletes `key` if its ETag is `etag`.
    fn delete(&self, key: &str, etag: &str) -> Result<(), Refusal> {
        for attempt in 0..CONFLICT_ATTEMPTS {
            let req = self
                .client
                .delete_object()
                .bucket(&self.location.bucket)
                .key(key)
                .if_match(etag);
            match self.block(async move { req.send().await }) {
                Ok(_) => return Ok(()),
                Err(e) => match refusal(&e) {
                    Some(Refused::Precondition) => return Err(Refusal::Precondition),
                    Some(Refused::Conflict) if attempt + 1 < CONFLICT_ATTEMPTS => {
                        std::thread::sleep(backoff(attempt));
                    }
                    _ => return Err(Refusal::Failed(self.failure("delete", key, &e))),
                },
            }
        }
        unreachable!("the last attempt returns")
    }

    fn state_key(&self, environment: &str) -> String {
        self.location.key(&format!("{environment}.json"))
    }

    fn lock_key(&self, environment: &str) -> String {
        self.location.key(&format!("{environment}.lock"))
    }

    fn read_lock(&self, environment: &str) -> Result<Option<(LockInfo, String)>, StateError> {
        let key = self.lock_key(environment);
        let Some((bytes, etag, modified)) = self.get_dated(&key)? else {
            return Ok(None);
        };
        let mut info =
            serde_json::from_slice::<LockInfo>(&bytes).map_err(|e| StateError::Corrupt {
                path: self.url_of(&key),
                reason: format!("the lock is unreadable ({e}); remove it with `deploy unlock`"),
            })?;
        // The lease runs from S3's time of the last renewal, not the holder's clock
        // (machines' clocks differ). `Last-Modified` has whole seconds: one more
        // second keeps the reckoning from coming early.
        if let (Some(lease), Some(modified)) = (info.lease_secs, modified) {
            info.expires_at = modified + Duration::from_secs(lease + 1);
        }
        Ok(Some((info, etag)))
    }

    fn remember_lock(&self, environment: &str, etag: String) {
        self.locks
            .lock()
            .expect("locks")
            .insert(environment.to_string(), etag);
    }
}

/// An object's bytes, its ETag, and when S3 last wrote it.
type Dated = (Vec<u8>, String, Option<SystemTime>);

fn run<F, T>(rt: &tokio::runtime::Runtime, f: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the S3 client's runtime answers")
}

enum Refused {
    Precondition,
    Conflict,
}

fn refusal<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<Refused> {
    let status = e.raw_response().map(|r| r.status().as_u16());
    match (e.code(), status) {
        (Some("PreconditionFailed"), _) | (_, Some(412)) => Some(Refused::Precondition),
        (Some("NoSuchKey"), _) | (_, Some(404)) => Some(Refused::Precondition),
        (Some("ConditionalRequestConflict"), _) | (_, Some(409)) => Some(Refused::Conflict),
        _ => None,
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempt.min(5)))
}

/// An S3 client for `region`: the SDK's standard retries (throttling, 5xx, broken
/// connections; a retried conditional write is checked by reading back), path-style
/// addressing when an endpoint is configured (the local cloud).
pub async fn client(region: &str) -> Result<aws_sdk_s3::Client, String> {
    use aws_sdk_s3::config::ProvideCredentials;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build();
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(100));
    let config = aws_config::from_env()
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await;
    let none = "no AWS credentials found (looked in the environment, ~/.aws profiles, SSO and instance metadata)\n  hint: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
    let provider = config.credentials_provider().ok_or(none)?;
    match tokio::time::timeout(Duration::from_secs(3), provider.provide_credentials()).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) | Err(_) => return Err(none.into()),
    }
    let path_style = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.is_empty()));
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(path_style)
        .build();
    Ok(aws_sdk_s3::Client::from_conf(s3))
}

impl Store for S3Backend {
    fn location(&self) -> String {
        self.location.url()
    }

    fn state_location(&self, environment: &str) -> String {
        self.url_of(&self.state_key(environment))
    }

    fn read(&self, environment: &str) -> Result<Option<State>, StateError> {
        let key = self.state_key(environment);
        let got = self.get(&key)?;
        let (state, etag) = match got {
            Some((bytes, etag)) => (Some(parse(&bytes, &self.url_of(&key))?), Some(etag)),
            None => (None, None),
        };
        self.seen.lock().expect("seen").insert(key, etag);
        Ok(state)
    }

    fn put(&self, state: &State, fresh: bool) -> Result<(), StateError> {
        let key = self.state_key(&state.environment);
        let body = super::body(state);
        let expected = if fresh {
            None
        } else {
            self.seen.lock().expect("seen").get(&key).cloned().flatten()
        };
        let condition = match &expected {
            Some(etag) => Condition::Matches(etag),
            None => Condition::Absent,
        };
        match S3Backend::put(self, &key, &body, condition) {
            Ok(etag) => {
                self.seen.lock().expect("seen").insert(key, Some(etag));
                Ok(())
            }
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => {
                // Not the version this run saw: another writer, or this write itself
                // (its answer lost, the SDK's retry refused). Read back to tell.
                let url = self.url_of(&key);
                match self.get(&key)? {
                    Some((bytes, etag)) if bytes == body => {
                        self.seen.lock().expect("seen").insert(key, Some(etag));
                        Ok(())
                    }
                    Some(_) if fresh => Err(StateError::Exists { location: url }),
                    Some((bytes, _)) => {
                        let theirs = parse(&bytes, &url)?;
                        if theirs.lineage != state.lineage {
                            return Err(StateError::Lineage {
                                location: url,
                                ours: state.lineage,
                                theirs: theirs.lineage,
                            });
                        }
                        Err(StateError::Stale {
                            environment: state.environment.clone(),
                            location: url,
                            ours: state.serial,
                            theirs: theirs.serial,
                        })
                    }
                    None => Err(StateError::Remote(format!(
                        "the state at {url} was removed since this run read it; nothing was written\n  hint: check `deploy state history -e {}` and `deploy status`",
                        state.environment
                    ))),
                }
            }
        }
    }

    fn backup(&self, state: &State) -> Result<String, StateError> {
        let key = self.location.key(&format!(
            "backups/{}.{}.json",
            state.environment, state.serial
        ));
        match S3Backend::put(self, &key, &super::body(state), Condition::None) {
            Ok(_) => Ok(self.url_of(&key)),
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => Err(StateError::Remote(format!(
                "cannot write {}: S3 refused an unconditional write",
                self.url_of(&key)
            ))),
        }
    }

    fn retire(&self, environment: &str) -> Result<Option<String>, StateError> {
        let key = self.state_key(environment);
        let Some((bytes, etag)) = self.get(&key)? else {
            return Ok(None);
        };
        let state = parse(&bytes, &self.url_of(&key))?;
        let kept = self.backup(&state)?;
        match self.delete(&key, &etag) {
            Ok(()) => Ok(Some(kept)),
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => match self.get(&key)? {
                // The delete's answer was lost.
                None => Ok(Some(kept)),
                Some(_) => Err(StateError::Remote(format!(
                    "the state at {} changed while it was being moved; nothing was removed",
                    self.url_of(&key)
                ))),
            },
        }
    }

    fn history(&self, environment: &str) -> Result<Vec<Version>, StateError> {
        let key = self.state_key(environment);
        let (client, bucket, k) = (
            self.client.clone(),
            self.location.bucket.clone(),
            key.clone(),
        );
        let listed = self.block(async move {
            let mut out = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = client
                    .list_object_versions()
                    .bucket(&bucket)
                    .prefix(&k)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await?;
                let time = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
                    t.and_then(|t| SystemTime::try_from(*t).ok())
                };
                for v in page.versions() {
                    if v.key() == Some(k.as_str()) {
                        out.push(Version {
                            id: v.version_id().unwrap_or("null").to_string(),
                            modified: time(v.last_modified()),
                            size: v.size().unwrap_or(0).max(0) as u64,
                            serial: None,
                            latest: v.is_latest().unwrap_or(false),
                            deleted: false,
                        });
                    }
                }
                for m in page.delete_markers() {
                    if m.key() == Some(k.as_str()) {
                        out.push(Version {
                            id: m.version_id().unwrap_or("null").to_string(),
                            modified: time(m.last_modified()),
                            size: 0,
                            serial: None,
                            latest: m.is_latest().unwrap_or(false),
                            deleted: true,
                        });
                    }
                }
                let next = (
                    page.next_key_marker().map(str::to_string),
                    page.next_version_id_marker().map(str::to_string),
                );
                if !page.is_truncated().unwrap_or(false) || next == (key_marker, version_marker) {
                    break;
                }
                (key_marker, version_marker) = next;
            }
            Ok::<_, SdkError<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsError>>(
                out,
            )
        });
        let mut versions = listed.map_err(|e| self.failure("list the versions of", &key, &e))?;
        versions.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.latest.cmp(&a.latest)));
        // The serial each of the newest versions holds (one read each).
        for v in versions
            .iter_mut()
            .filter(|v| !v.deleted)
            .take(HISTORY_READS)
        {
            let (client, bucket, k, id) = (
                self.client.clone(),
                self.location.bucket.clone(),
                key.clone(),
                v.id.clone(),
            );
            let bytes = self.block(async move {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(k)
                    .version_id(id)
                    .send()
                    .await
                    .ok()?;
                out.body.collect().await.ok().map(|b| b.to_vec())
            });
            v.serial = bytes
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|j| j.get("serial").and_then(serde_json::Value::as_u64));
        }
        Ok(versions)
    }

    fn lock_info(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        Ok(self.read_lock(environment)?.map(|(info, _)| info))
    }

    fn acquire(&self, environment: &str, info: &LockInfo) -> Result<Option<String>, StateError> {
        let key = self.lock_key(environment);
        let body = serde_json::to_vec_pretty(info).expect("lock serializes");
        let mut taking_over = None;
        for attempt in 0..CONFLICT_ATTEMPTS {
            match S3Backend::put(self, &key, &body, Condition::Absent) {
                Ok(etag) => {
                    self.remember_lock(environment, etag);
                    return Ok(None);
                }
                Err(Refusal::Failed(e)) => return Err(e),
                Err(Refusal::Precondition) => {}
            }
            let Some((held, etag)) = self.read_lock(environment)? else {
                // Released between the two calls: try again.
                continue;
            };
            if held.token == info.token {
                // This run's own write, its answer lost.
                self.remember_lock(environment, etag);
                return Ok(taking_over);
            }
            let Some(why) = held.takeover_reason(SystemTime::now()) else {
                return Err(StateError::Locked {
                    environment: environment.into(),
                    info: Box::new(held),
                });
            };
            let message = super::took_over(environment, &held, &why);
            match S3Backend::put(self, &key, &body, Condition::Matches(&etag)) {
                Ok(etag) => {
                    self.remember_lock(environment, etag);
                    return Ok(Some(message));
                }
                Err(Refusal::Failed(e)) => return Err(e),
                // Another run took it first, or this takeover's answer was lost: the
                // next round reads the lock again and tells which.
                Err(Refusal::Precondition) => {
                    taking_over = Some(message);
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
        Err(StateError::Remote(format!(
            "cannot take the lock {}: it kept changing while this run tried\n  hint: another run is starting on `{environment}`; try again in a moment",
            self.url_of(&key)
        )))
    }

    fn renew(&self, environment: &str, info: &LockInfo) -> Result<bool, StateError> {
        let key = self.lock_key(environment);
        let Some(etag) = self.locks.lock().expect("locks").get(environment).cloned() else {
            return Ok(false);
        };
        let body = serde_json::to_vec_pretty(info).expect("lock serializes");
        match S3Backend::put(self, &key, &body, Condition::Matches(&etag)) {
            Ok(etag) => {
                self.remember_lock(environment, etag);
                Ok(true)
            }
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => match self.read_lock(environment)? {
                // An earlier renewal took effect with its answer lost: still ours.
                Some((held, etag)) if held.token == info.token => {
                    self.remember_lock(environment, etag.clone());
                    match S3Backend::put(self, &key, &body, Condition::Matches(&etag)) {
                        Ok(etag) => {
                            self.remember_lock(environment, etag);
                            Ok(true)
                        }
                        Err(Refusal::Failed(e)) => Err(e),
                        Err(Refusal::Precondition) => Ok(self
                            .read_lock(environment)?
                            .is_some_and(|(h, _)| h.token == info.token)),
                    }
                }
                _ => {
                    self.locks.lock().expect("locks").remove(environment);
                    Ok(false)
                }
            },
        }
    }

    fn release(&self, environment: &str, token: &str) -> Result<(), StateError> {
        let key = self.lock_key(environment);
        let Some(etag) = self.locks.lock().expect("locks").remove(environment) else {
            return Ok(());
        };
        match self.delete(&key, &etag) {
            Ok(()) => Ok(()),
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => match self.read_lock(environment)? {
                Some((held, etag)) if held.token == token => match self.delete(&key, &etag) {
                    Err(Refusal::Failed(e)) => Err(e),
                    _ => Ok(()),
                },
                // Gone (an earlier delete's answer lost) or someone else's now.
                _ => Ok(()),
            },
        }
    }

    fn unlock(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        let key = self.lock_key(environment);
        let Some((held, etag)) = self.read_lock(environment)? else {
            return Ok(None);
        };
        match self.delete(&key, &etag) {
            Ok(()) => Ok(Some(held)),
            Err(Refusal::Failed(e)) => Err(e),
            Err(Refusal::Precondition) => match self.read_lock(environment)? {
                None => Ok(Some(held)),
                Some(_) => Err(StateError::Remote(format!(
                    "the lock {} changed while it was being broken (its holder renewed it, or another run took it); nothing was removed\n  hint: check `deploy status -e {environment}`, then run `deploy unlock` again if it is still needed",
                    self.url_of(&key)
                ))),
            },
        }
    }

    fn conditional_writes(&self) -> bool {
        true
    }
}

/// How many of the newest versions `history` reads for their serials.
const HISTORY_READS: usize = 20;

/// Makes `bucket` fit to hold state, the same way however often it runs: created if
/// missing (in `region`), versioned (history, undo), encrypted (SSE-S3), closed to the
/// public, TLS only, and old versions expired after `keep_days`. Returns what it did,
/// step by step.
pub async fn bootstrap(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    keep_days: i32,
) -> Result<Vec<String>, String> {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
        BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration, PublicAccessBlockConfiguration,
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule, VersioningConfiguration,
    };
    let detail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what} `{bucket}`: {e}");
    let mut done = Vec::new();
    // Whether it exists first: us-east-1 answers a create of a bucket one already owns
    // with success, so the create alone cannot tell.
    let exists = match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) => match e.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => false,
            Some(403) => {
                return Err(format!(
                    "the bucket `{bucket}` exists and these credentials may not use it (bucket names are global: it may be another account's)\n  hint: choose another name with --bucket, or use credentials of the bucket's account"
                ))
            }
            _ => return Err(detail("look up", &DisplayErrorContext(&e))),
        },
    };
    if exists {
        done.push(format!("the bucket `{bucket}` exists and is yours"));
    } else {
        let mut create = client.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => done.push(format!("created the bucket `{bucket}` in {region}")),
            Err(e) => match e.code() {
                Some("BucketAlreadyOwnedByYou") => {
                    done.push(format!("the bucket `{bucket}` exists and is yours"))
                }
                Some("BucketAlreadyExists") => {
                    return Err(format!(
                        "the bucket name `{bucket}` is taken by another account (bucket names are global)\n  hint: choose another with --bucket"
                    ))
                }
                _ => return Err(detail("create", &DisplayErrorContext(&e))),
            },
        }
    }
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| detail("turn on versioning for", &DisplayErrorContext(&e)))?;
    done.push("versioning on: every state write is kept as a version".into());
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(|e| detail("encrypt", &e))?;
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .bucket_key_enabled(true)
                .build(),
        )
        .build()
        .map_err(|e| detail("encrypt", &e))?;
    client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| detail("turn on encryption for", &DisplayErrorContext(&e)))?;
    done.push("encryption at rest on (SSE-S3)".into());
    client
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| detail("block public access to", &DisplayErrorContext(&e)))?;
    done.push("public access blocked".into());
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    });
    client
        .put_bucket_policy()
        .bucket(bucket)
        .policy(policy.to_string())
        .send()
        .await
        .map_err(|e| detail("set the policy of", &DisplayErrorContext(&e)))?;
    done.push("requests without TLS denied (bucket policy)".into());
    let rule = LifecycleRule::builder()
        .id("deploy-state-old-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(keep_days)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(7)
                .build(),
        )
        .build()
        .map_err(|e| detail("set the lifecycle of", &e))?;
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| detail("set the lifecycle of", &e))?,
        )
        .send()
        .await
        .map_err(|e| detail("set the lifecycle of", &DisplayErrorContext(&e)))?;
    done.push(format!(
        "old versions expire {keep_days} days after they are replaced"
    ));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let l = S3Location::parse("s3://team-state/trivia/envs/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("team-state", "trivia/envs")
        );
        assert_eq!(l.key("dev.json"), "trivia/envs/dev.json");
        assert_eq!(l.url(), "s3://team-state/trivia/envs");
        let root = S3Location::parse("s3://team-state").unwrap();
        assert_eq!(root.key("dev.lock"), "dev.lock");
        for bad in [
            "team-state/x",
            "s3://Team",
            "s3://ab",
            "s3://a..b",
            "s3://-ab",
            "s3://10.0.0.1",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}
