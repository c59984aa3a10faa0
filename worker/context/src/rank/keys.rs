//! Configuration keys and other names the code spells as strings: "Set `sign_with_root` via
//! Caddyfile" is fixed where the Caddyfile parser reads `case "sign_with_root":`, a
//! `default_bind` option where `"default_bind"` is matched, a dayjs format token where
//! `'YYYY'` is handled. Such names are no definition (the definitions signal misses them)
//! and a few words among thousands (BM25 dilutes them); quoted, they are rare and exact.

use std::collections::HashMap;

use super::rare_phrase_signal;
use crate::issue::IssueIdent;
use crate::walk::SourceFile;

/// Shortest name looked for in quotes: shorter ones (`id`, `url`) are quoted everywhere.
const MIN_KEY_LEN: usize = 4;
/// At most this many names, the heaviest first (a pasted configuration has hundreds).
const MAX_KEYS: usize = 40;

/// `sign_with_root`, `invalidDate`, `tabIndex`: a plain word (`evaluate`, `real`) is quoted
/// as a keyword argument, a label or a message in too many places to point anywhere.
fn is_compound(name: &str) -> bool {
    let b = name.as_bytes();
    name.trim_matches('_').contains('_')
        || b.windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// Per file: the best (weight of the name, capped at 1) / √(files quoting it) over the
/// issue's code-like names found quoted (`"name"`, `'name'`, `` `name` ``) in at most
/// [`super::MAX_LITERAL_FILES`] files of the project's code.
pub fn key_signal(files: &[SourceFile], idents: &HashMap<String, IssueIdent>) -> Vec<f64> {
    let mut names: Vec<(&String, f64)> = idents
        .iter()
        .filter(|(name, ident)| ident.code_like && name.len() >= MIN_KEY_LEN && is_compound(name))
        .map(|(name, ident)| (name, ident.weight))
        .collect();
    names.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    names.truncate(MAX_KEYS);
    let mut phrases = Vec::new();
    let mut weights = Vec::new();
    for (name, weight) in names {
        for quote in ['"', '\'', '`'] {
            phrases.push(format!("{quote}{name}{quote}"));
            weights.push((weight / 2.0).min(1.0));
        }
    }
    rare_phrase_signal(files, &phrases, &weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::FileRole;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            text: text.to_string(),
            lang: None,
            role: FileRole::Source,
        }
    }

    #[test]
    fn plain_words_are_no_keys() {
        let files = [file("printer.py", "if hints.get('evaluate'):\n")];
        let idents = crate::issue::identifiers("`evaluate` is ignored\n");
        assert_eq!(key_signal(&files, &idents), [0.0]);
    }

    #[test]
    fn a_quoted_config_key_points_at_its_parser() {
        let files = [
            file(
                "acmeserver/caddyfile.go",
                "switch d.Val() {\ncase \"sign_with_root\":\n",
            ),
            file(
                "internalissuer.go",
                "SignWithRoot bool `json:\"sign_with_root,omitempty\"`",
            ),
            file(
                "other.go",
                "sign_with_root := true // a variable, not a key",
            ),
        ];
        let idents = crate::issue::identifiers("Set `sign_with_root` via Caddyfile\n");
        let s = key_signal(&files, &idents);
        assert!(s[0] > 0.5, "{s:?}");
        assert_eq!(s[1], 0.0);
        assert_eq!(s[2], 0.0);
    }
}
