"""The line between provider-agnostic code and Strava (docs/architecture.md): workouts/,
training/, runners/, inbox/ and the app core never import app.strava.

The core's wiring points are the exception, kept short on purpose: they assemble the
application and so must name its Strava parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
PROVIDER_AGNOSTIC_PACKAGES = ("workouts", "training", "runners", "inbox")
# main.py builds the API (routes, client, enqueue), cli.py runs the commands (rotate-keys),
# models.py imports every table for Alembic and the worker.
WIRING = frozenset({"main.py", "cli.py", "models.py"})


def _guarded_files() -> list[Path]:
    core = [path for path in APP.glob("*.py") if path.name not in WIRING]
    packages = [
        path for package in PROVIDER_AGNOSTIC_PACKAGES for path in (APP / package).rglob("*.py")
    ]
    return sorted(core + packages)


def strava_imports(path: Path) -> list[str]:
    """Every `import app.strava...` / `from app.strava... import` / `from app import strava`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "app.strava" or name.startswith("app.strava."):
                where = path.relative_to(APP.parent) if path.is_relative_to(APP.parent) else path
                found.append(f"{where}:{node.lineno}: {name}")
                break
    return found


def test_provider_agnostic_code_never_imports_app_strava() -> None:
    guarded = _guarded_files()
    assert any(path.parent.name == "workouts" for path in guarded)  # the walk sees the packages

    violations = [line for path in guarded for line in strava_imports(path)]

    assert violations == [], "provider-agnostic code imports app.strava:\n" + "\n".join(violations)


def test_the_rule_catches_a_from_app_strava_import(tmp_path: Path) -> None:
    module = tmp_path / "offender.py"
    module.write_text("from app.strava.models import StravaLink\nfrom app import strava\n")

    assert strava_imports(module) == [
        f"{module}:1: app.strava.models",
        f"{module}:2: app.strava",
    ]
