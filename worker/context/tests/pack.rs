//! Packing below the top 20: when the ranking misses, the fix is most often at ranks 21–40,
//! and a short excerpt of each of those files puts it in front of the LLM without starving
//! the best files.

use fleet_context::languages::Lang;
use fleet_context::pack::{self, Candidate, estimate_tokens};
use fleet_context::rank::IdentMatcher;
use fleet_context::tags::FileTags;
use fleet_context::{issue, tags};

/// A Python module too large to fit whole, defining `name` (a long function) among its
/// filler.
fn module(k: usize, name: &str) -> String {
    let mut text = format!("\"\"\"Module {k}.\"\"\"\nimport os\n\n");
    for i in 0..200 {
        text.push_str(&format!(
            "def helper_{k}_{i}(value, scale):\n    \"\"\"Scale the value.\"\"\"\n    return value * scale + {i}\n\n"
        ));
        if i == 100 {
            text.push_str(&format!(
                "def {name}(expr):\n    \"\"\"Print the expression.\"\"\"\n"
            ));
            for line in 0..60 {
                text.push_str(&format!("    expr = expr.replace('a{line}', 'b{line}')\n"));
            }
            text.push_str("    return str(expr)\n\n");
        }
    }
    text
}

/// 45 large modules, each defining a function the issue names (best first), and the issue's
/// matcher.
fn corpus() -> (Vec<(String, String)>, Vec<FileTags>, IdentMatcher) {
    let names: Vec<String> = (0..45).map(|k| format!("print_expression_{k}")).collect();
    let texts: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(k, name)| (format!("pkg/mod_{k:02}.py"), module(k, name)))
        .collect();
    let parsed: Vec<FileTags> = texts
        .iter()
        .map(|(_, t)| tags::extract(Lang::Python, t).unwrap())
        .collect();
    // The issue names the definition of every file: each file has something to show.
    let issue_text: String = names.iter().map(|n| format!("`{n}` ")).collect();
    let matcher = IdentMatcher::new(&issue::identifiers(&issue_text));
    (texts, parsed, matcher)
}

fn candidates<'a>(texts: &'a [(String, String)], parsed: &'a [FileTags]) -> Vec<Candidate<'a>> {
    texts
        .iter()
        .zip(parsed)
        .map(|((p, t), tags)| Candidate {
            path: p,
            text: t,
            definitions: Some(tags.definitions.as_slice()),
        })
        .collect()
}

#[test]
fn files_ranked_21_to_40_get_short_excerpts_and_the_best_keep_the_most() {
    let (texts, parsed, matcher) = corpus();
    let candidates = candidates(&texts, &parsed);
    let packed = pack::pack(&candidates, &matcher, 16_000);

    assert!(packed.tokens <= 16_000);
    let included = |k: usize| packed.included.contains(&texts[k].0);
    for k in 0..pack::MAX_CODE_FILES {
        assert!(
            included(k),
            "rank {} is in the context: {:?}",
            k + 1,
            packed.included
        );
    }
    assert!(!included(pack::MAX_CODE_FILES), "rank 41 is not");
    // The 35th file's excerpt is its matching definition, not only its head.
    assert!(packed.text.contains("def print_expression_34(expr):"));

    let section = |k: usize| {
        let header = format!("### {} (excerpts)\n", texts[k].0);
        let start = packed
            .text
            .find(&header)
            .expect("an excerpt, not the whole file");
        let end = packed.text[start + header.len()..]
            .find("\n### ")
            .map_or(packed.text.len(), |e| start + header.len() + e + 1);
        estimate_tokens(&packed.text[start..end])
    };
    assert!(section(34) <= pack::TAIL_FILE_TOKENS);
    assert!(
        section(0) > 5 * pack::TAIL_FILE_TOKENS && section(10) > 2 * pack::TAIL_FILE_TOKENS,
        "the best file {} and the 11th {} tokens",
        section(0),
        section(10)
    );
}

#[test]
fn a_small_budget_goes_to_the_best_files_first() {
    let (texts, parsed, matcher) = corpus();
    let candidates = candidates(&texts, &parsed);
    for (budget, at_least) in [(1_000, 3), (2_000, 6), (4_000, 12)] {
        let packed = pack::pack(&candidates, &matcher, budget);
        assert!(packed.tokens <= budget);
        let best: Vec<&String> = texts.iter().map(|(p, _)| p).take(at_least).collect();
        assert!(
            packed.included.len() >= at_least
                && packed
                    .included
                    .iter()
                    .take(at_least)
                    .eq(best.iter().copied()),
            "budget {budget}: {:?}",
            packed.included
        );
    }
}

#[test]
fn a_file_too_wide_for_an_excerpt_still_shows_its_signatures() {
    let (mut texts, _, matcher) = corpus();
    // Rank 21: every line is long (generated code), so no 100-token excerpt holds three.
    let params: Vec<String> = (0..25).map(|p| format!("argument_{p}")).collect();
    let wide: String = (0..40)
        .map(|k| {
            format!(
                "def generated_{k}({}): return {}\n",
                params.join(", "),
                params.join(" + ")
            )
        })
        .collect();
    texts[20] = ("pkg/generated.py".to_string(), wide);
    let parsed: Vec<FileTags> = texts
        .iter()
        .map(|(_, t)| tags::extract(Lang::Python, t).unwrap())
        .collect();
    let packed = pack::pack(&candidates(&texts, &parsed), &matcher, 16_000);
    let wide = "pkg/generated.py".to_string();
    assert!(!packed.included.contains(&wide), "{:?}", packed.included);
    assert!(packed.signatures.contains(&wide), "{:?}", packed.signatures);
    assert!(
        packed.included.contains(&texts[21].0),
        "the next file still gets its excerpt"
    );
}
