"""The Strava rate budget shared by every worker (docs/contract.md §4; docs/strava.md §2).

Strava counts requests per application in a 15-minute window (reset at :00/:15/:30/:45 UTC) and
a daily one (reset at midnight UTC), for all requests ("overall") and for reads. The budget keeps,
for the current windows, how many requests our workers have made, as the larger of:

* the requests they reserved here (`acquire`, before each request), and
* the usage Strava reported in its headers (`record`, fed by the client's `on_response`).

A worker calls `acquire` before every Strava request. When a window is spent (our count has
reached its limit, less a reserve kept for the interactive link flow), or after a 429 (`block`),
it raises `BudgetSpent` with the time the window resets, and no worker calls Strava until then:
the sync is rescheduled for that time instead of sleeping or retrying.

No runner may spend everyone's budget: the requests of a sync's listing are also counted for
its runner, who may use at most RATE_BUDGET_RUNNER_SHARE of each 15-minute window (at least one
request). Past it, that runner alone gets `BudgetSpent` until the window resets; the others go
on. (Manual syncs also have a cooldown: scheduling.request_sync.)

Two stores with one behaviour: Redis (production, REDIS_URL; a Lua script makes check-and-count
atomic) and the database (the embedded default: one row, locked per call).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from app.clock import utcnow
from app.db import lock_row
from app.strava.models import RateBudgetState, RunnerRateBudget
from app.strava.ratelimit import (
    RateLimitSnapshot,
    Window,
    next_daily_window_start,
    next_short_window_start,
)

if TYPE_CHECKING:
    import redis

    from app.config import Settings

SHORT_SECONDS = 900
DAY_SECONDS = 86_400


class BudgetSpent(Exception):
    """No Strava request may be made before `retry_at` (UTC); `window` is the one spent."""

    def __init__(self, retry_at: datetime, window: Window) -> None:
        super().__init__(f"Strava rate budget spent ({window} window) until {retry_at.isoformat()}")
        self.retry_at = retry_at
        self.window = window


@dataclass(frozen=True)
class Limits:
    """(15-minute, daily) limits for all requests and for reads, as Strava last reported them."""

    overall: tuple[int, int]
    read: tuple[int, int]


@dataclass(frozen=True)
class BudgetView:
    """What the budget knows now (the beat tick sizes its batches with it)."""

    blocked_until: datetime | None
    blocked_window: Window | None
    used_short: int
    used_daily: int
    limits: Limits | None

    def remaining_short(self, reserve: float) -> int | None:
        """Requests left in the current 15-minute window for syncs; None when limits are unknown."""
        if self.limits is None:
            return None
        cap = (
            min(_cap(self.limits.overall[0], reserve), _cap(self.limits.read[0], reserve))
            - self.used_short
        )
        daily_cap = (
            min(_cap(self.limits.overall[1], reserve), _cap(self.limits.read[1], reserve))
            - self.used_daily
        )
        return max(0, min(cap, daily_cap))


class RateBudget(Protocol):
    def acquire(
        self,
        now: datetime,
        runner_id: uuid.UUID | None = None,
        *,
        seen: RateLimitSnapshot | None = None,
    ) -> None:
        """Count one request about to be made, or raise BudgetSpent; a request made for
        `runner_id` (a sync's listing) also counts toward that runner's share. `seen`: the
        figures of the previous response, taken in first (as `record` would), in the same
        call to the store."""

    def record(self, snapshot: RateLimitSnapshot, now: datetime) -> None:
        """Take in the usage and limits of a Strava response."""

    def block(self, until: datetime, window: Window) -> None:
        """Stop every worker until `until` (after a 429)."""

    def view(self, now: datetime) -> BudgetView: ...

    def reset(self) -> None:
        """Forget everything (tests and operators)."""


def _cap(limit: int, reserve: float) -> int:
    """The share of `limit` syncs may use; at least one request when the limit allows any."""
    return max(1, math.floor(limit * (1 - reserve))) if limit > 0 else 0


def _runner_cap(limits: Limits, reserve: float, share: float) -> int:
    """The requests one runner may make in a 15-minute window: `share` of what syncs may use,
    so that no runner can spend everyone's budget (at least one request)."""
    window_cap = min(_cap(limits.overall[0], reserve), _cap(limits.read[0], reserve))
    return max(1, math.floor(window_cap * share)) if window_cap > 0 else 0


def _windows(now: datetime) -> tuple[int, int]:
    ts = now.timestamp()
    return int(ts // SHORT_SECONDS), int(ts // DAY_SECONDS)


def _spent(now: datetime, window: Window) -> BudgetSpent:
    if window == "daily":
        return BudgetSpent(next_daily_window_start(now), "daily")
    return BudgetSpent(next_short_window_start(now), "short")


# --- the database (embedded default) ----------------------------------------------------------


class DatabaseBudget:
    """The budget in the `strava_rate_budget` row, locked for each call (its own transactions)."""

    def __init__(
        self, sessions: sessionmaker[Session], *, reserve: float = 0.05, runner_share: float = 1.0
    ) -> None:
        self._sessions = sessions
        self._reserve = reserve
        self._runner_share = runner_share

    def __repr__(self) -> str:
        return "DatabaseBudget()"

    def _locked(self, session: Session) -> RateBudgetState:
        row = lock_row(session, RateBudgetState, 1, RateBudgetState.short_window)
        if row is None:
            row = RateBudgetState(
                id=1,
                short_window=0,
                daily_window=0,
                short_overall=0,
                short_read=0,
                daily_overall=0,
                daily_read=0,
            )
            session.add(row)
            session.flush()
        return row

    @staticmethod
    def _roll(row: RateBudgetState, now: datetime) -> None:
        short, daily = _windows(now)
        if row.short_window != short:
            row.short_window, row.short_overall, row.short_read = short, 0, 0
        if row.daily_window != daily:
            row.daily_window, row.daily_overall, row.daily_read = daily, 0, 0

    @staticmethod
    def _limits(row: RateBudgetState) -> Limits | None:
        values = (
            row.overall_limit_short,
            row.overall_limit_daily,
            row.read_limit_short,
            row.read_limit_daily,
        )
        if any(value is None for value in values):
            return None
        overall_short, overall_daily, read_short, read_daily = (int(v or 0) for v in values)
        return Limits((overall_short, overall_daily), (read_short, read_daily))

    def acquire(
        self,
        now: datetime,
        runner_id: uuid.UUID | None = None,
        *,
        seen: RateLimitSnapshot | None = None,
    ) -> None:
        with self._sessions.begin() as session:
            row = self._locked(session)
            if seen is not None:
                self._record_row(row, seen, now)
            if row.blocked_until is not None and _aware(row.blocked_until) > now:
                window: Window = "daily" if row.blocked_window == "daily" else "short"
                raise BudgetSpent(_aware(row.blocked_until), window)
            self._roll(row, now)
            limits = self._limits(row)
            if limits is not None:
                r = self._reserve
                if row.daily_overall + 1 > _cap(limits.overall[1], r) or row.daily_read + 1 > _cap(
                    limits.read[1], r
                ):
                    raise _spent(now, "daily")
                if row.short_overall + 1 > _cap(limits.overall[0], r) or row.short_read + 1 > _cap(
                    limits.read[0], r
                ):
                    raise _spent(now, "short")
            if runner_id is not None:
                # Under the budget row's lock: the runner's counter cannot race.
                self._count_runner(session, runner_id, row.short_window, limits, now)
            row.short_overall += 1
            row.short_read += 1
            row.daily_overall += 1
            row.daily_read += 1

    def _count_runner(
        self,
        session: Session,
        runner_id: uuid.UUID,
        short_window: int,
        limits: Limits | None,
        now: datetime,
    ) -> None:
        mine = session.get(RunnerRateBudget, runner_id, populate_existing=True)
        if mine is None:
            mine = RunnerRateBudget(runner_id=runner_id, short_window=short_window, requests=0)
            session.add(mine)
        elif mine.short_window != short_window:
            mine.short_window, mine.requests = short_window, 0
        if limits is not None and mine.requests + 1 > _runner_cap(
            limits, self._reserve, self._runner_share
        ):
            raise _spent(now, "short")
        mine.requests += 1

    def record(self, snapshot: RateLimitSnapshot, now: datetime) -> None:
        with self._sessions.begin() as session:
            self._record_row(self._locked(session), snapshot, now)

    def _record_row(self, row: RateBudgetState, snapshot: RateLimitSnapshot, now: datetime) -> None:
        self._roll(row, now)
        row.short_overall = max(row.short_overall, snapshot.overall_usage[0])
        row.daily_overall = max(row.daily_overall, snapshot.overall_usage[1])
        row.short_read = max(row.short_read, snapshot.read_usage[0])
        row.daily_read = max(row.daily_read, snapshot.read_usage[1])
        row.overall_limit_short, row.overall_limit_daily = snapshot.overall_limit
        row.read_limit_short, row.read_limit_daily = snapshot.read_limit
        window = snapshot.exhausted_window()
        if window is not None:
            self._block_row(row, snapshot.retry_at(now), window)

    @staticmethod
    def _block_row(row: RateBudgetState, until: datetime, window: Window) -> None:
        if row.blocked_until is None or _aware(row.blocked_until) < until:
            row.blocked_until = until
            row.blocked_window = window

    def block(self, until: datetime, window: Window) -> None:
        with self._sessions.begin() as session:
            self._block_row(self._locked(session), until, window)

    def view(self, now: datetime) -> BudgetView:
        with self._sessions() as session:
            row = session.get(RateBudgetState, 1)
            if row is None:
                return BudgetView(None, None, 0, 0, None)
            short, daily = _windows(now)
            blocked = (
                _aware(row.blocked_until)
                if row.blocked_until is not None and _aware(row.blocked_until) > now
                else None
            )
            window: Window | None = None
            if blocked is not None:
                window = "daily" if row.blocked_window == "daily" else "short"
            return BudgetView(
                blocked_until=blocked,
                blocked_window=window,
                used_short=max(row.short_overall, row.short_read)
                if row.short_window == short
                else 0,
                used_daily=max(row.daily_overall, row.daily_read)
                if row.daily_window == daily
                else 0,
                limits=self._limits(row),
            )

    def reset(self) -> None:
        with self._sessions.begin() as session:
            row = self._locked(session)
            row.short_window = row.daily_window = 0
            row.short_overall = row.short_read = row.daily_overall = row.daily_read = 0
            row.overall_limit_short = row.overall_limit_daily = None
            row.read_limit_short = row.read_limit_daily = None
            row.blocked_until = None
            row.blocked_window = None
            session.execute(delete(RunnerRateBudget))


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# --- Redis (production) -----------------------------------------------------------------------

# KEYS: limits, short counters, daily counters, block[, the runner's short counter]. ARGV:
# reserve, short ttl, daily ttl, now (ms), runner share[, then a response's figures to record
# first, as _RECORD's]. Returns {0} when a request was counted, {1, until_ms, window} when
# blocked, {2, 0, window} when the window's share (or the runner's share of it) is spent.
_ACQUIRE_BODY = """
if #ARGV > 5 then record(5) end
local blocked = redis.call('GET', KEYS[4])
if blocked then
  local until_ms, window = string.match(blocked, '([^|]+)|(.+)')
  if tonumber(until_ms) > tonumber(ARGV[4]) then
    return {1, until_ms, window}
  end
end
local reserve = tonumber(ARGV[1])
local function cap(limit)
  if limit <= 0 then return 0 end
  return math.max(1, math.floor(limit * (1 - reserve)))
end
local limits = redis.call('HMGET', KEYS[1], 'os', 'od', 'rs', 'rd')
if limits[1] and limits[2] and limits[3] and limits[4] then
  local day = redis.call('HMGET', KEYS[3], 'overall', 'read')
  local short = redis.call('HMGET', KEYS[2], 'overall', 'read')
  local d_o, d_r = tonumber(day[1] or '0'), tonumber(day[2] or '0')
  local s_o, s_r = tonumber(short[1] or '0'), tonumber(short[2] or '0')
  if d_o + 1 > cap(tonumber(limits[2])) or d_r + 1 > cap(tonumber(limits[4])) then
    return {2, 0, 'daily'}
  end
  if s_o + 1 > cap(tonumber(limits[1])) or s_r + 1 > cap(tonumber(limits[3])) then
    return {2, 0, 'short'}
  end
  if KEYS[5] then
    local window_cap = math.min(cap(tonumber(limits[1])), cap(tonumber(limits[3])))
    local mine = tonumber(redis.call('GET', KEYS[5]) or '0')
    if window_cap <= 0 or mine + 1 > math.max(1, math.floor(window_cap * tonumber(ARGV[5]))) then
      return {2, 0, 'short'}
    end
  end
end
if KEYS[5] then
  redis.call('INCR', KEYS[5])
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[2]))
end
redis.call('HINCRBY', KEYS[2], 'overall', 1)
redis.call('HINCRBY', KEYS[2], 'read', 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'overall', 1)
redis.call('HINCRBY', KEYS[3], 'read', 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
return {0}
"""

# Takes in a response's figures: stores the limits and raises each counter to Strava's figure
# (never lowers it). KEYS: limits, short counters, daily counters. ARGV from `o` + 1: short
# overall, short read, daily overall, daily read, short ttl, daily ttl, then the limits (overall
# short, overall daily, read short, read daily).
_RECORD_FUNCTION = """
local function record(o)
  redis.call('HSET', KEYS[1], 'os', ARGV[o + 7], 'od', ARGV[o + 8], 'rs', ARGV[o + 9],
    'rd', ARGV[o + 10])
  local function raise(key, field, value)
    local current = tonumber(redis.call('HGET', key, field) or '0')
    if value > current then redis.call('HSET', key, field, value) end
  end
  raise(KEYS[2], 'overall', tonumber(ARGV[o + 1]))
  raise(KEYS[2], 'read', tonumber(ARGV[o + 2]))
  raise(KEYS[3], 'overall', tonumber(ARGV[o + 3]))
  raise(KEYS[3], 'read', tonumber(ARGV[o + 4]))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[o + 5]))
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[o + 6]))
end
"""

# One script call, one round trip per recorded response.
_RECORD = _RECORD_FUNCTION + "record(0)\nreturn 0\n"
# A sync's page: the previous response's figures and the next request's count, one round trip.
_ACQUIRE = _RECORD_FUNCTION + _ACQUIRE_BODY

# KEYS: block. ARGV: until_ms, window, ttl_ms. Only ever extends the block.
_BLOCK = """
local current = redis.call('GET', KEYS[1])
if current then
  local until_ms = tonumber(string.match(current, '([^|]+)|'))
  if until_ms >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisBudget:
    """The budget in Redis: counters per window (expiring), limits, and a block key."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        *,
        prefix: str,
        reserve: float = 0.05,
        runner_share: float = 1.0,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._reserve = reserve
        self._runner_share = runner_share
        self._acquire = client.register_script(_ACQUIRE)
        self._record = client.register_script(_RECORD)
        self._block = client.register_script(_BLOCK)

    def __repr__(self) -> str:
        return f"RedisBudget(prefix={self._prefix!r})"

    def _keys(self, now: datetime) -> tuple[str, str, str, str]:
        short, daily = _windows(now)
        p = self._prefix
        return f"{p}:limits", f"{p}:short:{short}", f"{p}:daily:{daily}", f"{p}:blocked"

    def acquire(
        self,
        now: datetime,
        runner_id: uuid.UUID | None = None,
        *,
        seen: RateLimitSnapshot | None = None,
    ) -> None:
        if seen is not None and seen.exhausted_window() is not None:
            # Strava says a window is spent: block first (rare), so that this acquire is refused.
            self.record(seen, now)
            seen = None
        keys = list(self._keys(now))
        if runner_id is not None:
            keys.append(f"{self._prefix}:runner:{runner_id}:{_windows(now)[0]}")
        args: list[Any] = [
            self._reserve,
            SHORT_SECONDS * 2,
            DAY_SECONDS * 2,
            int(now.timestamp() * 1000),
            self._runner_share,
        ]
        if seen is not None:
            args += _record_arguments(seen)
        result: list[Any] = self._acquire(keys=keys, args=args)
        if int(result[0]) == 0:
            return
        window: Window = "daily" if _text(result[2]) == "daily" else "short"
        if int(result[0]) == 1:
            until = datetime.fromtimestamp(int(_text(result[1])) / 1000, UTC)
            raise BudgetSpent(until, window)
        raise _spent(now, window)

    def record(self, snapshot: RateLimitSnapshot, now: datetime) -> None:
        limits_key, short_key, daily_key, _ = self._keys(now)
        # A script call of its own: in a pipeline, redis-py would first ask SCRIPT EXISTS.
        self._record(keys=[limits_key, short_key, daily_key], args=_record_arguments(snapshot))
        window = snapshot.exhausted_window()
        if window is not None:
            self.block(snapshot.retry_at(now), window)

    def block(self, until: datetime, window: Window) -> None:
        ttl_ms = int((until - utcnow()).total_seconds() * 1000)
        if ttl_ms <= 0:
            return
        self._block(
            keys=[f"{self._prefix}:blocked"], args=[int(until.timestamp() * 1000), window, ttl_ms]
        )

    def view(self, now: datetime) -> BudgetView:
        limits_key, short_key, daily_key, blocked_key = self._keys(now)
        pipe = self._redis.pipeline()
        pipe.hmget(limits_key, ["os", "od", "rs", "rd"])
        pipe.hmget(short_key, ["overall", "read"])
        pipe.hmget(daily_key, ["overall", "read"])
        pipe.get(blocked_key)
        raw_limits, short, daily, blocked = pipe.execute()
        limits = None
        if all(value is not None for value in raw_limits):
            os_, od, rs, rd = (int(value) for value in raw_limits)
            limits = Limits((os_, od), (rs, rd))
        until: datetime | None = None
        window: Window | None = None
        if blocked is not None:
            until_ms, _, name = _text(blocked).partition("|")
            until = datetime.fromtimestamp(int(until_ms) / 1000, UTC)
            window = "daily" if name == "daily" else "short"
            if until <= now:
                until, window = None, None
        return BudgetView(
            blocked_until=until,
            blocked_window=window,
            used_short=max(int(value or 0) for value in short),
            used_daily=max(int(value or 0) for value in daily),
            limits=limits,
        )

    def reset(self) -> None:
        keys = list(self._redis.scan_iter(match=f"{self._prefix}:*"))
        if keys:
            self._redis.delete(*keys)


def _record_arguments(snapshot: RateLimitSnapshot) -> list[int]:
    """ARGV of the record function (_RECORD_FUNCTION), from its offset on."""
    return [
        snapshot.overall_usage[0],
        snapshot.read_usage[0],
        snapshot.overall_usage[1],
        snapshot.read_usage[1],
        SHORT_SECONDS * 2,
        DAY_SECONDS * 2,
        snapshot.overall_limit[0],
        snapshot.overall_limit[1],
        snapshot.read_limit[0],
        snapshot.read_limit[1],
    ]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def from_settings(settings: Settings, sessions: sessionmaker[Session]) -> RateBudget:
    """Redis when REDIS_URL is set, else the database: the one budget every process shares."""
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        return RedisBudget(
            client,
            prefix=settings.rate_budget_prefix,
            reserve=settings.rate_budget_reserve,
            runner_share=settings.rate_budget_runner_share,
        )
    return DatabaseBudget(
        sessions,
        reserve=settings.rate_budget_reserve,
        runner_share=settings.rate_budget_runner_share,
    )
