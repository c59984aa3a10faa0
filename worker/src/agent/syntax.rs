//! The syntax gate: every changed file in a language we have a grammar for is parsed with
//! tree-sitter before and after the edit; only ERROR/MISSING nodes the edit introduced fail
//! the gate (a file that was already broken is not the agent's fault).

use std::path::Path;
use tree_sitter::{Language, Node, Parser};

/// One syntax problem, with the location a repair prompt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub kind: &'static str,
    /// The source line the problem is on.
    pub source_line: String,
}

impl std::fmt::Display for SyntaxProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: syntax error ({}) at `{}`",
            self.path,
            self.line,
            self.column,
            self.kind,
            self.source_line.trim()
        )
    }
}

/// The grammar for a path: the context selector's language table, plus data formats.
pub fn grammar_for(path: &Path) -> Option<Language> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" => Some(tree_sitter_json::LANGUAGE.into()),
        "yaml" | "yml" => Some(tree_sitter_yaml::LANGUAGE.into()),
        "toml" => Some(tree_sitter_toml_ng::LANGUAGE.into()),
        _ => fleet_context::languages::language_for_path(path),
    }
}

fn problems(path: &str, language: &Language, text: &str) -> Vec<SyntaxProblem> {
    let mut parser = Parser::new();
    if parser.set_language(language).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(text, None) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    collect(tree.root_node(), path, &lines, &mut out);
    out
}

fn collect(node: Node<'_>, path: &str, lines: &[&str], out: &mut Vec<SyntaxProblem>) {
    if node.is_error() || node.is_missing() {
        let start = node.start_position();
        out.push(SyntaxProblem {
            path: path.to_owned(),
            line: start.row + 1,
            column: start.column + 1,
            kind: if node.is_missing() {
                "MISSING"
            } else {
                "ERROR"
            },
            source_line: lines.get(start.row).copied().unwrap_or("").to_owned(),
        });
        // An ERROR node's children are part of the same problem.
        if node.is_error() {
            return;
        }
    }
    if !node.has_error() && !node.is_missing() {
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, path, lines, out);
    }
}

/// The problems `after` has that `before` (None: a new file) did not, matched by kind and
/// source line so that moved code does not count as new breakage.
pub fn introduced(path: &str, before: Option<&str>, after: &str) -> Vec<SyntaxProblem> {
    let Some(language) = grammar_for(Path::new(path)) else {
        return Vec::new();
    };
    let mut old: Vec<(&'static str, String)> = before
        .map(|b| problems(path, &language, b))
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.kind, p.source_line.trim().to_owned()))
        .collect();
    problems(path, &language, after)
        .into_iter()
        .filter(|p| {
            let key = (p.kind, p.source_line.trim().to_owned());
            match old.iter().position(|k| *k == key) {
                Some(i) => {
                    old.swap_remove(i);
                    false
                }
                None => true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_supported_language_catches_a_broken_edit() {
        let cases = [
            (
                "a.py",
                "def f():\n    return 1\n",
                "def f(:\n    return 1\n",
            ),
            ("a.rs", "fn f() -> u8 { 1 }\n", "fn f() -> u8 { 1 \n"),
            (
                "a.js",
                "function f() { return 1; }\n",
                "function f() { return 1;\n",
            ),
            ("a.ts", "const x: number = 1;\n", "const x: number = ;\n"),
            (
                "a.tsx",
                "const a = <div>hi</div>;\n",
                "const a = <div>hi</div;\n",
            ),
            (
                "a.go",
                "package a\nfunc F() int { return 1 }\n",
                "package a\nfunc F() int { return 1 \n",
            ),
            (
                "A.java",
                "class A { int f() { return 1; } }\n",
                "class A { int f() { return 1; }\n",
            ),
            ("a.json", "{\"a\": 1}\n", "{\"a\": 1,,}\n"),
            ("a.yaml", "a: 1\nb: [1, 2]\n", "a: 1\nb: [1, 2\n"),
            ("a.toml", "[a]\nb = 1\n", "[a\nb = 1\n"),
        ];
        for (path, good, bad) in cases {
            assert!(
                grammar_for(Path::new(path)).is_some(),
                "{path} has a grammar"
            );
            assert!(
                introduced(path, None, good).is_empty(),
                "{path}: good code passes"
            );
            let found = introduced(path, Some(good), bad);
            assert!(!found.is_empty(), "{path}: broken edit caught");
            assert!(found[0].line >= 1);
        }
    }

    #[test]
    fn pre_existing_errors_do_not_count_and_unknown_files_pass() {
        let broken = "def f(:\n    return 1\n";
        let still_broken = "def f(:\n    return 2\n";
        assert!(introduced("a.py", Some(broken), still_broken).is_empty());
        assert!(introduced("notes.txt", Some("x"), "((((").is_empty());
    }

    #[test]
    fn locations_are_reported() {
        let found = introduced("m.py", Some("x = 1\n"), "x = 1\ny = (\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].to_string().starts_with("m.py:"), "{}", found[0]);
    }
}
