"""Waiting for a condition with a deadline: the only synchronisation the sync tests use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy (and return it); fail after `timeout`.

    The timeout is a ceiling for a slow machine, never a wait: this returns as soon as the
    condition holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)
