"""The HTTP contract is unchanged by refactors: every path, method, field and error code of
the recorded baseline (tests/contract/openapi-v1.json) is still in the live schema; additions
are fine."""

from __future__ import annotations

import json

from contract.openapi_diff import BASELINE, live_schema, missing_or_changed


def test_live_openapi_keeps_every_path_field_and_error_code_of_the_baseline() -> None:
    baseline = json.loads(BASELINE.read_text())

    assert missing_or_changed(baseline, live_schema()) == []


def test_the_baseline_check_notices_a_removed_field() -> None:
    baseline = json.loads(BASELINE.read_text())
    live = live_schema()
    del live["components"]["schemas"]["StravaStatus"]["properties"]["scopes"]

    assert missing_or_changed(baseline, live) == [
        "missing: /components/schemas/StravaStatus/properties/scopes"
    ]
