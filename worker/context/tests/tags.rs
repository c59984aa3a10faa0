//! Tree-sitter's definitions replace the keyword scan's for the parsed candidates, so every
//! shape the scan sees must be in the language's tags query too: otherwise parsing a file
//! would lose its definitions (a dayjs plugin's `proto.week = function`, found by the scan,
//! was invisible to the JavaScript query, and the plugin dropped out of the definitions
//! signal exactly when it was a candidate worth parsing).

use fleet_context::languages::Lang;

mod common;
use common::scanned;

/// Definition names of the tags query for `path`'s language.
fn tagged(path: &str, text: &str) -> Vec<String> {
    let lang = Lang::from_path(std::path::Path::new(path)).expect("a language with a query");
    fleet_context::tags::extract(lang, text)
        .expect("parse")
        .definitions
        .into_iter()
        .map(|d| d.name)
        .collect()
}

const SAMPLES: &[(&str, &str)] = &[
    (
        "src/plugin/weekOfYear/index.js",
        "export default (o, c, d) => {\n  const proto = c.prototype\n\
         \x20 proto.week = function (week = null) {\n    return this.add(week, 'day')\n  }\n\
         \x20 d.isDayjs = (x) => x instanceof c\n\
         \x20 const helpers = {\n    isValid: function () {\n      return true\n    },\n  }\n\
         \x20 class Duration {\n    humanize(withSuffix) {\n      return withSuffix\n    }\n  }\n}\n\
         export function weekStart(locale) {\n  return locale.weekStart\n}\n",
    ),
    (
        "src/plugin/utc.ts",
        "export const utc = (date: Date) => date\n\
         proto.utcOffset = function (input: number) {\n  return input\n}\n\
         export function local(this: Dayjs): Dayjs {\n  return this\n}\n\
         export class Utc {\n  offset(n: number): number {\n    return n\n  }\n}\n",
    ),
    (
        "src/component.jsx",
        "class Button extends Component {\n  handleClick = () => {\n    this.setState({})\n  }\n\
         \x20 static create = function () {\n    return new Button()\n  }\n}\n\
         handler = function (event) {\n  return event\n}\n",
    ),
    (
        "src/Header.tsx",
        "export class Header extends Component<Props> {\n  onToggle = (open: boolean) => {\n    \
         this.setState({ open })\n  }\n  render() {\n    return <div onClick={this.onToggle} />\n  }\n}\n\
         export const Title = (props: Props) => <h1>{props.text}</h1>\n",
    ),
    (
        "resources/page/pagegroup.go",
        "package page\n\nfunc (p Pages) GroupByParam(key string) (PagesGroup, error) {\n\treturn nil, nil\n}\n\
         func newPages() Pages {\n\treturn nil\n}\n\ntype PagesGroup []PageGroup\n",
    ),
    (
        "HandleBuilder.java",
        "public class HandleBuilder extends JavacAnnotationHandler<Builder> {\n\
         \tpublic void handle(AnnotationValues<Builder> annotation, JCAnnotation ast) {\n\
         \t\tgenerateBuilderMethod(annotation);\n\t}\n\
         \tprivate static JCMethodDecl generateToBuilderMethod(JavacNode type) {\n\t\treturn null;\n\t}\n}\n",
    ),
    (
        "src/printer.rs",
        "pub struct InteractivePrinter {\n    width: usize,\n}\n\n\
         impl InteractivePrinter {\n    pub fn print_line(&mut self) {}\n}\n\n\
         pub trait Printer {\n    fn print_header(&mut self);\n}\n\nfn wrap(s: &str) -> &str {\n    s\n}\n",
    ),
    (
        "src/_pytest/python.py",
        "class Function:\n    def runtest(self):\n        pass\n\n\
         async def collect():\n    pass\n\ndef pytest_pycollect_makeitem(collector, name, obj):\n    return None\n",
    ),
];

#[test]
fn every_definition_the_keyword_scan_sees_the_tags_query_sees() {
    for (path, text) in SAMPLES {
        let scan = scanned(path, text);
        assert!(!scan.is_empty(), "{path}: the scan found nothing");
        let tags = tagged(path, text);
        let missing: Vec<&String> = scan.iter().filter(|n| !tags.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{path}: the tags query misses {missing:?} (it has {tags:?})"
        );
    }
}

#[test]
fn module_exports_names_the_module_not_a_function() {
    // The scan skips it on purpose; the query must not define `exports` in every CommonJS
    // module either (an issue saying "module.exports" would match them all).
    let text = "module.exports = function (app) {\n  return app\n}\nexports.parse = (s) => s\n";
    assert!(scanned("lib/index.js", text).iter().all(|n| n != "exports"));
    let tags = tagged("lib/index.js", text);
    assert!(!tags.iter().any(|n| n == "exports"), "{tags:?}");
    assert!(tags.iter().any(|n| n == "parse"), "{tags:?}");
}
