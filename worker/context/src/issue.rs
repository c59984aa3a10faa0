//! What the issue text says, read without any knowledge of the repository: mentioned
//! paths and dotted module names, stack-trace frames, and identifiers with weights.
//! Matching these against the repository's files is `rank`'s job. The stack-trace
//! formats are read in `issue/trace.rs`.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::lexical::for_each_word;

mod trace;
pub use trace::{Frame, trace_frames};

/// Extensions a path mention may end with.
const MENTION_EXTENSIONS: &str = "py|pyi|pyx|rs|js|mjs|cjs|jsx|ts|mts|cts|tsx|go|java|kt|scala|c|h|cc|cpp|cxx|hpp|cs|rb|php|swift|toml|cfg|ini|yaml|yml|json|md|rst|txt|html|css|sh";

/// A regex compiled once, on first use.
pub(crate) fn re(cell: &'static OnceLock<Regex>, src: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(src).expect("static regex"))
}

/// The matches of `regex` in `text` that are not glued to the word before them: the byte
/// before is neither a letter, a digit or `_`, nor one of `glue` (`x.os.path` has no chain
/// headed by `os` when `glue` holds `.`).
pub(crate) fn unglued_matches<'t>(
    regex: &Regex,
    text: &'t str,
    glue: &'static [u8],
) -> impl Iterator<Item = regex::Match<'t>> {
    let bytes = text.as_bytes();
    regex.find_iter(text).filter(move |m| {
        m.start() == 0 || {
            let prev = bytes[m.start() - 1];
            !(prev.is_ascii_alphanumeric() || prev == b'_' || glue.contains(&prev))
        }
    })
}

/// Paths and file names mentioned in the text (`sympy/core/basic.py`, `basic.py`,
/// `C:\x\y.rs`), normalized to `/` separators, in order of first appearance, deduplicated.
pub fn path_mentions(text: &str) -> Vec<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &RE,
        &format!(r"(?:[A-Za-z]:)?[A-Za-z0-9_.~/\\-]*[A-Za-z0-9_]\.(?:{MENTION_EXTENSIONS})\b"),
    );
    let mut out: Vec<String> = Vec::new();
    for m in re.find_iter(text) {
        // Not part of a longer dotted word (`basic.pyx_thing`, `obj.py.attr`).
        let after = text[m.end()..].chars().next();
        if after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let found = match url_path(text, m.start(), m.end()) {
            Some(Some(in_repository)) => in_repository,
            Some(None) => continue,
            None => m.as_str().to_string(),
        };
        let p = found.replace('\\', "/");
        let p = p.trim_start_matches("./").to_string();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// A path found in a URL: `Some(path in the repository)` for a view of a repository's file
/// (`github.com/o/r/blob/main/src/x.rs` → `src/x.rs`), `Some(None)` for any other URL (a
/// playground's `?file=/src/index.js`, a blog's `/posts/a.js`: the reporter's or a website's
/// file), `None` when the match is not in a URL.
fn url_path(text: &str, start: usize, end: usize) -> Option<Option<String>> {
    let token_start = text[..start]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || "([<\"'`".contains(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let token = &text[token_start..end];
    let scheme = token.find("://")?;
    let after_host = &token[scheme + 3..];
    for view in ["/blob/", "/tree/", "/raw/"] {
        if let Some(at) = after_host.find(view) {
            // Skip the ref (one segment: branches with slashes lose their head, which the
            // suffix match of the path index forgives).
            let rest = &after_host[at + view.len()..];
            return Some(rest.split_once('/').map(|(_, path)| path.to_string()));
        }
    }
    Some(None)
}

/// Dotted names that may be module paths (`sympy.core.basic`, `flask.json.provider`),
/// with at least two components, deduplicated in order of appearance.
pub fn dotted_mentions(text: &str) -> Vec<Vec<String>> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = re(
        &RE,
        r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+",
    );
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in re.find_iter(text) {
        let parts: Vec<String> = m.as_str().split('.').map(str::to_string).collect();
        if !out.contains(&parts) {
            out.push(parts);
        }
    }
    out
}

/// Where an identifier was seen, which says how much it is worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IssueIdent {
    /// Summed occurrence weights (see [`identifiers`]).
    pub weight: f64,
    /// Seen in code (backticks, a fenced block, a REPL line) or shaped like code.
    pub code_like: bool,
    /// The part of `weight` from occurrences in running text (not in code blocks or
    /// spans): a word the reporter writes about, rather than a variable in a snippet.
    pub in_text: f64,
}

/// Weight of an occurrence in the title (the first non-empty line): titles name the thing.
pub const TITLE_WEIGHT: f64 = 2.0;
/// Weight of an occurrence in code, or of a word shaped like code (`snake_case`,
/// `camelCase`, `call(`, `.attr`).
pub const CODE_WEIGHT: f64 = 1.0;
/// Weight of a plain prose word: most are English, not names.
pub const PROSE_WEIGHT: f64 = 0.25;

/// Words too common to identify anything, in prose or in code.
const STOPWORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "and",
    "or",
    "not",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "as",
    "by",
    "it",
    "this",
    "that",
    "these",
    "those",
    "if",
    "else",
    "elif",
    "then",
    "when",
    "but",
    "from",
    "import",
    "return",
    "def",
    "class",
    "self",
    "none",
    "None",
    "True",
    "False",
    "true",
    "false",
    "null",
    "i",
    "we",
    "you",
    "he",
    "she",
    "they",
    "my",
    "our",
    "your",
    "its",
    "can",
    "could",
    "should",
    "would",
    "will",
    "do",
    "does",
    "did",
    "done",
    "have",
    "has",
    "had",
    "so",
    "no",
    "yes",
    "all",
    "any",
    "some",
    "there",
    "here",
    "what",
    "which",
    "who",
    "how",
    "why",
    "where",
    "also",
    "just",
    "only",
    "but",
    "into",
    "out",
    "up",
    "down",
    "about",
    "than",
    "more",
    "most",
    "very",
    "same",
    "like",
    "get",
    "got",
    "use",
    "used",
    "using",
    "work",
    "works",
    "working",
    "one",
    "two",
    "new",
    "print",
    "pass",
    "raise",
    "try",
    "except",
    "finally",
    "while",
    "lambda",
    "let",
    "fn",
    "var",
    "const",
    "func",
    "function",
    "pub",
    "mut",
    "x",
    "y",
    "z",
    "n",
    "e",
    "t",
    "s",
    "see",
    "want",
    "need",
    "issue",
    "bug",
    "error",
    "problem",
    "example",
    "expected",
    "actual",
    "result",
    "output",
    "version",
    "python",
    "file",
    "line",
    "traceback",
    "recent",
    "call",
    "last",
    "most",
    "http",
    "https",
    "com",
    "www",
    "github",
    "org",
    "html",
    "thanks",
    "please",
    "think",
    "seems",
    "way",
    "because",
    "instead",
    "now",
    "after",
    "before",
];

/// Identifiers of the issue with their weights: per occurrence [`TITLE_WEIGHT`] in the
/// title, [`CODE_WEIGHT`] in code or when code-shaped, else [`PROSE_WEIGHT`]; stopwords
/// and one-letter words are dropped.
pub fn identifiers(text: &str) -> HashMap<String, IssueIdent> {
    let code = code_mask(text);
    let title_end = text
        .trim_start()
        .find('\n')
        .map(|i| i + (text.len() - text.trim_start().len()))
        .unwrap_or(text.len());
    let bytes = text.as_bytes();
    let mut out: HashMap<String, IssueIdent> = HashMap::new();
    for_each_word(text, |w, off| {
        if w.len() < 2
            || STOPWORDS.contains(&w)
            || STOPWORDS.contains(&w.to_ascii_lowercase().as_str())
        {
            return;
        }
        let end = off + w.len();
        let shaped = is_code_shaped(w)
            || bytes.get(end) == Some(&b'(')
            || (off > 0
                && bytes[off - 1] == b'.'
                && bytes
                    .get(off.wrapping_sub(2))
                    .is_some_and(u8::is_ascii_alphanumeric));
        add_occurrence(
            &mut out,
            w.to_string(),
            off,
            shaped || code[off],
            &code,
            title_end,
        );
    });
    for (name, off) in option_names(text, &code) {
        add_occurrence(&mut out, name, off, true, &code, title_end);
    }
    out
}

/// Count one occurrence of `name` at byte `off` of the issue (`code` marks code bytes,
/// `title_end` ends the title) towards its [`IssueIdent`].
fn add_occurrence(
    out: &mut HashMap<String, IssueIdent>,
    name: String,
    off: usize,
    code_like: bool,
    code: &[bool],
    title_end: usize,
) {
    let mut weight = if code_like { CODE_WEIGHT } else { PROSE_WEIGHT };
    if off < title_end {
        weight *= TITLE_WEIGHT;
    }
    let e = out.entry(name).or_insert(IssueIdent {
        weight: 0.0,
        code_like: false,
        in_text: 0.0,
    });
    e.weight += weight;
    e.code_like |= code_like;
    if !code[off] {
        e.in_text += weight;
    }
}

/// Option and setting names written in kebab-case where the text uses them as such
/// (`--import-mode`, `import-mode=importlib`, `` `max-line-length` ``), in the snake_case
/// spelling the code gives them (`import_mode`, which also matches `ImportMode`), with
/// their offsets. Hyphenated prose (`well-known`) is neither code nor followed by `=`.
fn option_names(text: &str, code: &[bool]) -> Vec<(String, usize)> {
    static KEBAB: OnceLock<Regex> = OnceLock::new();
    let kebab = re(&KEBAB, r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z][A-Za-z0-9]*)+");
    let bytes = text.as_bytes();
    unglued_matches(kebab, text, b"./")
        .filter(|m| {
            let used_as_option = text[..m.start()].ends_with("--")
                || bytes.get(m.end()) == Some(&b'=')
                || code[m.start()];
            used_as_option && bytes.get(m.end()) != Some(&b'/')
        })
        .map(|m| (m.as_str().to_ascii_lowercase().replace('-', "_"), m.start()))
        .filter(|(name, _)| name.len() >= 6)
        .collect()
}

/// A word that only code would contain: `snake_case`, `camelCase`, `CONSTANT_NAME`.
pub fn is_code_shaped(w: &str) -> bool {
    let core = w.trim_matches('_');
    core.contains('_')
        || core.bytes().skip(1).any(|b| b.is_ascii_uppercase())
            && core.bytes().any(|b| b.is_ascii_lowercase())
        || w.starts_with("__")
}

/// For each byte, whether it is inside code: a fenced block, an inline `code` span, or a
/// line that looks like a REPL or traceback line (`>>> `, `In [1]:`, indented by 4).
fn code_mask(text: &str) -> Vec<bool> {
    let mut mask = vec![false; text.len() + 1];
    let mut in_fence = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let is_fence = trimmed.starts_with("```") || trimmed.starts_with("~~~");
        let line_code = in_fence
            || is_fence
            || trimmed.starts_with(">>>")
            || trimmed.starts_with("...")
            || trimmed.starts_with("In [")
            || line.starts_with("    ")
            || line.starts_with('\t');
        if is_fence {
            in_fence = !in_fence;
        }
        if line_code {
            mask[pos..pos + line.len()]
                .iter_mut()
                .for_each(|m| *m = true);
        } else {
            // Inline spans between backticks.
            let mut inside = false;
            for (i, b) in line.bytes().enumerate() {
                if b == b'`' {
                    inside = !inside;
                }
                mask[pos + i] = inside;
            }
        }
        pos += line.len();
    }
    mask
}

/// Literal phrases worth finding verbatim in the code: command-line flags
/// (`--collect-only`) and fragments of error messages (`ValueError: Imaginary coordinates
/// are not permitted.`), which the code that raises them usually holds as a string.
pub fn literal_phrases(text: &str) -> Vec<String> {
    static FLAG: OnceLock<Regex> = OnceLock::new();
    static ERROR: OnceLock<Regex> = OnceLock::new();
    let mut out: Vec<String> = Vec::new();
    let mut push = |p: &str| {
        let p = p.trim();
        if !p.is_empty() && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    };
    let flag = re(
        &FLAG,
        r"(?:^|[\s`'(\[])(--[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)",
    );
    for c in flag.captures_iter(text) {
        if c[1].len() >= 5 {
            push(&c[1]);
        }
    }
    let error = re(
        &ERROR,
        r"(?m)^[\sE>]*(?:[A-Za-z_][A-Za-z0-9_.]*(?:Error|Exception|Warning|Exit|Failure)):[ \t]*(.+)$",
    );
    for c in error.captures_iter(text) {
        // Formatted values (numbers, quoted names, reprs) differ between the message and
        // the format string in the code: keep the stretches of plain words between them.
        for fragment in
            c[1].split(|ch: char| ch.is_ascii_digit() || "\"'`{}()[]<>:;=|".contains(ch))
        {
            let fragment =
                fragment.trim_matches(|c: char| c.is_whitespace() || c == '.' || c == ',');
            if fragment.split_whitespace().count() >= 3 && fragment.len() >= 15 {
                push(fragment);
            }
        }
    }
    out
}
