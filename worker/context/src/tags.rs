//! Tree-sitter extraction: parse one file with its grammar and run the language's tags
//! query, giving definitions (name, kind, line span) and the names the file refers to.

use std::collections::HashSet;

use streaming_iterator::StreamingIterator;
use tree_sitter::{Parser, QueryCursor};

use crate::languages::Lang;

/// A definition found by the tags query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Definition {
    pub name: String,
    /// The query's kind: `class`, `function`, `method`, `interface`, `type`, ...
    pub kind: String,
    /// First line of the definition node (0-based).
    pub start_line: usize,
    /// Last line of the definition node (0-based, inclusive).
    pub end_line: usize,
}

/// What one file defines and refers to.
#[derive(Debug, Clone, Default)]
pub struct FileTags {
    pub definitions: Vec<Definition>,
    /// Distinct names referred to (calls, types, imports, base classes).
    pub references: Vec<String>,
}

/// Parse `source` as `lang` and extract its tags. A file with syntax errors still yields
/// the tags of the parts tree-sitter recovered.
pub fn extract(lang: Lang, source: &str) -> anyhow::Result<FileTags> {
    let query = lang.tags_query()?;
    let mut parser = Parser::new();
    parser.set_language(&lang.language())?;
    let tree = parser
        .parse(source, None)
        .ok_or_else(|| anyhow::anyhow!("tree-sitter gave no tree"))?;

    // Role of each capture index: the name, a definition node, a reference node, or other.
    let names = query.capture_names();
    let name_idx = names.iter().position(|n| *n == "name");
    let mut out = FileTags::default();
    let mut seen_refs = HashSet::new();
    let mut cursor = QueryCursor::new();
    let bytes = source.as_bytes();
    let mut matches = cursor.matches(query, tree.root_node(), bytes);
    while let Some(m) = matches.next() {
        let mut name = None;
        let mut role = None;
        for cap in m.captures {
            let cname = names[cap.index as usize];
            if Some(cap.index as usize) == name_idx {
                name = cap.node.utf8_text(bytes).ok();
            }
            if let Some(kind) = cname.strip_prefix("definition.") {
                role = Some((true, kind, cap.node));
            } else if let Some(kind) = cname.strip_prefix("reference.") {
                role = Some((false, kind, cap.node));
            }
        }
        let (Some(name), Some((is_def, kind, node))) = (name, role) else {
            continue;
        };
        if is_def {
            out.definitions.push(Definition {
                name: name.to_string(),
                kind: kind.to_string(),
                start_line: node.start_position().row,
                end_line: node.end_position().row,
            });
        } else if seen_refs.insert(name) {
            out.references.push(name.to_string());
        }
    }
    Ok(out)
}
