"""Webhook event delivery as Strava does it: a JSON POST per event, a 2 s limit, up to three
attempts in total, in order per subscription; plus injected delivery faults and a log.

Everything runs on the server's event loop: events are queued synchronously by handlers and a
background task sends them, so an admin request never waits for a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx2

from strava_emulator.clock import Clock, isoformat_z

MAX_ATTEMPTS: Final = 3
"""Strava: "retried (up to a total of three attempts) if a 200 is not returned"."""
FINISHED_KEPT: Final = 50_000
"""Finished deliveries kept in the log (oldest pruned first); pending ones are always kept."""

DeliveryFaultKind = Literal["drop", "duplicate", "delay", "out_of_order"]
DeliveryState = Literal["pending", "delivered", "failed", "dropped"]


@dataclass(slots=True)
class DeliveryFault:
    id: str
    kind: DeliveryFaultKind
    remaining: int
    delay_ms: int = 0
    object_type: str | None = None
    aspect_type: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        return self.object_type in (None, event["object_type"]) and self.aspect_type in (
            None,
            event["aspect_type"],
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "remaining": self.remaining,
            "delay_ms": self.delay_ms,
            "object_type": self.object_type,
            "aspect_type": self.aspect_type,
        }


@dataclass(slots=True)
class Attempt:
    at: str
    """Emulator time of the attempt."""
    status_code: int | None
    """The callback's status; ``None`` when it timed out or could not be reached."""
    error: str | None
    duration_ms: float
    wall_ts: float
    """Real epoch seconds when the attempt started (for latency figures under a moved clock)."""


@dataclass(slots=True)
class Delivery:
    id: int
    event: dict[str, Any]
    callback_url: str
    queued_at: str
    queued_wall_ts: float
    """Real epoch seconds when the event was queued (the moment it "happened")."""
    state: DeliveryState = "pending"
    fault: DeliveryFaultKind | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "callback_url": self.callback_url,
            "queued_at": self.queued_at,
            "queued_wall_ts": self.queued_wall_ts,
            "state": self.state,
            "fault": self.fault,
            "attempts": [
                {
                    "at": a.at,
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                    "wall_ts": a.wall_ts,
                }
                for a in self.attempts
            ],
        }


class Deliverer:
    """The delivery queue of the (one) subscription, its faults and its log."""

    def __init__(self, clock: Clock, timeout_seconds: float, retry_delay_seconds: float) -> None:
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.faults: list[DeliveryFault] = []
        self.log: dict[int, Delivery] = {}
        self._fault_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._order = itertools.count()
        self._due: list[tuple[float, int, Delivery]] = []
        """Heap of (monotonic due time, queue order, delivery)."""
        self._held: list[Delivery] = []
        """``out_of_order`` deliveries waiting to be overtaken by the next event."""
        self._in_flight: Delivery | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ faults

    def add_fault(
        self,
        kind: DeliveryFaultKind,
        *,
        count: int = 1,
        delay_ms: int = 0,
        object_type: str | None = None,
        aspect_type: str | None = None,
    ) -> DeliveryFault:
        fault = DeliveryFault(
            f"w{next(self._fault_ids)}", kind, count, delay_ms, object_type, aspect_type
        )
        self.faults.append(fault)
        return fault

    def _take_fault(self, event: dict[str, Any]) -> DeliveryFault | None:
        for fault in self.faults:
            if fault.matches(event):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ queue

    def enqueue(self, event: dict[str, Any], callback_url: str) -> None:
        """Queue one event (called on the event loop; never blocks)."""
        fault = self._take_fault(event)
        delivery = self._new(event, callback_url, fault.kind if fault else None)
        if fault is not None and fault.kind == "drop":
            delivery.state = "dropped"
            return
        if fault is not None and fault.kind == "out_of_order":
            self._held.append(delivery)
            return
        now = time.monotonic()
        delay = fault.delay_ms / 1000 if fault is not None and fault.kind == "delay" else 0.0
        self._push(now + delay, delivery)
        # Held events go right after this one: the event they waited for overtakes them.
        for held in self._held:
            self._push(now + delay, held)
        self._held.clear()
        if fault is not None and fault.kind == "duplicate":
            self._push(now, self._new(event, callback_url, "duplicate"))
        self._start()

    def _new(
        self, event: dict[str, Any], callback_url: str, fault: DeliveryFaultKind | None
    ) -> Delivery:
        delivery = Delivery(
            id=next(self._ids),
            event=event,
            callback_url=callback_url,
            queued_at=isoformat_z(self.clock.now()),
            queued_wall_ts=time.time(),
            fault=fault,
        )
        self.log[delivery.id] = delivery
        self._prune()
        return delivery

    def _push(self, due: float, delivery: Delivery) -> None:
        heapq.heappush(self._due, (due, next(self._order), delivery))
        if self._wake is not None:
            self._wake.set()

    def pending(self) -> int:
        """Queued, held or being sent (O(1): tests poll it)."""
        return len(self._due) + len(self._held) + (self._in_flight is not None)

    def deliveries(self, state: str | None = None) -> list[Delivery]:
        return [d for d in self.log.values() if state is None or d.state == state]

    def clear_log(self) -> None:
        """Forget finished deliveries; pending ones stay (they are still on their way)."""
        for key in [k for k, d in self.log.items() if d.state != "pending"]:
            del self.log[key]

    def _prune(self) -> None:
        if len(self.log) <= FINISHED_KEPT:
            return
        finished = [k for k, d in self.log.items() if d.state != "pending"]
        for key in finished[: len(self.log) - FINISHED_KEPT]:
            del self.log[key]

    def stop(self) -> None:
        """Cancel the sender and drop everything queued (reset, or the subscription deleted)."""
        if self._task is not None:
            self._task.cancel()
        self._task = None
        self._wake = None
        for _, _, delivery in self._due:
            delivery.state = "dropped"
        for delivery in self._held:
            delivery.state = "dropped"
        if self._in_flight is not None:
            self._in_flight.state = "dropped"
            self._in_flight = None
        self._due.clear()
        self._held.clear()

    # ------------------------------------------------------------------ sender

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="strava-emulator:webhook-delivery"
            )

    async def _run(self) -> None:
        assert self._wake is not None
        wake = self._wake
        async with httpx2.AsyncClient() as client:
            while True:
                if not self._due:
                    wake.clear()
                    await wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                    continue
                _, _, delivery = heapq.heappop(self._due)
                self._in_flight = delivery
                try:
                    await self._attempt(client, delivery)
                finally:
                    if self._in_flight is delivery:  # stop() may have moved on already
                        self._in_flight = None

    async def _attempt(self, client: httpx2.AsyncClient, delivery: Delivery) -> None:
        at = isoformat_z(self.clock.now())
        wall_ts = time.time()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        body = json.dumps(delivery.event, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                response = await client.post(
                    delivery.callback_url,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=self.timeout_seconds,
                )
            status = response.status_code
        except TimeoutError:
            error = "timeout"
        except httpx2.TimeoutException:
            error = "timeout"
        except Exception as exc:  # refused, reset, bad URL...: a failed attempt, never a crash
            error = type(exc).__name__
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        delivery.attempts.append(Attempt(at, status, error, duration_ms, wall_ts))
        if status == 200:
            delivery.state = "delivered"
        elif len(delivery.attempts) >= MAX_ATTEMPTS:
            delivery.state = "failed"
        else:
            self._push(time.monotonic() + self.retry_delay_seconds, delivery)
