"""A stateful, deterministic Strava API v3 emulator ("sandbox").

Run it with ``strava-emulator serve`` or in-process via :func:`strava_emulator.app.create_app`;
tests use :func:`strava_emulator.testing.run_emulator`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
