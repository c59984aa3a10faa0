//! The language table: which file extensions map to which tree-sitter grammar, and the
//! tags query (`queries/<lang>/tags.scm`) that extracts definitions and references.
//!
//! Every query finds the definitions of a file with their spans and the names it refers to:
//! `@name` captures the name, `@definition.<kind>` or `@reference.<kind>` the whole node.
//! JavaScript's and TypeScript's queries start with the patterns their grammars share
//! (`queries/ecmascript/tags.scm`).
//!
//! This is the one place that knows about grammars. The syntax gate reuses
//! [`language_for_path`] to parse changed files with the same grammars.

use std::path::Path;
use std::sync::OnceLock;

use tree_sitter::{Language, Query};

/// A language with a grammar and a tags query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
}

impl Lang {
    /// Every language in the table.
    pub const ALL: [Lang; 7] = [
        Lang::Python,
        Lang::Rust,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Java,
    ];

    /// The language of a path, by its extension.
    pub fn from_path(path: &Path) -> Option<Lang> {
        let ext = path.extension()?.to_str()?;
        Lang::from_extension(ext)
    }

    /// The language of an extension (without the dot, case-insensitive).
    pub fn from_extension(ext: &str) -> Option<Lang> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "py" | "pyi" => Lang::Python,
            "rs" => Lang::Rust,
            // The JavaScript grammar parses JSX too.
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            _ => return None,
        })
    }

    /// A short lowercase name (also the folder of its query).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
            Lang::Java => "java",
        }
    }

    /// The tree-sitter grammar.
    pub fn language(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
        }
    }

    /// The source of the tags query. JavaScript and TypeScript each add their own part to
    /// the patterns both grammars share; TSX shares TypeScript's (the node types it names
    /// are the same in both grammars).
    pub fn tags_query_source(self) -> &'static str {
        match self {
            Lang::Python => include_str!("../queries/python/tags.scm"),
            Lang::Rust => include_str!("../queries/rust/tags.scm"),
            Lang::JavaScript => concat!(
                include_str!("../queries/ecmascript/tags.scm"),
                "\n",
                include_str!("../queries/javascript/tags.scm")
            ),
            Lang::TypeScript | Lang::Tsx => concat!(
                include_str!("../queries/ecmascript/tags.scm"),
                "\n",
                include_str!("../queries/typescript/tags.scm")
            ),
            Lang::Go => include_str!("../queries/go/tags.scm"),
            Lang::Java => include_str!("../queries/java/tags.scm"),
        }
    }

    /// The compiled tags query, built once per process (compiling costs milliseconds, and
    /// a selection may parse files of every language).
    pub fn tags_query(self) -> anyhow::Result<&'static Query> {
        static CELLS: [OnceLock<Result<Query, String>>; 7] = [const { OnceLock::new() }; 7];
        let idx = Lang::ALL.iter().position(|l| *l == self).unwrap_or(0);
        let compiled = CELLS[idx].get_or_init(|| {
            Query::new(&self.language(), self.tags_query_source()).map_err(|e| e.to_string())
        });
        compiled
            .as_ref()
            .map_err(|e| anyhow::anyhow!("tags query for {}: {e}", self.name()))
    }
}

/// The tree-sitter grammar for a path, if the table knows its extension.
pub fn language_for_path(path: &Path) -> Option<Language> {
    Lang::from_path(path).map(Lang::language)
}

/// Extensions of source code in any language (with or without a grammar here): such files
/// are what an issue is usually fixed in, so other text files are demoted when ranking.
pub fn is_source_extension(ext: &str) -> bool {
    Lang::from_extension(ext).is_some()
        || matches!(
            ext.to_ascii_lowercase().as_str(),
            "c" | "h"
                | "cc"
                | "cpp"
                | "cxx"
                | "hpp"
                | "hh"
                | "cs"
                | "rb"
                | "php"
                | "kt"
                | "kts"
                | "scala"
                | "swift"
                | "m"
                | "mm"
                | "lua"
                | "pl"
                | "pm"
                | "sh"
                | "bash"
                | "ex"
                | "exs"
                | "erl"
                | "hs"
                | "ml"
                | "clj"
                | "dart"
                | "vue"
                | "svelte"
                | "pyx"
                | "pxd"
                | "r"
                | "jl"
                | "zig"
                | "sql"
        )
}
