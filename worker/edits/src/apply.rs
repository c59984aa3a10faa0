//! Applying parsed blocks to a checkout, all or nothing.
//!
//! Owns the transaction: every block is resolved against in-memory file contents first
//! (blocks on one file apply in answer order, each to the result of the previous one), all
//! block failures are collected so one repair prompt can name them all, the caps of the
//! [`Policy`] are checked on the final contents, and only then is anything written. A
//! write failure part-way restores what was already written. Also owns [`EditError`] and
//! its repair-prompt rendering.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::matching::{Lines, MatchFailure, MatchKind, Matching, common_ends};
use crate::parse::EditBlock;
use crate::safety::{Policy, Refusal, check_fs, normalize};

/// The result of a successful [`apply`]: what changed, for the syntax gate, the diff and
/// the PR body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Changed files in order of first appearance in the answer. A file whose blocks left it
    /// byte-identical is not listed.
    pub files: Vec<ChangedFile>,
    /// How each block matched, in answer order (one entry per block).
    pub blocks: Vec<MatchKind>,
    /// Bytes changed, as counted against [`Policy::max_bytes_changed`].
    pub bytes_changed: usize,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Normalized path relative to the repository root (`a/b.py`).
    pub path: String,
    /// Content before the edit; `None` when the edit created the file.
    pub previous: Option<String>,
    /// Content after the edit, with the file's line endings.
    pub new: String,
}

/// The closest lines to an unmatched SEARCH text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closest {
    /// 1-based line number of `lines[0]` in the file.
    pub first_line: usize,
    pub lines: Vec<String>,
}

/// Why an answer was not applied. Nothing was written in any case.
///
/// `block` fields are 1-based positions in the answer; `path` is the path as written by the
/// model. [`EditError::feedback`] renders the message for the repair prompt.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("block {block}: path `{path}` refused: {reason}")]
    Refused {
        block: usize,
        path: String,
        reason: Refusal,
    },
    #[error("block {block}: `{path}` does not exist and SEARCH is not empty")]
    NotFound { block: usize, path: String },
    #[error("block {block}: `{path}` already exists and SEARCH is empty")]
    AlreadyExists { block: usize, path: String },
    #[error("block {block}: `{path}` is not UTF-8 text")]
    NotText { block: usize, path: String },
    #[error("block {block}: SEARCH not found in `{path}`")]
    Unmatched {
        block: usize,
        path: String,
        search: String,
        closest: Option<Closest>,
    },
    #[error("block {block}: SEARCH matches {count} places in `{path}` (lines {lines:?})")]
    Ambiguous {
        block: usize,
        path: String,
        count: usize,
        /// 1-based first lines of (up to ten of) the matches.
        lines: Vec<usize>,
        /// The level of the matching ladder at which several places matched.
        kind: MatchKind,
    },
    #[error("the answer changes {count} files; the limit is {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("the answer changes {bytes} bytes; the limit is {max}")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("repository root `{}` is unusable: {source}", root.display())]
    Root {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("could not {op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{} blocks failed: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<EditError>),
}

/// Lines of an unmatched SEARCH quoted back in feedback, at most.
const QUOTE_LINES: usize = 30;

impl EditError {
    /// The errors this one stands for (itself, or the members of `Several`).
    pub fn errors(&self) -> Vec<&EditError> {
        match self {
            EditError::Several(v) => v.iter().collect(),
            e => vec![e],
        }
    }

    /// An actionable message for the repair prompt: which block, which file, why, and what
    /// to send instead (with the closest existing lines when a SEARCH did not match).
    pub fn feedback(&self) -> String {
        match self {
            EditError::Several(v) => {
                let mut s = format!(
                    "{} blocks of your answer could not be applied, so none of its blocks was applied. Send all blocks again (also the ones not listed here), with these fixed:\n",
                    v.len()
                );
                for (i, e) in v.iter().enumerate() {
                    let _ = write!(s, "\n{}. {}\n", i + 1, e.one_feedback());
                }
                s
            }
            e => format!(
                "{}\n\nNothing from your answer was applied. Send all blocks again, with this fixed.",
                e.one_feedback()
            ),
        }
    }

    fn one_feedback(&self) -> String {
        match self {
            EditError::Refused {
                block,
                path,
                reason,
            } => format!("Block {block} edits `{path}`, which is refused: {reason}."),
            EditError::NotFound { block, path } => format!(
                "Block {block}: `{path}` does not exist. To create a new file leave its SEARCH section empty; to change an existing file use its exact path relative to the repository root."
            ),
            EditError::AlreadyExists { block, path } => format!(
                "Block {block}: `{path}` already exists, so the SEARCH section may not be empty. Copy the existing lines to replace into SEARCH."
            ),
            EditError::NotText { block, path } => format!(
                "Block {block}: `{path}` is not a UTF-8 text file and cannot be changed with SEARCH/REPLACE blocks; leave it out."
            ),
            EditError::Unmatched {
                block,
                path,
                search,
                closest,
            } => {
                let mut s = format!(
                    "Block {block}: the SEARCH section matches no lines of `{path}`. SEARCH must copy existing lines exactly (only whitespace differences are tolerated). Your SEARCH section was:\n```\n{}```\n",
                    quote(search)
                );
                match closest {
                    Some(c) if !c.lines.is_empty() => {
                        let _ = write!(
                            s,
                            "The most similar lines of `{path}` are lines {}-{}:\n```\n{}\n```\n",
                            c.first_line,
                            c.first_line + c.lines.len() - 1,
                            c.lines.join("\n")
                        );
                    }
                    _ => s.push_str("No similar lines were found in the file; check the path.\n"),
                }
                s.push_str("Resend the block with SEARCH copied from the current file content.");
                s
            }
            EditError::Ambiguous {
                block,
                path,
                count,
                lines,
                ..
            } => {
                let at = lines
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = if *count > lines.len() { ", ..." } else { "" };
                format!(
                    "Block {block}: the SEARCH section matches {count} places in `{path}` (starting at lines {at}{more}). Add neighbouring lines to SEARCH (and the same lines to REPLACE) so that it matches exactly one place."
                )
            }
            EditError::TooManyFiles { count, max } => format!(
                "The answer changes {count} files, but at most {max} may change in one answer. Make a smaller, focused change."
            ),
            EditError::TooManyBytes { bytes, max } => format!(
                "The answer changes {bytes} bytes, but at most {max} may change in one answer. Make a smaller, focused change; do not rewrite whole files."
            ),
            e @ (EditError::Root { .. } | EditError::Io { .. } | EditError::Several(_)) => {
                format!("The edit could not be applied: {e}.")
            }
        }
    }
}

fn quote(search: &str) -> String {
    let lines: Vec<&str> = search.lines().collect();
    if lines.len() <= QUOTE_LINES {
        return search.to_string();
    }
    let mut s = lines[..QUOTE_LINES].join("\n");
    let _ = writeln!(s, "\n... ({} more lines)", lines.len() - QUOTE_LINES);
    s
}

/// Applies `blocks` to the checkout at `repo_root` with the tolerant matcher.
///
/// All or nothing: on `Err`, no file was created, changed or removed.
pub fn apply(
    repo_root: &Path,
    blocks: &[EditBlock],
    policy: &Policy,
) -> Result<Applied, EditError> {
    apply_with(repo_root, blocks, policy, Matching::Tolerant)
}

/// [`apply`] with a chosen [`Matching`] (the benchmark's exact-only baseline uses this).
pub fn apply_with(
    repo_root: &Path,
    blocks: &[EditBlock],
    policy: &Policy,
    matching: Matching,
) -> Result<Applied, EditError> {
    let (root, applied) = compute(repo_root, blocks, policy, matching)?;
    write_all(&root, &applied)?;
    Ok(applied)
}

/// Everything [`apply`] does except writing: the new contents, or the error `apply` would
/// return. Useful to run the syntax gate before touching the checkout.
pub fn preview(
    repo_root: &Path,
    blocks: &[EditBlock],
    policy: &Policy,
    matching: Matching,
) -> Result<Applied, EditError> {
    compute(repo_root, blocks, policy, matching).map(|(_, a)| a)
}

struct FileState {
    rel: String,
    previous: Option<String>,
    /// `None` while the file does not exist (yet).
    lines: Option<Lines>,
}

fn compute(
    repo_root: &Path,
    blocks: &[EditBlock],
    policy: &Policy,
    matching: Matching,
) -> Result<(PathBuf, Applied), EditError> {
    // Canonical root: symlink checks compare resolved paths against it.
    let root = std::fs::canonicalize(repo_root).map_err(|source| EditError::Root {
        root: repo_root.to_path_buf(),
        source,
    })?;
    let mut files: Vec<FileState> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut errors: Vec<EditError> = Vec::new();
    let mut kinds = Vec::with_capacity(blocks.len());

    for (i, b) in blocks.iter().enumerate() {
        let block = i + 1;
        let refused = |reason| EditError::Refused {
            block,
            path: b.path.clone(),
            reason,
        };
        let rel = match normalize(&b.path, policy) {
            Ok(r) => r,
            Err(reason) => {
                errors.push(refused(reason));
                continue;
            }
        };
        let idx = match index.get(&rel) {
            Some(&idx) => idx,
            None => {
                let checked = match check_fs(&root, &rel) {
                    Ok(c) => c,
                    Err(reason) => {
                        errors.push(refused(reason));
                        continue;
                    }
                };
                let previous = if checked.exists {
                    let bytes = std::fs::read(&checked.abs).map_err(|source| EditError::Io {
                        op: "read",
                        path: rel.clone(),
                        source,
                    })?;
                    match String::from_utf8(bytes) {
                        Ok(s) => Some(s),
                        Err(_) => {
                            errors.push(EditError::NotText {
                                block,
                                path: b.path.clone(),
                            });
                            continue;
                        }
                    }
                } else {
                    None
                };
                files.push(FileState {
                    rel: checked.rel,
                    lines: previous.as_deref().map(Lines::parse),
                    previous,
                });
                index.insert(rel, files.len() - 1);
                files.len() - 1
            }
        };
        let state = &mut files[idx];
        if b.search.trim().is_empty() {
            // Creation. An existing but empty file counts as absent: models create
            // `__init__.py`-style files that a previous step left empty.
            let empty = state
                .lines
                .as_ref()
                .is_none_or(|l| l.render().trim().is_empty());
            if !empty {
                errors.push(EditError::AlreadyExists {
                    block,
                    path: b.path.clone(),
                });
                continue;
            }
            state.lines = Some(Lines::parse(&b.replace));
            kinds.push(MatchKind::Created);
            continue;
        }
        let Some(lines) = state.lines.as_mut() else {
            errors.push(EditError::NotFound {
                block,
                path: b.path.clone(),
            });
            continue;
        };
        match lines.replace(&b.search, &b.replace, matching) {
            Ok(kind) => kinds.push(kind),
            Err(MatchFailure::Unmatched { closest }) => errors.push(EditError::Unmatched {
                block,
                path: b.path.clone(),
                search: b.search.clone(),
                closest: closest.map(|(first_line, lines)| Closest { first_line, lines }),
            }),
            Err(MatchFailure::Ambiguous { count, lines, kind }) => {
                errors.push(EditError::Ambiguous {
                    block,
                    path: b.path.clone(),
                    count,
                    lines,
                    kind,
                })
            }
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(EditError::Several(errors)),
    }

    let mut changed = Vec::new();
    let mut bytes_changed = 0;
    for f in files {
        let Some(lines) = f.lines else { continue };
        let new = lines.render();
        if f.previous.as_deref() == Some(new.as_str()) {
            continue;
        }
        bytes_changed += changed_bytes(f.previous.as_deref().unwrap_or(""), &new);
        changed.push(ChangedFile {
            path: f.rel,
            previous: f.previous,
            new,
        });
    }
    if changed.len() > policy.max_files {
        return Err(EditError::TooManyFiles {
            count: changed.len(),
            max: policy.max_files,
        });
    }
    if bytes_changed > policy.max_bytes_changed {
        return Err(EditError::TooManyBytes {
            bytes: bytes_changed,
            max: policy.max_bytes_changed,
        });
    }
    Ok((
        root,
        Applied {
            files: changed,
            blocks: kinds,
            bytes_changed,
        },
    ))
}

/// Old plus new length of the span between the common prefix and the common suffix: a
/// cheap, diff-free size of a change that does not count untouched context.
fn changed_bytes(old: &str, new: &str) -> usize {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let (prefix, suffix) = common_ends(a, b, |x, y| x == y);
    (a.len() - prefix - suffix) + (b.len() - prefix - suffix)
}

/// Writes every changed file; on the first failure restores what was written and removes
/// the directories it created, so the checkout is as before.
fn write_all(root: &Path, applied: &Applied) -> Result<(), EditError> {
    let mut written: Vec<&ChangedFile> = Vec::new();
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    for f in &applied.files {
        let abs = root.join(&f.path);
        let result = (|| {
            if let Some(parent) = abs.parent() {
                // Remember which directories did not exist, deepest last, for the rollback.
                let mut missing = Vec::new();
                let mut p = parent;
                while !p.exists() {
                    missing.push(p.to_path_buf());
                    match p.parent() {
                        Some(pp) => p = pp,
                        None => break,
                    }
                }
                std::fs::create_dir_all(parent)?;
                created_dirs.extend(missing.into_iter().rev());
            }
            // In place rather than rename: keeps the file's mode (executable scripts) and
            // hard links.
            std::fs::write(&abs, &f.new)
        })();
        if let Err(source) = result {
            for w in written.iter().rev() {
                let p = root.join(&w.path);
                let _ = match &w.previous {
                    Some(prev) => std::fs::write(&p, prev),
                    None => std::fs::remove_file(&p),
                };
            }
            // The failing write itself may have truncated the file.
            let _ = match &f.previous {
                Some(prev) => std::fs::write(&abs, prev),
                None => std::fs::remove_file(&abs),
            };
            for d in created_dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(EditError::Io {
                op: "write",
                path: f.path.clone(),
                source,
            });
        }
        written.push(f);
    }
    Ok(())
}
