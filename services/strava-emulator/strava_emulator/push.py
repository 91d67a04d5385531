"""Strava's push subscription endpoints, and the admin API over webhook delivery.

``POST /api/v3/push_subscriptions`` validates the callback first (a GET with ``hub.mode``,
``hub.challenge`` and ``hub.verify_token`` that must answer 200 with a JSON echo of the
challenge within 2 s), then answers 201. Error bodies are Strava's Faults; the
"does not return 200" one is reported by users of the real API, the others are our choice.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Final, Literal

import httpx2
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from strava_emulator import errors
from strava_emulator.delivery import DeliveryFaultKind
from strava_emulator.oauth import emulator, json_response, read_params
from strava_emulator.state import EmulatorState
from strava_emulator.store import dumps

router = APIRouter()
admin_router = APIRouter(prefix="/_emulator/webhooks", tags=["emulator admin: webhooks"])

PATH: Final = "/api/v3/push_subscriptions"
MAX_CALLBACK_URL: Final = 255


def already_exists() -> errors.StravaError:
    return errors.bad_request("PushSubscription", "", "already exists")


def callback_not_200() -> errors.StravaError:
    return errors.bad_request(
        "PushSubscription", "callback url", "GET to callback URL does not return 200"
    )


def callback_not_verifiable() -> errors.StravaError:
    return errors.bad_request("PushSubscription", "callback url", "not verifiable")


def subscription_not_found() -> errors.StravaError:
    return errors.StravaError(404, "Record Not Found", "PushSubscription", "id", "invalid")


def _check_application(state: EmulatorState, params: dict[str, str]) -> None:
    """Application credentials, checked as ``/oauth/token`` checks them."""
    try:
        client_id = int(params.get("client_id") or "")
    except ValueError:
        raise errors.invalid_client_id() from None
    if client_id != state.config.client_id:
        raise errors.invalid_client_id()
    if params.get("client_secret") != state.config.client_secret:
        raise errors.application_invalid()


async def _validate_callback(state: EmulatorState, callback_url: str, verify_token: str) -> None:
    challenge = secrets.token_hex(16)
    query = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    limit = state.config.webhook_timeout_seconds
    try:
        async with asyncio.timeout(limit), httpx2.AsyncClient(timeout=limit) as client:
            response = await client.get(callback_url, params=query)
    except (TimeoutError, httpx2.HTTPError):
        raise callback_not_200() from None
    if response.status_code != 200:
        raise callback_not_200()
    try:
        echoed = json.loads(response.content)
    except ValueError:
        raise callback_not_verifiable() from None
    if not isinstance(echoed, dict) or echoed.get("hub.challenge") != challenge:
        raise callback_not_verifiable()


@router.post(PATH, status_code=201, response_model=None)
async def create_subscription(request: Request) -> Response:
    state = emulator(request)
    params = dict(await read_params(request))
    _check_application(state, params)
    callback_url = params.get("callback_url", "")
    if not callback_url.startswith(("http://", "https://")) or len(callback_url) > MAX_CALLBACK_URL:
        raise errors.bad_request("PushSubscription", "callback url")
    if not params.get("verify_token"):
        raise errors.bad_request("PushSubscription", "verify token")
    if state.webhooks.subscription is not None:
        raise already_exists()
    await _validate_callback(state, callback_url, params["verify_token"])
    if state.webhooks.subscription is not None:  # another create won while we validated
        raise already_exists()
    subscription = state.webhooks.subscribe(callback_url)
    return json_response(dumps(subscription.view(fractional=True)), 201)


@router.get(PATH, response_model=None)
async def list_subscriptions(request: Request) -> Response:
    state = emulator(request)
    _check_application(state, dict(await read_params(request)))
    found = state.webhooks.subscription
    return json_response(dumps([found.view(fractional=False)] if found else []))


@router.delete(PATH + "/{subscription_id}", status_code=204, response_model=None)
async def delete_subscription(request: Request, subscription_id: str) -> Response:
    state = emulator(request)
    _check_application(state, dict(await read_params(request)))
    found = state.webhooks.subscription
    if found is None or str(found.id) != subscription_id:
        raise subscription_not_found()
    state.webhooks.unsubscribe()
    return Response(status_code=204)


# ---------------------------------------------------------------------- admin API


class NewDeliveryFault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DeliveryFaultKind
    count: int = Field(default=1, ge=1)
    delay_ms: int = Field(default=0, ge=0, le=600_000)
    object_type: Literal["activity", "athlete"] | None = None
    aspect_type: Literal["create", "update", "delete"] | None = None


@admin_router.get("/deliveries")
async def list_deliveries(request: Request, state: str | None = None) -> dict[str, Any]:
    """Every event queued for the subscription, oldest first, with its attempts."""
    found = emulator(request).webhooks.deliverer.deliveries(state)
    return {"items": [delivery.view() for delivery in found]}


@admin_router.delete("/deliveries", status_code=204)
async def clear_deliveries(request: Request) -> Response:
    emulator(request).webhooks.deliverer.clear_log()
    return Response(status_code=204)


@admin_router.get("/pending")
async def pending(request: Request) -> dict[str, int]:
    """Events not yet delivered, failed for good or dropped (tests wait for 0)."""
    return {"pending": emulator(request).webhooks.deliverer.pending()}


@admin_router.post("/scan")
async def scan(request: Request) -> dict[str, int]:
    """Queue create events for generated activities that have appeared, now."""
    return {"events": emulator(request).webhooks.scan()}


@admin_router.get("/faults")
async def list_delivery_faults(request: Request) -> dict[str, Any]:
    faults = emulator(request).webhooks.deliverer.faults
    return {"items": [fault.view() for fault in faults]}


@admin_router.post("/faults", status_code=201)
async def add_delivery_fault(request: Request, body: NewDeliveryFault) -> dict[str, str]:
    """Applies to the next ``count`` matching events: ``drop`` (never sent), ``duplicate``
    (sent twice), ``delay`` (sent ``delay_ms`` later; later events overtake it),
    ``out_of_order`` (held until the next event has been queued, then sent after it)."""
    fault = emulator(request).webhooks.deliverer.add_fault(
        body.kind,
        count=body.count,
        delay_ms=body.delay_ms,
        object_type=body.object_type,
        aspect_type=body.aspect_type,
    )
    return {"id": fault.id}


@admin_router.delete("/faults", status_code=204)
async def clear_delivery_faults(request: Request) -> Response:
    emulator(request).webhooks.deliverer.faults.clear()
    return Response(status_code=204)
