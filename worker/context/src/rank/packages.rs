//! Package signal: is the file in a package the issue is about?
//!
//! Many repositories hold several packages, each in a folder with its own manifest: preact's
//! `compat/`, `debug/` and `hooks/` beside its core in `src/`, tracing's `tracing-subscriber/`,
//! jib's `jib-maven-plugin/`. An issue about one of them names it ("`preact/compat`",
//! "tracing-subscriber's `EnvFilter`"); an issue that names none is about the core. So a file
//! scores 1 when it is in the root package or in a nested package the issue names, 0 when it
//! is in a nested package the issue does not name: without it, `debug/src/debug.js` (every
//! warning preact prints, so every word of every issue) outranks `src/diff/children.js`.
//!
//! A repository whose code is all in nested packages (a Cargo workspace like tracing's, a
//! Maven reactor like dubbo's, vue's `packages/`) has no core outside them: there, an issue
//! that names no package says nothing about which, and every file scores 1.

use std::collections::{HashMap, HashSet};

use crate::walk::{FileRole, SourceFile};

/// The files whose folder is a package of its own, in every ecosystem the selector serves.
pub const MANIFESTS: [&str; 8] = [
    "package.json",
    "Cargo.toml",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "pyproject.toml",
    "setup.py",
];

/// Shortest package-name variant worth looking for (`ui`, `js` would be found anywhere).
const MIN_PACKAGE_NAME_LEN: usize = 3;

/// Share of the code's bytes the root package must hold to be the repository's core.
pub const ROOT_CORE_SHARE: f64 = 0.2;

/// Words that name no package in particular: as a name's last part (`jib-core`, `dubbo-api`
/// are not named by "core" or "api"), or as a whole folder's name (`examples/`, `benches/`
/// hold packages an issue's "see the examples" does not point at).
const GENERIC: [&str; 26] = [
    "all",
    "api",
    "bench",
    "benches",
    "benchmarks",
    "bom",
    "common",
    "core",
    "demo",
    "doc",
    "docs",
    "example",
    "examples",
    "impl",
    "internal",
    "lib",
    "main",
    "parent",
    "plugin",
    "plugins",
    "scripts",
    "spi",
    "test",
    "tests",
    "tools",
    "utils",
];

/// 1 for files of the root package or of a nested package `issue_text` names, else 0 (all
/// 1 when the root is no core and the issue names no package); 0 for files BM25 finds
/// nothing in (`bm25`), so that the signal ranks no file alone.
pub fn package_signal(files: &[SourceFile], issue_text: &str, bm25: &[f64]) -> Vec<f64> {
    let packages: HashSet<&str> = files
        .iter()
        .filter_map(|f| {
            let (dir, name) = f.path.rsplit_once('/')?;
            MANIFESTS.contains(&name).then_some(dir)
        })
        .collect();
    let gated = |scores: Vec<f64>| -> Vec<f64> {
        scores
            .into_iter()
            .zip(bm25)
            .map(|(s, &b)| if b > 0.0 { s } else { 0.0 })
            .collect()
    };
    if packages.is_empty() {
        return gated(vec![1.0; files.len()]);
    }
    let mut last_parts: HashMap<&str, usize> = HashMap::new();
    for p in &packages {
        if let Some((_, last)) = folder_name(p).rsplit_once('-') {
            *last_parts.entry(last).or_insert(0) += 1;
        }
    }
    let text = issue_text.to_ascii_lowercase();
    let enclosing: Vec<Option<&str>> = files
        .iter()
        .map(|f| enclosing_package(&f.path, &packages))
        .collect();
    // Per file: None in the root package, else whether the issue names its package.
    let mut named: HashMap<&str, bool> = HashMap::new();
    let flags: Vec<Option<bool>> = enclosing
        .iter()
        .map(|package| {
            package.map(|p| {
                *named
                    .entry(p)
                    .or_insert_with(|| names_of(p, &last_parts).iter().any(|n| mentions(&text, n)))
            })
        })
        .collect();
    let (mut root_bytes, mut code_bytes) = (0usize, 0usize);
    for (f, package) in files.iter().zip(&enclosing) {
        if f.role == FileRole::Source && f.lang.is_some() {
            code_bytes += f.text.len();
            if package.is_none() {
                root_bytes += f.text.len();
            }
        }
    }
    let root_is_core = root_bytes as f64 >= ROOT_CORE_SHARE * code_bytes as f64;
    if !root_is_core && !flags.contains(&Some(true)) {
        return gated(vec![1.0; files.len()]);
    }
    gated(
        flags
            .into_iter()
            .map(|flag| if flag == Some(false) { 0.0 } else { 1.0 })
            .collect(),
    )
}

/// The deepest folder above `path` (the root not counted) that is a package.
fn enclosing_package<'a>(path: &str, packages: &HashSet<&'a str>) -> Option<&'a str> {
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if let Some(found) = packages.get(parent) {
            return Some(found);
        }
        dir = parent;
    }
    None
}

fn folder_name(dir: &str) -> &str {
    dir.rsplit('/').next().unwrap_or(dir)
}

/// How an issue may name the package in folder `dir`: the folder's name
/// (`tracing-subscriber`), in snake case (`tracing_subscriber`, a Rust crate's name in
/// code), its last part when no other package ends so and it is no generic word
/// (`subscriber`, `compat` of `preact-compat`), and the words after the first for longer
/// names (`gradle plugin` of `jib-gradle-plugin`). None for a generic folder (`examples`).
fn names_of(dir: &str, last_parts: &HashMap<&str, usize>) -> Vec<String> {
    let name = folder_name(dir).to_ascii_lowercase();
    if GENERIC.contains(&name.as_str()) {
        return Vec::new();
    }
    let mut names = vec![name.replace('-', "_")];
    let parts: Vec<&str> = name.split('-').collect();
    if let [.., last] = parts[..]
        && parts.len() > 1
        && last_parts.get(last) == Some(&1)
        && !GENERIC.contains(&last)
    {
        names.push(last.to_string());
    }
    if parts.len() >= 3 {
        names.push(parts[1..].join(" "));
    }
    names.push(name);
    names.retain(|n| n.len() >= MIN_PACKAGE_NAME_LEN);
    names.sort();
    names.dedup();
    names
}

/// `word` occurs in `text` (both lowercase) as a whole: no letter, digit, `-` or `_` joined
/// to either end (`tracing-subscriber` does not name `tracing`).
fn mentions(text: &str, word: &str) -> bool {
    let joins = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        !before.is_some_and(joins) && !after.is_some_and(joins)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_found_only_whole() {
        assert!(mentions("see preact/compat here", "compat"));
        assert!(mentions("compat", "compat"));
        assert!(!mentions("compatibility", "compat"));
        assert!(!mentions("the core package", "cor"));
        assert!(mentions("`tracing_subscriber::fmt`", "tracing_subscriber"));
        assert!(!mentions("`tracing_subscriber::fmt`", "tracing"));
        assert!(!mentions("tracing-subscriber's filter", "tracing"));
    }

    #[test]
    fn a_package_is_named_by_its_folder_its_snake_case_or_a_specific_last_part() {
        let last: HashMap<&str, usize> = [("subscriber", 1), ("plugin", 2), ("core", 1)].into();
        assert_eq!(
            names_of("tracing-subscriber", &last),
            ["subscriber", "tracing-subscriber", "tracing_subscriber"]
        );
        assert_eq!(
            names_of("jib-gradle-plugin", &last),
            ["gradle plugin", "jib-gradle-plugin", "jib_gradle_plugin"]
        );
        assert_eq!(
            names_of("tracing-core", &last),
            ["tracing-core", "tracing_core"]
        );
        assert_eq!(names_of("packages/compat", &last), ["compat"]);
        assert_eq!(names_of("x/ui", &last), Vec::<String>::new());
        assert_eq!(names_of("examples", &last), Vec::<String>::new());
    }
}
