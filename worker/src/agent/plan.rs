//! Plans: the JSON the LLM answers with (DESIGN.md, "LLM requests and answers"), its
//! validation, how it is posted on the tracker (markdown with a hidden, versioned marker and
//! a hidden JSON block on GitHub; a visible marker line and a code block on Jira), and how
//! the newest plan is read back from the comments: state lives in the tracker.

use crate::tracker::ThreadComment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    pub path: String,
    pub change: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub summary: String,
    pub files: Vec<PlanFile>,
    #[serde(default)]
    pub steps: Vec<String>,
    #[serde(default)]
    pub risks: Vec<String>,
    #[serde(default)]
    pub tests: String,
}

/// A plan as found on the tracker.
#[derive(Debug, Clone)]
pub struct PostedPlan {
    pub version: u32,
    pub hash: String,
    pub plan: Plan,
    pub comment_id: String,
    pub created: String,
}

const JSON_OPEN: &str = "<!-- agent-fleet:plan-json";

impl Plan {
    /// The plan from an LLM answer: one JSON object, maybe fenced, maybe with prose around.
    pub fn parse(answer: &str) -> Result<Self, String> {
        let start = answer.find('{').ok_or("the answer has no JSON object")?;
        let end = answer
            .rfind('}')
            .ok_or("the answer has no complete JSON object")?;
        if end < start {
            return Err("the answer has no complete JSON object".into());
        }
        let plan: Plan = serde_json::from_str(&answer[start..=end])
            .map_err(|e| format!("the plan is not valid JSON of the expected shape: {e}"))?;
        if plan.summary.trim().is_empty() {
            return Err("the plan has an empty `summary`".into());
        }
        if plan.files.is_empty() {
            return Err("the plan names no files".into());
        }
        Ok(plan)
    }

    /// Files the plan names that do not exist in the checkout and are not marked new.
    pub fn missing_files(&self, repo: &Path) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| {
                let new = f.change.to_ascii_lowercase().contains("new");
                let safe = !f.path.contains("..") && !Path::new(&f.path).is_absolute();
                let acceptable = safe && (new || repo.join(&f.path).is_file());
                !acceptable
            })
            .map(|f| f.path.clone())
            .collect()
    }

    /// The canonical JSON (what is hashed and posted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan serializes")
    }

    /// A short content hash: what `/approve` binds to and the `Plan-Hash` trailer carries.
    pub fn hash(&self) -> String {
        hex_prefix(&Sha256::digest(self.to_json().as_bytes()), 16)
    }

    pub fn paths(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| f.path.trim_start_matches("./").to_owned())
            .collect()
    }

    fn readable(&self, bullet: &str) -> String {
        let mut out = format!("{}\n\n", self.summary.trim());
        out.push_str("Files:\n");
        for f in &self.files {
            out.push_str(&format!("{bullet} {} - {}\n", f.path, f.change));
        }
        if !self.steps.is_empty() {
            out.push_str("\nSteps:\n");
            for (i, s) in self.steps.iter().enumerate() {
                out.push_str(&format!("{}. {s}\n", i + 1));
            }
        }
        if !self.risks.is_empty() {
            out.push_str("\nRisks:\n");
            for r in &self.risks {
                out.push_str(&format!("{bullet} {r}\n"));
            }
        }
        if !self.tests.trim().is_empty() {
            out.push_str(&format!("\nTests: {}\n", self.tests.trim()));
        }
        out
    }

    /// The GitHub comment: readable plan, hidden marker, hidden JSON, how to answer.
    pub fn github_comment(&self, version: u32, task_id: &str) -> String {
        // `-->` cannot occur in JSON outside strings; inside them it is escaped.
        let json = self.to_json().replace("-->", "--\\u003e");
        format!(
            "<!-- agent-fleet:plan v={version} hash={hash} -->\n{JSON_OPEN}\n{json}\n-->\n<!-- agent-fleet:plan-task id={task_id} -->\n\
             ### Plan v{version} (`{hash}`)\n\n{body}\n---\nReply `/approve` to implement this plan, or `/revise <feedback>` for a new version.",
            hash = self.hash(),
            body = self.readable("-"),
        )
    }

    /// The Jira comment text (its code block, the JSON, is added by the caller) ending with
    /// the visible marker line.
    pub fn jira_comment(&self, version: u32, task_id: &str) -> (String, String) {
        let text = format!(
            "Plan v{version} ({hash})\n\n{body}\nReply /approve to implement this plan, or /revise <feedback> for a new version.\n\ntask {task_id}\n\nagent-fleet:plan v={version} hash={hash}",
            hash = self.hash(),
            body = self.readable("*"),
        );
        (text, self.to_json())
    }
}

fn hex_prefix(bytes: &[u8], len: usize) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()[..len].to_owned()
}

/// `v=<n> hash=<hex>` after `agent-fleet:plan ` in a comment.
fn marker_of(text: &str) -> Option<(u32, String)> {
    let rest = text.split("agent-fleet:plan v=").nth(1)?;
    let version = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let hash = rest.split("hash=").nth(1)?;
    let hash: String = hash.chars().take_while(char::is_ascii_hexdigit).collect();
    (!hash.is_empty()).then_some((version, hash))
}

fn json_of(comment: &ThreadComment) -> Option<Plan> {
    let text = &comment.text;
    if let Some(rest) = text.split(JSON_OPEN).nth(1) {
        let json = rest.split("-->").next()?;
        return serde_json::from_str(json.trim()).ok();
    }
    let code = shared::adf::first_code_block(&comment.raw)?;
    serde_json::from_str(&code).ok()
}

/// Every plan posted on the thread (by anyone who used the marker; the caller decides
/// whom to trust), oldest first.
pub fn posted(comments: &[ThreadComment], agent_author: Option<&str>) -> Vec<PostedPlan> {
    let mut plans: Vec<PostedPlan> = comments
        .iter()
        .filter(|c| {
            agent_author.is_none_or(|a| c.author.is_empty() || c.author.eq_ignore_ascii_case(a))
        })
        .filter_map(|c| {
            let (version, hash) = marker_of(&c.text)?;
            let plan = json_of(c)?;
            // A marker whose hash does not match its JSON was edited by hand: not a plan.
            (plan.hash() == hash).then(|| PostedPlan {
                version,
                hash,
                plan,
                comment_id: c.id.clone(),
                created: c.created.clone(),
            })
        })
        .collect();
    plans.sort_by_key(|p| p.version);
    plans
}

/// Whether a plan comment for this task id is already on the thread (a redelivery).
pub fn posted_by_task(comments: &[ThreadComment], task_id: &str) -> bool {
    let jira_line = format!("task {task_id}");
    comments.iter().any(|c| {
        c.text.contains("agent-fleet:plan v=")
            && (c
                .text
                .contains(&format!("agent-fleet:plan-task id={task_id} "))
                || c.text.lines().any(|l| l.trim() == jira_line))
    })
}

/// Orders two tracker timestamps (RFC 3339 on GitHub, `...000+0100` on Jira); falls back
/// to comparing numeric ids, which both trackers hand out in increasing order.
pub fn is_newer(a_time: &str, a_id: &str, b_time: &str, b_id: &str) -> bool {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .or_else(|_| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
            .ok()
    };
    match (parse(a_time), parse(b_time)) {
        (Some(a), Some(b)) if a != b => a > b,
        _ => match (a_id.parse::<u64>(), b_id.parse::<u64>()) {
            (Ok(a), Ok(b)) => a > b,
            _ => a_id > b_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn plan() -> Plan {
        Plan::parse("Here it is:\n```json\n{\"summary\": \"Round refunds --> cents\", \"files\": [{\"path\": \"pay/refunds.py\", \"change\": \"round\"}], \"steps\": [\"a\"], \"risks\": [], \"tests\": \"unit\"}\n```").expect("plan")
    }

    fn comment(id: &str, text: String, raw: Value) -> ThreadComment {
        ThreadComment {
            id: id.into(),
            text,
            raw,
            author: "bot".into(),
            created: String::new(),
        }
    }

    #[test]
    fn github_comment_round_trips_through_its_hidden_block() {
        let p = plan();
        let text = p.github_comment(2, "github:t1");
        assert!(text.starts_with(&format!("<!-- agent-fleet:plan v=2 hash={} -->", p.hash())));
        let found = posted(&[comment("5", text.clone(), Value::String(text))], None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].plan, p);
        assert_eq!(found[0].version, 2);
    }

    #[test]
    fn jira_comment_round_trips_through_its_code_block() {
        let p = plan();
        let (text, json) = p.jira_comment(1, "jira:t");
        let doc = shared::adf::document(&text, Some(("json", &json)));
        let flat = shared::adf::body_text(&doc);
        assert!(flat.contains(&format!("agent-fleet:plan v=1 hash={}", p.hash())));
        let found = posted(&[comment("9", flat, doc)], None);
        assert_eq!(found.len(), 1);
        assert!(posted_by_task(
            &[comment(
                "9",
                shared::adf::body_text(&shared::adf::document(&text, None)),
                Value::Null
            )],
            "jira:t"
        ));
    }

    #[test]
    fn a_tampered_plan_is_not_a_plan() {
        let p = plan();
        let text = p
            .github_comment(1, "t")
            .replace("Round refunds", "Delete everything");
        assert!(posted(&[comment("1", text, Value::Null)], None).is_empty());
    }

    #[test]
    fn validation() {
        assert!(Plan::parse("no json").is_err());
        assert!(Plan::parse("{\"summary\": \"x\", \"files\": []}").is_err());
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.py"), "").expect("write");
        let p = Plan::parse("{\"summary\": \"x\", \"files\": [{\"path\": \"a.py\", \"change\": \"edit\"}, {\"path\": \"b.py\", \"change\": \"edit\"}, {\"path\": \"c.py\", \"change\": \"new file\"}, {\"path\": \"../x\", \"change\": \"new\"}]}").expect("plan");
        assert_eq!(p.missing_files(dir.path()), vec!["b.py", "../x"]);
    }

    #[test]
    fn timestamps_order_across_formats() {
        assert!(is_newer(
            "2026-11-21T11:41:00.000+0100",
            "2",
            "2026-11-21T10:40:00Z",
            "1"
        ));
        assert!(!is_newer(
            "2026-11-21T10:00:00Z",
            "5",
            "2026-11-21T11:00:00Z",
            "4"
        ));
        assert!(is_newer("", "11", "", "9"));
    }
}
