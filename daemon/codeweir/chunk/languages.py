"""Per-language outlines from tree-sitter trees, for the chunker.

An outline is the file's definitions as nested `Unit`s (row ranges with a symbol, a kind and
their members); `chunk` turns it into chunks. Only the top level and the bodies of containers
(classes, impls, namespaces...) are walked, never function bodies, so the Python-side walk
stays small next to the parse.

Parsers are created lazily, one per thread, so worker processes build their own and nothing
here needs pickling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import attrs
import tree_sitter_c
import tree_sitter_cpp
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_rust
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser


@attrs.frozen
class Meta:
    """What a chunk is: shared by every piece of one definition."""

    kind: str
    symbol: str
    path: str
    # Small declarations (constants, variables, prototypes) may be merged with
    # their small neighbours; definitions with a body keep a chunk of their own.
    mergeable: bool = False
    # The 0-based row of the definition line (its name; -1 for none): of a definition cut into
    # several chunks, only the one holding this row is labelled with the symbol.
    row: int = -1


TEXT = Meta("text", "", "", mergeable=True)


@attrs.frozen
class Unit:
    """A definition spanning rows first_row..last_row (0-based, inclusive).

    meta None marks a transparent group (a preprocessor block, Go's `type (...)`): its own
    lines belong to the enclosing scope and its members are that scope's members.
    """

    first_row: int
    last_row: int
    meta: Meta | None
    members: tuple[Unit, ...] = ()


@attrs.frozen
class _Def:
    """A classifier's verdict on one node; kind "" means a transparent group."""

    kind: str
    name: str = ""
    body: Node | None = None  # the node whose named children are the members
    mergeable: bool = False
    qualifier: tuple[str, ...] = ()  # path parts before the name: Go receivers, C++ `Foo::`


# A classifier sees a node and the kind of the enclosing definition ("" at top level).
Classifier = Callable[[Node, str], "_Def | None"]

_CLASS_LIKE = frozenset({"class", "struct", "interface", "trait", "impl", "enum"})


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _name(node: Node, field: str = "name") -> str:
    return _text(node.child_by_field_name(field))


def _function_kind(parent_kind: str) -> str:
    return "method" if parent_kind in _CLASS_LIKE else "function"


def _definition_row(node: Node) -> int:
    """The row naming the definition: `def f` below its decorators, a Java method below its annotations."""
    target = node.child_by_field_name("definition") if node.type == "decorated_definition" else None
    target = target if target is not None else node
    name = target.child_by_field_name("name")
    return (name if name is not None and name.start_point.row >= target.start_point.row else target).start_point.row


def _rows(node: Node) -> tuple[int, int]:
    first, end = node.start_point, node.end_point
    # A node that ends at column 0 (a line comment with its newline) ends on the row before.
    last = end.row - 1 if end.column == 0 and end.row > first.row else end.row
    return first.row, last


def _type_name(node: Node | None) -> str:
    """The bare name of a type: `*Server` -> Server, `G[T]` / `Wrapper<T>` -> G / Wrapper."""
    while node is not None:
        if node.type in ("pointer_type", "reference_type", "parenthesized_type"):
            node = next(iter(node.named_children), None)
        elif node.type in ("generic_type", "scoped_type_identifier"):
            node = node.child_by_field_name("type") or node.child_by_field_name("name")
        else:
            return _text(node)
    return ""


# --- Python ---------------------------------------------------------------------------


def _python(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind == "decorated_definition":
        inner = node.child_by_field_name("definition")
        return _python(inner, parent_kind) if inner is not None else None
    if kind == "function_definition":
        return _Def(_function_kind(parent_kind), _name(node))
    if kind == "class_definition":
        return _Def("class", _name(node), node.child_by_field_name("body"))
    if kind == "type_alias_statement":
        return _Def("type", _name(node, "left"))
    if kind == "expression_statement" and parent_kind in ("", "module"):
        assignment = next(iter(node.named_children), None)
        if assignment is not None and assignment.type == "assignment":
            target = assignment.child_by_field_name("left")
            if target is not None and target.type == "identifier":
                name = _text(target)
                return _Def("const" if name.isupper() else "variable", name, mergeable=True)
    return None


# --- JavaScript, TypeScript and their JSX flavours ------------------------------------

_JS_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_JS_CLASS_VALUES = frozenset({"class", "class_declaration", "abstract_class_declaration"})


def _js_value(name: str, value: Node | None, plain_kind: str, parent_kind: str) -> _Def:
    """A binding `name = value`: a function or a class when the value is one."""
    if value is not None and value.type in _JS_FUNCTION_VALUES:
        return _Def(_function_kind(parent_kind), name)
    if value is not None and value.type in _JS_CLASS_VALUES:
        return _Def("class", name, value.child_by_field_name("body"))
    return _Def(plain_kind, name, mergeable=True)


def _js(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind in ("function_declaration", "generator_function_declaration"):
        return _Def(_function_kind(parent_kind), _name(node))
    if kind == "function_signature":  # TypeScript overloads and `declare function`
        return _Def("function", _name(node), mergeable=True)
    if kind in _JS_CLASS_VALUES:
        return _Def("class", _name(node) or "default", node.child_by_field_name("body"))
    if kind == "method_definition":
        return _Def(_function_kind(parent_kind), _name(node))
    if kind in ("field_definition", "public_field_definition"):  # `onClick = () => {...}`
        value = node.child_by_field_name("value")
        if value is not None and value.type in _JS_FUNCTION_VALUES:
            return _Def("method", _name(node, "property") or _name(node))
        return None
    if kind == "interface_declaration":
        return _Def("interface", _name(node))
    if kind == "type_alias_declaration":
        return _Def("type", _name(node))
    if kind == "enum_declaration":
        return _Def("enum", _name(node))
    if kind in ("internal_module", "module"):  # `namespace NS {}`, `declare module "x" {}`
        return _Def("module", _name(node).strip("\"'"), node.child_by_field_name("body"))
    if kind in ("lexical_declaration", "variable_declaration"):
        declarator = next((c for c in node.named_children if c.type == "variable_declarator"), None)
        target = declarator.child_by_field_name("name") if declarator is not None else None
        if target is None or target.type != "identifier":
            return None  # destructuring: module-level code
        plain = "const" if node.children[0].type == "const" else "variable"
        return _js_value(_text(target), declarator.child_by_field_name("value"), plain, parent_kind)  # type: ignore[union-attr]
    if kind == "export_statement":
        declaration = node.child_by_field_name("declaration")
        if declaration is not None:
            return _js(declaration, parent_kind)
        value = node.child_by_field_name("value")  # `export default ...`
        if value is not None and value.type in _JS_FUNCTION_VALUES | _JS_CLASS_VALUES:
            return _js_value(_name(value) or "default", value, "variable", parent_kind)
        return None
    if kind in ("ambient_declaration", "expression_statement"):  # `declare ...`, `namespace` statements
        inner = next(iter(node.named_children), None)
        return _js(inner, parent_kind) if inner is not None else None
    return None


# --- Go -------------------------------------------------------------------------------


def _go_type_spec(spec: Node) -> _Def:
    shape = spec.child_by_field_name("type")
    kind = {"struct_type": "struct", "interface_type": "interface"}.get(shape.type if shape else "", "type")
    return _Def(kind, _name(spec))


def _go(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind == "function_declaration":
        return _Def("function", _name(node))
    if kind == "method_declaration":
        receiver = node.child_by_field_name("receiver")
        parameter = next(iter(receiver.named_children), None) if receiver is not None else None
        owner = _type_name(parameter.child_by_field_name("type")) if parameter is not None else ""
        return _Def("method", _name(node), qualifier=(owner,) if owner else ())
    if kind in ("type_spec", "type_alias"):
        return _go_type_spec(node)
    if kind == "type_declaration":
        specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
        if len(specs) == 1:
            return _go_type_spec(specs[0])
        return _Def("", body=node)  # `type ( A ...; B ... )`: each spec is a chunk
    if kind in ("const_declaration", "var_declaration"):
        spec = next((c for c in node.named_children if c.type.endswith("_spec")), None)
        names = spec.children_by_field_name("name") if spec is not None else []
        return _Def("const" if kind == "const_declaration" else "variable", _text(names[0]) if names else "", mergeable=True)
    return None


# --- Rust -----------------------------------------------------------------------------


def _rust(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind == "function_item":
        return _Def(_function_kind(parent_kind), _name(node))
    if kind in ("struct_item", "union_item"):
        return _Def("struct", _name(node))
    if kind in ("enum_item", "type_item"):
        return _Def(kind.removesuffix("_item"), _name(node))
    if kind in ("const_item", "static_item"):
        return _Def("const", _name(node), mergeable=True)
    if kind == "trait_item":
        return _Def("trait", _name(node), node.child_by_field_name("body"))
    if kind == "impl_item":
        return _Def("impl", _type_name(node.child_by_field_name("type")), node.child_by_field_name("body"))
    if kind == "mod_item":
        body = node.child_by_field_name("body")
        return _Def("module", _name(node), body) if body is not None else None
    if kind == "macro_definition":
        return _Def("function", _name(node))
    return None


# --- Java -----------------------------------------------------------------------------

_JAVA_CONTAINERS = {
    "class_declaration": "class",
    "record_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
}


def _java(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind in _JAVA_CONTAINERS:
        return _Def(_JAVA_CONTAINERS[kind], _name(node), node.child_by_field_name("body"))
    if kind == "annotation_type_declaration":
        return _Def("interface", _name(node))
    if kind in ("method_declaration", "constructor_declaration", "compact_constructor_declaration"):
        # Bodiless (abstract, interface) methods stay in their type's header chunk.
        return _Def("method", _name(node)) if node.child_by_field_name("body") is not None else None
    if kind == "enum_body_declarations":  # an enum's fields and methods after its constants
        return _Def("", body=node)
    return None


# --- C and C++ ------------------------------------------------------------------------

_C_NAMES = frozenset(
    {
        "identifier",
        "field_identifier",
        "type_identifier",
        "qualified_identifier",
        "operator_name",
        "destructor_name",
        "template_function",
    }
)
_C_RECORDS = {"struct_specifier": "struct", "union_specifier": "struct", "class_specifier": "class"}
_C_GROUPS = frozenset(
    {
        "preproc_if",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "linkage_specification",
    }
)


def _c_declarator(node: Node | None) -> tuple[tuple[str, ...], str, bool]:
    """(qualifier, name, is_function) of a declarator chain: `*Foo::bar(int)` -> (Foo,), bar, True."""
    is_function = False
    while node is not None and node.type not in _C_NAMES:
        is_function = is_function or node.type == "function_declarator"
        inner = node.child_by_field_name("declarator")
        node = (
            inner
            if inner is not None
            else next((c for c in node.named_children if c.type in _C_NAMES or c.type.endswith("declarator")), None)
        )
    parts = [p.split("<")[0] if not p.startswith("operator") else p for p in _text(node).split("::")]
    return tuple(p for p in parts[:-1] if p), parts[-1], is_function


def _c(node: Node, parent_kind: str) -> _Def | None:
    kind = node.type
    if kind == "function_definition":
        qualifier, name, _ = _c_declarator(node.child_by_field_name("declarator"))
        return _Def("method" if qualifier else _function_kind(parent_kind), name, qualifier=qualifier)
    if kind == "declaration":
        _, name, is_function = _c_declarator(node.child_by_field_name("declarator"))
        if is_function:
            return _Def("function", name, mergeable=True)
        constant = any(_text(c) in ("const", "constexpr") for c in node.named_children if c.type == "type_qualifier")
        return _Def("const" if constant else "variable", name, mergeable=True)
    if kind in _C_RECORDS and node.child_by_field_name("body") is not None:
        return _Def(_C_RECORDS[kind], _type_name(node.child_by_field_name("name")), node.child_by_field_name("body"))
    if kind == "enum_specifier" and node.child_by_field_name("body") is not None:
        return _Def("enum", _name(node))
    if kind == "type_definition":
        shape = node.child_by_field_name("type")
        shape_kind = shape.type if shape is not None else ""
        named = {**_C_RECORDS, "enum_specifier": "enum"}.get(shape_kind, "type")
        return _Def(named, _c_declarator(node.child_by_field_name("declarator"))[1])
    if kind == "alias_declaration":
        return _Def("type", _name(node))
    if kind == "preproc_def":
        return _Def("const", _name(node), mergeable=True)
    if kind == "preproc_function_def":
        return _Def("function", _name(node), mergeable=True)
    if kind == "namespace_definition":
        name = _name(node)
        return _Def("module" if name else "", name.replace("::", "."), node.child_by_field_name("body"))
    if kind == "template_declaration":
        inner = node.named_children[-1] if node.named_children else None
        return _c(inner, parent_kind) if inner is not None else None
    if kind in _C_GROUPS:
        body = node.child_by_field_name("body") if kind == "linkage_specification" else node
        return _Def("", body=body)
    return None


@attrs.frozen
class _Grammar:
    language: Callable[[], object]
    classify: Classifier
    # Comments and attributes directly above a definition belong to it.
    prefixes: frozenset[str]


_COMMENTS = frozenset({"comment"})
_GRAMMARS: dict[str, _Grammar] = {
    "python": _Grammar(tree_sitter_python.language, _python, _COMMENTS),
    "javascript": _Grammar(tree_sitter_javascript.language, _js, _COMMENTS | {"decorator"}),
    "jsx": _Grammar(tree_sitter_javascript.language, _js, _COMMENTS | {"decorator"}),
    "typescript": _Grammar(tree_sitter_typescript.language_typescript, _js, _COMMENTS | {"decorator"}),
    "tsx": _Grammar(tree_sitter_typescript.language_tsx, _js, _COMMENTS | {"decorator"}),
    "go": _Grammar(tree_sitter_go.language, _go, _COMMENTS),
    "rust": _Grammar(tree_sitter_rust.language, _rust, frozenset({"line_comment", "block_comment", "attribute_item"})),
    "java": _Grammar(tree_sitter_java.language, _java, frozenset({"line_comment", "block_comment"})),
    "c": _Grammar(tree_sitter_c.language, _c, _COMMENTS),
    "cpp": _Grammar(tree_sitter_cpp.language, _c, _COMMENTS),
}

GRAMMAR_LANGUAGES = frozenset(_GRAMMARS)

_languages: dict[str, Language] = {}
_parsers = threading.local()  # a Parser is not to be shared between threads


def _parser(language: str) -> Parser:
    cache: dict[str, Parser] = _parsers.__dict__.setdefault("by_language", {})
    if language not in cache:
        if language not in _languages:
            _languages[language] = Language(_GRAMMARS[language].language())
        cache[language] = Parser(_languages[language])
    return cache[language]


def outline(language: str, data: bytes) -> tuple[Unit, ...]:
    """The definitions of `data` (UTF-8 source in a language of GRAMMAR_LANGUAGES)."""
    grammar = _GRAMMARS[language]
    root = _parser(language).parse(data).root_node
    return _members(root.named_children, grammar, (), "")


def _members(nodes: Sequence[Node], grammar: _Grammar, path: tuple[str, ...], parent_kind: str) -> tuple[Unit, ...]:
    units: list[Unit] = []
    prev_last = -1  # last row of any earlier sibling, to tell own-line comments from trailing ones
    prefix: tuple[int, int] | None = None  # rows of the run of comments/attributes just above
    for node in nodes:
        first, last = _rows(node)
        if node.type in grammar.prefixes:
            own_line = first > prev_last
            if own_line and prefix is not None and prefix[1] + 1 >= first:
                prefix = (prefix[0], last)
            else:
                prefix = (first, last) if own_line else None
        else:
            verdict = _classify(node, grammar, parent_kind)
            if verdict is not None:
                start = prefix[0] if prefix is not None and prefix[1] + 1 >= first else first
                unit = _unit(node, verdict, start, last, grammar, path, parent_kind)
                if unit.meta is None and unit.members and first > prev_last and node.type != "ERROR":
                    # A group's opening line (`type (`, `#ifdef X`) leads into its first member.
                    unit = attrs.evolve(unit, members=(attrs.evolve(unit.members[0], first_row=start), *unit.members[1:]))
                units.append(unit)
            prefix = None
        prev_last = max(prev_last, last)
    return tuple(units)


def _classify(node: Node, grammar: _Grammar, parent_kind: str) -> _Def | None:
    if node.type == "ERROR":  # keep what tree-sitter recovered inside a syntax error
        return _Def("", body=node)
    verdict = grammar.classify(node, parent_kind)
    if verdict is not None and verdict.mergeable and parent_kind in _CLASS_LIKE:
        return None  # a constant or prototype in a class body is part of its header
    return verdict


def _unit(node: Node, verdict: _Def, first: int, last: int, grammar: _Grammar, path: tuple[str, ...], parent_kind: str) -> Unit:
    name = " ".join(verdict.name.split())  # a computed name may span lines
    own_path = path + verdict.qualifier + ((name,) if name else ())
    meta = None
    if verdict.kind:
        meta = Meta(verdict.kind, name, ".".join(own_path), verdict.mergeable, _definition_row(node))
    else:
        own_path = path
    members: tuple[Unit, ...] = ()
    if verdict.body is not None:
        members = _members(verdict.body.named_children, grammar, own_path, verdict.kind or parent_kind)
    # A container whose first member starts on its own first line has no header to stand on:
    # it stays whole.
    if members and members[0].first_row <= node.start_point.row:
        members = ()
    return Unit(first, last, meta, members)
