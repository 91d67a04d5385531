"""`orchestrator` with a fault planted first, in this process and in the pool processes it forks.

The worker tests run it as a script (`python tests/faulty_cli.py FAULT worker ...`) to make a real
worker fail in ways no emulator fault can: an unexpected exception deep inside a Strava call, or a
sync that kills its own pool process.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Exit status of a pool process killed by the `exit-in-listing` fault.
EXIT_STATUS = 70


def _raise_in_transport(*_: Any, **__: Any) -> Any:
    raise RuntimeError("fault planted by the test: the HTTP transport failed unexpectedly")


def _exit_in_listing(*_: Any, **__: Any) -> Any:
    os._exit(EXIT_STATUS)


def plant(fault: str) -> None:
    if fault == "raise-in-transport":
        import httpx2

        # Below every frame of the client: refresh() and list_activities() hold the tokens.
        setattr(httpx2.HTTPTransport, "handle_request", _raise_in_transport)  # noqa: B010
    elif fault == "exit-in-listing":
        from app.strava.client import StravaClient

        setattr(StravaClient, "list_activities", _exit_in_listing)  # noqa: B010
    else:
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> None:
    fault, *args = sys.argv[1:]
    plant(fault)
    from app.cli import cli

    cli(args, prog_name="orchestrator")


if __name__ == "__main__":
    main()
