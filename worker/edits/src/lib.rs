//! SEARCH/REPLACE edits for the worker's QuickFix and Implement pipelines (issue 4, "Edits").
//!
//! An LLM answer is parsed into [`EditBlock`]s with [`parse_blocks`], then [`apply`]
//! resolves every block against the checkout in memory, checks the [`Policy`] (paths that
//! leave the repository, `.git/`, workflows and local actions, `PROTECTED_PATHS` globs,
//! the plan's file list, caps) and writes only
//! if everything succeeded. The [`Applied`] result carries each changed file's previous and
//! new content for the syntax gate, the diff and the PR body; an [`EditError`] renders
//! itself as repair-prompt text with [`EditError::feedback`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let answer = "src/a.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n```";
//! let blocks = fleet_edits::parse_blocks(answer)?;
//! match fleet_edits::apply(std::path::Path::new("/tmp/checkout"), &blocks, &Default::default()) {
//!     Ok(applied) => println!("{} files changed", applied.files.len()),
//!     Err(e) => println!("repair prompt:\n{}", e.feedback()),
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `parse`: the answer grammar and its tolerance ([`parse_blocks`], [`ParseError`]).
//! - `matching`: locating a SEARCH text (exact, trailing whitespace, indentation),
//!   re-indenting the replacement, line endings, closest-lines hints ([`Matching`],
//!   [`MatchKind`]).
//! - `safety`: [`Policy`] and the path checks ([`Refusal`]).
//! - `protected`: the `PROTECTED_PATHS` glob syntax and matching.
//! - `apply`: the all-or-nothing transaction, [`Applied`], [`EditError`] and its feedback.
//! - `benches/real_history.rs`: applies real commits of mirrored repositories as blocks,
//!   with and without the perturbations models make (see the README).

mod apply;
mod matching;
mod parse;
mod protected;
mod safety;

pub use apply::{Applied, ChangedFile, Closest, EditError, apply, apply_with, preview};
pub use matching::{MatchKind, Matching};
pub use parse::{EditBlock, ParseError, parse_blocks};
pub use safety::{PathFault, Policy, Refusal, relative_path};
