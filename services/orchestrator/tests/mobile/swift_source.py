"""What the iOS client's Swift sources say about the HTTP contract, read with tree-sitter.

There is no Swift toolchain on the Linux CI, so the Swift sources are parsed, not compiled. From
the syntax trees this module reads (no regular expressions over source text):

- parse problems: every ERROR or MISSING node, per file (`SwiftSources.parse_problems`);
- endpoints: every call with a `method: .x` and a `path: "…"` argument, i.e. the
  `Endpoint(method: .post, path: "/api/v1/strava/callback")` declarations (`endpoints`);
- JSON keys: the raw values of every `CodingKeys` enum, per Codable type (`coding_keys`), and more
  generally the values of every String-backed enum (`string_enums`, e.g. the status values);
- stored properties: every `var`/`let` with a type annotation in a type's body, with its type
  (`stored_properties`: `[String]?` is an optional array of `String`), and the type names declared
  (`type_names`, `resolve_type` finds what a name means where it is used, as Swift's lookup does);
- the error-code mapping: the string literals of the `case` patterns of the switch statements in one
  function (`switch_case_literals`, for `StravaErrorCatalog.presentation`);
- logging: every interpolation in a string passed to a `logger.<level>(…)` call, with its privacy
  argument (`log_interpolations`), so a test can keep secrets out of the logs.

Types are named by their nesting, as Swift does: `StravaStatus.Sync`. Extensions count as the type
they extend. `contract.py` compares these facts with the server's OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_swift
from tree_sitter import Language, Node, Parser, Tree

IOS_ROOT = Path(__file__).resolve().parents[4] / "mobile" / "ios"
# What ships in the app: the package's library and the app target's screens (not the tests).
APP_SOURCE_DIRS = ("Services", "Features")
FIXTURES_DIR = IOS_ROOT / "Tests" / "Fixtures"

# The function whose switch maps every contract error code to words and an action.
ERROR_MAPPING_FUNCTION = "StravaErrorCatalog.presentation"

# Swift Codable type → the server's OpenAPI component schema for the same document
# (FastAPI names them after the pydantic models in app/strava/schemas.py). `APIError` has no
# component: the error body is written by the error handler, not by a response model, so it is
# checked against real error responses instead (should the server ever document it as a component,
# map `APIError` to it here). The nested entries are checked too: the parent's property must
# refer to that very component (contract.py).
OPENAPI_SCHEMAS: Mapping[str, str] = {
    "LinkTokenRequest": "LinkTokenIn",
    "LinkTokenResponse": "LinkTokenOut",
    "CallbackRequest": "CallbackIn",
    "StravaStatus": "StravaStatus",
    "StravaStatus.Athlete": "AthleteOut",
    "StravaStatus.Sync": "SyncStatusOut",
    "StravaStatus.StatusError": "StatusErrorOut",
    "SyncQueuedResponse": "SyncQueuedOut",
    "TrainingLoadDocument": "TrainingLoadModelOut",
    "TrainingLoadDocument.Day": "DayLoadOut",
    "TrainingLoadDocument.WorkoutLoad": "WorkoutLoadOut",
    "TrainingLoadDocument.Physiology": "PhysiologyOut",
    "TrainingLoadDocument.TrimpConstants": "TrimpConstantsOut",
    "TrainingLoadDocument.ResolvedValue": "ResolvedValueOut",
    "LoadFigures": "LoadFiguresOut",
    "LoadFigures.LoadFlag": "LoadFlagOut",
    "APIError": "ErrorBody",
}

# Fixture file (mobile/ios/Tests/Fixtures/<name>.json) → the Swift type the tests decode it as.
FIXTURE_TYPES: Mapping[str, str] = {
    "status_linked": "StravaStatus",
    "status_not_linked": "StravaStatus",
    "status_action_required": "StravaStatus",
    "link_token": "LinkTokenResponse",
    "sync_queued": "SyncQueuedResponse",
    "training_load": "TrainingLoadDocument",
    "error": "APIError",
}

SWIFT = Language(tree_sitter_swift.language())

_LOG_LEVELS = {"log", "trace", "debug", "info", "notice", "warning", "error", "critical", "fault"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True, order=True)
class Endpoint:
    """An HTTP method (upper case) and a path, as the client calls it."""

    method: str
    path: str
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class TypeRef:
    """A stored property's declared type: `name` is the innermost named type as written
    (`Athlete`, `Int64`, `StravaStatus.Sync`), `optional` for `T?`/`Optional<T>`, `array` for `[T]`
    (`[T]?` is both). Anything else (dictionaries, tuples, closures) keeps its text as `name`."""

    name: str
    optional: bool = False
    array: bool = False
    element_optional: bool = False

    def __str__(self) -> str:
        inner = f"{self.name}{'?' if self.element_optional else ''}"
        text = f"[{inner}]" if self.array else inner
        return f"{text}?" if self.optional else text


@dataclass(frozen=True)
class ParseProblem:
    file: str
    line: int
    column: int
    kind: str  # "ERROR" (unparseable text) or "MISSING <token>" (the parser had to invent it)
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.kind} near {self.text!r}"


@dataclass(frozen=True)
class Import:
    """`import CryptoKit` inside `#if canImport(CryptoKit)`: the module and the open conditions."""

    module: str
    conditions: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class LogInterpolation:
    """`\\(expression, privacy: .public)` in a log message: the expression's source text and the
    privacy argument's (`.public`, `.private(mask: .hash)`; None when absent)."""

    expression: str
    privacy: str | None
    where: str


@dataclass(frozen=True)
class SwiftFile:
    name: str
    tree: Tree

    @property
    def root(self) -> Node:
        return self.tree.root_node


class SwiftSources:
    """A set of parsed Swift files, keyed by a display name (a path relative to `mobile/ios`)."""

    def __init__(self, sources: Mapping[str, bytes]) -> None:
        parser = Parser(SWIFT)
        self.files = [SwiftFile(name, parser.parse(text)) for name, text in sorted(sources.items())]

    @classmethod
    def from_paths(cls, paths: Iterable[Path], root: Path = IOS_ROOT) -> SwiftSources:
        return cls({_display_name(path, root): path.read_bytes() for path in paths})

    @classmethod
    def from_text(cls, text: str, name: str = "snippet.swift") -> SwiftSources:
        return cls({name: text.encode()})

    @classmethod
    def everything(cls, root: Path = IOS_ROOT) -> SwiftSources:
        """Every .swift file under mobile/ios (what the parse check covers)."""
        return cls.from_paths(swift_files(root), root)

    @classmethod
    def app(cls, root: Path = IOS_ROOT) -> SwiftSources:
        """The shipped sources (Services and Features): what the contract checks read."""
        paths = [path for folder in APP_SOURCE_DIRS for path in swift_files(root / folder)]
        return cls.from_paths(paths, root)

    # --- parse check ---------------------------------------------------------------------------

    def parse_problems(self) -> list[ParseProblem]:
        return [problem for file in self.files for problem in _problems(file)]

    # --- contract facts ------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """Every call with a `method: .<name>` and a literal `path: "…"` argument, in file order."""
        found = []
        for file in self.files:
            for call in _descendants(file.root, "call_expression"):
                arguments = _labelled_arguments(call)
                method, path = arguments.get("method"), arguments.get("path")
                if method is None or path is None or method.type != "prefix_expression":
                    continue
                literal = string_literal_value(path)
                if literal is None:
                    continue
                name = _text(method).lstrip(".").strip()
                found.append(Endpoint(name.upper(), literal, _where(file, call)))
        return found

    def string_enums(self) -> dict[str, dict[str, str]]:
        """Every String-backed enum (`enum X: String, …`, by nested name) → {case: raw value}.
        A case without an explicit value maps to its name, as in Swift."""
        enums: dict[str, dict[str, str]] = {}
        for file in self.files:
            for qualified, declaration in _type_declarations(file.root, ()):
                is_enum = _declaration_kind(declaration) == "enum"
                if not is_enum or "String" not in _inherits(declaration):
                    continue
                body = _first_child(declaration, "enum_class_body")
                cases = enums.setdefault(".".join(qualified), {})
                for entry in body.children if body is not None else []:
                    if entry.type == "enum_entry":
                        cases.update(_enum_entry_values(entry))
        return enums

    def coding_keys(self) -> dict[str, dict[str, str]]:
        """Codable type (nested name) → {Swift property: JSON key}, from its `CodingKeys` enum."""
        return {
            name.removesuffix(".CodingKeys"): cases
            for name, cases in self.string_enums().items()
            if name.endswith(".CodingKeys")
        }

    def type_names(self) -> set[str]:
        """Every type declared (or extended) in these sources, by nested name."""
        return {
            ".".join(qualified)
            for file in self.files
            for qualified, _ in _type_declarations(file.root, ())
            if qualified
        }

    def resolve_type(self, scope: str, name: str) -> str | None:
        """What `name`, written inside type `scope`, refers to among the declared types: the
        innermost enclosing scope that declares it wins (`SyncResult` in `StravaStatus.Sync` is
        `StravaStatus.SyncResult`). None for a type declared elsewhere (`String`, `Date`)."""
        declared = self.type_names()
        parts = scope.split(".") if scope else []
        for depth in range(len(parts), -1, -1):
            candidate = ".".join((*parts[:depth], name))
            if candidate in declared:
                return candidate
        return None

    def stored_properties(self) -> dict[str, dict[str, TypeRef]]:
        """Type (nested name) → {property: declared type} for every stored property with a type
        annotation directly in the type's body; `static` and computed properties are left out."""
        found: dict[str, dict[str, TypeRef]] = {}
        for file in self.files:
            for qualified, declaration in _type_declarations(file.root, ()):
                for body in declaration.children:
                    if body.type not in _TYPE_BODIES:
                        continue
                    for child in body.children:
                        if child.type == "property_declaration":
                            properties = _stored_properties(child)
                            if properties:
                                found.setdefault(".".join(qualified), {}).update(properties)
        return found

    def json_keys(self, type_name: str) -> set[str]:
        """The JSON keys of one Codable type; KeyError when it has no `CodingKeys`."""
        return set(self.coding_keys()[type_name].values())

    def switch_case_literals(self, function: str = ERROR_MAPPING_FUNCTION) -> list[str]:
        """The string literals of the `case` patterns of every switch in `function`
        ("Type.method", nested names allowed), in source order, duplicates kept."""
        declarations = self.functions(function)
        if not declarations:
            raise LookupError(f"no function {function} in {[f.name for f in self.files]}")
        literals = []
        for declaration in declarations:
            for switch in _descendants(declaration, "switch_statement"):
                for pattern in _descendants(switch, "switch_pattern"):
                    for literal in _descendants(pattern, "line_string_literal"):
                        value = string_literal_value(literal)
                        if value is not None:
                            literals.append(value)
        return literals

    def log_interpolations(self) -> list[LogInterpolation]:
        """Every `\\(…)` in the string literals passed to `<something>logger.<level>(…)` calls."""
        found = []
        for file in self.files:
            for call in _descendants(file.root, "call_expression"):
                callee = call.children[0] if call.children else None
                if callee is None or callee.type != "navigation_expression":
                    continue
                receiver, _, level = _text(callee).rpartition(".")
                if not receiver.lower().endswith("logger") or level not in _LOG_LEVELS:
                    continue
                for literal in _descendants(call, "line_string_literal"):
                    for expression, options in _interpolations(literal):
                        found.append(
                            LogInterpolation(
                                expression=expression,
                                privacy=options.get("privacy"),
                                where=_where(file, literal),
                            )
                        )
        return found

    def calls(self) -> list[tuple[str, str]]:
        """(callee source text, location) of every call, e.g. ("print", "Services/X.swift:12")."""
        return [
            (_text(call.children[0]).strip(), _where(file, call))
            for file in self.files
            for call in _descendants(file.root, "call_expression")
            if call.children
        ]

    def imports(self) -> list[Import]:
        """Every top-level `import`, with the compiler conditions (`#if …`) it sits under."""
        found = []
        for file in self.files:
            conditions: list[str] = []
            for child in file.root.children:
                if child.type == "directive":
                    text = " ".join(_text(child).split())
                    if text.startswith("#if"):
                        conditions.append(text)
                    elif text.startswith(("#elseif", "#else")) and conditions:
                        conditions[-1] = f"{conditions[-1]} {text}"
                    elif text.startswith("#endif") and conditions:
                        conditions.pop()
                elif child.type == "import_declaration":
                    module = _first_child(child, "identifier")
                    name = _text(module).strip() if module is not None else _text(child)
                    found.append(Import(name, tuple(conditions), _where(file, child)))
        return found

    def functions(self, qualified_name: str) -> list[Node]:
        """The declarations of `qualified_name` ("Type.method"; overloads all count)."""
        found = []
        for file in self.files:
            for scope, node in _function_declarations(file.root):
                name = node.child_by_field_name("name")
                if name is not None and ".".join((*scope, _text(name))) == qualified_name:
                    found.append(node)
        return found


def swift_files(root: Path = IOS_ROOT) -> list[Path]:
    """The .swift files under `root`, build output excluded."""
    return sorted(
        path
        for path in root.rglob("*.swift")
        if not any(part in {".build", ".swiftpm", "DerivedData"} for part in path.parts)
    )


def string_literal_value(node: Node) -> str | None:
    """The value of a plain single-line string literal; None for anything else (interpolation,
    raw or multi-line strings, or not a string at all)."""
    if node.type != "line_string_literal":
        return None
    parts = []
    for child in node.children:
        if child.type == '"':
            continue
        if child.type == "line_str_text":
            parts.append(_text(child))
        elif child.type == "str_escaped_char":
            parts.append(_unescape(_text(child)))
        else:  # interpolation
            return None
    return "".join(parts)


# --- tree walking ---------------------------------------------------------------------------------


def _text(node: Node) -> str:
    return (node.text or b"").decode()


def _display_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _where(file: SwiftFile, node: Node) -> str:
    return f"{file.name}:{node.start_point[0] + 1}"


def _descendants(node: Node, node_type: str) -> Iterator[Node]:
    for child in node.children:
        if child.type == node_type:
            yield child
        yield from _descendants(child, node_type)


def _first_child(node: Node, node_type: str) -> Node | None:
    return next((child for child in node.children if child.type == node_type), None)


def _problems(file: SwiftFile) -> Iterator[ParseProblem]:
    def walk(node: Node) -> Iterator[ParseProblem]:
        if node.is_error or node.is_missing:
            line, column = node.start_point
            kind = f"MISSING {node.type}" if node.is_missing else "ERROR"
            yield ParseProblem(file.name, line + 1, column + 1, kind, _text(node)[:60])
            if node.is_missing:
                return
        if node.has_error:
            for child in node.children:
                yield from walk(child)

    return walk(file.root)


def _declaration_kind(declaration: Node) -> str:
    """`struct`, `class`, `enum`, `actor` or `extension` for a `class_declaration`."""
    kind = declaration.child_by_field_name("declaration_kind")
    if kind is not None:
        return kind.type
    keywords = {"struct", "class", "enum", "actor", "extension"}
    return next((child.type for child in declaration.children if child.type in keywords), "")


def _type_name(declaration: Node) -> tuple[str, ...]:
    name = declaration.child_by_field_name("name")
    if name is None:
        return ()
    # `extension StravaStatus.StatusError` names a nested type with a dotted user_type.
    return tuple(part for part in _text(name).replace(" ", "").split(".") if part)


_TYPE_BODIES = {"class_body", "enum_class_body", "protocol_body"}
# A declaration with the nested name of the type it is in (or is): (("StravaStatus", "Sync"), node).
Scoped = tuple[tuple[str, ...], Node]


def _type_declarations(node: Node, scope: tuple[str, ...]) -> Iterator[Scoped]:
    """Every type declaration (and extension) under `node`, with its nested name."""
    for child in node.children:
        if child.type == "class_declaration":
            own = _type_name(child)
            # An extension names its type from the top (extensions are top-level in Swift).
            qualified = own if _declaration_kind(child) == "extension" else (*scope, *own)
            yield qualified, child
            for body in child.children:
                if body.type in _TYPE_BODIES:
                    yield from _type_declarations(body, qualified)
        elif child.type not in {"function_declaration", "lambda_literal"}:
            yield from _type_declarations(child, scope)


def _function_declarations(root: Node) -> Iterator[Scoped]:
    """Every function declared at top level or directly in a type, with the type's name."""
    for child in root.children:
        if child.type == "function_declaration":
            yield (), child
    for qualified, declaration in _type_declarations(root, ()):
        for body in declaration.children:
            if body.type in _TYPE_BODIES:
                for child in body.children:
                    if child.type == "function_declaration":
                        yield qualified, child


def _labelled_arguments(call: Node) -> dict[str, Node]:
    """`f(a: x, b: y)` → {"a": x, "b": y}; unlabelled arguments are left out."""
    suffix = _first_child(call, "call_suffix")
    arguments = _first_child(suffix, "value_arguments") if suffix is not None else None
    if arguments is None:
        return {}
    labelled = {}
    for argument in arguments.children:
        if argument.type != "value_argument":
            continue
        label = argument.child_by_field_name("name")
        value = argument.child_by_field_name("value")
        if label is not None and value is not None:
            labelled[_text(label).strip()] = value
    return labelled


def _enum_entry_values(entry: Node) -> dict[str, str]:
    """`case a = "x", b` → {"a": "x", "b": "b"}: names and raw values alternate in the entry."""
    values: dict[str, str] = {}
    current: str | None = None
    for index, child in enumerate(entry.children):
        field_name = entry.field_name_for_child(index)
        if field_name == "name":
            current = _text(child)
            values[current] = current
        elif field_name == "raw_value" and current is not None:
            literal = string_literal_value(child)
            if literal is None:
                values.pop(current)
            else:
                values[current] = literal
    return values


def _stored_properties(declaration: Node) -> dict[str, TypeRef]:
    """`var a: Int, b: String?` → {"a": Int, "b": String?}; {} for static or computed ones."""
    modifiers = _first_child(declaration, "modifiers")
    if modifiers is not None and "static" in _text(modifiers).split():
        return {}
    if declaration.child_by_field_name("computed_value") is not None:
        return {}
    properties: dict[str, TypeRef] = {}
    name: str | None = None
    for child in declaration.children:
        if child.type == "pattern":
            bound = child.child_by_field_name("bound_identifier")
            name = _text(bound if bound is not None else child).strip()
        elif child.type == "type_annotation" and name is not None:
            declared = child.child_by_field_name("name")
            if declared is not None:
                properties[name] = _type_ref(declared)
            name = None
    return properties


def _type_ref(node: Node) -> TypeRef:
    """The TypeRef of a type node: `T`, `T?`, `Optional<T>`, `[T]`, `[T?]?`."""
    optional = False
    if node.type == "optional_type":
        wrapped = node.child_by_field_name("wrapped")
        optional, node = True, wrapped if wrapped is not None else node.children[0]
    elif node.type == "user_type" and _first_child(node, "type_arguments") is not None:
        head = _first_child(node, "type_identifier")
        arguments = _first_child(node, "type_arguments")
        inner = [child for child in arguments.children if child.is_named] if arguments else []
        if head is not None and _text(head) == "Optional" and len(inner) == 1:
            optional, node = True, inner[0]
    if node.type == "array_type":
        element = node.child_by_field_name("name")
        if element is not None:
            inner_ref = _type_ref(element)
            if not inner_ref.array:
                return TypeRef(inner_ref.name, optional, True, inner_ref.optional)
    return TypeRef(" ".join(_text(node).split()), optional)


def _inherits(declaration: Node) -> list[str]:
    """`enum X: String, CodingKey` → ["String", "CodingKey"]."""
    return [
        _text(child).strip()
        for child in declaration.children
        if child.type == "inheritance_specifier"
    ]


def _interpolations(literal: Node) -> Iterator[tuple[str, dict[str, str]]]:
    """`"a \\(x, privacy: .public) b"` → ("x", {"privacy": ".public"}), one per `\\(…)`."""
    group: list[Node] | None = None
    for child in literal.children:
        if child.type == "\\(":
            group = []
        elif child.type == ")" and group is not None:
            if group:
                options = {}
                for option in group[1:]:
                    label = _first_child(option, "value_argument_label")
                    if label is not None and option.children:
                        options[_text(label).strip()] = _text(option.children[-1]).strip()
                yield _text(group[0]).strip(), options
            group = None
        elif child.type == "interpolated_expression" and group is not None:
            group.append(child)


def _unescape(escape: str) -> str:
    if escape.startswith("\\u{") and escape.endswith("}"):
        return chr(int(escape[3:-1], 16))
    return _ESCAPES.get(escape[1:], escape)
