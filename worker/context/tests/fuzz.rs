//! No panic on any input: the issue text (anyone who can file an issue writes it) and the
//! repository's files (a hostile repository writes them) go through every parser of the
//! selector: path and dotted mentions (URLs included), identifiers, stack-trace frames,
//! literal phrases, the noise and template blanking, the lexical pass with its method
//! shapes for every language, and the package signal (paths and package names). Strings mix ASCII code punctuation with multi-byte and
//! non-ASCII whitespace characters, where byte-offset slicing breaks.

use fleet_context::noise::{TemplateLines, blank_noise};
use fleet_context::walk::{FileRole, SourceFile};
use fleet_context::{issue, lexical, rank};
use proptest::prelude::*;

/// Text made of the pieces parsers split on: code punctuation, URL and path parts, keywords
/// and characters of 2, 3 and 4 bytes, among them whitespace that is not ASCII.
fn code_like_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "func ",
        "(p *T) ",
        "Name(",
        ")",
        " {",
        "}",
        ";",
        " = ",
        ": ",
        "=>",
        "function",
        "class ",
        "def ",
        "public ",
        "static ",
        "<T>",
        "[]",
        "\n",
        "\r\n",
        "\t",
        " ",
        "https://",
        "x.io/",
        "/blob/",
        "main/",
        "src/a.rs",
        "?file=/b.js",
        "#L1",
        "`",
        "\"",
        "'",
        "<!--",
        "-->",
        "**",
        "### ",
        "- [x] ",
        "label: ",
        "at com.x.Y.z(Y.java:12)",
        "File \"a.py\", line 3, in f",
        "Traceback (most recent call last):",
        "panicked at src/x.rs:1:2",
        "--flag",
        "Error: ",
        "é",
        "日本",
        "\u{3000}",
        "\u{a0}",
        "\u{2028}",
        "🦀",
        "x_y",
        "camelCase",
        "ñ(",
        "(ü",
    ]);
    prop::collection::vec(pieces, 0..80).prop_map(|v| v.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![code_like_text(), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_issue_parsers_never_panic(text in any_text(), template in any_text()) {
        let templates = TemplateLines::from_text(&template);
        let clean = blank_noise(&text, &|m| m == "sympy", &templates);
        prop_assert_eq!(clean.len(), text.len());
        let _ = issue::path_mentions(&text);
        let _ = issue::dotted_mentions(&text);
        let _ = issue::identifiers(&clean);
        let _ = issue::trace_frames(&text);
        let _ = issue::literal_phrases(&clean);
    }

    #[test]
    fn the_lexical_pass_never_panics(text in any_text()) {
        for path in ["a.go", "A.java", "a.js", "a.ts", "a.tsx", "a.py", "a.rs", "a.kt", "a"] {
            let scan = lexical::scan(path, &text, &Default::default());
            prop_assert!(scan.defs.windows(2).all(|w| w[0].line <= w[1].line));
        }
    }

    #[test]
    fn the_package_signal_never_panics(
        dirs in prop::collection::vec(any_text(), 1..6),
        text in any_text(),
    ) {
        // Paths built from hostile folder names, with manifests among them.
        let mut files = Vec::new();
        for (k, dir) in dirs.iter().enumerate() {
            let dir = dir.replace('\0', "");
            for name in ["package.json", "Cargo.toml", "src/lib.rs", "a-b_c/x.go"] {
                files.push(SourceFile {
                    path: format!("{dir}/{k}/{name}"),
                    text: text.clone(),
                    lang: None,
                    role: FileRole::Source,
                });
            }
        }
        let bm25 = vec![1.0; files.len()];
        // The issue names some of the folders, so the name matching runs on hostile names.
        let issue = format!("{text} {}", dirs.join(" ").to_uppercase());
        let signal = rank::package_signal(&files, &issue, &bm25);
        prop_assert_eq!(signal.len(), files.len());
        prop_assert!(signal.iter().all(|s| *s == 0.0 || *s == 1.0));
    }
}
