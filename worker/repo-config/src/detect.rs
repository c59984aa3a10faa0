//! Checks guessed from a repository's build files when its config names none: Cargo
//! (`cargo test`), Go (`go test ./...`), npm (`npm test`, only with a real `scripts.test`)
//! and pytest (a pytest configuration), each only when its tool is on the worker's PATH.
//! The report labels them "detected", so nobody mistakes a guess for the project's own
//! definition of done.
//!
//! Files are read through the caller's `read` (the worker passes its checkout boundary):
//! this module never opens a path itself.

use crate::CheckConfig;

/// npm's placeholder for "no tests": not a test script.
const NPM_PLACEHOLDER: &str = "no test specified";

/// The detected checks, in a fixed order. `read(path)` gives the text of a file at the
/// checkout's root (`None` when absent or unreadable); `on_path(tool)` whether the tool
/// can be run.
pub fn detect(
    read: impl Fn(&str) -> Option<String>,
    on_path: impl Fn(&str) -> bool,
) -> Vec<CheckConfig> {
    let mut found = Vec::new();
    let mut add = |name: &str, run: &str| {
        found.push(CheckConfig {
            name: name.to_owned(),
            run: run.to_owned(),
            timeout_secs: None,
        });
    };
    if read("Cargo.toml").is_some() && on_path("cargo") {
        add("cargo test", "cargo test");
    }
    if read("go.mod").is_some() && on_path("go") {
        add("go test", "go test ./...");
    }
    if read("package.json").is_some_and(|text| has_npm_test(&text)) && on_path("npm") {
        add("npm test", "npm test");
    }
    if uses_pytest(&read) && on_path("python3") {
        add("pytest", "python3 -m pytest -q");
    }
    found
}

fn has_npm_test(package_json: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(package_json) else {
        return false;
    };
    value
        .get("scripts")
        .and_then(|scripts| scripts.get("test"))
        .and_then(|test| test.as_str())
        .is_some_and(|test| !test.trim().is_empty() && !test.contains(NPM_PLACEHOLDER))
}

fn uses_pytest(read: &impl Fn(&str) -> Option<String>) -> bool {
    let has = |file: &str, section: &str| read(file).is_some_and(|text| text.contains(section));
    read("pytest.ini").is_some()
        || read("conftest.py").is_some()
        || has("pyproject.toml", "[tool.pytest")
        || has("setup.cfg", "[tool:pytest]")
        || has("tox.ini", "[pytest]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn names(files: &[(&str, &str)], tools: &[&str]) -> Vec<String> {
        let files: HashMap<&str, &str> = files.iter().copied().collect();
        detect(
            |path| files.get(path).map(|text| (*text).to_owned()),
            |tool| tools.contains(&tool),
        )
        .into_iter()
        .map(|c| c.run)
        .collect()
    }

    #[test]
    fn each_ecosystem_needs_its_file_and_its_tool() {
        let all = ["cargo", "go", "npm", "python3"];
        assert_eq!(names(&[("Cargo.toml", "[package]")], &all), ["cargo test"]);
        assert!(
            names(&[("Cargo.toml", "[package]")], &["go"]).is_empty(),
            "no cargo on PATH"
        );
        assert_eq!(names(&[("go.mod", "module x")], &all), ["go test ./..."]);
        assert_eq!(
            names(
                &[("package.json", r#"{"scripts":{"test":"vitest run"}}"#)],
                &all
            ),
            ["npm test"]
        );
        assert!(
            names(
                &[(
                    "package.json",
                    r#"{"scripts":{"test":"echo \"Error: no test specified\" && exit 1"}}"#
                )],
                &all
            )
            .is_empty(),
            "npm's placeholder is no test"
        );
        assert!(names(&[("package.json", "{not json")], &all).is_empty());
        assert_eq!(
            names(&[("pyproject.toml", "[tool.pytest.ini_options]\n")], &all),
            ["python3 -m pytest -q"]
        );
        assert!(names(&[("pyproject.toml", "[project]\n")], &all).is_empty());
        assert_eq!(names(&[("setup.cfg", "[tool:pytest]\n")], &all).len(), 1);
    }
}
