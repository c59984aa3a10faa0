//! `parse` on the contract's example, on broken files (the error's line), on unknown keys
//! (warnings), and on arbitrary input (no panic: bounded property tests, `FUZZ_CASES`).

use super::*;
use proptest::prelude::*;

const EXAMPLE: &str = "\
enabled: true                  # false: every task is refused with a comment
triggers:
  allowed_users: [dev1]        # besides write permission; empty = anyone with write
  allowed_teams: [acme/core]   # GitHub teams (org/slug)
  labels: [bug, enhancement]   # issue must carry one of these (empty = any)
base_branch: main              # default: the repository's default branch
setup:                         # run once before the first check
  - python3 -m pip install -e .
checks:                        # run after the edits pass the syntax gate, in order
  - name: tests
    run: python3 -m pytest -q
    timeout_secs: 300          # default CHECK_TIMEOUT_SECS
repair_rounds: 2               # rounds fed with failing checks (0 = report only)
on_failure: draft              # draft: open a draft PR showing the failures | none: no PR
network: false                 # true: setup and checks may use the network
";

#[test]
fn the_documented_example_parses_to_its_values() {
    let parsed = parse(".agent-fleet.yml", EXAMPLE).expect("valid");
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let config = parsed.config;
    assert!(config.enabled);
    assert_eq!(config.triggers.allowed_users, ["dev1"]);
    assert_eq!(config.triggers.allowed_teams, ["acme/core"]);
    assert_eq!(config.triggers.labels, ["bug", "enhancement"]);
    assert_eq!(config.base_branch.as_deref(), Some("main"));
    assert_eq!(config.setup, ["python3 -m pip install -e ."]);
    let checks = config.checks.expect("checks");
    assert_eq!(checks[0].name, "tests");
    assert_eq!(checks[0].run, "python3 -m pytest -q");
    assert_eq!(checks[0].timeout_secs, Some(300));
    assert_eq!(config.repair_rounds, 2);
    assert_eq!(config.on_failure, OnFailure::Draft);
    assert!(!config.network);
}

#[test]
fn an_empty_or_comment_only_file_is_all_defaults() {
    for text in ["", "\n\n", "# nothing yet\n", "---\n"] {
        let parsed = parse(".agent-fleet.yml", text).expect("blank is fine");
        assert_eq!(parsed.config, RepoConfig::default());
    }
    let config = parse(".agent-fleet.yml", "checks: []\n")
        .expect("valid")
        .config;
    assert_eq!(
        config.checks,
        Some(Vec::new()),
        "explicitly none: no detection"
    );
}

#[test]
fn unknown_keys_are_warnings_naming_their_path() {
    let text =
        "enabled: true\ncheks: []\nchecks:\n  - name: t\n    run: make test\n    timout: 5\n";
    let parsed = parse(".agent-fleet.yml", text).expect("still valid");
    assert_eq!(
        parsed.warnings,
        [
            "unknown key `cheks` (ignored)",
            "unknown key `checks.0.timout` (ignored)"
        ]
    );
}

fn refused(text: &str) -> ConfigError {
    parse(".github/agent-fleet.yml", text).expect_err("must be refused")
}

#[test]
fn type_errors_name_the_file_and_the_line() {
    let error = refused("enabled: true\nrepair_rounds: many\n");
    assert_eq!(error.line, Some(2), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(".github/agent-fleet.yml, line 2: "),
        "{error}"
    );
    assert!(error.message.contains("repair_rounds"), "{error}");

    let error = refused("on_failure: explode\n");
    assert_eq!(error.line, Some(1), "{error}");
    assert!(
        error.message.contains("draft"),
        "says what is allowed: {error}"
    );

    let error = refused("checks:\n  - name: tests\n    timeout_secs: 5\n");
    assert!(
        error.message.contains("run"),
        "a missing field is named: {error}"
    );

    let error = refused("enabled: [\n");
    assert!(error.line.is_some(), "syntax errors have a line: {error}");
}

#[test]
fn rules_beyond_types_are_refused_with_their_line() {
    let cases = [
        ("base_branch: -upload-pack=evil\n", 1, "branch name"),
        ("repair_rounds: 50\n", 1, "more than"),
        ("triggers:\n  allowed_teams: [core]\n", 2, "org/slug"),
        (
            "checks:\n  - name: a\n    run: x\n  - name: a\n    run: y\n",
            2,
            "two checks",
        ),
        (
            "checks:\n  - name: slow\n    run: x\n    timeout_secs: 99999\n",
            2,
            "more than",
        ),
        ("checks:\n  - name: t\n    run: '  '\n", 2, "empty `run`"),
        (
            "checks:\n  - name: \"**all passed** @org/team\"\n    run: x\n",
            2,
            "must be at most 64 letters",
        ),
        ("checks:\n  - name: setup\n    run: x\n", 2, "not `setup`"),
    ];
    for (text, line, says) in cases {
        let error = refused(text);
        assert_eq!(error.line, Some(line), "{text}: {error}");
        assert!(error.message.contains(says), "{text}: {error}");
    }
    assert!(
        refused(&"#".repeat(MAX_CONFIG_BYTES + 1))
            .message
            .contains("at most")
    );
}

/// Text made of YAML's own punctuation and the config's keys, so the parser is pushed
/// into its corners rather than rejecting at the first byte.
fn yamlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "enabled: ",
        "checks:",
        "  - name: ",
        "    run: ",
        "timeout_secs: ",
        "triggers:",
        "  labels: ",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a ",
        "<<: *a",
        "- ",
        ": ",
        "\n",
        "  ",
        "'",
        "\"",
        "#",
        "|\n",
        ">-\n",
        "!!binary ",
        "!tag ",
        "~",
        "true",
        "42",
        "-1",
        "1e999",
        "日本",
        "\u{0}",
        "\t",
        "---\n",
        "...\n",
        "%YAML 1.2\n",
        "? ",
    ]);
    prop::collection::vec(atoms, 0..64).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(testkit::knobs::fuzz_cases()))]

    #[test]
    fn no_input_panics(text in yamlish()) {
        let _ = parse(".agent-fleet.yml", &text);
    }

    #[test]
    fn no_bytes_panic(text in ".{0,400}") {
        let _ = parse(".agent-fleet.yml", &text);
    }
}

#[test]
fn alias_bombs_are_never_expanded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    // 10^12 nodes if expanded. Under unknown keys it is passed over without expanding.
    let parsed = parse(".agent-fleet.yml", &text).expect("unknown keys are skipped");
    assert_eq!(parsed.warnings.len(), 12);
    // Where a value is read, it is refused at its first wrong type, not expanded.
    text.push_str("setup: *a11\n");
    let error = parse(".agent-fleet.yml", &text).expect_err("a bomb is refused");
    assert!(error.message.contains("setup"), "{error}");
}
