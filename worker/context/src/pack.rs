//! Packing the context for the LLM within a token budget: the most relevant code in full
//! (whole files when small, else the matching definitions with surrounding lines), short
//! excerpts of the files ranked 21–40, then the signatures of the files without code. Also
//! the token estimate used to stay within budget.

use crate::rank::IdentMatcher;
use crate::tags::Definition;

/// Estimate the tokens of `text` as a BPE tokenizer of the cl100k/o200k family counts them
/// (checked against tiktoken's cl100k in the tests, within 10 %). It follows that
/// tokenizer's pre-split into pieces (a letter run with at most one leading space or
/// symbol, up to three digits, a symbol run with its trailing line breaks, a whitespace
/// run) and charges each piece one token, more for long letter runs.
pub fn estimate_tokens(text: &str) -> usize {
    let b = text.as_bytes();
    let letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let mut tokens = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if letter(c)
            || (i + 1 < b.len()
                && letter(b[i + 1])
                && c != b'\n'
                && c != b'\r'
                && !c.is_ascii_digit())
        {
            // A letter run, with the one space or symbol before it.
            if !letter(c) {
                i += 1;
            }
            let start = i;
            while i < b.len() && letter(b[i]) {
                i += 1;
            }
            tokens += word_tokens(&b[start..i]);
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            tokens += (i - start).div_ceil(3);
        } else if c.is_ascii_whitespace() {
            let start = i;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            // The last space of a run joins the next word or symbol piece.
            let run = &b[start..i];
            let has_newline = run.iter().any(|&x| x == b'\n' || x == b'\r');
            if run.len() > 1 && i < b.len() && run[run.len() - 1] == b' ' {
                i -= 1;
                if has_newline && run[run.len() - 2] != b'\n' {
                    // Line break, then indentation.
                    tokens += 2;
                } else {
                    tokens += 1;
                }
            } else if !(run.len() == 1 && run[0] == b' ' && i < b.len()) {
                tokens += 1;
            }
        } else {
            // Symbols (with one leading space, consumed above), then trailing line breaks.
            let start = i;
            while i < b.len()
                && !b[i].is_ascii_alphanumeric()
                && !b[i].is_ascii_whitespace()
                && b[i] < 0x80
            {
                i += 1;
            }
            while i < b.len() && (b[i] == b'\n' || b[i] == b'\r') {
                i += 1;
            }
            let symbols = b[start..i]
                .iter()
                .filter(|&&x| x != b'\n' && x != b'\r')
                .count();
            tokens += symbols.div_ceil(SYMBOLS_PER_TOKEN);
        }
    }
    tokens
}

/// Symbols per token in a symbol run (`()`, `):`, `->`, `::` are single tokens).
const SYMBOLS_PER_TOKEN: usize = 2;
/// Letters per token in a long letter run.
const LETTERS_PER_TOKEN: usize = 7;

/// Tokens of a run of letters: common words are one token, long runs about one per
/// [`LETTERS_PER_TOKEN`] letters, camelCase humps split. Non-ASCII text costs about a
/// token per character.
fn word_tokens(w: &[u8]) -> usize {
    if w.iter().any(|&b| b >= 0x80) {
        return w.iter().filter(|&&b| b & 0xC0 != 0x80).count().max(1);
    }
    let humps = 1 + w
        .windows(2)
        .filter(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase())
        .count();
    humps.max(w.len().div_ceil(LETTERS_PER_TOKEN))
}

/// One file's contribution to the context.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub path: &'a str,
    pub text: &'a str,
    /// Definitions with spans, when the file was parsed.
    pub definitions: Option<&'a [Definition]>,
}

/// The packed context.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Packed {
    pub text: String,
    pub tokens: usize,
    /// Files whose code is in the context (whole or in part).
    pub included: Vec<String>,
    /// Files present by their signatures only.
    pub signatures: Vec<String>,
}

/// Share of the budget kept for signatures of the files after those given code.
pub const SIGNATURE_SHARE: f64 = 0.05;
/// Lines of context kept around a matching definition.
pub const CONTEXT_LINES: usize = 3;
/// Longest stretch of one definition taken (a class can span thousands of lines; its
/// matching methods are taken on their own).
pub const MAX_DEFINITION_LINES: usize = 80;
/// Shares of the remaining code budget for the best files: the first file gets most, yet
/// many files always fit.
pub const LEAD_SHARES: [f64; 3] = [0.3, 0.2, 0.15];
/// Files given a real share of the code budget: the fix is rarely outside the top 20.
pub const MAIN_CODE_FILES: usize = 20;
/// Files after those given a short excerpt each ([`TAIL_FILE_TOKENS`]): when the ranking
/// misses, the fix is most often just below the top 20 (ranks 21–40 on both dev splits),
/// and a file's matching definition's head there shows the LLM where to look.
pub const TAIL_CODE_FILES: usize = 20;
/// Files considered for code.
pub const MAX_CODE_FILES: usize = MAIN_CODE_FILES + TAIL_CODE_FILES;
/// The most a tail file's excerpt costs.
pub const TAIL_FILE_TOKENS: usize = 100;
/// Below this, a tail excerpt is not even a header and a definition's first line.
const MIN_TAIL_TOKENS: usize = 40;
/// Smallest excerpt worth including among the main files (a definition's head and some
/// context).
pub const MIN_FILE_TOKENS: usize = 150;
/// Files considered for signatures.
pub const MAX_SIGNATURE_FILES: usize = 30;

/// Pack `candidates` (best first) within `budget` tokens.
pub fn pack(candidates: &[Candidate<'_>], matcher: &IdentMatcher, budget: usize) -> Packed {
    let mut out = Packed::default();
    let code_budget = ((budget as f64) * (1.0 - SIGNATURE_SHARE)) as usize;
    let n_main = candidates.len().min(MAIN_CODE_FILES);
    let n_code = candidates.len().min(MAX_CODE_FILES);
    // The tail's excerpts are paid for first, so the main files cannot crowd them out; but
    // not out of the main files' smallest excerpts (a small budget goes to the best files).
    let reserve = ((n_code - n_main) * TAIL_FILE_TOKENS)
        .min(code_budget.saturating_sub(n_main * MIN_FILE_TOKENS));
    let main_budget = code_budget - reserve;
    let mut used = 0usize;
    // Files that got no code, for the signatures.
    let mut uncoded: Vec<&Candidate<'_>> = Vec::new();
    let mut next = 0;
    while next < n_main {
        let remaining = main_budget.saturating_sub(used);
        if remaining < MIN_FILE_TOKENS {
            break;
        }
        // The best files get large shares; the rest share what is left evenly (and what
        // a file leaves unused flows to the next ones).
        let cap = match LEAD_SHARES.get(next) {
            Some(share) if next + 1 < n_main => ((remaining as f64) * share) as usize,
            _ => remaining / (n_main - next),
        }
        .max(MIN_FILE_TOKENS.min(remaining));
        if !push_section(&mut out, &mut used, &candidates[next], matcher, cap) {
            uncoded.push(&candidates[next]);
        }
        next += 1;
    }
    // Short excerpts for the next files (from the first the main budget did not reach).
    while next < n_code {
        let cap = TAIL_FILE_TOKENS.min(code_budget.saturating_sub(used));
        if cap < MIN_TAIL_TOKENS {
            break;
        }
        if !push_section(&mut out, &mut used, &candidates[next], matcher, cap) {
            uncoded.push(&candidates[next]);
        }
        next += 1;
    }
    let for_signatures = uncoded.into_iter().chain(&candidates[next..]);
    // Signatures of the files without code, one block per file while they fit.
    for c in for_signatures.take(MAX_SIGNATURE_FILES) {
        let sigs = signatures(c);
        if sigs.is_empty() {
            continue;
        }
        let block = format!("### {} (signatures)\n{}\n", c.path, sigs.join("\n"));
        let cost = estimate_tokens(&block);
        if used + cost > budget {
            // A shorter version: the first signatures only.
            let mut short = format!("### {} (signatures)\n", c.path);
            for s in &sigs {
                if used + estimate_tokens(&short) + estimate_tokens(s) + 2 > budget {
                    break;
                }
                short.push_str(s);
                short.push('\n');
            }
            if short.lines().count() > 1 && used + estimate_tokens(&short) <= budget {
                out.text.push_str(&short);
                out.signatures.push(c.path.to_string());
            }
            break;
        }
        used += cost;
        out.text.push_str(&block);
        out.signatures.push(c.path.to_string());
    }
    out.tokens = estimate_tokens(&out.text);
    out
}

/// Appends `c`'s section within `cap` tokens to the context; false if not even its header
/// and a line fit.
fn push_section(
    out: &mut Packed,
    used: &mut usize,
    c: &Candidate<'_>,
    matcher: &IdentMatcher,
    cap: usize,
) -> bool {
    let Some(section) = file_section(c, matcher, cap) else {
        return false;
    };
    *used += estimate_tokens(&section);
    out.text.push_str(&section);
    out.included.push(c.path.to_string());
    true
}

/// A file's section within `cap` tokens: the whole file if it fits, else the definitions
/// that match the issue (with a few lines around), else its head; `None` if not even a
/// header and a line fit.
fn file_section(c: &Candidate<'_>, matcher: &IdentMatcher, cap: usize) -> Option<String> {
    let whole = format!("### {}\n{}\n", c.path, c.text.trim_end());
    if estimate_tokens(&whole) <= cap {
        return Some(whole);
    }
    let lines: Vec<&str> = c.text.lines().collect();
    let mut ranges: Vec<(usize, usize, f64)> = Vec::new(); // start, end (exclusive), priority
    if let Some(defs) = c.definitions {
        for d in defs {
            if let Some((i, m)) = matcher.matches(&d.name) {
                let end = (d.end_line + 1).min(d.start_line + MAX_DEFINITION_LINES);
                ranges.push((
                    d.start_line.saturating_sub(CONTEXT_LINES),
                    (end + CONTEXT_LINES).min(lines.len()),
                    matcher.weights[i] * m.weight(),
                ));
            }
        }
    }
    // The head of the file (imports, module doc) orients the reader.
    ranges.push((0, 20.min(lines.len()), 0.5));
    // Best first; then pick while they fit, and print in file order.
    ranges.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    let header = format!("### {} (excerpts)\n", c.path);
    let mut cost = estimate_tokens(&header);
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    for (s, e, _) in ranges {
        let covered = chosen.iter().any(|&(cs, ce)| cs <= s && e <= ce);
        if covered || s >= e {
            continue;
        }
        let piece: usize = lines[s..e]
            .iter()
            .map(|l| estimate_tokens(l) + 1)
            .sum::<usize>()
            + 2;
        if cost + piece <= cap {
            cost += piece;
            chosen.push((s, e));
        } else {
            // Take the start of a definition that does not fit whole.
            let mut e2 = s;
            let mut c2 = 2;
            while e2 < e && cost + c2 + estimate_tokens(lines[e2]) < cap {
                c2 += estimate_tokens(lines[e2]) + 1;
                e2 += 1;
            }
            if e2 > s + 2 {
                cost += c2;
                chosen.push((s, e2));
            }
        }
    }
    if chosen.is_empty() {
        return None;
    }
    chosen.sort_unstable();
    // Merge overlapping or touching ranges.
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in chosen {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut section = header;
    for (k, (s, e)) in merged.iter().enumerate() {
        if k > 0 || *s > 0 {
            section.push_str("⋮\n");
        }
        for l in &lines[*s..*e] {
            section.push_str(l);
            section.push('\n');
        }
    }
    if merged.last().is_some_and(|&(_, e)| e < lines.len()) {
        section.push_str("⋮\n");
    }
    // The estimate of the whole may differ from the sum of its lines (pieces join across
    // line ends): drop whole lines from the end until it fits, estimating once per line.
    let mut total = estimate_tokens(&section);
    while total > cap {
        let cut = section[..section.len() - 1].rfind('\n')?;
        total = total.saturating_sub(estimate_tokens(&section[cut + 1..]));
        section.truncate(cut + 1);
        if total <= cap {
            // Confirm with the exact estimate of what is left.
            total = estimate_tokens(&section);
        }
    }
    Some(section)
}

/// The first line of each definition (or of each lexical definition line when the file
/// was not parsed), trimmed of trailing `{`/`:`.
fn signatures(c: &Candidate<'_>) -> Vec<String> {
    let lines: Vec<&str> = c.text.lines().collect();
    let mut out = Vec::new();
    if let Some(defs) = c.definitions {
        for d in defs {
            if d.kind == "constant" {
                continue;
            }
            if let Some(l) = lines.get(d.start_line) {
                out.push(l.trim_end().trim_end_matches('{').trim_end().to_string());
            }
        }
    }
    out
}
