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
//! `html::MAX_TAG_BYTES`, in `untrusted/html.rs`). The raw input is first cut at [`RAW_MAX_BYTES`]; nothing panics.

mod html;

use html::Html;
use pulldown_cmark::{Event, Options, Parser, Tag};
use std::ops::Range;

/// `ISSUE_TEXT_MAX_BYTES` when unset: 32 KiB of cleaned text per field.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024;
/// Input beyond this is not even looked at (the cap applies to the cleaned text, but hidden
/// text before it must not make the cleaning itself expensive).
pub const RAW_MAX_BYTES: usize = 1024 * 1024;

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

#[cfg(test)]
#[path = "untrusted_tests.rs"]
mod tests;
