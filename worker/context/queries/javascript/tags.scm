; JavaScript (and JSX) tags: definitions with their spans, and the names a file refers to.

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(class_declaration
  name: (identifier) @name) @definition.class

(method_definition
  name: (property_identifier) @name) @definition.method

(variable_declarator
  name: (identifier) @name
  value: [
    (arrow_function)
    (function_expression)
    (class)
  ]) @definition.function

(call_expression
  function: [
    (identifier) @name
    (member_expression
      property: (property_identifier) @name)
  ]) @reference.call

(new_expression
  constructor: (identifier) @name) @reference.class
