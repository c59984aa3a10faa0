//! The repository walk: every text file worth ranking, read into memory.
//!
//! Gitignore-aware (the `ignore` crate, also outside a git checkout). Skipped: hidden
//! files, dependency folders that are never the project's code (`node_modules`, virtual
//! environments), files over [`MAX_FILE_BYTES`], binary files (a NUL byte in the first
//! 8 KiB, or a known binary extension), lock files and generated files. Non-UTF-8 text is
//! read lossily rather than failing the selection. What the walk keeps is capped at
//! [`MAX_WALK_BYTES`] (the project's own code first), so a hostile or huge repository
//! cannot make the worker hold it all in memory. Links are never followed.

use std::collections::HashSet;
use std::path::Path;

use ignore::WalkBuilder;
use rayon::prelude::*;

use crate::languages::Lang;

mod roles;
pub use roles::role_of;
use roles::{demote_minority_scripts, is_annotation_type};

/// Files larger than this are skipped: minified bundles, data and fixtures, never the code
/// an issue is fixed in, and they would dominate the time spent.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Most bytes of file content one walk keeps (64 MiB: the largest repository of the
/// evaluation, sympy, is 25 MB of text). Past it, files are dropped in the order of
/// `budget_rank`, then by path, so the cut is deterministic.
pub const MAX_WALK_BYTES: u64 = 64 * 1024 * 1024;

/// How a file's location colours its relevance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// Code of the project itself.
    Source,
    /// Tests, fixtures and benchmarks.
    Test,
    /// Examples, demos, samples.
    Example,
    /// Documentation and other prose.
    Doc,
    /// Third-party code kept in the tree (`vendor/`, `third_party/`, ...).
    Vendored,
    /// Type declarations beside the code they describe (`*.d.ts`): they name every API of
    /// the code, so they match issues as well as it does, but the behaviour is not in them.
    Declaration,
    /// Any other text file (configuration, data).
    Other,
}

/// One file read by the walk.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the repository root, with `/` separators.
    pub path: String,
    pub text: String,
    pub lang: Option<Lang>,
    pub role: FileRole,
}

/// What the walk kept and why it dropped the rest.
#[derive(Debug, Default)]
pub struct Walked {
    pub files: Vec<SourceFile>,
    pub bytes: usize,
    pub skipped_large: usize,
    pub skipped_binary: usize,
    pub skipped_generated: usize,
    /// Files left out because [`MAX_WALK_BYTES`] was reached.
    pub skipped_budget: usize,
}

/// Directory names that hold installed dependencies rather than the project's code.
const DEPENDENCY_DIRS: &[&str] = &[
    "node_modules",
    "bower_components",
    "site-packages",
    "venv",
    ".venv",
    "__pycache__",
    "target",
    "dist",
    "build",
];

/// Extensions never worth reading as text.
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "icns", "webp", "tif", "tiff", "pdf", "zip", "gz",
    "tgz", "bz2", "xz", "7z", "rar", "tar", "jar", "war", "class", "so", "dylib", "dll", "exe",
    "o", "a", "lib", "pyc", "pyo", "pyd", "whl", "egg", "woff", "woff2", "ttf", "otf", "eot",
    "mp3", "mp4", "wav", "ogg", "avi", "mov", "sqlite", "db", "bin", "dat", "npy", "npz", "pkl",
    "pickle", "parquet", "wasm", "map",
];

/// Lock files: machine-written and never what an issue is about.
const LOCK_FILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "flake.lock",
];

/// Walk `root` and read the files worth ranking, in parallel.
pub fn walk(root: &Path) -> anyhow::Result<Walked> {
    walk_capped(root, MAX_WALK_BYTES)
}

/// [`walk`] keeping at most `max_bytes` of file content.
pub fn walk_capped(root: &Path, max_bytes: u64) -> anyhow::Result<Walked> {
    anyhow::ensure!(root.is_dir(), "{} is not a folder", root.display());
    let mut candidates = Vec::new();
    let mut skipped_large = 0;
    let mut skipped_binary = 0;
    let mut skipped_generated = 0;
    let walker = WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        // Honour .gitignore in a plain folder too, and ignore files above the root: the
        // selection must not depend on where the checkout happens to live.
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .filter_entry(|e| {
            !(e.file_type().is_some_and(|t| t.is_dir())
                && e.file_name()
                    .to_str()
                    .is_some_and(|n| DEPENDENCY_DIRS.contains(&n)))
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if BINARY_EXTENSIONS.contains(&ext.as_str()) {
            skipped_binary += 1;
            continue;
        }
        if LOCK_FILES.contains(&name.as_ref()) || is_generated_name(&name) {
            skipped_generated += 1;
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            skipped_large += 1;
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        candidates.push((path.to_path_buf(), rel, size));
    }
    // The byte budget, by the sizes on disk: the project's code first, then by path. (Shell
    // scripts demoted to other text after reading claim it as code here: they are small.)
    candidates.sort_by(|a, b| {
        (budget_rank(role_of(&a.1)), &a.1).cmp(&(budget_rank(role_of(&b.1)), &b.1))
    });
    let mut budget = max_bytes;
    let mut skipped_budget = 0;
    candidates.retain(|(_, _, size)| {
        if *size <= budget {
            budget -= size;
            true
        } else {
            skipped_budget += 1;
            false
        }
    });

    enum Read {
        Kept(SourceFile),
        Binary,
        Generated,
        Unreadable,
    }
    let read: Vec<Read> = candidates
        .into_par_iter()
        .map(|(abs, rel, size)| {
            // `take`: a file that grew since it was measured cannot overrun the budget.
            let mut bytes = Vec::new();
            let read = std::fs::File::open(&abs).and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, size), &mut bytes)
            });
            if read.is_err() {
                return Read::Unreadable;
            }
            if bytes[..bytes.len().min(8192)].contains(&0) {
                return Read::Binary;
            }
            let text = match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            if is_generated_text(&text) {
                return Read::Generated;
            }
            let lang = Lang::from_path(Path::new(&rel));
            let role = match role_of(&rel) {
                FileRole::Source if lang == Some(Lang::Java) && is_annotation_type(&text) => {
                    FileRole::Declaration
                }
                role => role,
            };
            Read::Kept(SourceFile {
                path: rel,
                text,
                lang,
                role,
            })
        })
        .collect();
    let mut out = Walked {
        skipped_large,
        skipped_binary,
        skipped_generated,
        skipped_budget,
        ..Walked::default()
    };
    for r in read {
        match r {
            Read::Kept(f) => {
                out.bytes += f.text.len();
                out.files.push(f);
            }
            Read::Binary => out.skipped_binary += 1,
            Read::Generated => out.skipped_generated += 1,
            Read::Unreadable => {}
        }
    }
    // Deterministic order whatever the walk's: ties in ranking break by path.
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    demote_minority_scripts(&mut out.files);
    Ok(out)
}

/// The order in which files claim the walk's byte budget: the project's code first,
/// third-party code last.
fn budget_rank(role: FileRole) -> u8 {
    match role {
        FileRole::Source => 0,
        FileRole::Test => 1,
        FileRole::Doc => 2,
        FileRole::Example => 3,
        FileRole::Other => 4,
        FileRole::Vendored => 5,
        FileRole::Declaration => 2,
    }
}

/// Name endings that mark machine-written files.
const GENERATED_SUFFIXES: [&str; 6] = [
    ".min.js",
    ".min.css",
    "_pb2.py",
    "_pb2_grpc.py",
    ".pb.go",
    ".lock",
];

fn is_generated_name(name: &str) -> bool {
    GENERATED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A generated-code marker in the first lines (the conventions of Go, protobuf, and most
/// code generators).
fn is_generated_text(text: &str) -> bool {
    text.lines().take(5).any(|l| {
        l.contains("@generated")
            || l.contains("DO NOT EDIT")
            || l.contains("Code generated by")
            || l.contains("AUTO-GENERATED FILE")
            || l.contains("autogenerated file")
    })
}

/// The names the project's own code is imported by: the first folder or module of each
/// source file's path, under `src/` or `lib/` when the code lives there (`sympy`,
/// `_pytest`, `pytest`, `flask`, `setup`).
pub fn top_level_modules(files: &[SourceFile]) -> HashSet<String> {
    files
        .iter()
        .filter(|f| f.role == FileRole::Source)
        .filter_map(|f| {
            let path = f
                .path
                .strip_prefix("src/")
                .or_else(|| f.path.strip_prefix("lib/"))
                .unwrap_or(&f.path);
            let first = path.split('/').next()?;
            let name = first.split('.').next().unwrap_or(first);
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_keeps_at_most_its_byte_budget_code_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::write(root.join("src/a.py"), "x = 1\n".repeat(100)).expect("write");
        std::fs::write(root.join("src/b.py"), "y = 2\n".repeat(100)).expect("write");
        std::fs::write(root.join("docs/guide.md"), "words\n".repeat(100)).expect("write");
        let all = walk(root).expect("walk");
        assert_eq!(all.files.len(), 3);
        assert_eq!(all.skipped_budget, 0);
        let capped = walk_capped(root, 1000).expect("walk");
        assert!(capped.bytes <= 1000, "{} bytes kept", capped.bytes);
        let kept: Vec<&str> = capped.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, vec!["src/a.py"]);
        assert_eq!(capped.skipped_budget, 2);
    }

    #[test]
    fn links_are_not_followed() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.py"), "x = 1\n").expect("write");
        std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env.py")).expect("link");
        std::os::unix::fs::symlink("/proc/self", dir.path().join("proc")).expect("link");
        let walked = walk(dir.path()).expect("walk");
        let kept: Vec<&str> = walked.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(kept, vec!["a.py"]);
    }
}
