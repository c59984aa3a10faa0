//! Ranking signals and their combination. Each signal is a small function returning one
//! number per file; [`combine`] weighs them (weights documented on the constants). The
//! reference graph and its two walks (what the best matches use, what uses them) are in
//! `rank/graph.rs`, the path signals (mentions, trace frames) are in `rank/paths.rs`,
//! the definition-name matching in `rank/names.rs`, quoted keys in `rank/keys.rs`, locale
//! files in `rank/locales.rs`, packages in `rank/packages.rs`; re-exported here.

use std::collections::HashMap;

use crate::issue::IssueIdent;
use crate::walk::{FileRole, SourceFile};

mod graph;
mod keys;
mod locales;
mod names;
mod packages;
mod paths;
pub use graph::{ReferenceGraph, personalized_pagerank};
pub use keys::key_signal;
pub use names::{
    DEF_DECAY, DEF_FLOOR, IdentMatcher, MIN_NAME_LEN, NameMatch, definition_signal, file_matches,
};
pub use packages::{MANIFESTS, package_signal};
pub use paths::{PathIndex, TRACE_OUTERMOST, mention_signal, trace_signal};

/// An explicit path mention is the strongest evidence there is.
pub const W_PATH: f64 = 3.1;
/// A stack-trace frame in the file (innermost frame = 1, decaying outwards).
pub const W_TRACE: f64 = 2.25;
/// Definitions whose names the issue uses.
pub const W_DEF: f64 = 3.65;
/// BM25 over identifiers and words (normalized to the best file).
pub const W_BM25: f64 = 3.8;
/// BM25 of the file's best window of lines (normalized to the best window).
pub const W_WINDOW: f64 = 2.9;
/// The file's tests match the issue lexically (tests are demoted, but what they exercise is
/// not).
pub const W_TESTS: f64 = 1.2;
/// The file's name is a word of the issue (`latex.py` for "latex printing").
pub const W_STEM: f64 = 0.85;
/// A literal phrase of the issue (flag, error message) found verbatim in the file.
pub const W_LITERAL: f64 = 1.5;
/// Relevance spread by the reference graph to what the best candidates use.
pub const W_GRAPH: f64 = 1.85;
/// Relevance spread back to the parsed files that use the best candidates.
pub const W_CALLERS: f64 = 0.85;
/// A code-like name of the issue quoted in the file (`case "sign_with_root":`).
pub const W_KEYS: f64 = 0.3;
/// The file's size (log scale), among files with any lexical match: the code a project's
/// bugs are fixed in is mostly its large core files (`src/diff/index.js`, `tree.go`).
pub const W_SIZE: f64 = 1.3;
/// The file is in the root package or in a nested package the issue names
/// (`rank/packages.rs`).
pub const W_PACKAGE: f64 = 1.5;

/// Score weight of a dotted module mention that resolves to a module file
/// (`sympy.printing.latex` → `sympy/printing/latex.py`), relative to a path mention.
pub const DOTTED_MODULE: f64 = 0.35;
/// Same for a package (`__init__.py`): packages are often named in imports only.
pub const DOTTED_PACKAGE: f64 = 0.15;

/// Exact name match of a definition.
pub const MATCH_EXACT: f64 = 1.0;
/// The same words in another spelling (`is_zero` / `isZero`).
pub const MATCH_SPLIT: f64 = 0.7;
/// The issue's word is a leading or trailing part of the name (`is_zero` in
/// `_eval_is_zero`).
pub const MATCH_PARTIAL: f64 = 0.3;

// The weights above were fitted by `bench/fit/fit.py` (softmax regression over the signals
// of the 287 issues of both dev splits, every repository's issues weighted 1/√(their
// number); W_PACKAGE and W_CALLERS, newer, each fitted into the others with them held:
// `fit.py fit --free package`, `--free callers`); its leave-one-repository-out figures are
// in the README. The role factors below
// are not fitted: they encode what a role means.

/// Multiplier by role: the code of the project is what issues are fixed in.
pub fn role_factor(role: FileRole) -> f64 {
    match role {
        FileRole::Source => 1.0,
        FileRole::Test => 0.35,
        FileRole::Example => 0.5,
        FileRole::Vendored => 0.4,
        FileRole::Doc => 0.25,
        FileRole::Other => 0.3,
        FileRole::Declaration => 0.5,
    }
}

/// How much an occurrence only in code counts for the file-name signal: snippets are full
/// of variables (`expr`, `app`, `path`) named like modules.
pub const STEM_CODE_ONLY: f64 = 0.25;

/// File-name signal: the file's stem (or its package's name for `__init__`/`mod`/`index`
/// files) is one of the issue's identifiers; shared among files with the same stem. A
/// locale file (`locale/hu.js`) also answers to its language's English name.
pub fn stem_signal(files: &[SourceFile], idents: &HashMap<String, IssueIdent>) -> Vec<f64> {
    let lower: HashMap<String, f64> = idents
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.in_text + STEM_CODE_ONLY * (v.weight - v.in_text),
            )
        })
        .fold(HashMap::new(), |mut m, (k, w)| {
            *m.entry(k).or_insert(0.0) += w;
            m
        });
    let stems: Vec<String> = files.iter().map(|f| stem_of(&f.path)).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in &stems {
        *count.entry(s.as_str()).or_insert(0) += 1;
    }
    // Locale files: the issue names the language, the file its code.
    let languages: HashMap<&str, f64> = lower
        .iter()
        .filter_map(|(word, w)| locales::code_of_language(word).map(|code| (code, *w)))
        .collect();
    let codes: Vec<Option<String>> = files
        .iter()
        .map(|f| locales::locale_code_of(&f.path).filter(|c| languages.contains_key(c.as_str())))
        .collect();
    let mut per_code: HashMap<&str, usize> = HashMap::new();
    for c in codes.iter().flatten() {
        *per_code.entry(c.as_str()).or_insert(0) += 1;
    }
    stems
        .iter()
        .zip(&codes)
        .map(|(s, code)| {
            let by_name = match lower.get(s.as_str()) {
                Some(w) if s.len() >= 3 => w.min(2.0) / 2.0 / (count[s.as_str()] as f64).sqrt(),
                _ => 0.0,
            };
            // A language's name is a rare, specific word: once in the title is enough.
            let by_locale = code.as_deref().map_or(0.0, |c| {
                (2.0 * languages[c]).min(1.0) / (per_code[c] as f64).sqrt()
            });
            by_name.max(by_locale)
        })
        .collect()
}

/// The lowercase name a file is known by: its stem, or its folder's name for files that
/// stand for their folder.
pub fn stem_of(path: &str) -> String {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    let stem = if matches!(stem, "__init__" | "mod" | "index" | "lib" | "main") {
        parts.next().unwrap_or(stem)
    } else {
        stem
    };
    stem.to_ascii_lowercase()
}

/// Divide by the maximum (or by `floor` when the maximum is smaller).
pub fn normalize_floor(v: Vec<f64>, floor: f64) -> Vec<f64> {
    let max = v.iter().copied().fold(0.0, f64::max).max(floor);
    if max <= 0.0 {
        return v;
    }
    v.into_iter().map(|x| x / max).collect()
}

/// The per-file signals, kept for the output and for tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Signals {
    pub path: f64,
    pub trace: f64,
    pub definitions: f64,
    pub bm25: f64,
    pub window: f64,
    pub stem: f64,
    pub tests: f64,
    pub literal: f64,
    pub graph: f64,
    pub callers: f64,
    pub keys: f64,
    pub size: f64,
    pub package: f64,
}

/// The weighted sum of the signals, times the role's factor.
pub fn combine(s: &Signals, role: FileRole) -> f64 {
    (W_PATH * s.path
        + W_TRACE * s.trace
        + W_DEF * s.definitions
        + W_BM25 * s.bm25
        + W_WINDOW * s.window
        + W_STEM * s.stem
        + W_TESTS * s.tests
        + W_LITERAL * s.literal
        + W_GRAPH * s.graph
        + W_CALLERS * s.callers
        + W_KEYS * s.keys
        + W_SIZE * s.size
        + W_PACKAGE * s.package)
        * role_factor(role)
}

/// Size signal: ln(1 + bytes) / ln(1 + the largest file's bytes), for files BM25 finds
/// anything in (a prior among relevant files, not a reason to rank an unrelated one).
pub fn size_signal(files: &[SourceFile], bm25: &[f64]) -> Vec<f64> {
    let largest = files.iter().map(|f| f.text.len()).max().unwrap_or(0);
    let scale = ((1 + largest) as f64).ln().max(1.0);
    files
        .iter()
        .zip(bm25)
        .map(|(f, &b)| {
            if b > 0.0 {
                ((1 + f.text.len()) as f64).ln() / scale
            } else {
                0.0
            }
        })
        .collect()
}

/// Phrases found in more files than this say nothing about where the problem is.
pub const MAX_LITERAL_FILES: usize = 5;

/// Literal signal: for each phrase found in at most [`MAX_LITERAL_FILES`] files of the
/// project's code (tests and docs not counted), the files holding it score
/// 1/√(that number); a file keeps its best phrase.
pub fn literal_signal(files: &[SourceFile], phrases: &[String]) -> Vec<f64> {
    rare_phrase_signal(files, phrases, &vec![1.0; phrases.len()])
}

/// [`literal_signal`] with a weight per phrase (a file keeps its best weight/√(files)).
pub fn rare_phrase_signal(files: &[SourceFile], phrases: &[String], weights: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    let mut s = vec![0.0; files.len()];
    if phrases.is_empty() {
        return s;
    }
    let Ok(ac) = aho_corasick::AhoCorasick::new(phrases) else {
        return s;
    };
    let found: Vec<Vec<usize>> = files
        .par_iter()
        .map(|f| {
            let mut hits: Vec<usize> = ac
                .find_overlapping_iter(f.text.as_str())
                .map(|m| m.pattern().as_usize())
                .collect();
            hits.sort_unstable();
            hits.dedup();
            hits
        })
        .collect();
    // Rarity counts the project's own code only: tests and docs repeat the flags and
    // messages they exercise or describe.
    let mut count = vec![0usize; phrases.len()];
    for (hits, f) in found.iter().zip(files) {
        if matches!(
            f.role,
            FileRole::Source | FileRole::Other | FileRole::Vendored
        ) {
            for &p in hits {
                count[p] += 1;
            }
        }
    }
    for (i, hits) in found.iter().enumerate() {
        for &p in hits {
            if count[p] <= MAX_LITERAL_FILES {
                s[i] = f64::max(s[i], weights[p] / (count[p].max(1) as f64).sqrt());
            }
        }
    }
    s
}

/// The name of the module a test file tests: `test_skipping.py`, `skipping_test.go`,
/// `skipping.test.ts`, `SkippingTest.java` → `skipping`.
pub fn tested_stem(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let stem = name.split('.').next()?.to_ascii_lowercase();
    let core = stem
        .strip_prefix("test_")
        .or_else(|| stem.strip_suffix("_test"))
        .or_else(|| stem.strip_suffix("_tests"))
        .or_else(|| stem.strip_suffix("test").filter(|s| !s.is_empty()))
        .or_else(|| stem.strip_prefix("test").filter(|s| !s.is_empty()))
        .or_else(|| {
            let parts: Vec<&str> = name.split('.').collect();
            (parts.len() >= 3 && matches!(parts[parts.len() - 2], "test" | "spec"))
                .then_some(stem.as_str())
        })?;
    (core.len() >= 3).then(|| core.to_string())
}

/// Test signal: each test file passes its lexical relevance (`relevance`, 0..1) to the
/// source files of the module it tests, shared among files with that name.
pub fn tests_signal(files: &[SourceFile], relevance: &[f64]) -> Vec<f64> {
    let mut by_stem: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.role == FileRole::Source {
            by_stem.entry(stem_of(&f.path)).or_default().push(i);
        }
    }
    let mut s = vec![0.0; files.len()];
    for (i, f) in files.iter().enumerate() {
        if f.role != FileRole::Test || relevance[i] <= 0.0 {
            continue;
        }
        let Some(targets) = tested_stem(&f.path).and_then(|t| by_stem.get(&t)) else {
            continue;
        };
        let share = relevance[i] / (targets.len() as f64).sqrt();
        for &j in targets {
            s[j] = f64::max(s[j], share);
        }
    }
    s
}
