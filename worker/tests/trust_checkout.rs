//! Issue 11, the checkout and the agent's branch, against the real worker process, the
//! real broker and the stand-ins: links in a repository read nothing outside it (a canary
//! in the worker's environment reaches no LLM request, no GitHub or Jira body, no log
//! line), a person's commit on the agent's branch survives a new run, a push the remote
//! rejects is permanent, and clones over `CLONE_MAX_BYTES` are refused before (GitHub's
//! `size`) or stopped while they run.

mod common;

use common::standins::{clone_bare, git};

use common::internals::{Plan, PlanFile};
use common::standins::Answer;
use common::wait_until;
use common::world::*;
use shared::RepoUrl;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const CANARY: &str = "canary-7d1f3b9e2a64c058";
const JIRA_TOKEN: &str = "jira-TOKEN-never-logged";

/// What one pushed commit changes.
enum Change<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

/// Pushes one commit by `author` (`Name <email>`, committer too) onto `branch` of the
/// world's repository, starting from `from`.
fn push_commit(
    world: &World,
    from: &str,
    branch: &str,
    changes: &[Change<'_>],
    author: (&str, &str),
) {
    let bare = world.repos.root.join("github").join(format!("{REPO}.git"));
    let work = world
        .fleet
        .root
        .path()
        .join(format!("push-{}", uuid::Uuid::new_v4().simple()));
    git(
        world.fleet.root.path(),
        &[
            "clone",
            "-q",
            bare.to_str().expect("utf8"),
            work.to_str().expect("utf8"),
        ],
    );
    git(
        &work,
        &["checkout", "-q", "-B", branch, &format!("origin/{from}")],
    );
    for change in changes {
        let (path, full) = match change {
            Change::File(p, _) | Change::Link(p, _) => (*p, work.join(p)),
        };
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        match change {
            Change::File(_, content) => std::fs::write(&full, content).expect("write"),
            Change::Link(_, target) => std::os::unix::fs::symlink(target, &full).expect("link"),
        }
        git(&work, &["add", "--", path]);
    }
    let (name, email) = author;
    git(
        &work,
        &[
            "-c",
            &format!("user.name={name}"),
            "-c",
            &format!("user.email={email}"),
            "commit",
            "-qm",
            &format!("{name} was here"),
        ],
    );
    git(
        &work,
        &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
    );
}

/// A reviewer's commit (a `NOTES.md`) pushed onto the agent's `branch`: its hash.
fn reviewers_notes_on(world: &World, branch: &str) -> String {
    push_commit(
        world,
        branch,
        branch,
        &[Change::File("NOTES.md", b"reviewer's notes\n")],
        ("Reviewer", "reviewer@example.com"),
    );
    head_of(world, branch)
}

fn head_of(world: &World, branch: &str) -> String {
    world
        .repos
        .git_in(REPO, &["rev-parse", branch])
        .trim()
        .to_owned()
}

fn status_text(world: &World, number: u64) -> String {
    status_comments(&world.github, number)
        .iter()
        .filter_map(|c| c["body"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An answer that edits the file behind `docs/ref -> /proc/self`.
fn environ_answer() -> String {
    "Update the environment notes.\n\ndocs/ref/environ\n```\n<<<<<<< SEARCH\nPATH\n=======\nPATH2\n>>>>>>> REPLACE\n```\n".into()
}

fn plan_json(path: &str) -> String {
    format!(
        "```json\n{{\"summary\": \"Round refunds to cents\", \"files\": [{{\"path\": \"{path}\", \"change\": \"round the amount\"}}], \"steps\": [\"round in refund()\"], \"risks\": [], \"tests\": \"a unit test\"}}\n```"
    )
}

#[tokio::test]
async fn links_in_the_repository_leak_no_secret() {
    let world = World::new(
        "trust-links",
        5,
        &[
            ("plan", vec![Answer::Text(plan_json("pay/refunds.py"))]),
            (
                "edit",
                vec![
                    Answer::Text(environ_answer()),
                    Answer::Text(good_answer()),
                    Answer::Text(environ_answer()),
                ],
            ),
            ("repair", vec![Answer::Text(good_answer())]),
        ],
    )
    .await;
    push_commit(
        &world,
        "main",
        "main",
        &[
            Change::Link(".github/pull_request_template.md", "/proc/self/environ"),
            Change::Link("docs/ref", "/proc/self"),
        ],
        ("Dev", "dev@example.com"),
    );
    let worker = world.worker(&[("AGENT_CANARY", CANARY)]);
    worker.wait_ready().await;

    // (c) A first answer editing `docs/ref/environ`: refused, and the repair round shows
    // nothing of it.
    let quickfix = world.task("github:trust-links-c", 51, "dev1");
    world.run(&worker, &quickfix, "done").await;
    assert_eq!(world.llm.phases(), vec!["edit", "repair"]);

    // (a) Plan, approve, implement: the PR body carries the repository's template.
    let plan = world.plan_task("github:trust-links-a-plan", 52);
    world.run(&worker, &plan, "done").await;
    let approval = world.github.add_comment(52, "dev1", "/approve");
    let implement = world.approve_task("github:trust-links-a", 52, &approval, "dev1");
    world.run(&worker, &implement, "done").await;
    let pull = world
        .github
        .pulls()
        .into_iter()
        .find(|p| p["head"]["ref"] == "agent/github-52")
        .expect("the implementation's PR");
    assert!(
        pull["body"].as_str().expect("body").contains("Plan v1"),
        "{pull}"
    );

    // (b) A plan (on the thread, by the agent) naming `docs/ref/environ`: the implement
    // prompt reads nothing through the link.
    let crafted = Plan {
        summary: "Document the environment".into(),
        files: vec![PlanFile {
            path: "docs/ref/environ".into(),
            change: "edit".into(),
        }],
        steps: vec!["edit it".into()],
        risks: vec![],
        tests: String::new(),
    };
    world
        .repos
        .git_in(REPO, &["branch", "agent/github-53", "main"]);
    world.github.add_comment(
        53,
        "fleet-agent[bot]",
        &crafted.github_comment(1, "github:trust-links-b-plan", None),
    );
    let approval = world.github.add_comment(53, "dev1", "/approve");
    let implement = world.approve_task("github:trust-links-b", 53, &approval, "dev1");
    let calls_before = world.llm.calls().len();
    world.fleet.publish(&implement).await;
    finished(&worker, &implement.task_id).await;
    let implement_prompts: Vec<String> = world.llm.calls()[calls_before..]
        .iter()
        .map(|c| c.body.to_string())
        .collect();
    assert!(
        implement_prompts
            .iter()
            .any(|p| p.contains("docs/ref/environ")),
        "the implement prompt was sent: {implement_prompts:?}"
    );

    // Nothing of the worker's environment left the worker.
    let llm_bodies: Vec<String> = world
        .llm
        .calls()
        .iter()
        .map(|c| c.body.to_string())
        .collect();
    let github_bodies = world.github.state.lock().expect("lock").bodies.clone();
    assert!(!github_bodies.is_empty());
    let jira_bodies =
        serde_json::to_string(&world.jira.state.lock().expect("lock").comments).expect("json");
    let log = worker.log_text();
    for secret in [CANARY, GITHUB_TOKEN, LLM_KEY, JIRA_TOKEN] {
        for body in &llm_bodies {
            assert!(!body.contains(secret), "{secret} in an LLM request: {body}");
        }
        for body in &github_bodies {
            assert!(
                !body.contains(secret),
                "{secret} in a GitHub request: {body}"
            );
        }
        assert!(!jira_bodies.contains(secret), "{secret} in a Jira request");
        assert!(!log.contains(secret), "{secret} in the worker's log");
    }
}

#[tokio::test]
async fn a_reviewers_commit_on_the_agents_branch_survives_the_next_run() {
    let (world, worker) = World::quickfix("trust-history").await;
    let first = world.task("github:trust-history-1", 61, "dev1");
    world.run(&worker, &first, "done").await;

    let reviewed = reviewers_notes_on(&world, "agent/github-61");

    // The same issue again (a re-label): the agent would rebuild the branch from main.
    let again = world.task("github:trust-history-2", 61, "admin1");
    world.run(&worker, &again, "failed").await;
    assert_eq!(
        head_of(&world, "agent/github-61"),
        reviewed,
        "the reviewer's commit survives"
    );
    let status = status_text(&world, 61);
    assert!(
        status.contains("did not write") && status.contains(&reviewed[..12]),
        "the issue is told: {status}"
    );
    assert_eq!(
        world.llm.calls().len(),
        1,
        "refused before asking the LLM again"
    );
    assert!(world.fleet.take_dead().await.is_empty());
}

/// The other side of the same rule: Implement works on the agent's branch as it is, so a
/// reviewer's commit on the plan's branch is kept under the implementation.
#[tokio::test]
async fn an_implementation_builds_on_a_reviewers_commit() {
    let (world, worker) = World::with_worker(
        "trust-on-top",
        5,
        &[
            ("plan", vec![Answer::Text(plan_json("pay/refunds.py"))]),
            ("edit", vec![Answer::Text(good_answer())]),
        ],
        &[],
    )
    .await;
    let plan = world.plan_task("github:trust-on-top-plan", 62);
    world.run(&worker, &plan, "done").await;
    let reviewed = reviewers_notes_on(&world, "agent/github-62");
    let approval = world.github.add_comment(62, "dev1", "/approve");
    let implement = world.approve_task("github:trust-on-top", 62, &approval, "dev1");
    world.run(&worker, &implement, "done").await;
    world.repos.git_in(
        REPO,
        &["merge-base", "--is-ancestor", &reviewed, "agent/github-62"],
    );
    assert_ne!(head_of(&world, "agent/github-62"), reviewed);
    assert!(world.file_on("agent/github-62", "NOTES.md").is_some());
    world.assert_fix_on("agent/github-62");
}

#[tokio::test]
async fn a_push_the_remote_rejects_is_permanent() {
    let (world, worker) = World::quickfix("trust-rejected").await;
    let hook = world
        .repos
        .root
        .join("github")
        .join(format!("{REPO}.git"))
        .join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n").expect("hook");
    Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .expect("chmod");

    let task = world.task("github:trust-rejected", 71, "dev1");
    world.run(&worker, &task, "failed").await;
    let status = status_text(&world, 71);
    assert!(status.contains("rejected"), "{status}");
    let attempts = worker
        .log_lines()
        .iter()
        .filter(|l| l["task_id"] == task.task_id.as_str() && l["message"] == "task finished")
        .count();
    assert_eq!(attempts, 1, "one attempt");
    assert_eq!(world.llm.calls().len(), 1);
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );
    assert_eq!(
        world.fleet.ready(&world.fleet.queue).await,
        0,
        "nothing requeued"
    );
    assert!(world.file_on("agent/github-71", "pay/refunds.py").is_none());
}

#[tokio::test]
async fn a_repository_github_reports_too_large_is_not_cloned() {
    let (world, worker) =
        World::quickfix_with("trust-size", &[("CLONE_MAX_BYTES", "2000000")]).await;
    world.github.state.lock().expect("lock").repo_size_kib = Some(10_000);
    let task = world.task("github:trust-size", 81, "dev1");
    world.run(&worker, &task, "failed").await;
    let status = status_text(&world, 81);
    assert!(
        status.contains("GitHub reports the repository") && status.contains("CLONE_MAX_BYTES"),
        "{status}"
    );
    assert!(
        !worker
            .log_lines()
            .iter()
            .any(|l| l["task_id"] == task.task_id.as_str() && l["message"] == "cloned"),
        "not cloned"
    );
    assert!(world.llm.calls().is_empty());
}

/// Incompressible bytes (xorshift), so the pack is as big as the file.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test]
async fn a_clone_growing_past_the_limit_is_stopped_while_it_runs() {
    let world = World::new(
        "trust-growing",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    // `acme/huge`: 3 MB that do not compress, served by an upload-pack that keeps the
    // connection open after the pack (a slow server): only a guard that watches the clone
    // while it runs can stop it before CLONE_TIMEOUT_SECS.
    let root: PathBuf = world.fleet.root.path().to_path_buf();
    let seed = root.join("huge-seed");
    std::fs::create_dir_all(&seed).expect("mkdir");
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("blob.bin"), noise(3_000_000)).expect("write");
    git(&seed, &["add", "."]);
    git(
        &seed,
        &[
            "-c",
            "user.name=D",
            "-c",
            "user.email=d@example.com",
            "commit",
            "-qm",
            "big",
        ],
    );
    let bare = root.join("huge.git");
    clone_bare(&root, &seed, &bare);
    let server = root.join("slow-upload-pack.sh");
    std::fs::write(&server, "#!/bin/sh\n\"$1\" \"$2\"\nsleep 120\n").expect("script");
    Command::new("chmod")
        .arg("+x")
        .arg(&server)
        .status()
        .expect("chmod");
    let url = format!("ext::{} %S {}", server.display(), bare.display());
    let worker = world.worker(&[
        ("GIT_CONFIG_COUNT", "3"),
        ("GIT_CONFIG_KEY_1", &format!("url.{url}.insteadOf")),
        ("GIT_CONFIG_VALUE_1", "https://github.com/acme/huge"),
        ("GIT_CONFIG_KEY_2", "protocol.ext.allow"),
        ("GIT_CONFIG_VALUE_2", "always"),
        ("CLONE_MAX_BYTES", "1000000"),
        ("CLONE_TIMEOUT_SECS", "300"),
    ]);
    worker.wait_ready().await;

    let mut task = world.task("github:trust-growing", 91, "dev1");
    task.repo_url = RepoUrl::parse("https://github.com/acme/huge").expect("url");
    task.issue.key = "acme/huge#91".into();
    world.run(&worker, &task, "failed").await;
    let status = status_text(&world, 91);
    assert!(status.contains("CLONE_MAX_BYTES"), "{status}");
    assert!(world.llm.calls().is_empty());
    // The clone's helpers went with it (its process group was killed).
    let needle = server.to_string_lossy().into_owned();
    wait_until("the slow server is gone", Duration::from_secs(10), || {
        processes_with(&needle) == 0
    })
    .await;
}
