; Rust: type items, traits, functions, modules, macros, consts and statics; calls, macro
; calls and type names.

(struct_item
  name: (type_identifier) @name) @definition.class

(enum_item
  name: (type_identifier) @name) @definition.class

(union_item
  name: (type_identifier) @name) @definition.class

(type_item
  name: (type_identifier) @name) @definition.class

(trait_item
  name: (type_identifier) @name) @definition.interface

(function_item
  name: (identifier) @name) @definition.function

(function_signature_item
  name: (identifier) @name) @definition.function

(mod_item
  name: (identifier) @name) @definition.module

(macro_definition
  name: (identifier) @name) @definition.macro

(const_item
  name: (identifier) @name) @definition.constant

(static_item
  name: (identifier) @name) @definition.constant

(call_expression
  function: [
    (identifier) @name
    (field_expression
      field: (field_identifier) @name)
    (scoped_identifier
      name: (identifier) @name)
  ]) @reference.call

(macro_invocation
  macro: (identifier) @name) @reference.call

(type_identifier) @name @reference.type
