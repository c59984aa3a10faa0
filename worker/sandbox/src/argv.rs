//! The command lines of both modes. Kept as plain argument lists (no shell between us and
//! the sandbox) so what is mounted and limited can be read, and tested, in one place.

use crate::{Limits, Spec, exists};
use std::path::Path;

/// `prlimit` wrapping the command: applied in both modes (inside bubblewrap too, whose
/// namespaces do not bound CPU, memory or file size).
fn limited(limits: &Limits) -> Vec<String> {
    vec![
        format!("--cpu={}", limits.cpu_secs),
        format!("--as={}", limits.memory_bytes),
        format!("--fsize={}", limits.file_bytes),
        format!("--nproc={}", limits.processes),
        "--".into(),
    ]
}

fn shell(command: &str) -> [String; 3] {
    ["sh".into(), "-c".into(), command.into()]
}

/// `prlimit <limits> -- setpriv --no-new-privs [drop all capabilities] -- sh -c <command>`.
/// Capabilities are dropped only when the worker holds some (as root): dropping the
/// bounding set needs `CAP_SETPCAP`, and a worker without capabilities has none to give.
pub fn process(spec: &Spec, has_capabilities: bool) -> Vec<String> {
    let mut args = limited(&spec.limits);
    args.extend(["setpriv".into(), "--no-new-privs".into()]);
    if has_capabilities {
        args.extend([
            "--bounding-set=-all".into(),
            "--inh-caps=-all".into(),
            "--ambient-caps=-all".into(),
        ]);
    }
    args.push("--".into());
    args.extend(shell(&spec.command));
    args
}

/// Size of each tmpfs that covers a hidden folder: it only has to look empty.
const HIDDEN_TMPFS_BYTES: &str = "1048576";

/// The namespaces and base mounts of every bubblewrap run, shared with [`bwrap_probe`] so
/// that the probe tests exactly what a run will ask of the kernel (the private `/tmp`, with
/// its size, follows).
const BWRAP_BASE: [&str; 10] = [
    "--die-with-parent",
    "--new-session",
    "--unshare-all",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
];

/// A tmpfs of `bytes` at `at`.
fn sized_tmpfs(bytes: &str, at: String) -> [String; 4] {
    ["--size".into(), bytes.into(), "--tmpfs".into(), at]
}

/// bubblewrap's arguments. Mount order matters: later mounts cover earlier ones, so the
/// hidden folders are covered first and the checkout (inside one of them) is bound back.
pub fn bwrap(spec: &Spec, home: &Path) -> Vec<String> {
    let mut args: Vec<String> = BWRAP_BASE.map(String::from).into();
    args.extend(sized_tmpfs(
        &spec.limits.tmp_bytes.to_string(),
        "/tmp".into(),
    ));
    if spec.network {
        args.push("--share-net".into());
    }
    for hidden in &spec.hide {
        if exists(hidden) {
            args.extend(sized_tmpfs(HIDDEN_TMPFS_BYTES, path(hidden)));
        }
    }
    let checkout = path(&spec.checkout);
    args.extend(["--bind".into(), checkout.clone(), checkout.clone()]);
    // git's own state stays read-only: a check that wrote `.git/config` (an fsmonitor, an
    // include, a proxy) would steer the worker's next git command outside the sandbox.
    let git_dir = spec.checkout.join(".git");
    if exists(&git_dir) {
        let git_dir = path(&git_dir);
        args.extend(["--ro-bind".into(), git_dir.clone(), git_dir]);
    }
    for bound in spec.read_only.iter().filter(|p| exists(p)) {
        args.extend(["--ro-bind".into(), path(bound), path(bound)]);
    }
    args.extend(["--dir".into(), path(home)]);
    args.extend(["--chdir".into(), checkout, "--".into(), "prlimit".into()]);
    args.extend(limited(&spec.limits));
    args.extend(shell(&spec.command));
    args
}

/// The flags of [`bwrap`] that need kernel support, around `true`.
pub fn bwrap_probe() -> Vec<String> {
    let mut args: Vec<String> = BWRAP_BASE.map(String::from).into();
    args.extend(sized_tmpfs(HIDDEN_TMPFS_BYTES, "/tmp".into()));
    args.extend(["--".into(), "true".into()]);
    args
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use std::time::Duration;

    fn spec(network: bool) -> Spec {
        Spec {
            mode: Mode::Bwrap,
            command: "cargo test".into(),
            checkout: "/".into(),
            scratch: "/nonexistent-scratch".into(),
            hide: vec!["/nonexistent-hidden".into(), "/tmp".into()],
            read_only: Vec::new(),
            network,
            timeout: Duration::from_secs(1),
            output_cap: 1024,
            env: Vec::new(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn bubblewrap_hides_before_binding_the_checkout_and_shares_the_network_only_when_asked() {
        let args = bwrap(&spec(false), Path::new("/tmp/home"));
        assert!(!args.contains(&"--share-net".to_string()));
        assert!(args.contains(&"--unshare-all".to_string()));
        let hidden = args.iter().rposition(|a| a == "--tmpfs").expect("tmpfs");
        let bound = args.iter().position(|a| a == "--bind").expect("bind");
        assert!(hidden < bound, "{args:?}");
        assert!(
            !args.iter().any(|a| a == "/nonexistent-hidden"),
            "missing paths skipped"
        );
        assert_eq!(args[args.len() - 3..], shell("cargo test"));
        assert!(bwrap(&spec(true), Path::new("/tmp/home")).contains(&"--share-net".to_string()));
    }

    #[test]
    fn capabilities_are_dropped_only_when_held() {
        let spec = spec(false);
        assert!(process(&spec, true).contains(&"--bounding-set=-all".to_string()));
        assert!(!process(&spec, false).contains(&"--bounding-set=-all".to_string()));
        assert!(process(&spec, false).contains(&"--no-new-privs".to_string()));
    }
}
