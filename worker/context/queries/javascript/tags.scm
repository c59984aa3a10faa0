; JavaScript (and JSX) beyond ../ecmascript/tags.scm: classes, functions or classes
; assigned to a variable, and class fields holding functions.

(class_declaration
  name: (identifier) @name) @definition.class

(variable_declarator
  name: (identifier) @name
  value: [
    (arrow_function)
    (function_expression)
    (class)
  ]) @definition.function

; Class fields holding a function (`handleClick = () => {}`), as the keyword scan sees them.
(field_definition
  property: (property_identifier) @name
  value: [
    (arrow_function)
    (function_expression)
  ]) @definition.method
