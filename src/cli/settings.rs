//! Settings resolved once, at the edge, from the global flags and the process
//! environment: which spec `-e` names, where state lives, how much to say, whether a
//! human can answer. Commands read these and never look at the raw flags again.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{Cli, Failure};
use crate::spec;
use crate::state::{Backend, S3Backend, S3Location};

#[derive(Debug, Clone)]
pub struct Settings {
    pub env: Option<String>,
    pub environments_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `--state-url`: where state lives, over the spec's `state:` section.
    pub state_url: Option<String>,
    /// `--lock-timeout`: how long to wait for a held lock.
    pub lock_timeout: Option<std::time::Duration>,
    pub verbose: bool,
    pub quiet: bool,
    /// Whether a human can answer a prompt.
    pub interactive: bool,
    /// The spec file `-e` names, or why there is none (reported by the commands that
    /// need one, at the point where they need it).
    spec: Result<PathBuf, String>,
}

impl Settings {
    pub fn from(cli: &Cli) -> Self {
        let environments_dir = PathBuf::from("environments");
        Self {
            spec: resolve_spec(cli.env.as_deref(), &environments_dir),
            env: cli.env.clone(),
            environments_dir,
            state_dir: cli.state_dir.clone(),
            state_url: cli.state_url.clone().filter(|u| !u.is_empty()),
            lock_timeout: cli.lock_timeout,
            verbose: cli.verbose,
            quiet: cli.quiet,
            interactive: std::io::stdin().is_terminal()
                && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false"),
        }
    }

    /// The spec file `-e` names, or a plain error saying what to pass.
    pub fn spec_path(&self) -> Result<&Path, Failure> {
        self.spec
            .as_deref()
            .map_err(|message| Failure::new(message.clone()))
    }

    /// The environment's name for state and locks, without requiring a valid spec.
    pub fn env_name(&self) -> Result<String, Failure> {
        let path = self.spec_path()?;
        Ok(name_in(path, spec::check(path).0.as_ref()))
    }

    /// Where the environment's state and lock are: `--state-url`, else the spec's
    /// `state:` section, else the state directory. Fails plainly when S3 cannot be
    /// used (a bad URL, no credentials), and when the spec exists but does not load
    /// and no `--state-url` says where its state is: guessing the state directory
    /// would show an S3 environment as unlocked, or never applied.
    pub fn backend(&self) -> Result<Backend, Failure> {
        let path = match self.spec_path() {
            Ok(path) => path,
            Err(_) => return self.backend_for(None),
        };
        let diagnostics = match spec::check(path) {
            (Some(loaded), _) => return self.backend_for(Some(&loaded)),
            (None, diagnostics) => diagnostics,
        };
        if self.state_url.is_some() {
            return self.backend_for(None);
        }
        // Invalid elsewhere, the spec may still say where its state is.
        if let Ok(doc) = spec::yaml::load(path) {
            let region = doc.value["region"].as_str().unwrap_or_default().to_string();
            let s3 = &doc.value["state"]["s3"];
            if s3.is_null() {
                return self.backend_at(None, None, &region);
            }
            if let Ok(s3) = serde_json::from_value::<spec::model::S3State>(s3.clone()) {
                return self.backend_at(None, Some(s3_location(&s3)), &region);
            }
        }
        Err(Failure::new(format!(
            "cannot tell where the state of `{}` is: {} does not load ({} problem(s))\n  hint: `deploy validate -e {}` shows them; or name the state with --state-url (`local` for the state directory)",
            name_in(path, None),
            path.display(),
            diagnostics.len(),
            path.display()
        )))
    }

    /// Where `loaded`'s state and lock are (see [`Settings::backend`]).
    pub fn backend_for(&self, loaded: Option<&spec::LoadedSpec>) -> Result<Backend, Failure> {
        let region = loaded.map(|l| l.spec.region.clone()).unwrap_or_default();
        let from_spec = loaded
            .and_then(|l| l.spec.state.as_ref())
            .and_then(|s| s.s3.as_ref())
            .map(s3_location);
        self.backend_at(self.state_url.as_deref(), from_spec, &region)
    }

    /// The backend `url` names (`s3://…`, or `local` for the state directory), else
    /// `fallback`, else the state directory.
    pub fn backend_at(
        &self,
        url: Option<&str>,
        fallback: Option<S3Location>,
        region: &str,
    ) -> Result<Backend, Failure> {
        let location = match url {
            Some("local") => None,
            Some(url) => {
                let mut l = S3Location::parse(url).map_err(Failure::new)?;
                // The spec's region for its bucket still applies to the same bucket.
                if let Some(f) = fallback.as_ref().filter(|f| f.bucket == l.bucket) {
                    l.region = f.region.clone();
                }
                Some(l)
            }
            None => fallback,
        };
        let backend = match location {
            None => Backend::local(&self.state_dir),
            Some(l) => Backend::new(std::sync::Arc::new(
                S3Backend::connect(l, region).map_err(|e| Failure::new(e.to_string()))?,
            )),
        };
        Ok(match self.lock_timeout {
            Some(wait) => backend.with_lock_wait(wait, |m| anstream::eprintln!("{m}")),
            None => backend,
        })
    }

    /// Where the project's environments are: beside the spec `-e` names, else the
    /// default directory.
    pub fn siblings_dir(&self) -> PathBuf {
        self.spec_path()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| self.environments_dir.clone())
    }
}

fn s3_location(s3: &spec::model::S3State) -> S3Location {
    S3Location {
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.trim_matches('/').to_string(),
        region: Some(s3.region.clone()).filter(|r| !r.is_empty()),
    }
}

/// The environment a spec file describes: its `environment`, else the file's stem.
pub(super) fn name_in(path: &Path, loaded: Option<&spec::LoadedSpec>) -> String {
    match loaded {
        Some(l) if !l.spec.environment.is_empty() => l.spec.environment.clone(),
        _ => path
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

fn resolve_spec(env: Option<&str>, environments_dir: &Path) -> Result<PathBuf, String> {
    let known = spec::list_environments(environments_dir);
    let Some(env) = env else {
        let list = if known.is_empty() {
            String::new()
        } else {
            format!(" (one of: {})", known.join(", "))
        };
        return Err(format!(
            "no environment given\n  hint: pass -e ENV{list}, or a path to a spec file"
        ));
    };
    let path = spec::resolve(env, environments_dir);
    if !path.exists() {
        let hint = match spec::diag::did_you_mean(env, known.iter().map(String::as_str)) {
            Some(m) => format!("did you mean `{m}`?"),
            None if known.is_empty() => {
                format!("no environments found in {}/", environments_dir.display())
            }
            None => format!("known environments: {}", known.join(", ")),
        };
        return Err(format!(
            "no spec for environment `{env}`: {} does not exist\n  hint: {hint}",
            path.display()
        ));
    }
    Ok(path)
}
