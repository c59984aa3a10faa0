//! What the reporter's machine adds to an issue and the repository has nothing to do with:
//! package listings (`pip list`, `pip freeze`, `conda list`), test-session environment
//! headers (`platform linux -- Python 3.7.5, pytest-5.3.2`, `rootdir:`, `plugins:`),
//! interactive interpreters' banners, the runtime's own messages (`maximum recursion depth
//! exceeded`), and calls into other libraries (`os.chdir(...)`, `np.array(...)`,
//! `fmt.Println(...)`).
//!
//! Left in, they are words like any other: a pasted `pip list` names hundreds of packages
//! (`attrs`, `six`, `packaging`) that match definitions and BM25 terms all over a code base,
//! and `os.path.join` in a reporter's snippet makes every file defining `join` a candidate.
//! The issue template's own words and HTML comments go too (`noise/templates.rs`).
//! [`blank_noise`] replaces them with spaces (line breaks kept, so byte offsets stay valid)
//! before identifiers, query terms, path mentions and phrases are read. Stack traces are
//! read from the original text (frames outside the repository do not resolve anyway).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use crate::issue::{re, unglued_matches};

mod templates;
pub use templates::TemplateLines;

/// Module names that, written as `name.attr`, are another library's API in any issue, unless
/// the repository itself is that library: standard libraries' and the most common scientific
/// and web packages' conventional names.
const FOREIGN_MODULES: &[&str] = &[
    // Python standard library.
    "os",
    "sys",
    "re",
    "shutil",
    "subprocess",
    "json",
    "inspect",
    "math",
    "cmath",
    "itertools",
    "functools",
    "collections",
    "pathlib",
    "tempfile",
    "datetime",
    "random",
    "pickle",
    "copy",
    "io",
    "platform",
    "traceback",
    "importlib",
    "textwrap",
    "operator",
    "builtins",
    "threading",
    "multiprocessing",
    "asyncio",
    "socket",
    "glob",
    "errno",
    "signal",
    "struct",
    "string",
    "uuid",
    "base64",
    "hashlib",
    "urllib",
    "time",
    // Common third-party aliases.
    "np",
    "numpy",
    "pd",
    "pandas",
    "plt",
    "scipy",
    "torch",
    "tf",
    // Go's standard library, as called in snippets.
    "fmt",
    "strings",
    "strconv",
    "ioutil",
    "filepath",
    // JavaScript runtime objects.
    "console",
    "process",
    "Math",
    "JSON",
    "Object",
    "Array",
    "Promise",
];

/// Messages the language runtime writes itself, whatever the code: their words
/// (`maximum`, `depth`, `object`) are not the project's. Longest first.
const INTERPRETER_MESSAGES: &[&str] = &[
    "maximum recursion depth exceeded while calling a Python object",
    "maximum recursion depth exceeded in comparison",
    "maximum recursion depth exceeded",
    "goroutine stack exceeds",
    "Maximum call stack size exceeded",
];

/// Whether a line belongs to a package listing or an environment header: `attrs 19.3.0`,
/// `numpy==1.21.0`, `six  1.16.0  pyhd3eb1b0_0  defaults`, `Package  Version`, a row of
/// dashes under it, `platform linux -- Python 3.7.5, pytest-5.3.2, ...`, `rootdir: /x`.
pub fn is_environment_line(line: &str) -> bool {
    static PACKAGE_ROW: OnceLock<Regex> = OnceLock::new();
    static PINNED: OnceLock<Regex> = OnceLock::new();
    static HEADER: OnceLock<Regex> = OnceLock::new();
    let line = line.trim();
    if line.is_empty() {
        return false;
    }
    // `name version`, then pip's location of an editable install (`/home/u/src/x`) or
    // conda's build and channel (`py_0 defaults`); a version is digits and dots, maybe
    // with a suffix (`1.0.4.2`, `0.13.0rc1`, `v1.2`). Prose (`sympy 1.7 prints it`) has
    // other words after the version.
    let package_row = re(
        &PACKAGE_ROW,
        r"^[A-Za-z][A-Za-z0-9_.\-\[\]]*\s+v?\d+(?:\.[0-9A-Za-z+_\-]+)+(?:\s+(?:[/~\\]|[A-Za-z]:\\)\S*|\s+\S*_\d+(?:\s+\S+)?)?$",
    );
    let pinned = re(
        &PINNED,
        r"^[A-Za-z][A-Za-z0-9_.\-\[\]]*\s*(?:==|===|>=|~=|\s@\s)\s*\S+$",
    );
    let header = re(
        &HEADER,
        r#"^(?:platform \S+ -- Python|Python \d+\.\d+\.\d+\b.*\(.*\d{4}|I?Python \d+\.\d+\.\d+ -- An enhanced|Type ['"](?:help|copyright)['"]|\[(?:GCC|Clang|MSC) [^\]]*\] on |(?:rootdir|cachedir|plugins|configfile|inifile|Using --randomly-seed)[:=]|Package\s+Version\b|(?:Name|Version|Build|Channel)(?:\s+(?:Name|Version|Build|Channel))+$|[-=\s]{8,}$)"#,
    );
    package_row.is_match(line) || pinned.is_match(line) || header.is_match(line)
}

/// The issue text with environment lines ([`is_environment_line`]) and calls into foreign
/// modules blanked. `repo_modules` says whether a name is a top-level module or package of
/// the repository (its own API is never foreign, whatever its conventional name).
pub fn blank_noise(
    text: &str,
    repo_modules: &dyn Fn(&str) -> bool,
    templates: &TemplateLines,
) -> String {
    let mut out = text.as_bytes().to_vec();
    templates::blank_templates(text, &mut out, templates);
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if is_environment_line(line) {
            blank(&mut out[pos..pos + line.len()]);
        }
        pos += line.len();
    }
    for phrase in INTERPRETER_MESSAGES {
        let mut from = 0;
        while let Some(at) = text[from..].find(phrase) {
            let start = from + at;
            blank(&mut out[start..start + phrase.len()]);
            from = start + phrase.len();
        }
    }
    let foreign = foreign_aliases(text, repo_modules);
    for (start, end) in qualified_chains(text) {
        let head = text[start..end].split('.').next().unwrap_or("");
        if foreign.contains(head) {
            blank(&mut out[start..end]);
        }
    }
    // Only ASCII bytes were replaced by spaces, at character boundaries of ASCII text.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn blank(bytes: &mut [u8]) {
    for b in bytes {
        if *b != b'\n' && *b != b'\r' && b.is_ascii() {
            *b = b' ';
        }
    }
}

/// Aliases that name foreign modules in this issue: the conventional names of
/// [`FOREIGN_MODULES`], plus what the issue's own code imports (`import requests as r`,
/// `const fs = require('fs')`, `import "net/http"`), minus anything resolving to the
/// repository's own modules.
fn foreign_aliases(text: &str, repo_modules: &dyn Fn(&str) -> bool) -> HashSet<String> {
    static PY_IMPORT: OnceLock<Regex> = OnceLock::new();
    static JS_IMPORT: OnceLock<Regex> = OnceLock::new();
    static GO_IMPORT: OnceLock<Regex> = OnceLock::new();
    static PY_FROM: OnceLock<Regex> = OnceLock::new();
    // Alias → the module it stands for.
    let mut aliases: HashMap<String, String> = HashMap::new();
    for m in FOREIGN_MODULES {
        let module = match *m {
            "np" => "numpy",
            "pd" => "pandas",
            "plt" => "matplotlib",
            "tf" => "tensorflow",
            other => other,
        };
        aliases.insert((*m).to_string(), module.to_string());
    }
    let py = re(
        &PY_IMPORT,
        r"(?m)^[\s>.]*import\s+([A-Za-z_][\w.]*)(?:\s+as\s+([A-Za-z_]\w*))?\s*$",
    );
    for c in py.captures_iter(text) {
        let module = c[1].to_string();
        let alias = c.get(2).map_or_else(
            || module.split('.').next().unwrap_or("").to_string(),
            |a| a.as_str().to_string(),
        );
        aliases.insert(alias, module);
    }
    let js = re(
        &JS_IMPORT,
        r#"(?:(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*require\(\s*['"]([^'"./][^'"]*)['"]|import\s+(?:\*\s+as\s+)?([A-Za-z_$][\w$]*)\s+from\s+['"]([^'"./][^'"]*)['"])"#,
    );
    for c in js.captures_iter(text) {
        let (alias, module) = match (c.get(1), c.get(2), c.get(3), c.get(4)) {
            (Some(a), Some(m), _, _) | (_, _, Some(a), Some(m)) => (a.as_str(), m.as_str()),
            _ => continue,
        };
        aliases.insert(alias.to_string(), module.to_string());
    }
    let go = re(&GO_IMPORT, r#"(?m)^\s*(?:import\s+)?"([a-z][\w./-]*)"\s*$"#);
    for c in go.captures_iter(text) {
        let module = &c[1];
        if let Some(last) = module.rsplit('/').next() {
            aliases.insert(last.to_string(), module.to_string());
        }
    }
    // `from flask import json`: a name imported from the repository's own package is its
    // module, whatever the standard library calls the same name.
    let py_from = re(
        &PY_FROM,
        r"(?m)^[\s>.]*from\s+([A-Za-z_]\w*)[\w.]*\s+import\s+\(?([\w\s,]+)",
    );
    for c in py_from.captures_iter(text) {
        if !repo_modules(&c[1]) {
            continue;
        }
        for name in c[2].split(',') {
            let alias = name.split_whitespace().last().unwrap_or("");
            aliases.remove(alias);
        }
    }
    aliases
        .into_iter()
        .filter(|(alias, module)| {
            let top = module.split(['.', '/']).next().unwrap_or(module);
            !repo_modules(alias) && !repo_modules(top)
        })
        .map(|(alias, _)| alias)
        .collect()
}

/// Byte ranges of `name.attr[.attr...]` chains whose head is a whole word (not itself an
/// attribute: `x.os.path` is not a chain headed by `os`).
fn qualified_chains(text: &str) -> Vec<(usize, usize)> {
    static CHAIN: OnceLock<Regex> = OnceLock::new();
    let chain = re(&CHAIN, r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+");
    unglued_matches(chain, text, b".")
        .map(|m| (m.start(), m.end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_repo_modules(_: &str) -> bool {
        false
    }

    #[test]
    fn package_listings_and_session_headers_are_environment() {
        for line in [
            "attrs                         19.1.0",
            "pytest                        5.3.2  /home/u/src/pytest",
            "cftime                        1.0.4.2",
            "Package            Version",
            "------------------ -------",
            "numpy==1.21.0",
            "six  1.16.0  pyhd3eb1b0_0  defaults",
            "platform linux -- Python 3.7.5, pytest-5.3.2, py-1.8.1, pluggy-0.13.1",
            "rootdir: /home/lhn/src/pytest_path_error",
            "plugins: allure-pytest-2.9.45",
            "Python 3.6.4 |Anaconda custom (64-bit)| (default, Dec 21 2017, 15:39:08) ",
            "Type 'copyright', 'credits' or 'license' for more information",
            "IPython 6.2.1 -- An enhanced Interactive Python. Type '?' for help.",
            "[GCC 8.4.0] on linux",
            "=====================",
        ] {
            assert!(is_environment_line(line), "{line}");
        }
        for line in [
            "The printer returns x 1.0 instead",
            "latex(x) gives 1.0",
            "    return foo == 3.5",
            "sympy 1.7 prints it wrongly, but 1.6 did not",
            "sympy 1.7 prints wrongly",
            "Traceback (most recent call last):",
            "E       assert 1 == 75",
            "=========== test session starts ===========",
        ] {
            assert!(!is_environment_line(line), "{line}");
        }
    }

    #[test]
    fn a_pip_list_is_blanked_but_the_prose_stays() {
        let text = "Fails on add_marker\n```\nPackage Version\n------- -------\nattrs   19.1.0\nsix     1.16.0\n```\nsee add_marker\n";
        let clean = blank_noise(text, &no_repo_modules, &TemplateLines::default());
        assert_eq!(clean.len(), text.len());
        assert!(!clean.contains("attrs"));
        assert!(!clean.contains("six"));
        assert_eq!(clean.matches("add_marker").count(), 2);
        assert_eq!(clean.lines().count(), text.lines().count());
    }

    #[test]
    fn interpreter_messages_are_blanked() {
        let text = "RecursionError: maximum recursion depth exceeded while calling a Python object\nwhen checking is_zero\n";
        let clean = blank_noise(text, &no_repo_modules, &TemplateLines::default());
        assert!(clean.starts_with("RecursionError: "));
        assert!(!clean.contains("maximum") && !clean.contains("object"));
        assert!(clean.contains("is_zero"));
    }

    #[test]
    fn calls_into_foreign_modules_are_blanked() {
        let text = "import numpy as np\nimport shelve as sh\npath = os.path.dirname(os.getcwd())\na = np.array([1])\nsh.open(x)\nf = lambdify(A, A + Identity(n))\nself.os.thing\n";
        let clean = blank_noise(text, &no_repo_modules, &TemplateLines::default());
        for gone in ["dirname", "getcwd", "array", "sh.open"] {
            assert!(!clean.contains(gone), "{gone} left in {clean}");
        }
        for kept in [
            "lambdify",
            "Identity",
            "self.os.thing",
            "import numpy as np",
        ] {
            assert!(clean.contains(kept), "{kept} missing from {clean}");
        }
    }

    #[test]
    fn the_repositorys_own_modules_are_never_foreign() {
        // In the numpy repository, `np.array` is the code under discussion.
        let text = "import numpy as np\nnp.array([1]).sum()\nre.compile(x)\n";
        let clean = blank_noise(
            text,
            &|m| m == "numpy" || m == "re",
            &TemplateLines::default(),
        );
        assert!(clean.contains("np.array"));
        assert!(clean.contains("re.compile"));
        // `json` imported from the repository's package is the repository's module.
        let text = "from flask import json, views as v\njson.dumps(x)\nv.View\nos.getcwd()\n";
        let clean = blank_noise(text, &|m| m == "flask", &TemplateLines::default());
        assert!(clean.contains("json.dumps") && clean.contains("v.View"));
        assert!(!clean.contains("getcwd"));
    }

    #[test]
    fn javascript_and_go_imports_name_foreign_modules() {
        let text = "const lodash = require('lodash');\nlodash.merge(a, b)\nconst local = require('./local');\nlocal.run()\nimport (\n\t\"net/http\"\n)\nhttp.Get(url)\n";
        let clean = blank_noise(text, &no_repo_modules, &TemplateLines::default());
        assert!(!clean.contains("lodash.merge"));
        assert!(!clean.contains("http.Get"));
        assert!(clean.contains("local.run"));
    }

    #[test]
    fn non_ascii_text_survives() {
        let text = "Ошибка: os.getcwd() → ✓ latex(x)\n";
        let clean = blank_noise(text, &no_repo_modules, &TemplateLines::default());
        assert!(clean.contains("Ошибка"));
        assert!(clean.contains("latex"));
        assert!(!clean.contains("getcwd"));
    }
}
