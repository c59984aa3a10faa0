; TypeScript and TSX beyond ../ecmascript/tags.scm (both grammars share these node
; types): the declarations only TypeScript has, classes named by a type identifier, and the
; types a file refers to.

(function_signature
  name: (identifier) @name) @definition.function

(class_declaration
  name: (type_identifier) @name) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name) @definition.class

(interface_declaration
  name: (type_identifier) @name) @definition.interface

(type_alias_declaration
  name: (type_identifier) @name) @definition.type

(enum_declaration
  name: (identifier) @name) @definition.type

(method_signature
  name: (property_identifier) @name) @definition.method

(variable_declarator
  name: (identifier) @name
  value: [
    (arrow_function)
    (function_expression)
  ]) @definition.function

; Class fields holding a function (`handleClick = () => {}`), as the keyword scan sees them.
(public_field_definition
  name: (property_identifier) @name
  value: [
    (arrow_function)
    (function_expression)
  ]) @definition.method

(type_identifier) @name @reference.type
