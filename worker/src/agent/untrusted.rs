//! Untrusted text (issue titles and bodies, comments, review comments, check output) made
//! fit for a prompt: what GitHub or Jira does not show a reader is removed, and the rest is
//! capped.
//!
//! Removed (where a prompt injection likes to hide): HTML comments (and `<!...>`, `<?...?>`,
//! `<![CDATA[...]]>`), hidden elements with everything inside them including nested
//! elements (`hidden`, `display:none`, `visibility:hidden`, zero `font-size`/`opacity`,
//! `<input type=hidden>`), `<style>`/`<script>`/`<template>` with their content, link
//! reference definitions (`[//]: # (...)`, `[x]: <> (...)`, which render as nothing), and
//! invisible Unicode (zero-width, bidi controls, tag characters, other controls).
//! Kept: everything a reader sees, `<details>` (visible once opened), and code: a
//! `<!-- -->` inside a code span or block is shown literally, so it stays.
//!
//! The CommonMark structure comes from `pulldown-cmark` (code spans and blocks, and where
//! link reference definitions sit: they are the only non-marker text that no block covers).
//! HTML is scanned by a small forward-only tokenizer: no regex, no backtracking over the
//! text, so the time is linear in the input (one tag is looked at for at most
//! `MAX_TAG_BYTES`). The raw input is first cut at [`RAW_MAX_BYTES`]; nothing panics.

use pulldown_cmark::{Event, Options, Parser, Tag};
use std::collections::HashMap;
use std::ops::Range;

/// `ISSUE_TEXT_MAX_BYTES` when unset: 32 KiB of cleaned text per field.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024;
/// Input beyond this is not even looked at (the cap applies to the cleaned text, but hidden
/// text before it must not make the cleaning itself expensive).
pub const RAW_MAX_BYTES: usize = 1024 * 1024;
/// Longest candidate tag (`<` to `>`); a longer run is read as text.
const MAX_TAG_BYTES: usize = 64 * 1024;

/// The line appended to a text that was cut, so the model knows it does not have all of it.
pub fn cut_note(max_bytes: usize) -> String {
    format!(
        "\n\n[agent-fleet: this text was cut to its first {max_bytes} bytes; the rest is not shown]"
    )
}

/// `text` as a reader sees it, at most `max_bytes` long (cut at a character boundary) plus
/// [`cut_note`] when it was cut.
pub fn sanitize(text: &str, max_bytes: usize) -> String {
    let (raw, mut cut) = prefix(text, RAW_MAX_BYTES);
    let normalized = normalize(raw);
    let mut clean = strip_hidden(&normalized);
    if clean.len() > max_bytes {
        let (kept, _) = prefix(&clean, max_bytes);
        clean = kept.trim_end().to_owned();
        cut = true;
    }
    if cut {
        clean.push_str(&cut_note(max_bytes));
    }
    clean
}

/// The longest prefix of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Zero-width, bidirectional-control and tag characters: invisible to a reader, visible to
/// a model.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Line endings to `\n`; invisible characters and control characters (but tab and newline)
/// dropped. Done before parsing, so `<!\u{200B}--` cannot hide a comment from the scanner.
fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() || invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Removes the hidden parts of a normalized text.
fn strip_hidden(text: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut code: Vec<Range<usize>> = Vec::new();
    let mut covered: Vec<Range<usize>> = Vec::new();
    let mut html_blocks: Vec<Range<usize>> = Vec::new();
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::HtmlBlock) => {
                html_blocks.push(range.clone());
                covered.push(range);
            }
            Event::Start(Tag::CodeBlock(_)) | Event::Code(_) => {
                code.push(range.clone());
                covered.push(range);
            }
            // Containers span their children and the reference definitions among them:
            // only what their children cover is content.
            Event::Start(
                Tag::BlockQuote(_)
                | Tag::List(_)
                | Tag::Item
                | Tag::FootnoteDefinition(_)
                | Tag::DefinitionList
                | Tag::DefinitionListTitle
                | Tag::DefinitionListDefinition,
            )
            | Event::End(_) => {}
            _ => covered.push(range),
        }
    }
    let mut deleted = reference_definitions(text, &merge(covered));
    deleted.extend(definition_lookalikes(text, &html_blocks));
    deleted.extend(Html::new(text, &code).hidden_ranges());
    let deleted = merge(deleted);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in deleted {
        out.push_str(&text[at..r.start]);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out.trim().to_owned()
}

/// Sorted, non-overlapping ranges.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The text no block covers, less container markers (`>`, list bullets and numbers, a
/// footnote label) and blanks: that is what link reference definitions are made of.
fn reference_definitions(text: &str, covered: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut gaps = Vec::new();
    let mut at = 0;
    for r in covered
        .iter()
        .chain(std::iter::once(&(text.len()..text.len())))
    {
        if r.start > at {
            gaps.push(at..r.start);
        }
        at = at.max(r.end);
    }
    let mut out = Vec::new();
    for gap in gaps {
        for (start, body, markers) in marked_lines(text, gap) {
            if !body[markers..].trim().is_empty() {
                out.push(start + markers..start + body.len());
            }
        }
    }
    out
}

/// Lines shaped like a link reference definition inside HTML blocks. There they are text
/// for CommonMark, but where an HTML block ends is where renderers disagree (and an
/// unclosed `<style>` or comment before it decides it): read conservatively, as hidden.
fn definition_lookalikes(text: &str, blocks: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for block in blocks {
        for (start, body, markers) in marked_lines(text, block.clone()) {
            let rest = &body[markers..];
            let label_end = rest.find("]:").unwrap_or(0);
            if rest.starts_with('[') && label_end >= 2 && !rest[1..label_end].contains('[') {
                out.push(start + markers..start + body.len());
            }
        }
    }
    out
}

/// The lines of `text[range]`: each one's start offset, its text without the newline, and
/// the length of its container markers ([`marker_prefix`]).
fn marked_lines(text: &str, range: Range<usize>) -> impl Iterator<Item = (usize, &str, usize)> {
    let mut line_start = range.start;
    text[range].split_inclusive('\n').map(move |line| {
        let start = line_start;
        line_start += line.len();
        let body = line.trim_end_matches('\n');
        (start, body, marker_prefix(body))
    })
}

/// Length of the container markers and blanks that start `line`.
fn marker_prefix(line: &str) -> usize {
    let b = line.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'>') {
            i += 1;
        }
        let start = i;
        if i < b.len() && matches!(b[i], b'-' | b'+' | b'*') {
            i += 1;
        } else {
            while i < b.len() && b[i].is_ascii_digit() && i - start < 9 {
                i += 1;
            }
            if i > start && i < b.len() && matches!(b[i], b'.' | b')') {
                i += 1;
            } else {
                i = start;
            }
        }
        if i > start && (i == b.len() || b[i] == b' ' || b[i] == b'\t') {
            continue;
        }
        i = start;
        // A footnote definition's label, `[^1]:`, is shown (as the note's number).
        if line[i..].starts_with("[^")
            && let Some(close) = line[i..].find("]:")
        {
            return i + close + 2;
        }
        return i;
    }
}

/// One piece of markup the tokenizer recognized at a `<`.
enum Markup {
    /// Comment, declaration, processing instruction, CDATA: removed whole.
    Invisible {
        end: usize,
    },
    /// `<style>`, `<script>`, `<template>`: removed with their content.
    RawText {
        end: usize,
    },
    Open {
        name: String,
        end: usize,
        closed: bool,
        hidden: bool,
    },
    Close {
        name: String,
        end: usize,
    },
}

/// Elements without content: they never open a nesting level.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
const RAW_TEXT: [&str; 3] = ["style", "script", "template"];

struct Html<'a> {
    text: &'a str,
    code: &'a [Range<usize>],
    /// Per terminator (`>`, `?>`, `]]>`): the earliest position from which a search for it
    /// already failed. A later search from further on fails too, without scanning: this is
    /// what keeps `<!x<!x<!x...` linear.
    missing: std::cell::RefCell<HashMap<&'static str, usize>>,
}

impl<'a> Html<'a> {
    fn new(text: &'a str, code: &'a [Range<usize>]) -> Self {
        Html {
            text,
            code,
            missing: Default::default(),
        }
    }

    /// `text[from..].find(needle)` as an absolute offset, remembering failures.
    fn find(&self, from: usize, needle: &'static str) -> Option<usize> {
        let mut missing = self.missing.borrow_mut();
        if missing.get(needle).is_some_and(|&m| from >= m) {
            return None;
        }
        match self.text[from..].find(needle) {
            Some(i) => Some(from + i),
            None => {
                let m = missing.entry(needle).or_insert(from);
                *m = (*m).min(from);
                None
            }
        }
    }

    /// The byte ranges a reader does not see. Code is skipped (its `<` is literal) unless
    /// it sits inside a hidden element, which takes it along.
    fn hidden_ranges(&self) -> Vec<Range<usize>> {
        let b = self.text.as_bytes();
        let mut out = Vec::new();
        // The open hidden element: where it starts, its open descendants (and how many of
        // each name, so that a close tag's lookup is O(1) and the input stays linear).
        let mut hidden: Option<(usize, Vec<String>, HashMap<String, usize>)> = None;
        let mut ci = 0;
        let mut pos = 0;
        while pos < b.len() {
            while ci < self.code.len() && self.code[ci].end <= pos {
                ci += 1;
            }
            let next_code = self.code.get(ci).map_or(b.len(), |r| r.start);
            if pos >= next_code {
                pos = self.code[ci].end;
                continue;
            }
            let Some(lt) = b[pos..next_code].iter().position(|&c| c == b'<') else {
                pos = next_code;
                continue;
            };
            let p = pos + lt;
            let Some(markup) = self.markup_at(p) else {
                pos = p + 1;
                continue;
            };
            match (markup, &mut hidden) {
                (Markup::Invisible { end } | Markup::RawText { end }, h) => {
                    if h.is_none() {
                        out.push(p..end);
                    }
                    pos = end;
                }
                (
                    Markup::Open {
                        name,
                        end,
                        closed,
                        hidden: is_hidden,
                    },
                    None,
                ) => {
                    if is_hidden {
                        if closed || VOID.contains(&name.as_str()) {
                            out.push(p..end);
                        } else {
                            let counts = HashMap::from([(name.clone(), 1)]);
                            hidden = Some((p, vec![name], counts));
                        }
                    }
                    pos = end;
                }
                (
                    Markup::Open {
                        name, end, closed, ..
                    },
                    Some((_, stack, counts)),
                ) => {
                    if !closed && !VOID.contains(&name.as_str()) {
                        *counts.entry(name.clone()).or_default() += 1;
                        stack.push(name);
                    }
                    pos = end;
                }
                (Markup::Close { end, .. }, None) => pos = end,
                (Markup::Close { name, end }, Some((start, stack, counts))) => {
                    // Like a browser: a close tag ends the innermost open element of that
                    // name and everything opened inside it; an unmatched one is ignored.
                    if counts.get(&name).copied().unwrap_or(0) > 0 {
                        while let Some(top) = stack.pop() {
                            if let Some(n) = counts.get_mut(&top) {
                                *n -= 1;
                            }
                            if top == name {
                                break;
                            }
                        }
                        if stack.is_empty() {
                            out.push(*start..end);
                            hidden = None;
                        }
                    }
                    pos = end;
                }
            }
        }
        // An element never closed hides the rest of the document, as it does on the page.
        if let Some((start, _, _)) = hidden {
            out.push(start..b.len());
        }
        out
    }

    fn markup_at(&self, p: usize) -> Option<Markup> {
        let s = &self.text[p..];
        if let Some(rest) = s.strip_prefix("<!--") {
            return Some(Markup::Invisible {
                end: p + 4 + comment_end(rest),
            });
        }
        if s.starts_with("<![CDATA[") {
            let end = self.find(p + 9, "]]>")?;
            return Some(Markup::Invisible { end: end + 3 });
        }
        if s.starts_with("<!") && s.as_bytes().get(2).is_some_and(u8::is_ascii_alphabetic) {
            let end = self.find(p + 2, ">")?;
            return Some(Markup::Invisible { end: end + 1 });
        }
        if s.starts_with("<?") {
            let end = self.find(p + 2, "?>")?;
            return Some(Markup::Invisible { end: end + 2 });
        }
        let window = &s.as_bytes()[..s.len().min(MAX_TAG_BYTES)];
        let tag = parse_tag(window)?;
        let end = p + tag.len;
        if tag.close {
            return Some(Markup::Close {
                name: tag.name,
                end,
            });
        }
        if RAW_TEXT.contains(&tag.name.as_str()) && !tag.self_closing {
            let end = raw_text_end(self.text, end, &tag.name);
            return Some(Markup::RawText { end });
        }
        Some(Markup::Open {
            name: tag.name,
            end,
            closed: tag.self_closing,
            hidden: tag.hidden,
        })
    }
}

/// Offset just past the end of a comment whose `<!--` was stripped from `rest`: `-->`, the
/// abrupt `>`/`->`, or the end of the text (an unclosed comment hides the rest). Not the
/// browser's `--!>`: CommonMark's HTML block runs on to the next `-->`, and ending earlier
/// would let text after a `--!>` pass for visible.
fn comment_end(rest: &str) -> usize {
    if rest.starts_with('>') {
        return 1;
    }
    if rest.starts_with("->") {
        return 2;
    }
    rest.find("-->").map_or(rest.len(), |i| i + 3)
}

/// End of `</name>` (ASCII-case-insensitive) at or after `from`, or the end of the text.
fn raw_text_end(text: &str, from: usize, name: &str) -> usize {
    let b = text.as_bytes();
    let mut at = from;
    while let Some(i) = text[at..].find("</") {
        let start = at + i;
        let after = start + 2 + name.len();
        if b.len() >= after
            && b[start + 2..after].eq_ignore_ascii_case(name.as_bytes())
            && b.get(after)
                .is_none_or(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/')
        {
            return b[after..]
                .iter()
                .position(|&c| c == b'>')
                .map_or(b.len(), |j| after + j + 1);
        }
        at = start + 2;
    }
    b.len()
}

struct ParsedTag {
    name: String,
    close: bool,
    self_closing: bool,
    hidden: bool,
    len: usize,
}

/// A CommonMark open or close tag at the start of `b`.
fn parse_tag(b: &[u8]) -> Option<ParsedTag> {
    let mut i = 1;
    let close = b.get(1) == Some(&b'/');
    if close {
        i += 1;
    }
    let name_start = i;
    if !b.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
        i += 1;
    }
    let name = String::from_utf8_lossy(&b[name_start..i]).to_ascii_lowercase();
    let mut hidden = false;
    loop {
        let ws = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i)? {
            b'>' => break,
            b'/' if !close && b.get(i + 1) == Some(&b'>') => {
                return Some(ParsedTag {
                    name,
                    close,
                    self_closing: true,
                    hidden,
                    len: i + 2,
                });
            }
            c if !close && i > ws && (c.is_ascii_alphabetic() || *c == b'_' || *c == b':') => {
                let attr_start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b':' | b'-'))
                {
                    i += 1;
                }
                let attr = String::from_utf8_lossy(&b[attr_start..i]).to_ascii_lowercase();
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let mut value: &[u8] = b"";
                if b.get(j) == Some(&b'=') {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    match b.get(j)? {
                        q @ (b'"' | b'\'') => {
                            let len = b[j + 1..].iter().position(|c| c == q)?;
                            value = &b[j + 1..j + 1 + len];
                            j += len + 2;
                        }
                        _ => {
                            let len = b[j..]
                                .iter()
                                .position(|c| {
                                    c.is_ascii_whitespace()
                                        || matches!(c, b'"' | b'\'' | b'=' | b'<' | b'>' | b'`')
                                })
                                .unwrap_or(b.len() - j);
                            if len == 0 {
                                return None;
                            }
                            value = &b[j..j + len];
                            j += len;
                        }
                    }
                    i = j;
                }
                hidden |= hides(&attr, value);
            }
            _ => return None,
        }
    }
    Some(ParsedTag {
        name,
        close,
        self_closing: false,
        hidden,
        len: i + 1,
    })
}

/// Whether an attribute makes its element invisible.
fn hides(attr: &str, value: &[u8]) -> bool {
    match attr {
        "hidden" => true,
        "type" => value.eq_ignore_ascii_case(b"hidden"),
        "style" => {
            let css: String = String::from_utf8_lossy(value)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            css.split(';').any(|decl| {
                let Some((prop, val)) = decl.split_once(':') else {
                    return false;
                };
                let val = val.trim_end_matches("!important");
                match prop {
                    "display" => val == "none",
                    "visibility" | "content-visibility" => val == "hidden" || val == "collapse",
                    "font-size" | "opacity" => is_zero(val),
                    _ => false,
                }
            })
        }
        _ => false,
    }
}

/// `0`, `0px`, `0.0em`, `0%`...
fn is_zero(val: &str) -> bool {
    let num: String = val
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    !num.is_empty() && num.parse::<f64>().is_ok_and(|n| n == 0.0)
}

#[cfg(test)]
#[path = "untrusted_tests.rs"]
mod tests;
