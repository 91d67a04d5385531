"""Linux-side checks of the iOS client (mobile/ios): no Swift toolchain, no server.

Every Swift file parses; the endpoints, JSON keys, enum values and error codes the client uses are
the contract's (design.md §3, written out below); the fixtures have the shape the Swift types
decode; Apple-only imports are guarded so `swift test` builds on Linux; nothing secret is logged.
Phase 2 compares the same extractions with the server's OpenAPI document instead of this copy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .swift_source import (
    ERROR_MAPPING_FUNCTION,
    FIXTURE_TYPES,
    FIXTURES_DIR,
    IOS_ROOT,
    OPENAPI_SCHEMAS,
    Endpoint,
    SwiftSources,
    swift_files,
)

# --- design.md §3, as the client must use it -----------------------------------------------------

CONTRACT_ENDPOINTS = {
    Endpoint("POST", "/api/v1/strava/link-token"),
    Endpoint("POST", "/api/v1/strava/callback"),
    Endpoint("GET", "/api/v1/strava/status"),
    Endpoint("POST", "/api/v1/strava/sync"),
    Endpoint("DELETE", "/api/v1/strava/link"),
}

CONTRACT_KEYS = {
    "LinkTokenRequest": {"code_challenge", "code_challenge_method", "redirect_uri"},
    "LinkTokenResponse": {"state", "authorize_url", "redirect_uri", "expires_at"},
    "CallbackRequest": {"state", "code", "scope", "code_verifier", "error"},
    "StravaStatus": {"status", "athlete", "scopes", "linked_at", "sync", "error"},
    "StravaStatus.Athlete": {"id", "firstname", "lastname"},
    "StravaStatus.Sync": {
        "state",
        "last_sync_at",
        "last_success_at",
        "last_result",
        "next_sync_at",
        "workouts_in_window",
    },
    "StravaStatus.StatusError": {"code", "message", "action", "retry_at"},
    "SyncQueuedResponse": {"sync_run_id", "state"},
    "APIError": {"error", "message"},
}

CONTRACT_ENUMS = {
    "StravaStatus.LinkStatus": {"not_linked", "linked", "action_required"},
    "SyncState": {"idle", "queued", "running"},
    "StravaStatus.SyncResult": {"ok", "partial", "failed"},
    "StravaStatus.ServerAction": {"reconnect", "wait", "retry", "none"},
}
# The client's own fallback for values a newer server may add.
CLIENT_ONLY_ENUM_VALUES = {"unknown"}

CONTRACT_ERROR_CODES = [
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
]

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


# --- the contract as the client uses it ----------------------------------------------------------


def test_endpoints_are_the_contracts(app_sources: SwiftSources) -> None:
    endpoints = app_sources.endpoints()
    assert set(endpoints) == CONTRACT_ENDPOINTS
    assert len(endpoints) == len(CONTRACT_ENDPOINTS), "an endpoint is declared twice"
    callback = next(e for e in endpoints if e.path == "/api/v1/strava/callback")
    assert callback.method == "POST"
    assert callback.where.startswith("Services/StravaLinkService.swift:")


def test_coding_keys_are_the_contracts_json_keys(app_sources: SwiftSources) -> None:
    keys = {name: set(cases.values()) for name, cases in app_sources.coding_keys().items()}
    assert keys == CONTRACT_KEYS
    assert app_sources.coding_keys()["CallbackRequest"]["codeVerifier"] == "code_verifier"


def test_status_enums_cover_the_contracts_values(app_sources: SwiftSources) -> None:
    enums = app_sources.string_enums()
    for name, values in CONTRACT_ENUMS.items():
        assert set(enums[name].values()) - CLIENT_ONLY_ENUM_VALUES == values, name


# Codes the server emits beyond design.md §3: a 503 with Retry-After while its queue or database
# is down.
SERVER_ONLY_ERROR_CODES = ["service_unavailable"]


def test_error_mapping_switch_has_exactly_the_contracts_codes(app_sources: SwiftSources) -> None:
    literals = app_sources.switch_case_literals(ERROR_MAPPING_FUNCTION)
    assert sorted(literals) == sorted(CONTRACT_ERROR_CODES + SERVER_ONLY_ERROR_CODES)
    assert len(literals) == len(set(literals)), "a code is mapped twice"


def test_phase_two_names_exist_in_the_sources(app_sources: SwiftSources) -> None:
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
def test_fixture_has_the_shape_the_swift_type_decodes(name: str, app_sources: SwiftSources) -> None:
    document = json.loads((FIXTURES_DIR / f"{name}.json").read_text())
    for type_name, part in _nested_documents(FIXTURE_TYPES[name], document):
        assert set(part) == app_sources.json_keys(type_name), f"{name}: {type_name}"


def test_status_fixtures_cover_the_three_states() -> None:
    states = {
        json.loads((FIXTURES_DIR / f"{name}.json").read_text())["status"]
        for name, type_name in FIXTURE_TYPES.items()
        if type_name == "StravaStatus"
    }
    assert states == CONTRACT_ENUMS["StravaStatus.LinkStatus"]


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
