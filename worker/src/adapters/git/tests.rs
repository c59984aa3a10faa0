//! The git adapter's unit tests: encoding, stderr classification, literal paths, the
//! token kept out of argv and errors, and no process left by a dropped clone.

use super::classify::{classify, classify_push};
use super::*;

#[test]
fn base64_matches_rfc4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(input.as_bytes()), expected);
    }
}

#[test]
fn stderr_classification() {
    assert!(
        !classify(
            "clone",
            "remote: Repository not found.\nfatal: repository 'x' not found"
        )
        .is_transient()
    );
    assert!(
        !classify(
            "clone",
            "fatal: '/tmp/x.git' does not appear to be a git repository"
        )
        .is_transient()
    );
    assert!(
        !classify(
            "clone",
            "warning: Could not find remote branch nope to clone."
        )
        .is_transient()
    );
    assert!(
        classify(
            "clone",
            "fatal: unable to access 'x': Could not resolve host: github.com"
        )
        .is_transient()
    );
}

#[test]
fn a_403_in_a_url_or_path_is_not_access_denied() {
    // A repository or host name with 403 in it: a network error, transient.
    for stderr in [
        "fatal: unable to access 'https://github.com/acme/x403/': Could not resolve host: github.com",
        "fatal: unable to access 'https://git403.example.com/a/b/': Failed to connect to git403.example.com port 443",
        "fatal: bad object 403e1d2c9a",
    ] {
        let error = classify("clone", stderr);
        assert!(
            matches!(error, GitError::Failed { .. }) && error.is_transient(),
            "{stderr}: {error:?}"
        );
    }
    // git's real words for no access.
    for stderr in [
        "remote: Permission to acme/payments.git denied to fleet-agent[bot].\nfatal: unable to access 'https://github.com/acme/payments/': The requested URL returned error: 403",
        "remote: Write access to repository not granted.\nfatal: unable to access 'https://github.com/acme/payments/': The requested URL returned error: 403",
        "fatal: Authentication failed for 'https://github.com/acme/payments/'",
        "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
        "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
    ] {
        assert!(
            matches!(classify("push", stderr), GitError::Denied(_)),
            "{stderr}"
        );
    }
}

#[test]
fn a_refused_push_is_rejected_and_permanent() {
    for stderr in [
        "remote: refusing\nTo /tmp/x.git\n ! [remote rejected] HEAD -> agent/github-1 (pre-receive hook declined)\nerror: failed to push some refs to '/tmp/x.git'",
        " ! [rejected]        HEAD -> agent/github-1 (stale info)\nerror: failed to push some refs to 'x'",
        "remote: error: GH006: Protected branch update failed for refs/heads/agent/github-1.\n ! [remote rejected] HEAD -> agent/github-1 (protected branch hook declined)",
    ] {
        let error = classify_push(stderr);
        assert!(
            matches!(error, GitError::Rejected(_)),
            "{stderr}: {error:?}"
        );
        assert!(!error.is_transient());
        assert!(error.to_string().contains("rejected"), "{error}");
    }
    assert!(
        classify_push("fatal: unable to access 'x': Could not resolve host: github.com")
            .is_transient()
    );
}

/// Runs the system git in `repo` as a test user, asserting success.
fn git_in(repo: &std::path::Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(repo)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository in `repo` with one commit of `a.md` on `main`.
fn repo_with_one_commit(repo: &Path) {
    git_in(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("a.md"), "a\n").expect("write");
    git_in(repo, &["add", "."]);
    git_in(repo, &["commit", "-qm", "one"]);
}

/// Commits `path` on `agent/x` through the adapter, as the agent.
async fn commit_as_agent(git: &Git, repo: &Path, path: &str, message: &str) {
    let identity = Identity {
        name: "Agent".into(),
        email: "agent@example.com".into(),
    };
    let paths = vec![path.to_owned()];
    git.commit(
        repo,
        &CommitSpec {
            branch: "agent/x",
            paths: &paths,
            message,
            allow_empty: false,
        },
        &identity,
        &CancellationToken::new(),
    )
    .await
    .expect("commit");
}

#[tokio::test]
async fn model_given_paths_are_literal() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path();
    repo_with_one_commit(repo);
    std::fs::write(repo.join("a.md"), "changed\n").expect("write");
    std::fs::write(repo.join("*.md"), "a file named *.md\n").expect("write");
    let git = Git::new(None, "https://github.com");
    commit_as_agent(&git, repo, "*.md", "add the star file").await;
    let changed = git
        .run(
            "show",
            Some(repo),
            &["show", "--name-only", "--format=", "HEAD"],
            LOCAL_OP,
            &CancellationToken::new(),
        )
        .await
        .expect("show");
    // `*.md` as a pattern would have committed `a.md` too.
    assert_eq!(changed.trim(), "*.md");
}

#[test]
fn the_token_never_reaches_argv_or_errors() {
    let git = Git::new(
        Some(SecretString::from("ghs_supersecret")),
        "https://github.com",
    );
    let command = git.command(None);
    let std = command.as_std();
    let argv: Vec<String> = std
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(argv.iter().all(|a| !a.contains("supersecret")));
    assert_eq!(
        git.scrub("fatal: ghs_supersecret rejected"),
        "fatal: [redacted] rejected"
    );
    assert!(!format!("{git:?}").contains("supersecret"));
}

#[tokio::test]
async fn an_fsmonitor_written_into_the_checkout_never_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("repo");
    let ran = dir.path().join("fsmonitor-ran");
    std::fs::create_dir_all(&repo).expect("dir");
    repo_with_one_commit(&repo);
    // What a hostile check could leave behind: a hook git runs on every status-like command.
    let hook = format!("touch {}; false", ran.display());
    git_in(&repo, &["config", "core.fsmonitor", &hook]);
    std::fs::write(repo.join("a.md"), "changed\n").expect("write");
    let git = Git::new(None, "https://github.com");
    commit_as_agent(&git, &repo, "a.md", "change a").await;
    assert!(!ran.exists(), "the fsmonitor of .git/config ran");
}

#[test]
fn the_operators_config_listing_is_read_entry_by_entry() {
    let listed =
        "url.https://mirror/.insteadof\nhttps://github.com/\0core.bare\0user.name\nA B\nC\0";
    assert_eq!(
        super::parse_config_list(listed),
        vec![
            (
                "url.https://mirror/.insteadof".to_owned(),
                "https://github.com/".to_owned()
            ),
            ("core.bare".to_owned(), "true".to_owned()),
            ("user.name".to_owned(), "A B\nC".to_owned()),
        ]
    );
}

/// Whether a process whose command line holds `pattern` runs.
fn running(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_clone_dropped_midway_leaves_none_of_its_processes() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = dir.path().join("source.git");
    let made = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&source)
        .status()
        .expect("git");
    assert!(made.success());
    // The clone's helper (upload-pack, run by a shell) hangs: a slow remote.
    let marker = format!("sleep 41.{}", std::process::id());
    let upload = format!("--upload-pack={marker};");
    let url = format!("file://{}", source.display());
    let dest = dir.path().join("clone");
    let dest_text = dest.to_string_lossy().into_owned();
    let args = [
        "clone",
        "--quiet",
        upload.as_str(),
        "--",
        url.as_str(),
        &dest_text,
    ];
    let git = Git::new(None, "https://github.com");
    let cancel = CancellationToken::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Dropped once its helper runs, as the runtime drops an aborted task (timeout, cancel).
    tokio::select! {
        result = git.watched_clone(&args, &dest, Duration::from_secs(60), u64::MAX, &cancel) => {
            panic!("the clone ended: {result:?}")
        }
        () = async {
            while !running(&marker) {
                assert!(std::time::Instant::now() < deadline, "the helper never ran");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while running(&marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the clone's helper outlived the dropped clone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
