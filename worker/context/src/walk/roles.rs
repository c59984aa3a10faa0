//! Each file's role from its path (source, test, example, doc, vendored, declaration,
//! other), the two corrections that need more than a path (a Java annotation type is a
//! declaration; a non-shell project's shell scripts are other text), and the build
//! configuration written in the project's own language.

use super::{FileRole, SourceFile};
use crate::languages::is_source_extension;

/// Classify a path by its folders and name.
pub fn role_of(path: &str) -> FileRole {
    let lower = path.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let (dirs, name) = parts.split_at(parts.len().saturating_sub(1));
    let name = name.first().copied().unwrap_or("");
    let dir_is = |names: &[&str]| dirs.iter().any(|d| names.contains(d));
    if dir_is(&[
        "vendor",
        "vendored",
        "_vendor",
        "third_party",
        "thirdparty",
        "external",
        "extern",
        "stubs",
    ]) || dirs.iter().skip(1).any(|d| *d == "packages")
    {
        // `packages/` at the root is a monorepo's layout; inside a package
        // (`requests/packages/urllib3`) it holds bundled third-party packages.
        return FileRole::Vendored;
    }
    let stem = name.split('.').next().unwrap_or("");
    if dir_is(&[
        "test",
        "tests",
        "testing",
        "__tests__",
        "spec",
        "specs",
        "testdata",
        "fixtures",
        "benchmarks",
        "bench",
        "benches",
    ]) || stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || name.contains(".test.")
        || name.contains(".spec.")
        // Type tests (`ref.test-d.ts`, tsd and vitest) and Go tests whose name holds a
        // dot (`context_1.16_test.go`: the stem above stops at the first dot).
        || name.contains(".test-d.")
        || name.ends_with("_test.go")
        || name == "conftest.py"
        || (stem.starts_with("test")
            && stem.len() > 4
            && stem[4..].starts_with(|c: char| c.is_ascii_uppercase() || c == '_'))
        || (name.ends_with("test.java") || name.ends_with("tests.java"))
    {
        return FileRole::Test;
    }
    if dir_is(&["example", "examples", "demo", "demos", "sample", "samples"]) {
        return FileRole::Example;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if dir_is(&["doc", "docs", "documentation", "man"])
        || matches!(ext, "md" | "rst" | "txt" | "adoc" | "html" | "tex")
    {
        return FileRole::Doc;
    }
    if name.ends_with(".d.ts") || name.ends_with(".d.mts") || name.ends_with(".d.cts") {
        return FileRole::Declaration;
    }
    if is_source_extension(ext) && !is_build_config(name, dirs.is_empty()) {
        FileRole::Source
    } else {
        FileRole::Other
    }
}

/// A Java file whose type is an annotation (`public @interface Builder`): it declares what
/// users write (`@Builder`), and the processor that implements it lives elsewhere.
pub(super) fn is_annotation_type(text: &str) -> bool {
    let code = text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//") && !l.starts_with('*') && !l.starts_with("/*"));
    let mut annotation = false;
    for line in code {
        let mut words = line.split_whitespace().peekable();
        while let Some(word) = words.next() {
            if word == "@interface" {
                annotation = true;
            } else if matches!(word, "class" | "enum" | "record" | "interface")
                && words
                    .peek()
                    .is_some_and(|n| n.starts_with(|c: char| c.is_alphabetic()))
            {
                // A class (or any other type) is declared here: the file is code.
                return false;
            }
        }
    }
    annotation
}

/// Build and tool configuration written in the project's language (`karma.conf.js`,
/// `rollup.config.mjs`, `Gruntfile.js`, `.eslintrc.js`): code by extension, never where
/// a bug of the project is fixed, and full of the words every issue uses.
fn is_build_config(name: &str, at_root: bool) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    // `karma.sauce.conf.js`, `rollup.config.mjs`, `jest.setup.js`: a tool's name, then more.
    let dotted = name.matches('.').count() >= 2;
    let tool = matches!(
        stem,
        "karma"
            | "webpack"
            | "rollup"
            | "vite"
            | "jest"
            | "babel"
            | "eslint"
            | "prettier"
            | "tsup"
            | "esbuild"
            | "vitest"
    );
    matches!(stem, "gruntfile" | "gulpfile")
        // `app.config.ts` deep in the tree is the project's own code; at the root (or with a
    // tool's name) a `*.config.*` configures the build.
    || (dotted && (tool || (at_root && (name.contains(".config.") || name.contains(".conf.")))))
}

/// Shell scripts are the tooling around a project in another language (release,
/// CI, `diagnostics/info.sh`) and never where its bugs are fixed, yet they echo the
/// project's flags and names in every line; they count as other text unless the
/// project's code is mostly shell (a shell tool's scripts are its code).
pub(super) fn demote_minority_scripts(files: &mut [SourceFile]) {
    let is_script = |f: &SourceFile| {
        let ext = f.path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        matches!(ext.to_ascii_lowercase().as_str(), "sh" | "bash")
    };
    let (mut script_bytes, mut code_bytes) = (0usize, 0usize);
    for f in files.iter().filter(|f| f.role == FileRole::Source) {
        code_bytes += f.text.len();
        if is_script(f) {
            script_bytes += f.text.len();
        }
    }
    if 2 * script_bytes >= code_bytes {
        return;
    }
    for f in files.iter_mut() {
        if f.role == FileRole::Source && is_script(f) {
            f.role = FileRole::Other;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_scripts_are_tooling_unless_the_project_is_shell() {
        let roles = |files: &[(&str, usize)]| {
            let dir = tempfile::tempdir().expect("tmp");
            for (path, lines) in files {
                let p = dir.path().join(path);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(p, "echo x\n".repeat(*lines)).expect("write");
            }
            let walked = super::super::walk(dir.path()).expect("walk");
            walked
                .files
                .into_iter()
                .map(|f| (f.path, f.role))
                .collect::<Vec<_>>()
        };
        let rust = roles(&[("src/main.rs", 100), ("diagnostics/info.sh", 20)]);
        assert_eq!(
            rust,
            vec![
                ("diagnostics/info.sh".to_string(), FileRole::Other),
                ("src/main.rs".to_string(), FileRole::Source),
            ]
        );
        let shell = roles(&[("nvm.sh", 100), ("install.sh", 20), ("lib/x.py", 10)]);
        assert!(
            shell.iter().all(|(_, r)| *r == FileRole::Source),
            "{shell:?}"
        );
    }
}
