//! Matching what the issue names by path against the repository's files: the suffix
//! index ([`PathIndex`]), the path-mention signal and the stack-trace signal.

use std::collections::HashMap;

use super::{DOTTED_MODULE, DOTTED_PACKAGE};
use crate::issue::Frame;
use crate::walk::SourceFile;

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
