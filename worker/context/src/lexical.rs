//! The fast lexical pass over every file: identifier tokenizing, splitting of
//! camelCase/snake_case, a keyword scan for definitions, and BM25.
//!
//! This pass runs at hundreds of MB/s (no parsing, no per-file hash maps): each file is
//! tokenized once, only the terms are counted, and names after definition keywords
//! (`def`, `class`, `fn`, `func`, `function`, ...) are recorded with their line, and in the
//! C-family languages the method shapes no keyword announces (`methods.rs`). Tree-sitter
//! later confirms and completes the definitions of the top candidates only.

use std::collections::HashMap;

use crate::tags::Definition;

mod methods;

/// Calls `f(word, byte_offset)` for every identifier-like word (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn for_each_word<'a>(text: &'a str, mut f: impl FnMut(&'a str, usize)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            f(&text[start..i], start);
        } else if c.is_ascii_digit() {
            // A number's tail (`123abc`) is not a word.
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
}

/// Split an identifier into its lowercase parts: `parseHTTPRequest_v2` gives
/// `parse`, `http`, `request`, `v2`.
pub fn split_identifier(word: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for_each_part(word, |p| parts.push(p.to_ascii_lowercase()));
    parts
}

/// Calls `f` with each part of an identifier as [`split_identifier`] splits it, as slices
/// of `word` (not lowercased), without allocating: the lexical pass runs it on every
/// compound word of the repository.
pub fn for_each_part<'a>(word: &'a str, mut f: impl FnMut(&'a str)) {
    for chunk in word.split('_').filter(|c| !c.is_empty()) {
        let b = chunk.as_bytes();
        let mut start = 0;
        for i in 1..b.len() {
            let (prev, cur) = (b[i - 1], b[i]);
            let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            let boundary = cur.is_ascii_uppercase()
                && (prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower));
            if boundary {
                f(&chunk[start..i]);
                start = i;
            }
        }
        f(&chunk[start..]);
    }
}

/// A fast, non-cryptographic hash for the short strings of the term map (the FxHash
/// scheme): SipHash would dominate the lexical pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(v)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Query term → index, with [`FxHasher`].
pub type TermMap = HashMap<String, u32, std::hash::BuildHasherDefault<FxHasher>>;

/// The index terms of a word: itself lowercased, plus its parts when it has several (the
/// same scheme as the benchmark's BM25 baseline, so figures compare like for like).
pub fn terms_of(word: &str, out: &mut Vec<String>) {
    out.push(word.to_ascii_lowercase());
    let parts = split_identifier(word);
    if parts.len() > 1 {
        out.extend(parts);
    }
}

/// Keywords after which the next word on the line is a definition's name.
const DEF_KEYWORDS: &[&str] = &[
    "def",
    "class",
    "fn",
    "struct",
    "enum",
    "trait",
    "union",
    "func",
    "function",
    "interface",
    "type",
    "module",
    "record",
    "object",
    "macro_rules",
];

/// Words that may stand before a definition keyword on its line.
const MODIFIERS: &[&str] = &[
    "pub",
    "crate",
    "async",
    "export",
    "default",
    "public",
    "private",
    "protected",
    "static",
    "abstract",
    "final",
    "unsafe",
    "extern",
    "declare",
    "sealed",
    "open",
    "inline",
    "const",
    "override",
    "internal",
    "data",
    "case",
];

/// A definition found by the keyword scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexicalDef {
    pub name: String,
    /// 0-based line.
    pub line: usize,
}

/// The result of the lexical pass over one file.
#[derive(Debug, Clone, Default)]
pub struct FileScan {
    /// (query term index, count) for each query term present.
    pub term_counts: Vec<(u32, u32)>,
    /// Number of index terms in the document (BM25's length).
    pub length: u32,
    pub defs: Vec<LexicalDef>,
    /// The same counts per window of [`WINDOW_LINES`] lines: the fix is usually in one
    /// function, and a large file's BM25 over the whole file dilutes it.
    pub windows: Vec<FileScan>,
}

impl FileScan {
    /// Definitions from the keyword scan, for files not parsed: each runs to the line before
    /// the next definition of the same or a smaller indentation.
    pub fn definitions(&self, text: &str) -> Vec<Definition> {
        let lines: Vec<&str> = text.lines().collect();
        let indent = |l: usize| lines.get(l).map_or(0, |s| s.len() - s.trim_start().len());
        self.defs
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let end = self.defs[k + 1..]
                    .iter()
                    .find(|n| indent(n.line) <= indent(d.line))
                    .map_or(lines.len(), |n| n.line)
                    .saturating_sub(1)
                    .max(d.line);
                Definition {
                    name: d.name.clone(),
                    kind: "lexical".to_string(),
                    start_line: d.line,
                    end_line: end,
                }
            })
            .collect()
    }
}

/// Lines per window of the windowed BM25.
pub const WINDOW_LINES: usize = 60;

/// The bit of [`scan`]'s prefilter for a lowercase term.
fn filter_bit(term: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (term.first(), term.last()) else {
        return 0;
    };
    (term.len() * 31 + usize::from(first) * 7 + usize::from(last)) % 1024
}

/// (index, a - b) for each index where `a` exceeds `b`.
fn sparse_difference(a: &[u32], b: &[u32]) -> Vec<(u32, u32)> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x > y)
        .map(|(i, (x, y))| (i as u32, x - y))
        .collect()
}

/// Tokenize `path` and `text` once: count the query's terms and find definitions.
pub fn scan(path: &str, text: &str, query_terms: &TermMap) -> FileScan {
    // Dense counts: a query has a few hundred terms, cheaper than a map per file.
    let mut counts = vec![0u32; query_terms.len()];
    let mut length = 0u32;
    // Words whose length no query term has cannot match: skip the lookup.
    let (min_len, max_len) = query_terms.keys().fold((usize::MAX, 0), |(lo, hi), k| {
        (lo.min(k.len()), hi.max(k.len()))
    });
    // A bit set over (length, first letter, last letter) of the query terms rejects most
    // words before any hashing.
    let mut filter = [0u64; 16];
    for k in query_terms.keys() {
        let b = filter_bit(k.as_bytes());
        filter[b / 64] |= 1 << (b % 64);
    }
    let mut lower = String::new();
    let count_term = |term: &str, counts: &mut [u32]| {
        let b = filter_bit(term.as_bytes());
        if (min_len..=max_len).contains(&term.len())
            && filter[b / 64] & (1 << (b % 64)) != 0
            && let Some(&idx) = query_terms.get(term)
        {
            counts[idx as usize] += 1;
        }
    };
    let mut count_word = |w: &str, counts: &mut [u32], length: &mut u32| {
        *length += 1;
        let bytes = w.as_bytes();
        if bytes.iter().any(u8::is_ascii_uppercase) {
            lower.clear();
            lower.push_str(w);
            lower.make_ascii_lowercase();
            count_term(&lower, counts);
        } else {
            count_term(w, counts);
        }
        // Split only words that can have parts; most words are plain lowercase.
        let has_inner_upper = bytes.iter().skip(1).any(u8::is_ascii_uppercase);
        if has_inner_upper || w.trim_matches('_').contains('_') {
            let mut parts = 0;
            let mut part_lengths = 0u32;
            for_each_part(w, |_| parts += 1);
            if parts > 1 {
                for_each_part(w, |p| {
                    part_lengths += 1;
                    // Parts are slices of `w`: lowercase them into a small buffer.
                    let mut buf = [0u8; 64];
                    if p.len() <= buf.len() {
                        buf[..p.len()].copy_from_slice(p.as_bytes());
                        buf[..p.len()].make_ascii_lowercase();
                        if let Ok(lp) = std::str::from_utf8(&buf[..p.len()]) {
                            count_term(lp, counts);
                        }
                    }
                });
                *length += part_lengths;
            }
        }
    };
    for_each_word(path, |w, _| count_word(w, &mut counts, &mut length));

    let bytes = text.as_bytes();
    let mut defs = Vec::new();
    let mut line = 0usize;
    let mut line_pos = 0usize; // offset up to which newlines are counted
    let mut pending_keyword = false; // the previous word was a definition keyword
    let mut prev_end = 0usize;
    let mut only_modifiers = true; // every word so far on this line is a modifier
    // Windows of WINDOW_LINES lines: their counts are differences of the running counts.
    let mut windows = Vec::new();
    let mut window = 0usize;
    let mut window_start = (counts.clone(), length);
    let flush =
        |counts: &[u32], length: u32, start: &mut (Vec<u32>, u32), windows: &mut Vec<FileScan>| {
            if length > start.1 {
                windows.push(FileScan {
                    term_counts: sparse_difference(counts, &start.0),
                    length: length - start.1,
                    defs: Vec::new(),
                    windows: Vec::new(),
                });
            }
            start.0.copy_from_slice(counts);
            start.1 = length;
        };
    for_each_word(text, |w, off| {
        // Track lines lazily: only the gap since the previous word is searched.
        let gap = &bytes[line_pos..off];
        let newlines = gap.iter().filter(|&&b| b == b'\n').count();
        if newlines > 0 {
            line += newlines;
            only_modifiers = true;
            pending_keyword = false;
            if line / WINDOW_LINES != window {
                window = line / WINDOW_LINES;
                flush(&counts, length, &mut window_start, &mut windows);
            }
        }
        line_pos = off;
        count_word(w, &mut counts, &mut length);
        if pending_keyword {
            let between = &bytes[prev_end..off];
            if !between.is_empty()
                && between
                    .iter()
                    .all(|b| *b == b' ' || *b == b'\t' || *b == b'!')
            {
                defs.push(LexicalDef {
                    name: w.to_string(),
                    line,
                });
            }
            pending_keyword = false;
        }
        if only_modifiers {
            if DEF_KEYWORDS.contains(&w) {
                pending_keyword = true;
                only_modifiers = false;
            } else if !MODIFIERS.contains(&w) {
                only_modifiers = false;
            }
        }
        prev_end = off + w.len();
    });
    flush(&counts, length, &mut window_start, &mut windows);
    if let Some(family) = methods::Family::of_path(path) {
        methods::scan(family, text, &mut defs);
        defs.sort_by_key(|d| d.line);
        defs.dedup();
    }
    let term_counts = sparse_difference(&counts, &vec![0; counts.len()]);
    FileScan {
        term_counts,
        length,
        defs,
        windows,
    }
}

/// BM25 parameters (the usual defaults; the benchmark's baseline uses the same).
pub const BM25_K1: f64 = 1.2;
pub const BM25_B: f64 = 0.75;

/// BM25 scores of documents given their scans and the query's term weights (the number of
/// times each term occurs in the query, or any other weight).
pub fn bm25(scans: &[&FileScan], query_weights: &[f64]) -> Vec<f64> {
    let n = scans.len().max(1) as f64;
    let mut df = vec![0u32; query_weights.len()];
    let mut total_len = 0f64;
    for s in scans {
        total_len += f64::from(s.length);
        for &(t, _) in &s.term_counts {
            df[t as usize] += 1;
        }
    }
    let avg = (total_len / n).max(1.0);
    let idf: Vec<f64> = df
        .iter()
        .map(|&d| (1.0 + (n - f64::from(d) + 0.5) / (f64::from(d) + 0.5)).ln())
        .collect();
    scans
        .iter()
        .map(|s| {
            let len = f64::from(s.length);
            s.term_counts
                .iter()
                .map(|&(t, f)| {
                    let f = f64::from(f);
                    query_weights[t as usize] * idf[t as usize] * f * (BM25_K1 + 1.0)
                        / (f + BM25_K1 * (1.0 - BM25_B + BM25_B * len / avg))
                })
                .sum()
        })
        .collect()
}

/// In how many documents each query term occurs.
pub fn document_frequency(scans: &[FileScan], n_terms: usize) -> Vec<u32> {
    let mut df = vec![0u32; n_terms];
    for s in scans {
        for &(t, _) in &s.term_counts {
            df[t as usize] += 1;
        }
    }
    df
}

/// Inverse document frequency scaled to 0..=1: 1 for a term no file contains or only one
/// does, falling towards 0 for a term every file contains.
pub fn specificity(df: u32, n_docs: usize) -> f64 {
    let n = n_docs.max(2) as f64;
    let df = f64::from(df.max(1));
    ((n / df).ln() / n.ln()).clamp(0.0, 1.0)
}
