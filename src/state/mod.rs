//! Recorded state per environment: what the tool created, with AWS ids and outputs,
//! plus intents (creates in flight) and deposed objects (old halves of
//! create-before-delete replacements), and where it is kept: a [`Store`] (the local
//! directory, or an S3 bucket written with conditional requests) behind one
//! [`Backend`] handle with one lock per environment. The rest of the program does not
//! know which store is in use.

mod local;
pub mod s3;

pub use local::LocalBackend;
pub use s3::{S3Backend, S3Location};

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Address, Attrs, Kind};

/// The state document format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Identifies this environment's state history; a plan made against one lineage
    /// never applies to another.
    pub lineage: Uuid,
    /// Bumped on every write.
    pub serial: u64,
    pub project: String,
    pub environment: String,
    pub resources: BTreeMap<Address, ResourceState>,
    /// Creates started but not yet recorded. After a crash, the next run looks the
    /// resource up by its tags and adopts it instead of creating a duplicate.
    #[serde(default)]
    pub intents: BTreeMap<Address, Intent>,
    /// Old objects replaced create-before-delete, still to be deleted.
    #[serde(default)]
    pub deposed: BTreeMap<Address, ResourceState>,
    /// What a destroy deliberately left behind (a cache's final snapshot): not part of
    /// the environment any more, but still in the account and still billed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<Retained>,
}

/// Something a destroy kept on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retained {
    /// `cache_snapshot`.
    pub kind: String,
    pub name: String,
    /// What it was taken from.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    pub kind: Kind,
    /// The AWS identifier (VPC id, function name, pool id…).
    pub id: String,
    /// Inputs as applied, references resolved.
    pub inputs: Attrs,
    /// Attributes AWS assigned (ARNs, endpoints…).
    pub outputs: Attrs,
    pub depends_on: BTreeSet<Address>,
    #[serde(default)]
    pub protect: bool,
    /// Created or updated, but not yet seen ready (the run stopped while waiting).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub kind: Kind,
    /// Passed to AWS as the idempotency token where the API takes one.
    pub client_token: String,
    pub started_at: String,
    /// What finding the resource again needs: its physical name and tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub depends_on: BTreeSet<Address>,
}

impl State {
    pub fn new(project: &str, environment: &str) -> Self {
        Self {
            version: FORMAT_VERSION,
            lineage: Uuid::new_v4(),
            serial: 0,
            project: project.into(),
            environment: environment.into(),
            resources: BTreeMap::new(),
            intents: BTreeMap::new(),
            deposed: BTreeMap::new(),
            retained: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.intents.is_empty() && self.deposed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid state file: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path} was written by a newer deploy (state format {found}, this build reads {FORMAT_VERSION})")]
    TooNew { path: String, found: u32 },
    /// A conditional write found the state moved on since this run read it.
    #[error("the state of `{environment}` at {location} moved on since this run read it (serial {theirs} there, this run would write {ours}); nothing was overwritten\n  hint: another run wrote it (its lock may have been taken over from this one); check `deploy status -e {environment}`, then plan again")]
    Stale {
        environment: String,
        location: String,
        ours: u64,
        theirs: u64,
    },
    #[error("the state at {location} belongs to another history (lineage {theirs}, this run has {ours}); nothing was overwritten\n  hint: two environments may share one state location; check the `state:` section and `--state-url`")]
    Lineage {
        location: String,
        ours: Uuid,
        theirs: Uuid,
    },
    #[error("{location} already holds state; nothing was written\n  hint: move or remove it first if it is not needed (`deploy state history` lists what it holds)")]
    Exists { location: String },
    /// The remote store failed in a way a retry did not mend (the message says how).
    #[error("{0}")]
    Remote(String),
    #[error("{}", held_message(.environment, .info))]
    Locked {
        environment: String,
        info: Box<LockInfo>,
    },
    #[error("the lock on `{environment}` is no longer this run's (it was broken with `deploy unlock`, or taken over after its lease ran out); stopping before writing state another run may own\n  hint: check `deploy status -e {environment}`, then run the command again")]
    LockLost { environment: String },
}

fn held_message(environment: &str, info: &LockInfo) -> String {
    let since = humantime::format_rfc3339_seconds(info.started_at);
    let until = humantime::format_rfc3339_seconds(info.expires_at);
    let age = SystemTime::now()
        .duration_since(info.started_at)
        .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
        .unwrap_or_else(|_| "0s".into());
    format!(
        "environment `{environment}` is locked by {}@{} (pid {}, `{}`) since {since} ({age} ago); its lease runs until {until} and is renewed while that run lives\n  hint: wait for that run to finish; a lock whose holder died is taken over once its lease expires (or at once on the holder's machine), and `deploy unlock -e {environment}` breaks it now",
        info.owner, info.host, info.pid, info.operation
    )
}

/// Who holds an environment's lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Distinguishes this holder from a later one on the same host and pid.
    #[serde(default)]
    pub token: String,
    pub owner: String,
    pub host: String,
    /// Where `pid` means something: the machine, its boot and the process namespace
    /// (hostnames collide across containers). Empty in locks written before it existed.
    #[serde(default)]
    pub machine: String,
    pub pid: u32,
    pub operation: String,
    #[serde(with = "humantime_serde_compat")]
    pub started_at: SystemTime,
    #[serde(with = "humantime_serde_compat")]
    pub expires_at: SystemTime,
    /// How long each renewal lasts. A store that dates writes itself (S3's
    /// `Last-Modified`) reckons expiry from that and this, rather than from
    /// `expires_at`, which the holder's clock wrote. Absent in older locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<u64>,
}

impl LockInfo {
    pub(crate) fn new(operation: &str, lease: Duration) -> Self {
        let now = SystemTime::now();
        LockInfo {
            token: Uuid::new_v4().to_string(),
            owner: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            machine: this_machine(),
            pid: std::process::id(),
            operation: operation.into(),
            started_at: now,
            expires_at: now + lease,
            lease_secs: Some(lease.as_secs().max(1)),
        }
    }

    /// Whether the holder may still be running: unknown (so yes) unless it ran where
    /// this process runs.
    pub fn holder_alive(&self) -> bool {
        if self.machine.is_empty() || self.machine != this_machine() {
            return true;
        }
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Why another run may take this lock over, if it may: its lease expired (the
    /// holder stopped renewing it), or the holder ran on this machine and is gone. The
    /// one rule for every backend.
    pub fn takeover_reason(&self, now: SystemTime) -> Option<String> {
        if self.expires_at < now {
            return Some(format!(
                "its lease expired at {}",
                humantime::format_rfc3339_seconds(self.expires_at)
            ));
        }
        if !self.holder_alive() {
            return Some(format!("process {} on this machine is gone", self.pid));
        }
        None
    }

    pub fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}, `{}`, since {})",
            self.owner,
            self.host,
            self.pid,
            self.operation,
            humantime::format_rfc3339_seconds(self.started_at)
        )
    }
}

/// This machine, boot and process namespace, as one string: a pid is only
/// meaningful where all three are the same.
fn this_machine() -> String {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let machine = [read("/etc/machine-id"), read("/var/lib/dbus/machine-id")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let boot = read("/proc/sys/kernel/random/boot_id");
    let namespace = fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if boot.is_empty() || namespace.is_empty() {
        return String::new();
    }
    format!("{machine}/{boot}/{namespace}/{}", hostname())
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// How long a lock lasts without being renewed. A run renews it every fifth of
/// that (a heartbeat) and on every state write; `DEPLOY_LOCK_LEASE` (`30s`, `5m`)
/// overrides it.
pub const LOCK_LEASE: Duration = Duration::from_secs(5 * 60);

fn lease_from_env() -> Duration {
    std::env::var("DEPLOY_LOCK_LEASE")
        .ok()
        .and_then(|v| humantime::parse_duration(v.trim()).ok())
        .filter(|d| *d >= Duration::from_millis(100))
        .unwrap_or(LOCK_LEASE)
}

/// One stored version of an environment's state (`deploy state history`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    /// The S3 version id, or the backup file's path.
    pub id: String,
    #[serde(with = "option_time", skip_serializing_if = "Option::is_none")]
    pub modified: Option<SystemTime>,
    pub size: u64,
    /// The serial it holds, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// The current version.
    pub latest: bool,
    /// A delete marker (the state was removed or moved at this point).
    pub deleted: bool,
}

mod option_time {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::humantime_serde_compat::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// Where environments' state and locks are kept. Implementations: [`LocalBackend`]
/// (a directory) and [`S3Backend`] (a bucket, with conditional writes).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where this store is, for messages (a directory, `s3://bucket/prefix`).
    fn location(&self) -> String;
    /// Where an environment's state is, for messages.
    fn state_location(&self, environment: &str) -> String;
    /// The recorded state, or `None` if the environment was never applied.
    fn read(&self, environment: &str) -> Result<Option<State>, StateError>;
    /// Writes `state` as it is. `fresh`: only if there is no state yet. Otherwise a
    /// store with conditional writes replaces only the version this process last read
    /// or wrote, and refuses with [`StateError::Stale`] if another writer came between.
    fn put(&self, state: &State, fresh: bool) -> Result<(), StateError>;
    /// Keeps a copy of `state` as it is now, before surgery changes it; returns where.
    fn backup(&self, state: &State) -> Result<String, StateError>;
    /// Moves the environment's state out of the way (kept as a backup or an old
    /// version) after it was migrated elsewhere; returns where it was kept.
    fn retire(&self, environment: &str) -> Result<Option<String>, StateError>;
    /// The stored versions of the state, newest first.
    fn history(&self, environment: &str) -> Result<Vec<Version>, StateError>;
    /// Who holds the lock, if anyone.
    fn lock_info(&self, environment: &str) -> Result<Option<LockInfo>, StateError>;
    /// Takes the lock as `info`, or says who holds it ([`StateError::Locked`]); a
    /// holder whose [`LockInfo::takeover_reason`] allows it is replaced atomically,
    /// and the message saying so is returned.
    fn acquire(&self, environment: &str, info: &LockInfo) -> Result<Option<String>, StateError>;
    /// Rewrites the lock as `info` (a later expiry) if it still names `info.token`;
    /// `false` when it does not (the run lost it).
    fn renew(&self, environment: &str, info: &LockInfo) -> Result<bool, StateError>;
    /// Removes the lock if it still names `token`.
    fn release(&self, environment: &str, token: &str) -> Result<(), StateError>;
    /// Breaks the lock, whoever holds it. Returns what it held, if anything.
    fn unlock(&self, environment: &str) -> Result<Option<LockInfo>, StateError>;
    /// Whether [`Store::put`] refuses to replace a version it did not see: then a run
    /// need not renew its lock before every write to be safe from a stale overwrite.
    fn conditional_writes(&self) -> bool;
}

/// The state backend the program uses, whichever store is behind it.
#[derive(Debug, Clone)]
pub struct Backend {
    store: Arc<dyn Store>,
    lease: Duration,
    /// How long [`Backend::lock`] waits for a held lock, and what it says when it
    /// starts waiting.
    lock_wait: Duration,
    waiting: Notice,
}

/// Told once when a lock is waited for.
#[derive(Clone, Default)]
struct Notice(Option<Arc<NoticeFn>>);

type NoticeFn = dyn Fn(&str) + Send + Sync;

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notice")
    }
}

impl Backend {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            lease: lease_from_env(),
            lock_wait: Duration::ZERO,
            waiting: Notice::default(),
        }
    }

    /// The same backend, waiting up to `wait` for a lock another run holds (as
    /// Terraform's `-lock-timeout`) instead of refusing at once; `notice` is told once,
    /// when the wait starts.
    pub fn with_lock_wait(
        mut self,
        wait: Duration,
        notice: impl Fn(&str) + Send + Sync + 'static,
    ) -> Self {
        self.lock_wait = wait;
        self.waiting = Notice(Some(Arc::new(notice)));
        self
    }

    /// State files in `dir`.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self::new(Arc::new(LocalBackend::new(dir)))
    }

    /// The same backend with another lock lease (tests).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn location(&self) -> String {
        self.store.location()
    }

    pub fn state_location(&self, environment: &str) -> String {
        self.store.state_location(environment)
    }

    pub fn read(&self, environment: &str) -> Result<Option<State>, StateError> {
        self.store.read(environment)
    }

    /// Writes `state` with its serial bumped. On failure the serial is as it was.
    pub fn write(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        let written = self.store.put(state, false);
        if written.is_err() {
            state.serial -= 1;
        }
        written
    }

    /// Writes `state` exactly as it is (serial and lineage kept), where there is no
    /// state yet: a migration's target.
    pub fn create(&self, state: &State) -> Result<(), StateError> {
        self.store.put(state, true)
    }

    pub fn backup(&self, state: &State) -> Result<String, StateError> {
        self.store.backup(state)
    }

    pub fn retire(&self, environment: &str) -> Result<Option<String>, StateError> {
        self.store.retire(environment)
    }

    pub fn history(&self, environment: &str) -> Result<Vec<Version>, StateError> {
        self.store.history(environment)
    }

    pub fn lock_info(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        self.store.lock_info(environment)
    }

    pub fn unlock(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        self.store.unlock(environment)
    }

    /// Takes the environment's lock for `operation`, or says who holds it. A lock
    /// whose holder is dead (expired lease, or a gone process on this machine) is
    /// taken over; the guard says so (`took_over`).
    /// With a lock wait (see [`Backend::with_lock_wait`]) a held lock is tried again
    /// every few seconds until the wait is over.
    pub fn lock(&self, environment: &str, operation: &str) -> Result<LockGuard, StateError> {
        let deadline = Instant::now() + self.lock_wait;
        let mut told = false;
        loop {
            let info = LockInfo::new(operation, self.lease);
            match self.store.acquire(environment, &info) {
                Ok(took_over) => {
                    return Ok(LockGuard::start(
                        self.clone(),
                        environment.to_string(),
                        info,
                        took_over,
                    ))
                }
                Err(StateError::Locked { info: held, .. }) if Instant::now() < deadline => {
                    if !told {
                        told = true;
                        if let Some(notice) = &self.waiting.0 {
                            notice(&format!(
                                "waiting up to {} for the lock on `{environment}`, held by {}",
                                humantime::format_duration(Duration::from_secs(
                                    self.lock_wait.as_secs()
                                )),
                                held.describe()
                            ));
                        }
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(left.min(Duration::from_secs(2)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The message for a lock taken over from `held`.
fn took_over(environment: &str, held: &LockInfo, why: &str) -> String {
    format!(
        "took over the lock on `{environment}` from {}: {why}",
        held.describe()
    )
}

/// The bytes a state is stored as.
fn body(state: &State) -> Vec<u8> {
    let mut body = serde_json::to_vec_pretty(state).expect("state serializes");
    body.push(b'\n');
    body
}

/// Reads stored state bytes; `path` names where they came from in errors.
fn parse(bytes: &[u8], path: &str) -> Result<State, StateError> {
    let probe: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
            path: path.into(),
            reason: e.to_string(),
        })?;
    let found = probe
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0) as u32;
    if found > FORMAT_VERSION {
        return Err(StateError::TooNew {
            path: path.into(),
            found,
        });
    }
    serde_json::from_value(probe).map_err(|e| StateError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Holds an environment's lock until dropped, renewing its lease from a heartbeat
/// thread every fifth of the lease.
#[derive(Debug)]
pub struct LockGuard {
    backend: Backend,
    environment: String,
    info: Arc<Mutex<LockInfo>>,
    lost: Arc<AtomicBool>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    took_over: Option<String>,
    renewed: Instant,
}

impl LockGuard {
    fn start(
        backend: Backend,
        environment: String,
        info: LockInfo,
        took_over: Option<String>,
    ) -> Self {
        let info = Arc::new(Mutex::new(info));
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let beat = backend.lease / 5;
        let heartbeat = {
            let (backend, environment, info, lost) = (
                backend.clone(),
                environment.clone(),
                info.clone(),
                lost.clone(),
            );
            std::thread::Builder::new()
                .name("deploy-lock-heartbeat".into())
                .spawn(move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(beat)
                    {
                        let mut info = info.lock().expect("lock info");
                        match renew(&backend, &environment, &mut info) {
                            Ok(true) => {}
                            Ok(false) => {
                                lost.store(true, Ordering::SeqCst);
                                return;
                            }
                            // A failed renewal is retried at the next beat.
                            Err(_) => {}
                        }
                    }
                })
                .ok()
        };
        LockGuard {
            backend,
            environment,
            info,
            lost,
            stop: Some(stop),
            heartbeat,
            took_over,
            renewed: Instant::now(),
        }
    }

    /// Set when the lock was taken from a dead holder: what to tell the user.
    pub fn took_over(&self) -> Option<&str> {
        self.took_over.as_deref()
    }

    /// Renews the lease now. Fails when the lock no longer names this run (broken
    /// with `deploy unlock`, or taken over after the lease ran out): the run must then
    /// stop writing.
    pub fn renew(&mut self) -> Result<(), StateError> {
        let mut info = self.info.lock().expect("lock info");
        let held = !self.lost.load(Ordering::SeqCst)
            && renew(&self.backend, &self.environment, &mut info)?;
        if held {
            self.renewed = Instant::now();
            Ok(())
        } else {
            self.lost.store(true, Ordering::SeqCst);
            Err(StateError::LockLost {
                environment: self.environment.clone(),
            })
        }
    }

    /// Before a state write: fails if the run is known to have lost its lock. Where
    /// writes are not conditional, or the lease was last renewed more than a tenth of
    /// it ago, the lock is renewed (checked) first; a conditional write refuses a
    /// stale overwrite by itself.
    pub fn confirm(&mut self) -> Result<(), StateError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(StateError::LockLost {
                environment: self.environment.clone(),
            });
        }
        if !self.backend.store.conditional_writes()
            || self.renewed.elapsed() > self.backend.lease / 10
        {
            return self.renew();
        }
        Ok(())
    }
}

/// Renews `info`'s lease in the store if the lock still names it.
fn renew(backend: &Backend, environment: &str, info: &mut LockInfo) -> Result<bool, StateError> {
    let mut next = info.clone();
    next.expires_at = SystemTime::now() + backend.lease;
    let held = backend.store.renew(environment, &next)?;
    if held {
        *info = next;
    }
    Ok(held)
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let token = self.info.lock().expect("lock info").token.clone();
        let _ = self.backend.store.release(&self.environment, &token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_bumps_serial() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        assert!(b.read("dev").unwrap().is_none());
        let mut s = State::new("trivia", "dev");
        b.write(&mut s).unwrap();
        b.write(&mut s).unwrap();
        let back = b.read("dev").unwrap().unwrap();
        assert_eq!(back.serial, 2);
        assert_eq!(back, s);
    }

    #[test]
    fn state_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let mut s = State::new("trivia", "dev");
        b.write(&mut s).unwrap();
        b.write(&mut s).unwrap();
        let mode = fs::metadata(dir.path().join("dev.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let g = b.lock("dev", "apply").unwrap();
        let err = b.lock("dev", "plan").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("locked by") && msg.contains("deploy unlock -e dev"),
            "{msg}"
        );
        drop(g);
        b.lock("dev", "plan").unwrap();
    }

    #[test]
    fn unlock_breaks_a_lock_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        std::mem::forget(b.lock("dev", "apply").unwrap());
        assert_eq!(b.unlock("dev").unwrap().unwrap().operation, "apply");
        b.lock("dev", "apply").unwrap();
    }

    #[test]
    fn a_broken_lock_holder_does_not_remove_the_next_holders_lock() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let old = b.lock("dev", "apply").unwrap();
        b.unlock("dev").unwrap();
        let _new = b.lock("dev", "apply").unwrap();
        drop(old);
        assert!(
            b.lock("dev", "plan").is_err(),
            "the new holder keeps its lock"
        );
    }

    fn plant(b: &Backend, info: &LockInfo) {
        let dir = PathBuf::from(b.location());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("dev.lock"), serde_json::to_vec(info).unwrap()).unwrap();
    }

    #[test]
    fn a_lock_whose_holder_died_on_this_machine_is_taken_over_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let mut dead = LockInfo::new("apply", Duration::from_secs(3600));
        // A pid that cannot be running (above the kernel's pid_max).
        dead.pid = 4_194_305;
        plant(&b, &dead);
        let g = b.lock("dev", "apply").unwrap();
        let said = g.took_over().unwrap();
        assert!(
            said.contains("pid 4194305") && said.contains("is gone"),
            "{said}"
        );
        assert_ne!(b.lock_info("dev").unwrap().unwrap().token, dead.token);
    }

    #[test]
    fn a_lock_whose_lease_expired_is_taken_over_wherever_its_holder_ran() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let mut other = LockInfo::new("destroy", Duration::from_secs(1));
        other.machine = "another-machine".into();
        other.expires_at = SystemTime::now() - Duration::from_secs(5);
        plant(&b, &other);
        let g = b.lock("dev", "apply").unwrap();
        assert!(g.took_over().unwrap().contains("lease expired"));
    }

    #[test]
    fn a_live_or_remote_holder_keeps_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        // Another machine, a pid that is not running here, lease not expired: the
        // pid means nothing here, so the lock holds.
        let mut remote = LockInfo::new("apply", Duration::from_secs(3600));
        remote.machine = "another-machine".into();
        remote.pid = 4_194_305;
        plant(&b, &remote);
        assert!(matches!(
            b.lock("dev", "plan"),
            Err(StateError::Locked { .. })
        ));
        // A hostname alone never counts as "this machine".
        remote.machine = String::new();
        plant(&b, &remote);
        assert!(matches!(
            b.lock("dev", "plan"),
            Err(StateError::Locked { .. })
        ));
    }

    #[test]
    fn the_heartbeat_keeps_a_live_runs_lease_from_expiring() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path()).with_lease(Duration::from_millis(300));
        let g = b.lock("dev", "apply").unwrap();
        let first = b.lock_info("dev").unwrap().unwrap().expires_at;
        std::thread::sleep(Duration::from_millis(900));
        let later = b.lock_info("dev").unwrap().unwrap().expires_at;
        assert!(later > first + Duration::from_millis(300), "renewed");
        assert!(matches!(
            b.lock("dev", "plan"),
            Err(StateError::Locked { .. })
        ));
        drop(g);
        assert!(b.lock_info("dev").unwrap().is_none());
    }

    #[test]
    fn a_run_whose_lock_was_taken_stops_writing() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let mut g = b.lock("dev", "apply").unwrap();
        b.unlock("dev").unwrap();
        let _other = b.lock("dev", "apply").unwrap();
        assert!(matches!(g.renew(), Err(StateError::LockLost { .. })));
    }

    #[test]
    fn racing_lock_attempts_leave_one_holder_and_a_readable_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        let won = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    if let Ok(g) = b.lock("dev", "apply") {
                        won.fetch_add(1, Ordering::SeqCst);
                        // Every reader sees a whole lock file meanwhile.
                        for _ in 0..20 {
                            let text =
                                fs::read_to_string(PathBuf::from(b.location()).join("dev.lock"))
                                    .unwrap();
                            serde_json::from_str::<LockInfo>(&text).unwrap();
                        }
                        std::mem::forget(g);
                    }
                });
            }
        });
        assert_eq!(won.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::local(dir.path());
        std::fs::write(dir.path().join("dev.json"), r#"{"version": 99}"#).unwrap();
        assert!(matches!(
            b.read("dev"),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }
}
