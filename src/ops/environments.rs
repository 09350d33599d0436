//! The project's environments as files and state: creating an ephemeral one from a
//! template, listing every one with its kind, age, expiry and what it left behind, and
//! telling from the recorded tags whether an environment is ephemeral.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::OpsError;
use crate::spec;
use crate::state::{Backend, Retained, State};

/// An environment file written by [`create`].
pub struct Created {
    pub path: PathBuf,
    pub resources: usize,
    pub expires_at: SystemTime,
}

/// Renders `templates/environments/TEMPLATE.yaml` (beside `dir`) into
/// `dir/NAME.yaml`, living `ttl` from `now`. The result is checked before it takes
/// its name: an invalid one leaves nothing behind.
pub fn create(
    dir: &Path,
    name: &str,
    template: &str,
    ttl: &str,
    now: SystemTime,
) -> Result<Created, OpsError> {
    let slug = |x: &str| {
        x.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && x.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !x.ends_with('-')
            && !x.contains("--")
    };
    if !slug(name) {
        return Err(OpsError::Environment(format!(
            "`{name}` is not a usable environment name\n  hint: lowercase letters, digits and single hyphens, starting with a letter (e.g. `pr-42`)"
        )));
    }
    let ttl_d = parse_ttl(ttl)?;
    let target = dir.join(format!("{name}.yaml"));
    if target.exists() {
        let kind = match spec::check(&target).0 {
            Some(l) if l.spec.ephemeral.is_some() => "an ephemeral environment",
            _ => "an existing environment that is not ephemeral; choose another name",
        };
        return Err(OpsError::Environment(format!(
            "{} already exists: `{name}` is {kind}",
            target.display()
        )));
    }
    let template_path = dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("templates/environments")
        .join(format!("{template}.yaml"));
    let body = std::fs::read_to_string(&template_path).map_err(|e| {
        OpsError::Environment(format!(
            "cannot read the template {}: {e}",
            template_path.display()
        ))
    })?;
    let expires_at = now + ttl_d;
    let rendered = body
        .replace("{{name}}", name)
        .replace(
            "{{created_at}}",
            &humantime::format_rfc3339_seconds(now).to_string(),
        )
        .replace(
            "{{expires_at}}",
            &humantime::format_rfc3339_seconds(expires_at).to_string(),
        );
    // Written beside the others under a temporary name, checked, then renamed: an
    // invalid result (a name too long once prefixed…) leaves nothing behind.
    let tmp = dir.join(format!(".{name}.yaml.tmp"));
    std::fs::write(&tmp, &rendered)
        .map_err(|e| OpsError::Environment(format!("cannot write {}: {e}", tmp.display())))?;
    let desired = match crate::plan::load_desired(&tmp) {
        Ok((_, d)) => d,
        Err(diagnostics) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(OpsError::InvalidTemplate {
                template: template.to_string(),
                name: name.to_string(),
                diagnostics,
            });
        }
    };
    std::fs::rename(&tmp, &target)
        .map_err(|e| OpsError::Environment(format!("cannot write {}: {e}", target.display())))?;
    Ok(Created {
        path: target,
        resources: desired.resources.len(),
        expires_at,
    })
}

/// What [`ensure`] found or did.
pub enum Ensured {
    Created(Created),
    /// It exists already; its expiry was moved from the first time to the second.
    Extended {
        path: PathBuf,
        from: SystemTime,
        to: SystemTime,
    },
    /// It exists already and lives at least as long as asked (or no lifetime was
    /// asked for): nothing changed.
    Kept {
        path: PathBuf,
        expires_at: SystemTime,
    },
}

/// `env create --if-missing`: creates the ephemeral environment as [`create`] does, or,
/// when it exists, leaves it, moving its expiry to `now + ttl` if `ttl` is given and
/// less than half of it is left (see [`extend`]). Refuses an existing environment that
/// is not ephemeral.
pub fn ensure(
    dir: &Path,
    name: &str,
    template: &str,
    ttl: Option<&str>,
    now: SystemTime,
) -> Result<Ensured, OpsError> {
    let path = dir.join(format!("{name}.yaml"));
    if !path.exists() {
        return create(dir, name, template, ttl.unwrap_or(DEFAULT_TTL), now).map(Ensured::Created);
    }
    let Some(ttl) = ttl else {
        let expires_at = expiry_of(&path)?;
        return Ok(Ensured::Kept { path, expires_at });
    };
    extend(dir, name, ttl, now)
}

/// How long an environment made without `--ttl` lives.
pub const DEFAULT_TTL: &str = "24h";

fn parse_ttl(ttl: &str) -> Result<Duration, OpsError> {
    let ttl_d = humantime::parse_duration(ttl).map_err(|e| {
        OpsError::Environment(format!(
            "--ttl `{ttl}` is not a duration ({e})\n  hint: for example `24h`, `3d` or `90m`"
        ))
    })?;
    if ttl_d < Duration::from_secs(60) || ttl_d > Duration::from_secs(30 * 86400) {
        return Err(OpsError::Environment(format!(
            "--ttl `{ttl}` must be between 1 minute and 30 days"
        )));
    }
    Ok(ttl_d)
}

/// The expiry an ephemeral environment's file says; refuses one that is not ephemeral.
fn expiry_of(path: &Path) -> Result<SystemTime, OpsError> {
    let loaded = spec::check(path).0.ok_or_else(|| {
        OpsError::Environment(format!(
            "{} does not load; run `deploy validate -e {}`",
            path.display(),
            path.display()
        ))
    })?;
    let e = loaded.spec.ephemeral.ok_or_else(|| {
        OpsError::Environment(format!(
            "{} is an environment that is not ephemeral: it has no lifetime to extend\n  hint: choose another name for a preview environment",
            path.display()
        ))
    })?;
    humantime::parse_rfc3339(&e.expires_at).map_err(|_| {
        OpsError::Environment(format!(
            "{}: `ephemeral.expires_at` is not an RFC 3339 time",
            path.display()
        ))
    })
}

/// Moves an ephemeral environment's expiry to `now + ttl` once less than half of `ttl`
/// is left: its file's `ephemeral.expires_at` is rewritten (the resources'
/// `deploy:expires-at` tags follow at the next apply). A run on every push therefore
/// retags the environment at most once per half lifetime, not at every push. Never
/// shortens a lifetime.
pub fn extend(dir: &Path, name: &str, ttl: &str, now: SystemTime) -> Result<Ensured, OpsError> {
    let ttl_d = parse_ttl(ttl)?;
    let path = dir.join(format!("{name}.yaml"));
    let from = expiry_of(&path)?;
    let to = now + ttl_d;
    if from >= now + ttl_d / 2 {
        return Ok(Ensured::Kept {
            path,
            expires_at: from,
        });
    }
    rewrite_expiry(dir, name, from, to)?;
    Ok(Ensured::Extended { path, from, to })
}

/// After [`ensure`] created the file afresh (a new checkout: every CI run) for an
/// environment whose state records resources, their recorded expiry (`recorded`, the
/// earliest `deploy:expires-at`) replaces the new one while at least half of `ttl` is
/// left, as [`extend`] would keep it: otherwise every push would retag everything.
/// Returns the expiry kept, if it was.
pub fn keep_recorded(
    dir: &Path,
    name: &str,
    recorded: SystemTime,
    ttl: &str,
    now: SystemTime,
) -> Result<Option<SystemTime>, OpsError> {
    let ttl_d = parse_ttl(ttl)?;
    let path = dir.join(format!("{name}.yaml"));
    let fresh = expiry_of(&path)?;
    let recorded =
        humantime::parse_rfc3339(&humantime::format_rfc3339_seconds(recorded).to_string())
            .unwrap_or(recorded);
    if recorded < now + ttl_d / 2 || recorded == fresh {
        return Ok(None);
    }
    rewrite_expiry(dir, name, fresh, recorded)?;
    Ok(Some(recorded))
}

/// The earliest `deploy:expires-at` tag `state` records, if any.
pub fn recorded_expiry(state: &crate::state::State) -> Option<SystemTime> {
    state
        .resources
        .values()
        .filter_map(|r| r.inputs.get("tags")?.get("deploy:expires-at")?.as_str())
        .filter_map(|t| humantime::parse_rfc3339(t).ok())
        .min()
}

/// Rewrites `NAME.yaml`'s `ephemeral.expires_at` from `from` to `to`, in place and
/// atomically, and checks that it took.
fn rewrite_expiry(
    dir: &Path,
    name: &str,
    from: SystemTime,
    to: SystemTime,
) -> Result<(), OpsError> {
    let path = dir.join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| OpsError::Environment(format!("cannot read {}: {e}", path.display())))?;
    let old = humantime::format_rfc3339_seconds(from).to_string();
    let new = humantime::format_rfc3339_seconds(to).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("expires_at:") && l.contains(&old))
        .ok_or_else(|| {
            OpsError::Environment(format!(
                "cannot find `expires_at: \"{old}\"` in {}; edit `ephemeral.expires_at` by hand",
                path.display()
            ))
        })?;
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out[at] = out[at].replacen(&old, &new, 1);
    let mut body = out.join("\n");
    if text.ends_with('\n') {
        body.push('\n');
    }
    let tmp = dir.join(format!(".{name}.yaml.tmp"));
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| OpsError::Environment(format!("cannot write {}: {e}", path.display())))?;
    if expiry_of(&path)? != humantime::parse_rfc3339(&new).unwrap_or(to) {
        return Err(OpsError::Environment(format!(
            "{}: the new expiry did not take; edit `ephemeral.expires_at` by hand",
            path.display()
        )));
    }
    Ok(())
}

/// One environment as `env list` shows it.
pub struct Listed {
    pub environment: String,
    pub file: PathBuf,
    pub ephemeral: bool,
    pub created_at: Option<String>,
    /// Seconds since it was created, when it says when.
    pub age_s: Option<u64>,
    pub expires_at: Option<String>,
    pub expired: Option<bool>,
    /// Resources its state records.
    pub resources: usize,
    /// What a destroy kept (final snapshots), still billed.
    pub retained: Vec<Retained>,
}

/// Every environment in `dir` whose spec loads, with what its state records (in the
/// backend `backend_for` gives for its spec; none: unknown, shown as no resources).
pub fn list(
    dir: &Path,
    backend_for: &dyn Fn(&spec::LoadedSpec) -> Option<Backend>,
    now: SystemTime,
) -> Vec<Listed> {
    let mut rows = Vec::new();
    for name in spec::list_environments(dir) {
        let path = dir.join(format!("{name}.yaml"));
        let Some(loaded) = spec::check(&path).0 else {
            continue;
        };
        let environment = if loaded.spec.environment.is_empty() {
            name.clone()
        } else {
            loaded.spec.environment.clone()
        };
        let state = backend_for(&loaded).and_then(|b| b.read(&environment).ok().flatten());
        let eph = loaded.spec.ephemeral.as_ref();
        let created = eph
            .and_then(|e| e.created_at.as_deref())
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let expires = eph.and_then(|e| humantime::parse_rfc3339(&e.expires_at).ok());
        rows.push(Listed {
            environment,
            file: path,
            ephemeral: eph.is_some(),
            created_at: eph.and_then(|e| e.created_at.clone()),
            age_s: created
                .and_then(|c| now.duration_since(c).ok())
                .map(|d| d.as_secs()),
            expires_at: eph.map(|e| e.expires_at.clone()),
            expired: expires.map(|x| x <= now),
            resources: state.as_ref().map(|st| st.resources.len()).unwrap_or(0),
            retained: state.map(|st| st.retained).unwrap_or_default(),
        });
    }
    rows
}

/// Whether every resource recorded for the environment carries the ephemeral tag.
pub fn recorded_ephemeral(state: Option<&State>) -> bool {
    state.is_some_and(|st| {
        !st.resources.is_empty()
            && st.resources.values().all(|r| {
                r.inputs
                    .get("tags")
                    .and_then(|t| t.get("deploy:ephemeral"))
                    .and_then(serde_json::Value::as_str)
                    == Some("true")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Address, Kind};
    use crate::state::ResourceState;

    fn tagged(ephemeral: Option<&str>) -> ResourceState {
        let tags = match ephemeral {
            Some(v) => serde_json::json!({"deploy:ephemeral": v}),
            None => serde_json::json!({}),
        };
        ResourceState {
            kind: Kind::Vpc,
            id: "vpc-1".into(),
            inputs: [("tags".to_string(), tags)].into(),
            outputs: Default::default(),
            depends_on: Default::default(),
            protect: false,
            pending: false,
        }
    }

    fn with(resources: &[ResourceState]) -> State {
        let mut s = State::new("trivia", "pr-1");
        for (i, r) in resources.iter().enumerate() {
            s.resources
                .insert(Address::new(format!("network.vpc{i}")), r.clone());
        }
        s
    }

    #[test]
    fn an_environment_is_ephemeral_only_when_everything_recorded_says_so() {
        let all = with(&[tagged(Some("true")), tagged(Some("true"))]);
        assert!(recorded_ephemeral(Some(&all)));
        let mixed = with(&[tagged(Some("true")), tagged(None)]);
        assert!(!recorded_ephemeral(Some(&mixed)));
        let other = with(&[tagged(Some("false"))]);
        assert!(!recorded_ephemeral(Some(&other)));
        assert!(!recorded_ephemeral(Some(&with(&[]))));
        assert!(!recorded_ephemeral(None));
    }

    /// A project with the real template and base spec, for creating environments.
    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let envs = dir.path().join("environments");
        std::fs::create_dir_all(dir.path().join("templates/environments")).unwrap();
        std::fs::create_dir(&envs).unwrap();
        std::fs::copy(root.join("environments/base.yaml"), envs.join("base.yaml")).unwrap();
        std::fs::copy(
            root.join("templates/environments/ephemeral.yaml"),
            dir.path().join("templates/environments/ephemeral.yaml"),
        )
        .unwrap();
        (dir, envs)
    }

    #[test]
    fn a_push_retags_at_most_once_per_half_lifetime() {
        let (_dir, envs) = project();
        let hour = Duration::from_secs(3600);
        let t0 = humantime::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        create(&envs, "pr-3", "ephemeral", "24h", t0).unwrap();
        let path = envs.join("pr-3.yaml");
        // Pushes while more than half the lifetime is left keep the expiry.
        for later in [1, 6, 11] {
            match extend(&envs, "pr-3", "24h", t0 + later * hour).unwrap() {
                Ensured::Kept { expires_at, .. } => assert_eq!(expires_at, t0 + 24 * hour),
                _ => panic!("extended {later}h in"),
            }
        }
        // Past half, it is moved out to a full lifetime again.
        match extend(&envs, "pr-3", "24h", t0 + 13 * hour).unwrap() {
            Ensured::Extended { from, to, .. } => {
                assert_eq!((from, to), (t0 + 24 * hour, t0 + 37 * hour));
            }
            _ => panic!("kept 13h in"),
        }
        assert_eq!(expiry_of(&path).unwrap(), t0 + 37 * hour);

        // A fresh checkout's new file takes the recorded expiry while more than half of
        // the lifetime is left, and keeps its own otherwise.
        std::fs::remove_file(&path).unwrap();
        let now = t0 + 14 * hour;
        create(&envs, "pr-3", "ephemeral", "24h", now).unwrap();
        assert_eq!(
            keep_recorded(&envs, "pr-3", t0 + 37 * hour, "24h", now).unwrap(),
            Some(t0 + 37 * hour)
        );
        assert_eq!(expiry_of(&path).unwrap(), t0 + 37 * hour);
        std::fs::remove_file(&path).unwrap();
        let now = t0 + 30 * hour;
        create(&envs, "pr-3", "ephemeral", "24h", now).unwrap();
        assert_eq!(
            keep_recorded(&envs, "pr-3", t0 + 37 * hour, "24h", now).unwrap(),
            None
        );
        assert_eq!(expiry_of(&path).unwrap(), now + 24 * hour);
        crate::spec::check(&path)
            .0
            .expect("the file still validates");
    }

    #[test]
    fn a_name_or_lifetime_that_cannot_work_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let envs = dir.path().join("environments");
        std::fs::create_dir(&envs).unwrap();
        let now = SystemTime::now();
        for (name, ttl, says) in [
            ("PR-1", "24h", "is not a usable environment name"),
            ("pr--1", "24h", "is not a usable environment name"),
            ("pr-1", "soon", "is not a duration"),
            ("pr-1", "10s", "must be between 1 minute and 30 days"),
            ("pr-1", "31d", "must be between 1 minute and 30 days"),
            ("pr-1", "24h", "cannot read the template"),
        ] {
            let Err(e) = create(&envs, name, "ephemeral", ttl, now) else {
                panic!("{name} {ttl} was created");
            };
            assert!(e.to_string().contains(says), "{name} {ttl}: {e}");
        }
        assert_eq!(std::fs::read_dir(&envs).unwrap().count(), 0);
    }
}
