//! Matching the issue's identifiers against definition names ([`IdentMatcher`],
//! [`NameMatch`]) and the definition signal built on those matches.

use std::collections::HashMap;

use super::{MATCH_EXACT, MATCH_PARTIAL, MATCH_SPLIT, normalize_floor};
use crate::issue::IssueIdent;
use crate::lexical::split_identifier;

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
