//! Parsing an LLM answer into [`EditBlock`]s.
//!
//! Owns the SEARCH/REPLACE grammar of docs/contracts.md ("LLM requests and answers") and the
//! tolerance for what models actually send: prose between blocks, fences with or without
//! a language tag (or none at all), CRLF line endings, decorated path lines
//! (`` `a.py` ``, `**a.py**`, `File: a.py`, `# a.py`), and later blocks that omit the path
//! because they edit the same file as the block before.
//!
//! The parser is line-based and never looks at the repository: whether a path exists or a
//! SEARCH text matches is decided by [`crate::apply`]. Reading the path line is
//! `parse/path.rs`'s job.

use std::fmt;

mod path;
use path::find_path;

use crate::matching::common_ends;

/// One SEARCH/REPLACE block.
///
/// `search` and `replace` hold whole lines, each terminated by `\n` (so an empty section
/// is the empty string). An empty `search` means "create `path` as a new file".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditBlock {
    /// Path relative to the repository root, as the model wrote it (cleaned of markdown).
    pub path: String,
    /// Existing lines to find in the file.
    pub search: String,
    /// Lines that take their place.
    pub replace: String,
}

/// Why an answer could not be parsed. `Display` is written for the repair prompt: it says
/// which block (1-based, in answer order) and which answer line, and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The answer holds no `<<<<<<< SEARCH` marker at all.
    #[error(
        "the answer contains no SEARCH/REPLACE block; every change must be sent as a file path line followed by `<<<<<<< SEARCH`, the existing lines, `=======`, the new lines and `>>>>>>> REPLACE`"
    )]
    NoBlocks,
    /// No usable path line precedes the first block.
    #[error(
        "block {block} (answer line {line}): no file path before `<<<<<<< SEARCH`; put the path relative to the repository root alone on the line before the block (or before its ``` fence)"
    )]
    MissingPath { block: usize, line: usize },
    /// SEARCH opened but no `=======` divider before `>>>>>>> REPLACE`.
    #[error(
        "block {block} for `{path}` (answer line {line}): missing the `=======` line that separates the SEARCH lines from the REPLACE lines"
    )]
    MissingDivider {
        block: usize,
        path: String,
        line: usize,
    },
    /// SEARCH opened but the answer ended, or another SEARCH began, before `>>>>>>> REPLACE`.
    #[error(
        "block {block} for `{path}` (answer line {line}): not closed by a `>>>>>>> REPLACE` line before {until}"
    )]
    MissingReplace {
        block: usize,
        path: String,
        line: usize,
        until: &'static str,
    },
    /// A `>>>>>>> REPLACE` line with no open block.
    #[error(
        "answer line {line}: `>>>>>>> REPLACE` without a preceding `<<<<<<< SEARCH`; each block must start with `<<<<<<< SEARCH`"
    )]
    StrayReplace { line: usize },
}

impl ParseError {
    /// The message for the repair prompt, in the same shape as `EditError::feedback`.
    pub fn feedback(&self) -> String {
        format!(
            "Your answer could not be read: {self}.\n\nNothing from your answer was applied. Send all blocks again in the SEARCH/REPLACE format."
        )
    }
}

/// Parses every SEARCH/REPLACE block of `answer`, in order.
///
/// The path of a block is the nearest non-blank line above its `<<<<<<< SEARCH` marker
/// (skipping fence lines) once markdown decoration is removed; failing that a path given
/// as the fence's info string (```` ```src/a.py ````); failing that the previous block's
/// path, because models routinely put several blocks for one file in one fence.
pub fn parse_blocks(answer: &str) -> Result<Vec<EditBlock>, ParseError> {
    // CRLF answers: the `\r` is transport, not content. Line endings of the target file
    // are restored by `apply`, which knows the file.
    let lines: Vec<&str> = answer
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut blocks: Vec<EditBlock> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_replace_marker(line) {
            return Err(ParseError::StrayReplace { line: i + 1 });
        }
        if !is_search_marker(line) {
            i += 1;
            continue;
        }
        let block = blocks.len() + 1;
        let path = match find_path(&lines[..i]).or_else(|| blocks.last().map(|b| b.path.clone())) {
            Some(p) => p,
            None => return Err(ParseError::MissingPath { block, line: i + 1 }),
        };
        // Collect the body up to the closing marker first, then pick the divider: file
        // content may itself contain `=======` lines (reStructuredText underlines, conflict
        // examples), so the divider is chosen among candidates rather than taken blindly.
        let start = i + 1;
        let mut end = start;
        loop {
            if end >= lines.len() {
                return Err(ParseError::MissingReplace {
                    block,
                    path,
                    line: i + 1,
                    until: "the end of the answer",
                });
            }
            if is_replace_marker(lines[end]) {
                break;
            }
            if is_search_marker(lines[end]) {
                return Err(ParseError::MissingReplace {
                    block,
                    path,
                    line: i + 1,
                    until: "the next `<<<<<<< SEARCH`",
                });
            }
            end += 1;
        }
        let body = &lines[start..end];
        let Some(div) = pick_divider(body) else {
            return Err(ParseError::MissingDivider {
                block,
                path,
                line: i + 1,
            });
        };
        blocks.push(EditBlock {
            path,
            search: join_lines(&body[..div]),
            replace: join_lines(&body[div + 1..]),
        });
        i = end + 1;
    }
    if blocks.is_empty() {
        return Err(ParseError::NoBlocks);
    }
    Ok(blocks)
}

fn join_lines(lines: &[&str]) -> String {
    let mut s = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// `<<<<<<< SEARCH` with 5 to 9 angle brackets (models miscount), surrounding spaces allowed.
fn is_search_marker(line: &str) -> bool {
    marker(line, '<', "SEARCH")
}

fn is_replace_marker(line: &str) -> bool {
    marker(line, '>', "REPLACE")
}

fn marker(line: &str, ch: char, word: &str) -> bool {
    let t = line.trim();
    let n = t.chars().take_while(|&c| c == ch).count();
    (5..=9).contains(&n) && t[n..].trim() == word
}

/// The divider among the body lines. Lines of exactly seven `=` are the candidates (five
/// to nine when there is none: models miscount). File content can contain such lines too
/// (reStructuredText underlines, merge-conflict examples), so with several candidates the
/// one is chosen whose SEARCH and REPLACE share the most leading plus trailing lines, as
/// the context copied into both sections does; ties go to the first.
fn pick_divider(body: &[&str]) -> Option<usize> {
    let is_eq = |l: &str, lo: usize, hi: usize| {
        let t = l.trim();
        (lo..=hi).contains(&t.len()) && t.bytes().all(|b| b == b'=')
    };
    let mut candidates: Vec<usize> = (0..body.len()).filter(|&i| is_eq(body[i], 7, 7)).collect();
    if candidates.is_empty() {
        candidates = (0..body.len()).filter(|&i| is_eq(body[i], 5, 9)).collect();
    }
    if candidates.len() <= 1 {
        return candidates.first().copied();
    }
    let shared = |d: usize| {
        let (s, r) = (&body[..d], &body[d + 1..]);
        // Trailing whitespace aside: models add it to SEARCH lines only.
        let (prefix, suffix) = common_ends(s, r, |a, b| a.trim_end() == b.trim_end());
        prefix + suffix
    };
    let mut best = candidates[0];
    let mut best_score = shared(best);
    for &d in &candidates[1..] {
        let score = shared(d);
        if score > best_score {
            (best, best_score) = (d, score);
        }
    }
    Some(best)
}

impl fmt::Display for EditBlock {
    /// Renders the block in the canonical format (no fence), e.g. to quote it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n<<<<<<< SEARCH\n{}=======\n{}>>>>>>> REPLACE\n",
            self.path, self.search, self.replace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(answer: &str) -> EditBlock {
        let mut v = parse_blocks(answer).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn canonical_fenced_block() {
        let b = one(
            "src/a.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n",
        );
        assert_eq!(b.path, "src/a.py");
        assert_eq!(b.search, "x = 1\n");
        assert_eq!(b.replace, "x = 2\n");
    }

    #[test]
    fn no_fence_and_prose_around() {
        let v = parse_blocks(
            "Sure! Here is the fix.\n\nsrc/a.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n\nThen the test:\n\ntests/t.py\n<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE\nDone.",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].path, "src/a.py");
        assert_eq!(v[1].path, "tests/t.py");
        assert_eq!(v[1].replace, "d\n");
    }

    #[test]
    fn crlf_answer() {
        let b = one(
            "a.rs\r\n```rust\r\n<<<<<<< SEARCH\r\nfn a() {}\r\n=======\r\nfn b() {}\r\n>>>>>>> REPLACE\r\n```\r\n",
        );
        assert_eq!(b.path, "a.rs");
        assert_eq!(b.search, "fn a() {}\n");
        assert_eq!(b.replace, "fn b() {}\n");
    }

    #[test]
    fn decorated_path_lines() {
        for deco in [
            "`src/a.py`",
            "**src/a.py**",
            "File: src/a.py",
            "**File:** `src/a.py`",
            "### src/a.py",
            "- `src/a.py`:",
            "Update `src/a.py` as follows:",
            "./src/a.py",
            "# src/a.py",
            "\"src/a.py\"",
            "__src/a.py__",
        ] {
            let b = one(&format!(
                "{deco}\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```"
            ));
            assert_eq!(b.path, "src/a.py", "decoration {deco:?}");
        }
    }

    #[test]
    fn underscores_in_paths_survive() {
        for p in ["_pytest/config.py", "pkg/__init__.py", "__main__.py"] {
            let b = one(&format!(
                "{p}\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"
            ));
            assert_eq!(b.path, p);
            let b = one(&format!(
                "**{p}**\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"
            ));
            assert_eq!(b.path, p);
        }
    }

    #[test]
    fn rst_heading_in_both_sections_is_not_the_divider() {
        // "=======" underlines a 7-letter heading in SEARCH and REPLACE.
        let b = one(
            "docs/x.rst\n<<<<<<< SEARCH\nModules\n=======\n\n- a\n=======\nModules\n=======\n\n- new\n- a\n>>>>>>> REPLACE",
        );
        assert_eq!(b.search, "Modules\n=======\n\n- a\n");
        assert_eq!(b.replace, "Modules\n=======\n\n- new\n- a\n");
    }

    #[test]
    fn path_inside_fence_or_as_fence_info() {
        let b = one("```python\nsrc/a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```");
        assert_eq!(b.path, "src/a.py");
        let b = one("Here:\n```src/a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```");
        assert_eq!(b.path, "src/a.py");
    }

    #[test]
    fn later_blocks_inherit_the_path() {
        let v = parse_blocks(
            "src/a.py\n```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE\n```\nAnd also:\n```python\n<<<<<<< SEARCH\ne\n=======\nf\n>>>>>>> REPLACE\n```",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|b| b.path == "src/a.py"));
        assert_eq!(v[2].search, "e\n");
    }

    #[test]
    fn empty_search_and_empty_replace() {
        let b = one("new/mod.py\n<<<<<<< SEARCH\n=======\nprint('hi')\n>>>>>>> REPLACE");
        assert_eq!(b.search, "");
        assert_eq!(b.replace, "print('hi')\n");
        let b = one("a.py\n<<<<<<< SEARCH\ndead()\n=======\n>>>>>>> REPLACE");
        assert_eq!(b.replace, "");
    }

    #[test]
    fn miscounted_markers_are_accepted() {
        let b = one("a.py\n<<<<< SEARCH\nx\n========\ny\n>>>>>>>>> REPLACE");
        assert_eq!((b.search.as_str(), b.replace.as_str()), ("x\n", "y\n"));
    }

    #[test]
    fn content_with_equals_lines_keeps_the_real_divider() {
        // An RST underline of another length in SEARCH, and one of 7 in REPLACE.
        let b = one(
            "doc.rst\n<<<<<<< SEARCH\nTitle\n==========\n=======\nSolvers\n=======\n>>>>>>> REPLACE",
        );
        assert_eq!(b.search, "Title\n==========\n");
        assert_eq!(b.replace, "Solvers\n=======\n");
    }

    #[test]
    fn fences_inside_content_are_content() {
        let b = one(
            "README.md\n<<<<<<< SEARCH\n```sh\nmake\n```\n=======\n```sh\nmake all\n```\n>>>>>>> REPLACE",
        );
        assert_eq!(b.search, "```sh\nmake\n```\n");
        assert_eq!(b.replace, "```sh\nmake all\n```\n");
    }

    #[test]
    fn malformed_blocks_are_errors_with_locations() {
        let e = parse_blocks("a.py\n<<<<<<< SEARCH\nx\ny\n>>>>>>> REPLACE").unwrap_err();
        assert_eq!(
            e,
            ParseError::MissingDivider {
                block: 1,
                path: "a.py".into(),
                line: 2
            }
        );
        assert!(e.to_string().contains("`=======`"));

        let e = parse_blocks("a.py\n<<<<<<< SEARCH\nx\n=======\ny\n").unwrap_err();
        assert!(
            matches!(e, ParseError::MissingReplace { block: 1, .. }),
            "{e}"
        );

        let e = parse_blocks(
            "a.py\n<<<<<<< SEARCH\nx\n=======\ny\nb.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE",
        )
        .unwrap_err();
        assert!(e.to_string().contains("next `<<<<<<< SEARCH`"), "{e}");

        let e = parse_blocks("Here you go:\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE")
            .unwrap_err();
        assert_eq!(e, ParseError::MissingPath { block: 1, line: 2 });

        assert_eq!(
            parse_blocks("I think the code is fine.").unwrap_err(),
            ParseError::NoBlocks
        );
        assert_eq!(
            parse_blocks("a.py\nx\n=======\ny\n>>>>>>> REPLACE").unwrap_err(),
            ParseError::StrayReplace { line: 5 }
        );
    }

    #[test]
    fn non_ascii_paths_and_prose_parse() {
        // Byte lengths of the `File:` labels fall inside these characters: this panicked.
        let b = one("docs/日本語.md\n<<<<<<< SEARCH\n古い\n=======\n新しい\n>>>>>>> REPLACE\n");
        assert_eq!(b.path, "docs/日本語.md");
        assert_eq!(b.replace, "新しい\n");
        let b = one(
            "修复如下：请看这个文件。\n\n`src/a.py`\n```python\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```",
        );
        assert_eq!(b.path, "src/a.py");
        for deco in ["**docs/é.md**", "File: docs/ü/ß.md", "# ドキュメント/a.md"] {
            let b = one(&format!(
                "{deco}\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"
            ));
            assert!(b.path.ends_with(".md"), "{deco} -> {}", b.path);
        }
        assert_eq!(
            parse_blocks("修复如下：\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE").unwrap_err(),
            ParseError::MissingPath { block: 1, line: 2 }
        );
    }

    #[test]
    fn display_round_trips() {
        let b = EditBlock {
            path: "a/b.txt".into(),
            search: "1\n2\n".into(),
            replace: "3\n".into(),
        };
        assert_eq!(one(&b.to_string()), b);
    }
}
