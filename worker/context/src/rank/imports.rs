//! How many of the repository's files import each Python module, from every file's import
//! lines (no parsing): the measure of a hub the reference graph's walk cannot see, since
//! its in-degree counts only the few parsed candidates. `sympy/core/numbers.py` is imported
//! by 55 modules of sympy, and it collected the graph's relevance in issue after issue.

use std::collections::{HashMap, HashSet};

use crate::languages::Lang;
use crate::walk::SourceFile;

/// Per file, the number of other Python files importing it (0 for files in other
/// languages: their imports name packages or classes, and are not counted).
pub fn python_importers(files: &[SourceFile]) -> Vec<usize> {
    let mut module_of: HashMap<String, usize> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.lang == Some(Lang::Python) {
            for name in module_names(&f.path) {
                module_of.entry(name).or_insert(i);
            }
        }
    }
    let mut count = vec![0usize; files.len()];
    if module_of.is_empty() {
        return count;
    }
    for (i, f) in files.iter().enumerate() {
        if f.lang != Some(Lang::Python) {
            continue;
        }
        let package = package_of(&f.path);
        let mut targets: HashSet<usize> = HashSet::new();
        for line in f.text.lines() {
            for choices in imported_modules(line, &package) {
                if let Some(&j) = choices.iter().find_map(|m| module_of.get(m)) {
                    targets.insert(j);
                }
            }
        }
        targets.remove(&i);
        for j in targets {
            count[j] += 1;
        }
    }
    count
}

/// The dotted names a module file is imported by: `sympy/core/expr.py` → `sympy.core.expr`,
/// a package's `__init__.py` by the package's name, and under `src/` or `lib/` (a src
/// layout: `src/_pytest/python.py` is `_pytest.python`) by the name below that folder too.
fn module_names(path: &str) -> Vec<String> {
    let Some(stem) = path.strip_suffix(".py") else {
        return Vec::new();
    };
    let stem = stem.strip_suffix("/__init__").unwrap_or(stem);
    let dotted = stem.replace('/', ".");
    let mut names = vec![dotted.clone()];
    for layout in ["src.", "lib."] {
        if let Some(rest) = dotted.strip_prefix(layout) {
            names.push(rest.to_string());
        }
    }
    names
}

/// The package a file's relative imports start from: its module's parent (`a.b` for
/// `a/b/c.py`), the package itself for `__init__.py`; below `src/` or `lib/` as imported.
fn package_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path
        .strip_suffix(".py")
        .unwrap_or(path)
        .split('/')
        .map(str::to_string)
        .collect();
    parts.pop();
    if matches!(parts.first().map(String::as_str), Some("src" | "lib")) {
        parts.remove(0);
    }
    parts
}

/// What one line imports, each import as its candidate modules, the most specific first
/// (the first that is a file of the repository is the one imported): `import a.b as x, c` →
/// [`a.b`, `a`], [`c`]; `from .x import y, z` → [`x.y`, `x`], [`x.z`, `x`] with `x` in the
/// file's package (a name imported from a package may be its submodule). Anything else
/// gives nothing.
fn imported_modules(line: &str, package: &[String]) -> Vec<Vec<String>> {
    let line = line.trim_start();
    let line = line.split('#').next().unwrap_or("");
    if let Some(rest) = line.strip_prefix("import ") {
        return rest
            .split(',')
            .filter_map(|item| item.split_whitespace().next())
            .map(|module| {
                let parts: Vec<&str> = module.split('.').collect();
                (1..=parts.len())
                    .rev()
                    .map(|n| parts[..n].join("."))
                    .collect()
            })
            .collect();
    }
    let Some(rest) = line.strip_prefix("from ") else {
        return Vec::new();
    };
    let Some((source, names)) = rest.split_once(" import ") else {
        return Vec::new();
    };
    let source = source.trim();
    let dots = source.len() - source.trim_start_matches('.').len();
    let module = &source[dots..];
    let mut base: Vec<String> = if dots == 0 {
        Vec::new()
    } else if dots - 1 > package.len() {
        // Above the repository's top: nothing it imports is here.
        return Vec::new();
    } else {
        package[..package.len() - (dots - 1)].to_vec()
    };
    if !module.is_empty() {
        base.extend(module.split('.').map(str::to_string));
    }
    if base.is_empty() {
        return Vec::new();
    }
    let full = base.join(".");
    let names: Vec<&str> = names
        .trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace())
        .split(',')
        .filter_map(|n| n.split_whitespace().next())
        .filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .collect();
    if names.is_empty() {
        // `from x import *`, or the names continue on the next lines.
        return vec![vec![full]];
    }
    names
        .into_iter()
        .map(|name| vec![format!("{full}.{name}"), full.clone()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::role_of;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            text: text.to_string(),
            lang: Lang::from_path(std::path::Path::new(path)),
            role: role_of(path),
        }
    }

    #[test]
    fn absolute_relative_and_submodule_imports_count_once_per_importer() {
        let files = [
            file("pkg/__init__.py", "from .core import expr\n"),
            file("pkg/core/__init__.py", ""),
            file("pkg/core/expr.py", "from .numbers import Integer\n"),
            file("pkg/core/numbers.py", ""),
            file(
                "pkg/printing/str.py",
                "import pkg.core.numbers as n\nfrom ..core.expr import Expr\nfrom pkg.core.numbers import Rational  # again\n",
            ),
            file(
                "pkg/tests/test_x.py",
                "from pkg.core import numbers, expr\n",
            ),
            file(
                "pkg/abc.py",
                "from pkg.core import Symbol\nimport pkg.core.numbers\n",
            ),
            file("src/tool/run.py", "from tool import helpers\n"),
            file("src/tool/helpers.py", "import os\n"),
            file("README.md", "from pkg.core.numbers import Integer\n"),
        ];
        let n = python_importers(&files);
        let of = |p: &str| n[files.iter().position(|f| f.path == p).unwrap()];
        assert_eq!(
            of("pkg/core/numbers.py"),
            4,
            "expr, str (twice), the test, abc"
        );
        assert_eq!(of("pkg/core/expr.py"), 3, "pkg/__init__, str.py, the test");
        // Only `Symbol`, a name of the package itself, imports the package's `__init__`:
        // importing its submodules does not make it a hub.
        assert_eq!(of("pkg/core/__init__.py"), 1, "abc's Symbol");
        assert_eq!(of("pkg/__init__.py"), 0);
        assert_eq!(of("src/tool/helpers.py"), 1, "the src layout");
        assert_eq!(of("pkg/printing/str.py"), 0);
        assert_eq!(of("README.md"), 0, "not Python");
    }

    #[test]
    fn odd_lines_import_nothing_and_never_panic() {
        for line in [
            "from . import",
            "from .... import x",
            "from  import x",
            "import",
            "import ,",
            "from x import (",
            "fromage import x",
            "    # from a import b",
        ] {
            let _ = imported_modules(line, &["a".to_string()]);
        }
        assert!(imported_modules("from .... import x", &["a".to_string()]).is_empty());
        assert_eq!(
            imported_modules("from . import b", &["a".to_string()]),
            [["a.b", "a"]]
        );
        assert_eq!(imported_modules("from x import *", &[]), [["x"]]);
    }
}
