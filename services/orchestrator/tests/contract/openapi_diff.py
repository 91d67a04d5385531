"""The HTTP contract's baseline: what `/openapi.json` promised before the layout work (issue 9).

`python -m contract.openapi_diff` (from services/orchestrator/tests) prints what the live schema
lost or changed against `openapi-v1.json`; `--write` records a new baseline. Additions are allowed
(later issues add fields), so only removals and changes are reported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

BASELINE = Path(__file__).with_name("openapi-v1.json")


def live_schema() -> dict[str, Any]:
    """The app's schema in sandbox mode; building it touches neither the database nor Strava."""
    os.environ.setdefault("TOKEN_ENCRYPTION_KEYS", "q1pEzX0JcDzLm1sXzUTPlTx2sAfE2F1sAlyo3qNQ_5U")
    from app.config import Settings
    from app.main import create_app

    settings = Settings(strava_client_id=None, redis_url=None)
    return create_app(settings, enqueue_sync=lambda _: None).openapi()


# Prose, not contract: docstrings become descriptions (and their citations moved to docs/).
PROSE_KEYS = frozenset({"description"})


def missing_or_changed(baseline: Any, live: Any, path: str = "") -> list[str]:
    """Every place where `live` drops or alters something `baseline` has (extra keys are fine;
    descriptions are prose and may be reworded)."""
    if isinstance(baseline, dict) and isinstance(live, dict):
        problems: list[str] = []
        for key, value in baseline.items():
            where = f"{path}/{key}"
            if key in PROSE_KEYS and key in live:
                continue
            if key not in live:
                problems.append(f"missing: {where}")
            else:
                problems.extend(missing_or_changed(value, live[key], where))
        return problems
    if isinstance(baseline, list) and isinstance(live, list):
        if path.endswith("/required"):
            return [f"no longer required: {path}/{item}" for item in baseline if item not in live]
        if path.endswith("/enum"):
            return [f"enum value gone: {path}/{item}" for item in baseline if item not in live]
        if len(baseline) != len(live):
            return [f"changed: {path}: {baseline!r} -> {live!r}"]
        return [
            problem
            for index, (old, new) in enumerate(zip(baseline, live, strict=True))
            for problem in missing_or_changed(old, new, f"{path}/{index}")
        ]
    if baseline != live:
        return [f"changed: {path}: {baseline!r} -> {live!r}"]
    return []


def main(argv: list[str]) -> int:
    live = live_schema()
    if "--write" in argv:
        BASELINE.write_text(json.dumps(live, indent=2, sort_keys=True) + "\n")
        print(f"wrote {BASELINE}")
        return 0
    baseline = json.loads(BASELINE.read_text())
    problems = missing_or_changed(baseline, live)
    added = sorted(set(live.get("paths", {})) - set(baseline.get("paths", {})))
    for problem in problems:
        print(problem)
    for path in added:
        print(f"added path: {path}")
    print(f"{len(problems)} removed or changed, {len(added)} paths added")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
