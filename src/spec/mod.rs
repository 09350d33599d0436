//! The environment spec: YAML files in `environments/`, merged through `extends`,
//! checked before any AWS call, with every problem reported as `FILE:LINE:COL`.

pub mod diag;
pub mod model;
pub mod validate;
pub mod values;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use model::Spec;
pub use yaml::SourceMap;

/// A spec that passed validation, with the map back to its files.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub spec: Spec,
    pub sources: SourceMap,
    /// The environment's own file.
    pub path: PathBuf,
}

/// `-e dev` → `environments/dev.yaml`; anything that looks like a path is taken as one.
pub fn resolve(env: &str, environments_dir: &Path) -> PathBuf {
    let as_path = Path::new(env);
    let looks_like_path = env.contains('/') || env.ends_with(".yaml") || env.ends_with(".yml");
    if looks_like_path {
        return as_path.to_path_buf();
    }
    let yaml = environments_dir.join(format!("{env}.yaml"));
    if yaml.exists() {
        return yaml;
    }
    let yml = environments_dir.join(format!("{env}.yml"));
    if yml.exists() {
        return yml;
    }
    yaml
}

/// Names of the environments defined in `dir` (files that set `environment`, so
/// shared bases such as `base.yaml` are left out).
pub fn list_environments(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| {
            std::fs::read_to_string(p)
                .is_ok_and(|t| t.lines().any(|l| l.starts_with("environment:")))
        })
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// Reads, merges and validates a spec file. Every problem is reported at once.
pub fn load(path: &Path) -> Result<LoadedSpec, Diagnostics> {
    match check(path) {
        (Some(loaded), d) if d.is_empty() => Ok(loaded),
        (_, d) => Err(d),
    }
}

/// Like [`load`], but also returns the spec when only later checks (semantics) found
/// problems, so references and cycles can be checked too. Schema problems stop here:
/// checking a spec with values of the wrong shape would only report their echoes.
pub fn check(path: &Path) -> (Option<LoadedSpec>, Diagnostics) {
    let doc = match yaml::load(path) {
        Ok(d) => d,
        Err(d) => return (None, d),
    };
    let schema = model::json_schema();
    let mut diags = Diagnostics::default();
    validate::against_schema(&schema, &doc.value, &doc.sources, &mut diags);
    if !diags.is_empty() {
        return (None, diags.finish());
    }
    let spec: Spec = match serde_json::from_value(doc.value) {
        Ok(s) => s,
        Err(e) => {
            diags.push(Diagnostic::new(
                doc.sources.value(""),
                format!("the spec does not match its model: {e}"),
            ));
            return (None, diags);
        }
    };
    validate::semantics(&spec, &doc.sources, &mut diags);
    let loaded = LoadedSpec {
        spec,
        sources: doc.sources,
        path: path.to_path_buf(),
    };
    (Some(loaded), diags.finish())
}
