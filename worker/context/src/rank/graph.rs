//! The reference graph between files and the two signals walked on it: the files the best
//! candidates use ([`ReferenceGraph::used_signal`]) and the files that use them
//! ([`ReferenceGraph::callers_signal`]), both by personalized PageRank
//! ([`personalized_pagerank`]) seeded by the best parsed candidates.

use std::collections::HashMap;

use crate::lexical::FileScan;
use crate::tags::FileTags;

/// Candidates whose references seed the graph walks.
pub const GRAPH_SEEDS: usize = 10;

/// Names defined in more files than this carry no information about which file is meant
/// (`__init__`, `run`, `get`), so they make no graph edges.
pub const MAX_DEFINERS: usize = 8;

/// Damping and iterations of both walks: half the mass moves each step, so what arrives
/// comes mostly from one or two steps away.
const DAMPING: f64 = 0.5;
const ITERATIONS: usize = 20;

/// Edges from each parsed file to the files defining the names it refers to (a call, a
/// type, an import, a base class), each name weighted 1/(number of files defining it);
/// only parsed files have outgoing edges.
#[derive(Debug)]
pub struct ReferenceGraph {
    /// `uses[i]`: (file `i` refers to, weight), sorted by target.
    uses: Vec<Vec<(usize, f64)>>,
    /// The same edges reversed: `used_by[j]` holds the files referring to `j`.
    used_by: Vec<Vec<(usize, f64)>>,
}

impl ReferenceGraph {
    /// Definitions come from the tags of parsed files and from the keyword scan of the
    /// others; references from parsed files only.
    pub fn build(scans: &[FileScan], parsed: &HashMap<usize, FileTags>) -> ReferenceGraph {
        let mut defined_by: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, s) in scans.iter().enumerate() {
            if parsed.contains_key(&i) {
                continue;
            }
            for d in &s.defs {
                let v = defined_by.entry(d.name.as_str()).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        for (&i, tags) in parsed {
            for d in &tags.definitions {
                let v = defined_by.entry(d.name.as_str()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        let mut uses: Vec<Vec<(usize, f64)>> = vec![Vec::new(); scans.len()];
        for (&i, tags) in parsed {
            let mut acc: HashMap<usize, f64> = HashMap::new();
            for r in &tags.references {
                if let Some(targets) = defined_by.get(r.as_str())
                    && targets.len() <= MAX_DEFINERS
                {
                    for &j in targets {
                        if j != i {
                            *acc.entry(j).or_insert(0.0) += 1.0 / targets.len() as f64;
                        }
                    }
                }
            }
            uses[i] = acc.into_iter().collect();
            uses[i].sort_by_key(|e| e.0);
        }
        ReferenceGraph::from_edges(uses)
    }

    /// A graph from its edges (`uses[i]` = (target, weight)).
    pub fn from_edges(uses: Vec<Vec<(usize, f64)>>) -> ReferenceGraph {
        let mut used_by: Vec<Vec<(usize, f64)>> = vec![Vec::new(); uses.len()];
        // Sources in increasing order, so each reversed list is sorted too.
        for (i, e) in uses.iter().enumerate() {
            for &(j, w) in e {
                used_by[j].push((i, w));
            }
        }
        ReferenceGraph { uses, used_by }
    }

    /// The walks' restart weights: the best parsed candidates (`to_parse`, best first),
    /// their preliminary score squared so the strongest matches dominate.
    pub fn seeds(&self, to_parse: &[usize], prelim: &[f64]) -> Vec<f64> {
        let mut seeds = vec![0.0; self.uses.len()];
        for &i in to_parse.iter().take(GRAPH_SEEDS) {
            seeds[i] = prelim[i] * prelim[i];
        }
        seeds
    }

    /// What the best candidates use: rank mass that flowed along references, divided by
    /// √(in-degree), normalized to the best file. Hubs (the base class every module uses)
    /// collect mass from every candidate; what matters is mass from few, relevant files.
    pub fn used_signal(&self, seeds: &[f64]) -> Vec<f64> {
        let spread = personalized_pagerank(&self.uses, seeds, DAMPING, ITERATIONS);
        let per_source = self.used_by.iter().map(Vec::len);
        super::normalize_floor(damp_by_degree(spread, per_source), 0.0)
    }

    /// What uses the best candidates: the same walk on the reversed edges, divided by
    /// √(the file's own out-degree), normalized to the best file. A bug reported against an
    /// API is often fixed in the code that calls it (hugo's `content_map_page.go` builds the
    /// pages whose methods the issue names; lombok's `HandleSuperBuilder.java` calls the
    /// helpers that generate what an issue's `@SuperBuilder` output shows), and a candidate
    /// that uses several other candidates is where their names meet. Only parsed files
    /// refer to anything, so this re-ranks the parsed candidates; a file referring to
    /// everything (a registry, a prelude) gains little per reference.
    pub fn callers_signal(&self, seeds: &[f64]) -> Vec<f64> {
        let spread = personalized_pagerank(&self.used_by, seeds, DAMPING, ITERATIONS);
        let out_degree = self.uses.iter().map(Vec::len);
        super::normalize_floor(damp_by_degree(spread, out_degree), 0.0)
    }
}

fn damp_by_degree(spread: Vec<f64>, degree: impl Iterator<Item = usize>) -> Vec<f64> {
    spread
        .into_iter()
        .zip(degree)
        .map(|(r, d)| r / (d.max(1) as f64).sqrt())
        .collect()
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
