//! Tests of the untrusted-text sanitizer: each hidden form, what must survive, the cap, and
//! property tests (bounded "fuzzing", `FUZZ_CASES` cases, default 512) that no input panics
//! it, that no comment survives outside code, and that the output respects the cap.

use super::*;
use proptest::prelude::*;

fn clean(s: &str) -> String {
    sanitize(s, DEFAULT_MAX_BYTES)
}

#[test]
fn each_hidden_form_is_removed() {
    for (input, want) in [
        ("a<!-- secret -->b", "ab"),
        ("a\n<!--\nsecret\n-->\nb", "a\n\nb"),
        ("a<!-- never closed\nsecret", "a"),
        ("a<!-->b", "ab"),
        ("[//]: # (secret)\nvisible", "visible"),
        (
            "visible\n\n[x]: <> (secret)\n[x]: <> (secret two)",
            "visible",
        ),
        ("> quote\n>\n> [y]: /u 'secret'\n", "> quote\n>\n>"),
        ("- item\n- [z]: <> (secret)", "- item\n-"),
        ("<div hidden><div>a</div>secret</div>visible", "visible"),
        (
            "<div hidden>\n\n## secret\n\n```\n</div>\n```\n\n</div>\nvisible",
            "visible",
        ),
        (
            "<span style=\"display: NONE\">secret</span>visible",
            "visible",
        ),
        ("<p style='font-size:0px'>secret</p>visible", "visible"),
        ("<input type=hidden value=secret>visible", "visible"),
        ("<style>body{} secret</style>visible", "visible"),
        ("<script>secret()</script>visible", "visible"),
        ("<SCRIPT >secret</Script >visible", "visible"),
        ("<?php secret ?>visible", "visible"),
        ("<![CDATA[secret]]>visible", "visible"),
        ("vis\u{200B}i\u{202E}ble\u{E0041}\u{7}", "visible"),
        ("<!\u{200B}-- secret -->visible", "visible"),
        ("<div hidden>unclosed secret", ""),
    ] {
        assert_eq!(clean(input), want, "input {input:?}");
    }
}

#[test]
fn visible_text_is_kept() {
    for keep in [
        "Fix `a < b` in <kbd>Ctrl</kbd>",
        "<details><summary>Logs</summary>\n\nstack trace\n</details>",
        "Use `<!-- comment -->` in templates",
        "```html\n<!-- kept: it is shown as code -->\n<div hidden>shown</div>\n```",
        "    <!-- indented code is code too -->",
        "[link][ref] and [text](https://x.y)",
        "Footnote[^1].\n\n[^1]: The note is visible.",
        "a <= b && c > d, 1 < 2",
        "<https://example.com/autolink>",
        "# Title\n\nSub\n===\n\n***\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "日本語のテキスト <b>太字</b>",
        "<div aria-hidden=\"true\">read aloud off, still shown</div>",
    ] {
        assert_eq!(clean(keep), keep.trim(), "input {keep:?}");
    }
}

#[test]
fn nested_hidden_elements_take_their_tail() {
    let out = clean("<div hidden><div><span>a</span></div>TAIL<p>b</p>TAIL2</div>shown");
    assert_eq!(out, "shown");
    // A close tag of another name inside does not end the hidden element early.
    assert_eq!(clean("<div hidden></span>secret</div>shown"), "shown");
    assert_eq!(
        clean("<span hidden><img src=x>secret<br/>x</span>shown"),
        "shown"
    );
}

#[test]
fn the_cap_cuts_at_a_character_boundary_with_a_note() {
    let body = "日本語".repeat(20_000);
    let out = sanitize(&body, 1000);
    let note = cut_note(1000);
    assert!(out.ends_with(&note), "{out}");
    let kept = &out[..out.len() - note.len()];
    assert!(kept.len() <= 1000 && kept.len() > 990, "{}", kept.len());
    assert!(kept.chars().all(|c| "日本語".contains(c)));
    assert_eq!(sanitize("short", 1000), "short");
    // Hidden text does not count against the cap.
    let hidden = format!("<!-- {} -->shown", "x".repeat(5000));
    assert_eq!(sanitize(&hidden, 1000), "shown");
    // Input past the raw limit is cut before cleaning, and says so.
    let huge = "a".repeat(RAW_MAX_BYTES + 10);
    assert!(sanitize(&huge, 2 * RAW_MAX_BYTES).ends_with(&cut_note(2 * RAW_MAX_BYTES)));
}

#[test]
fn hostile_shapes_stay_linear() {
    let n = 100_000;
    let inputs = [
        "<a ".repeat(n),
        "<a b='".repeat(n),
        "<!--".repeat(n),
        "<div hidden>".repeat(n),
        "</div>".repeat(n),
        "<div hidden><b>".repeat(n / 2) + &"</i>".repeat(n),
        "<![CDATA[".repeat(n),
        "<?".repeat(n),
        "<!x".repeat(n),
        "[a]: b\n".repeat(n),
        "> - ".repeat(n),
        "`".repeat(n),
        "<style>".repeat(n),
        format!("<a x=\"{}", "<".repeat(n)),
    ];
    for input in inputs {
        let started = std::time::Instant::now();
        let _ = sanitize(&input, DEFAULT_MAX_BYTES);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(3),
            "{:?}...: {took:?}",
            &input[..20]
        );
    }
}

/// The fixed pieces of [`piece`] (each as likely as one of its patterns).
const PIECES: &[&str] = &[
    "<!--",
    "-->",
    "--!>",
    "<div hidden>",
    "<div>",
    "</div>",
    "<span style=\"display:none\">",
    "</span>",
    "<style>",
    "</style>",
    "[//]: # (x)",
    "[x]: <> (y)",
    ">",
    "-",
    "1.",
    "#",
    "[^1]:",
    "<",
    "\n",
    "\n\n",
    "\u{200B}",
    "日本",
];

/// Markup pieces without backticks, tildes or runs of spaces: documents built from them
/// hold no code, so no `<!--` may survive anywhere.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        22 => prop::sample::select(PIECES).prop_map(str::to_owned),
        1 => "[a-z]{1,6}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec((piece(), prop::bool::ANY), 0..40).prop_map(|v| {
        v.into_iter()
            .map(|(p, space)| if space { p + " " } else { p })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: testkit::knobs::fuzz_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_respects_the_cap(s in "\\PC*", max in 0usize..200) {
        let out = sanitize(&s, max);
        prop_assert!(out.len() <= max + cut_note(max).len(), "{} > {max}", out.len());
    }

    #[test]
    fn no_comment_or_invisible_survives(s in document(), max in 1usize..400) {
        let out = sanitize(&s, max);
        prop_assert!(!out.contains("<!--"), "{s:?} -> {out:?}");
        prop_assert!(!out.contains('\u{200B}'), "{s:?} -> {out:?}");
        prop_assert!(out.len() <= max + cut_note(max).len());
    }

    #[test]
    fn hidden_secret_never_survives(before in document(), after in document()) {
        // A closed hidden element or comment in well-formed surroundings.
        for hidden in ["<!-- SECRET -->", "<div hidden><div>a</div>SECRET</div>", "\n\n[//]: # (SECRET)\n\n"] {
            let s = format!("{before}\n\n{hidden}\n\n{after}");
            let out = clean(&s);
            prop_assert!(!out.contains("SECRET"), "{s:?} -> {out:?}");
        }
    }
}
