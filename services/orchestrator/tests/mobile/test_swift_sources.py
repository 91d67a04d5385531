"""Linux-side checks of the iOS client (mobile/ios) that need neither a Swift toolchain nor a
server: every Swift file parses; the fixtures have the keys the Swift types decode; Apple-only
imports are guarded so `swift test` builds on Linux; nothing secret is logged; the extractor
itself reads what it should. The client is compared with the server in test_contract_live.py
(the live OpenAPI document) and test_fixtures_from_server.py (real responses).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .swift_source import (
    FIXTURE_TYPES,
    FIXTURES_DIR,
    IOS_ROOT,
    OPENAPI_SCHEMAS,
    SwiftSources,
    TypeRef,
    swift_files,
)

# The files the seed story names, plus the package manifest.
SEED_FILES = [
    "Services/StravaLinkService.swift",
    "Features/Onboarding/ConnectStravaStep.swift",
    "Tests/StravaLinkTests.swift",
    "Package.swift",
]


@pytest.fixture(scope="module")
def app_sources() -> SwiftSources:
    return SwiftSources.app()


# --- every file parses ---------------------------------------------------------------------------


def test_the_seed_files_exist() -> None:
    for name in SEED_FILES:
        assert (IOS_ROOT / name).is_file(), name


@pytest.mark.parametrize(
    "path", swift_files(), ids=lambda path: path.relative_to(IOS_ROOT).as_posix()
)
def test_swift_file_parses_without_error_or_missing_nodes(path: Path) -> None:
    problems = SwiftSources.from_paths([path]).parse_problems()
    assert not problems, "\n".join(str(problem) for problem in problems)


@pytest.mark.parametrize(
    "snippet",
    [
        pytest.param("struct A {\n    func f() {\n        let x = 1\n}\n", id="unclosed-brace"),
        pytest.param("let a = 1\nlet x = = 3\n", id="stray-operator"),
        pytest.param('let a = 1\nlet b = "unterminated\nlet c = 2\n', id="unterminated-string"),
        pytest.param("func f( {\n}\n", id="broken-parameter-list"),
        pytest.param("enum E: String {\n    case a = \n}\n", id="missing-raw-value"),
    ],
)
def test_broken_swift_is_reported(snippet: str) -> None:
    problems = SwiftSources.from_text(snippet, "broken.swift").parse_problems()
    assert problems, "the parse check would not catch this"
    # Reported where the parser noticed (an unclosed brace: at the end of the file).
    assert all(
        re.match(r"broken\.swift:\d+:\d+: (ERROR|MISSING \S+) near ", str(p)) for p in problems
    )


def test_well_formed_snippet_has_no_problems() -> None:
    snippet = """
    #if canImport(os)
    import os
    #endif
    @MainActor
    final class Model: ObservableObject {
        @Published private(set) var phase: Phase = .idle
        func run() async { if case let .failed(error) = phase { print(error) } }
    }
    """
    assert SwiftSources.from_text(snippet).parse_problems() == []


# --- names the contract checks rely on -------------------------------------------------------


def test_mapped_type_names_exist_in_the_sources(app_sources: SwiftSources) -> None:
    coding_keys = app_sources.coding_keys()
    assert set(OPENAPI_SCHEMAS) <= set(coding_keys)
    assert set(FIXTURE_TYPES.values()) <= set(coding_keys)


# --- fixtures ------------------------------------------------------------------------------------


def _nested_documents(type_name: str, document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The document and its non-null nested objects, each with its Swift type."""
    documents = [(type_name, document)]
    if type_name == "StravaStatus":
        for key, nested in (
            ("athlete", "StravaStatus.Athlete"),
            ("sync", "StravaStatus.Sync"),
            ("error", "StravaStatus.StatusError"),
        ):
            if document.get(key) is not None:
                documents.append((nested, document[key]))
    return documents


def test_every_fixture_is_known() -> None:
    names = {path.stem for path in FIXTURES_DIR.glob("*.json")}
    assert names == set(FIXTURE_TYPES)


@pytest.mark.parametrize("name", sorted(FIXTURE_TYPES))
def test_fixture_has_the_keys_the_swift_type_decodes(name: str, app_sources: SwiftSources) -> None:
    # Every key the Swift type decodes is there; the server may send more (fields are added
    # freely), so the fixtures, which are real responses, may hold more.
    document = json.loads((FIXTURES_DIR / f"{name}.json").read_text())
    for type_name, part in _nested_documents(FIXTURE_TYPES[name], document):
        missing = app_sources.json_keys(type_name) - set(part)
        assert not missing, f"{name}: {type_name} lacks {sorted(missing)}"


# --- builds on Linux, keeps secrets out of logs --------------------------------------------------


def test_apple_only_imports_in_the_package_are_guarded() -> None:
    services = SwiftSources.from_paths(swift_files(IOS_ROOT / "Services"))
    for found in services.imports():
        if found.module != "Foundation":
            assert any("canImport" in condition for condition in found.conditions), found


# Names whose values are secrets until the link is done (tokens, OAuth code and state, verifier,
# and URLs that carry them).
SECRET_WORDS = {"token", "code", "state", "verifier", "pkce", "url", "authorization", "callback"}


def test_logs_carry_only_public_non_secret_values(app_sources: SwiftSources) -> None:
    interpolations = app_sources.log_interpolations()
    assert interpolations, "expected the link code to log something"
    for item in interpolations:
        assert item.privacy is not None, f"{item.where}: {item.expression} has no privacy level"
        words = {word.lower() for word in re.findall(r"[A-Z]?[a-z]+", item.expression)}
        assert not words & SECRET_WORDS, f"{item.where}: logs {item.expression}"


def test_nothing_prints(app_sources: SwiftSources) -> None:
    printing = {"print", "debugPrint", "NSLog", "dump"}
    assert [call for call in app_sources.calls() if call[0] in printing] == []


# --- the extractor itself ------------------------------------------------------------------------


def test_extractor_reads_implicit_raw_values_nested_types_and_extensions() -> None:
    sources = SwiftSources.from_text(
        """
        struct Outer: Codable {
            enum CodingKeys: String, CodingKey { case plain, renamed = "re_named" }
            struct Inner: Codable {
                enum CodingKeys: String, CodingKey {
                    case a = "a_key"
                    case b = "b_key", c
                }
            }
        }
        extension Outer.Inner {
            enum Kind: String { case one = "uno" }
        }
        enum NotStringBacked { case x, y }
        """
    )
    assert sources.coding_keys() == {
        "Outer": {"plain": "plain", "renamed": "re_named"},
        "Outer.Inner": {"a": "a_key", "b": "b_key", "c": "c"},
    }
    assert sources.string_enums()["Outer.Inner.Kind"] == {"one": "uno"}
    assert "NotStringBacked" not in sources.string_enums()


def test_extractor_reads_stored_properties_and_resolves_type_names() -> None:
    sources = SwiftSources.from_text(
        """
        struct Outer: Codable {
            public var a: Int64
            private(set) var b: [Inner]?, c: Optional<Date>
            let d: [String?]
            static let shared = Outer()
            var computed: Bool { true }
            struct Inner: Codable { var kind: Kind }
            enum Kind: String { case one }
        }
        enum Kind: String { case other }
        """
    )
    properties = sources.stored_properties()
    assert properties["Outer"] == {
        "a": TypeRef("Int64"),
        "b": TypeRef("Inner", optional=True, array=True),
        "c": TypeRef("Date", optional=True),
        "d": TypeRef("String", array=True, element_optional=True),
    }
    assert str(properties["Outer"]["b"]) == "[Inner]?"
    assert properties["Outer.Inner"] == {"kind": TypeRef("Kind")}
    # The innermost declaration wins, as in Swift; types from elsewhere are not resolved.
    assert sources.resolve_type("Outer.Inner", "Kind") == "Outer.Kind"
    assert sources.resolve_type("Outer", "Inner") == "Outer.Inner"
    assert sources.resolve_type("", "Kind") == "Kind"
    assert sources.resolve_type("Outer", "String") is None


def test_extractor_reads_only_literal_endpoints() -> None:
    sources = SwiftSources.from_text(
        """
        let a = Endpoint(method: .post, path: "/api/v1/a")
        let b = Endpoint(method: .get, path: prefix + "/b")
        let c = Endpoint(method: .delete, path: "/api/\\(version)/c")
        let d = request(path: "/not/an/endpoint")
        """
    )
    assert [(e.method, e.path) for e in sources.endpoints()] == [("POST", "/api/v1/a")]


def test_extractor_reads_switch_case_literals_of_one_function() -> None:
    sources = SwiftSources.from_text(
        """
        enum Catalog {
            static func map(code: String) -> Int {
                switch code {
                case "a": return 1
                case "b", "c": return "not a case" == code ? 2 : 3
                default: return 0
                }
            }
            static func other(code: String) -> Int {
                switch code { case "z": return 9
                default: return 0 }
            }
        }
        """
    )
    assert sources.switch_case_literals("Catalog.map") == ["a", "b", "c"]
    assert sources.switch_case_literals("Catalog.other") == ["z"]
    with pytest.raises(LookupError):
        sources.switch_case_literals("Catalog.missing")


def test_extractor_reads_log_interpolations() -> None:
    sources = SwiftSources.from_text(
        """
        func f() {
            logger.info("sent \\(path, privacy: .public) with \\(token)")
            Self.logger.error("\\(value, privacy: .private(mask: .hash))")
            other.info("\\(ignored)")
        }
        """
    )
    found = [(item.expression, item.privacy) for item in sources.log_interpolations()]
    assert found == [
        ("path", ".public"),
        ("token", None),
        ("value", ".private(mask: .hash)"),
    ]
