//! The console's pages as maud templates: every value is escaped by maud, so an issue
//! title or an error text written by an attacker stays text.

use super::Visitor;
use crate::api::tokens::Role;
use chrono::{DateTime, Utc};
use fleet_ledger::dead::DeadLetterView;
use fleet_ledger::query::{EventView, TaskView};
use maud::{DOCTYPE, Markup, html};

/// Seconds between the overview's refreshes.
const REFRESH_SECS: u32 = 10;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f4f4f4}nav a{margin-right:1rem}.muted{color:#777}
.state-done{color:#16702e}.state-failed,.state-dead{color:#b3261e}.state-cancelled{color:#8a6100}
code{font-size:12px}form{display:inline}button{cursor:pointer}
";

fn layout(title: &str, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if refresh { meta http-equiv="refresh" content=(REFRESH_SECS); }
                title { (title) " · agent-fleet" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn nav(visitor: &Visitor) -> Markup {
    html! {
        nav {
            a href=(visitor.link("/console")) { "Tasks" }
            a href=(visitor.link("/console/dead-letters")) { "Dead letters" }
            span.muted { "signed in as " (visitor.caller.name) " (" (visitor.caller.role.as_str()) ")" }
        }
    }
}

/// The login form (a token becomes a cookie).
pub fn login(note: Option<&str>) -> Markup {
    layout(
        "Sign in",
        false,
        html! {
            h1 { "agent-fleet console" }
            @if let Some(note) = note { p.state-failed { (note) } }
            form method="post" action="/console/login" {
                label { "API token " input type="password" name="token" autocomplete="off" required; }
                " "
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(text: &str) -> Markup {
    layout(
        "Error",
        false,
        html! { h1 { "Something went wrong" } p { (text) } p { a href="/console" { "Back" } } },
    )
}

/// How long ago `at` was, in the largest unit that fits.
fn age(at: DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

fn checks_cell(task: &TaskView) -> Markup {
    let checks = task
        .checks
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let failed = checks
        .iter()
        .filter(|c| c.get("result").and_then(|r| r.as_str()) != Some("passed"))
        .count();
    html! {
        @if checks.is_empty() { span.muted { "–" } }
        @else if failed == 0 { (checks.len()) " passed" }
        @else { span.state-failed { (failed) " of " (checks.len()) " failing" } }
    }
}

fn task_table(visitor: &Visitor, tasks: &[TaskView]) -> Markup {
    html! {
        @if tasks.is_empty() { p.muted { "None." } }
        @else {
            table {
                thead { tr {
                    th { "Issue" } th { "Mode" } th { "State" } th { "Phase" } th { "Age" }
                    th { "Tokens" } th { "Cost" } th { "Checks" } th { "Pull request" }
                } }
                tbody {
                    @for task in tasks {
                        tr data-task=(task.task_id) {
                            td {
                                a href=(visitor.link(&format!("/console/tasks/{}", task.task_id))) { (task.issue.key) }
                            }
                            td { (task.mode) }
                            td class=(format!("state-{}", task.state)) { (task.state) }
                            td { (task.phase.as_deref().unwrap_or("–")) }
                            td { (age(task.created_at)) }
                            td { (task.tokens.input + task.tokens.output) }
                            td.cost { (format!("${:.4}", task.cost_usd)) }
                            td { (checks_cell(task)) }
                            td {
                                @if let Some(url) = task.pr_url.as_deref().filter(|u| is_web_link(u)) { a.pr href=(url) { (url) } }
                                @else { span.muted { "–" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The overview: running (and waiting), queued, recent.
pub fn overview(
    visitor: &Visitor,
    running: &[TaskView],
    queued: &[TaskView],
    recent: &[TaskView],
) -> Markup {
    layout(
        "Tasks",
        true,
        html! {
            h1 { "agent-fleet" }
            (nav(visitor))
            h2 { "Running (" (running.len()) ")" }
            section id="running" { (task_table(visitor, running)) }
            h2 { "Queued (" (queued.len()) ")" }
            section id="queued" { (task_table(visitor, queued)) }
            h2 { "Recent" }
            section id="recent" { (task_table(visitor, recent)) }
            p.muted { "Refreshes every " (REFRESH_SECS) " s." }
        },
    )
}

/// One task and its events.
pub fn timeline(visitor: &Visitor, task: &TaskView, events: &[EventView]) -> Markup {
    layout(
        &task.task_id,
        true,
        html! {
            h1 { (task.issue.key) " · " (task.mode) }
            (nav(visitor))
            p {
                "Task " code { (task.task_id) } ", asked by " (task.trigger_user) ", "
                span class=(format!("state-{}", task.state)) { (task.state) }
                @if let Some(error) = &task.error { " — " (error) }
            }
            p {
                (task.llm_calls) " LLM call(s), " (task.tokens.input) " input and "
                (task.tokens.output) " output tokens, " (format!("${:.4}", task.cost_usd))
                @if let Some(url) = task.pr_url.as_deref().filter(|u| is_web_link(u)) { ", pull request " a href=(url) { (url) } }
            }
            table {
                thead { tr { th { "At" } th { "Event" } th { "Detail" } } }
                tbody {
                    @for event in events {
                        tr {
                            td { (event.at.format("%Y-%m-%d %H:%M:%S")) }
                            td { (event.kind) }
                            td { code { (detail_text(&event.detail)) } }
                        }
                    }
                }
            }
        },
    )
}

/// An event's detail in one line, without the recorded task message (long, and shown by
/// the API).
fn detail_text(detail: &serde_json::Value) -> String {
    let mut detail = detail.clone();
    if let Some(object) = detail.as_object_mut() {
        object.remove("message");
        object.remove("kind");
    }
    detail.to_string()
}

/// The dead letters with their replay buttons (for an operator).
pub fn dead_letters(visitor: &Visitor, letters: &[DeadLetterView]) -> Markup {
    let operator = visitor.caller.role >= Role::Operator;
    layout(
        "Dead letters",
        false,
        html! {
            h1 { "Dead letters" }
            (nav(visitor))
            @if letters.is_empty() { p.muted { "None." } }
            @else {
                table {
                    thead { tr {
                        th { "Message" } th { "Task" } th { "Reason" } th { "Deaths" }
                        th { "First death" } th { "" }
                    } }
                    tbody {
                        @for letter in letters {
                            tr data-message=(letter.message_id) {
                                td { code { (letter.message_id) } }
                                td { (letter.task_id.as_deref().unwrap_or("–")) }
                                td { (letter.reason) }
                                td { (letter.count) }
                                td { (letter.first_death_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                                td {
                                    @if operator {
                                        form method="post" action=(visitor.link(&format!("/console/dead-letters/{}/replay", urlencode(&letter.message_id)))) {
                                            button.replay type="submit" { "Replay" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Only `https://` (and `http://`) links become links: a recorded URL is an API's answer,
/// and a `javascript:` one must stay text.
fn is_web_link(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn urlencode(text: &str) -> String {
    super::form_encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tokens::Caller;
    use fleet_ledger::query::{IssueView, Tokens};

    #[test]
    fn recorded_text_is_escaped_and_only_web_links_are_links() {
        let task = TaskView {
            task_id: "github:1".into(),
            issue: IssueView {
                tracker: "github".into(),
                key: "<img src=x onerror=alert(1)>".into(),
                url: String::new(),
            },
            repo_url: String::new(),
            mode: "quickfix".into(),
            state: "done".into(),
            phase: None,
            trigger_user: "dev1".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            attempts: 1,
            tokens: Tokens {
                input: 1,
                output: 1,
            },
            cost_usd: 0.0,
            llm_calls: 1,
            checks: serde_json::json!([]),
            pr_url: Some("javascript:alert(1)".into()),
            error: None,
        };
        let visitor = Visitor {
            caller: Caller {
                name: "a".into(),
                role: Role::Viewer,
            },
            query: String::new(),
        };
        let html = overview(&visitor, &[], &[], &[task]).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img"), "{html}");
        assert!(!html.contains("href=\"javascript:"), "{html}");
    }
}
