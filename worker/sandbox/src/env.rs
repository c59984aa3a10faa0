//! The environment of a sandboxed command: built from nothing, never inherited. A fixed
//! set of harmless variables, the toolchains' own locations taken from the worker's
//! environment, the names the operator adds (`CHECK_ENV`), and never a value that holds
//! one of the worker's secrets, whatever its name.

/// Passed through from the worker's environment when set: where the toolchains live and
/// the locale. None of them carries a credential.
pub const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "GOROOT",
    "GOFLAGS",
    "GOPROXY",
    "JAVA_HOME",
    "NODE_PATH",
    "VIRTUAL_ENV",
];

/// Set for every command: non-interactive, no colours, no bytecode files in the checkout.
/// (`HOME` and `TMPDIR` are set by [`crate::run`] for the mode.)
const FIXED: &[(&str, &str)] = &[
    ("CI", "true"),
    ("TERM", "dumb"),
    ("NO_COLOR", "1"),
    ("CARGO_TERM_COLOR", "never"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("GIT_TERMINAL_PROMPT", "0"),
];

/// The environment for a sandboxed command: the fixed set, [`PASSED_THROUGH`] and `extra`
/// names read through `lookup` (the worker's environment), minus any variable whose value
/// contains one of `secrets`.
pub fn sandbox_env(
    lookup: impl Fn(&str) -> Option<String>,
    extra: &[String],
    secrets: &[&str],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = FIXED
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let names = PASSED_THROUGH
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str));
    for name in names {
        if env.iter().any(|(k, _)| k == name) {
            continue;
        }
        let Some(value) = lookup(name) else { continue };
        let holds_secret = secrets
            .iter()
            .any(|secret| !secret.is_empty() && value.contains(secret));
        if holds_secret {
            tracing::warn!(
                variable = name,
                "not passed to the sandbox: its value holds a secret"
            );
            continue;
        }
        env.push((name.to_owned(), value));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_the_allow_list_passes_and_never_a_secret() {
        let worker: HashMap<&str, &str> = [
            ("PATH", "/usr/bin"),
            ("GITHUB_TOKEN", "ghp_secret"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("JAVA_HOME", "/opt/jdk"),
            ("MY_TOOL_HOME", "/opt/tool"),
            ("LEAKY", "prefix-ghp_secret"),
        ]
        .into();
        let lookup = |name: &str| worker.get(name).map(|v| (*v).to_owned());
        let env = sandbox_env(
            lookup,
            &["MY_TOOL_HOME".into(), "LEAKY".into()],
            &["ghp_secret"],
        );
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"PATH") && names.contains(&"JAVA_HOME"));
        assert!(
            names.contains(&"MY_TOOL_HOME"),
            "operator's extra names pass"
        );
        assert!(!names.contains(&"GITHUB_TOKEN") && !names.contains(&"ANTHROPIC_API_KEY"));
        assert!(
            !names.contains(&"LEAKY"),
            "a value holding a secret never passes"
        );
        assert!(env.iter().all(|(_, v)| !v.contains("secret")));
    }
}
