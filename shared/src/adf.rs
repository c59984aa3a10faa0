//! Atlassian Document Format (Jira Cloud's v3 rich text): reading a body as plain text (the
//! ingest looks for `/approve` in it, the worker reads comments back) and building simple
//! documents (the worker's comments).

use serde_json::{Value, json};

fn node_type(node: &Value) -> Option<&str> {
    node.get("type").and_then(Value::as_str)
}

/// Plain text of a Jira body: a string as is, an ADF document as its text with one line per
/// block.
pub fn body_text(body: &Value) -> String {
    match body {
        Value::String(text) => text.clone(),
        Value::Object(_) => {
            let mut out = String::new();
            adf_text(body, &mut out);
            out.trim().to_owned()
        }
        _ => String::new(),
    }
}

fn adf_text(node: &Value, out: &mut String) {
    match node_type(node) {
        Some("text") => out.push_str(node.get("text").and_then(Value::as_str).unwrap_or("")),
        Some("hardBreak") => out.push('\n'),
        Some("mention") => out.push_str(
            node.pointer("/attrs/text")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
        _ => {}
    }
    if let Some(children) = node.get("content").and_then(Value::as_array) {
        for child in children {
            adf_text(child, out);
        }
    }
    let is_block = matches!(
        node_type(node),
        Some("paragraph" | "heading" | "codeBlock" | "listItem" | "blockquote" | "rule")
    );
    if is_block && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Whether a Jira body mentions `account`: an ADF mention node with that account id, or
/// wiki markup's `[~accountid:<id>]` in a plain-text body.
pub fn mentions(body: &Value, account: &str) -> bool {
    if account.is_empty() {
        return false;
    }
    match body {
        Value::String(text) => text.contains(&format!("[~accountid:{account}]")),
        Value::Object(_) => mention_in(body, account),
        _ => false,
    }
}

fn mention_in(node: &Value, account: &str) -> bool {
    if node_type(node) == Some("mention")
        && node.pointer("/attrs/id").and_then(Value::as_str) == Some(account)
    {
        return true;
    }
    node.get("content")
        .and_then(Value::as_array)
        .is_some_and(|children| children.iter().any(|c| mention_in(c, account)))
}

/// A document of paragraphs (one per blank-line-separated block of `text`), followed by an
/// optional code block.
pub fn document(text: &str, code: Option<(&str, &str)>) -> Value {
    let mut content: Vec<Value> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|paragraph| {
            let mut inline = Vec::new();
            for (i, line) in paragraph.lines().enumerate() {
                if i > 0 {
                    inline.push(json!({"type": "hardBreak"}));
                }
                if !line.is_empty() {
                    inline.push(json!({"type": "text", "text": line}));
                }
            }
            json!({"type": "paragraph", "content": inline})
        })
        .collect();
    if let Some((language, code)) = code {
        content.push(json!({
            "type": "codeBlock",
            "attrs": {"language": language},
            "content": [{"type": "text", "text": code}]
        }));
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// The text of the first code block of a document (or of a `{code}` block in v2 text).
pub fn first_code_block(body: &Value) -> Option<String> {
    match body {
        Value::String(text) => {
            let start = text.find("{code")?;
            let after = start + text[start..].find('}')? + 1;
            let end = after + text[after..].find("{code}")?;
            Some(text[after..end].trim().to_owned())
        }
        Value::Object(_) => {
            if node_type(body) == Some("codeBlock") {
                let mut out = String::new();
                adf_text(body, &mut out);
                return Some(out.trim().to_owned());
            }
            body.get("content")?
                .as_array()?
                .iter()
                .find_map(first_code_block)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_bodies_become_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "/revise use"}, {"type": "hardBreak"}, {"type": "text", "text": "a trait"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "thanks"}]}
        ]});
        assert_eq!(body_text(&doc), "/revise use\na trait\nthanks");
        assert_eq!(body_text(&json!("/approve")), "/approve");
        assert_eq!(body_text(&json!(null)), "");
    }

    #[test]
    fn built_documents_read_back() {
        let doc = document("line one\nline two\n\nsecond", Some(("json", "{\"a\": 1}")));
        assert_eq!(body_text(&doc), "line one\nline two\nsecond\n{\"a\": 1}");
        assert_eq!(first_code_block(&doc).as_deref(), Some("{\"a\": 1}"));
        let v2 = json!("plan\n{code:json}\n{\"a\": 2}\n{code}\nend");
        assert_eq!(first_code_block(&v2).as_deref(), Some("{\"a\": 2}"));
    }
}
