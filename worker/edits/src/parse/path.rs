//! Finding a block's file path in an LLM answer: the line above `<<<<<<< SEARCH` (or the
//! fence's info string) with the decoration models put around paths removed.

fn is_fence(line: &str) -> Option<&str> {
    let t = line.trim();
    for f in ["```", "~~~"] {
        if let Some(rest) = t.strip_prefix(f) {
            return Some(rest.trim_start_matches(f.as_bytes()[0] as char).trim());
        }
    }
    None
}

/// Walks back from a SEARCH marker to the path line.
pub(super) fn find_path(before: &[&str]) -> Option<String> {
    let mut fence_info_path = None;
    for line in before.iter().rev() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(info) = is_fence(line) {
            if fence_info_path.is_none() && looks_like_path(info) && has_path_shape(info) {
                fence_info_path = Some(info.to_string());
            }
            continue;
        }
        return clean_path_line(line).or(fence_info_path);
    }
    fence_info_path
}

/// Strips the decoration models put around a path: headings, list bullets, comment
/// leaders, `File:`/`Path:` labels, bold, backticks, quotes, a trailing colon.
pub(crate) fn clean_path_line(line: &str) -> Option<String> {
    let t = line.trim();
    // A backticked segment wins: "Update `src/a.py` as follows:".
    if let Some(p) = backticked_path(t) {
        return Some(p);
    }
    let mut s = t;
    let mut had_colon = false;
    // Repeat: decorations nest ("**File:** a.py", "- `a.py`:").
    for _ in 0..4 {
        let before = s;
        s = s.trim_start_matches('#').trim();
        for lead in ["- ", "* ", "+ ", "// ", "-- "] {
            if let Some(r) = s.strip_prefix(lead) {
                s = r.trim();
            }
        }
        for label in ["file path:", "filepath:", "filename:", "file:", "path:"] {
            // `get`, not indexing: the label's length may fall inside a multi-byte character
            // of the line (`docs/日本語.md`, Chinese prose), and a panic here kills the task.
            if let Some(head) = s.get(..label.len())
                && head.eq_ignore_ascii_case(label)
            {
                s = s[label.len()..].trim();
            }
        }
        // The fullwidth colon too: "修复如下：" before a block is prose, not a file name.
        if let Some(r) = s.strip_suffix(':').or_else(|| s.strip_suffix('：')) {
            had_colon = true;
            s = r.trim();
        }
        s = s.trim_matches(|c| matches!(c, '*' | '`' | '"' | '\''));
        // `__bold__` only when wrapped on both sides: `__init__.py` and `_pytest/x.py`
        // start with underscores of their own.
        if s.len() > 4 && s.starts_with("__") && s.ends_with("__") {
            s = &s[2..s.len() - 2];
        }
        s = s.trim();
        if s == before {
            break;
        }
    }
    // "Changes:" is prose, "Makefile" alone on a line is a path.
    if !looks_like_path(s) || (had_colon && !has_path_shape(s)) {
        return None;
    }
    Some(s.strip_prefix("./").unwrap_or(s).to_string())
}

fn backticked_path(t: &str) -> Option<String> {
    let mut parts = t.split('`');
    parts.next();
    while let Some(inner) = parts.next() {
        let inner = inner.trim();
        if looks_like_path(inner) && has_path_shape(inner) {
            return Some(inner.strip_prefix("./").unwrap_or(inner).to_string());
        }
        parts.next(); // text between two backticked segments
    }
    None
}

fn looks_like_path(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 4096
        && !s.chars().any(char::is_whitespace)
        && s.chars().any(|c| c.is_alphanumeric())
        && !s.starts_with("<<<")
        && !s.starts_with(">>>")
        && !s.starts_with("===")
}

/// A separator or an extension: what distinguishes `src/a.py` from a word of prose.
fn has_path_shape(s: &str) -> bool {
    s.contains('/') || s.contains('.') || s.contains('\\')
}
