//! Finding a SEARCH text in a file's content and splicing in the REPLACE text.
//!
//! Owns the matching ladder (exact, then trailing-whitespace-insensitive, then
//! indentation-insensitive with one consistent indentation offset), the re-indentation of
//! the replacement, line-ending preservation (CRLF files stay CRLF), and the cheap
//! "closest lines" hint used when nothing matches. Everything here is pure: strings in,
//! strings out; the filesystem is `crate::apply`'s business.

/// How the matcher is allowed to match. `Exact` exists for the benchmark's baseline and for
/// callers that want to measure how often tolerance was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matching {
    /// Line-aligned exact match only.
    Exact,
    /// Exact first; then trailing whitespace ignored; then indentation ignored as long as
    /// every line is shifted by the same amount (the replacement is shifted likewise).
    #[default]
    Tolerant,
}

/// How a block was placed, reported per block in [`crate::Applied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// Empty SEARCH: the file was created.
    Created,
    /// The SEARCH lines were found verbatim.
    Exact,
    /// Found once trailing whitespace was ignored.
    TrailingWhitespace,
    /// Found once indentation was ignored; the replacement was re-indented.
    Indentation,
}

/// A failed match, before `apply` attaches the block number and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchFailure {
    /// No place matches. `closest` is the best-voted window: (1-based first line, lines).
    Unmatched {
        closest: Option<(usize, Vec<String>)>,
    },
    /// Several places match at the first level of the ladder that matched at all.
    Ambiguous {
        count: usize,
        lines: Vec<usize>,
        kind: MatchKind,
    },
}

/// A file's content split into lines without terminators, plus what is needed to put it
/// back together byte for byte.
#[derive(Debug, Clone)]
pub(crate) struct Lines {
    lines: Vec<String>,
    final_newline: bool,
    /// Every line ended with `\r\n`: work in LF, write back CRLF.
    crlf: bool,
}

impl Lines {
    pub(crate) fn parse(content: &str) -> Lines {
        let lf = content.matches('\n').count();
        let crlf = lf > 0 && content.matches("\r\n").count() == lf;
        let normalized;
        let text = if crlf {
            normalized = content.replace("\r\n", "\n");
            normalized.as_str()
        } else {
            content
        };
        let final_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').map(str::to_string).collect()
        };
        Lines {
            lines,
            final_newline,
            crlf,
        }
    }

    pub(crate) fn render(&self) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut s = self.lines.join(eol);
        if self.final_newline && !self.lines.is_empty() {
            s.push_str(eol);
        }
        s
    }

    /// Applies one SEARCH/REPLACE pair (both LF-terminated line texts) in place.
    pub(crate) fn replace(
        &mut self,
        search: &str,
        replace: &str,
        matching: Matching,
    ) -> Result<MatchKind, MatchFailure> {
        let search = split_block(search);
        let replace = split_block(replace);
        let (start, kind, indent) = self.locate(&search, matching)?;
        let new: Vec<String> = if kind == MatchKind::Exact {
            replace.iter().map(|l| l.to_string()).collect()
        } else {
            self.tolerant_replacement(start, &search, &replace, &indent)
        };
        // Deleting the last lines of a file that had no final newline: the new last line
        // keeps the file's "no newline at end" property, as `lines` has no terminators.
        self.lines.splice(start..start + search.len(), new);
        if self.lines.is_empty() {
            self.final_newline = false;
        }
        Ok(kind)
    }

    /// The replacement lines for a tolerant match. Lines the model left unchanged keep the
    /// file's own text, so tolerance never rewrites whitespace the edit did not touch:
    /// first the lines shared as a common prefix and suffix of SEARCH and REPLACE (their
    /// position in the file is certain, blank lines included), then, in the changed middle,
    /// non-blank lines that repeat a SEARCH line. Everything else is new text and gets the
    /// indentation offset of the match.
    fn tolerant_replacement(
        &self,
        start: usize,
        search: &[&str],
        replace: &[&str],
        indent: &Indent,
    ) -> Vec<String> {
        let (prefix, suffix) = common_ends(search, replace, |s, r| s == r);
        let file = |k: usize| self.lines[start + k].clone();
        let mut out: Vec<String> = (0..prefix).map(file).collect();
        let mut next = prefix;
        for r in &replace[prefix..replace.len() - suffix] {
            // Blank lines carry no identity: mapping a new blank line onto some blank
            // SEARCH line would copy that line's stray whitespace.
            let found = if r.trim().is_empty() {
                None
            } else {
                search[next.min(search.len())..]
                    .iter()
                    .position(|s| s == r)
                    .map(|p| p + next)
                    .or_else(|| search.iter().position(|s| s == r))
            };
            out.push(match found {
                Some(k) => {
                    next = k + 1;
                    file(k)
                }
                None => indent.apply(r),
            });
        }
        out.extend((search.len() - suffix..search.len()).map(file));
        out
    }

    fn locate(
        &self,
        search: &[&str],
        matching: Matching,
    ) -> Result<(usize, MatchKind, Indent), MatchFailure> {
        if search.is_empty() {
            // Only reachable for an empty SEARCH on a file `apply` already rejected.
            return Err(MatchFailure::Unmatched { closest: None });
        }
        let exact = self.find_all(search, |f, s| f == s);
        if let Some(r) = decide(MatchKind::Exact, &exact, Indent::None) {
            return r;
        }
        if matching == Matching::Exact {
            return Err(self.unmatched(search));
        }
        let trailing = self.find_all(search, |f, s| f.trim_end() == s.trim_end());
        if let Some(r) = decide(MatchKind::TrailingWhitespace, &trailing, Indent::None) {
            return r;
        }
        // Indentation: the non-blank lines must agree once trimmed, and the file's
        // indentation must be the SEARCH indentation plus (or minus) one common prefix.
        let mut found = Vec::new();
        let mut first_indent = Indent::None;
        let n = search.len();
        if self.lines.len() >= n {
            for start in 0..=self.lines.len() - n {
                if let Some(ind) = indent_match(&self.lines[start..start + n], search) {
                    if found.is_empty() {
                        first_indent = ind;
                    }
                    found.push(start);
                }
            }
        }
        if let Some(r) = decide(MatchKind::Indentation, &found, first_indent) {
            return r;
        }
        Err(self.unmatched(search))
    }

    fn find_all(&self, search: &[&str], eq: impl Fn(&str, &str) -> bool) -> Vec<usize> {
        let n = search.len();
        if self.lines.len() < n {
            return Vec::new();
        }
        (0..=self.lines.len() - n)
            .filter(|&start| {
                self.lines[start..start + n]
                    .iter()
                    .zip(search)
                    .all(|(f, s)| eq(f, s))
            })
            .collect()
    }

    /// The window most SEARCH lines vote for: each file line equal (trimmed) to SEARCH
    /// line `k` votes for a window starting `k` lines above it. Linear in the file size,
    /// so it is cheap enough to run on every failure.
    fn unmatched(&self, search: &[&str]) -> MatchFailure {
        use std::collections::HashMap;
        let mut by_text: HashMap<&str, Vec<usize>> = HashMap::new();
        for (k, s) in search.iter().enumerate() {
            let t = s.trim();
            // Blank lines and lone brackets say nothing about where the block belongs.
            if t.len() > 2 {
                by_text.entry(t).or_default().push(k);
            }
        }
        let mut votes: HashMap<usize, usize> = HashMap::new();
        for (i, f) in self.lines.iter().enumerate() {
            if let Some(ks) = by_text.get(f.trim()) {
                for &k in ks {
                    if i >= k {
                        *votes.entry(i - k).or_default() += 1;
                    }
                }
            }
        }
        let closest = votes
            .into_iter()
            .max_by_key(|&(start, v)| (v, std::cmp::Reverse(start)))
            .map(|(start, _)| {
                let end = (start + search.len()).min(self.lines.len());
                (start + 1, self.lines[start..end].to_vec())
            });
        MatchFailure::Unmatched { closest }
    }
}

type Located = Result<(usize, MatchKind, Indent), MatchFailure>;

/// One level of the ladder: `None` means "nothing here, try the next level".
/// Lengths of the common prefix of `a` and `b` under `same`, and of their common suffix
/// after it: the unchanged ends of a change, wherever one is measured.
pub(crate) fn common_ends<T>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> bool) -> (usize, usize) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| same(x, y)).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| same(x, y))
        .count();
    (prefix, suffix)
}

fn decide(kind: MatchKind, found: &[usize], indent: Indent) -> Option<Located> {
    match found {
        [] => None,
        [one] => Some(Ok((*one, kind, indent))),
        many => Some(Err(MatchFailure::Ambiguous {
            count: many.len(),
            lines: many.iter().take(10).map(|s| s + 1).collect(),
            kind,
        })),
    }
}

/// Splits an LF-terminated block text into lines (a stray `\r` from a hand-built block is
/// dropped, like the parser does).
fn split_block(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// The indentation offset between a SEARCH text and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Indent {
    None,
    /// The file is indented by this much more than the SEARCH text.
    Add(String),
    /// The file is indented by this much less than the SEARCH text.
    Remove(String),
}

impl Indent {
    fn apply(&self, line: &str) -> String {
        match self {
            Indent::None => line.to_string(),
            // An empty line stays empty: indenting it would only add trailing whitespace.
            Indent::Add(_) if line.is_empty() => String::new(),
            Indent::Add(p) => format!("{p}{line}"),
            Indent::Remove(p) => match line.strip_prefix(p.as_str()) {
                Some(r) => r.to_string(),
                // A whitespace-only line shorter than the offset becomes empty.
                None if line.trim().is_empty() => String::new(),
                // Less indented than the offset: drop what indentation there is.
                None => line.trim_start().to_string(),
            },
        }
    }
}

fn leading_ws(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

fn indent_match(window: &[String], search: &[&str]) -> Option<Indent> {
    let mut offset: Option<Indent> = None;
    for (f, s) in window.iter().zip(search) {
        let (ft, st) = (f.trim(), s.trim());
        if ft != st {
            return None;
        }
        if ft.is_empty() {
            continue;
        }
        let (fw, sw) = (leading_ws(f), leading_ws(s));
        let this = if fw == sw {
            Indent::None
        } else if let Some(extra) = fw.strip_suffix(sw) {
            Indent::Add(extra.to_string())
        } else if let Some(extra) = sw.strip_suffix(fw) {
            Indent::Remove(extra.to_string())
        } else {
            return None;
        };
        match &offset {
            None => offset = Some(this),
            Some(o) if *o == this => {}
            Some(_) => return None,
        }
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        content: &str,
        search: &str,
        replace: &str,
    ) -> Result<(String, MatchKind), MatchFailure> {
        let mut l = Lines::parse(content);
        let k = l.replace(search, replace, Matching::Tolerant)?;
        Ok((l.render(), k))
    }

    /// Replacements that match, and how: (file, search, replace, file after, match kind).
    const MATCHED: &[(&str, &str, &str, &str, MatchKind)] = &[
        // "x = 1" occurs inside "max = 1" as a substring; only the whole line counts.
        (
            "max = 1\nx = 1\n",
            "x = 1\n",
            "x = 2\n",
            "max = 1\nx = 2\n",
            MatchKind::Exact,
        ),
        // A CRLF file keeps CRLF.
        (
            "a\r\nb\r\nc\r\n",
            "b\n",
            "B\nB2\n",
            "a\r\nB\r\nB2\r\nc\r\n",
            MatchKind::Exact,
        ),
        // Mixed endings match through the trailing-whitespace rule.
        (
            "a\nb\r\nc\n",
            "a\nb\n",
            "a\nB\n",
            "a\nB\nc\n",
            MatchKind::TrailingWhitespace,
        ),
        // Trailing whitespace in SEARCH is tolerated and the file's text kept: the unchanged
        // SEARCH line `def f():  ` maps back to the file's `def f():`.
        (
            "def f():\n    x = 1   \n    return x\n",
            "def f():  \n    x = 1\n    return x \n",
            "def f():  \n    x = 1\n    return x + 1\n",
            "def f():\n    x = 1   \n    return x + 1\n",
            MatchKind::TrailingWhitespace,
        ),
    ];

    #[test]
    fn matched_replacements_give_the_file_and_the_kind() {
        for &(file, search, replace, after, kind) in MATCHED {
            let (out, k) = run(file, search, replace).unwrap();
            assert_eq!((out.as_str(), k), (after, kind), "{file:?} / {search:?}");
        }
    }

    #[test]
    fn round_trip_preserves_bytes() {
        for c in ["", "a", "a\n", "a\r\nb\r\n", "a\nb\r\nc", "\n\n", "x\r\n"] {
            assert_eq!(Lines::parse(c).render(), c, "{c:?}");
        }
    }

    #[test]
    fn no_final_newline() {
        let (out, _) = run("a\nb", "b\n", "c\n").unwrap();
        assert_eq!(out, "a\nc");
        let (out, _) = run("a\nb", "b\n", "").unwrap();
        assert_eq!(out, "a");
    }

    #[test]
    fn indentation_drift_is_reindented() {
        let file =
            "class A:\n    def f(self):\n        if x:\n            return 1\n        return 2\n";
        // The model dedented the method body to column 0.
        let (out, k) = run(
            file,
            "if x:\n    return 1\n",
            "if x:\n    log()\n\n    return 1\n",
        )
        .unwrap();
        assert_eq!(k, MatchKind::Indentation);
        assert_eq!(
            out,
            "class A:\n    def f(self):\n        if x:\n            log()\n\n            return 1\n        return 2\n"
        );
        // And over-indented by 4.
        let (out, _) = run(
            file,
            "            if x:\n                return 1\n",
            "            if y:\n                return 1\n",
        )
        .unwrap();
        assert!(
            out.contains("\n        if y:\n            return 1\n"),
            "{out}"
        );
    }

    #[test]
    fn inconsistent_indentation_is_not_matched() {
        let file = "if a:\n    b\n";
        let e = run(file, "  if a:\n  b\n", "x\n").unwrap_err();
        assert!(matches!(e, MatchFailure::Unmatched { .. }));
    }

    #[test]
    fn ambiguous_reports_count_and_lines() {
        let e = run("x\ny\nx\ny\n", "x\n", "z\n").unwrap_err();
        assert_eq!(
            e,
            MatchFailure::Ambiguous {
                count: 2,
                lines: vec![1, 3],
                kind: MatchKind::Exact
            }
        );
        // An exact unique match wins over tolerant duplicates.
        let (out, _) = run("x\nx \n", "x\n", "z\n").unwrap();
        assert_eq!(out, "z\nx \n");
    }

    #[test]
    fn exact_mode_refuses_tolerance() {
        let mut l = Lines::parse("a  \n");
        assert!(l.replace("a\n", "b\n", Matching::Exact).is_err());
    }

    #[test]
    fn closest_lines_are_found() {
        let file = "one\ntwo\nfn compute(a, b) {\n    a + b\n}\nthree\n";
        let e = run(file, "fn compute(a, b) {\n    a - b\n}\n", "x\n").unwrap_err();
        let MatchFailure::Unmatched {
            closest: Some((line, lines)),
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(line, 3);
        assert_eq!(lines, ["fn compute(a, b) {", "    a + b", "}"]);
    }
}
