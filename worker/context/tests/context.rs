//! Behaviour of the context selector: per-language tags from small fixtures, issue
//! parsing (stack traces, mentions, identifiers), ranking signals, packing within the
//! budget (checked against a real tokenizer), and whole selections on awkward folders.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use fleet_context::issue::{self, Frame, IssueIdent};
use fleet_context::languages::{Lang, language_for_path};
use fleet_context::lexical;
use fleet_context::pack::{self, Candidate, estimate_tokens};
use fleet_context::rank::{self, IdentMatcher, NameMatch, PathIndex};
use fleet_context::tags::{self, FileTags};
use fleet_context::walk::{self, FileRole};
use fleet_context::{SelectOptions, select};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> String {
    fs::read_to_string(Path::new(FIXTURES).join(name)).expect("fixture")
}

fn tags_of(name: &str) -> FileTags {
    let lang = Lang::from_path(Path::new(name)).expect("known language");
    tags::extract(lang, &fixture(name)).expect("tags")
}

fn def_kinds(t: &FileTags) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = t
        .definitions
        .iter()
        .map(|d| (d.name.clone(), d.kind.clone()))
        .collect();
    v.sort();
    v
}

fn has_refs(t: &FileTags, names: &[&str]) {
    for n in names {
        assert!(
            t.references.iter().any(|r| r == n),
            "reference {n} missing from {:?}",
            t.references
        );
    }
}

/// Checks a fixture's definitions (name, kind; in any order) and that it references every
/// name in `refs`; returns its tags for further checks.
fn assert_tags(name: &str, defs: &[(&str, &str)], refs: &[&str]) -> FileTags {
    let t = tags_of(name);
    assert_eq!(def_kinds(&t), pairs(defs), "{name}");
    has_refs(&t, refs);
    t
}

/// A frame as the tests check it: (path, function, depth).
type FrameRow = (&'static str, Option<&'static str>, usize);

/// Checks the frames found in `text`: (path, function, depth) each, in order.
fn assert_frames(text: &str, expected: &[FrameRow]) {
    let frames = issue::trace_frames(text);
    let got: Vec<(&str, Option<&str>, usize)> = frames
        .iter()
        .map(|f| (f.path.as_str(), f.function.as_deref(), f.depth))
        .collect();
    assert_eq!(got, expected, "{text}");
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

// ---- languages and tags -------------------------------------------------------------

#[test]
fn every_tags_query_compiles_against_its_grammar() {
    for lang in Lang::ALL {
        lang.tags_query()
            .unwrap_or_else(|e| panic!("{}: {e}", lang.name()));
    }
}

#[test]
fn language_table_maps_paths() {
    assert!(language_for_path(Path::new("a/b.py")).is_some());
    assert_eq!(Lang::from_path(Path::new("x/App.TSX")), Some(Lang::Tsx));
    assert_eq!(Lang::from_path(Path::new("main.go")), Some(Lang::Go));
    assert_eq!(
        Lang::from_path(Path::new("lib.mjs")),
        Some(Lang::JavaScript)
    );
    assert!(language_for_path(Path::new("README.md")).is_none());
    assert!(language_for_path(Path::new("Makefile")).is_none());
}

#[test]
fn python_definitions_and_references() {
    let t = assert_tags(
        "sample.py",
        &[
            ("LIMIT", "constant"),
            ("LatexPrinter", "class"),
            ("_print_Matrix", "function"),
            ("latex", "function"),
        ],
        &[
            "Printer",
            "OrderedDict",
            "render",
            "LatexPrinter",
            "doprint",
        ],
    );
    let latex = t.definitions.iter().find(|d| d.name == "latex").unwrap();
    assert_eq!((latex.start_line, latex.end_line), (12, 13));
}

#[test]
fn rust_definitions_and_references() {
    assert_tags(
        "sample.rs",
        &[
            ("Budget", "class"),
            ("Mode", "class"),
            ("Render", "interface"),
            ("format_mode", "function"),
            ("pack_all", "function"),
            ("remaining", "function"),
            ("render", "function"),
        ],
        &["remaining", "format_mode", "println", "Budget", "Mode"],
    );
}

#[test]
fn javascript_definitions_and_references() {
    assert_tags(
        "sample.js",
        &[
            ("Loader", "class"),
            ("load", "method"),
            ("makeLoader", "function"),
            ("parseConfig", "function"),
        ],
        &["parseConfig", "readFile", "parse", "Loader"],
    );
}

#[test]
fn typescript_definitions_and_references() {
    assert_tags(
        "sample.ts",
        &[
            ("Mode", "type"),
            ("Options", "interface"),
            ("Selector", "class"),
            ("pickMode", "function"),
            ("select", "method"),
        ],
        &["pickMode", "Options", "Mode"],
    );
}

#[test]
fn tsx_definitions_and_references() {
    assert_tags(
        "sample.tsx",
        &[
            ("Header", "function"),
            ("Props", "interface"),
            ("formatTitle", "function"),
        ],
        &["formatTitle", "toUpperCase", "Props"],
    );
}

#[test]
fn go_definitions_and_references() {
    assert_tags(
        "sample.go",
        &[
            ("Budget", "type"),
            ("Normalize", "function"),
            ("Remaining", "method"),
        ],
        &["TrimSpace", "Budget"],
    );
}

#[test]
fn java_definitions_and_references() {
    assert_tags(
        "Sample.java",
        &[
            ("Renderer", "interface"),
            ("Sample", "class"),
            ("Sample", "method"),
            ("render", "method"),
            ("render", "method"),
        ],
        &["valueOf", "remaining", "Budget", "Renderer"],
    );
}

#[test]
fn broken_source_still_yields_the_recovered_definitions() {
    let t = tags::extract(
        Lang::Python,
        "def good():\n    pass\n\ndef broken(:\n    x = \n",
    )
    .unwrap();
    assert!(t.definitions.iter().any(|d| d.name == "good"));
}

// ---- lexical pass ---------------------------------------------------------------------

#[test]
fn identifiers_split_on_case_and_underscores() {
    assert_eq!(
        lexical::split_identifier("parseHTTPRequest_v2"),
        ["parse", "http", "request", "v2"]
    );
    assert_eq!(
        lexical::split_identifier("_eval_is_zero"),
        ["eval", "is", "zero"]
    );
    assert_eq!(
        lexical::split_identifier("LatexPrinter"),
        ["latex", "printer"]
    );
    assert_eq!(lexical::split_identifier("plain"), ["plain"]);
}

#[test]
fn keyword_scan_finds_definitions_at_line_starts_only() {
    let text = "class Foo(Bar):\n    def baz(self):\n        pass\n\npub(crate) fn qux() {}\nexport default function Quux() {}\nthe class attribute is set\nx = type(y)\n";
    let scan = lexical::scan("a.py", text, &lexical::TermMap::default());
    let names: Vec<(&str, usize)> = scan
        .defs
        .iter()
        .map(|d| (d.name.as_str(), d.line))
        .collect();
    assert_eq!(names, [("Foo", 0), ("baz", 1), ("qux", 4), ("Quux", 5)]);
}

#[test]
fn bm25_prefers_documents_with_rare_query_terms() {
    let mut q = lexical::TermMap::default();
    q.insert("matrix".to_string(), 0);
    q.insert("latex".to_string(), 1);
    let a = lexical::scan("a.py", "def latex(m): return matrix_to_latex(m)\n", &q);
    let b = lexical::scan("b.py", "def other(): return 1\n", &q);
    let c = lexical::scan("c.py", "matrix = 1\n", &q);
    let s = lexical::bm25(&[&a, &b, &c], &[1.0, 1.0]);
    assert!(s[0] > s[2] && s[2] > s[1], "{s:?}");
    assert_eq!(s[1], 0.0);
}

// ---- issue parsing ------------------------------------------------------------------

#[test]
fn python_traceback_frames_innermost_last() {
    let text = r#"Traceback (most recent call last):
  File "/home/u/proj/run.py", line 3, in <module>
    main()
  File "/usr/lib/python3/site-packages/sympy/core/basic.py", line 120, in subs
    return self._subs(x)
  File "/usr/lib/python3/site-packages/sympy/core/cache.py", line 94, in wrapper
    raise TypeError
TypeError: bad"#;
    let f = issue::trace_frames(text);
    assert_eq!(f.len(), 3);
    assert_eq!(
        f[2],
        Frame {
            path: "/usr/lib/python3/site-packages/sympy/core/cache.py".into(),
            line: Some(94),
            function: Some("wrapper".into()),
            depth: 0
        }
    );
    assert_eq!(f[0].function, None, "<module> is not a function");
    assert_eq!(f[0].depth, 2);
}

#[test]
fn rust_panic_frames_new_and_old_formats_and_backtraces() {
    let new = "thread 'main' panicked at src/parser/mod.rs:42:9:\nindex out of bounds";
    let f = issue::trace_frames(new);
    assert_eq!(
        (f[0].path.as_str(), f[0].line),
        ("src/parser/mod.rs", Some(42))
    );
    let old =
        "thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/lib.rs:7:5";
    let f = issue::trace_frames(old);
    assert_eq!((f[0].path.as_str(), f[0].line), ("src/lib.rs", Some(7)));
    let bt = "   2: app::run\n             at ./src/app.rs:12:5\n   3: app::main\n             at ./src/main.rs:3:5";
    let f = issue::trace_frames(bt);
    assert_eq!(
        f.iter()
            .map(|f| (f.path.as_str(), f.depth))
            .collect::<Vec<_>>(),
        [("./src/app.rs", 0), ("./src/main.rs", 1)]
    );
}

/// Traces and their frames, (path, function, depth) each in order: V8's JavaScript frames,
/// and pytest's short ones (Python frames, innermost last).
const TRACES: &[(&str, &[FrameRow])] = &[
    (
        "TypeError: x is undefined\n    at parseConfig (/app/src/config.ts:10:5)\n    at Object.<anonymous> (/app/index.js:2:1)\n    at /app/lib/run.mjs:7:3",
        &[
            ("/app/src/config.ts", Some("parseConfig"), 0),
            ("/app/index.js", None, 1),
            ("/app/lib/run.mjs", None, 2),
        ],
    ),
    (
        "sympy/core/expr.py:124: in __eq__\n    other = sympify(other)\nsympy/core/sympify.py:385: in sympify\n    expr = parse_expr(a)\n",
        &[
            ("sympy/core/expr.py", Some("__eq__"), 1),
            ("sympy/core/sympify.py", Some("sympify"), 0),
        ],
    ),
];

#[test]
fn traces_give_their_frames() {
    for &(text, expected) in TRACES {
        assert_frames(text, expected);
    }
}

#[test]
fn javascript_frames_of_firefox() {
    let ff = "loadThing@http://localhost/static/js/loader.js:33:9";
    let f = issue::trace_frames(ff);
    assert_eq!(f[0].function.as_deref(), Some("loadThing"));
    assert!(f[0].path.ends_with("static/js/loader.js"));
}

#[test]
fn go_frames() {
    let text = "panic: runtime error: nil map\n\ngoroutine 1 [running]:\nexample.com/app/store.(*Cache).Put(0x0, {0x1, 0x2})\n\t/home/u/app/store/cache.go:27 +0x1d\nmain.main()\n\t/home/u/app/main.go:9 +0x25\n";
    let f = issue::trace_frames(text);
    let got: Vec<(&str, Option<usize>, Option<&str>, usize)> = f
        .iter()
        .map(|f| (f.path.as_str(), f.line, f.function.as_deref(), f.depth))
        .collect();
    assert_eq!(
        got,
        [
            ("/home/u/app/store/cache.go", Some(27), Some("Put"), 0),
            ("/home/u/app/main.go", Some(9), Some("main"), 1)
        ]
    );
}

#[test]
fn java_frames_map_packages_to_folders() {
    let text = "java.lang.NullPointerException\n\tat com.acme.store.Cache$Entry.put(Cache.java:27)\n\tat com.acme.Main.main(Main.java:9)\n";
    let f = issue::trace_frames(text);
    let got: Vec<(&str, Option<usize>, Option<&str>)> = f
        .iter()
        .map(|f| (f.path.as_str(), f.line, f.function.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("com/acme/store/Cache.java", Some(27), Some("put")),
            ("com/acme/Main.java", Some(9), Some("main"))
        ]
    );
}

#[test]
fn path_mentions_are_extracted_and_normalized() {
    let text = "See sympy/core/basic.py and `utils.py`; on Windows C:\\proj\\src\\main.rs fails. Not obj.pyattr. Also ./lib/x.ts.";
    assert_eq!(
        issue::path_mentions(text),
        [
            "sympy/core/basic.py",
            "utils.py",
            "C:/proj/src/main.rs",
            "lib/x.ts"
        ]
    );
}

#[test]
fn dotted_mentions_and_their_resolution() {
    let files = vec![
        walk::SourceFile {
            path: "sympy/printing/latex.py".into(),
            text: String::new(),
            lang: Some(Lang::Python),
            role: FileRole::Source,
        },
        walk::SourceFile {
            path: "sympy/physics/__init__.py".into(),
            text: String::new(),
            lang: Some(Lang::Python),
            role: FileRole::Source,
        },
        walk::SourceFile {
            path: "a/core/basic.py".into(),
            text: String::new(),
            lang: Some(Lang::Python),
            role: FileRole::Source,
        },
        walk::SourceFile {
            path: "b/core/basic.py".into(),
            text: String::new(),
            lang: Some(Lang::Python),
            role: FileRole::Source,
        },
    ];
    let idx = PathIndex::new(&files);
    let dotted = issue::dotted_mentions(
        "from sympy.printing.latex import latex_escape; self.x; sympy.physics.units",
    );
    assert!(dotted.contains(&vec!["self".to_string(), "x".to_string()]));
    let resolved: Vec<Option<(usize, bool)>> =
        dotted.iter().map(|d| idx.resolve_dotted(d)).collect();
    assert_eq!(resolved, [Some((0, false)), None, Some((1, true))]);
    // Absolute paths resolve by their longest suffix; bare names to every match.
    assert_eq!(
        idx.resolve("/home/u/site-packages/sympy/printing/latex.py"),
        [0]
    );
    assert_eq!(idx.resolve("basic.py"), [2, 3]);
    assert_eq!(idx.resolve("b/core/basic.py"), [3]);
    assert!(idx.resolve("core/latex.py").is_empty());
    let m = rank::mention_signal(&idx, &["basic.py".into()], &dotted, files.len());
    assert_eq!(m, [rank::DOTTED_MODULE, rank::DOTTED_PACKAGE, 0.5, 0.5]);
}

/// The identifiers of an issue, asserting that `name` (said in its title) weighs `kind`
/// ([`issue::PROSE_WEIGHT`] or [`issue::CODE_WEIGHT`]) times the title's weight.
fn identifiers_weighing(text: &str, name: &str, kind: f64) -> HashMap<String, IssueIdent> {
    let ids = issue::identifiers(text);
    assert_eq!(ids[name].weight, kind * issue::TITLE_WEIGHT, "{name}");
    ids
}

#[test]
fn identifiers_weigh_title_and_code_above_prose() {
    let ids = identifiers_weighing(
        "latex output is wrong\n\nThe printer prints `Matrix` badly, see is_zero and foo() here.\n",
        "latex",
        issue::PROSE_WEIGHT,
    );
    assert!(ids["Matrix"].code_like && ids["is_zero"].code_like && ids["foo"].code_like);
    assert!(!ids["printer"].code_like);
    assert!(!ids.contains_key("the") && !ids.contains_key("is"));
}

#[test]
fn kebab_case_option_names_become_snake_case_identifiers() {
    let ids = identifiers_weighing(
        "Imported twice under import-mode=importlib\n\nWith `max-line-length` and --log-cli-level set; a well-known long-standing bug, see github.com/pytest-dev/pytest.\n",
        "import_mode",
        issue::CODE_WEIGHT,
    );
    assert!(ids["import_mode"].code_like);
    assert!(ids.contains_key("max_line_length") && ids.contains_key("log_cli_level"));
    assert!(!ids.contains_key("well_known") && !ids.contains_key("long_standing"));
    assert!(!ids.contains_key("pytest_dev"));
    // The snake_case spelling matches the code's CamelCase class.
    let matcher = rank::IdentMatcher::new(&ids);
    assert_eq!(
        matcher.matches("ImportMode").map(|(_, m)| m),
        Some(rank::NameMatch::Split)
    );
}

#[test]
fn a_pasted_environment_does_not_make_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, s: &str| {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, s).unwrap();
    };
    write("pkg/__init__.py", "");
    write(
        "pkg/argparsing.py",
        "class attrs:\n    pass\n\ndef dirname(p):\n    return p\n",
    );
    write(
        "pkg/source.py",
        "def statement_lineno(node):\n    return node.lineno\n",
    );
    let issue = "Wrong statement_lineno\n\n```\nimport os\nos.path.dirname(x)\n```\n\n```\n$ pip list\nPackage Version\n------- -------\nattrs   21.2.0\n```\n";
    let sel =
        fleet_context::select(dir.path(), issue, &fleet_context::SelectOptions::default()).unwrap();
    let score = |p: &str| {
        sel.files
            .iter()
            .find(|f| f.path == p)
            .map_or(0.0, |f| f.signals.definitions)
    };
    assert!(score("pkg/source.py") > 0.0);
    assert_eq!(score("pkg/argparsing.py"), 0.0, "{:?}", sel.files);
}

// ---- ranking signals ----------------------------------------------------------------

#[test]
fn name_matching_exact_then_split_then_partial() {
    let ids = issue::identifiers("`is_zero` and `LatexPrinter` and prose order");
    let m = IdentMatcher::new(&ids);
    assert_eq!(m.matches("is_zero").map(|x| x.1), Some(NameMatch::Exact));
    assert_eq!(m.matches("isZero").map(|x| x.1), Some(NameMatch::Split));
    assert_eq!(
        m.matches("_eval_is_zero").map(|x| x.1),
        Some(NameMatch::Partial)
    );
    assert_eq!(
        m.matches("latex_printer").map(|x| x.1),
        Some(NameMatch::Split)
    );
    // Prose words match only exactly.
    assert_eq!(m.matches("order").map(|x| x.1), Some(NameMatch::Exact));
    assert_eq!(m.matches("sort_order"), None);
}

#[test]
fn definition_signal_prefers_specific_names() {
    let ids = issue::identifiers("`latex` and `doit`");
    let m = IdentMatcher::new(&ids);
    let per_file: Vec<Vec<(usize, NameMatch)>> = vec![
        rank::file_matches(&m, ["latex", "doit"].into_iter()),
        rank::file_matches(&m, ["doit"].into_iter()),
        rank::file_matches(&m, ["doit"].into_iter()),
        rank::file_matches(&m, ["other"].into_iter()),
    ];
    let s = rank::definition_signal(&m, &per_file);
    assert!(s[0] > s[1] && s[1] > 0.0 && s[3] == 0.0, "{s:?}");
    assert_eq!(s[1], s[2]);
}

#[test]
fn trace_signal_decays_from_the_innermost_repository_frame() {
    let files: Vec<walk::SourceFile> = ["pkg/a.py", "pkg/b.py", "pkg/c.py"]
        .iter()
        .map(|p| walk::SourceFile {
            path: p.to_string(),
            text: String::new(),
            lang: None,
            role: FileRole::Source,
        })
        .collect();
    let idx = PathIndex::new(&files);
    let frames = issue::trace_frames(
        "File \"/x/pkg/a.py\", line 1, in f\nFile \"/usr/lib/numpy/core.py\", line 2, in g\nFile \"/x/pkg/b.py\", line 3, in h\n",
    );
    let s = rank::trace_signal(&idx, &frames, 3);
    assert_eq!(s[1], 1.0);
    assert!(s[0] > 0.0 && s[0] < 1.0);
    assert_eq!(s[2], 0.0);
}

#[test]
fn pagerank_spreads_from_seeds_to_referenced_files() {
    // 0 refers to 1, 1 refers to 2; 3 is unrelated.
    let edges = vec![vec![(1, 1.0)], vec![(2, 1.0)], vec![], vec![]];
    let r = rank::personalized_pagerank(&edges, &[1.0, 0.0, 0.0, 0.0], 0.5, 30);
    assert!(r[1] > r[2] && r[2] > 0.0, "{r:?}");
    assert_eq!(r[3], 0.0);
    assert_eq!(r[0], 0.0, "a seed gains nothing by being a seed");
}

#[test]
fn roles_demote_tests_examples_docs_and_vendored_code() {
    for (path, role) in [
        ("sympy/core/basic.py", FileRole::Source),
        ("sympy/core/tests/test_basic.py", FileRole::Test),
        ("testing/python/collect.py", FileRole::Test),
        ("pkg/store_test.go", FileRole::Test),
        ("context_1.16_test.go", FileRole::Test),
        ("filewriter_test_windows.go", FileRole::Source),
        (
            "packages/runtime-core/__type__/ref.test-d.ts",
            FileRole::Test,
        ),
        ("src/app.spec.ts", FileRole::Test),
        ("src/test/java/com/acme/CacheTest.java", FileRole::Test),
        ("examples/tutorial/app.py", FileRole::Example),
        ("doc/src/index.rst", FileRole::Doc),
        ("README.md", FileRole::Doc),
        ("src/vendor/lib/x.js", FileRole::Vendored),
        (
            "requests/packages/urllib3/exceptions.py",
            FileRole::Vendored,
        ),
        ("packages/core/src/index.ts", FileRole::Source),
        ("setup.cfg", FileRole::Other),
    ] {
        assert_eq!(walk::role_of(path), role, "{path}");
    }
    let s = rank::Signals {
        bm25: 1.0,
        ..Default::default()
    };
    assert!(rank::combine(&s, FileRole::Source) > rank::combine(&s, FileRole::Test));
    assert!(rank::combine(&s, FileRole::Test) > 0.0);
}

// ---- packing --------------------------------------------------------------------------

fn tiktoken_len(text: &str) -> usize {
    tiktoken_rs::cl100k_base_singleton()
        .encode_with_special_tokens(text)
        .len()
}

#[test]
fn token_estimate_is_within_ten_percent_of_tiktoken() {
    let mut samples: Vec<(String, String)> = Vec::new();
    for entry in fs::read_dir(FIXTURES).unwrap() {
        let p = entry.unwrap().path();
        samples.push((p.display().to_string(), fs::read_to_string(&p).unwrap()));
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                samples.push((p.display().to_string(), fs::read_to_string(&p).unwrap()));
            }
        }
    }
    samples.push((
        "prose".into(),
        "The printer renders matrices with the wrong delimiters when the \
        setting is changed; it should use the brackets that were configured, as the documentation \
        says. Could you please have a look at this? Thanks a lot for the great library!\n"
            .repeat(5),
    ));
    // Each file large enough for a ratio to mean something, and the whole corpus.
    let mut total = (0usize, 0usize);
    for (name, text) in &samples {
        let (est, real) = (estimate_tokens(text), tiktoken_len(text));
        total.0 += est;
        total.1 += real;
        if real >= 150 {
            let ratio = est as f64 / real as f64;
            assert!(
                (0.9..=1.1).contains(&ratio),
                "{name}: estimate {est} vs tiktoken {real} ({ratio:.3})"
            );
        }
    }
    let ratio = total.0 as f64 / total.1 as f64;
    assert!((0.9..=1.1).contains(&ratio), "corpus: {ratio:.3}");
}

#[test]
fn packing_never_exceeds_the_budget() {
    let big: String = (0..400)
        .map(|i| format!("def function_{i}(x, y):\n    \"\"\"Docstring {i}.\"\"\"\n    return latex(x) + {i} * y\n\n"))
        .collect();
    let texts: Vec<(String, String)> = vec![
        ("big.py".into(), big.clone()),
        ("sample.py".into(), fixture("sample.py")),
        ("sample.rs".into(), fixture("sample.rs")),
        ("big2.py".into(), big),
        ("sample.go".into(), fixture("sample.go")),
    ];
    let parsed: Vec<Option<FileTags>> = texts
        .iter()
        .map(|(p, t)| Lang::from_path(Path::new(p)).and_then(|l| tags::extract(l, t).ok()))
        .collect();
    let candidates: Vec<Candidate<'_>> = texts
        .iter()
        .zip(&parsed)
        .map(|((p, t), tags)| Candidate {
            path: p,
            text: t,
            definitions: tags.as_ref().map(|t| t.definitions.as_slice()),
        })
        .collect();
    let m = IdentMatcher::new(&issue::identifiers(
        "`latex` and `function_7` and `remaining`",
    ));
    for budget in [0, 10, 50, 120, 300, 777, 1500, 4000, 16_000, 100_000] {
        let p = pack::pack(&candidates, &m, budget);
        assert!(p.tokens <= budget, "budget {budget}: {} tokens", p.tokens);
        assert_eq!(p.tokens, estimate_tokens(&p.text));
        if budget >= 1500 {
            assert!(
                p.included.contains(&"big.py".to_string()),
                "budget {budget}: {:?}",
                p.included
            );
            assert!(
                p.text.contains("def function_7("),
                "the matching definition is in the excerpt"
            );
        }
    }
    let p = pack::pack(&candidates, &m, 100_000);
    assert!(
        p.text.contains("def function_399("),
        "a large budget takes whole files"
    );
}

// ---- whole selections -----------------------------------------------------------------

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn awkward_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write(r, "pkg/printing/latex.py", b"def latex(expr):\n    return LatexPrinter().doprint(expr)\n\nclass LatexPrinter:\n    def doprint(self, e):\n        return str(e)\n");
    write(
        r,
        "pkg/core/basic.py",
        b"class Basic:\n    def subs(self, old, new):\n        return self\n",
    );
    write(
        r,
        "pkg/core/tests/test_basic.py",
        b"from pkg.core.basic import Basic\n\ndef test_subs():\n    assert Basic().subs(1, 2)\n",
    );
    write(r, "pkg/data/blob.bin.py", b"\x00\x01\x02binary\x00");
    write(r, "pkg/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00");
    let mut huge = b"x = 1\n".repeat(300_000);
    huge.extend_from_slice(b"def latex():\n    pass\n");
    write(r, "pkg/huge.py", &huge);
    write(
        r,
        "pkg/legacy.py",
        b"# caf\xe9 in latin-1\ndef latex_legacy():\n    return '\xff\xfe'\n",
    );
    write(r, "pkg/ignored.py", b"def latex():\n    pass\n");
    write(r, ".gitignore", b"ignored.py\n");
    write(r, "Cargo.lock", b"latex latex latex\n");
    dir
}

#[test]
fn awkward_files_do_not_fail_the_selection() {
    let dir = awkward_repo();
    let sel = select(
        dir.path(),
        "latex() prints the wrong thing\n\nCalling `latex(x)` fails.",
        &SelectOptions::default(),
    )
    .unwrap();
    let paths: Vec<&str> = sel.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths.first(), Some(&"pkg/printing/latex.py"), "{paths:?}");
    for absent in [
        "pkg/data/blob.bin.py",
        "pkg/logo.png",
        "pkg/huge.py",
        "pkg/ignored.py",
        "Cargo.lock",
    ] {
        assert!(
            !paths.contains(&absent),
            "{absent} should be skipped: {paths:?}"
        );
    }
    assert!(
        paths.contains(&"pkg/legacy.py"),
        "non-UTF-8 text is read lossily: {paths:?}"
    );
    assert!(
        sel.stats.skipped_large >= 1 && sel.stats.skipped_binary >= 2,
        "{:?}",
        sel.stats
    );
    assert!(sel.included.contains(&"pkg/printing/latex.py".to_string()));
    assert!(sel.context.contains("### pkg/printing/latex.py"));
    assert!(sel.tokens <= sel.budget);
}

#[test]
fn a_mentioned_path_and_a_traceback_outrank_lexical_matches() {
    let dir = awkward_repo();
    let issue = "subs is broken\n\nTraceback (most recent call last):\n  File \"/site-packages/pkg/core/basic.py\", line 3, in subs\nTypeError";
    let sel = select(dir.path(), issue, &SelectOptions::default()).unwrap();
    assert_eq!(sel.files[0].path, "pkg/core/basic.py");
    // The test file mentions the same names but is demoted.
    let test_rank = sel
        .files
        .iter()
        .position(|f| f.path.ends_with("test_basic.py"));
    assert!(test_rank.is_none_or(|r| r > 0));
}

#[test]
fn cli_output_on_a_plain_folder() {
    let dir = awkward_repo();
    let issue = dir.path().join("issue.md");
    fs::write(&issue, "latex output is wrong").unwrap();
    let sel = select(
        dir.path(),
        "latex output is wrong",
        &SelectOptions {
            budget: 500,
            ..Default::default()
        },
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fleet_context::render(&sel, "json").unwrap()).unwrap();
    assert_eq!(json["files"][0]["path"], "pkg/printing/latex.py");
    assert!(json["files"][0]["score"].as_f64().unwrap() > 0.0);
    assert!(
        json["included"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "pkg/printing/latex.py")
    );
    assert!(json["tokens"].as_u64().unwrap() <= 500);
    let text = fleet_context::render(&sel, "text").unwrap();
    assert!(text.contains("# Ranked files") && text.contains("def latex(expr):"));
    assert!(fleet_context::render(&sel, "yaml").is_err());
    let args = fleet_context::ContextArgs {
        repo: dir.path().into(),
        issue_file: issue,
        budget: 500,
        format: "json".into(),
    };
    fleet_context::run_cli(&args).unwrap();
    let missing = fleet_context::ContextArgs {
        repo: dir.path().join("nope"),
        ..args
    };
    assert!(fleet_context::run_cli(&missing).is_err());
}

#[test]
fn windows_paths_in_frames_use_forward_slashes() {
    let text = r#"  File "C:\Python310\lib\site-packages\sympy\physics\units\unitsystem.py", line 179, in _collect"#;
    let f = issue::trace_frames(text);
    assert_eq!(
        f[0].path,
        "C:/Python310/lib/site-packages/sympy/physics/units/unitsystem.py"
    );
}

#[test]
fn literal_phrases_are_flags_and_error_message_fragments() {
    let text = "Running `pytest --collect-only -q` fails:\n\nValueError: Dimension of \"v1\" is Dimension(velocity), but it should be Dimension(acceleration*time)\nE   TypeError: Imaginary coordinates are not permitted.\n";
    let p = issue::literal_phrases(text);
    assert!(p.contains(&"--collect-only".to_string()), "{p:?}");
    assert!(
        p.contains(&"but it should be Dimension".to_string()),
        "{p:?}"
    );
    assert!(
        p.contains(&"Imaginary coordinates are not permitted".to_string()),
        "{p:?}"
    );
    assert!(!p.iter().any(|x| x == "-q"));
    let files: Vec<walk::SourceFile> = [
        (
            "a.py",
            "raise TypeError('Imaginary coordinates are not permitted.')",
        ),
        ("b.py", "parser.addoption('--collect-only')"),
        ("c.py", "nothing here"),
    ]
    .iter()
    .map(|(p, t)| walk::SourceFile {
        path: p.to_string(),
        text: t.to_string(),
        lang: Some(Lang::Python),
        role: FileRole::Source,
    })
    .collect();
    assert_eq!(rank::literal_signal(&files, &p), [1.0, 1.0, 0.0]);
}

#[test]
fn specificity_falls_with_document_frequency() {
    assert_eq!(lexical::specificity(0, 1000), 1.0);
    assert_eq!(lexical::specificity(1, 1000), 1.0);
    assert!(lexical::specificity(10, 1000) > lexical::specificity(500, 1000));
    assert_eq!(lexical::specificity(1000, 1000), 0.0);
}

#[test]
fn short_names_do_not_match_definitions() {
    let m = IdentMatcher::new(&issue::identifiers(
        "`import sympy as sp` then `sp.symbols`",
    ));
    assert_eq!(m.matches("sp"), None);
    assert_eq!(m.matches("symbols").map(|x| x.1), Some(NameMatch::Exact));
    // A single word does not match as a part of longer names.
    assert_eq!(m.matches("var_symbols"), None);
}

#[test]
fn windows_count_terms_per_stretch_of_lines() {
    let mut q = lexical::TermMap::default();
    q.insert("latex".to_string(), 0);
    // 200 lines; the term only in lines 130..133.
    let mut text = String::new();
    for i in 0..200 {
        if (130..133).contains(&i) {
            text.push_str("return latex(expr)\n");
        } else {
            text.push_str("x = other_value\n");
        }
    }
    let scan = lexical::scan("a.py", &text, &q);
    assert_eq!(
        scan.windows.len(),
        200_usize.div_ceil(lexical::WINDOW_LINES)
    );
    let with_term: Vec<usize> = scan
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.term_counts.is_empty())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(with_term, [130 / lexical::WINDOW_LINES]);
    assert_eq!(scan.windows[with_term[0]].term_counts, [(0, 3)]);
    let total: u32 = scan.windows.iter().map(|w| w.length).sum();
    // The path's words count for the file but not for its windows.
    assert_eq!(total + 2, scan.length, "`a` and `py`");
}

#[test]
fn definitions_api_gives_spans() {
    let defs = fleet_context::definitions(Lang::Go, &fixture("sample.go")).unwrap();
    let remaining = defs.iter().find(|d| d.name == "Remaining").unwrap();
    assert_eq!(
        (
            remaining.kind.as_str(),
            remaining.start_line,
            remaining.end_line
        ),
        ("method", 9, 11)
    );
}

#[test]
fn tests_point_at_the_module_they_test() {
    assert_eq!(
        rank::tested_stem("pkg/tests/test_skipping.py").as_deref(),
        Some("skipping")
    );
    assert_eq!(
        rank::tested_stem("store/cache_test.go").as_deref(),
        Some("cache")
    );
    assert_eq!(rank::tested_stem("src/app.spec.ts").as_deref(), Some("app"));
    assert_eq!(
        rank::tested_stem("src/test/java/CacheTest.java").as_deref(),
        Some("cache")
    );
    assert_eq!(
        rank::tested_stem("tests/test_a.py"),
        None,
        "too short to name a module"
    );
    let files: Vec<walk::SourceFile> = [
        "pkg/skipping.py",
        "pkg/tests/test_skipping.py",
        "pkg/other.py",
        "pkg/tests/test_other.py",
    ]
    .iter()
    .map(|p| walk::SourceFile {
        path: p.to_string(),
        text: String::new(),
        lang: Some(Lang::Python),
        role: walk::role_of(p),
    })
    .collect();
    let s = rank::tests_signal(&files, &[0.2, 0.9, 0.3, 0.0]);
    assert_eq!(s, [0.9, 0.0, 0.0, 0.0]);
}
