//! The repository's checks before the pull request, end to end (the worker binary, the
//! real broker, a local bare repository with an `.agent-fleet.yml`, the GitHub and LLM
//! stand-ins): new failures start repair rounds fed with the check's output, failures the
//! base commit has too do not block, what still fails makes a draft (or no PR), a check
//! that hangs is killed with its children, a check hunting for secrets finds none, the
//! network is off unless the config turns it on, and the config's `enabled` and triggers
//! are enforced before anything is cloned or asked.

mod common;

use common::standins::Answer;
use common::world::*;
use serde_json::Value;

/// Passes on the original code and on [`good_answer`]; fails on [`wrong_answer`].
const CENTS_CHECK: &str = "checks:\n  - name: cents\n    run: \"! grep -q 'round(amount)' pay/refunds.py || { echo 'FAIL: round(amount) drops the cents'; exit 1; }\"\n";

/// Parses and applies, but rounds to whole units: the cents check fails.
fn wrong_answer() -> String {
    "Round refunds.\n\npay/refunds.py\n```python\n<<<<<<< SEARCH\ndef refund(amount):\n    return amount\n=======\ndef refund(amount):\n    return round(amount)\n>>>>>>> REPLACE\n```\n".into()
}

/// The repair of [`wrong_answer`]: cents kept.
fn repaired_answer() -> String {
    "Keep the cents.\n\npay/refunds.py\n```python\n<<<<<<< SEARCH\n    return round(amount)\n=======\n    return round(amount, 2)\n>>>>>>> REPLACE\n```\n".into()
}

/// An LLM that answers every edit with [`good_answer`].
fn fixes() -> Vec<(&'static str, Vec<Answer>)> {
    vec![("edit", vec![Answer::Text(good_answer())])]
}

/// An answer that applies to the README whatever the code holds (a repair that does not help).
fn readme_answer() -> String {
    "Document rounding.\n\nREADME.md\n```markdown\n<<<<<<< SEARCH\n# payments\n=======\n# payments\n\nRefunds are rounded.\n>>>>>>> REPLACE\n```\n".into()
}

/// A world whose repository carries `config` as `.agent-fleet.yml`, and a worker with
/// `extra` settings whose LLM follows `script`.
async fn world_with_config(
    name: &str,
    config: &str,
    script: &[(&str, Vec<Answer>)],
    extra: &[(&str, &str)],
) -> (World, common::WorkerProc) {
    let world = World::new(name, 5, script).await;
    world.commit_files(&[(".agent-fleet.yml", config)]);
    let worker = world.worker(extra);
    worker.wait_ready().await;
    (world, worker)
}

/// [`world_with_config`], then the issue `number` task (`github:<name>`, asked by `dev1`)
/// run to `outcome`.
async fn worked(
    name: &str,
    number: u64,
    config: &str,
    script: &[(&str, Vec<Answer>)],
    extra: &[(&str, &str)],
    outcome: &str,
) -> (World, common::WorkerProc) {
    let (world, worker) = world_with_config(name, config, script, extra).await;
    let task = world.task(&format!("github:{name}"), number, "dev1");
    world.run(&worker, &task, outcome).await;
    (world, worker)
}

fn status_text(world: &World, number: u64) -> String {
    let statuses = status_comments(&world.github, number);
    assert_eq!(statuses.len(), 1, "one status comment");
    body_of(&statuses[0]).to_owned()
}

fn request_text(call: &common::standins::LlmCall) -> String {
    call.body.to_string()
}

/// Asserts that `text` holds every one of `parts`.
#[track_caller]
fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "lacks {part:?}: {text}");
    }
}

/// The `### Checks` row of check `name` in the one pull request's body.
fn check_line(world: &World, name: &str) -> String {
    let pull = the_pull(world);
    let prefix = format!("| {name} |");
    body_of(&pull)
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {name}: {}", body_of(&pull)))
        .to_owned()
}

fn the_pull(world: &World) -> Value {
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1, "one pull request");
    pulls[0].clone()
}

#[tokio::test]
async fn a_failing_check_is_repaired_with_its_output_and_the_pull_request_says_passed() {
    let script = [
        ("edit", vec![Answer::Text(wrong_answer())]),
        ("repair", vec![Answer::Text(repaired_answer())]),
    ];
    let (world, _worker) = worked("checks-repair", 61, CENTS_CHECK, &script, &[], "done").await;

    let calls = world.llm.calls();
    let phases: Vec<&str> = calls.iter().map(|c| c.phase.as_str()).collect();
    assert_eq!(phases, ["edit", "repair"]);
    // The check's name, exit and output, and the file as it stands.
    assert_has(
        &request_text(&calls[1]),
        &[
            "`cents`",
            "exit code 1",
            "FAIL: round(amount) drops the cents",
            "return round(amount)",
        ],
    );
    let pull = the_pull(&world);
    assert_has(
        body_of(&pull),
        &["### Checks", "Repair rounds fed with failing checks: 1."],
    );
    assert!(check_line(&world, "cents").contains("| passed |"));
    assert_eq!(
        pull["draft"],
        Value::Bool(false),
        "passing checks: a ready PR"
    );
    world.assert_fix_on("agent/github-61");
    let status = status_text(&world, 61);
    assert!(status.contains("Checks: `cents` passed"), "{status}");
}

#[tokio::test]
async fn still_failing_after_the_rounds_opens_a_draft_with_the_evidence() {
    let script = [
        ("edit", vec![Answer::Text(wrong_answer())]),
        ("repair", vec![Answer::Text(readme_answer())]),
    ];
    let config = format!("{CENTS_CHECK}repair_rounds: 1\n");
    let (world, _worker) = worked("checks-draft", 62, &config, &script, &[], "done").await;

    assert_eq!(world.llm.phases(), ["edit", "repair"], "one repair round");
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(true), "{pull}");
    assert!(check_line(&world, "cents").contains("| failed |"));
    assert_has(
        body_of(&pull),
        &["Still failing after 1 repair round(s): cents."],
    );
    assert_has(&status_text(&world, 62), &["the pull request is a draft"]);
    let pushed = world
        .file_on("agent/github-62", "pay/refunds.py")
        .expect("pushed");
    assert!(pushed.contains("return round(amount)\n"), "{pushed}");
}

#[tokio::test]
async fn still_failing_with_on_failure_none_opens_nothing_and_says_so() {
    let script = [("edit", vec![Answer::Text(wrong_answer())])];
    let config = format!("{CENTS_CHECK}repair_rounds: 0\non_failure: none\n");
    let (world, _worker) = worked("checks-none", 63, &config, &script, &[], "failed").await;

    assert_eq!(world.llm.phases(), ["edit"], "no repair round was allowed");
    assert!(world.github.pulls().is_empty(), "no pull request");
    assert!(
        world.file_on("agent/github-63", "pay/refunds.py").is_none(),
        "nothing pushed"
    );
    assert_has(
        &status_text(&world, 63),
        &[
            "the checks still fail after 0 repair round(s) (cents)",
            "no pull request was opened (`on_failure: none`",
        ],
    );
}

#[tokio::test]
async fn a_check_failing_before_the_change_does_not_block_and_is_shown_as_such() {
    let config = format!(
        "{CENTS_CHECK}  - name: legacy\n    run: \"test -f LEGACY_OK || {{ echo legacy broken; exit 3; }}\"\n"
    );
    let (world, _worker) = worked("checks-before", 64, &config, &fixes(), &[], "done").await;

    assert_eq!(
        world.llm.phases(),
        ["edit"],
        "an old failure asks for no repair"
    );
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(false));
    let legacy = check_line(&world, "legacy");
    assert!(legacy.contains("| failing before the change |"), "{legacy}");
    assert!(check_line(&world, "cents").contains("| passed |"));
}

/// The canary the worker carries in its environment (not a setting it knows of).
const CANARY: &str = "canary-5e1f-never-in-a-check";

/// A check that hunts for secrets: its own environment, every `/proc/*/environ` it can
/// open and every file under the worker's workspace; whatever looks like one of the test's
/// secrets (by their shapes, not their values) is printed reversed (no redaction by value can catch that), and the check fails
/// only on the edited code, so its output goes to the model in a repair round. Its own
/// `HUNT_CONTROL` shows the hunt works and its output arrives.
fn hunt_script(workspace: &std::path::Path) -> String {
    format!(
        "export HUNT_CONTROL=canary-control-visible\n\
         {{ env; for f in /proc/[0-9]*/environ; do cat \"$f\"; echo; done; \
         find {ws} -type f 2>/dev/null | head -5000 | while read -r f; do cat \"$f\"; done; }} 2>/dev/null \
         | tr '\\0' '\\n' | grep -aiE 'canary|ghs_|sk-ant' | rev | sort -u | head -c 12000\n\
         grep -q 'round(amount, 2)' pay/refunds.py && exit 1\n\
         exit 0\n",
        ws = workspace.display()
    )
}

fn reversed(text: &str) -> String {
    text.chars().rev().collect()
}

async fn no_secret_reaches_anything(name: &str, number: u64, sandbox: &str) {
    let script = [
        ("edit", vec![Answer::Text(good_answer())]),
        ("repair", vec![Answer::Text(readme_answer())]),
    ];
    let world = World::new(name, 5, &script).await;
    let hunt = hunt_script(&world.fleet.workspace());
    world.commit_files(&[
        ("hunt.sh", &hunt),
        (
            ".agent-fleet.yml",
            "checks:\n  - name: hunt\n    run: sh hunt.sh\nrepair_rounds: 1\n",
        ),
    ]);
    let worker = world.worker(&[("SANDBOX", sandbox), ("AGENT_FLEET_TEST_CANARY", CANARY)]);
    worker.wait_ready().await;
    let task = world.task(&format!("github:{name}"), number, "dev1");
    world.run(&worker, &task, "done").await;

    let calls = world.llm.calls();
    assert_eq!(calls.len(), 2, "the hunt's output went to a repair round");
    let repair = request_text(&calls[1]);
    assert!(
        repair.contains(&reversed("canary-control-visible")),
        "control: the hunt reads environments and its output arrives: {repair}"
    );
    let mut seen: Vec<(String, String)> = calls
        .iter()
        .map(|c| ("an LLM request".to_owned(), request_text(c)))
        .collect();
    seen.extend(
        world
            .github
            .pulls()
            .iter()
            .map(|p| ("a PR body".to_owned(), body_of(p).to_owned())),
    );
    seen.extend(
        world
            .github
            .comments_on(number)
            .iter()
            .map(|c| ("a comment".to_owned(), body_of(c).to_owned())),
    );
    let log = std::fs::read_to_string(&worker.log).expect("log");
    seen.push(("the worker's log".to_owned(), log));
    for secret in [CANARY, GITHUB_TOKEN, LLM_KEY] {
        for (place, text) in &seen {
            assert!(!text.contains(secret), "{sandbox}: {secret} in {place}");
            assert!(
                !text.contains(&reversed(secret)),
                "{sandbox}: {secret} (reversed) in {place}"
            );
        }
    }
}

#[tokio::test]
async fn a_check_hunting_for_secrets_finds_none_in_the_process_sandbox() {
    no_secret_reaches_anything("checks-hunt-process", 65, "process").await;
}

#[tokio::test]
async fn a_check_hunting_for_secrets_finds_none_in_bubblewrap() {
    if !fleet_sandbox::bwrap_works().await {
        eprintln!("skipped: bubblewrap cannot run here (.ci/run installs it)");
        return;
    }
    no_secret_reaches_anything("checks-hunt-bwrap", 66, "bwrap").await;
}

/// A listener on 127.0.0.1 counting the connections it accepts.
fn listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (port, accepted)
}

async fn connect_check(name: &str, number: u64, network: bool) -> (String, usize) {
    let (port, accepted) = listener();
    let config = format!(
        "checks:\n  - name: connect\n    run: \"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected\"\nnetwork: {network}\n"
    );
    let (world, _worker) = worked(
        name,
        number,
        &config,
        &fixes(),
        &[("SANDBOX", "bwrap")],
        "done",
    )
    .await;
    let line = check_line(&world, "connect");
    (line, accepted.load(std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn with_bubblewrap_the_network_is_off_unless_the_config_turns_it_on() {
    if !fleet_sandbox::bwrap_works().await {
        eprintln!("skipped: bubblewrap cannot run here (.ci/run installs it)");
        return;
    }
    let (off, reached) = connect_check("checks-net-off", 67, false).await;
    assert_eq!(reached, 0, "network: false reaches nothing on 127.0.0.1");
    assert!(!off.contains("| passed |"), "{off}");
    let (on, reached) = connect_check("checks-net-on", 68, true).await;
    assert!(reached >= 1, "network: true connects");
    assert!(on.contains("| passed |"), "{on}");
}

#[tokio::test]
async fn a_check_that_hangs_and_forks_is_killed_at_its_timeout_with_nothing_left() {
    let config = "checks:\n  - name: spin\n    run: \"while :; do sleep 4242 & sleep 0.05; done\"\n    timeout_secs: 2\nrepair_rounds: 0\n";
    let (world, _worker) = worked("checks-hang", 69, config, &fixes(), &[], "done").await;

    assert_eq!(world.llm.phases(), ["edit"], "a report, no retry storm");
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(true));
    assert!(
        body_of(&pull).contains("| timed out |"),
        "{}",
        body_of(&pull)
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 4242"])
        .output()
        .expect("pgrep");
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "processes left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// A task refused by the repository's config: said on the issue, nothing cloned past the
/// config, no LLM call, no pull request.
async fn refused(name: &str, number: u64, config: &str, says: &str) {
    let (world, worker) = worked(name, number, config, &fixes(), &[], "failed").await;
    assert!(world.llm.calls().is_empty(), "no LLM call");
    assert!(world.github.pulls().is_empty(), "no pull request");
    let status = status_text(&world, number);
    assert_has(&status, &["will not work on this", says]);
    let log = std::fs::read_to_string(&worker.log).expect("log");
    assert!(!log.contains("\"cloned\""), "the repository was not cloned");
}

#[tokio::test]
async fn enabled_false_refuses_every_task() {
    refused(
        "checks-disabled",
        70,
        "enabled: false\n",
        "`enabled: false` in `.agent-fleet.yml`",
    )
    .await;
}

#[tokio::test]
async fn a_user_outside_allowed_users_is_refused() {
    let config = "triggers:\n  allowed_users: [lead1]\n";
    refused(
        "checks-users",
        71,
        config,
        "@dev1 is not among the users and teams",
    )
    .await;
}

#[tokio::test]
async fn an_issue_without_a_whitelisted_label_is_refused() {
    let config = "triggers:\n  labels: [bug, enhancement]\n";
    refused("checks-labels", 72, config, "carries none of the labels").await;
}

#[tokio::test]
async fn a_malformed_config_is_reported_with_its_line() {
    let config = "checks:\n  - name: tests\n    timeout_secs: soon\n    run: pytest\n";
    let (world, _worker) = worked("checks-malformed", 73, config, &fixes(), &[], "failed").await;
    assert!(world.llm.calls().is_empty(), "no LLM call");
    let status = status_text(&world, 73);
    assert!(status.contains(".agent-fleet.yml, line 3:"), "{status}");
}

#[tokio::test]
async fn the_implement_run_checks_and_reports_the_tests_the_plan_expected() {
    let plan = "```json\n{\"summary\": \"Round refunds to cents\", \"files\": [{\"path\": \"pay/refunds.py\", \"change\": \"round the amount\"}], \"steps\": [\"round in refund()\"], \"risks\": [], \"tests\": \"the cents check\"}\n```";
    let script = [
        ("plan", vec![Answer::Text(plan.into())]),
        ("edit", vec![Answer::Text(wrong_answer())]),
        ("repair", vec![Answer::Text(repaired_answer())]),
    ];
    let (world, worker) = world_with_config("checks-implement", CENTS_CHECK, &script, &[]).await;
    let planned = world.plan_task("github:checks-plan", 74);
    world.run(&worker, &planned, "done").await;
    let comment_id = world.github.add_comment(74, "dev1", "/approve");
    let approve = world.approve_task("github:checks-approve", 74, &comment_id, "dev1");
    world.run(&worker, &approve, "done").await;

    assert_eq!(world.llm.phases(), ["plan", "edit", "repair"]);
    world.assert_fix_on("agent/github-74");
    let pull = the_pull(&world);
    assert_eq!(
        pull["draft"],
        Value::Bool(false),
        "checks pass: marked ready"
    );
    assert_has(
        body_of(&pull),
        &[
            "### Checks",
            "**The plan expected these tests to pass:** the cents check",
            "**Result:** `cents` passed.",
        ],
    );
}

#[tokio::test]
async fn setup_runs_first_and_nothing_it_leaves_is_committed() {
    let config = "setup:\n  - \"echo prepared > .prepared && mkdir -p build && echo junk > build/out\"\nchecks:\n  - name: prepared\n    run: \"test -f .prepared\"\n";
    let (world, worker) = worked("checks-setup", 75, config, &fixes(), &[], "done").await;

    let line = check_line(&world, "prepared");
    assert!(
        line.contains("| passed |"),
        "the setup ran before the check: {line}"
    );
    world.assert_fix_on("agent/github-75");
    for left in [".prepared", "build/out"] {
        assert!(
            world.file_on("agent/github-75", left).is_none(),
            "{left} was committed"
        );
    }
    assert_has(
        &worker.metrics().await,
        &[
            "agent_fleet_checks_total{result=\"passed\"} 1",
            "agent_fleet_check_duration_seconds_count 1",
            "phase=\"check\"",
        ],
    );
}

#[tokio::test]
async fn checks_off_runs_none_and_says_so() {
    let config = "checks:\n  - name: never\n    run: \"touch /tmp/never-run; exit 1\"\n";
    let (world, _worker) = worked(
        "checks-off",
        76,
        config,
        &fixes(),
        &[("CHECKS", "off")],
        "done",
    )
    .await;
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(false));
    let body = body_of(&pull);
    assert!(
        body.contains("Checks are turned off on this fleet (`CHECKS=off`)."),
        "{body}"
    );
    assert!(!body.contains("| never |"), "{body}");
}

#[tokio::test]
async fn a_check_that_writes_git_state_in_the_process_sandbox_forges_nothing() {
    // Stages a file, commits it, replaces the checked-out commit with that one
    // (`refs/replace`) and points git at a proxy: in the process sandbox `.git` is
    // writable, so the worker must undo all of it.
    let forge = "base=$(git rev-parse HEAD) && git config http.proxy http://127.0.0.1:9 && echo junk > junk.txt && git add junk.txt && git -c user.name=x -c user.email=x@example.com commit -qm forged && git replace $base HEAD && echo forged";
    let config = format!("checks:\n  - name: forge\n    run: \"{forge}\"\n");
    let (world, _worker) = worked(
        "checks-forge",
        77,
        &config,
        &fixes(),
        &[("SANDBOX", "process")],
        "done",
    )
    .await;

    let pull = the_pull(&world);
    assert!(body_of(&pull).contains("| forge |"), "{}", body_of(&pull));
    world.assert_fix_on("agent/github-77");
    assert!(
        world.file_on("agent/github-77", "junk.txt").is_none(),
        "a staged file was committed"
    );
    let log = world
        .repos
        .git_in(REPO, &["log", "--format=%s", "main..agent/github-77"]);
    assert!(
        !log.contains("forged"),
        "the check's commit was pushed: {log}"
    );
    let pushed = world
        .repos
        .git_in(REPO, &["diff", "--name-only", "main", "agent/github-77"]);
    assert_eq!(pushed.trim(), "pay/refunds.py", "only the edits are pushed");
}

#[tokio::test]
async fn checks_that_could_not_run_are_never_failing_before_and_keep_the_pull_request_a_draft() {
    // A tool missing on the edited code and on the base alike (exit 127), and a setup that
    // fails on both: neither proves anything about the change, so each blocks instead of
    // passing as an old failure. (name, issue, config, the row that must say failed)
    let cases = [
        (
            "checks-missing",
            78,
            "checks:\n  - name: missing\n    run: no-such-tool-4242 --check\nrepair_rounds: 0\n",
            "missing",
        ),
        (
            "checks-setup-broken",
            79,
            "setup:\n  - \"exit 3\"\nchecks:\n  - name: tests\n    run: \"true\"\nrepair_rounds: 0\n",
            "setup",
        ),
    ];
    for (name, number, config, row) in cases {
        let (world, _worker) = worked(name, number, config, &fixes(), &[], "done").await;
        let pull = the_pull(&world);
        assert_eq!(pull["draft"], Value::Bool(true), "{name}: not a ready PR");
        assert!(check_line(&world, row).contains("| failed |"), "{name}");
    }
}

#[tokio::test]
async fn a_repair_round_the_budget_refuses_keeps_the_last_edits_as_a_draft() {
    let script = [("edit", vec![Answer::Text(wrong_answer())])];
    let extra = [("TASK_MAX_LLM_CALLS", "1")];
    let (world, _worker) = worked("checks-budget", 80, CENTS_CHECK, &script, &extra, "done").await;
    assert_eq!(
        world.llm.phases(),
        ["edit"],
        "the repair call was never sent"
    );
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(true));
    assert_has(
        body_of(&pull),
        &["The last repair round failed", "TASK_MAX_LLM_CALLS"],
    );
    let pushed = world
        .file_on("agent/github-80", "pay/refunds.py")
        .expect("pushed");
    assert!(pushed.contains("return round(amount)\n"), "{pushed}");
}

#[tokio::test]
async fn a_ready_pull_request_whose_checks_now_fail_becomes_a_draft_again() {
    // The first run's fix passes and opens a ready PR; a second run on the issue brings an
    // answer the checks refuse: the same PR, turned back into a draft.
    let script = [(
        "edit",
        vec![Answer::Text(good_answer()), Answer::Text(wrong_answer())],
    )];
    let config = format!("{CENTS_CHECK}repair_rounds: 0\n");
    let (world, worker) = worked("checks-redraft", 85, &config, &script, &[], "done").await;
    assert_eq!(the_pull(&world)["draft"], Value::Bool(false));
    let again = world.task("github:checks-redraft-2", 85, "dev1");
    world.run(&worker, &again, "done").await;
    let pull = the_pull(&world);
    assert_eq!(pull["draft"], Value::Bool(true), "{pull}");
    assert!(check_line(&world, "cents").contains("| failed |"));
}

#[tokio::test]
async fn a_setup_still_failing_after_a_repair_round_ends_in_a_draft_not_an_error() {
    // Round one's setup fails, the repair does not help, round two's setup fails again:
    // the base's working tree is made once, and the task ends with its evidence.
    let script = [
        ("edit", vec![Answer::Text(good_answer())]),
        ("repair", vec![Answer::Text(readme_answer())]),
    ];
    let config =
        "setup:\n  - \"exit 3\"\nchecks:\n  - name: tests\n    run: \"true\"\nrepair_rounds: 1\n";
    let (world, _worker) = worked("checks-setup-twice", 86, config, &script, &[], "done").await;
    assert_eq!(world.llm.phases(), ["edit", "repair"]);
    assert_eq!(the_pull(&world)["draft"], Value::Bool(true));
    assert!(check_line(&world, "setup").contains("| failed |"));
}
