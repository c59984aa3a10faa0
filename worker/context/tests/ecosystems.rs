//! The signals that carry the selector across ecosystems (issue 16), each on a small
//! repository of the language it serves: Go methods with receivers, Java and JavaScript
//! methods the keyword scan cannot see, type declarations and annotation types that name an
//! API without implementing it, build configuration, locale files named by language code,
//! configuration keys the code spells as strings, and the issue template's own words.
//!
//! Every test goes through [`select`] and looks at the ranking, so each holds for the
//! selector as a whole, whatever signal or weight makes it true; where a signal is too weak
//! to decide a ranking alone, at that signal of the ranked files.

use std::fs;
use std::path::Path;

use fleet_context::{SelectOptions, select};

mod common;
use common::scanned;

/// A temporary repository with `files` (path, content).
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let target = dir.path().join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, text).unwrap();
    }
    dir
}

/// Each ranked file's signals by path, for the signals too weak to decide a ranking alone.
fn signals(
    dir: &Path,
    issue: &str,
) -> std::collections::HashMap<String, fleet_context::rank::Signals> {
    select(dir, issue, &SelectOptions::default())
        .unwrap()
        .files
        .into_iter()
        .map(|f| (f.path, f.signals))
        .collect()
}

/// The ranked paths for `issue`.
fn ranking(dir: &Path, issue: &str) -> Vec<String> {
    select(dir, issue, &SelectOptions::default())
        .unwrap()
        .files
        .into_iter()
        .map(|f| f.path)
        .collect()
}

fn rank_of(ranked: &[String], path: &str) -> usize {
    ranked
        .iter()
        .position(|p| p == path)
        .map_or(usize::MAX, |i| i + 1)
}

/// Filler shared by the files of a fixture, so that lexical signals alone do not decide.
const GO_FILLER: &str = "// Pages is a list of pages, sorted by weight and date.\n";

#[test]
fn the_lexical_pass_sees_methods_in_go_java_and_javascript() {
    let go = "package page\n\nfunc (p Pages) GroupByParam(key string) (PagesGroup, error) {\n\treturn nil, nil\n}\n\
              func newPages() Pages {\n\treturn nil\n}\n";
    assert_eq!(
        scanned("resources/page/pagegroup.go", go),
        ["GroupByParam", "newPages"]
    );
    let java = "public class HandleBuilder extends JavacAnnotationHandler<Builder> {\n\
                \tpublic void handle(AnnotationValues<Builder> annotation, JCAnnotation ast) {\n\
                \t\tgenerateBuilderMethod(annotation);\n\t}\n\
                \tprivate static JCMethodDecl generateToBuilderMethod(JavacNode type) {\n\t\treturn null;\n\t}\n}\n";
    assert_eq!(
        scanned("HandleBuilder.java", java),
        ["HandleBuilder", "handle", "generateToBuilderMethod"]
    );
    let js = "export default (o, c, d) => {\n  const proto = c.prototype\n\
              \x20 proto.toISOString = function () {\n    return this.$d.toISOString()\n  }\n\
              \x20 class Duration {\n    humanize(withSuffix) {\n      return d().add(this.$ms, 'ms')\n    }\n  }\n}\n";
    assert_eq!(
        scanned("src/plugin/duration/index.js", js),
        ["toISOString", "Duration", "humanize"]
    );
}

#[test]
fn go_a_method_with_a_receiver_is_found_where_it_is_defined() {
    let dir = repo(&[
        (
            "resources/page/pagegroup.go",
            &format!(
                "package page\n{GO_FILLER}\nfunc (p Pages) GroupByParam(key string, order ...string) (PagesGroup, error) {{\n\
                 \treturn nil, errors.New(\"there is no such param\")\n}}\n"
            ),
        ),
        (
            "tpl/collections/collections.go",
            &format!(
                "package collections\n{GO_FILLER}\nfunc (ns *Namespace) Group(key any, items any) (any, error) {{\n\
                 \t// calls p.GroupByParam(key) for pages; GroupByParam on pages, GroupByParam on sites\n\
                 \treturn p.GroupByParam(k)\n}}\n"
            ),
        ),
        ("hugolib/site.go", &format!("package hugolib\n{GO_FILLER}")),
    ]);
    let ranked = ranking(
        dir.path(),
        "Let PAGES.GroupByParam return nil instead of error\n\
         `{{ range site.Pages.GroupByParam \"foo\" }}` fails when no page has the param.",
    );
    assert_eq!(ranked[0], "resources/page/pagegroup.go", "{ranked:?}");
}

#[test]
fn java_the_handler_not_the_annotation_type_and_methods_count() {
    let annotation = "package lombok;\n/**\n * The builder annotation: put it on a class to get a builder, with\n\
                      * toBuilder, builderMethodName and buildMethodName to name the builder's methods.\n */\n\
                      @Target(TYPE)\npublic @interface Builder {\n\tString builderMethodName() default \"builder\";\n\
                      \tString buildMethodName() default \"build\";\n\tboolean toBuilder() default false;\n}\n";
    let handler = "package lombok.javac.handlers;\n\npublic class HandleBuilder extends JavacAnnotationHandler<Builder> {\n\
                   \tpublic void handle(AnnotationValues<Builder> annotation, JCAnnotation ast, JavacNode annotationNode) {\n\
                   \t\tgenerateBuilderMethod(builderMethodName, buildMethodName);\n\t}\n\n\
                   \tprivate static JCMethodDecl generateToBuilderMethod(JavacNode type, String builderMethodName) {\n\
                   \t\treturn null;\n\t}\n}\n";
    let dir = repo(&[
        ("src/core/lombok/Builder.java", annotation),
        ("src/core/lombok/javac/handlers/HandleBuilder.java", handler),
        (
            "src/core/lombok/core/AnnotationValues.java",
            "package lombok.core;\npublic class AnnotationValues<A> {\n}\n",
        ),
    ]);
    let ranked = ranking(
        dir.path(),
        "[BUG] @Builder(toBuilder = true) generates a broken toBuilder method\n\
         With `@Builder(toBuilder = true)` the generated `generateToBuilderMethod` output does not compile.",
    );
    assert_eq!(
        ranked[0], "src/core/lombok/javac/handlers/HandleBuilder.java",
        "{ranked:?}"
    );
}

#[test]
fn javascript_the_implementation_before_its_type_declarations_and_build_config() {
    let dir = repo(&[
        (
            "src/plugin/duration/index.js",
            "export default (option, Dayjs, dayjs) => {\n  class Duration {\n    toISOString() {\n\
             \x20     return `P${this.$d.years}Y`\n    }\n    format(formatStr) {\n      return formatStr\n    }\n  }\n\
             \x20 dayjs.duration = function (input, unit) {\n    return new Duration(input, unit)\n  }\n}\n",
        ),
        (
            "types/plugin/duration.d.ts",
            "import { PluginFunc } from 'dayjs'\ndeclare const plugin: PluginFunc\nexport = plugin\n\
             declare module 'dayjs' {\n  export class Duration {\n    toISOString(): string\n    format(formatStr?: string): string\n  }\n\
             \x20 export function duration(input?: number, unit?: string): Duration\n}\n",
        ),
        (
            "karma.sauce.conf.js",
            "module.exports = function (config) {\n  // duration of the test run in minutes; format the duration report\n\
             \x20 // toISOString of the duration: minutes, the duration format, the result is wrong when wrong\n\
             \x20 config.set({ duration: 'minutes', toISOString: true, format: 'duration', returns: 'wrong result' })\n}\n",
        ),
    ]);
    let ranked = ranking(
        dir.path(),
        "Duration.toISOString() returns wrong result\n\
         dayjs.duration(1, 'minutes').toISOString() returns 'P1M', the duration format is wrong",
    );
    assert_eq!(ranked[0], "src/plugin/duration/index.js", "{ranked:?}");
    assert!(
        rank_of(&ranked, "karma.sauce.conf.js") > rank_of(&ranked, "src/plugin/duration/index.js"),
        "{ranked:?}"
    );
    let by_path = signals(dir.path(), "Duration.toISOString() returns wrong result");
    // The build configuration matches the words best, and still ranks after the code.
    assert!(by_path["karma.sauce.conf.js"].bm25 >= by_path["src/plugin/duration/index.js"].bm25);
}

#[test]
fn javascript_a_locale_file_answers_to_its_language_name() {
    let locale = |name: &str| {
        format!(
            "const locale = {{\n  name: '{name}',\n  relativeTime: {{ future: '%s', past: '%s', s: 'x' }},\n\
             \x20 ordinal: n => n\n}}\nexport default locale\n"
        )
    };
    let dir = repo(&[
        ("src/locale/hu.js", &locale("hu")),
        ("src/locale/bg.js", &locale("bg")),
        ("src/locale/sv.js", &locale("sv")),
        (
            "src/plugin/relativeTime/index.js",
            "export default (o, c, d) => {\n  // relative time, past and future, for every locale\n\
             \x20 const fromTo = (input, withoutSuffix, instance, isFrom) => {\n    const loc = instance.$locale().relativeTime\n  }\n}\n",
        ),
    ]);
    let issue = "Improve hungarian localization\nThe package does not handle the past relative times at all.";
    let by_path = signals(dir.path(), issue);
    assert!(by_path["src/locale/hu.js"].stem > 0.9, "{by_path:?}");
    for other in ["src/locale/bg.js", "src/locale/sv.js"] {
        assert_eq!(by_path[other].stem, 0.0, "{other}");
    }
    let ranked = ranking(dir.path(), issue);
    assert!(
        rank_of(&ranked, "src/locale/hu.js") < rank_of(&ranked, "src/locale/bg.js"),
        "{ranked:?}"
    );
}

#[test]
fn go_a_configuration_key_points_at_the_parser_that_reads_it() {
    let dir = repo(&[
        (
            "modules/caddypki/acmeserver/setup.go",
            "package acmeserver\n\nfunc parseACMEServer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {\n\
             \tfor h.NextBlock(0) {\n\t\tswitch h.Val() {\n\t\tcase \"ca\":\n\t\tcase \"lifetime\":\n\
             \t\tcase \"sign_with_root\":\n\t\t\tacmeServer.SignWithRoot = true\n\t\t}\n\t}\n\treturn nil, nil\n}\n",
        ),
        (
            "modules/caddytls/internalissuer.go",
            "package caddytls\n\n// InternalIssuer issues certificates from an internal CA.\ntype InternalIssuer struct {\n\
             \t// SignWithRoot: sign with the root certificate, not the intermediate. With root\n\
             \t// signing, the option from the JSON config, the chain is shorter.\n\
             \tSignWithRoot bool `json:\"sign_with_root,omitempty\"`\n}\n",
        ),
        (
            "caddyconfig/httpcaddyfile/options.go",
            "package httpcaddyfile\n\n// The Caddyfile's global options; the JSON config has more.\nfunc parseOptions() {}\n",
        ),
    ]);
    let by_path = signals(
        dir.path(),
        "Set `sign_with_root` via Caddyfile\nPlease make the `sign_with_root` option from the JSON config available in the Caddyfile.",
    );
    // Only the parser quotes the key itself; the JSON tag quotes `sign_with_root,omitempty`.
    assert!(
        by_path["modules/caddypki/acmeserver/setup.go"].keys > 0.9,
        "{by_path:?}"
    );
    assert_eq!(by_path["modules/caddytls/internalissuer.go"].keys, 0.0);
}

#[test]
fn the_issue_templates_words_point_nowhere() {
    let template = "---\nname: Bug report\n---\n**Describe the bug you encountered:**\n\n\
                    **What version of `bat` are you using?**\n\n\
                    **Please run `diagnostics/info.sh` and paste its output (the pager, the terminal, the config file):**\n";
    let dir = repo(&[
        (".github/ISSUE_TEMPLATE/bug_report.md", template),
        (
            "diagnostics/info.sh",
            "#!/bin/sh\n# Prints the pager, the terminal, the config file and the version of bat.\n\
             echo \"pager: $PAGER terminal: $TERM config file: $(bat --config-file)\"\n",
        ),
        (
            "src/printer.rs",
            "//! Prints a file with its header: the file path, wrapped at the terminal width.\n\
             pub fn print_header(path: &str, term_width: usize) {\n    let header = wrap(path, term_width);\n}\n",
        ),
    ]);
    let issue = format!(
        "Long file paths break header\n{template}\nThe header with a long file path wraps wrongly at the terminal width.\n"
    );
    let ranked = ranking(dir.path(), &issue);
    assert_eq!(ranked[0], "src/printer.rs", "{ranked:?}");
}

#[test]
fn a_playgrounds_file_is_no_mention_a_repository_link_is() {
    let text = "Repro: https://codesandbox.io/s/night-gc995?file=/src/index.js and \
                https://example.com/blog/posts/hooks.js; the code is at \
                https://github.com/preactjs/preact/blob/main/src/diff/props.js#L40, see also src/render.js.";
    assert_eq!(
        fleet_context::issue::path_mentions(text),
        ["src/diff/props.js", "src/render.js"]
    );
}

#[test]
fn roles_of_declarations_build_configuration_and_stubs() {
    use fleet_context::walk::{FileRole, role_of};
    for (path, role) in [
        ("types/plugin/duration.d.ts", FileRole::Declaration),
        ("src/index.d.ts", FileRole::Declaration),
        ("src/index.ts", FileRole::Source),
        ("karma.sauce.conf.js", FileRole::Other),
        ("rollup.config.mjs", FileRole::Other),
        ("Gruntfile.js", FileRole::Other),
        ("src/config.js", FileRole::Source),
        ("src/app/app.config.ts", FileRole::Source),
        ("test/karma.conf.js", FileRole::Test),
        ("packages/vite/src/node/config.ts", FileRole::Source),
        (
            "src/stubs/com/sun/tools/javac/main/JavaCompiler.java",
            FileRole::Vendored,
        ),
    ] {
        assert_eq!(role_of(path), role, "{path}");
    }
}

/// The package signal of each code file of `files` (manifests left out) for `issue`, by
/// path; every code file must be ranked.
fn package_signals(files: &[(&str, &str)], issue: &str) -> Vec<(String, f64)> {
    let dir = repo(files);
    let by_path = signals(dir.path(), issue);
    let is_manifest = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        fleet_context::rank::MANIFESTS.contains(&name)
    };
    let mut out: Vec<(String, f64)> = files
        .iter()
        .filter(|(p, _)| !is_manifest(p))
        .map(|(p, _)| {
            let s = by_path
                .get(*p)
                .unwrap_or_else(|| panic!("{p} is not ranked"));
            (p.to_string(), s.package)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(path, signal)` pairs, for comparing with [`package_signals`].
fn expect(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(p, s)| (p.to_string(), *s)).collect()
}

#[test]
fn javascript_a_nested_package_the_issue_does_not_name_ranks_after_the_core() {
    // preact: the core in src/, add-on packages beside it, each with its own package.json;
    // debug/ warns of every misuse, so it matches every issue's words (here: better than
    // the core's file does).
    let files = [
        ("package.json", "{ \"name\": \"preact\" }\n"),
        (
            "src/diff/children.js",
            "export function diffChildren(parentDom, newChildren, oldChildren) {\n\
             \x20 // keyed children are moved, unkeyed ones are diffed in place\n\
             \x20 for (let i = 0; i < newChildren.length; i++) { placeChild(parentDom, newChildren[i]) }\n}\n",
        ),
        ("debug/package.json", "{ \"name\": \"preact-debug\" }\n"),
        (
            "debug/src/debug.js",
            "export function initDebug(parentDom, newChildren, oldChildren) {\n\
             \x20 // warn when keyed children are moved, unkeyed ones are diffed in place\n\
             \x20 for (let i = 0; i < newChildren.length; i++) { checkChild(parentDom, newChildren[i]) }\n}\n",
        ),
    ];
    let issue = "Keyed children are moved wrongly\n\
                 When a keyed child is removed, the other keyed children are moved in the wrong order.";
    let dir = repo(&files);
    let ranked = ranking(dir.path(), issue);
    assert_eq!(ranked[0], "src/diff/children.js", "{ranked:?}");
    let by_path = signals(dir.path(), issue);
    assert!(by_path["debug/src/debug.js"].bm25 > by_path["src/diff/children.js"].bm25);
    assert_eq!(
        package_signals(&files, issue),
        [
            ("debug/src/debug.js".to_string(), 0.0),
            ("src/diff/children.js".to_string(), 1.0),
        ]
    );
    // Named, the add-on is as much the issue's as the core.
    let named = package_signals(&files, &format!("preact/debug: {issue}"));
    assert!(named.iter().all(|(_, s)| *s == 1.0), "{named:?}");
}

#[test]
fn rust_java_go_python_packages_by_their_manifests() {
    // A Rust workspace: the crate is named by its folder in snake case, as code spells it
    // (`tracing_subscriber` does not name `tracing`; "core" alone names no crate).
    let rust = [
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"tracing\", \"tracing-core\", \"tracing-subscriber\"]\n",
        ),
        ("tracing/Cargo.toml", "[package]\nname = \"tracing\"\n"),
        (
            "tracing/src/span.rs",
            "/// The Metadata of a span; see EnvFilter.\npub struct Span;\n",
        ),
        (
            "tracing-core/Cargo.toml",
            "[package]\nname = \"tracing-core\"\n",
        ),
        (
            "tracing-core/src/lib.rs",
            "/// Metadata, for the core.\npub struct Metadata;\n",
        ),
        (
            "tracing-subscriber/Cargo.toml",
            "[package]\nname = \"tracing-subscriber\"\n",
        ),
        (
            "tracing-subscriber/src/filter.rs",
            "pub struct EnvFilter;\n",
        ),
    ];
    assert_eq!(
        package_signals(
            &rust,
            "`tracing_subscriber::EnvFilter` drops the Metadata in core"
        ),
        expect(&[
            ("tracing-core/src/lib.rs", 0.0),
            ("tracing-subscriber/src/filter.rs", 1.0),
            ("tracing/src/span.rs", 0.0),
        ])
    );
    // All its code is in its crates: an issue that names none says nothing about which.
    assert_eq!(
        package_signals(&rust, "`EnvFilter` drops the Metadata"),
        expect(&[
            ("tracing-core/src/lib.rs", 1.0),
            ("tracing-subscriber/src/filter.rs", 1.0),
            ("tracing/src/span.rs", 1.0),
        ])
    );
    // Gradle modules, named by the words after the first ("plugin" alone names neither).
    let java = [
        ("jib-core/build.gradle", "dependencies { }\n"),
        (
            "jib-core/src/main/java/Jib.java",
            "class Jib { void containerize() {} }\n",
        ),
        ("jib-gradle-plugin/build.gradle", "dependencies { }\n"),
        (
            "jib-gradle-plugin/src/main/java/JibTask.java",
            "class JibTask { void containerize() {} }\n",
        ),
        ("jib-maven-plugin/pom.xml", "<project></project>\n"),
        (
            "jib-maven-plugin/src/main/java/JibMojo.java",
            "class JibMojo { void containerize() {} }\n",
        ),
    ];
    assert_eq!(
        package_signals(&java, "The Gradle plugin fails to containerize"),
        expect(&[
            ("jib-core/src/main/java/Jib.java", 0.0),
            ("jib-gradle-plugin/src/main/java/JibTask.java", 1.0),
            ("jib-maven-plugin/src/main/java/JibMojo.java", 0.0),
        ])
    );
    // A Go module with a nested module for its tools: the root module is the project's.
    let go = [
        ("go.mod", "module example.com/caddy\n"),
        (
            "modules/caddyhttp/server.go",
            "package caddyhttp\nfunc Serve() {}\n",
        ),
        ("internal/tools/go.mod", "module example.com/caddy/tools\n"),
        ("internal/tools/gen.go", "package tools\nfunc Serve() {}\n"),
    ];
    assert_eq!(
        package_signals(&go, "Serve hangs"),
        expect(&[
            ("internal/tools/gen.go", 0.0),
            ("modules/caddyhttp/server.go", 1.0)
        ])
    );
    // A Python repository without nested packages: every file the issue matches is the
    // project's; a file it does not match gets nothing from its package alone (not ranked).
    let python = [
        ("setup.py", "from setuptools import setup\n"),
        ("sympy/core/expr.py", "class Expr:\n    pass\n"),
        ("sympy/printing/latex.py", "def latex(expr):\n    pass\n"),
    ];
    assert_eq!(
        package_signals(&python, "latex of Expr"),
        expect(&[
            ("sympy/core/expr.py", 1.0),
            ("sympy/printing/latex.py", 1.0)
        ])
    );
    let unmatched = repo(&[
        python[1],
        ("sympy/utilities/misc.py", "def filldedent(s):\n    pass\n"),
    ]);
    let ranked = ranking(unmatched.path(), "latex of Expr");
    assert!(!ranked.iter().any(|p| p.ends_with("misc.py")), "{ranked:?}");
}
