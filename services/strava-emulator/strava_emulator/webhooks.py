"""Push subscriptions and the webhook events Strava sends for an athlete's data.

One subscription per application (the emulator has one application). Events go only to it and
only for athletes who authorized the application; their shape is Strava's exactly:
``aspect_type, event_time, object_id, object_type, owner_id, subscription_id, updates``.
Privacy follows the 2018 webhook docs: without ``activity:read_all`` an activity going private
is a ``delete`` and going public again a ``create``; private activities are otherwise unseen.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from strava_emulator import data
from strava_emulator.clock import isoformat_z
from strava_emulator.data import Activity, Athlete
from strava_emulator.delivery import Deliverer

if TYPE_CHECKING:
    from strava_emulator.state import EmulatorState

FIRST_SUBSCRIPTION_ID: Final = 120_001
SCAN_LOOKBACK_SECONDS: Final = 3 * 86_400
"""History is ordered by start time; an activity appears (is uploaded) within this of its start."""


@dataclass(slots=True)
class Subscription:
    id: int
    application_id: int
    callback_url: str
    created_ts: float

    def view(self, *, fractional: bool) -> dict[str, Any]:
        """The recorded shape: the create answer has nanosecond timestamps, the list seconds."""
        when = datetime.fromtimestamp(self.created_ts, UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z" if fractional else isoformat_z(when)
        return {
            "id": self.id,
            "resource_state": 2,
            "application_id": self.application_id,
            "callback_url": self.callback_url,
            "created_at": stamp,
            "updated_at": stamp,
        }


def is_private(act: Activity) -> bool:
    return act.visibility == "only_me"


class WebhookHub:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        config = state.config
        self.deliverer = Deliverer(
            state.clock, config.webhook_timeout_seconds, config.webhook_retry_delay_seconds
        )
        self.subscription: Subscription | None = None
        self._ids = itertools.count(FIRST_SUBSCRIPTION_ID)
        self._scanned_through = 0.0
        """Generated activities available up to this emulator time have had their events."""
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ subscription

    def subscribe(self, callback_url: str) -> Subscription:
        now = self.state.clock.now_ts()
        self.subscription = Subscription(
            next(self._ids), self.state.config.client_id, callback_url, now
        )
        self._scanned_through = now
        if self.state.config.webhook_scan_seconds > 0:
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick(), name="strava-emulator:webhook-scan"
            )
        return self.subscription

    def unsubscribe(self) -> None:
        self.subscription = None
        self.stop()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.deliverer.stop()

    def reset(self) -> None:
        """Back to no subscription, an empty log and no faults."""
        self.unsubscribe()
        self.deliverer.log.clear()
        self.deliverer.faults.clear()

    async def _tick(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.state.config.webhook_scan_seconds)
                self.scan()

    # ------------------------------------------------------------------ who sees what

    def _scopes(self, athlete_id: int) -> frozenset[str] | None:
        """The scopes the athlete granted the application, or None if it is not authorized."""
        grants = self.state.tokens.grants_by_athlete.get(athlete_id)
        if not grants:
            return None
        return frozenset().union(*(grant.scopes for grant in grants))

    def _sees(self, act: Activity, scopes: frozenset[str]) -> bool:
        return not is_private(act) or "activity:read_all" in scopes

    def _emit(
        self,
        aspect: str,
        object_type: str,
        object_id: int,
        owner_id: int,
        *,
        updates: dict[str, str] | None = None,
        event_time: float | None = None,
    ) -> None:
        sub = self.subscription
        if sub is None:
            return
        if event_time is None:
            event_time = self.state.clock.now_ts()
        event = {
            "aspect_type": aspect,
            "event_time": int(event_time),
            "object_id": object_id,
            "object_type": object_type,
            "owner_id": owner_id,
            "subscription_id": sub.id,
            "updates": updates or {},
        }
        self.deliverer.enqueue(event, sub.callback_url)

    def _appeared(self, act: Activity) -> bool:
        return act.available_at <= self.state.clock.now_ts()

    # ------------------------------------------------------------------ what happened

    def activity_created(self, act: Activity) -> None:
        scopes = self._scopes(act.athlete_id)
        if scopes is None or not self._appeared(act) or not self._sees(act, scopes):
            return
        self._emit("create", "activity", act.id, act.athlete_id)

    def activity_updated(self, act: Activity, before: dict[str, Any]) -> None:
        """``before``: :func:`watched_fields` of the activity before the edit."""
        scopes = self._scopes(act.athlete_id)
        if scopes is None or not self._appeared(act):
            return
        after = watched_fields(self.state, act)
        was_private, now_private = before["private"], after["private"]
        if "activity:read_all" not in scopes and was_private != now_private:
            self._emit("delete" if now_private else "create", "activity", act.id, act.athlete_id)
            return
        if not self._sees(act, scopes):
            return
        updates = {
            key: after[key] for key in ("title", "type", "private") if after[key] != before[key]
        }
        if "private" in updates:
            updates["private"] = "true" if now_private else "false"
        if updates:
            self._emit("update", "activity", act.id, act.athlete_id, updates=updates)

    def activity_deleted(self, act: Activity) -> None:
        scopes = self._scopes(act.athlete_id)
        if scopes is None or not self._appeared(act) or not self._sees(act, scopes):
            return
        self._emit("delete", "activity", act.id, act.athlete_id)

    def athlete_deauthorizing(self, athlete_id: int) -> None:
        """Call before the tokens go: only an athlete who authorized the app has an event."""
        if self._scopes(athlete_id) is None:
            return
        self._emit("update", "athlete", athlete_id, athlete_id, updates={"authorized": "false"})

    def scan(self) -> int:
        """Create events for generated activities that appeared since the last scan, in
        upload order; returns how many. Runs on clock moves and periodically."""
        if self.subscription is None:
            return 0
        store = self.state.store
        now = self.state.clock.now_ts()
        since = self._scanned_through
        if now <= since:
            return 0
        appeared: list[tuple[float, int, Athlete, Activity]] = []
        for athlete_id in list(self.state.tokens.grants_by_athlete):
            scopes = self._scopes(athlete_id)
            athlete = store.athletes.get(athlete_id)
            if scopes is None or athlete is None:
                continue
            hist = store.history(athlete)
            start = bisect.bisect_left(hist.keys, (int(since - SCAN_LOOKBACK_SECONDS), 0))
            for act in hist.ordered[start:]:
                if act.start_ts > now:
                    break
                if (
                    since < act.available_at <= now
                    and act.id < data.ADMIN_ACTIVITY_ID_BASE  # admin ones had theirs already
                    and self._sees(act, scopes)
                ):
                    appeared.append((act.available_at, act.id, athlete, act))
        self._scanned_through = now
        appeared.sort(key=lambda item: (item[0], item[1]))
        for available_at, _, athlete, act in appeared:
            self._emit("create", "activity", act.id, athlete.id, event_time=available_at)
        return len(appeared)


def watched_fields(state: EmulatorState, act: Activity) -> dict[str, Any]:
    """What a webhook update reports on: title, type and privacy."""
    summary = state.store.summary(act)
    return {"title": summary["name"], "type": summary["type"], "private": is_private(act)}
