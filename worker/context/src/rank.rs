//! Ranking signals and their combination. Each signal is a small function returning one
//! number per file; [`combine`] weighs them (weights documented on the constants), and the
//! reference graph ([`personalized_pagerank`]) spreads relevance from the best matches
//! to the files they use.

use std::collections::HashMap;

use crate::issue::{Frame, IssueIdent};
use crate::lexical::split_identifier;
use crate::walk::{FileRole, SourceFile};

/// An explicit path mention is the strongest evidence there is.
pub const W_PATH: f64 = 3.0;
/// A stack-trace frame in the file (innermost frame = 1, decaying outwards).
pub const W_TRACE: f64 = 2.0;
/// Definitions whose names the issue uses.
pub const W_DEF: f64 = 3.0;
/// BM25 over identifiers and words (normalized to the best file).
pub const W_BM25: f64 = 1.5;
/// BM25 of the file's best window of lines (normalized to the best window).
pub const W_WINDOW: f64 = 1.0;
/// The file's tests match the issue lexically (tests are demoted, but what they exercise is
/// not).
pub const W_TESTS: f64 = 1.0;
/// The file's name is a word of the issue (`latex.py` for "latex printing").
pub const W_STEM: f64 = 1.0;
/// A literal phrase of the issue (flag, error message) found verbatim in the file.
pub const W_LITERAL: f64 = 2.0;
/// Relevance spread by the reference graph.
pub const W_GRAPH: f64 = 0.25;

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

/// Multiplier by role: the code of the project is what issues are fixed in.
pub fn role_factor(role: FileRole) -> f64 {
    match role {
        FileRole::Source => 1.0,
        FileRole::Test => 0.35,
        FileRole::Example => 0.5,
        FileRole::Vendored => 0.4,
        FileRole::Doc => 0.25,
        FileRole::Other => 0.3,
    }
}

/// Index from path suffixes to files, for matching mentions and frames, which may be
/// absolute paths from another machine or bare file names.
#[derive(Debug)]
pub struct PathIndex {
    /// Full relative path → file.
    exact: HashMap<String, usize>,
    /// File name → files.
    by_name: HashMap<String, Vec<usize>>,
    paths: Vec<String>,
}

impl PathIndex {
    pub fn new(files: &[SourceFile]) -> PathIndex {
        let mut exact = HashMap::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            exact.insert(f.path.clone(), i);
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            by_name.entry(name).or_default().push(i);
        }
        PathIndex {
            exact,
            by_name,
            paths: files.iter().map(|f| f.path.clone()).collect(),
        }
    }

    /// Files a mentioned path refers to: the file whose path is the longest suffix of the
    /// mention (`/home/u/site-packages/sympy/core/basic.py` → `sympy/core/basic.py`), or,
    /// for a short mention, every file ending with it (`core/basic.py`, `basic.py`).
    pub fn resolve(&self, mention: &str) -> Vec<usize> {
        let mention = mention.trim_start_matches('/');
        if let Some(&i) = self.exact.get(mention) {
            return vec![i];
        }
        let name = mention.rsplit('/').next().unwrap_or(mention);
        let Some(same_name) = self.by_name.get(name) else {
            return Vec::new();
        };
        // Longest repository path that is a suffix of the mention, at a '/' boundary.
        let mut best: Vec<usize> = Vec::new();
        let mut best_len = 0;
        for &i in same_name {
            let p = &self.paths[i];
            if mention.ends_with(p.as_str())
                && (mention.len() == p.len()
                    || mention.as_bytes()[mention.len() - p.len() - 1] == b'/')
            {
                if p.len() > best_len {
                    best = vec![i];
                    best_len = p.len();
                } else if p.len() == best_len {
                    best.push(i);
                }
            }
        }
        if !best.is_empty() {
            return best;
        }
        // The mention is shorter than the paths: files ending with it.
        same_name
            .iter()
            .copied()
            .filter(|&i| {
                let p = &self.paths[i];
                p.ends_with(mention)
                    && (p.len() == mention.len()
                        || p.as_bytes()[p.len() - mention.len() - 1] == b'/')
            })
            .collect()
    }

    /// The file a dotted name refers to, trying its longest prefix first:
    /// `a.b.c.D` → `a/b/c.py`, `a/b/c/__init__.py`, `a/b.py`, ... Returns the file and
    /// whether it is a package's `__init__`.
    pub fn resolve_dotted(&self, parts: &[String]) -> Option<(usize, bool)> {
        for n in (1..=parts.len()).rev() {
            let base = parts[..n].join("/");
            for ext in ["py", "rs", "go", "js", "ts", "java"] {
                if let Some(&i) = self.exact.get(&format!("{base}.{ext}")) {
                    return Some((i, false));
                }
            }
            if n >= 2
                && let Some(&i) = self.exact.get(&format!("{base}/__init__.py"))
            {
                return Some((i, true));
            }
        }
        None
    }
}

/// Path-mention signal: 1 for an explicitly named file (shared when a bare name matches
/// several files), [`DOTTED_MODULE`] / [`DOTTED_PACKAGE`] for a resolved dotted name.
pub fn mention_signal(
    index: &PathIndex,
    paths: &[String],
    dotted: &[Vec<String>],
    n_files: usize,
) -> Vec<f64> {
    let mut s = vec![0.0; n_files];
    for p in paths {
        let hits = index.resolve(p);
        let share = 1.0 / hits.len().max(1) as f64;
        for i in hits {
            s[i] = f64::max(s[i], share);
        }
    }
    for d in dotted {
        // `self.x`, `np.array`: only names whose first part is a top-level folder or
        // module of the repository can be module paths; resolve_dotted checks that.
        if d.len() < 2 {
            continue;
        }
        if let Some((i, is_pkg)) = index.resolve_dotted(d) {
            let w = if is_pkg {
                DOTTED_PACKAGE
            } else {
                DOTTED_MODULE
            };
            s[i] = f64::max(s[i], w);
        }
    }
    s
}

/// Stack-trace signal: each frame in the repository scores 1 / (1 + depth / 2), where depth
/// counts only the frames found in the repository (library frames are skipped); the
/// outermost of them at least [`TRACE_OUTERMOST`].
pub fn trace_signal(index: &PathIndex, frames: &[Frame], n_files: usize) -> Vec<f64> {
    let mut s = vec![0.0; n_files];
    let mut resolved: Vec<(usize, usize)> = frames
        .iter()
        .filter_map(|f| {
            let hits = index.resolve(&f.path);
            (hits.len() == 1).then(|| (f.depth, hits[0]))
        })
        .collect();
    resolved.sort_unstable();
    // The outermost frame in the repository is the entry point the reporter called, where
    // a fix often belongs too (a wrong argument handed down).
    if let Some(&(_, outer)) = resolved.last() {
        s[outer] = TRACE_OUTERMOST;
    }
    for (rank, (_, file)) in resolved.into_iter().enumerate() {
        let w = 1.0 / (1.0 + rank as f64 / 2.0);
        s[file] = f64::max(s[file], w);
    }
    s
}

/// Trace signal of the outermost frame in the repository (the innermost has 1).
pub const TRACE_OUTERMOST: f64 = 0.75;

/// How a definition's name matches one of the issue's identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameMatch {
    Partial,
    Split,
    Exact,
}

impl NameMatch {
    pub fn weight(self) -> f64 {
        match self {
            NameMatch::Exact => MATCH_EXACT,
            NameMatch::Split => MATCH_SPLIT,
            NameMatch::Partial => MATCH_PARTIAL,
        }
    }
}

/// The issue's identifiers prepared for matching definition names.
#[derive(Debug)]
pub struct IdentMatcher {
    pub names: Vec<String>,
    pub weights: Vec<f64>,
    exact: HashMap<String, usize>,
    /// Split key (`is_zero` for `isZero`) → identifier.
    split: HashMap<String, usize>,
    /// Split keys of compound identifiers, matched as leading or trailing parts.
    partial: HashMap<String, usize>,
}

/// Shortest identifier matched against definitions.
pub const MIN_NAME_LEN: usize = 3;

impl IdentMatcher {
    pub fn new(idents: &HashMap<String, IssueIdent>) -> IdentMatcher {
        let mut names: Vec<(&String, &IssueIdent)> = idents.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = IdentMatcher {
            names: Vec::new(),
            weights: Vec::new(),
            exact: HashMap::new(),
            split: HashMap::new(),
            partial: HashMap::new(),
        };
        for (name, id) in names {
            // One- and two-letter names (`x`, `sp`, `df`) are local variables.
            if name.len() < MIN_NAME_LEN {
                continue;
            }
            let i = m.names.len();
            m.names.push(name.clone());
            // Repeated mentions count, but with diminishing returns.
            m.weights.push(id.weight.min(6.0).sqrt());
            m.exact.insert(name.clone(), i);
            let parts = split_identifier(name);
            let key = parts.join("_");
            // Only code-shaped identifiers match in other spellings or as parts: a prose
            // word like "order" would match half the code base as a part. And only
            // compound names match as parts: `symbols` is a part of too many names.
            if id.code_like && key.len() >= 4 {
                m.split.entry(key.clone()).or_insert(i);
                if parts.len() >= 2 {
                    m.partial.entry(key).or_insert(i);
                }
            }
        }
        m
    }

    /// Scale each identifier's weight by how specific it is to a few files of the
    /// repository (`f(name)` in 0..=1, e.g. a normalized IDF): `symbols` in a sympy issue
    /// names nothing in particular, `SeqFormula` does.
    pub fn scale_weights(&mut self, f: impl Fn(&str) -> f64) {
        for (w, name) in self.weights.iter_mut().zip(&self.names) {
            *w *= f(name);
        }
    }

    /// Match a definition name: exact, then the same words spelt differently, then the
    /// identifier as the leading or trailing words of the name.
    pub fn matches(&self, def_name: &str) -> Option<(usize, NameMatch)> {
        if let Some(&i) = self.exact.get(def_name) {
            return Some((i, NameMatch::Exact));
        }
        if self.split.is_empty() {
            return None;
        }
        let parts = split_identifier(def_name);
        if parts.is_empty() {
            return None;
        }
        if let Some(&i) = self.split.get(&parts.join("_")) {
            return Some((i, NameMatch::Split));
        }
        for k in 1..parts.len() {
            if let Some(&i) = self.partial.get(&parts[k..].join("_")) {
                return Some((i, NameMatch::Partial));
            }
            if let Some(&i) = self.partial.get(&parts[..parts.len() - k].join("_")) {
                return Some((i, NameMatch::Partial));
            }
        }
        None
    }
}

/// For one file: the best match of each identifier among its definition names.
pub fn file_matches<'a>(
    matcher: &IdentMatcher,
    def_names: impl Iterator<Item = &'a str>,
) -> Vec<(usize, NameMatch)> {
    let mut best: HashMap<usize, NameMatch> = HashMap::new();
    for name in def_names {
        if let Some((i, m)) = matcher.matches(name) {
            let e = best.entry(i).or_insert(m);
            if m > *e {
                *e = m;
            }
        }
    }
    let mut v: Vec<(usize, NameMatch)> = best.into_iter().collect();
    v.sort_unstable();
    v
}

/// Definition signal: for each identifier a file defines, the identifier's weight times
/// the match's weight, divided by √(number of files defining it) so that a name defined
/// once says more than a method every class has; summed with decay [`DEF_DECAY`]. Normalized by the best file, but never
/// by less than [`DEF_FLOOR`] so that weak evidence stays weak.
pub fn definition_signal(matcher: &IdentMatcher, per_file: &[Vec<(usize, NameMatch)>]) -> Vec<f64> {
    let mut defined_in = vec![0usize; matcher.names.len()];
    for m in per_file {
        for &(i, _) in m {
            defined_in[i] += 1;
        }
    }
    let raw: Vec<f64> = per_file
        .iter()
        .map(|m| {
            let mut parts: Vec<f64> = m
                .iter()
                .map(|&(i, kind)| {
                    matcher.weights[i] * kind.weight() / (defined_in[i] as f64).sqrt()
                })
                .collect();
            // Diminishing returns: a file defining many loosely matching names (a module
            // of math functions for an issue full of math) should not beat the file that
            // defines the one name that matters.
            parts.sort_by(|a, b| b.total_cmp(a));
            parts
                .iter()
                .enumerate()
                .map(|(k, p)| p * DEF_DECAY.powi(k as i32))
                .sum::<f64>()
                + 0.0
        })
        .collect();
    normalize_floor(raw, DEF_FLOOR)
}

/// Each further matching name of a file counts this much less than the previous one.
pub const DEF_DECAY: f64 = 0.5;

/// The raw definition score at which the signal saturates: two code identifiers, each
/// defined in a single file.
pub const DEF_FLOOR: f64 = 2.0;

/// How much an occurrence only in code counts for the file-name signal: snippets are full
/// of variables (`expr`, `app`, `path`) named like modules.
pub const STEM_CODE_ONLY: f64 = 0.25;

/// File-name signal: the file's stem (or its package's name for `__init__`/`mod`/`index`
/// files) is one of the issue's identifiers; shared among files with the same stem.
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
    stems
        .iter()
        .map(|s| match lower.get(s.as_str()) {
            Some(w) if s.len() >= 3 => w.min(2.0) / 2.0 / (count[s.as_str()] as f64).sqrt(),
            _ => 0.0,
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
        + W_GRAPH * s.graph)
        * role_factor(role)
}

/// Personalized PageRank over a weighted directed graph (`edges[i]` = (target, weight)),
/// restarting at `seeds` (any non-negative weights). Returns the rank mass that reached
/// each node by following edges, i.e. without the restart share, so that a seed does not
/// score merely for being a seed.
pub fn personalized_pagerank(
    edges: &[Vec<(usize, f64)>],
    seeds: &[f64],
    damping: f64,
    iterations: usize,
) -> Vec<f64> {
    let n = seeds.len();
    let total: f64 = seeds.iter().sum();
    if total <= 0.0 || n == 0 {
        return vec![0.0; n];
    }
    let restart: Vec<f64> = seeds.iter().map(|s| s / total).collect();
    let out_weight: Vec<f64> = edges
        .iter()
        .map(|e| e.iter().map(|(_, w)| w).sum())
        .collect();
    let mut rank = restart.clone();
    let mut spread = vec![0.0; n];
    for _ in 0..iterations {
        spread.iter_mut().for_each(|x| *x = 0.0);
        let mut dangling = 0.0;
        for (i, r) in rank.iter().enumerate() {
            if out_weight[i] > 0.0 {
                for &(j, w) in &edges[i] {
                    spread[j] += damping * r * w / out_weight[i];
                }
            } else {
                dangling += damping * r;
            }
        }
        for i in 0..n {
            // Mass with nowhere to go returns to the seeds.
            rank[i] = (1.0 - damping) * restart[i] + dangling * restart[i] + spread[i];
        }
    }
    spread
}

/// Phrases found in more files than this say nothing about where the problem is.
pub const MAX_LITERAL_FILES: usize = 5;

/// Literal signal: for each phrase found in at most [`MAX_LITERAL_FILES`] files of the
/// project's code (tests and docs not counted), the files holding it score
/// 1/√(that number); a file keeps its best phrase.
pub fn literal_signal(files: &[SourceFile], phrases: &[String]) -> Vec<f64> {
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
                s[i] = f64::max(s[i], 1.0 / (count[p].max(1) as f64).sqrt());
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
