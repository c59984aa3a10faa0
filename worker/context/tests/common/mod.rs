//! Helpers shared by the integration tests.

/// The definitions the lexical pass (every file, no parsing) finds in `text` at `path`.
pub fn scanned(path: &str, text: &str) -> Vec<String> {
    fleet_context::lexical::scan(path, text, &Default::default())
        .defs
        .into_iter()
        .map(|d| d.name)
        .collect()
}
