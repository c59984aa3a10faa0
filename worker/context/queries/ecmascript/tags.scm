; JavaScript and TypeScript: the patterns both grammars match alike (TypeScript's grammar
; extends JavaScript's): calls and `new`, then functions, generators and methods. Each
; language's own part, in its folder, is loaded after this one.

(call_expression
  function: [
    (identifier) @name
    (member_expression
      property: (property_identifier) @name)
  ]) @reference.call

(new_expression
  constructor: (identifier) @name) @reference.class

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(method_definition
  name: (property_identifier) @name) @definition.method

; Functions assigned to a property or given as an object's value: a plugin's
; `proto.week = function () {}`, `exports.parse = (s) => ...`, `isValid: function () {}`.
; The keyword scan sees these shapes; without them here a parsed file would lose them.
; `module.exports = function` names the module, not a function of it (as in the scan).
(assignment_expression
  left: (member_expression
    property: (property_identifier) @name)
  right: [
    (function_expression)
    (arrow_function)
  ]
  (#not-eq? @name "exports")) @definition.method

(assignment_expression
  left: (identifier) @name
  right: [
    (function_expression)
    (arrow_function)
  ]) @definition.function

(pair
  key: (property_identifier) @name
  value: [
    (function_expression)
    (arrow_function)
  ]) @definition.method
