//! State files on the local disk: `DIR/ENV.json`, written atomically, with the lock in
//! `DIR/ENV.lock` behind an `flock`ed guard file so that taking, renewing, taking over
//! and releasing it never interleave.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use uuid::Uuid;

use super::{parse, LockInfo, State, StateError, Store, Version};

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

    pub(super) fn lock_path(&self, environment: &str) -> PathBuf {
        self.dir.join(format!("{environment}.lock"))
    }

    fn guard_path(&self, environment: &str) -> PathBuf {
        self.dir.join(format!(".{environment}.lock.guard"))
    }

    fn backups(&self) -> PathBuf {
        self.dir.join("backups")
    }

    /// Runs `f` holding an exclusive `flock` on the environment's guard file.
    fn exclusively<T>(
        &self,
        environment: &str,
        f: impl FnOnce() -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let path = self.guard_path(environment);
        fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            action: "create the directory for",
            path: path.clone(),
            source,
        })?;
        let guard = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Io {
                action: "open",
                path: path.clone(),
                source,
            })?;
        guard.lock().map_err(|source| StateError::Io {
            action: "lock",
            path,
            source,
        })?;
        let out = f();
        let _ = guard.unlock();
        out
    }

    fn read_lock(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        let path = self.lock_path(environment);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<LockInfo>(&text)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: path.display().to_string(),
                    reason: format!(
                        "the lock file is unreadable ({e}); remove it with `deploy unlock`"
                    ),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }
}

impl Store for LocalBackend {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn state_location(&self, environment: &str) -> String {
        self.path(environment).display().to_string()
    }

    fn read(&self, environment: &str) -> Result<Option<State>, StateError> {
        let path = self.path(environment);
        match fs::read(&path) {
            Ok(bytes) => parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Temp file, fsync, rename, fsync the directory: a crash leaves either the old or
    /// the new file, never half of one. Readable by its owner only: state holds
    /// configuration values (function environments, endpoints).
    fn put(&self, state: &State, fresh: bool) -> Result<(), StateError> {
        let path = self.path(&state.environment);
        if fresh && path.exists() {
            return Err(StateError::Exists {
                location: path.display().to_string(),
            });
        }
        let body = super::body(state);
        write_file(&self.dir, &path, &body, true)
    }

    fn backup(&self, state: &State) -> Result<String, StateError> {
        let path = self
            .backups()
            .join(format!("{}.{}.json", state.environment, state.serial));
        write_file(&self.backups(), &path, &super::body(state), true)?;
        Ok(path.display().to_string())
    }

    fn retire(&self, environment: &str) -> Result<Option<String>, StateError> {
        let Some(state) = self.read(environment)? else {
            return Ok(None);
        };
        let kept = self.backup(&state)?;
        let path = self.path(environment);
        fs::remove_file(&path).map_err(|source| StateError::Io {
            action: "remove",
            path,
            source,
        })?;
        Ok(Some(kept))
    }

    /// The backups surgery and migration kept: the only history a directory has.
    fn history(&self, environment: &str) -> Result<Vec<Version>, StateError> {
        let mut out = Vec::new();
        let prefix = format!("{environment}.");
        let Ok(entries) = fs::read_dir(self.backups()) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(serial) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".json"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let meta = entry.metadata().ok();
            out.push(Version {
                id: entry.path().display().to_string(),
                modified: meta.as_ref().and_then(|m| m.modified().ok()),
                size: meta.map(|m| m.len()).unwrap_or(0),
                serial: Some(serial),
                latest: false,
                deleted: false,
            });
        }
        if let Some(current) = self.read(environment)? {
            let meta = fs::metadata(self.path(environment)).ok();
            out.push(Version {
                id: self.path(environment).display().to_string(),
                modified: meta.as_ref().and_then(|m| m.modified().ok()),
                size: meta.map(|m| m.len()).unwrap_or(0),
                serial: Some(current.serial),
                latest: true,
                deleted: false,
            });
        }
        out.sort_by(|a, b| b.serial.cmp(&a.serial).then(b.latest.cmp(&a.latest)));
        Ok(out)
    }

    fn lock_info(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        Ok(self.read_lock(environment).ok().flatten())
    }

    fn acquire(&self, environment: &str, info: &LockInfo) -> Result<Option<String>, StateError> {
        self.exclusively(environment, || {
            let took_over = match self.read_lock(environment)? {
                None => None,
                Some(held) => match held.takeover_reason(SystemTime::now()) {
                    Some(why) => Some(super::took_over(environment, &held, &why)),
                    None => {
                        return Err(StateError::Locked {
                            environment: environment.into(),
                            info: Box::new(held),
                        })
                    }
                },
            };
            write_lock(&self.dir, &self.lock_path(environment), info)?;
            Ok(took_over)
        })
    }

    fn renew(&self, environment: &str, info: &LockInfo) -> Result<bool, StateError> {
        self.exclusively(environment, || {
            if self.lock_info(environment)?.map(|h| h.token) != Some(info.token.clone()) {
                return Ok(false);
            }
            write_lock(&self.dir, &self.lock_path(environment), info)?;
            Ok(true)
        })
    }

    fn release(&self, environment: &str, token: &str) -> Result<(), StateError> {
        self.exclusively(environment, || {
            if self.lock_info(environment)?.map(|h| h.token).as_deref() == Some(token) {
                let _ = fs::remove_file(self.lock_path(environment));
            }
            Ok(())
        })
    }

    fn unlock(&self, environment: &str) -> Result<Option<LockInfo>, StateError> {
        self.exclusively(environment, || {
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
        })
    }

    /// A local write is not conditional: the run renews its lock before each one.
    fn conditional_writes(&self) -> bool {
        false
    }
}

fn write_lock(dir: &Path, path: &Path, info: &LockInfo) -> Result<(), StateError> {
    let body = serde_json::to_vec_pretty(info).expect("lock serializes");
    write_file(dir, path, &body, false)
}

/// Writes `body` to a temporary file and renames it over `path`: readers see the old
/// file or the new one, never an empty or half-written one.
fn write_file(dir: &Path, path: &Path, body: &[u8], private: bool) -> Result<(), StateError> {
    let io = |action, source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| io("create the directory for", e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(&tmp)
            .map_err(|e| io("write", e))?;
        f.write_all(body)
            .and_then(|_| f.sync_all())
            .map_err(|e| io("write", e))?;
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("replace", e)
    })?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
