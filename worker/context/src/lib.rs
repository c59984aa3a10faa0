//! Context selection for the worker: rank a repository's files for an issue and pack the
//! most relevant code into a token budget, without an LLM and without any settings.
//!
//! The method, the weights and the measured figures are in this crate's README.
//!
//! # Pipeline
//! 1. [`walk`]: gitignore-aware walk reading every text file worth ranking.
//! 2. [`issue`]: what the issue names: paths, dotted modules, trace frames, identifiers.
//! 3. [`lexical`]: one fast pass over all files: BM25 term counts (per file and per
//!    60-line window) and a keyword scan for definitions.
//! 4. [`rank`]: signals per file combined; the best candidates (and the files their
//!    references lead to) are parsed with tree-sitter ([`tags`]) for exact definitions and
//!    the reference graph, which personalized PageRank uses to re-rank.
//! 5. [`pack`]: the packed context within the budget.
//!
//! # Layout
//! - `lib.rs`: the public API ([`select`], [`SelectOptions`], [`Selection`]) and the CLI
//!   ([`ContextArgs`], [`run_cli`]).
//! - [`languages`]: the language table (grammar, extensions, `queries/<lang>/tags.scm`).
//! - [`tags`]: tree-sitter parsing and tags extraction.
//! - [`walk`]: the repository walk and file roles (source, test, docs, ...).
//! - [`lexical`]: tokenizing, identifier splitting, definition keyword scan, BM25.
//! - [`issue`]: parsing of the issue text (mentions, stack traces, identifiers).
//! - [`noise`]: what the reporter's environment adds to an issue (package lists, session
//!   headers, calls into other libraries), blanked before the issue is read.
//! - [`rank`]: the ranking signals, their weights, and personalized PageRank.
//! - [`pack`]: token estimate and packing.

pub mod issue;
pub mod languages;
pub mod lexical;
pub mod noise;
pub mod pack;
pub mod rank;
pub mod tags;
pub mod walk;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::lexical::{FileScan, terms_of};
use crate::rank::{IdentMatcher, NameMatch, PathIndex, Signals};
use crate::tags::{Definition, FileTags};

/// `worker context` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ContextArgs {
    /// The repository folder (a git checkout or a plain folder).
    #[arg(long)]
    pub repo: PathBuf,
    /// A file holding the issue text (title and body).
    #[arg(long)]
    pub issue_file: PathBuf,
    /// Token budget of the packed context.
    #[arg(long, default_value_t = 16_000)]
    pub budget: usize,
    /// Output format: `json` (ranked files, included paths, timings) or `text` (the packed
    /// context as the LLM sees it, after a ranking summary).
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub format: String,
}

/// Options of [`select`].
#[derive(Debug, Clone)]
pub struct SelectOptions {
    /// Token budget of the packed context.
    pub budget: usize,
    /// How many ranked files to return.
    pub max_files: usize,
    /// How many of the best candidates to parse with tree-sitter before the graph step.
    pub parse_candidates: usize,
    /// Upper bound on the bytes parsed with tree-sitter (parsing runs at a few MB/s).
    pub parse_bytes: usize,
}

impl Default for SelectOptions {
    fn default() -> Self {
        SelectOptions {
            budget: 16_000,
            max_files: 100,
            parse_candidates: 20,
            parse_bytes: 3 * 1024 * 1024,
        }
    }
}

/// One ranked file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankedFile {
    pub path: String,
    pub score: f64,
    pub signals: Signals,
    /// The issue's identifiers this file defines, with how they matched: the "why".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<String>,
}

/// Time spent per phase, in milliseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    pub walk_ms: f64,
    pub lexical_ms: f64,
    pub parse_ms: f64,
    pub rank_ms: f64,
    pub pack_ms: f64,
    pub total_ms: f64,
}

/// Counts describing the work done.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub files: usize,
    pub bytes: usize,
    pub parsed_files: usize,
    pub parsed_bytes: usize,
    pub skipped_large: usize,
    pub skipped_binary: usize,
    pub skipped_generated: usize,
}

/// Ranked files and the packed context.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Selection {
    /// Best first.
    pub files: Vec<RankedFile>,
    /// Files whose code is in the packed context.
    pub included: Vec<String>,
    /// Files present in the context by their signatures only.
    pub signatures: Vec<String>,
    /// The context for the LLM prompt: `### path` headers and code.
    pub context: String,
    /// Estimated tokens of `context` (never above the budget).
    pub tokens: usize,
    pub budget: usize,
    pub timings: Timings,
    pub stats: Stats,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Rank the files of `repo` for the issue and pack a context. Blocking; parallel inside.
pub fn select(repo: &Path, issue_text: &str, options: &SelectOptions) -> anyhow::Result<Selection> {
    let start = Instant::now();
    let walked = walk::walk(repo)?;
    let mut timings = Timings {
        walk_ms: ms(start),
        ..Timings::default()
    };
    let files = &walked.files;
    let n = files.len();

    // The issue, and the query terms of BM25 (distinct terms, as in the benchmark's
    // baseline; weighted below).
    let t = Instant::now();
    // What the reporter's machine and other libraries contribute is blanked before any
    // word is read ([`noise`]); stack traces keep the original text, whose frames outside
    // the repository simply do not resolve.
    let trace_text = issue_text;
    let repo_modules = walk::top_level_modules(files);
    let cleaned = noise::blank_noise(issue_text, &|m| repo_modules.contains(m));
    let issue_text = cleaned.as_str();
    let mut idents = issue::identifiers(issue_text);
    // Functions named by stack-trace frames are code identifiers, whatever the text says.
    for f in issue::trace_frames(trace_text) {
        if let Some(func) = f.function {
            let e = idents.entry(func).or_insert(issue::IssueIdent {
                weight: 0.0,
                code_like: true,
                in_text: 0.0,
            });
            e.weight += issue::CODE_WEIGHT;
            e.code_like = true;
        }
    }
    let mut query_terms = lexical::TermMap::default();
    let mut buf = Vec::new();
    lexical::for_each_word(issue_text, |w, _| {
        buf.clear();
        terms_of(w, &mut buf);
        for term in buf.drain(..) {
            let next = query_terms.len() as u32;
            query_terms.entry(term).or_insert(next);
        }
    });
    let mut matcher = IdentMatcher::new(&idents);
    let scans: Vec<FileScan> = files
        .par_iter()
        .map(|f| lexical::scan(&f.path, &f.text, &query_terms))
        .collect();
    let df = lexical::document_frequency(&scans, query_terms.len());
    matcher.scale_weights(|name| {
        query_terms
            .get(&name.to_ascii_lowercase())
            .map_or(1.0, |&t| lexical::specificity(df[t as usize], n))
    });
    // Terms of the title weigh double: the title names the problem, the body is full of
    // incidental words (versions, greetings, the reporter's variables).
    let mut weights = vec![1.0; query_terms.len()];
    let title = issue_text.trim_start().lines().next().unwrap_or("");
    lexical::for_each_word(title, |w, _| {
        buf.clear();
        terms_of(w, &mut buf);
        for term in buf.drain(..) {
            if let Some(&t) = query_terms.get(&term) {
                weights[t as usize] = TITLE_TERM_WEIGHT;
            }
        }
    });
    let scan_refs: Vec<&FileScan> = scans.iter().collect();
    let bm25 = rank::normalize_floor(lexical::bm25(&scan_refs, &weights), 0.0);
    // Windowed BM25: all windows of all files form one collection; a file scores its best.
    let window_refs: Vec<&FileScan> = scans.iter().flat_map(|s| s.windows.iter()).collect();
    let window_scores = lexical::bm25(&window_refs, &weights);
    let mut best_window = vec![0.0f64; n];
    let mut k = 0;
    for (i, s) in scans.iter().enumerate() {
        for _ in &s.windows {
            best_window[i] = best_window[i].max(window_scores[k]);
            k += 1;
        }
    }
    let best_window = rank::normalize_floor(best_window, 0.0);
    let mut matches: Vec<Vec<(usize, NameMatch)>> = scans
        .par_iter()
        .map(|s| rank::file_matches(&matcher, s.defs.iter().map(|d| d.name.as_str())))
        .collect();
    let index = PathIndex::new(files);
    let frames = issue::trace_frames(trace_text);
    // Paths inside stack traces are the trace signal's, which knows their depth.
    let paths: Vec<String> = issue::path_mentions(issue_text)
        .into_iter()
        .filter(|m| !frames.iter().any(|f| f.path.ends_with(m.as_str())))
        .collect();
    let mentions = rank::mention_signal(&index, &paths, &issue::dotted_mentions(issue_text), n);
    let trace = rank::trace_signal(&index, &frames, n);
    let stem = rank::stem_signal(files, &idents);
    let literal = rank::literal_signal(files, &issue::literal_phrases(issue_text));
    let lexical_relevance: Vec<f64> = (0..n).map(|i| (bm25[i] + best_window[i]) / 2.0).collect();
    let tests = rank::tests_signal(files, &lexical_relevance);
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
        })
        .collect();
    let defs = rank::definition_signal(&matcher, &matches);
    for (s, d) in signals.iter_mut().zip(&defs) {
        s.definitions = *d;
    }
    timings.lexical_ms = ms(t);

    // Parse the best candidates with tree-sitter: exact definitions (methods, spans) and
    // references for the graph.
    let t = Instant::now();
    let prelim: Vec<f64> = (0..n)
        .map(|i| rank::combine(&signals[i], files[i].role))
        .collect();
    let order = ranked_order(&prelim);
    let mut to_parse = Vec::new();
    let mut parse_bytes = 0;
    for &i in &order {
        if to_parse.len() >= options.parse_candidates || prelim[i] <= 0.0 {
            break;
        }
        if files[i].lang.is_some() && parse_bytes + files[i].text.len() <= options.parse_bytes {
            parse_bytes += files[i].text.len();
            to_parse.push(i);
        }
    }
    let mut parsed: HashMap<usize, FileTags> = parse_files(files, &to_parse);
    timings.parse_ms = ms(t);

    // Tree-sitter's definitions replace the keyword scan's for the parsed files.
    let t = Instant::now();
    for (&i, tags) in &parsed {
        matches[i] = rank::file_matches(&matcher, tags.definitions.iter().map(|d| d.name.as_str()));
    }
    let defs = rank::definition_signal(&matcher, &matches);
    for (s, d) in signals.iter_mut().zip(&defs) {
        s.definitions = *d;
    }

    // The reference graph: parsed file → files defining the names it refers to, each name
    // weighted 1/(number of defining files), names defined in many files ignored.
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
    for (&i, tags) in &parsed {
        for d in &tags.definitions {
            let v = defined_by.entry(d.name.as_str()).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    let mut edges: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (&i, tags) in &parsed {
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
        edges[i] = acc.into_iter().collect();
        edges[i].sort_by_key(|e| e.0);
    }
    // Seeds: the best parsed candidates only, squared so the strongest matches dominate.
    let mut seeds = vec![0.0; n];
    for &i in to_parse.iter().take(GRAPH_SEEDS) {
        seeds[i] = prelim[i] * prelim[i];
    }
    // Hubs (the base class every module uses) collect rank from every candidate; what
    // matters is rank from few, relevant files, so divide by √(in-degree).
    let mut indegree = vec![0usize; n];
    for e in &edges {
        for &(j, _) in e {
            indegree[j] += 1;
        }
    }
    let spread: Vec<f64> = rank::personalized_pagerank(&edges, &seeds, 0.5, 20)
        .into_iter()
        .zip(&indegree)
        .map(|(r, &d)| r / (d.max(1) as f64).sqrt())
        .collect();
    let graph = rank::normalize_floor(spread, 0.0);
    for (s, g) in signals.iter_mut().zip(&graph) {
        s.graph = *g;
    }
    let scores: Vec<f64> = (0..n)
        .map(|i| rank::combine(&signals[i], files[i].role))
        .collect();
    let order = ranked_order(&scores);
    timings.rank_ms = ms(t);

    // Parse the top files not parsed yet (their spans make better excerpts), then pack.
    let t = Instant::now();
    let top: Vec<usize> = order
        .iter()
        .copied()
        .take(pack::MAX_CODE_FILES + pack::MAX_SIGNATURE_FILES)
        .collect();
    // Only files that may get excerpts; the others' signatures come from the keyword scan.
    let missing: Vec<usize> = top
        .iter()
        .copied()
        .take(pack::MAX_CODE_FILES)
        .filter(|i| !parsed.contains_key(i))
        .collect();
    let extra = parse_files(files, &missing);
    let parsed_more: usize = extra.keys().map(|&i| files[i].text.len()).sum();
    parse_bytes += parsed_more;
    parsed.extend(extra);
    let lexical_defs: HashMap<usize, Vec<Definition>> = top
        .iter()
        .filter(|i| !parsed.contains_key(i))
        .map(|&i| (i, lexical_definitions(&scans[i], &files[i].text)))
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
    let packed = pack::pack(&candidates, &matcher, options.budget);
    timings.pack_ms = ms(t);
    timings.total_ms = ms(start);

    let ranked = order
        .iter()
        .take(options.max_files)
        .filter(|&&i| scores[i] > 0.0)
        .map(|&i| RankedFile {
            path: files[i].path.clone(),
            score: (scores[i] * 1e4).round() / 1e4,
            signals: signals[i].clone(),
            matched: matches[i]
                .iter()
                .map(|&(k, m)| format!("{} ({m:?})", matcher.names[k]).to_lowercase())
                .collect(),
        })
        .collect();
    Ok(Selection {
        files: ranked,
        included: packed.included,
        signatures: packed.signatures,
        context: packed.text,
        tokens: packed.tokens,
        budget: options.budget,
        timings,
        stats: Stats {
            files: n,
            bytes: walked.bytes,
            parsed_files: parsed.len(),
            parsed_bytes: parse_bytes,
            skipped_large: walked.skipped_large,
            skipped_binary: walked.skipped_binary,
            skipped_generated: walked.skipped_generated,
        },
    })
}

/// Candidates whose references seed the graph walk.
const GRAPH_SEEDS: usize = 10;

/// BM25 weight of a query term that occurs in the issue's title (others weigh 1).
const TITLE_TERM_WEIGHT: f64 = 2.0;

/// Names defined in more files than this carry no information about which file is meant
/// (`__init__`, `run`, `get`), so they make no graph edges.
const MAX_DEFINERS: usize = 8;

/// Definitions from the keyword scan, for files not parsed: each runs to the line before
/// the next definition of the same or a smaller indentation.
fn lexical_definitions(scan: &FileScan, text: &str) -> Vec<Definition> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: usize| lines.get(l).map_or(0, |s| s.len() - s.trim_start().len());
    scan.defs
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let end = scan.defs[k + 1..]
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

/// Indices sorted by descending score, ties by index (the walk sorted files by path).
fn ranked_order(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Parse the given files in parallel; files without a grammar or that fail are left out.
fn parse_files(files: &[walk::SourceFile], which: &[usize]) -> HashMap<usize, FileTags> {
    which
        .par_iter()
        .filter_map(|&i| {
            let lang = files[i].lang?;
            tags::extract(lang, &files[i].text).ok().map(|t| (i, t))
        })
        .collect()
}

/// Definitions of a parsed file, for callers that want spans (the syntax gate, QuickFix).
pub fn definitions(lang: languages::Lang, source: &str) -> anyhow::Result<Vec<Definition>> {
    Ok(tags::extract(lang, source)?.definitions)
}

/// `worker context`: print the selection as JSON, or the packed context as text.
pub fn run_cli(args: &ContextArgs) -> anyhow::Result<()> {
    let issue = std::fs::read(&args.issue_file)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.issue_file.display()))?;
    let issue = String::from_utf8_lossy(&issue);
    let options = SelectOptions {
        budget: args.budget,
        ..SelectOptions::default()
    };
    let selection = select(&args.repo, &issue, &options)?;
    let text = render(&selection, &args.format)?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        // A reader that stops early (`| head`) is not an error of the selection.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The CLI's output: `json` is the whole [`Selection`] (the benchmark reads `files` and
/// `included`); `text` is a ranking summary followed by the packed context.
pub fn render(selection: &Selection, format: &str) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    match format {
        "json" => Ok(serde_json::to_string(selection)?),
        "text" => {
            let mut out = String::from("# Ranked files\n");
            for f in selection.files.iter().take(20) {
                writeln!(out, "{:>8.4}  {}", f.score, f.path)?;
            }
            writeln!(
                out,
                "\n# Context ({} of {} tokens, {} files in code, {} by signatures, {:.0} ms)\n",
                selection.tokens,
                selection.budget,
                selection.included.len(),
                selection.signatures.len(),
                selection.timings.total_ms
            )?;
            out.push_str(&selection.context);
            Ok(out)
        }
        other => anyhow::bail!("unknown format {other:?} (json or text)"),
    }
}
