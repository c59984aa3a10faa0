//! The HTML side of [`super`]: a small forward-only tokenizer that finds the ranges a
//! reader never sees (comments, declarations, hidden elements with their content, raw-text
//! elements), linear in the input: no regex, no backtracking, one tag looked at for at most
//! [`MAX_TAG_BYTES`].

use std::collections::HashMap;
use std::ops::Range;

/// Longest candidate tag (`<` to `>`); a longer run is read as text.
const MAX_TAG_BYTES: usize = 64 * 1024;

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

pub(super) struct Html<'a> {
    text: &'a str,
    code: &'a [Range<usize>],
    /// Per terminator (`>`, `?>`, `]]>`): the earliest position from which a search for it
    /// already failed. A later search from further on fails too, without scanning: this is
    /// what keeps `<!x<!x<!x...` linear.
    missing: std::cell::RefCell<HashMap<&'static str, usize>>,
}

impl<'a> Html<'a> {
    pub(super) fn new(text: &'a str, code: &'a [Range<usize>]) -> Self {
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
    pub(super) fn hidden_ranges(&self) -> Vec<Range<usize>> {
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
