//! Speed report of the selector's phases on real repositories: the walk, the lexical pass
//! and tree-sitter parsing, in files/s and MB/s, on one thread and on all cores, and the
//! time per phase of whole selections.
//!
//! `cargo run --release -p fleet-context --example speed -- REPO [REPO...] [--issue FILE]`
//!
//! Parsing every file is what the selector avoids; it is measured here to show why.

use std::path::PathBuf;
use std::time::Instant;

use fleet_context::walk::{self, SourceFile};
use fleet_context::{SelectOptions, lexical, select, tags};
use rayon::prelude::*;

const DEFAULT_ISSUE: &str = "latex printing of Matrix is wrong\n\n`latex(Matrix([[1, 2]]))` \
    gives the wrong delimiters; the `mat_delim` setting of `LatexPrinter` is ignored.\n";

fn main() -> anyhow::Result<()> {
    let mut repos = Vec::new();
    let mut issue = DEFAULT_ISSUE.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--issue" {
            let path = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("--issue needs a file"))?;
            issue = std::fs::read_to_string(path)?;
        } else {
            repos.push(PathBuf::from(a));
        }
    }
    anyhow::ensure!(
        !repos.is_empty(),
        "usage: speed REPO [REPO...] [--issue FILE]"
    );
    let cores = rayon::current_num_threads();
    println!("cores: {cores}\n");
    println!("| repo | phase | threads | files | MB | seconds | files/s | MB/s |");
    println!("|---|---|---|---|---|---|---|---|");
    for repo in &repos {
        let name = repo
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let t = Instant::now();
        let walked = walk::walk(repo)?;
        let secs = t.elapsed().as_secs_f64();
        let files = &walked.files;
        row(&name, "walk + read", cores, files.len(), walked.bytes, secs);

        // The lexical pass with the issue's terms, as `select` runs it.
        let mut terms = lexical::TermMap::default();
        let mut buf = Vec::new();
        lexical::for_each_word(&issue, |w, _| {
            buf.clear();
            lexical::terms_of(w, &mut buf);
            for term in buf.drain(..) {
                let next = terms.len() as u32;
                terms.entry(term).or_insert(next);
            }
        });
        let all = (files.len(), walked.bytes);
        on_one_and_all_cores(&name, "lexical pass", cores, all, || {
            files
                .par_iter()
                .map(|f| lexical::scan(&f.path, &f.text, &terms))
                .collect::<Vec<_>>()
        })?;

        // Tree-sitter on every file that has a grammar.
        let parsable: Vec<&SourceFile> = files.iter().filter(|f| f.lang.is_some()).collect();
        let bytes: usize = parsable.iter().map(|f| f.text.len()).sum();
        let read = (parsable.len(), bytes);
        on_one_and_all_cores(&name, "tree-sitter (all files)", cores, read, || {
            parsable
                .par_iter()
                .filter_map(|f| tags::extract(f.lang?, &f.text).ok())
                .map(|t| t.definitions.len())
                .sum::<usize>()
        })?;

        // Whole selections: time per phase (median of 5).
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(select(repo, &issue, &SelectOptions::default())?);
        }
        runs.sort_by(|a, b| a.timings.total_ms.total_cmp(&b.timings.total_ms));
        let s = &runs[2];
        let tm = &s.timings;
        println!(
            "| {name} | select: walk {:.0} ms, lexical {:.0} ms, parse {:.0} ms ({} files, {:.1} MB), rank {:.0} ms, pack {:.0} ms | {cores} | {} | {:.1} | {:.3} | | |",
            tm.walk_ms,
            tm.lexical_ms,
            tm.parse_ms,
            s.stats.parsed_files,
            s.stats.parsed_bytes as f64 / 1e6,
            tm.rank_ms,
            tm.pack_ms,
            s.stats.files,
            s.stats.bytes as f64 / 1e6,
            tm.total_ms / 1000.0
        );
    }
    Ok(())
}

/// Times `work` (a phase over `files` files of `bytes` bytes together) in a pool of one
/// thread, then in one of `cores`: a row each.
fn on_one_and_all_cores<T: Send>(
    repo: &str,
    phase: &str,
    cores: usize,
    (files, bytes): (usize, usize),
    work: impl Fn() -> T + Sync,
) -> anyhow::Result<()> {
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let t = Instant::now();
        let out = pool.install(&work);
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(out);
        row(repo, phase, threads, files, bytes, secs);
    }
    Ok(())
}

fn row(repo: &str, phase: &str, threads: usize, files: usize, bytes: usize, secs: f64) {
    let mb = bytes as f64 / 1e6;
    println!(
        "| {repo} | {phase} | {threads} | {files} | {mb:.1} | {secs:.3} | {:.0} | {:.1} |",
        files as f64 / secs,
        mb / secs
    );
}
