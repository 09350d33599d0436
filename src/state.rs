//! Recorded state per environment: what the tool created, with AWS ids and outputs,
//! plus intents (creates in flight) and deposed objects (old halves of
//! create-before-delete replacements). The local backend keeps it in
//! `.deploy/state/ENV.json`, written atomically, behind one lock per environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} was written by a newer deploy (state format {found}, this build reads {FORMAT_VERSION})")]
    TooNew { path: PathBuf, found: u32 },
    #[error("{}", held_message(.environment, .info))]
    Locked {
        environment: String,
        info: Box<LockInfo>,
    },
}

fn held_message(environment: &str, info: &LockInfo) -> String {
    let since = humantime::format_rfc3339_seconds(info.started_at);
    let now = SystemTime::now();
    let stale = if info.expires_at < now {
        " The lock has expired."
    } else if !info.holder_alive() {
        " That process is no longer running."
    } else {
        ""
    };
    format!(
        "environment `{environment}` is locked by {}@{} (pid {}, `{}`) since {since}.{stale}\n  hint: wait for that run to finish; if it is dead, run `deploy unlock -e {environment}`",
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
    pub pid: u32,
    pub operation: String,
    #[serde(with = "humantime_serde_compat")]
    pub started_at: SystemTime,
    #[serde(with = "humantime_serde_compat")]
    pub expires_at: SystemTime,
}

impl LockInfo {
    /// Whether the holder may still be running (unknown for other hosts: assume yes).
    pub fn holder_alive(&self) -> bool {
        if self.host != hostname() {
            return true;
        }
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// How long a lock lasts without being renewed; a run renews it on every state write.
pub const LOCK_TTL: Duration = Duration::from_secs(2 * 60 * 60);

/// State files on the local disk.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    dir: PathBuf,
}

impl LocalBackend {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, environment: &str) -> PathBuf {
        self.dir.join(format!("{environment}.json"))
    }

    fn lock_path(&self, environment: &str) -> PathBuf {
        self.dir.join(format!("{environment}.lock"))
    }

    /// The recorded state, or `None` if the environment was never applied.
    pub fn read(&self, environment: &str) -> Result<Option<State>, StateError> {
        let path = self.path(environment);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let found = probe
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32;
        if found > FORMAT_VERSION {
            return Err(StateError::TooNew { path, found });
        }
        serde_json::from_value(probe)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Writes `state` with its serial bumped: temp file, fsync, rename, fsync the
    /// directory. A crash leaves either the old or the new file, never half of one.
    pub fn write(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        let path = self.path(&state.environment);
        let io = |action, source| StateError::Io {
            action,
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(|e| io("create the directory for", e))?;
        let tmp = self.dir.join(format!(
            ".{}.json.tmp-{}",
            state.environment,
            std::process::id()
        ));
        let body = serde_json::to_vec_pretty(state).expect("state serializes");
        {
            // Readable by its owner only: state holds configuration values (function
            // environments, endpoints).
            use std::os::unix::fs::OpenOptionsExt;
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io("write", e))?;
            f.write_all(&body).map_err(|e| io("write", e))?;
            f.write_all(b"\n").map_err(|e| io("write", e))?;
            f.sync_all().map_err(|e| io("sync", e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io("replace", e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Takes the environment's lock for `operation`, or says who holds it.
    pub fn lock(&self, environment: &str, operation: &str) -> Result<LockGuard, StateError> {
        let path = self.lock_path(environment);
        fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            action: "create the directory for",
            path: path.clone(),
            source,
        })?;
        let now = SystemTime::now();
        let info = LockInfo {
            token: Uuid::new_v4().to_string(),
            owner: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            operation: operation.into(),
            started_at: now,
            expires_at: now + LOCK_TTL,
        };
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let body = serde_json::to_vec_pretty(&info).expect("lock serializes");
                f.write_all(&body)
                    .and_then(|_| f.sync_all())
                    .map_err(|source| StateError::Io {
                        action: "write",
                        path: path.clone(),
                        source,
                    })?;
                Ok(LockGuard { path, info })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = self
                    .lock_info(environment)?
                    .ok_or_else(|| StateError::Corrupt {
                        path: path.clone(),
                        reason:
                            "the lock file is empty or unreadable; remove it with `deploy unlock`"
                                .into(),
                    })?;
                Err(StateError::Locked {
                    environment: environment.into(),
                    info: Box::new(held),
                })
            }
            Err(source) => Err(StateError::Io {
                action: "create",
                path,
                source,
            }),
        }
    }

    pub fn lock_info(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        let path = self.lock_path(environment);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(serde_json::from_str(&t).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Breaks the lock, whoever holds it. Returns what it held, if anything.
    pub fn unlock(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        let info = self.lock_info(environment)?;
        let path = self.lock_path(environment);
        match fs::remove_file(&path) {
            Ok(()) => Ok(info),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }
}

/// Holds an environment's lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    info: LockInfo,
}

impl LockGuard {
    /// Whether the lock file still names this holder (it may have been broken with
    /// `deploy unlock` and taken by another run).
    fn still_ours(&self) -> bool {
        fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<LockInfo>(&t).ok())
            .is_some_and(|held| held.token == self.info.token)
    }

    /// Pushes the expiry forward; called as a run makes progress.
    pub fn renew(&mut self) {
        if !self.still_ours() {
            return;
        }
        self.info.expires_at = SystemTime::now() + LOCK_TTL;
        if let Ok(body) = serde_json::to_vec_pretty(&self.info) {
            let _ = fs::write(&self.path, body);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.still_ours() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_and_bumps_serial() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
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
        let b = LocalBackend::new(dir.path());
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
        let b = LocalBackend::new(dir.path());
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
        let b = LocalBackend::new(dir.path());
        std::mem::forget(b.lock("dev", "apply").unwrap());
        assert_eq!(b.unlock("dev").unwrap().unwrap().operation, "apply");
        b.lock("dev", "apply").unwrap();
    }

    #[test]
    fn a_broken_lock_holder_does_not_remove_the_next_holders_lock() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let old = b.lock("dev", "apply").unwrap();
        b.unlock("dev").unwrap();
        let _new = b.lock("dev", "apply").unwrap();
        drop(old);
        assert!(
            b.lock("dev", "plan").is_err(),
            "the new holder keeps its lock"
        );
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        std::fs::write(b.path("dev"), r#"{"version": 99}"#).unwrap();
        assert!(matches!(
            b.read("dev"),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }
}
