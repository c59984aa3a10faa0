//! The reference graph's two walks on small repositories of every language with a tags
//! query: what the best candidates use (`graph`) and what uses them (`callers`). In each
//! fixture the issue names two functions defined in two files; a third file calls both and
//! says nothing the issue says; a fourth calls neither
//! and shares only words with the issue.

use std::collections::HashMap;
use std::fs;

use fleet_context::rank::{self, ReferenceGraph, Signals};
use fleet_context::walk::FileRole;
use fleet_context::{SelectOptions, select};

const ISSUE: &str = "parse_header returns the wrong length\n\n\
    After `parse_header` the call to `render_footer` prints a short footer.";

/// One language's fixture: the two named definitions, the caller, the bystander.
struct Fixture {
    lang: &'static str,
    files: [(&'static str, &'static str); 4],
}

const FIXTURES: &[Fixture] = &[
    Fixture {
        lang: "python",
        files: [
            (
                "pkg/header.py",
                "def parse_header(data):\n    return data[:4]\n",
            ),
            (
                "pkg/footer.py",
                "def render_footer(n):\n    return '-' * n\n",
            ),
            (
                "pkg/page.py",
                "from pkg.header import parse_header\nfrom pkg.footer import render_footer\n\n\
                 def build(doc):\n    h = parse_header(doc)\n    return render_footer(len(h))\n",
            ),
            (
                "pkg/other.py",
                "# The footer's length.\ndef unrelated(x):\n    return x * 2\n",
            ),
        ],
    },
    Fixture {
        lang: "rust",
        files: [
            (
                "src/header.rs",
                "pub fn parse_header(data: &[u8]) -> &[u8] {\n    &data[..4]\n}\n",
            ),
            (
                "src/footer.rs",
                "pub fn render_footer(n: usize) -> String {\n    \"-\".repeat(n)\n}\n",
            ),
            (
                "src/page.rs",
                "pub fn build(doc: &[u8]) -> String {\n    let h = parse_header(doc);\n    \
                 render_footer(h.len())\n}\n",
            ),
            (
                "src/other.rs",
                "// The footer's length.\npub fn unrelated(x: u32) -> u32 {\n    x * 2\n}\n",
            ),
        ],
    },
    Fixture {
        lang: "go",
        files: [
            (
                "header.go",
                "package doc\n\nfunc parse_header(data []byte) []byte {\n\treturn data[:4]\n}\n",
            ),
            (
                "footer.go",
                "package doc\n\nfunc render_footer(n int) string {\n\treturn strings.Repeat(\"-\", n)\n}\n",
            ),
            (
                "page.go",
                "package doc\n\nfunc Build(doc []byte) string {\n\th := parse_header(doc)\n\t\
                 return render_footer(len(h))\n}\n",
            ),
            (
                "other.go",
                "package doc\n\n// The footer's length.\nfunc Unrelated(x int) int {\n\treturn x * 2\n}\n",
            ),
        ],
    },
    Fixture {
        lang: "java",
        files: [
            (
                "src/main/java/doc/Header.java",
                "package doc;\n\npublic class Header {\n    static byte[] parse_header(byte[] d) {\n        \
                 return d;\n    }\n}\n",
            ),
            (
                "src/main/java/doc/Footer.java",
                "package doc;\n\npublic class Footer {\n    static String render_footer(int n) {\n        \
                 return \"-\";\n    }\n}\n",
            ),
            (
                "src/main/java/doc/Page.java",
                "package doc;\n\npublic class Page {\n    String build(byte[] doc) {\n        \
                 byte[] h = Header.parse_header(doc);\n        return Footer.render_footer(h.length);\n    \
                 }\n}\n",
            ),
            (
                "src/main/java/doc/Other.java",
                "package doc;\n\n// The footer's length.\npublic class Other {\n    int unrelated(int x) {\n        return x * 2;\n    \
                 }\n}\n",
            ),
        ],
    },
    Fixture {
        lang: "javascript",
        files: [
            (
                "src/header.js",
                "export function parse_header(data) {\n  return data.slice(0, 4)\n}\n",
            ),
            (
                "src/footer.js",
                "export function render_footer(n) {\n  return '-'.repeat(n)\n}\n",
            ),
            (
                "src/page.js",
                "import { parse_header } from './header'\nimport { render_footer } from './footer'\n\n\
                 export function build(doc) {\n  const h = parse_header(doc)\n  return render_footer(h.length)\n}\n",
            ),
            (
                "src/other.js",
                "// The footer's length.\nexport function unrelated(x) {\n  return x * 2\n}\n",
            ),
        ],
    },
    Fixture {
        lang: "typescript",
        files: [
            (
                "src/header.ts",
                "export function parse_header(data: string): string {\n  return data.slice(0, 4)\n}\n",
            ),
            (
                "src/footer.ts",
                "export function render_footer(n: number): string {\n  return '-'.repeat(n)\n}\n",
            ),
            (
                "src/page.ts",
                "import { parse_header } from './header'\nimport { render_footer } from './footer'\n\n\
                 export function build(doc: string): string {\n  const h = parse_header(doc)\n  \
                 return render_footer(h.length)\n}\n",
            ),
            (
                "src/other.ts",
                "// The footer's length.\nexport function unrelated(x: number): number {\n  return x * 2\n}\n",
            ),
        ],
    },
];

fn signals_of(files: &[(&str, &str)]) -> HashMap<String, Signals> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let target = dir.path().join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, text).unwrap();
    }
    select(dir.path(), ISSUE, &SelectOptions::default())
        .unwrap()
        .files
        .into_iter()
        .map(|f| (f.path, f.signals))
        .collect()
}

#[test]
fn the_file_calling_both_named_functions_is_their_caller_in_every_language() {
    for fixture in FIXTURES {
        let [header, footer, caller, bystander] = fixture.files.map(|(p, _)| p);
        let s = signals_of(&fixture.files);
        let get = |p: &str| {
            s.get(p)
                .unwrap_or_else(|| panic!("{}: {p} is not ranked", fixture.lang))
        };
        let lang = fixture.lang;
        assert_eq!(get(caller).callers, 1.0, "{lang}: {caller} calls both");
        for p in [header, footer, bystander] {
            assert_eq!(get(p).callers, 0.0, "{lang}: {p} calls neither");
        }
        // And the forward walk: the named functions are what the caller uses.
        assert!(
            get(header).graph > 0.0 && get(footer).graph > 0.0,
            "{lang}: header {} footer {}",
            get(header).graph,
            get(footer).graph
        );
        assert_eq!(
            get(bystander).graph,
            0.0,
            "{lang}: nothing uses {bystander}"
        );
    }
}

#[test]
fn a_caller_gains_from_each_seed_it_uses_a_file_using_everything_less_per_use() {
    // 0 and 1 are the seeds; 2 uses both; 3 uses 0 only; 4 uses 0, 1 and five others.
    let mut uses = vec![
        vec![],
        vec![],
        vec![(0, 1.0), (1, 1.0)],
        vec![(0, 1.0)],
        vec![(0, 1.0), (1, 1.0)],
    ];
    for extra in 5..10 {
        uses[4].push((extra, 1.0));
        uses.push(vec![]);
    }
    let graph = ReferenceGraph::from_edges(uses);
    let mut seeds = vec![0.0; 10];
    seeds[0] = 1.0;
    seeds[1] = 1.0;
    let c = graph.callers_signal(&seeds);
    assert_eq!(c[2], 1.0, "{c:?}");
    assert!(c[3] > 0.0 && c[3] < c[2], "one seed used: {c:?}");
    assert!(c[4] > 0.0 && c[4] < c[2], "a file using everything: {c:?}");
    assert_eq!(c[0] + c[1], 0.0, "the seeds use nothing: {c:?}");
    assert!(c[5..].iter().all(|&x| x == 0.0), "{c:?}");
}

#[test]
fn both_walks_count_in_the_score_at_their_weights() {
    let only = |graph: f64, callers: f64| Signals {
        graph,
        callers,
        ..Signals::default()
    };
    assert_eq!(
        rank::combine(&only(1.0, 0.0), FileRole::Source),
        rank::W_GRAPH
    );
    assert_eq!(
        rank::combine(&only(0.0, 1.0), FileRole::Source),
        rank::W_CALLERS
    );
    const { assert!(rank::W_CALLERS > 0.0) };
}
