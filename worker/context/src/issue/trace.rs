//! Stack-trace frames in the issue text ([`trace_frames`]), one regex per trace format.

use std::sync::OnceLock;

use regex::Regex;

use super::re;

/// One stack-trace frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The file as the trace names it (absolute, relative, or a Java package path).
    pub path: String,
    pub line: Option<usize>,
    pub function: Option<String>,
    /// 0 for the innermost frame (where the error was raised), growing outwards.
    pub depth: usize,
}

/// Stack-trace frames in Python, Rust (panics and backtraces), JavaScript/TypeScript (V8
/// and Firefox), Go and Java formats. Depth is counted per format: Python prints the
/// innermost frame last, the others first.
pub fn trace_frames(text: &str) -> Vec<Frame> {
    static PY: OnceLock<Regex> = OnceLock::new();
    static PYTEST: OnceLock<Regex> = OnceLock::new();
    static RUST: OnceLock<Regex> = OnceLock::new();
    static JS: OnceLock<Regex> = OnceLock::new();
    static GO: OnceLock<Regex> = OnceLock::new();
    static JAVA: OnceLock<Regex> = OnceLock::new();
    let mut frames = Vec::new();

    // Python: File "path", line N, in func
    let py = re(
        &PY,
        r#"File "([^"]+)", line (\d+)(?:, in ([A-Za-z_<>][A-Za-z0-9_<>]*))?"#,
    );
    // pytest's short form: `sympy/core/expr.py:124: in __eq__`.
    let pytest = re(
        &PYTEST,
        r"(?m)^\s*([^\s:]+\.py):(\d+): in ([A-Za-z_<>][A-Za-z0-9_<>]*)",
    );
    let mut py_frames: Vec<(usize, String, Option<usize>, Option<String>)> = py
        .captures_iter(text)
        .chain(pytest.captures_iter(text))
        .map(|c| {
            (
                c.get(0).map_or(0, |m| m.start()),
                c[1].to_string(),
                c[2].parse().ok(),
                c.get(3)
                    .map(|m| m.as_str().to_string())
                    .filter(|f| !f.starts_with('<')),
            )
        })
        .collect();
    py_frames.sort_by_key(|f| f.0);
    let py_frames: Vec<(String, Option<usize>, Option<String>)> = py_frames
        .into_iter()
        .map(|(_, p, l, f)| (p, l, f))
        .collect();
    let n = py_frames.len();
    for (i, (path, line, function)) in py_frames.into_iter().enumerate() {
        frames.push(Frame {
            path,
            line,
            function,
            depth: n - 1 - i,
        });
    }

    // Rust: `panicked at src/x.rs:2:5` (1.73+), `panicked at 'msg', src/x.rs:2:5` (older),
    // and backtrace lines `at ./src/x.rs:12:5`.
    let rust = re(
        &RUST,
        r#"(?:panicked at |\bat )(?:'[^'\n]*', )?([A-Za-z0-9_./\\~-]+\.rs):(\d+)(?::\d+)?"#,
    );
    for (depth, c) in rust.captures_iter(text).enumerate() {
        frames.push(Frame {
            path: c[1].to_string(),
            line: c[2].parse().ok(),
            function: None,
            depth,
        });
    }

    // JavaScript/TypeScript: `at fn (path:L:C)`, `at path:L:C`, Firefox `fn@path:L:C`.
    let js = re(
        &JS,
        r"(?:\bat (?:(?:async )?([A-Za-z0-9_$.<>\[\] ]+?) \()?|([A-Za-z0-9_$.]+)@)(?:file://)?([^\s()]+?\.(?:js|mjs|cjs|jsx|ts|mts|cts|tsx)):(\d+)(?::\d+)?",
    );
    for (depth, c) in js.captures_iter(text).enumerate() {
        let function = c
            .get(1)
            .or_else(|| c.get(2))
            .map(|m| m.as_str().rsplit('.').next().unwrap_or("").to_string())
            .filter(|f| !f.is_empty() && f != "<anonymous>");
        frames.push(Frame {
            path: c[3].to_string(),
            line: c[4].parse().ok(),
            function,
            depth,
        });
    }

    // Go: a function line `pkg/path.(*T).Method(...)` followed by `\t/path/file.go:N +0x..`.
    let go = re(
        &GO,
        r"(?m)^\s*(\S+?)\.([A-Za-z_][A-Za-z0-9_]*)\([^\n]*\)\s*\n\s+(\S+\.go):(\d+)",
    );
    for (depth, c) in go.captures_iter(text).enumerate() {
        frames.push(Frame {
            path: c[3].to_string(),
            line: c[4].parse().ok(),
            function: Some(c[2].to_string()),
            depth,
        });
    }

    // Java (and Kotlin/Scala on the JVM): `at com.acme.Foo$Inner.method(Foo.java:12)`.
    let java = re(
        &JAVA,
        r"\bat ((?:[A-Za-z_$][A-Za-z0-9_$]*\.)*)[A-Za-z_$][A-Za-z0-9_$]*\.([A-Za-z_$<>][A-Za-z0-9_$<>]*)\(([A-Za-z0-9_$]+\.(?:java|kt|scala)):(\d+)\)",
    );
    for (depth, c) in java.captures_iter(text).enumerate() {
        // The package gives the folders: com.acme. + Foo.java = com/acme/Foo.java.
        let package = c[1].replace('.', "/");
        let function = Some(c[2].to_string()).filter(|f| !f.starts_with('<'));
        frames.push(Frame {
            path: format!("{package}{}", &c[3]),
            line: c[4].parse().ok(),
            function,
            depth,
        });
    }
    for f in &mut frames {
        f.path = f.path.replace('\\', "/");
    }
    frames
}
