//! Runs one shell command of a repository (a check such as `cargo test`, or a setup step)
//! where it cannot reach the worker's secrets, and stops it for certain.
//!
//! Two modes, chosen by the operator (`SANDBOX`) or by [`Mode::detect`]:
//!
//! - [`Mode::Bwrap`]: bubblewrap. Fresh user, PID, IPC, UTS, cgroup and network namespaces
//!   (the network is shared only when the repository's config says `network: true`); the
//!   host's root read-only; a private `/tmp`; a fresh `/proc` that shows the sandbox's own
//!   processes only, so no `/proc/<worker>/environ`; the folders given in
//!   [`Spec::hide`] (the workspace with the other tasks' checkouts, mounted secrets)
//!   covered by empty tmpfs; the checkout the only writable bind; `--die-with-parent`.
//! - [`Mode::Process`]: the fallback where namespaces are not allowed. An empty environment
//!   plus the allow-list, its own process group, resource limits (`prlimit`), no new
//!   privileges and no capabilities (`setpriv`), so the worker, made non-dumpable by
//!   [`protect_worker`], cannot be read through `/proc` even by a root child. It does not
//!   hide files or the network.
//!
//! In both: the environment is [`env::sandbox_env`] (no secret), the timeout kills the
//! whole process group (and with bubblewrap the PID namespace), whatever a passing check
//! left running is killed too, and the output (stdout and stderr together) is kept up to
//! a cap, its tail ([`output`]).
//!
//! # Layout
//! - `lib.rs`: the [`Spec`] of a run, [`Mode`], [`run`] and its [`Finished`] result.
//! - `env.rs`: the environment allow-list.
//! - `argv.rs`: the command lines of both modes (bubblewrap's mounts, the limit wrappers).
//! - `output.rs`: the capped capture, ANSI stripping and secret redaction for prompts.
//! - `group.rs`: the process group and killing it.
//! - `suite.rs`: setup and checks in order, the comparison with the base commit, the
//!   `### Checks` section and the repair round's feedback.

pub mod env;
pub mod output;
pub mod suite;

mod argv;
mod group;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use output::Output;

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// bubblewrap: namespaces, read-only host, private `/tmp`, hidden folders, no network.
    Bwrap,
    /// A scrubbed, limited, capability-less process group.
    Process,
}

impl Mode {
    /// `SANDBOX` values: `bwrap`, `process`; `auto` (or nothing) is [`Mode::detect`].
    pub fn parse(value: &str) -> Result<Option<Self>, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "bwrap" | "bubblewrap" => Ok(Some(Self::Bwrap)),
            "process" => Ok(Some(Self::Process)),
            "" | "auto" => Ok(None),
            other => Err(format!(
                "`{other}` is not a sandbox: use bwrap, process or auto"
            )),
        }
    }

    /// bubblewrap when it is installed and allowed to create namespaces here, else the
    /// process sandbox.
    pub async fn detect() -> Self {
        if bwrap_works().await {
            Self::Bwrap
        } else {
            Self::Process
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bwrap => "bwrap",
            Self::Process => "process",
        }
    }
}

/// Whether `bwrap` runs a command with the namespaces [`Mode::Bwrap`] asks for.
pub async fn bwrap_works() -> bool {
    let probe = tokio::process::Command::new("bwrap")
        .args(argv::bwrap_probe())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), probe).await,
        Ok(Ok(status)) if status.success()
    )
}

/// Makes the worker process non-dumpable: its `/proc/<pid>/environ`, `mem` and `fd` can
/// then be opened only with `CAP_SYS_PTRACE`, which the process sandbox's children never
/// hold. Call once at start-up, before any secret is used.
pub fn protect_worker() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(std::io::Error::from)
}

/// Resource limits of the command (both modes, through `prlimit`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// CPU seconds of each process.
    pub cpu_secs: u64,
    /// Address space of each process.
    pub memory_bytes: u64,
    /// Largest file a process may write.
    pub file_bytes: u64,
    /// Processes of the user (not enforced for uid 0 outside a user namespace; the
    /// timeout's group kill is the wall there).
    pub processes: u64,
    /// Size of bubblewrap's private `/tmp` (a tmpfs lives in memory: unbounded, a check
    /// could fill half of it).
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_secs: 3600,
            memory_bytes: 8 << 30,
            file_bytes: 2 << 30,
            processes: 4096,
            tmp_bytes: 1 << 30,
        }
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub mode: Mode,
    /// One shell command line, run with `sh -c` from the checkout's root.
    pub command: String,
    /// The checkout: the working directory and the only writable place (bubblewrap).
    pub checkout: PathBuf,
    /// A private folder of the task for `HOME` and `TMPDIR` (process mode; bubblewrap uses
    /// its private `/tmp`). Created when missing.
    pub scratch: PathBuf,
    /// Folders covered by an empty tmpfs (bubblewrap): the workspace with the other tasks,
    /// mounted secrets. Ones that do not exist are skipped.
    pub hide: Vec<PathBuf>,
    /// Folders bound back read-only after the hidden ones (bubblewrap): the git state a
    /// second working tree points into. Ones that do not exist are skipped.
    pub read_only: Vec<PathBuf>,
    /// `network: true` in the repository's config.
    pub network: bool,
    pub timeout: Duration,
    /// Bytes of output kept (the tail).
    pub output_cap: usize,
    /// The environment (see [`env::sandbox_env`]).
    pub env: Vec<(String, String)>,
    pub limits: Limits,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal it did not ask for (OOM, a limit).
    Signal(i32),
    /// Ran past [`Spec::timeout`]; the whole tree was killed.
    TimedOut,
    /// The task was cancelled; the whole tree was killed.
    Cancelled,
}

impl Exit {
    pub fn passed(self) -> bool {
        self == Exit::Code(0)
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Finished {
    pub exit: Exit,
    pub output: Output,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the sandbox ({program}): {source}; is it installed (Debian: {package})?")]
    Spawn {
        program: &'static str,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("cannot prepare the sandbox: {0}")]
    Prepare(std::io::Error),
}

/// How long the output reader may outlive the command: a process that left the group
/// (process mode, `setsid`) and still holds the pipe must not hold up the task.
const READER_GRACE: Duration = Duration::from_secs(2);

/// Runs `spec` to its end, its timeout or `cancel`, whichever comes first.
pub async fn run(spec: &Spec, cancel: &CancellationToken) -> Result<Finished, SandboxError> {
    let home = prepare(spec).map_err(SandboxError::Prepare)?;
    let (program, args) = match spec.mode {
        Mode::Bwrap => ("bwrap", argv::bwrap(spec, &home)),
        Mode::Process => ("prlimit", argv::process(spec, group::has_capabilities())),
    };
    let mut env = spec.env.clone();
    env.retain(|(name, _)| name != "HOME" && name != "TMPDIR");
    env.push(("HOME".into(), home.display().to_string()));
    env.push(("TMPDIR".into(), tmp_dir(spec).display().to_string()));

    let (reader, writer) = std::io::pipe().map_err(SandboxError::Prepare)?;
    let stderr = writer.try_clone().map_err(SandboxError::Prepare)?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(&args)
        .env_clear()
        .envs(env)
        .current_dir(&spec.checkout)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|source| SandboxError::Spawn {
        program,
        package: if program == "bwrap" {
            "bubblewrap"
        } else {
            "util-linux"
        },
        source,
    })?;
    // Our copies of the pipe's write end go with the command: EOF comes when the tree is gone.
    drop(command);
    let group = group::Group::of(&child);
    let captured = Arc::new(std::sync::Mutex::new(output::Capture::new(spec.output_cap)));
    let reading = {
        let captured = Arc::clone(&captured);
        tokio::task::spawn_blocking(move || output::read_into(reader, &captured))
    };

    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => exit_of(status),
            Err(_) => Exit::Signal(0),
        },
        () = tokio::time::sleep(spec.timeout) => Exit::TimedOut,
        () = cancel.cancelled() => Exit::Cancelled,
    };
    let duration = started.elapsed();
    // Always: what a passing check left in the background is killed too.
    group.kill_all(&mut child).await;
    let _ = child.wait().await;
    let _ = tokio::time::timeout(READER_GRACE, reading).await;
    let output = captured
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .snapshot();
    Ok(Finished {
        exit,
        output,
        duration,
    })
}

fn tmp_dir(spec: &Spec) -> PathBuf {
    match spec.mode {
        Mode::Bwrap => PathBuf::from("/tmp"),
        Mode::Process => spec.scratch.join("tmp"),
    }
}

/// The folders the command needs; returns its `HOME`.
fn prepare(spec: &Spec) -> std::io::Result<PathBuf> {
    match spec.mode {
        Mode::Bwrap => Ok(PathBuf::from("/tmp/home")),
        Mode::Process => {
            let home = spec.scratch.join("home");
            std::fs::create_dir_all(&home)?;
            std::fs::create_dir_all(spec.scratch.join("tmp"))?;
            Ok(home)
        }
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Signal(0),
    }
}

/// Whether `path` exists (hidden folders that do not are skipped).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
