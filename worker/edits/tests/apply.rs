//! Filesystem tests of `apply`: the all-or-nothing transaction, the safety rules checked on
//! disk (nothing written anywhere when refused), line endings, creation, ordering, caps and
//! the repair feedback.

use std::fs;
use std::path::{Path, PathBuf};

use fleet_edits::{
    EditBlock, EditError, MatchKind, Matching, Policy, Refusal, apply, apply_with, parse_blocks,
    preview,
};

/// A sandbox: `outer/` holds `repo/` and a sibling file, so escapes are observable.
struct Sandbox {
    _dir: tempfile::TempDir,
    outer: PathBuf,
    repo: PathBuf,
}

fn sandbox(files: &[(&str, &str)]) -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let outer = dir.path().to_path_buf();
    let repo = outer.join("a/b/repo");
    fs::create_dir_all(repo.join(".git")).unwrap();
    fs::write(repo.join(".git/config"), "[core]\n").unwrap();
    for (p, c) in files {
        let p = repo.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    }
    Sandbox {
        _dir: dir,
        outer,
        repo,
    }
}

/// Every file under `dir` with its content, sorted: the before/after picture.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            if ft.is_dir() {
                out.push((name + "/", Vec::new()));
                stack.push(p);
            } else if ft.is_symlink() {
                out.push((
                    name,
                    fs::read_link(&p).unwrap().display().to_string().into(),
                ));
            } else {
                out.push((name, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn block(path: &str, search: &str, replace: &str) -> EditBlock {
    EditBlock {
        path: path.into(),
        search: search.into(),
        replace: replace.into(),
    }
}

/// Applies `blocks` under the default policy, which must fail: the error.
fn apply_err(s: &Sandbox, blocks: &[EditBlock]) -> EditError {
    apply(&s.repo, blocks, &Policy::default()).unwrap_err()
}

/// The block and reason of a refusal (any other error fails the test).
fn refusal(e: &EditError) -> (usize, &Refusal) {
    match e {
        EditError::Refused { block, reason, .. } => (*block, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn read(s: &Sandbox, p: &str) -> String {
    fs::read_to_string(s.repo.join(p)).unwrap()
}

#[test]
fn parsed_answer_applies_and_reports_previous_and_new() {
    let s = sandbox(&[("src/a.py", "def f():\n    return 1\n")]);
    let answer = "I'll fix it.\n\nsrc/a.py\n```python\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE\n```\n";
    let applied = apply(&s.repo, &parse_blocks(answer).unwrap(), &Policy::default()).unwrap();
    assert_eq!(read(&s, "src/a.py"), "def f():\n    return 2\n");
    assert_eq!(applied.files.len(), 1);
    let f = &applied.files[0];
    assert_eq!(f.path, "src/a.py");
    assert_eq!(f.previous.as_deref(), Some("def f():\n    return 1\n"));
    assert_eq!(f.new, "def f():\n    return 2\n");
    assert_eq!(applied.blocks, [MatchKind::Exact]);
}

#[test]
fn refused_escape_writes_nothing_anywhere() {
    let s = sandbox(&[("src/a.py", "x = 1\n")]);
    let before = snapshot(&s.outer);
    // A valid block first: it must not be written either.
    let blocks = [
        block("src/a.py", "x = 1\n", "x = 2\n"),
        block("../../outside.txt", "", "pwned\n"),
    ];
    let e = apply_err(&s, &blocks);
    assert!(matches!(refusal(&e), (2, Refusal::ParentDir)), "{e:?}");
    assert_eq!(snapshot(&s.outer), before);
    assert!(!s.outer.join("a/outside.txt").exists());
    assert!(
        e.feedback().contains("../../outside.txt"),
        "{}",
        e.feedback()
    );
}

#[test]
fn absolute_path_refused() {
    let s = sandbox(&[]);
    let target = s.outer.join("abs.txt");
    let before = snapshot(&s.outer);
    let e = apply_err(&s, &[block(target.to_str().unwrap(), "", "x\n")]);
    assert!(matches!(refusal(&e), (_, Refusal::Absolute)), "{e:?}");
    assert_eq!(snapshot(&s.outer), before);
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_repository_are_refused() {
    use std::os::unix::fs::symlink;
    let s = sandbox(&[("inside.txt", "in\n")]);
    fs::write(s.outer.join("secret.txt"), "secret\n").unwrap();
    fs::create_dir(s.outer.join("elsewhere")).unwrap();
    symlink(s.outer.join("secret.txt"), s.repo.join("link.txt")).unwrap();
    symlink(s.outer.join("elsewhere"), s.repo.join("dir")).unwrap();
    symlink("inside.txt", s.repo.join("alias.txt")).unwrap();
    let before = snapshot(&s.outer);

    let e = apply_err(&s, &[block("link.txt", "secret\n", "x\n")]);
    assert!(
        matches!(refusal(&e), (_, Refusal::SymlinkOutside { .. })),
        "{e:?}"
    );
    // A new file through a directory link that points outside.
    let e = apply_err(&s, &[block("dir/new.py", "", "x\n")]);
    assert!(
        matches!(refusal(&e), (_, Refusal::SymlinkOutside { .. })),
        "{e:?}"
    );
    // A link that stays inside is refused too, naming the real file.
    let e = apply_err(&s, &[block("alias.txt", "in\n", "x\n")]);
    assert!(e.feedback().contains("inside.txt"), "{}", e.feedback());
    assert_eq!(snapshot(&s.outer), before);
}

#[test]
fn git_dir_refused() {
    let s = sandbox(&[]);
    let before = snapshot(&s.outer);
    for p in [".git/config", "./.git/hooks/pre-commit", "sub/.git/config"] {
        let e = apply_err(&s, &[block(p, "", "x\n")]);
        assert!(matches!(refusal(&e), (_, Refusal::GitDir)), "{p}: {e:?}");
    }
    assert_eq!(snapshot(&s.outer), before);
}

#[test]
fn workflows_refused_unless_allowed() {
    let s = sandbox(&[(".github/workflows/ci.yml", "on: push\n")]);
    let blocks = [block(
        ".github/workflows/ci.yml",
        "on: push\n",
        "on: [push, pull_request]\n",
    )];
    let before = snapshot(&s.outer);
    let e = apply_err(&s, &blocks);
    assert!(matches!(refusal(&e), (_, Refusal::Workflow)), "{e:?}");
    assert_eq!(snapshot(&s.outer), before);
    let allow = Policy {
        allow_workflow_edits: true,
        ..Policy::default()
    };
    apply(&s.repo, &blocks, &allow).unwrap();
    assert_eq!(
        read(&s, ".github/workflows/ci.yml"),
        "on: [push, pull_request]\n"
    );
}

#[test]
fn plan_mode_restricts_to_allowed_paths() {
    let s = sandbox(&[("a.py", "a\n"), ("b.py", "b\n")]);
    let policy = Policy {
        allowed_paths: Some(vec!["a.py".into()]),
        ..Policy::default()
    };
    let e = apply(
        &s.repo,
        &[block("a.py", "a\n", "A\n"), block("b.py", "b\n", "B\n")],
        &policy,
    )
    .unwrap_err();
    assert!(
        matches!(refusal(&e), (2, Refusal::NotInPlan { .. })),
        "{e:?}"
    );
    assert_eq!(read(&s, "a.py"), "a\n");
    apply(&s.repo, &[block("a.py", "a\n", "A\n")], &policy).unwrap();
    assert_eq!(read(&s, "a.py"), "A\n");
}

#[test]
fn unmatched_and_ambiguous_are_reported_together() {
    let s = sandbox(&[
        ("a.py", "def compute(a, b):\n    return a + b\n"),
        ("b.py", "pass\nx = 1\npass\n"),
    ]);
    let before = snapshot(&s.outer);
    let e = apply(
        &s.repo,
        &[
            block(
                "a.py",
                "def compute(a, b):\n    return a - b\n",
                "def compute(a, b):\n    return a * b\n",
            ),
            block("b.py", "pass\n", "skip\n"),
            block("b.py", "x = 1\n", "x = 2\n"),
        ],
        &Policy::default(),
    )
    .unwrap_err();
    assert_eq!(snapshot(&s.outer), before);
    let errs = e.errors();
    assert_eq!(errs.len(), 2, "{e:?}");
    assert!(matches!(errs[0], EditError::Unmatched { block: 1, .. }));
    assert!(
        matches!(errs[1], EditError::Ambiguous { block: 2, count: 2, lines, .. } if *lines == [1, 3])
    );
    let fb = e.feedback();
    assert!(fb.contains("Block 1"), "{fb}");
    assert!(fb.contains("lines 1-2"), "closest lines shown: {fb}");
    assert!(fb.contains("    return a + b"), "{fb}");
    assert!(
        fb.contains("matches 2 places in `b.py` (starting at lines 1, 3)"),
        "{fb}"
    );
    assert!(fb.contains("Send all blocks again"), "{fb}");
}

#[test]
fn crlf_file_stays_crlf() {
    let s = sandbox(&[("w.txt", "one\r\ntwo\r\nthree\r\n")]);
    // A CRLF answer against a CRLF file, with trailing whitespace on top.
    let answer = "w.txt\r\n<<<<<<< SEARCH\r\ntwo  \r\n=======\r\nTWO\r\n2\r\n>>>>>>> REPLACE\r\n";
    apply(&s.repo, &parse_blocks(answer).unwrap(), &Policy::default()).unwrap();
    assert_eq!(read(&s, "w.txt"), "one\r\nTWO\r\n2\r\nthree\r\n");
}

#[test]
fn new_file_is_created_with_directories() {
    let s = sandbox(&[("exists.py", "x\n")]);
    let answer =
        "pkg/sub/new.py\n```python\n<<<<<<< SEARCH\n=======\nVALUE = 1\n>>>>>>> REPLACE\n```";
    let applied = apply(&s.repo, &parse_blocks(answer).unwrap(), &Policy::default()).unwrap();
    assert_eq!(read(&s, "pkg/sub/new.py"), "VALUE = 1\n");
    assert_eq!(applied.files[0].previous, None);
    assert_eq!(applied.blocks, [MatchKind::Created]);
    // An empty SEARCH on an existing file is refused, not an overwrite.
    let e = apply_err(&s, &[block("exists.py", "", "y\n")]);
    assert!(matches!(e, EditError::AlreadyExists { .. }), "{e:?}");
    // A non-empty SEARCH on a missing file names the problem.
    let e = apply_err(&s, &[block("nope.py", "x\n", "y\n")]);
    assert!(e.feedback().contains("does not exist"), "{}", e.feedback());
}

#[test]
fn multiple_blocks_on_one_file_apply_in_order() {
    let s = sandbox(&[("m.py", "a = 1\nb = 2\nc = 3\n")]);
    let answer = "m.py\n```\n<<<<<<< SEARCH\na = 1\n=======\na = 10\n>>>>>>> REPLACE\n<<<<<<< SEARCH\na = 10\nb = 2\n=======\na = 10\nb = 20\n>>>>>>> REPLACE\n```\nAnd the last line:\n\nm.py\n<<<<<<< SEARCH\nc = 3\n=======\n>>>>>>> REPLACE\n";
    let blocks = parse_blocks(answer).unwrap();
    assert_eq!(blocks.len(), 3);
    // The second block only matches after the first one was applied.
    apply(&s.repo, &blocks, &Policy::default()).unwrap();
    assert_eq!(read(&s, "m.py"), "a = 10\nb = 20\n");
}

#[test]
fn create_then_edit_in_one_answer() {
    let s = sandbox(&[]);
    apply(
        &s.repo,
        &[block("n.py", "", "a\nb\n"), block("n.py", "b\n", "c\n")],
        &Policy::default(),
    )
    .unwrap();
    assert_eq!(read(&s, "n.py"), "a\nc\n");
}

#[test]
fn whitespace_tolerance_and_exact_baseline() {
    let file = "class A:\n    def f(self):\n        return 1\n";
    let s = sandbox(&[("c.py", file)]);
    // Dedented by the model.
    let blocks = [block(
        "c.py",
        "def f(self):\n    return 1\n",
        "def f(self):\n    return 2\n",
    )];
    let e = apply_with(&s.repo, &blocks, &Policy::default(), Matching::Exact).unwrap_err();
    assert!(matches!(e, EditError::Unmatched { .. }));
    let applied = apply(&s.repo, &blocks, &Policy::default()).unwrap();
    assert_eq!(applied.blocks, [MatchKind::Indentation]);
    assert_eq!(
        read(&s, "c.py"),
        "class A:\n    def f(self):\n        return 2\n"
    );
}

#[test]
fn caps_on_files_and_bytes() {
    let s = sandbox(&[("a", "1\n"), ("b", "2\n"), ("c", "3\n")]);
    let before = snapshot(&s.outer);
    let blocks = [
        block("a", "1\n", "x\n"),
        block("b", "2\n", "y\n"),
        block("c", "3\n", "z\n"),
    ];
    let two = Policy {
        max_files: 2,
        ..Policy::default()
    };
    let e = apply(&s.repo, &blocks, &two).unwrap_err();
    assert!(
        matches!(e, EditError::TooManyFiles { count: 3, max: 2 }),
        "{e:?}"
    );
    let small = Policy {
        max_bytes_changed: 10,
        ..Policy::default()
    };
    let e = apply(&s.repo, &[block("big.txt", "", &"x".repeat(11))], &small).unwrap_err();
    assert!(
        matches!(e, EditError::TooManyBytes { bytes: 11, max: 10 }),
        "{e:?}"
    );
    assert_eq!(snapshot(&s.outer), before);
    // One byte replaced by one byte counts 2, not the size of the file.
    let applied = apply(&s.repo, &blocks, &small).unwrap();
    assert_eq!(applied.bytes_changed, 6);
}

#[test]
fn preview_writes_nothing() {
    let s = sandbox(&[("a", "1\n")]);
    let before = snapshot(&s.outer);
    let applied = preview(
        &s.repo,
        &[block("a", "1\n", "2\n"), block("new/b", "", "b\n")],
        &Policy::default(),
        Matching::Tolerant,
    )
    .unwrap();
    assert_eq!(applied.files.len(), 2);
    assert_eq!(snapshot(&s.outer), before);
}

#[test]
fn unchanged_file_is_not_listed() {
    let s = sandbox(&[("a", "1\n")]);
    let applied = apply(&s.repo, &[block("a", "1\n", "1\n")], &Policy::default()).unwrap();
    assert!(applied.files.is_empty());
    assert_eq!(applied.blocks, [MatchKind::Exact]);
}

#[test]
fn binary_file_is_refused_as_not_text() {
    let s = sandbox(&[]);
    fs::write(s.repo.join("img.bin"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    let e = apply_err(&s, &[block("img.bin", "x\n", "y\n")]);
    assert!(matches!(e, EditError::NotText { .. }), "{e:?}");
}

#[test]
fn write_failure_rolls_back_earlier_writes() {
    let s = sandbox(&[("a.txt", "a\n")]);
    let before = snapshot(&s.outer);
    // A file name longer than any file system allows passes every check (it does not
    // exist) and fails at write time, after `a.txt` was written and `newdir/` created:
    // a write failure even when the tests run as root.
    let long = format!("newdir/{}", "x".repeat(300));
    let e = apply_err(&s, &[block("a.txt", "a\n", "A\n"), block(&long, "", "n\n")]);
    assert!(matches!(e, EditError::Io { .. }), "{e:?}");
    assert_eq!(snapshot(&s.outer), before);
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_without_reading_them() {
    let s = sandbox(&[]);
    let made = std::process::Command::new("mkfifo")
        .arg(s.repo.join("pipe"))
        .status()
        .is_ok_and(|st| st.success());
    if !made {
        return; // no mkfifo on this system
    }
    // Reading a FIFO would block forever; the refusal comes first.
    let e = apply_err(&s, &[block("pipe", "x\n", "y\n")]);
    assert!(
        matches!(refusal(&e), (_, Refusal::NotARegularFile)),
        "{e:?}"
    );
}

#[test]
fn directory_path_is_refused() {
    let s = sandbox(&[("pkg/a.py", "a\n")]);
    let e = apply_err(&s, &[block("pkg", "", "x\n")]);
    assert!(matches!(refusal(&e), (_, Refusal::IsADirectory)), "{e:?}");
    // A path through an existing file.
    let e = apply_err(&s, &[block("pkg/a.py/b", "", "x\n")]);
    assert!(
        matches!(refusal(&e), (_, Refusal::NotADirectory { .. })),
        "{e:?}"
    );
}

#[test]
fn parse_error_feedback_is_actionable() {
    let e = parse_blocks("a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE").unwrap_err();
    let fb = e.feedback();
    assert!(fb.contains("block 1 for `a.py`"), "{fb}");
    assert!(fb.contains("`=======`"), "{fb}");
}
