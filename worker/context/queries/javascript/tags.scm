; JavaScript (and JSX) beyond ../ecmascript/tags.scm: classes, and functions or classes
; assigned to a variable.

(class_declaration
  name: (identifier) @name) @definition.class

(variable_declarator
  name: (identifier) @name
  value: [
    (arrow_function)
    (function_expression)
    (class)
  ]) @definition.function
