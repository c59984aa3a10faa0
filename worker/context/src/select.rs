//! The selection pipeline behind [`crate::select`], one named step per phase: read the issue,
//! the lexical pass over every file, the first signals, choosing what to parse, refining
//! definitions with the parsed tags, the reference graph and its two walks, packing the top files,
//! and the ranked list. Each step takes what the previous ones produced and nothing else.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use crate::lexical::{self, FileScan, terms_of};
use crate::rank::{self, IdentMatcher, NameMatch, PathIndex, Signals};
use crate::tags::{self, Definition, FileTags};
use crate::walk::{self, SourceFile};
use crate::{RankedFile, SelectOptions, Selection, Stats, Timings, issue, noise, pack};

/// BM25 weight of a query term that occurs in the issue's title (others weigh 1).
const TITLE_TERM_WEIGHT: f64 = 2.0;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// See [`crate::select`].
pub(crate) fn select(
    repo: &Path,
    issue_text: &str,
    options: &SelectOptions,
) -> anyhow::Result<Selection> {
    let start = Instant::now();
    let walked = walk::walk(repo)?;
    let mut timings = Timings {
        walk_ms: ms(start),
        ..Timings::default()
    };
    let files = &walked.files;

    let t = Instant::now();
    let templates = noise::TemplateLines::read(repo);
    let query = IssueQuery::read(issue_text, files, &templates);
    let lexical = LexicalPass::run(files, &query);
    let (mut signals, mut matches) = first_signals(files, &query, &lexical);
    timings.lexical_ms = ms(t);

    // Parse the best candidates with tree-sitter: exact definitions (methods, spans) and
    // references for the graph.
    let t = Instant::now();
    let prelim = combined(files, &signals);
    let (to_parse, mut parse_bytes) = parse_candidates(files, &prelim, options);
    let mut parsed = parse_files(files, &to_parse);
    timings.parse_ms = ms(t);

    let t = Instant::now();
    refine_definitions(&lexical.matcher, &parsed, &mut matches, &mut signals);
    let graph = rank::ReferenceGraph::build(&lexical.scans, &parsed);
    let seeds = graph.seeds(&to_parse, &prelim);
    let (used, callers) = (graph.used_signal(&seeds), graph.callers_signal(&seeds));
    for (s, (u, c)) in signals.iter_mut().zip(used.iter().zip(&callers)) {
        s.graph = *u;
        s.callers = *c;
    }
    let scores = combined(files, &signals);
    let order = ranked_order(&scores);
    timings.rank_ms = ms(t);

    let t = Instant::now();
    let (packed, parsed_more) = pack_top(files, &lexical, &order, &mut parsed, options);
    parse_bytes += parsed_more;
    timings.pack_ms = ms(t);
    timings.total_ms = ms(start);

    let ranked = ranked_files(
        files,
        &order,
        &scores,
        &signals,
        &matches,
        &lexical.matcher,
        options,
    );
    Ok(Selection {
        files: ranked,
        included: packed.included,
        signatures: packed.signatures,
        context: packed.text,
        tokens: packed.tokens,
        budget: options.budget,
        timings,
        stats: Stats {
            files: files.len(),
            bytes: walked.bytes,
            parsed_files: parsed.len(),
            parsed_bytes: parse_bytes,
            skipped_large: walked.skipped_large,
            skipped_binary: walked.skipped_binary,
            skipped_generated: walked.skipped_generated,
        },
    })
}

/// What the issue asks about: its text with the noise blanked, its stack-trace frames, its
/// identifiers, and the query terms of BM25 with their weights.
struct IssueQuery {
    /// The issue with the reporter's environment blanked ([`noise`]).
    text: String,
    /// Frames of the original text: frames outside the repository simply do not resolve.
    frames: Vec<issue::Frame>,
    idents: HashMap<String, issue::IssueIdent>,
    /// Distinct terms, as in the benchmark's baseline.
    terms: lexical::TermMap,
    /// Per term: [`TITLE_TERM_WEIGHT`] for the title's terms, 1 for the others.
    weights: Vec<f64>,
}

impl IssueQuery {
    fn read(issue_text: &str, files: &[SourceFile], templates: &noise::TemplateLines) -> Self {
        // What the reporter's machine and other libraries contribute is blanked before any
        // word is read; stack traces keep the original text.
        let repo_modules = walk::top_level_modules(files);
        let text = noise::blank_noise(issue_text, &|m| repo_modules.contains(m), templates);
        let frames = issue::trace_frames(issue_text);
        let mut idents = issue::identifiers(&text);
        // Functions named by stack-trace frames are code identifiers, whatever the text says.
        for f in &frames {
            if let Some(func) = &f.function {
                let e = idents.entry(func.clone()).or_insert(issue::IssueIdent {
                    weight: 0.0,
                    code_like: true,
                    in_text: 0.0,
                });
                e.weight += issue::CODE_WEIGHT;
                e.code_like = true;
            }
        }
        let mut terms = lexical::TermMap::default();
        let mut buf = Vec::new();
        lexical::for_each_word(&text, |w, _| {
            buf.clear();
            terms_of(w, &mut buf);
            for term in buf.drain(..) {
                let next = terms.len() as u32;
                terms.entry(term).or_insert(next);
            }
        });
        // Terms of the title weigh double: the title names the problem, the body is full of
        // incidental words (versions, greetings, the reporter's variables).
        let mut weights = vec![1.0; terms.len()];
        let title = text.trim_start().lines().next().unwrap_or("");
        lexical::for_each_word(title, |w, _| {
            buf.clear();
            terms_of(w, &mut buf);
            for term in buf.drain(..) {
                if let Some(&t) = terms.get(&term) {
                    weights[t as usize] = TITLE_TERM_WEIGHT;
                }
            }
        });
        Self {
            text,
            frames,
            idents,
            terms,
            weights,
        }
    }
}

/// The one fast pass over all files: term counts and keyword-scanned definitions, BM25 per
/// file and per window, and the identifier matcher weighted by how specific each name is.
struct LexicalPass {
    scans: Vec<FileScan>,
    matcher: IdentMatcher,
    bm25: Vec<f64>,
    /// Windowed BM25: all windows of all files form one collection; a file scores its best.
    best_window: Vec<f64>,
}

impl LexicalPass {
    fn run(files: &[SourceFile], query: &IssueQuery) -> Self {
        let n = files.len();
        let mut matcher = IdentMatcher::new(&query.idents);
        let scans: Vec<FileScan> = files
            .par_iter()
            .map(|f| lexical::scan(&f.path, &f.text, &query.terms))
            .collect();
        let df = lexical::document_frequency(&scans, query.terms.len());
        matcher.scale_weights(|name| {
            query
                .terms
                .get(&name.to_ascii_lowercase())
                .map_or(1.0, |&t| lexical::specificity(df[t as usize], n))
        });
        let scan_refs: Vec<&FileScan> = scans.iter().collect();
        let bm25 = rank::normalize_floor(lexical::bm25(&scan_refs, &query.weights), 0.0);
        let window_refs: Vec<&FileScan> = scans.iter().flat_map(|s| s.windows.iter()).collect();
        let window_scores = lexical::bm25(&window_refs, &query.weights);
        let mut best_window = vec![0.0f64; n];
        let mut k = 0;
        for (i, s) in scans.iter().enumerate() {
            for _ in &s.windows {
                best_window[i] = best_window[i].max(window_scores[k]);
                k += 1;
            }
        }
        Self {
            scans,
            matcher,
            bm25,
            best_window: rank::normalize_floor(best_window, 0.0),
        }
    }
}

/// Which issue names each file defines.
type Matches = Vec<Vec<(usize, NameMatch)>>;

/// Every signal but the graph's, with definitions from the keyword scan.
fn first_signals(
    files: &[SourceFile],
    query: &IssueQuery,
    lexical: &LexicalPass,
) -> (Vec<Signals>, Matches) {
    let n = files.len();
    let text = query.text.as_str();
    let matches: Matches = lexical
        .scans
        .par_iter()
        .map(|s| rank::file_matches(&lexical.matcher, s.defs.iter().map(|d| d.name.as_str())))
        .collect();
    let index = PathIndex::new(files);
    // Paths inside stack traces are the trace signal's, which knows their depth.
    let paths: Vec<String> = issue::path_mentions(text)
        .into_iter()
        .filter(|m| !query.frames.iter().any(|f| f.path.ends_with(m.as_str())))
        .collect();
    let mentions = rank::mention_signal(&index, &paths, &issue::dotted_mentions(text), n);
    let trace = rank::trace_signal(&index, &query.frames, n);
    let stem = rank::stem_signal(files, &query.idents);
    let literal = rank::literal_signal(files, &issue::literal_phrases(text));
    let keys = rank::key_signal(files, &query.idents);
    let (bm25, best_window) = (&lexical.bm25, &lexical.best_window);
    let lexical_relevance: Vec<f64> = (0..n).map(|i| (bm25[i] + best_window[i]) / 2.0).collect();
    let tests = rank::tests_signal(files, &lexical_relevance);
    let size = rank::size_signal(files, bm25);
    let package = rank::package_signal(files, text, bm25);
    let mut signals: Vec<Signals> = (0..n)
        .map(|i| Signals {
            path: mentions[i],
            trace: trace[i],
            definitions: 0.0,
            bm25: bm25[i],
            window: best_window[i],
            stem: stem[i],
            tests: tests[i],
            literal: literal[i],
            graph: 0.0,
            callers: 0.0,
            keys: keys[i],
            size: size[i],
            package: package[i],
        })
        .collect();
    set_definitions(&lexical.matcher, &matches, &mut signals);
    (signals, matches)
}

fn set_definitions(matcher: &IdentMatcher, matches: &Matches, signals: &mut [Signals]) {
    let defs = rank::definition_signal(matcher, matches);
    for (s, d) in signals.iter_mut().zip(&defs) {
        s.definitions = *d;
    }
}

/// Each file's combined score.
fn combined(files: &[SourceFile], signals: &[Signals]) -> Vec<f64> {
    (0..files.len())
        .map(|i| rank::combine(&signals[i], files[i].role))
        .collect()
}

/// The best files with a grammar, within the candidate count and byte budget; and their bytes.
fn parse_candidates(
    files: &[SourceFile],
    prelim: &[f64],
    options: &SelectOptions,
) -> (Vec<usize>, usize) {
    let mut to_parse = Vec::new();
    let mut parse_bytes = 0;
    for i in ranked_order(prelim) {
        if to_parse.len() >= options.parse_candidates || prelim[i] <= 0.0 {
            break;
        }
        if files[i].lang.is_some() && parse_bytes + files[i].text.len() <= options.parse_bytes {
            parse_bytes += files[i].text.len();
            to_parse.push(i);
        }
    }
    (to_parse, parse_bytes)
}

/// Tree-sitter's definitions replace the keyword scan's for the parsed files.
fn refine_definitions(
    matcher: &IdentMatcher,
    parsed: &HashMap<usize, FileTags>,
    matches: &mut Matches,
    signals: &mut [Signals],
) {
    for (&i, tags) in parsed {
        matches[i] = rank::file_matches(matcher, tags.definitions.iter().map(|d| d.name.as_str()));
    }
    set_definitions(matcher, matches, signals);
}

/// Parses the top files not parsed yet (their spans make better excerpts), then packs them;
/// returns the packed context and the bytes parsed here.
fn pack_top(
    files: &[SourceFile],
    lexical: &LexicalPass,
    order: &[usize],
    parsed: &mut HashMap<usize, FileTags>,
    options: &SelectOptions,
) -> (pack::Packed, usize) {
    let top: Vec<usize> = order
        .iter()
        .copied()
        .take(pack::MAX_CODE_FILES + pack::MAX_SIGNATURE_FILES)
        .collect();
    // Only the files that may get long excerpts; the others' definitions (for the tail's
    // short excerpts and the signatures) come from the keyword scan.
    let missing: Vec<usize> = top
        .iter()
        .copied()
        .take(pack::MAIN_CODE_FILES)
        .filter(|i| !parsed.contains_key(i))
        .collect();
    let extra = parse_files(files, &missing);
    let parsed_more: usize = extra.keys().map(|&i| files[i].text.len()).sum();
    parsed.extend(extra);
    let lexical_defs: HashMap<usize, Vec<Definition>> = top
        .iter()
        .filter(|i| !parsed.contains_key(i))
        .map(|&i| (i, lexical.scans[i].definitions(&files[i].text)))
        .collect();
    let candidates: Vec<pack::Candidate<'_>> = top
        .iter()
        .map(|&i| pack::Candidate {
            path: &files[i].path,
            text: &files[i].text,
            definitions: parsed
                .get(&i)
                .map(|t| t.definitions.as_slice())
                .or_else(|| lexical_defs.get(&i).map(Vec::as_slice)),
        })
        .collect();
    (
        pack::pack(&candidates, &lexical.matcher, options.budget),
        parsed_more,
    )
}

/// The ranked list: best first, at most `max_files`, each with its signals and matches.
fn ranked_files(
    files: &[SourceFile],
    order: &[usize],
    scores: &[f64],
    signals: &[Signals],
    matches: &Matches,
    matcher: &IdentMatcher,
    options: &SelectOptions,
) -> Vec<RankedFile> {
    order
        .iter()
        .take(options.max_files)
        .filter(|&&i| scores[i] > 0.0)
        .map(|&i| RankedFile {
            path: files[i].path.clone(),
            score: (scores[i] * 1e4).round() / 1e4,
            role: files[i].role,
            signals: signals[i].clone(),
            matched: matches[i]
                .iter()
                .map(|&(k, m)| format!("{} ({m:?})", matcher.names[k]).to_lowercase())
                .collect(),
        })
        .collect()
}

/// Indices sorted by descending score, ties by index (the walk sorted files by path).
fn ranked_order(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Parse the given files in parallel; files without a grammar or that fail are left out.
fn parse_files(files: &[SourceFile], which: &[usize]) -> HashMap<usize, FileTags> {
    which
        .par_iter()
        .filter_map(|&i| {
            let lang = files[i].lang?;
            tags::extract(lang, &files[i].text).ok().map(|t| (i, t))
        })
        .collect()
}
