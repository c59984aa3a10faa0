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

    /// The `count` blocks of `answer`.
    fn blocks(answer: &str, count: usize) -> Vec<EditBlock> {
        let v = parse_blocks(answer).unwrap();
        assert_eq!(v.len(), count, "{v:?}");
        v
    }

    fn one(answer: &str) -> EditBlock {
        blocks(answer, 1).remove(0)
    }

    /// Answers of one block each, with the tolerance they check, and the block they hold:
    /// (answer, path, search, replace).
    const ONE_BLOCK: &[(&str, &str, &str, &str)] = &[
        // The canonical form: path line, fenced block with a language tag.
        (
            "src/a.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```\n",
            "src/a.py",
            "x = 1\n",
            "x = 2\n",
        ),
        // CRLF line endings.
        (
            "a.rs\r\n```rust\r\n<<<<<<< SEARCH\r\nfn a() {}\r\n=======\r\nfn b() {}\r\n>>>>>>> REPLACE\r\n```\r\n",
            "a.rs",
            "fn a() {}\n",
            "fn b() {}\n",
        ),
        // "=======" underlines a 7-letter RST heading in SEARCH and REPLACE: not the divider.
        (
            "docs/x.rst\n<<<<<<< SEARCH\nModules\n=======\n\n- a\n=======\nModules\n=======\n\n- new\n- a\n>>>>>>> REPLACE",
            "docs/x.rst",
            "Modules\n=======\n\n- a\n",
            "Modules\n=======\n\n- new\n- a\n",
        ),
        // The path inside the fence, or as the fence's info string.
        (
            "```python\nsrc/a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```",
            "src/a.py",
            "x\n",
            "y\n",
        ),
        (
            "Here:\n```src/a.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```",
            "src/a.py",
            "x\n",
            "y\n",
        ),
        // An empty SEARCH (a new file), an empty REPLACE (a deletion).
        (
            "new/mod.py\n<<<<<<< SEARCH\n=======\nprint('hi')\n>>>>>>> REPLACE",
            "new/mod.py",
            "",
            "print('hi')\n",
        ),
        (
            "a.py\n<<<<<<< SEARCH\ndead()\n=======\n>>>>>>> REPLACE",
            "a.py",
            "dead()\n",
            "",
        ),
        // Miscounted markers are accepted.
        (
            "a.py\n<<<<< SEARCH\nx\n========\ny\n>>>>>>>>> REPLACE",
            "a.py",
            "x\n",
            "y\n",
        ),
        // An RST underline of another length in SEARCH, and one of 7 in REPLACE: the real
        // divider is kept.
        (
            "doc.rst\n<<<<<<< SEARCH\nTitle\n==========\n=======\nSolvers\n=======\n>>>>>>> REPLACE",
            "doc.rst",
            "Title\n==========\n",
            "Solvers\n=======\n",
        ),
        // Fences inside the content are content.
        (
            "README.md\n<<<<<<< SEARCH\n```sh\nmake\n```\n=======\n```sh\nmake all\n```\n>>>>>>> REPLACE",
            "README.md",
            "```sh\nmake\n```\n",
            "```sh\nmake all\n```\n",
        ),
        // Non-ASCII paths and prose: byte lengths of the `File:` labels fall inside these
        // characters (this panicked).
        (
            "docs/日本語.md\n<<<<<<< SEARCH\n古い\n=======\n新しい\n>>>>>>> REPLACE\n",
            "docs/日本語.md",
            "古い\n",
            "新しい\n",
        ),
        (
            "修复如下：请看这个文件。\n\n`src/a.py`\n```python\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```",
            "src/a.py",
            "x\n",
            "y\n",
        ),
    ];

    #[test]
    fn one_block_answers_parse_to_their_block() {
        for &(answer, path, search, replace) in ONE_BLOCK {
            let b = one(answer);
            assert_eq!(
                (b.path.as_str(), b.search.as_str(), b.replace.as_str()),
                (path, search, replace),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn no_fence_and_prose_around() {
        let v = blocks(
            "Sure! Here is the fix.\n\nsrc/a.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n\nThen the test:\n\ntests/t.py\n<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE\nDone.",
            2,
        );
        assert_eq!(v[0].path, "src/a.py");
        assert_eq!(v[1].path, "tests/t.py");
        assert_eq!(v[1].replace, "d\n");
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

    /// The path read from `path_line` above an unfenced block.
    fn path_of(path_line: &str) -> String {
        one(&format!(
            "{path_line}\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"
        ))
        .path
    }

    #[test]
    fn underscores_in_paths_survive() {
        for p in ["_pytest/config.py", "pkg/__init__.py", "__main__.py"] {
            assert_eq!(path_of(p), p);
            assert_eq!(path_of(&format!("**{p}**")), p);
        }
    }

    #[test]
    fn later_blocks_inherit_the_path() {
        let v = blocks(
            "src/a.py\n```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nc\n=======\nd\n>>>>>>> REPLACE\n```\nAnd also:\n```python\n<<<<<<< SEARCH\ne\n=======\nf\n>>>>>>> REPLACE\n```",
            3,
        );
        assert!(v.iter().all(|b| b.path == "src/a.py"));
        assert_eq!(v[2].search, "e\n");
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
        // More of [`ONE_BLOCK`]'s non-ASCII cases: decorations around non-ASCII paths, and
        // non-ASCII prose where a path line should be.
        for deco in ["**docs/é.md**", "File: docs/ü/ß.md", "# ドキュメント/a.md"] {
            let path = path_of(deco);
            assert!(path.ends_with(".md"), "{deco} -> {path}");
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
