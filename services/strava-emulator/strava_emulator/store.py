"""Athletes and activities in memory, with lazily scheduled history.

All access happens on the server's single event loop (handlers are ``async def`` and never
await while mutating), so no locking is needed.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from strava_emulator import data, reference, representation
from strava_emulator.clock import Clock, isoformat_z
from strava_emulator.config import EmulatorConfig
from strava_emulator.data import JSON, Activity, Athlete


def dumps(value: Any) -> bytes:
    """Compact JSON like Strava's (no spaces), UTF-8 as-is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class History:
    """One athlete's activities, ordered by start time (ties by id)."""

    ordered: list[Activity] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    generated_through_day: int = 0

    def insert(self, act: Activity) -> None:
        key = (act.start_ts, act.id)
        index = bisect.bisect_left(self.keys, key)
        self.keys.insert(index, key)
        self.ordered.insert(index, act)

    def remove(self, act: Activity) -> None:
        index = bisect.bisect_left(self.keys, (act.start_ts, act.id))
        if index < len(self.keys) and self.ordered[index] is act:
            del self.keys[index]
            del self.ordered[index]


class UnknownAthlete(LookupError):
    pass


class Store:
    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.athletes: dict[int, Athlete] = {}
        self.by_seq: dict[int, Athlete] = {}
        self.histories: dict[int, History] = {}
        self.activities: dict[int, Activity] = {}
        self.next_seq = 1
        self.next_admin_activity_id = data.ADMIN_ACTIVITY_ID_BASE + 1
        for _ in range(config.athletes):
            self.create_athlete()

    # ------------------------------------------------------------------ athletes

    def create_athlete(
        self,
        firstname: str | None = None,
        lastname: str | None = None,
        history_days: int | None = None,
    ) -> Athlete:
        athlete = data.make_athlete(
            self.config.seed,
            self.next_seq,
            history_days=self.config.history_days if history_days is None else history_days,
            now=self.clock.now(),
            firstname=firstname,
            lastname=lastname,
        )
        self.next_seq += 1
        self.athletes[athlete.id] = athlete
        self.by_seq[athlete.seq] = athlete
        return athlete

    def athlete(self, athlete_id: int) -> Athlete:
        try:
            return self.athletes[athlete_id]
        except KeyError:
            raise UnknownAthlete(athlete_id) from None

    def list_athletes(self, offset: int, limit: int) -> list[Athlete]:
        ordered = sorted(self.by_seq.items())
        return [athlete for _, athlete in ordered[offset : offset + limit]]

    # ------------------------------------------------------------------ history

    def history(self, athlete: Athlete) -> History:
        """The athlete's history, scheduled on first use and extended as the clock moves on."""
        now_ts = self.clock.now_ts()
        hist = self.histories.get(athlete.id)
        today = data.local_epoch_day(athlete, now_ts)
        if hist is None:
            # The window ends at the first use, so a clock moved before then is honoured.
            hist = self.histories[athlete.id] = History()
            window_start = now_ts - athlete.history_days * 86_400
            first_day = data.local_epoch_day(athlete, window_start)
            specials = data.specials_for(self.config.seed, athlete, today)
            for day in range(first_day, today + 1):
                for act in data.schedule_day(self.config.seed, athlete, day, specials.get(day, 0)):
                    if act.start_ts >= window_start:
                        self._add(hist, act)
            hist.generated_through_day = today
        elif today > hist.generated_through_day:
            # Time moved on: the athlete keeps training.
            for day in range(hist.generated_through_day + 1, today + 1):
                for act in data.schedule_day(self.config.seed, athlete, day):
                    self._add(hist, act)
            hist.generated_through_day = today
        return hist

    def _add(self, hist: History, act: Activity) -> None:
        hist.insert(act)
        self.activities[act.id] = act

    def materialize_all(self) -> int:
        """Schedule every athlete's history now (benchmarks); returns the activity count."""
        return sum(len(self.history(athlete).ordered) for athlete in self.athletes.values())

    def find_activity(self, activity_id: int) -> Activity | None:
        act = self.activities.get(activity_id)
        if act is None and activity_id < data.ADMIN_ACTIVITY_ID_BASE:
            # Generated ids carry the owner's sequence number: schedule that history.
            athlete = self.by_seq.get((activity_id // 10) % 100_000)
            if athlete is not None and athlete.id not in self.histories:
                self.history(athlete)
                act = self.activities.get(activity_id)
        return act

    def visible_activities(self, athlete: Athlete, *, read_all: bool) -> list[Activity]:
        """Activities the API shows the owner now, oldest first."""
        now_ts = self.clock.now_ts()
        return [
            act
            for act in self.history(athlete).ordered
            if act.available_at <= now_ts and (read_all or act.visibility != "only_me")
        ]

    # ------------------------------------------------------------------ representations

    def summary(self, act: Activity) -> JSON:
        """The summary dict. Generated activities rebuild it on demand (it is a pure function
        of the seed) and only their JSON is cached: dicts would cost ~3x the memory."""
        if act.summary_dict is not None:
            return act.summary_dict
        return representation.build_summary(self.config.seed, self.athletes[act.athlete_id], act)

    def _editable_summary(self, act: Activity) -> JSON:
        """Pin the dict on the activity: admin edits live only there from now on."""
        if act.summary_dict is None:
            act.summary_dict = self.summary(act)
        return act.summary_dict

    def summary_json(self, act: Activity) -> bytes:
        if act.summary_json is None:
            act.summary_json = dumps(self.summary(act))
        return act.summary_json

    def detail_json(self, act: Activity) -> bytes:
        if act.detail_json is None:
            athlete = self.athletes[act.athlete_id]
            act.detail_json = dumps(
                representation.build_detail(self.config.seed, athlete, act, self.summary(act))
            )
        return act.detail_json

    # ------------------------------------------------------------------ admin edits

    def create_activity(self, athlete: Athlete, fields: dict[str, Any]) -> Activity:
        hist = self.history(athlete)
        now = self.clock.now()
        moving = int(fields.get("moving_time") or 3000)
        elapsed = int(fields.get("elapsed_time") or moving)
        start = (now - timedelta(seconds=elapsed + 60)).replace(microsecond=0)
        offset = start.astimezone(reference.zone(athlete.home.tz_name)).utcoffset()
        offset_s = int(offset.total_seconds()) if offset is not None else 0
        act = Activity(
            id=self.next_admin_activity_id,
            athlete_id=athlete.id,
            start_ts=int(start.timestamp()),
            available_at=now.timestamp(),
            visibility="everyone",
            kind="easy",
            sport_type="Run",
            distance=10_000.0,
            moving_time=moving,
            elapsed_time=elapsed,
            local_ts=int(start.timestamp()) + offset_s,
        )
        self.next_admin_activity_id += 1
        self._editable_summary(act)
        self.activities[act.id] = act
        self._apply(athlete, act, fields)
        hist.insert(act)
        return act

    def update_activity(self, act: Activity, fields: dict[str, Any]) -> Activity:
        athlete = self.athletes[act.athlete_id]
        hist = self.history(athlete)
        hist.remove(act)
        self._editable_summary(act)
        self._apply(athlete, act, fields)
        hist.insert(act)
        return act

    def delete_activity(self, act: Activity) -> None:
        athlete = self.athletes[act.athlete_id]
        self.history(athlete).remove(act)
        del self.activities[act.id]

    def _apply(self, athlete: Athlete, act: Activity, fields: dict[str, Any]) -> None:
        """Merge admin-supplied fields and keep the derived ones consistent."""
        summary = self._editable_summary(act)
        fields = dict(fields)
        detail_only: dict[str, Any] = {
            key: fields.pop(key) for key in ("description", "calories") if key in fields
        }
        if detail_only:
            act.detail_extra = {**(act.detail_extra or {}), **detail_only}
        tz = reference.zone(athlete.home.tz_name)
        start_utc: datetime | None = None
        if "start_date" in fields:
            start_utc = _as_utc(fields.pop("start_date"))
            if "start_date_local" in fields:
                local = _as_naive(fields.pop("start_date_local"))
            else:
                local = start_utc.astimezone(tz).replace(tzinfo=None)
        elif "start_date_local" in fields:
            local = _as_naive(fields.pop("start_date_local"))
            start_utc = local.replace(tzinfo=tz).astimezone(UTC)
        if start_utc is not None:
            offset = start_utc.astimezone(tz).utcoffset()
            summary["start_date"] = isoformat_z(start_utc)
            summary["start_date_local"] = local.strftime("%Y-%m-%dT%H:%M:%SZ")
            summary["utc_offset"] = offset.total_seconds() if offset is not None else 0.0
            act.start_ts = int(start_utc.timestamp())
            act.local_ts = int(local.replace(tzinfo=UTC).timestamp())
        if "sport_type" in fields and "type" not in fields:
            fields["type"] = reference.ACTIVITY_TYPE_OF.get(fields["sport_type"], "Workout")
        if "visibility" in fields:
            fields["private"] = fields["visibility"] == "only_me"
        elif "private" in fields:
            fields["visibility"] = "only_me" if fields["private"] else "everyone"
        speed_inputs = {"distance", "moving_time"} & fields.keys()
        summary.update(fields)
        if speed_inputs and "average_speed" not in fields:
            moving = summary["moving_time"] or 0
            summary["average_speed"] = round(summary["distance"] / moving, 3) if moving else 0.0
        if fields.get("has_heartrate") is False:
            for key in ("average_heartrate", "max_heartrate", "suffer_score"):
                summary.pop(key, None)
            summary["display_hide_heartrate_option"] = False
        if (fields.get("trainer") or fields.get("manual")) and "map" not in fields:
            summary["map"] = {"id": f"a{act.id}", "summary_polyline": "", "resource_state": 2}
            summary["start_latlng"] = []
            summary["end_latlng"] = []
        act.visibility = summary["visibility"]
        act.sport_type = summary["sport_type"]
        act.distance = float(summary["distance"] or 0.0)
        act.moving_time = int(summary["moving_time"] or 0)
        act.elapsed_time = int(summary["elapsed_time"] or 0)
        act.invalidate()


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _as_naive(value: datetime | str) -> datetime:
    """``start_date_local`` is wall-clock time written with a ``Z``: drop the zone as is."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=None, microsecond=0)
