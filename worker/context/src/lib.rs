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
//!    the reference graph, walked both ways by personalized PageRank to re-rank.
//! 5. [`pack`]: the packed context within the budget.
//!
//! # Layout
//! - `lib.rs`: the public API ([`select`], [`SelectOptions`], [`Selection`]) and the CLI
//!   ([`ContextArgs`], [`run_cli`]).
//! - [`languages`]: the language table (grammar, extensions, `queries/<lang>/tags.scm`).
//! - [`tags`]: tree-sitter parsing and tags extraction.
//! - [`walk`]: the repository walk; `walk/roles.rs` the file roles (source, test, docs, ...).
//! - [`lexical`]: tokenizing, identifier splitting, definition keyword scan, BM25.
//! - [`issue`]: parsing of the issue text (mentions, stack traces, identifiers).
//! - [`noise`]: what the reporter's environment adds to an issue (package lists, session
//!   headers, calls into other libraries), blanked before the issue is read.
//! - [`rank`]: the ranking signals and their weights; `rank/graph.rs` the reference graph
//!   and its two walks.
//! - `select`: the pipeline behind [`select`], one named step per phase.
//! - [`pack`]: token estimate and packing.

pub mod issue;
pub mod languages;
pub mod lexical;
pub mod noise;
pub mod pack;
pub mod rank;
mod select;
pub mod tags;
pub mod walk;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::rank::Signals;
use crate::tags::Definition;

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
    /// Where the file sits (source, test, doc, ...): its score includes the role's factor.
    pub role: crate::walk::FileRole,
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

/// Rank the files of `repo` for the issue and pack a context. Blocking; parallel inside.
/// The steps are in the `select` module.
pub fn select(repo: &Path, issue_text: &str, options: &SelectOptions) -> anyhow::Result<Selection> {
    select::select(repo, issue_text, options)
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
