; Python tags: definitions with their spans, and the names a file refers to.
; Captures: @name is the identifier; @definition.<kind> / @reference.<kind> is the whole node.

(class_definition
  name: (identifier) @name) @definition.class

(function_definition
  name: (identifier) @name) @definition.function

(module
  (expression_statement
    (assignment
      left: (identifier) @name) @definition.constant))

(call
  function: [
    (identifier) @name
    (attribute
      attribute: (identifier) @name)
  ]) @reference.call

(class_definition
  superclasses: (argument_list
    (identifier) @name @reference.class))

(import_from_statement
  name: (dotted_name
    (identifier) @name) @reference.import)

(import_from_statement
  name: (aliased_import
    name: (dotted_name
      (identifier) @name)) @reference.import)
