//! Definitions the keyword scan cannot see, found line by line in the C-family languages:
//! Go methods (`func (p Pages) GroupByParam(`), Java and TypeScript methods (`public static
//! List<T> parse(String s) {`), JavaScript class and object methods (`format(str) {`) and
//! functions assigned to a name (`proto.format = function (`, `const add = (a) =>`,
//! `isValid: function () {`).
//!
//! Most of these languages' code lives in methods, so without them the definitions signal
//! sees only the classes of a Java project and nothing of a dayjs plugin. Tree-sitter finds
//! them too, but only for the few parsed candidates; this runs on every file at the speed of
//! a line split. It errs on the side of shapes a statement cannot have: a call statement
//! (`foo(x);`, `return foo(x)`, `it('works', () => {`) is not a definition.

use super::LexicalDef;

/// Which shapes to look for, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `func (recv) Name(`.
    Go,
    /// Typed declarations: `modifiers Type name(`.
    Java,
    /// Class and object methods, assigned functions; TypeScript's typed members too.
    EcmaScript,
}

impl Family {
    pub fn of_path(path: &str) -> Option<Family> {
        let ext = path.rsplit_once('.')?.1;
        Some(match ext {
            "go" => Family::Go,
            "java" | "kt" | "scala" | "cs" => Family::Java,
            "js" | "mjs" | "cjs" | "jsx" | "ts" | "mts" | "cts" | "tsx" | "vue" => {
                Family::EcmaScript
            }
            _ => return None,
        })
    }
}

/// Words that start statements or expressions, never a declaration's name or type.
const STATEMENT_WORDS: &[&str] = &[
    "return",
    "new",
    "throw",
    "await",
    "yield",
    "else",
    "if",
    "for",
    "while",
    "switch",
    "catch",
    "typeof",
    "case",
    "delete",
    "do",
    "in",
    "of",
    "instanceof",
    "super",
    "this",
    "function",
    "synchronized",
    "try",
    "finally",
    "assert",
    "import",
    "package",
    "using",
    "when",
    "with",
    "not",
    "and",
    "or",
    "defer",
    "go",
    "select",
    "range",
    "print",
    "println",
];

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// The identifier ending at byte `end` of `line` (exclusive), with its start.
fn word_before(line: &str, end: usize) -> Option<(usize, &str)> {
    let b = line.as_bytes();
    let mut start = end;
    while start > 0 && is_word_byte(b[start - 1]) {
        start -= 1;
    }
    let word = &line[start..end];
    (!word.is_empty() && !word.as_bytes()[0].is_ascii_digit()).then_some((start, word))
}

/// Appends the definitions of `text` that `family` declares in shapes without a keyword.
pub fn scan(family: Family, text: &str, out: &mut Vec<LexicalDef>) {
    for (line_no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.len() < 4 || line.starts_with("//") || line.starts_with('*') {
            continue;
        }
        let name = match family {
            Family::Go => go_receiver_method(line),
            Family::Java => typed_method(line, false),
            Family::EcmaScript => assigned_function(line)
                .or_else(|| shorthand_method(line))
                .or_else(|| typed_method(line, true)),
        };
        if let Some(name) = name
            && name.len() >= 2
            && !STATEMENT_WORDS.contains(&name)
        {
            out.push(LexicalDef {
                name: name.to_string(),
                line: line_no,
            });
        }
    }
}

/// `func (p *Pages) GroupByParam(key string) ...` → `GroupByParam`.
fn go_receiver_method(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("func")?.trim_start();
    let rest = rest.strip_prefix('(')?;
    let close = rest.find(')')?;
    let after = rest[close + 1..].trim_start();
    let end = after.bytes().position(|b| !is_word_byte(b))?;
    after[end..]
        .trim_start()
        .starts_with(['(', '['])
        .then(|| &after[..end])
}

/// The name before the line's first `(`, when everything before it could be modifiers, a
/// type and generics (`public static <T> List<T> parse(`), and the line ends the way a
/// declaration's head does. With `bare_allowed` (JavaScript, TypeScript) a line that is only
/// `name(...) {` counts too: a class or object method.
fn typed_method(line: &str, bare_allowed: bool) -> Option<&str> {
    let paren = line.find('(')?;
    let head = line[..paren].trim_end();
    let (start, name) = word_before(head, head.len())?;
    let prefix = head[..start].trim_end();
    // `@JsonProperty("x")` uses an annotation; `export default defineComponent({` calls.
    if prefix.ends_with('@') || prefix == "export default" || prefix == "export" {
        return None;
    }
    if !parameters_then_body(&line[paren..]) {
        return None;
    }
    if prefix.is_empty() {
        // A call statement has no type before it: only a method shape (`name(a) {`) counts.
        return (bare_allowed && method_tail(&line[paren..])).then_some(name);
    }
    // Modifiers, a type, generics, arrays, pointers, annotations: nothing else.
    if !prefix
        .bytes()
        .all(|b| is_word_byte(b) || b" <>[],?*@.".contains(&b))
        || prefix.ends_with('.')
        || prefix.ends_with(',')
    {
        return None;
    }
    let mut words = prefix
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty());
    if words.any(|w| STATEMENT_WORDS.contains(&w)) {
        return None;
    }
    let tail = line[paren..].trim_end();
    let declares = tail.ends_with('{')
        || tail.ends_with('(')
        || tail.ends_with(',')
        || tail.ends_with(')')
        || (tail.ends_with(';') && !tail.contains('='));
    (declares && !tail.contains("=>") && !tail.contains(" function")).then_some(name)
}

/// What follows a declaration's name: its parameters, then a body, a return type, a
/// `throws` clause or the end of an abstract declaration (`(a, b) {`, `(a: T): R {`,
/// `(String s) throws IOException;`), or parameters that go on on the next line (`(Reader
/// in,`). A call's arguments are followed by anything else (`(x).toEqual({`, `(Comp, {`).
fn parameters_then_body(tail: &str) -> bool {
    let mut depth = 0usize;
    for (i, c) in tail.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let after = tail[i + 1..].trim();
                    return after.is_empty()
                        || after == "{"
                        || after == ";"
                        || after.starts_with(':')
                        || after.starts_with("throws ")
                        || after.starts_with("->");
                }
            }
            _ => {}
        }
    }
    // Still inside the parameters at the end of the line.
    let open = tail.trim_end();
    open.ends_with(',') || open.ends_with('(')
}

/// `(a, b) {` or `(a: T): R {` after a method's name: a body opens, no statement ends.
fn method_tail(tail: &str) -> bool {
    let tail = tail.trim_end();
    tail.ends_with('{') && !tail.contains(';') && !tail.contains("=>") && !tail.contains("function")
}

/// `proto.format = function (`, `export const add = (a, b) =>`, `isValid: function () {`,
/// `onClick: async (e) =>` → the assigned name.
fn assigned_function(line: &str) -> Option<&str> {
    let (name_end, value) = if let Some(i) = line.find(" = ") {
        (i, &line[i + 3..])
    } else {
        let i = line.find(": ")?;
        (i, &line[i + 2..])
    };
    let mut head = &line[..name_end];
    if head.contains('(') || head.contains('"') || head.contains('\'') {
        return None;
    }
    // `const App: FC<Props> = () =>`: the name is before the type annotation.
    if ["const ", "let ", "var ", "export "]
        .iter()
        .any(|k| head.starts_with(k))
        && let Some(colon) = head.find(':')
    {
        head = &head[..colon];
    }
    let (_, name) = word_before(head, head.trim_end().len())?;
    if name == "exports" {
        // `module.exports = function`: the module, not a name of it.
        return None;
    }
    let value = value.trim_start();
    let word_after = |prefix: &str| {
        value
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    };
    let is_function = word_after("function")
        || word_after("async")
        || arrow_of_one(value)
        || (value.starts_with('(') && arrow_after_parameters(value));
    is_function.then_some(name)
}

/// `(a, b) => ...` or `(a): T => ...`: the parenthesis that opens `value` closes right
/// before the arrow (not `(items || []).map(i => i)`).
fn arrow_after_parameters(value: &str) -> bool {
    let mut depth = 0usize;
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let after = value[i + 1..].trim_start();
                    return after.starts_with("=>")
                        || (after.starts_with(':')
                            && after.contains("=>")
                            && !after.contains('('));
                }
            }
            _ => {}
        }
    }
    false
}

/// `x => ...`: an arrow function of one bare parameter.
fn arrow_of_one(value: &str) -> bool {
    let end = value.bytes().position(|b| !is_word_byte(b)).unwrap_or(0);
    end > 0 && value[end..].trim_start().starts_with("=>")
}

/// `format(formatStr) {` inside a class or an object literal.
fn shorthand_method(line: &str) -> Option<&str> {
    let line = line
        .strip_prefix("async ")
        .or_else(|| line.strip_prefix("static "))
        .or_else(|| line.strip_prefix("get "))
        .or_else(|| line.strip_prefix("set "))
        .unwrap_or(line);
    let paren = line.find('(')?;
    let head = line[..paren].trim_end();
    let (start, name) = word_before(head, head.len())?;
    let tail = &line[paren..];
    (start == 0 && method_tail(tail) && parameters_then_body(tail)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(family: Family, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        scan(family, text, &mut out);
        out.into_iter().map(|d| d.name).collect()
    }

    #[test]
    fn go_methods_with_receivers() {
        let text = "func (p Pages) GroupByParam(key string) (PagesGroup, error) {\n\
                    func (l *lexer) next() bool {\n\
                    func (s *Set[T]) Add(v T) {\n\
                    \tfoo(bar)\n\
                    \tdefer f.Close()\n";
        assert_eq!(names(Family::Go, text), ["GroupByParam", "next", "Add"]);
    }

    #[test]
    fn java_methods_and_constructors_not_calls() {
        let text = "    public static <T> List<T> parseList(String s) {\n\
                    \x20   private void write(JsonWriter out,\n\
                    \x20   protected JsonReader(Reader in) {\n\
                    \x20   String read() throws IOException;\n\
                    \x20   return toJson(src);\n\
                    \x20   foo(bar);\n\
                    \x20   if (x) {\n\
                    \x20   throw new IllegalStateException(\"x\");\n\
                    \x20   int n = count(x);\n\
                    \x20   } else if (y) {\n";
        assert_eq!(
            names(Family::Java, text),
            ["parseList", "write", "JsonReader", "read"]
        );
    }

    #[test]
    fn javascript_methods_and_assigned_functions_not_calls() {
        let text = "  proto.format = function (formatStr) {\n\
                    export const isDayjs = d => d instanceof Dayjs\n\
                    const wrapper = (date, instance) =>\n\
                    \x20 isValid: function () {\n\
                    \x20 toISOString() {\n\
                    \x20 async render(vnode) {\n\
                    \x20 static get observedAttributes() {\n\
                    \x20 it('formats', () => {\n\
                    \x20 describe('x', function () {\n\
                    \x20 if (a) {\n\
                    \x20 const x = y\n\
                    \x20 foo(bar);\n\
                    \x20 label: 'x',\n";
        assert_eq!(
            names(Family::EcmaScript, text),
            [
                "format",
                "isDayjs",
                "wrapper",
                "isValid",
                "toISOString",
                "render",
                "observedAttributes"
            ]
        );
    }

    #[test]
    fn typescript_typed_members() {
        let text = "  public setValue(value: string): void {\n\
                    \x20 private readonly map(fn: (x: T) => U): U[];\n\
                    export function parse(s: string): Node {\n";
        // `parse` is the keyword scan's (`function`); the arrow type keeps `map` out, a
        // miss that costs less than counting every callback-taking call as a definition.
        assert_eq!(names(Family::EcmaScript, text), ["setValue"]);
    }

    #[test]
    fn calls_and_annotations_that_look_like_declarations_are_not() {
        let js = "export default defineComponent({\n\
                  \x20 expect(wrapper.vm).toEqual({\n\
                  \x20 mount(Comp, {\n\
                  const handlers = functions.map(f => f)\n\
                  const total = (items || []).map(i => i.price)\n\
                  module.exports = function (app) {\n\
                  const App: FC<Props> = ({ children }) => {\n\
                  export const Button: React.FC<Props> = (props) =>\n";
        assert_eq!(names(Family::EcmaScript, js), ["App", "Button"]);
        let java = "    @JsonProperty(\"name\")\n    @Test(expected = IllegalStateException.class)\n\
                    \x20   public String name() {\n";
        assert_eq!(names(Family::Java, java), ["name"]);
    }
}
