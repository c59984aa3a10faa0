//! The repository's own issue templates, and the instructions reporters leave in: "**Describe
//! the bug**", "Check if updating to the latest Preact version resolves the issue", bat's
//! request to run `diagnostics/info.sh`, the HTML comments GitHub never shows. Every issue
//! filed through a template repeats its words, so they match the same files in every issue
//! (the template names the project's tools, flags and scripts) and say nothing about this
//! one. Lines of the issue that are lines of a template ([`TemplateLines`]) and HTML comments
//! are blanked before anything is read from the text.

use std::collections::HashSet;
use std::path::Path;

/// Where GitHub and GitLab look for issue templates (files, or folders of them).
const TEMPLATE_PLACES: &[&str] = &[
    ".github/ISSUE_TEMPLATE",
    ".github/ISSUE_TEMPLATE.md",
    ".github/issue_template.md",
    "ISSUE_TEMPLATE.md",
    "docs/ISSUE_TEMPLATE.md",
    ".gitlab/issue_templates",
];

/// Template files read at most, and bytes of each: a template is a page of text.
const MAX_TEMPLATES: usize = 20;
const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;
/// Entries of a template folder looked at, at most (then sorted, the first read).
const MAX_LISTED: usize = 10_000;

/// Shorter lines (after normalizing) are kept: "Yes", "N/A" and a version say little
/// either way, and a short line of the reporter's might equal one of the template's.
const MIN_LINE_CHARS: usize = 8;

/// The normalized lines of a repository's issue templates.
#[derive(Debug, Default)]
pub struct TemplateLines(HashSet<String>);

impl TemplateLines {
    /// Reads the templates of the checkout at `repo`. Links are not followed and unreadable
    /// files are skipped: a repository without templates simply has none.
    pub fn read(repo: &Path) -> TemplateLines {
        let mut files = Vec::new();
        for place in TEMPLATE_PLACES {
            let path = repo.join(place);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                files.push(path);
            } else if meta.is_dir()
                && let Ok(entries) = std::fs::read_dir(&path)
            {
                // A hostile repository can put a million files here: a bounded listing,
                // sorted, so the same files are read wherever the checkout lives.
                let mut inside: Vec<_> = entries
                    .flatten()
                    .take(MAX_LISTED)
                    .map(|e| e.path())
                    .collect();
                inside.sort();
                files.extend(inside);
            }
        }
        // A linked `.github` or `docs` would lead out of the checkout: only what resolves
        // inside it is read.
        let Ok(root) = repo.canonicalize() else {
            return TemplateLines::default();
        };
        files.retain(|f| f.canonicalize().is_ok_and(|real| real.starts_with(&root)));
        let mut lines = HashSet::new();
        for file in files.into_iter().take(MAX_TEMPLATES) {
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_TEMPLATE_BYTES {
                continue;
            }
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            lines.extend(without_options(&text).filter_map(normalize));
        }
        TemplateLines(lines)
    }

    /// The lines of one template's text (tests, and callers that hold templates already).
    pub fn from_text(text: &str) -> TemplateLines {
        TemplateLines(text.lines().filter_map(normalize).collect())
    }

    /// Whether `line` of an issue repeats a line of the templates.
    pub fn contains(&self, line: &str) -> bool {
        !self.0.is_empty() && normalize(line).is_some_and(|l| self.0.contains(&l))
    }
}

/// The lines of a template without the items of issue-form `options:` lists: a dropdown's
/// options are what the reporter picks from, and the pick is the reporter's answer (the
/// package or component at fault), on a line of its own in the issue.
fn without_options(text: &str) -> impl Iterator<Item = &str> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut options_at: Option<usize> = None;
    text.lines().filter(move |line| {
        let trimmed = line.trim_start();
        if let Some(at) = options_at {
            if trimmed.is_empty() || (indent(line) >= at && trimmed.starts_with('-')) {
                return false;
            }
            options_at = None;
        }
        if trimmed.starts_with("options:") {
            options_at = Some(indent(line));
            return false;
        }
        true
    })
}

/// A line without what tells a template's Markdown or issue-form YAML from the issue it
/// became (`- type: input` / `label: Vue version` → `### Vue version`): list and heading
/// marks, emphasis, check boxes, quotes, YAML keys; lowercase, inner whitespace collapsed.
fn normalize(line: &str) -> Option<String> {
    let mut l = line.trim();
    loop {
        let before = l;
        l = l.trim_start_matches(['#', '*', '-', '>', ' ', '\t', '_']);
        for mark in ["[ ]", "[x]", "[X]", "[✅]"] {
            l = l.strip_prefix(mark).unwrap_or(l);
        }
        for key in [
            "label:",
            "description:",
            "value:",
            "placeholder:",
            "title:",
            "about:",
            "name:",
        ] {
            l = l.strip_prefix(key).unwrap_or(l);
        }
        if l == before {
            break;
        }
    }
    let l = l.trim_matches(|c: char| c.is_whitespace() || "*_\"'|:".contains(c));
    let words: Vec<&str> = l.split_whitespace().collect();
    let joined = words.join(" ").to_lowercase();
    (joined.chars().count() >= MIN_LINE_CHARS && joined.chars().any(char::is_alphabetic))
        .then_some(joined)
}

/// Blanks (ASCII bytes to spaces, line breaks kept) each line of `text` found in
/// `templates`, and every HTML comment.
pub fn blank_templates(text: &str, out: &mut [u8], templates: &TemplateLines) {
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        // The title is the reporter's, even when it starts with a template's prefix.
        if pos > 0 && templates.contains(line) {
            super::blank(&mut out[pos..pos + line.len()]);
        }
        pos += line.len();
    }
    // An HTML comment as GitHub hides it: opened at the start of a line (an HTML block),
    // not `<!--` quoted in a sentence or a code span. One that is never closed hides only
    // its opening here: no later opening can be closed either, so the scan stops.
    let mut from = 0;
    while let Some(at) = text[from..].find("<!--") {
        let start = from + at;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if !text[line_start..start].trim().is_empty() {
            from = start + 4;
            continue;
        }
        let Some(close) = text[start..].find("-->") else {
            super::blank(&mut out[start..start + 4]);
            break;
        };
        let end = start + close + 3;
        super::blank(&mut out[start..end]);
        from = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blanked(text: &str, templates: &TemplateLines) -> String {
        let mut out = text.as_bytes().to_vec();
        blank_templates(text, &mut out, templates);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn markdown_template_lines_and_comments_are_blanked() {
        let templates = TemplateLines::from_text(
            "---\nname: Bug report\nabout: Report a bug\n---\n\n**Describe the bug you encountered:**\n\n\
             <!-- run `bat --diagnostic` or diagnostics/info.sh and paste it here -->\n\
             **What did you expect to happen instead?**\n",
        );
        let issue = "Long file paths break header\n<!--\nHey there, run diagnostics/info.sh\n-->\n\
                     **Describe the bug you encountered:**\nThe header wraps in printer output.\n\
                     **What did you expect to happen instead?**\n";
        let out = blanked(issue, &templates);
        assert!(out.starts_with("Long file paths break header\n"), "{out}");
        assert!(!out.contains("diagnostics"), "{out}");
        assert!(!out.contains("Describe"), "{out}");
        assert!(!out.contains("expect"), "{out}");
        assert!(out.contains("The header wraps in printer output."), "{out}");
        assert_eq!(out.len(), issue.len());
        assert_eq!(out.matches('\n').count(), issue.matches('\n').count());
    }

    #[test]
    fn issue_form_labels_match_the_headings_they_become() {
        let templates = TemplateLines::from_text(
            "body:\n  - type: input\n    attributes:\n      label: Link to minimal reproduction\n\
             \x20     description: |\n        The easiest way to provide a reproduction is a playground.\n",
        );
        let issue = "v-pre not ignoring {{ inside textarea\n### Link to minimal reproduction\n\nhttps://jsfiddle.net/x\n";
        let out = blanked(issue, &templates);
        assert!(!out.contains("minimal"), "{out}");
        assert!(out.contains("jsfiddle"), "{out}");
    }

    #[test]
    fn without_templates_only_comments_go() {
        let issue = "Title\n**Describe the bug**\n<!-- unclosed\nrest\n";
        let out = blanked(issue, &TemplateLines::default());
        assert!(out.contains("Describe the bug"));
        assert!(!out.contains("<!--"));
        assert!(
            out.contains("unclosed"),
            "an unclosed comment blanks only its opening"
        );
    }

    #[test]
    fn a_comment_quoted_in_a_sentence_hides_nothing() {
        let issue =
            "Title\nThe parser mishandles `<!--` at the end; createRouterMatcher checks `-->`.\n";
        assert_eq!(blanked(issue, &TemplateLines::default()), issue);
    }

    #[test]
    fn after_an_unclosed_comment_the_scan_stops() {
        // Scanning on would look for a close that cannot come after every later opening:
        // quadratic on a text of openings.
        let issue = "Title\n<!-- one\n<!-- two\n";
        let out = blanked(issue, &TemplateLines::default());
        assert_eq!(out, "Title\n     one\n<!-- two\n");
    }

    #[test]
    fn a_dropdowns_options_are_the_reporters_answer() {
        let form = "body:\n  - type: dropdown\n    attributes:\n      label: Which package is affected?\n\
                    \x20     options:\n        - router-matcher\n        - apiDefineComponent\n\
                    \x20 - type: textarea\n    attributes:\n      label: Describe the bug\n";
        let kept: Vec<&str> = without_options(form).collect();
        let templates = TemplateLines::from_text(&kept.join("\n"));
        let issue =
            "Title\n### Which package is affected?\n\napiDefineComponent\n### Describe the bug\n";
        let out = blanked(issue, &templates);
        assert!(out.contains("apiDefineComponent"), "{out}");
        assert!(!out.contains("Which package"), "{out}");
        assert!(!out.contains("Describe the bug"), "{out}");
    }
}
