//! The sandbox against real processes: bubblewrap (installed by `.ci/run`) and the process
//! fallback. What a hostile check tries: read the worker's environment through `/proc`,
//! grep the worker's folders for its secrets, reach a port on 127.0.0.1, fork forever,
//! hang, flood its output.
//!
//! The "worker" whose secrets must stay out of reach is this test binary run again as a
//! child with a canary in its environment (a test cannot add to its own environ without
//! `unsafe`), see [`as_worker`].

use fleet_sandbox::{Exit, Limits, Mode, Spec, env::sandbox_env};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CANARY: &str = "canary-5e0b71c2d9a4f386";
const ROLE: &str = "FLEET_SANDBOX_TEST_ROLE";

fn spec(mode: Mode, dir: &Path, command: &str) -> Spec {
    let checkout = dir.join("checkout");
    std::fs::create_dir_all(&checkout).expect("checkout");
    Spec {
        mode,
        command: command.into(),
        checkout,
        scratch: dir.join("scratch"),
        hide: vec![dir.join("hidden")],
        read_only: Vec::new(),
        network: false,
        timeout: Duration::from_secs(20),
        output_cap: 64 * 1024,
        env: sandbox_env(|name| std::env::var(name).ok(), &[], &[CANARY]),
        limits: Limits::default(),
    }
}

async fn run(spec: &Spec) -> fleet_sandbox::Finished {
    fleet_sandbox::run(spec, &CancellationToken::new())
        .await
        .expect("sandbox starts")
}

fn text(finished: &fleet_sandbox::Finished) -> String {
    String::from_utf8_lossy(&finished.output.kept).into_owned()
}

/// Both modes where bubblewrap works (the CI installs it), else the process mode only.
async fn modes() -> Vec<Mode> {
    if fleet_sandbox::bwrap_works().await {
        vec![Mode::Bwrap, Mode::Process]
    } else {
        eprintln!("bubblewrap does not work here: testing the process sandbox only");
        vec![Mode::Process]
    }
}

/// A check that hunts for the canary everywhere it can: its environment, every
/// `/proc/*/environ`, and every file under the folder that holds the worker's files.
fn hunt(dir: &Path) -> String {
    format!(
        "env; for f in /proc/[0-9]*/environ; do cat \"$f\" 2>/dev/null | tr '\\0' '\\n'; done; \
         grep -r . {} 2>/dev/null; echo hunt-done",
        dir.display()
    )
}

/// Runs the test named `test` again in a child process, as the "worker": with the canary
/// in its environment and `role` telling it what to do; as `nobody` when `as_nobody` (a
/// worker without capabilities, as in a pod with `runAsNonRoot`). Returns its output.
fn as_worker(test: &str, role: &str, as_nobody: bool) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let copy = tempfile::tempdir().expect("tempdir");
    let mut command = if as_nobody {
        // A copy nobody may execute (the build directory may be private to root).
        use std::os::unix::fs::PermissionsExt as _;
        let path = copy.path().join("worker-under-test");
        std::fs::copy(&exe, &path).expect("copy");
        std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(path);
        command
    } else {
        Command::new(exe)
    };
    let out = command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("AGENT_CANARY", CANARY)
        .env("TMPDIR", "/tmp")
        .output()
        .expect("worker child");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "worker child failed:\n{all}");
    all
}

/// In the worker child: the canary is in our environ; hunt for it from a sandbox (or,
/// for the control, from a plain child).
async fn hunt_as_worker(role: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("hidden")).expect("hidden");
    std::fs::write(dir.path().join("hidden/secret.txt"), CANARY).expect("file");
    if !role.starts_with("unprotected") {
        fleet_sandbox::protect_worker().expect("non-dumpable");
    }
    let spec = spec(
        if role.starts_with("bwrap") {
            Mode::Bwrap
        } else {
            Mode::Process
        },
        dir.path(),
        &hunt(dir.path()),
    );
    let output = if role == "unprotected-plain" {
        let out = Command::new("sh")
            .args(["-c", &spec.command])
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        text(&run(&spec).await)
    };
    assert!(output.contains("hunt-done"), "the hunt ran: {output}");
    let found_environ = output
        .lines()
        .any(|l| l == format!("AGENT_CANARY={CANARY}"));
    println!("ROLE={role} FOUND_ENVIRON={found_environ}");
    println!(
        "ROLE={role} FOUND_FILE={}",
        output.contains(&format!("secret.txt:{CANARY}"))
    );
}

#[tokio::test]
async fn a_check_never_sees_the_workers_secrets() {
    const TEST: &str = "a_check_never_sees_the_workers_secrets";
    if let Ok(role) = std::env::var(ROLE) {
        return hunt_as_worker(&role).await;
    }
    // Controls: the hunt finds the canary from a plain child, and a process-mode check of
    // a worker without capabilities finds it when the worker is not made non-dumpable.
    // So "not found" below is the sandbox's doing.
    let plain = as_worker(TEST, "unprotected-plain", false);
    assert!(
        plain.contains("FOUND_ENVIRON=true") && plain.contains("FOUND_FILE=true"),
        "{plain}"
    );
    let unprotected = as_worker(TEST, "unprotected-process", true);
    assert!(unprotected.contains("FOUND_ENVIRON=true"), "{unprotected}");

    for (role, as_nobody) in [("process", false), ("process-nobody", true)] {
        let out = as_worker(TEST, role, as_nobody);
        assert!(
            out.contains(&format!("ROLE={role} FOUND_ENVIRON=false")),
            "{out}"
        );
    }
    if fleet_sandbox::bwrap_works().await {
        for (role, as_nobody) in [("bwrap", false), ("bwrap-nobody", true)] {
            let out = as_worker(TEST, role, as_nobody);
            assert!(
                out.contains(&format!("ROLE={role} FOUND_ENVIRON=false")),
                "{out}"
            );
            assert!(
                out.contains(&format!("ROLE={role} FOUND_FILE=false")),
                "hidden: {out}"
            );
        }
    }
}

#[tokio::test]
async fn the_environment_holds_the_allow_list_only() {
    for mode in modes().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = spec(mode, dir.path(), "env");
        spec.env.push(("LEAK_ME".into(), "no".into()));
        spec.env = sandbox_env(
            |name| (name == "JAVA_HOME").then(|| "/opt/jdk".to_owned()),
            &[],
            &[],
        );
        let output = text(&run(&spec).await);
        assert!(output.contains("JAVA_HOME=/opt/jdk"), "{mode:?}: {output}");
        assert!(output.contains("CI=true"), "{mode:?}: {output}");
        for line in output.lines() {
            let name = line.split('=').next().unwrap_or_default();
            assert!(
                !name.contains("TOKEN") && !name.contains("KEY") && name != "LEAK_ME",
                "{mode:?}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn with_bubblewrap_the_network_is_off_unless_asked_and_only_the_checkout_is_writable() {
    if !fleet_sandbox::bwrap_works().await {
        eprintln!("bubblewrap does not work here: skipped");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let connect = format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected");
    let mut spec = spec(Mode::Bwrap, dir.path(), &connect);
    let off = run(&spec).await;
    assert!(
        !off.exit.passed() && !text(&off).contains("connected"),
        "{}",
        text(&off)
    );
    spec.network = true;
    let on = run(&spec).await;
    assert!(
        on.exit.passed() && text(&on).contains("connected"),
        "{}",
        text(&on)
    );

    // Outside the checkout and outside `/tmp` (which is private: a write there lands in
    // the sandbox's own tmpfs): the host's read-only root.
    let outside = std::env::current_dir()
        .expect("cwd")
        .join(format!("sandbox-write-probe-{}", std::process::id()));
    spec.command = format!(
        "echo built > result.txt && (echo x > {} || echo refused)",
        outside.display()
    );
    let wrote = run(&spec).await;
    assert!(text(&wrote).contains("refused"), "{}", text(&wrote));
    // The checkout's `.git` is git's state, not the check's: read-only inside.
    std::fs::create_dir_all(spec.checkout.join(".git")).expect(".git");
    std::fs::write(spec.checkout.join(".git/config"), "[core]\n").expect("config");
    spec.command = "echo '[core] fsmonitor = evil' >> .git/config || echo git-refused".into();
    let git = run(&spec).await;
    assert!(text(&git).contains("git-refused"), "{}", text(&git));
    assert_eq!(
        std::fs::read_to_string(spec.checkout.join(".git/config")).expect("config"),
        "[core]\n"
    );
    assert!(!outside.exists());
    assert_eq!(
        std::fs::read_to_string(spec.checkout.join("result.txt")).expect("checkout written"),
        "built\n"
    );
}

/// No process whose command line holds `marker` is left (read from `/proc`).
fn survivors(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) && !cmdline.contains("--exact") {
                found.push(cmdline);
            }
        }
    }
    found
}

#[tokio::test]
async fn bubblewraps_private_tmp_cannot_fill_the_memory() {
    if !fleet_sandbox::bwrap_works().await {
        eprintln!("bubblewrap does not work here: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fill = spec(
        Mode::Bwrap,
        dir.path(),
        "head -c 16777216 /dev/zero > /tmp/fill && echo filled",
    );
    fill.limits.tmp_bytes = 8 << 20;
    let refused = run(&fill).await;
    assert_ne!(refused.exit, Exit::Code(0), "{}", text(&refused));
    assert!(!text(&refused).contains("filled"));
    fill.limits.tmp_bytes = 32 << 20;
    let fits = run(&fill).await;
    assert_eq!(fits.exit, Exit::Code(0), "control: {}", text(&fits));
}

#[tokio::test]
async fn a_check_that_forks_and_hangs_is_killed_at_its_timeout_with_nothing_left() {
    for mode in modes().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("974{}", std::process::id());
        // Forks sleepers as fast as it can, forever; with bubblewrap one also leaves the
        // session (setsid), which only the PID namespace catches.
        let escape = if mode == Mode::Bwrap {
            format!("setsid sleep 600.{marker} & ")
        } else {
            String::new()
        };
        let command = format!("{escape}while true; do sleep 600.{marker} & done");
        let mut spec = spec(mode, dir.path(), &command);
        spec.timeout = Duration::from_secs(2);
        let started = std::time::Instant::now();
        let finished = run(&spec).await;
        assert_eq!(finished.exit, Exit::TimedOut, "{mode:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{mode:?}");
        assert_eq!(survivors(&marker), Vec::<String>::new(), "{mode:?}");
    }
}

#[tokio::test]
async fn a_passing_check_leaves_no_background_process_and_a_flood_is_capped() {
    for mode in modes().await {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("975{}", std::process::id());
        let command = format!(
            "sleep 600.{marker} & head -c 5000000 /dev/zero | tr '\\0' 'x'; echo; echo the-end"
        );
        let mut spec = spec(mode, dir.path(), &command);
        spec.output_cap = 4096;
        let finished = run(&spec).await;
        assert_eq!(finished.exit, Exit::Code(0), "{mode:?}");
        assert_eq!(survivors(&marker), Vec::<String>::new(), "{mode:?}");
        assert_eq!(finished.output.kept.len(), 4096, "{mode:?}");
        assert_eq!(finished.output.total_bytes, 5_000_000 + 1 + 8, "{mode:?}");
        assert!(text(&finished).ends_with("the-end\n"), "{mode:?}");
        let failing = run(&self::spec(mode, dir.path(), "echo nope; exit 3")).await;
        assert_eq!(failing.exit, Exit::Code(3), "{mode:?}");
    }
}
