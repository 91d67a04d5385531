"""The iOS client against the server: what the Swift sources use (swift_source.py) compared with
the server's own OpenAPI document, real error bodies and the error codes it can emit.

Every check returns a list of `Problem`s (empty: the two sides agree) instead of asserting, so
a test can run the same checker on a deliberately broken schema and see exactly what it reports.

What is compared (the server's document is the source of truth; no copy of it is kept here):

- endpoints: every `Endpoint(method:path:)` of the client is an operation in `paths`;
- documents: every JSON key of every Swift Codable type (its `CodingKeys`) is a property of the
  component schema the type stands for (`OPENAPI_SCHEMAS`), following `$ref`, `anyOf`/`oneOf`
  with null, `allOf` and `nullable`. The component is found by name, and must be what the client's
  endpoints actually use: request bodies for request types, responses for response types, and
  for nested types the component the parent's property refers to. Per key: a property the
  server may send as null or leave out is optional in Swift (response types); a property the
  server requires is never left out by Swift (request types), and every required property is
  sent; the Swift type fits the JSON type (`Date` is a `date-time` string, `UUID` a `uuid`);
- enums: each String-backed Swift enum decoded from a property has only values the server can
  send (the client-only `unknown` aside), and every value the server can send there is a case;
- the error body (`APIError`): against the server's `ErrorBody` component like any document, and
  also against real error responses (the error handler writes them, not the routes);
- error codes: the switch of `StravaErrorCatalog.presentation` handles exactly the contract's
  codes (docs/contract.md §3, the one hand-kept list: OpenAPI cannot say them) plus every code the server
  can emit beyond them, unless that code is listed in `SERVER_INTERNAL_CODES` with a reason.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .swift_source import ERROR_MAPPING_FUNCTION, OPENAPI_SCHEMAS, Endpoint, SwiftSources, TypeRef

# docs/contract.md §3: "HTTP errors and `StravaStatus.error.code` share one vocabulary". Not in OpenAPI.
CONTRACT_ERROR_CODES: tuple[str, ...] = (
    "unauthenticated",
    "invalid_request",
    "profile_required",
    "redirect_uri_not_allowed",
    "invalid_state",
    "state_expired",
    "pkce_mismatch",
    "access_denied",
    "insufficient_scope",
    "athlete_already_linked",
    "not_linked",
    "reauth_required",
    "revoked",
    "rate_limited",
    "strava_unavailable",
    "sync_failed",
    "key_unavailable",
    "sync_in_progress",
    "not_found",
)

# Codes the server can emit that the app deliberately does not map (it then shows the server's
# message with "try again"): code → why.
SERVER_INTERNAL_CODES: Mapping[str, str] = {
    "invalid_verify_token": "only Strava's webhook validation GET gets it, never the app",
}

# The client's own fallback case for enum values a newer server may add.
CLIENT_ONLY_ENUM_VALUES = frozenset({"unknown"})

# The Swift type of every error body; checked against real error responses.
ERROR_TYPE = "APIError"

# Swift types the JSON decoder reads from a JSON scalar: the JSON types that fit, and the
# `format` the server's schema must declare (None: any).
SWIFT_SCALARS: Mapping[str, tuple[frozenset[str], str | None]] = {
    "String": (frozenset({"string"}), None),
    "Int": (frozenset({"integer"}), None),
    "Int64": (frozenset({"integer"}), None),
    "Double": (frozenset({"number", "integer"}), None),
    "Bool": (frozenset({"boolean"}), None),
    "URL": (frozenset({"string"}), None),
    "Date": (frozenset({"string"}), "date-time"),
    "UUID": (frozenset({"string"}), "uuid"),
}

REQUEST = "request"
RESPONSE = "response"


@dataclass(frozen=True, order=True)
class Problem:
    """One disagreement: `subject` is a Swift type, enum, endpoint or function; `item` the JSON
    key, enum value or error code concerned ("" for the subject as a whole)."""

    subject: str
    item: str
    message: str

    def __str__(self) -> str:
        where = f"{self.subject} {self.item!r}" if self.item else self.subject
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class JsonField:
    """One JSON key of a Codable type: the Swift property it codes, that property's declared type
    (None when the type has no stored property of that name) and the Swift type the declared
    name resolves to among the sources (None for `String`, `Date`, …)."""

    property: str
    type: TypeRef | None
    declared: str | None


@dataclass(frozen=True)
class ClientContract:
    """What the Swift sources use, as read by swift_source.py."""

    endpoints: tuple[Endpoint, ...]
    documents: Mapping[str, Mapping[str, JsonField]]
    enums: Mapping[str, frozenset[str]]
    error_mapping: tuple[str, ...]

    @classmethod
    def from_sources(cls, sources: SwiftSources) -> ClientContract:
        properties = sources.stored_properties()
        documents: dict[str, dict[str, JsonField]] = {}
        for type_name, cases in sources.coding_keys().items():
            fields = {}
            for swift_property, key in cases.items():
                ref = properties.get(type_name, {}).get(swift_property)
                declared = sources.resolve_type(type_name, ref.name) if ref is not None else None
                fields[key] = JsonField(swift_property, ref, declared)
            documents[type_name] = fields
        enums = {
            name: frozenset(values.values())
            for name, values in sources.string_enums().items()
            if not name.endswith(".CodingKeys")
        }
        return cls(
            endpoints=tuple(sources.endpoints()),
            documents=documents,
            enums=enums,
            error_mapping=tuple(sources.switch_case_literals(ERROR_MAPPING_FUNCTION)),
        )


# --- OpenAPI --------------------------------------------------------------------------------------

_REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class Resolved:
    """A schema with references and null alternatives taken away: `nullable` if null is allowed,
    `component` the last component reached through `$ref` (None for an inline schema)."""

    schema: Mapping[str, Any]
    nullable: bool
    component: str | None

    @property
    def types(self) -> frozenset[str]:
        declared = self.schema.get("type")
        if isinstance(declared, list):
            return frozenset(str(item) for item in declared) - {"null"}
        return frozenset({declared}) if isinstance(declared, str) else frozenset()

    @property
    def enum(self) -> frozenset[str] | None:
        if "enum" in self.schema:
            return frozenset(str(value) for value in self.schema["enum"] if value is not None)
        if "const" in self.schema:
            return frozenset({str(self.schema["const"])})
        return None


def components(openapi: Mapping[str, Any]) -> Mapping[str, Any]:
    found: Mapping[str, Any] = openapi.get("components", {}).get("schemas", {})
    return found


def resolve(openapi: Mapping[str, Any], schema: Mapping[str, Any]) -> Resolved:
    """Follow `$ref`, unwrap `anyOf`/`oneOf` [X, null] and single-item `allOf`, note null."""
    nullable = bool(schema.get("nullable"))
    component = None
    for _ in range(32):  # more would be a reference cycle
        if "$ref" in schema:
            reference = str(schema["$ref"])
            component = reference.removeprefix(_REF_PREFIX)
            schema = components(openapi).get(component, {})
        elif "anyOf" in schema or "oneOf" in schema:
            options = list(schema.get("anyOf", schema.get("oneOf", [])))
            concrete = [option for option in options if option.get("type") != "null"]
            nullable = nullable or len(concrete) < len(options)
            if len(concrete) != 1:
                break
            schema = concrete[0]
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            break
        nullable = nullable or bool(schema.get("nullable"))
    declared = schema.get("type")
    if isinstance(declared, list) and "null" in declared:
        nullable = True
    return Resolved(schema, nullable, component)


def _operation(openapi: Mapping[str, Any], endpoint: Endpoint) -> Mapping[str, Any] | None:
    operation: Mapping[str, Any] | None = (
        openapi.get("paths", {}).get(endpoint.path, {}).get(endpoint.method.lower())
    )
    return operation


def _json_schema(container: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    content = (container or {}).get("content", {})
    found: Mapping[str, Any] | None = content.get("application/json", {}).get("schema")
    return found


def endpoint_components(
    openapi: Mapping[str, Any], endpoints: Iterable[Endpoint]
) -> dict[str, set[str]]:
    """Role (request/response) → the components the client's endpoints send and answer with."""
    used: dict[str, set[str]] = {REQUEST: set(), RESPONSE: set()}
    for endpoint in endpoints:
        operation = _operation(openapi, endpoint)
        if operation is None:
            continue
        schemas = [(REQUEST, _json_schema(operation.get("requestBody")))]
        schemas += [(RESPONSE, _json_schema(r)) for r in operation.get("responses", {}).values()]
        for role, schema in schemas:
            if schema is not None:
                component = resolve(openapi, schema).component
                if component is not None:
                    used[role].add(component)
    return used


# --- the checks -----------------------------------------------------------------------------------


def check_endpoints(openapi: Mapping[str, Any], endpoints: Sequence[Endpoint]) -> list[Problem]:
    problems = []
    seen: set[Endpoint] = set()
    paths = openapi.get("paths", {})
    for endpoint in endpoints:
        subject = f"{endpoint.method} {endpoint.path}"
        if endpoint in seen:
            problems.append(Problem(subject, "", f"declared twice ({endpoint.where})"))
        seen.add(endpoint)
        if _operation(openapi, endpoint) is None:
            methods = sorted(method.upper() for method in paths.get(endpoint.path, {}))
            known = f"the server has {', '.join(methods)} there" if methods else "no such path"
            problems.append(
                Problem(subject, "", f"not in the server's OpenAPI ({known}; {endpoint.where})")
            )
    return problems


@dataclass
class _DocumentCheck:
    openapi: Mapping[str, Any]
    client: ClientContract
    schema_names: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)
    visited: set[tuple[str, str]] = field(default_factory=set)
    # Swift enum → [(where on the server, the values the server can send there)]
    enum_uses: dict[str, list[tuple[str, frozenset[str]]]] = field(default_factory=dict)

    def report(self, subject: str, item: str, message: str) -> None:
        self.problems.append(Problem(subject, item, message))

    def document(self, swift: str, component: str, role: str) -> None:
        if (swift, role) in self.visited:
            return
        self.visited.add((swift, role))
        schema = components(self.openapi).get(component)
        if schema is None:
            self.report(swift, "", f"the server's OpenAPI has no schema {component}")
            return
        resolved = resolve(self.openapi, schema).schema
        properties: Mapping[str, Any] = resolved.get("properties", {})
        required = set(resolved.get("required", []))
        fields = self.client.documents.get(swift, {})
        for key, swift_field in sorted(fields.items()):
            if key not in properties:
                self.report(
                    swift,
                    key,
                    f"not a property of the server's {component} ({role}); "
                    f"it has {', '.join(sorted(properties))}",
                )
                continue
            self.field(swift, component, key, swift_field, properties[key], key in required, role)
        if role == REQUEST:
            for key in sorted(required - set(fields)):
                self.report(
                    swift, key, f"the server's {component} requires it; Swift never sends it"
                )

    def field(
        self,
        swift: str,
        component: str,
        key: str,
        swift_field: JsonField,
        raw: Mapping[str, Any],
        required: bool,
        role: str,
    ) -> None:
        ref = swift_field.type
        if ref is None:
            self.report(swift, key, f"no stored property {swift_field.property} for this key")
            return
        resolved = resolve(self.openapi, raw)
        declaration = f"`{swift_field.property}: {ref}`"
        if role == RESPONSE and not ref.optional and (resolved.nullable or not required):
            absent = "null" if resolved.nullable else "left out"
            self.report(
                swift,
                key,
                f"the server's {component} may send it {absent}, but {declaration} "
                "is not optional (decoding would fail)",
            )
        if role == REQUEST and ref.optional and required:
            self.report(
                swift,
                key,
                f"the server's {component} requires it, but {declaration} is "
                "optional (nil is left out of the JSON)",
            )
        where = f"{component}.{key}"
        if ref.array:
            if "array" not in resolved.types:
                self.report(swift, key, f"{declaration} is an array; the server's {where} is not")
                return
            element = resolve(self.openapi, resolved.schema.get("items", {}))
            if role == RESPONSE and element.nullable and not ref.element_optional:
                self.report(swift, key, f"the server's {where} may hold nulls; {declaration} not")
            self.value(swift, key, ref.name, swift_field.declared, element, where, role)
        else:
            self.value(swift, key, ref.name, swift_field.declared, resolved, where, role)

    def value(
        self,
        swift: str,
        key: str,
        name: str,
        declared: str | None,
        resolved: Resolved,
        where: str,
        role: str,
    ) -> None:
        if declared is not None and declared in self.client.documents:
            expected = self.schema_names.get(declared)
            if expected is None:
                return  # reported once by check_documents
            if resolved.component != expected:
                self.report(
                    swift,
                    key,
                    f"Swift decodes it as {declared}, checked against {expected}, "
                    f"but the server's {where} is {resolved.component or 'an inline schema'}",
                )
            else:
                self.document(declared, expected, role)
        elif declared is not None and declared in self.client.enums:
            values = resolved.enum
            if values is None or (resolved.types and "string" not in resolved.types):
                self.report(swift, key, f"Swift enum {declared}; the server's {where} has no enum")
            else:
                self.enum_uses.setdefault(declared, []).append((where, values))
        elif name in SWIFT_SCALARS:
            json_types, json_format = SWIFT_SCALARS[name]
            if not resolved.types & json_types:
                found = "/".join(sorted(resolved.types)) or "untyped"
                self.report(swift, key, f"Swift {name}; the server's {where} is {found}")
            elif json_format is not None and resolved.schema.get("format") != json_format:
                self.report(
                    swift,
                    key,
                    f"Swift {name} needs format {json_format}; the server's {where} "
                    f"has {resolved.schema.get('format') or 'none'}",
                )
        else:
            self.report(swift, key, f"cannot compare Swift type {name} with a JSON schema")

    def enums(self) -> None:
        for name, uses in sorted(self.enum_uses.items()):
            cases = self.client.enums[name]
            sendable = frozenset().union(*(values for _, values in uses))
            where = ", ".join(sorted(place for place, _ in uses))
            for value in sorted(cases - CLIENT_ONLY_ENUM_VALUES - sendable):
                self.report(name, value, f"the server never sends it ({where})")
            for place, values in uses:
                for value in sorted(values - cases):
                    self.report(
                        name,
                        value,
                        f"the server's {place} can send it; Swift has no case for it "
                        "(it would decode as .unknown)",
                    )


def check_documents(
    openapi: Mapping[str, Any],
    client: ClientContract,
    schema_names: Mapping[str, str] = OPENAPI_SCHEMAS,
) -> list[Problem]:
    """Every Codable type against its component schema, and the enums they decode."""
    check = _DocumentCheck(openapi, client, schema_names)
    for swift in sorted(client.documents):
        if swift not in schema_names and swift != ERROR_TYPE:
            check.report(swift, "", "has CodingKeys but no server schema in OPENAPI_SCHEMAS")
    used = endpoint_components(openapi, client.endpoints)
    for swift, component in sorted(schema_names.items()):
        if swift not in client.documents:
            check.report(swift, "", "in OPENAPI_SCHEMAS but has no CodingKeys in the Swift sources")
            continue
        for role in (REQUEST, RESPONSE):
            if component in used[role]:
                check.document(swift, component, role)
    # What no endpoint uses directly must have been reached through a parent's property.
    for swift, component in sorted(schema_names.items()):
        if swift in client.documents and not any(name == swift for name, _ in check.visited):
            check.report(
                swift,
                "",
                f"{component} is not used by any endpoint the client calls, "
                "nor by a property of a document they use",
            )
    check.enums()
    return check.problems


def check_error_bodies(
    client: ClientContract, bodies: Sequence[Mapping[str, Any]], error_type: str = ERROR_TYPE
) -> list[Problem]:
    """The Swift error type against real error responses of the server."""
    fields = client.documents.get(error_type)
    if fields is None:
        return [Problem(error_type, "", "no CodingKeys in the Swift sources")]
    if not bodies:
        return [Problem(error_type, "", "no real error body to compare with")]
    problems = []
    for body in bodies:
        code = body.get("error", "?")
        for key, swift_field in sorted(fields.items()):
            ref = swift_field.type
            optional = ref is not None and ref.optional
            if key not in body or body[key] is None:
                if not optional:
                    problems.append(Problem(error_type, key, f"missing from a real {code} body"))
                continue
            json_type = _json_type(body[key])
            expected = SWIFT_SCALARS.get(ref.name if ref is not None else "", (frozenset(), None))
            if ref is None or ref.array or json_type not in expected[0]:
                problems.append(
                    Problem(error_type, key, f"Swift {ref}; a real {code} body has a {json_type}")
                )
    return problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def check_contract(
    openapi: Mapping[str, Any],
    client: ClientContract,
    error_bodies: Sequence[Mapping[str, Any]],
    schema_names: Mapping[str, str] = OPENAPI_SCHEMAS,
) -> list[Problem]:
    """Endpoints, documents, enums and the error body: every problem found, sorted."""
    return sorted(
        check_endpoints(openapi, client.endpoints)
        + check_documents(openapi, client, schema_names)
        + check_error_bodies(client, error_bodies)
    )


# --- error codes ----------------------------------------------------------------------------------


def server_error_codes() -> dict[str, str]:
    """Every error code the server can put in an error body or a status document → where it comes
    from: the `code` of every `AppError` subclass (all modules of `app` imported, so subclasses
    anywhere count) and the codes the status document explains (`ERROR_ACTIONS`)."""
    import app
    from app.errors import AppError

    for module in pkgutil.walk_packages(app.__path__, "app."):
        importlib.import_module(module.name)
    from app.strava.service import ERROR_ACTIONS

    codes: dict[str, str] = {}
    pending: list[type[AppError]] = [AppError]
    while pending:
        cls = pending.pop()
        codes.setdefault(cls.code, f"{cls.__module__}.{cls.__qualname__}")
        pending.extend(cls.__subclasses__())
    for code in ERROR_ACTIONS:
        codes.setdefault(code, "app.strava.service.ERROR_ACTIONS")
    return codes


def check_error_codes(
    mapped: Sequence[str],
    contract: Sequence[str] = CONTRACT_ERROR_CODES,
    server: Mapping[str, str] | None = None,
    internal: Mapping[str, str] = SERVER_INTERNAL_CODES,
) -> list[Problem]:
    """The error-mapping switch handles exactly the contract's codes and the server's others,
    less the server-internal ones (each with a reason)."""
    server = server_error_codes() if server is None else server
    subject = ERROR_MAPPING_FUNCTION
    handled = set(mapped)
    problems = [
        Problem(subject, code, "handled twice")
        for code in sorted(handled)
        if list(mapped).count(code) > 1
    ]
    for code in sorted(set(contract) - handled):
        problems.append(Problem(subject, code, "a contract code (docs/contract.md §3) is not handled"))
    for code in sorted(set(server) - handled - set(internal) - set(contract)):
        problems.append(
            Problem(
                subject,
                code,
                f"the server emits it ({server[code]}) but the switch does not "
                "handle it: add a case, or list it in SERVER_INTERNAL_CODES with a reason",
            )
        )
    for code in sorted(handled - set(contract) - set(server)):
        problems.append(Problem(subject, code, "neither the contract nor the server has it"))
    for code, reason in sorted(internal.items()):
        if code in handled or code in contract:
            problems.append(Problem(subject, code, "listed as server-internal but handled"))
        if code not in server:
            problems.append(Problem(subject, code, "listed as server-internal; server lacks it"))
        if not reason.strip():
            problems.append(Problem(subject, code, "listed as server-internal without a reason"))
    return problems
