//! Property tests ("fuzzing" that runs in `cargo test`) of the SEARCH/REPLACE parser and
//! the path policy: no input, however hostile or non-ASCII, may panic them, and what they
//! accept keeps its invariants.
//!
//! The case count is fixed (`FUZZ_CASES`, default 512) so the run is bounded; raise it for
//! a longer local session: `FUZZ_CASES=20000 cargo test -p fleet-edits --test fuzz_parse`.

use fleet_edits::{EditBlock, Matching, Policy, parse_blocks, preview};
use proptest::prelude::*;
use testkit::fuzz::piece;

/// The fixed pieces of [`answer`] (each as likely as one of its patterns).
const PIECES: &[&str] = &[
    "<<<<<<< SEARCH",
    ">>>>>>> REPLACE",
    "=======",
    "```",
    "```python",
    "~~~",
    "File: ",
    "file path:",
    "**",
    "__",
    "`",
    "docs/日本語.md",
    "修复如下：",
    "é",
    "\r",
    "\n",
    " ",
    "# ",
    "- ",
    "./",
];

/// Answers built from pieces models actually send, mixed with multi-byte text: the
/// grammar's edges.
fn answer() -> impl Strategy<Value = String> {
    let piece = piece(PIECES, 20, &["\\PC{0,12}", "[a-z/._]{1,10}"]);
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(testkit::fuzz::config())]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = parse_blocks(&s);
    }

    #[test]
    fn parser_never_panics_on_grammar_pieces(s in answer()) {
        if let Ok(blocks) = parse_blocks(&s) {
            for b in &blocks {
                // Sections are whole lines, and the path is one trimmed line.
                prop_assert!(b.search.is_empty() || b.search.ends_with('\n'));
                prop_assert!(b.replace.is_empty() || b.replace.ends_with('\n'));
                prop_assert!(!b.path.contains('\n') && !b.path.is_empty());
            }
        }
    }

    #[test]
    fn canonical_blocks_round_trip(
        path in "[a-zA-Z0-9_日本語é/-]{1,20}\\.[a-z]{1,4}",
        search in prop::collection::vec("[^\\r\\n<>=`~]{0,20}", 0..5),
        replace in prop::collection::vec("[^\\r\\n<>=`~]{0,20}", 0..5),
    ) {
        let join = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
        let block = EditBlock { path: path.clone(), search: join(&search), replace: join(&replace) };
        let parsed = parse_blocks(&block.to_string()).expect("a canonical block parses");
        prop_assert_eq!(parsed, vec![block]);
    }

    /// The path policy on model-written paths: never a panic, and a refusal for every
    /// spelling of the protected directories.
    #[test]
    fn path_policy_never_panics(
        path in "\\PC{0,40}",
        pre in prop_oneof![Just(""), Just("./"), Just(".//"), Just("././")],
        mid in prop_oneof![Just(""), Just("./"), Just("/"), Just("\\"), Just(".\\")],
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let policy = Policy {
            protected_paths: vec!["deploy/**".into(), "*.pem".into(), "\\PC".into()],
            ..Policy::default()
        };
        let blocks = [EditBlock { path: path.clone(), search: String::new(), replace: "x\n".into() }];
        let _ = preview(tmp.path(), &blocks, &policy, Matching::default());
        let hostile = format!("{pre}.GitHub/{mid}aCtions/{path}a.yml");
        let blocks = [EditBlock { path: hostile.clone(), search: String::new(), replace: "x\n".into() }];
        prop_assert!(preview(tmp.path(), &blocks, &policy, Matching::default()).is_err(), "{hostile} accepted");
    }
}
