"""One place that imports every model module, so metadata (Alembic, tests) sees all tables."""

from __future__ import annotations


def import_all_models() -> None:
    import app.inbox.models
    import app.runners.models
    import app.strava.models
    import app.workouts.models  # noqa: F401
