//! Builds the functions' code for Lambda's `provided.al2023` runtime: a release build of
//! each crate's binary (functions sharing a binary build once), checks that the binary
//! runs there (CPU architecture, glibc no newer than Amazon Linux 2023's 2.34), and
//! packs it as `bootstrap` into a reproducible zip whose base64 SHA-256 is what Lambda
//! reports as `CodeSha256`: identical code, identical hash, no update.
//!
//! Zips are kept under `<cargo target dir>/lambda/`, one per binary and architecture,
//! plus one copy per hash in `lambda/code/` that the Lambda provider ships from and
//! the local stand-in runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The newest glibc Amazon Linux 2023 (`provided.al2023`) has.
pub const MAX_GLIBC: (u32, u32) = (2, 34);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Workspace(String),
    #[error("{0}")]
    Toolchain(String),
    #[error("{0}")]
    Cargo(String),
    #[error("{0}")]
    Check(String),
    #[error("{0}")]
    Io(String),
}

/// One function to build.
#[derive(Debug, Clone)]
pub struct Request {
    pub function: String,
    pub krate: String,
    pub bin: String,
    /// `x86_64` or `arm64`, as in the spec.
    pub architecture: String,
}

/// A built, checked and packed function.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub function: String,
    pub path: PathBuf,
    pub code_sha256: String,
    pub bytes: u64,
    #[serde(skip)]
    pub bootstrap: PathBuf,
}

/// The cargo workspace the functions' crates live in.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// Package name → its binaries.
    pub packages: BTreeMap<String, Vec<String>>,
    /// Package directory relative to the workspace root (`app`) → package name.
    pub dirs: BTreeMap<String, String>,
}

/// Where zips are kept by hash, for the provider and the local stand-in.
pub fn code_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("lambda").join("code")
}

/// The file a zip with this `CodeSha256` is kept in.
pub fn code_path(code_dir: &Path, code_sha256: &str) -> PathBuf {
    // base64 may hold `/` and `+`; the URL-safe alphabet makes a file name.
    let raw = base64::engine::general_purpose::STANDARD
        .decode(code_sha256)
        .unwrap_or_default();
    let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    code_dir.join(format!("{name}.zip"))
}

/// base64(SHA-256(bytes)), the form Lambda reports as `CodeSha256`.
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

impl Workspace {
    /// Finds the workspace holding `from` (a spec file or directory) with `cargo metadata`.
    pub fn discover(from: &Path) -> Result<Workspace, BuildError> {
        let start = if from.is_dir() {
            from.to_path_buf()
        } else {
            from.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let start = std::fs::canonicalize(if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &start
        })
        .map_err(|e| BuildError::Workspace(format!("cannot resolve {}: {e}", start.display())))?;
        // The workspace that holds the spec; for a spec kept elsewhere, the one the
        // command runs in.
        let cwd = std::env::current_dir().unwrap_or_default();
        let manifest = start
            .ancestors()
            .chain(cwd.ancestors())
            .map(|d| d.join("Cargo.toml"))
            .find(|m| m.is_file())
            .ok_or_else(|| {
                BuildError::Workspace(format!(
                    "no Cargo.toml in {} or {} or above them; the functions' crates are built from the cargo workspace that holds the spec (or the current directory)",
                    start.display(),
                    cwd.display()
                ))
            })?;
        let out = Command::new(cargo())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                BuildError::Toolchain(format!(
                    "cannot run cargo ({e}); the build step needs the Rust toolchain on PATH"
                ))
            })?;
        if !out.status.success() {
            return Err(BuildError::Workspace(format!(
                "cargo metadata failed for {}: {}",
                manifest.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| BuildError::Workspace(format!("cargo metadata printed bad JSON: {e}")))?;
        let root = PathBuf::from(meta["workspace_root"].as_str().unwrap_or_default());
        let mut packages = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for p in meta["packages"].as_array().into_iter().flatten() {
            let bins = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect();
            if let Some(name) = p["name"].as_str() {
                packages.insert(name.to_string(), bins);
                let dir = Path::new(p["manifest_path"].as_str().unwrap_or_default())
                    .parent()
                    .and_then(|d| d.strip_prefix(&root).ok())
                    .map(|d| d.to_string_lossy().into_owned());
                if let Some(dir) = dir.filter(|d| !d.is_empty()) {
                    dirs.insert(dir, name.to_string());
                }
            }
        }
        Ok(Workspace {
            root,
            dirs,
            target_dir: PathBuf::from(meta["target_directory"].as_str().unwrap_or_default()),
            packages,
        })
    }

    pub fn code_dir(&self) -> PathBuf {
        code_dir(&self.target_dir)
    }

    /// The package a spec's `crate:` names: a directory in the workspace (`app`) or a
    /// package name (`trivia`).
    pub fn package(&self, krate: &str) -> Option<&str> {
        let dir = krate.trim_start_matches("./").trim_end_matches('/');
        self.dirs
            .get(dir)
            .map(String::as_str)
            .or_else(|| self.packages.get_key_value(krate).map(|(k, _)| k.as_str()))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn triple(architecture: &str) -> &'static str {
    if architecture == "arm64" {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

/// Whether this machine's CPU is the function's (no cross build needed).
fn host_is(architecture: &str) -> bool {
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    architecture == host
}

/// For a cross build: the Rust target must be installed and a linker must exist.
fn cross_toolchain(architecture: &str) -> Result<Vec<(String, String)>, BuildError> {
    let triple = triple(architecture);
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", triple])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir.is_some_and(|d| d.is_dir()) {
        return Err(BuildError::Toolchain(format!(
            "cannot build {architecture} functions here: the Rust target {triple} is not installed\n  hint: `rustup target add {triple}` and install a linker for it (Debian: gcc-aarch64-linux-gnu), or set `architecture: x86_64`"
        )));
    }
    let var = format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_uppercase().replace('-', "_")
    );
    let linker = std::env::var(&var).unwrap_or_else(|_| "aarch64-linux-gnu-gcc".into());
    let found = Command::new(&linker)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        return Err(BuildError::Toolchain(format!(
            "cannot build {architecture} functions here: no linker `{linker}` for {triple}\n  hint: install one (Debian: gcc-aarch64-linux-gnu) or set {var}, or set `architecture: x86_64`"
        )));
    }
    Ok(vec![(var, linker)])
}

/// Builds, checks and packs every requested function. Functions that share a crate,
/// binary and architecture are built and packed once. Cargo's progress goes to stderr
/// unless `quiet`.
pub fn build(
    ws: &Workspace,
    requests: &[Request],
    quiet: bool,
) -> Result<Vec<Artifact>, BuildError> {
    let mut requests = requests.to_vec();
    for r in &mut requests {
        let package = ws.package(&r.krate).ok_or_else(|| {
            BuildError::Workspace(format!(
                "function `{}`: no crate `{}` in the workspace at {} (crate directories: {})",
                r.function,
                r.krate,
                ws.root.display(),
                ws.dirs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        r.krate = package.to_string();
        let bins = &ws.packages[package];
        if !bins.contains(&r.bin) {
            return Err(BuildError::Workspace(format!(
                "function `{}`: crate `{}` has no binary `{}` (binaries: {})",
                r.function,
                r.krate,
                r.bin,
                bins.join(", ")
            )));
        }
    }
    // One cargo run per architecture, every crate and binary at once.
    let mut by_arch: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for r in &requests {
        by_arch
            .entry(r.architecture.as_str())
            .or_default()
            .insert((r.krate.as_str(), r.bin.as_str()));
    }
    // (crate, binary, architecture) → its artifact, without the function name.
    let mut packed: BTreeMap<(String, String, String), Artifact> = BTreeMap::new();
    for (arch, units) in &by_arch {
        let cross = !host_is(arch);
        let envs = if cross {
            cross_toolchain(arch)?
        } else {
            Vec::new()
        };
        let mut cmd = Command::new(cargo());
        cmd.current_dir(&ws.root)
            .args(["build", "--release", "--locked"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if quiet {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .envs(envs);
        if cross {
            cmd.args(["--target", triple(arch)]);
        }
        for krate in units.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>() {
            cmd.args(["-p", krate]);
        }
        for (_, bin) in units {
            cmd.args(["--bin", bin]);
        }
        let out = cmd.output().map_err(|e| {
            BuildError::Toolchain(format!(
                "cannot run cargo ({e}); the build step needs the Rust toolchain on PATH"
            ))
        })?;
        if !out.status.success() {
            let tail = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(BuildError::Cargo(format!(
                "cargo build failed for {} ({arch}){}",
                units
                    .iter()
                    .map(|(k, b)| format!("{k}/{b}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n{}", tail.join("\n"))
                }
            )));
        }
        let release = if cross {
            ws.target_dir.join(triple(arch)).join("release")
        } else {
            ws.target_dir.join("release")
        };
        for (krate, bin) in units {
            let binary = release.join(bin);
            let bytes = std::fs::read(&binary).map_err(|e| {
                BuildError::Io(format!("cannot read the built {}: {e}", binary.display()))
            })?;
            check_binary(&bytes, arch).map_err(|why| {
                BuildError::Check(format!(
                    "{krate}/{bin} cannot run on Lambda provided.al2023 ({arch}): {why}"
                ))
            })?;
            let zip = pack(&bytes);
            let sha = code_sha256(&zip);
            let dir = ws.target_dir.join("lambda").join(format!("{bin}-{arch}"));
            let path = dir.join("bootstrap.zip");
            write_file(&path, &zip)?;
            write_file(&code_path(&ws.code_dir(), &sha), &zip)?;
            packed.insert(
                (krate.to_string(), bin.to_string(), arch.to_string()),
                Artifact {
                    function: String::new(),
                    path,
                    code_sha256: sha,
                    bytes: zip.len() as u64,
                    bootstrap: binary,
                },
            );
        }
    }
    Ok(requests
        .iter()
        .map(|r| Artifact {
            function: r.function.clone(),
            ..packed[&(r.krate.clone(), r.bin.clone(), r.architecture.clone())].clone()
        })
        .collect())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let io = |e: std::io::Error| BuildError::Io(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write then rename: a reader never sees half a zip.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A zip holding only `bootstrap`: fixed timestamp (1980-01-01), mode 0755, one entry,
/// fixed compression. The same binary always gives the same bytes.
pub fn pack(binary: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755)
            .large_file(false);
        z.start_file("bootstrap", options)
            .and_then(|_| z.write_all(binary).map_err(Into::into))
            .and_then(|_| z.finish().map(|_| ()))
            .expect("writing a zip to memory cannot fail");
    }
    buf.into_inner()
}

/// The `bootstrap` inside a zip made by [`pack`].
pub fn unpack(zip_bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| format!("not a zip: {e}"))?;
    let mut file = archive
        .by_name("bootstrap")
        .map_err(|e| format!("no bootstrap in the zip: {e}"))?;
    let mut out = Vec::new();
    std::io::copy(&mut file, &mut out).map_err(|e| format!("cannot unzip bootstrap: {e}"))?;
    Ok(out)
}

/// Checks an executable for Lambda `provided.al2023`: an ELF for the function's
/// architecture, needing no glibc symbol newer than 2.34. The error names the
/// architecture found or the offending symbols.
pub fn check_binary(bytes: &[u8], architecture: &str) -> Result<(), String> {
    use goblin::elf::header::{EM_AARCH64, EM_X86_64};
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| format!("not an ELF executable: {e}"))?;
    let (want, want_name) = if architecture == "arm64" {
        (EM_AARCH64, "aarch64 (arm64)")
    } else {
        (EM_X86_64, "x86_64")
    };
    if elf.header.e_machine != want {
        let found = match elf.header.e_machine {
            EM_X86_64 => "x86_64".to_string(),
            EM_AARCH64 => "aarch64 (arm64)".to_string(),
            m => goblin::elf::header::machine_to_str(m).to_string(),
        };
        return Err(format!(
            "the binary is built for {found}, but the function's architecture is {want_name}"
        ));
    }
    if !elf.is_64 {
        return Err("the binary is 32-bit; Lambda runs 64-bit executables".into());
    }
    // Version index → version name, for the versions this binary needs.
    let mut needed: BTreeMap<u16, String> = BTreeMap::new();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                if let Some(name) = elf.dynstrtab.get_at(aux.vna_name) {
                    needed.insert(aux.vna_other, name.to_string());
                }
            }
        }
    }
    let too_new = |v: &str| glibc_version(v).is_some_and(|ver| ver > MAX_GLIBC);
    let mut offenders: BTreeSet<String> = BTreeSet::new();
    if let Some(versym) = &elf.versym {
        for (sym, vs) in elf.dynsyms.iter().zip(versym.iter()) {
            if let Some(version) = needed.get(&vs.version()) {
                if too_new(version) {
                    let name = elf.dynstrtab.get_at(sym.st_name).unwrap_or("?");
                    offenders.insert(format!("{name}@{version}"));
                }
            }
        }
    }
    // A needed version no symbol points at still makes the loader refuse.
    if offenders.is_empty() {
        offenders.extend(needed.values().filter(|v| too_new(v)).cloned());
    }
    if !offenders.is_empty() {
        return Err(format!(
            "it needs glibc newer than {}.{} (Amazon Linux 2023): {}\n  hint: build on (or for) an older glibc, e.g. in an Amazon Linux 2023 container, or avoid the functions named",
            MAX_GLIBC.0,
            MAX_GLIBC.1,
            offenders.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// `GLIBC_2.34` → (2, 34).
fn glibc_version(v: &str) -> Option<(u32, u32)> {
    let rest = v.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_are_reproducible_and_hold_only_bootstrap() {
        let a = pack(b"\x7fELF pretend binary");
        let b = pack(b"\x7fELF pretend binary");
        assert_eq!(a, b);
        assert_eq!(code_sha256(&a), code_sha256(&b));
        assert_ne!(code_sha256(&a), code_sha256(&pack(b"other")));
        let archive = zip::ZipArchive::new(std::io::Cursor::new(&a)).unwrap();
        assert_eq!(archive.file_names().collect::<Vec<_>>(), vec!["bootstrap"]);
        assert_eq!(unpack(&a).unwrap(), b"\x7fELF pretend binary");
    }

    #[test]
    fn glibc_versions_compare_numerically() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.3"), Some((2, 3)));
        assert!(glibc_version("GLIBC_2.4").unwrap() < MAX_GLIBC);
        assert!(glibc_version("GLIBC_2.35").unwrap() > MAX_GLIBC);
        assert_eq!(glibc_version("GCC_3.0"), None);
    }

    #[test]
    fn the_running_test_binary_passes_for_its_own_architecture_only() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        check_binary(&me, "x86_64").unwrap();
        let err = check_binary(&me, "arm64").unwrap_err();
        assert!(err.contains("built for x86_64"), "{err}");
        assert!(check_binary(b"not an elf", "x86_64")
            .unwrap_err()
            .contains("not an ELF"));
    }

    #[test]
    fn code_paths_are_file_names() {
        let p = code_path(Path::new("/x"), &code_sha256(b"abc"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(!name.contains('/') && name.ends_with(".zip"), "{name}");
    }
}
