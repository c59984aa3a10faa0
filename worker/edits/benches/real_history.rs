//! Benchmark: edit application on real history (issue 4), no LLM involved.
//!
//! Owns the measurement quoted in the crate README. From bare git mirrors it samples
//! non-merge commits that only modify existing UTF-8 text files, turns each commit's diff
//! into SEARCH/REPLACE blocks (zero-context hunks, neighbours merged, then context grown
//! until each SEARCH is unique in the file as the earlier blocks left it), renders them as
//! an LLM answer, perturbs that answer the way models do, parses it with `parse_blocks`,
//! applies it with `apply_with` to the pre-image materialized in a temp dir, and compares
//! the result with the post-image byte for byte. Every perturbation is measured with the
//! tolerant matcher and, in the same run, with the exact-only matcher as the baseline.
//!
//! ```text
//! cargo bench -p fleet-edits --bench real_history -- --mirrors /work/mirrors --commits 250
//! ```
//! Options: `--mirrors DIR` (each entry a bare repo, or a dir holding one), `--commits N`
//! (spread evenly over the repositories), `--seed S` (commit sampling), `--verbose`.
//! Fetched code is only read from the mirrors at run time; nothing is stored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use fleet_edits::{EditBlock, EditError, Matching, Policy, apply_with, parse_blocks};

/// Largest blob considered; larger files are "huge" and skipped.
const MAX_BLOB: usize = 1 << 20;
/// Most changed lines per commit; larger commits are skipped.
const MAX_CHANGED_LINES: usize = 2_000;
/// Most files per commit (the default policy's cap).
const MAX_FILES: usize = 20;
/// Hunks closer than this many unchanged lines are merged into one block.
const MERGE_GAP: usize = 6;
/// Initial context lines on each side of a hunk.
const CONTEXT: usize = 3;

struct Args {
    mirrors: PathBuf,
    commits: usize,
    seed: u64,
    verbose: bool,
    /// Debugging: measure only commits whose id starts with this.
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        mirrors: PathBuf::from("/work/mirrors"),
        commits: 250,
        seed: 4,
        verbose: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mirrors" => a.mirrors = it.next().expect("--mirrors DIR").into(),
            "--commits" => a.commits = it.next().expect("--commits N").parse().expect("a number"),
            "--seed" => a.seed = it.next().expect("--seed S").parse().expect("a number"),
            "--verbose" => a.verbose = true,
            "--only" => a.only = Some(it.next().expect("--only SHA-PREFIX")),
            // `cargo bench` passes `--bench`; libtest-style filters are ignored too.
            _ => {}
        }
    }
    a
}

fn git(git_dir: &Path) -> Command {
    let mut c = Command::new("git");
    // The user's and system's configuration (external diff drivers, diff algorithms) must
    // not change what is measured.
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(git_dir);
    c
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("git runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A `git cat-file --batch` process: one spawn per repository instead of one per blob.
struct Blobs {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Blobs {
    fn new(git_dir: &Path) -> Blobs {
        let mut child = git(git_dir)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git cat-file");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Blobs {
            child,
            stdin,
            stdout,
        }
    }

    fn get(&mut self, oid: &str) -> Vec<u8> {
        writeln!(self.stdin, "{oid}").unwrap();
        self.stdin.flush().unwrap();
        let mut header = String::new();
        self.stdout.read_line(&mut header).unwrap();
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cat-file: {header}"));
        let mut buf = vec![0; size + 1];
        self.stdout.read_exact(&mut buf).unwrap();
        buf.pop();
        buf
    }
}

impl Drop for Blobs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct FileCase {
    path: String,
    pre: String,
    post: String,
}

struct Case {
    repo: String,
    commit: String,
    files: Vec<FileCase>,
    blocks: Vec<EditBlock>,
}

/// Finds the bare repository of a mirror entry: the entry itself or a child of it.
fn git_dir_of(entry: &Path) -> Option<PathBuf> {
    let is_git = |p: &Path| p.join("HEAD").is_file() && p.join("objects").is_dir();
    if is_git(entry) {
        return Some(entry.to_path_buf());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(entry)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    children.sort();
    children.into_iter().find(|c| is_git(c))
}

/// Deterministic shuffle (xorshift64*), so a run is reproducible from `--seed`.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

fn split_lines(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let crlf = s.matches("\r\n").count() == s.matches('\n').count();
    let body = s.strip_suffix('\n').unwrap_or(s);
    body.split('\n')
        .map(|l| {
            if crlf {
                l.strip_suffix('\r').unwrap_or(l).to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Zero-context hunks of `git diff -U0`: (old start, old len, new start, new len), 0-based.
fn hunks(git_dir: &Path, old: &str, new: &str) -> Result<Vec<[usize; 4]>, &'static str> {
    let out = run(git(git_dir).args([
        "diff",
        "-U0",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        old,
        new,
    ]));
    let text = String::from_utf8_lossy(&out);
    if text.contains("\n\\ No newline at end of file") {
        // The block format is line-based: adding or removing a final newline is not
        // expressible, so such commits are outside the measured population.
        return Err("final-newline change");
    }
    let mut v = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("@@ ")) {
        let mut parts = line.split_whitespace().skip(1);
        let range = |p: Option<&str>| -> [usize; 2] {
            let p = &p.unwrap()[1..];
            let (s, n) = p.split_once(',').unwrap_or((p, "1"));
            let (s, n): (usize, usize) = (s.parse().unwrap(), n.parse().unwrap());
            // With a zero count, the start names the line *before* the empty range.
            [if n == 0 { s } else { s - 1 }, n]
        };
        let [os, on] = range(parts.next());
        let [ns, nn] = range(parts.next());
        v.push([os, on, ns, nn]);
    }
    Ok(v)
}

fn count_at(cur: &[String], needle: &[String]) -> usize {
    if needle.is_empty() || needle.len() > cur.len() {
        return usize::from(needle.is_empty());
    }
    cur.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Blocks reproducing `post` from `pre`: hunks merged when close, each SEARCH grown until
/// unique in the file as the earlier blocks left it. Returns `None` if the simulation does
/// not reproduce `post`: the one known cause is a commit that changes the line ending of
/// some lines (a CRLF file turning mixed), which line-based blocks cannot express since
/// answers are read without `\r`.
fn make_blocks(path: &str, pre: &str, post: &str, hs: &[[usize; 4]]) -> Option<Vec<EditBlock>> {
    let post_lines = split_lines(post);
    let mut merged: Vec<[usize; 4]> = Vec::new();
    for &h in hs {
        if let Some(last) = merged.last_mut()
            && h[0] <= last[0] + last[1] + MERGE_GAP
        {
            last[1] = h[0] + h[1] - last[0];
            last[3] = h[2] + h[3] - last[2];
            continue;
        }
        merged.push(h);
    }
    let mut cur = split_lines(pre);
    let mut delta: isize = 0;
    let mut blocks = Vec::new();
    for [os, on, ns, nn] in merged {
        let pos = (os as isize + delta) as usize;
        let new_lines = &post_lines[ns..ns + nn];
        let mut ctx = CONTEXT;
        let (a, b) = loop {
            let a = pos.saturating_sub(ctx);
            let b = (pos + on + ctx).min(cur.len());
            if (a == 0 && b == cur.len()) || (b > a && count_at(&cur, &cur[a..b]) == 1) {
                break (a, b);
            }
            ctx += 2;
        };
        let mut replace: Vec<String> = cur[a..pos].to_vec();
        replace.extend_from_slice(new_lines);
        replace.extend_from_slice(&cur[pos + on..b]);
        let join = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        blocks.push(EditBlock {
            path: path.to_string(),
            search: join(&cur[a..b]),
            replace: join(&replace),
        });
        cur.splice(pos..pos + on, new_lines.iter().cloned());
        delta += nn as isize - on as isize;
    }
    (cur == post_lines).then_some(blocks)
}

/// Looks at one commit; `Err` says why it is not in the sample.
fn examine(git_dir: &Path, blobs: &mut Blobs, commit: &str) -> Result<Case, &'static str> {
    let raw = run(git(git_dir).args([
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        "--no-commit-id",
        &format!("{commit}^"),
        commit,
    ]));
    let mut fields = raw.split(|&b| b == 0).filter(|f| !f.is_empty());
    let mut entries = Vec::new();
    while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
        let meta = String::from_utf8_lossy(meta);
        let m: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        if m.len() < 5 || m[4] != "M" {
            return Err("adds, deletes or renames files");
        }
        if m[0] != m[1] || !(m[0] == "100644" || m[0] == "100755") {
            return Err("mode change, symlink or submodule");
        }
        let path = String::from_utf8(path.to_vec()).map_err(|_| "non-UTF-8 path")?;
        entries.push((m[2].to_string(), m[3].to_string(), path));
    }
    if entries.is_empty() {
        return Err("no file modified");
    }
    if entries.len() > MAX_FILES {
        return Err("huge (files, lines or bytes)");
    }
    let mut files = Vec::new();
    let mut blocks = Vec::new();
    let mut changed = 0;
    for (old, new, path) in entries {
        let (pre, post) = (blobs.get(&old), blobs.get(&new));
        if pre.len() > MAX_BLOB || post.len() > MAX_BLOB {
            return Err("huge (files, lines or bytes)");
        }
        if pre.contains(&0) || post.contains(&0) {
            return Err("binary or non-UTF-8 file");
        }
        let (Ok(pre), Ok(post)) = (String::from_utf8(pre), String::from_utf8(post)) else {
            return Err("binary or non-UTF-8 file");
        };
        if pre.is_empty() {
            return Err("edits an empty file");
        }
        let hs = hunks(git_dir, &old, &new)?;
        changed += hs.iter().map(|h| h[1] + h[3]).sum::<usize>();
        if changed > MAX_CHANGED_LINES {
            return Err("huge (files, lines or bytes)");
        }
        blocks.extend(
            make_blocks(&path, &pre, &post, &hs)
                .ok_or("not expressible as blocks (line-ending change)")?,
        );
        files.push(FileCase { path, pre, post });
    }
    Ok(Case {
        repo: String::new(),
        commit: commit.to_string(),
        files,
        blocks,
    })
}

#[derive(Clone, Copy)]
struct Perturbation {
    name: &'static str,
    trailing_ws: bool,
    indent: Indent,
    fences: bool,
    crlf: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Indent {
    Keep,
    /// Four more spaces on every non-empty SEARCH and REPLACE line.
    Plus4,
    /// The common indentation of the block's non-blank lines removed from every line
    /// (the snippet starts at column 0).
    Dedent,
}

const PERTURBATIONS: [Perturbation; 7] = [
    Perturbation {
        name: "none (canonical answer)",
        trailing_ws: false,
        indent: Indent::Keep,
        fences: true,
        crlf: false,
    },
    Perturbation {
        name: "trailing whitespace on SEARCH lines",
        trailing_ws: true,
        indent: Indent::Keep,
        fences: true,
        crlf: false,
    },
    Perturbation {
        name: "indentation drift +4",
        trailing_ws: false,
        indent: Indent::Plus4,
        fences: true,
        crlf: false,
    },
    Perturbation {
        name: "indentation drift: dedented",
        trailing_ws: false,
        indent: Indent::Dedent,
        fences: true,
        crlf: false,
    },
    Perturbation {
        name: "missing fences",
        trailing_ws: false,
        indent: Indent::Keep,
        fences: false,
        crlf: false,
    },
    Perturbation {
        name: "CRLF answer",
        trailing_ws: false,
        indent: Indent::Keep,
        fences: true,
        crlf: true,
    },
    Perturbation {
        name: "all four combined (dedent)",
        trailing_ws: true,
        indent: Indent::Dedent,
        fences: false,
        crlf: true,
    },
];

fn lang(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "py" => "python",
        "rst" => "rst",
        "md" => "markdown",
        "toml" => "toml",
        "yml" | "yaml" => "yaml",
        "cfg" | "ini" => "ini",
        "txt" => "text",
        "js" => "javascript",
        "html" => "html",
        _ => "",
    }
}

/// Renders the blocks as a model's answer, with the perturbation applied to its text.
fn render(blocks: &[EditBlock], p: Perturbation) -> String {
    let mut s = String::from("Here are the changes.\n\n");
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            s.push_str("Next:\n\n");
        }
        let search: Vec<&str> = b.search.lines().collect();
        let replace: Vec<&str> = b.replace.lines().collect();
        let common = if p.indent == Indent::Dedent {
            common_indent(search.iter().chain(&replace).copied())
        } else {
            String::new()
        };
        let shift = |l: &str| -> String {
            match p.indent {
                Indent::Keep => l.to_string(),
                // A shift moves every line that has characters, whitespace-only ones
                // included; empty lines stay empty.
                Indent::Plus4 if l.is_empty() => String::new(),
                Indent::Plus4 => format!("    {l}"),
                Indent::Dedent => match l.strip_prefix(common.as_str()) {
                    Some(r) => r.to_string(),
                    None => l.trim_start().to_string(),
                },
            }
        };
        s.push_str(&b.path);
        s.push('\n');
        if p.fences {
            s.push_str(&format!("```{}\n", lang(&b.path)));
        }
        s.push_str("<<<<<<< SEARCH\n");
        for l in &search {
            s.push_str(&shift(l));
            if p.trailing_ws {
                s.push_str("  ");
            }
            s.push('\n');
        }
        s.push_str("=======\n");
        for l in &replace {
            s.push_str(&shift(l));
            s.push('\n');
        }
        s.push_str(">>>>>>> REPLACE\n");
        if p.fences {
            s.push_str("```\n");
        }
        s.push('\n');
    }
    s.push_str("These changes fix the issue.\n");
    if p.crlf {
        s = s.replace('\n', "\r\n");
    }
    s
}

fn common_indent<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut common: Option<&str> = None;
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let ws = &l[..l.len() - l.trim_start().len()];
        common = Some(match common {
            None => ws,
            Some(c) => {
                let n = c
                    .bytes()
                    .zip(ws.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &c[..n]
            }
        });
    }
    common.unwrap_or("").to_string()
}

#[derive(Default, Clone)]
struct Tally {
    ok: usize,
    failures: BTreeMap<&'static str, usize>,
    time: Duration,
}

fn attempt(
    case: &Case,
    answer: &str,
    matching: Matching,
    policy: &Policy,
    tally: &mut Tally,
) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in &case.files {
        let p = dir.path().join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.pre).unwrap();
    }
    let start = Instant::now();
    let result = parse_blocks(answer)
        .map_err(|e| ("parse error", e.to_string()))
        .and_then(|blocks| {
            apply_with(dir.path(), &blocks, policy, matching).map_err(|e| {
                let first = match e.errors()[0] {
                    EditError::Unmatched { .. } => "unmatched block",
                    EditError::Ambiguous { .. } => "ambiguous block",
                    EditError::Refused { .. } => "refused path",
                    _ => "other apply error",
                };
                (first, e.to_string())
            })
        });
    tally.time += start.elapsed();
    if let Err((kind, msg)) = result {
        *tally.failures.entry(kind).or_default() += 1;
        return Err(msg);
    }
    for f in &case.files {
        let got = std::fs::read(dir.path().join(&f.path)).unwrap();
        if got != f.post.as_bytes() {
            *tally.failures.entry("applied, wrong content").or_default() += 1;
            let got = String::from_utf8_lossy(&got);
            let at = got
                .split('\n')
                .zip(f.post.split('\n'))
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "{} differs from the post-image at line {}: got {:?}, expected {:?}",
                f.path,
                at + 1,
                got.split('\n').nth(at).unwrap_or(""),
                f.post.split('\n').nth(at).unwrap_or("")
            ));
        }
    }
    tally.ok += 1;
    Ok(())
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

fn main() {
    let args = args();
    let started = Instant::now();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&args.mirrors)
        .unwrap_or_else(|e| panic!("--mirrors {}: {e}", args.mirrors.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let repos: Vec<(String, PathBuf)> = entries
        .iter()
        .filter_map(|e| {
            Some((
                e.file_name()?.to_string_lossy().into_owned(),
                git_dir_of(e)?,
            ))
        })
        .collect();
    assert!(
        !repos.is_empty(),
        "no git mirrors under {}",
        args.mirrors.display()
    );
    let per_repo = args.commits.div_ceil(repos.len());

    let mut cases: Vec<Case> = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (name, git_dir) in &repos {
        let list = run(git(git_dir).args(["rev-list", "--no-merges", "HEAD"]));
        let mut commits: Vec<String> = String::from_utf8_lossy(&list)
            .lines()
            .map(str::to_string)
            .collect();
        let total = commits.len();
        shuffle(&mut commits, args.seed);
        let mut blobs = Blobs::new(git_dir);
        let mut taken = 0;
        for c in &commits {
            if taken == per_repo {
                break;
            }
            // Root commits have no parent to diff against.
            let has_parent = git(git_dir)
                .args(["rev-parse", "-q", "--verify", &format!("{c}^")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !has_parent {
                *skipped.entry("root commit").or_default() += 1;
                continue;
            }
            match examine(git_dir, &mut blobs, c) {
                Ok(mut case) => {
                    case.repo = name.clone();
                    cases.push(case);
                    taken += 1;
                }
                Err(why) => {
                    if args.verbose && why.starts_with("not expressible") {
                        println!("  [sampling] {name} {c}: {why}");
                    }
                    *skipped.entry(why).or_default() += 1
                }
            }
        }
        println!("{name}: {taken} commits sampled from {total} non-merge commits");
    }
    if let Some(only) = &args.only {
        cases.retain(|c| c.commit.starts_with(only.as_str()));
        for c in &cases {
            println!("{}", render(&c.blocks, PERTURBATIONS[0]));
        }
    }
    let n = cases.len();
    let nblocks: usize = cases.iter().map(|c| c.blocks.len()).sum();
    let nfiles: usize = cases.iter().map(|c| c.files.len()).sum();
    println!(
        "sample: {n} commits, {nfiles} files, {nblocks} blocks (skipped while sampling: {})",
        skipped
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The benchmark measures matching, not the caps.
    let policy = Policy {
        allow_workflow_edits: true,
        max_files: usize::MAX,
        max_bytes_changed: usize::MAX,
        allowed_paths: None,
        protected_paths: Vec::new(),
    };
    println!();
    println!("| perturbation | tolerant (`apply`) | exact-only baseline | tolerant / baseline |");
    println!("|---|---|---|---|");
    let mut details = Vec::new();
    let mut tolerant_time = Duration::ZERO;
    for p in PERTURBATIONS {
        let mut tol = Tally::default();
        let mut exact = Tally::default();
        for case in &cases {
            let answer = render(&case.blocks, p);
            if let Err(msg) = attempt(case, &answer, Matching::Tolerant, &policy, &mut tol)
                && args.verbose
            {
                println!("  [{}] {} {}: {msg}", p.name, case.repo, case.commit);
            }
            let _ = attempt(case, &answer, Matching::Exact, &policy, &mut exact);
        }
        tolerant_time += tol.time;
        let ratio = if exact.ok == 0 {
            "∞ (baseline 0)".to_string()
        } else {
            format!("{:.2}×", tol.ok as f64 / exact.ok as f64)
        };
        println!(
            "| {} | {}/{n} = {:.1} % | {}/{n} = {:.1} % | {ratio} |",
            p.name,
            tol.ok,
            pct(tol.ok, n),
            exact.ok,
            pct(exact.ok, n),
        );
        if !tol.failures.is_empty() {
            details.push(format!(
                "  {}: tolerant failures {:?}",
                p.name, tol.failures
            ));
        }
    }
    println!();
    for d in &details {
        println!("{d}");
    }
    println!(
        "tolerant parse+apply time: {:.1} ms per commit on average; whole run {:.1} s",
        tolerant_time.as_secs_f64() * 1000.0 / (n * PERTURBATIONS.len()).max(1) as f64,
        started.elapsed().as_secs_f64()
    );
}
