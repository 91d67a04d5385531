"""`orchestrator` command: serve, migrate, worker, beat, dev (the whole sandbox), rotate-keys,
strava-webhook subscribe|status|unsubscribe."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from app.config import get_settings

if TYPE_CHECKING:
    from app.config import Settings
    from app.strava.client import StravaClient

# Where Strava's events reach us (docs/contract.md §3.1).
WEBHOOK_PATH = "/api/v1/strava/webhook"

cli = typer.Typer(
    help="Coach George orchestrator.",
    no_args_is_help=True,
    add_completion=False,
    # A crash prints a traceback without frame locals: they hold keys and tokens.
    pretty_exceptions_show_locals=False,
)
strava_webhook = typer.Typer(
    help="The application's Strava push subscription (docs/strava.md §5).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
cli.add_typer(strava_webhook, name="strava-webhook")
console = Console(stderr=True)
out = Console()


class ExitCode(IntEnum):
    """`orchestrator strava-webhook` exit codes (2 is typer's usage error)."""

    OK = 0
    REFUSED = 1  # Strava refused: callback not verified, already subscribed, bad URL, not found
    BAD_CREDENTIALS = 3  # STRAVA_CLIENT_ID / STRAVA_CLIENT_SECRET refused
    UNREACHABLE = 4  # Strava did not answer (5xx, timeout), or answered nonsense
    DRIFT = 5  # status: our record and Strava's list disagree


def _metrics_dir(*, wipe: bool = False) -> None:
    """prometheus_client's multiprocess mode (see app/metrics.py): set before it is imported.

    `dev` starts every process, so it starts from an empty directory; `serve`, `worker` and
    `beat` started on their own share whatever PROMETHEUS_MULTIPROC_DIR says (default
    var/prometheus), like processes of one deployment on one machine."""
    import shutil
    from pathlib import Path

    from app.config import VAR_DIR

    path = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
    if wipe and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API."""
    _metrics_dir()
    import uvicorn

    from app.main import create_app

    # access_log=False: uvicorn's would print callback query strings; ours redacts them.
    uvicorn.run(create_app(), host=host, port=port, access_log=False, log_level="warning")


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from app.migrations import upgrade

    upgrade()
    console.print("[green]database is up to date[/green]")


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
) -> None:
    """Run a Celery worker (sync tasks)."""
    _metrics_dir()
    from app.worker import celery_app

    celery_app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--queues={get_settings().sync_queue}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@cli.command()
def beat() -> None:
    """Run Celery beat (hourly fan-out; redbeat on Redis so a standby beat can take over)."""
    _metrics_dir()
    from app.worker import beat_arguments, celery_app

    celery_app.start(["beat", "--loglevel=INFO", *beat_arguments()])


@cli.command("rotate-keys")
def rotate_keys(
    batch_size: Annotated[int, typer.Option(help="Rows re-encrypted per transaction.")] = 200,
) -> None:
    """Re-encrypt every stored credential with the first key of TOKEN_ENCRYPTION_KEYS.

    Idempotent and resumable: each batch commits on its own, and rows already under the
    primary key are skipped. A row no configured key opens is left as it is and reported.
    Exits 1 when such rows remain (do not retire the old key yet), 75 when rows were in use.
    """
    from rich.progress import Progress

    from app.db import get_sessionmaker
    from app.models import import_all_models
    from app.security import KeyRing
    from app.strava.credentials import count_stale_rows, rotate_all

    import_all_models()  # the links' foreign keys name other packages' tables
    keyring = KeyRing(get_settings().encryption_keys())
    sessions = get_sessionmaker()
    with sessions() as session:
        total = count_stale_rows(session, keyring)
    with Progress(console=console) as progress:
        task = progress.add_task("re-encrypting", total=total)
        report = rotate_all(
            sessions,
            keyring,
            batch_size=batch_size,
            progress=lambda done: progress.advance(task, done),
        )
    primary = keyring.primary_key_id
    console.print(f"[green]{report.rotated} rows re-encrypted under key {primary}[/green]")
    if report.unreadable:
        console.print(
            f"[yellow]{len(report.unreadable)} rows could not be decrypted with any configured "
            "key and were left as they are (their runners see key_unavailable):[/yellow]"
        )
        for row in report.unreadable[:_LISTED_UNREADABLE]:
            console.print(f"  {row.table} {row.row_id} (key id {row.key_id})")
        if len(report.unreadable) > _LISTED_UNREADABLE:
            console.print(f"  ... and {len(report.unreadable) - _LISTED_UNREADABLE} more")
    if report.busy > 0:
        console.print(f"[yellow]{report.busy} rows were in use: run rotate-keys again[/yellow]")
    # Not done means the old key cannot be retired yet: say so to scripts, not only to eyes.
    if report.unreadable:
        raise typer.Exit(ROTATION_LEFT_UNREADABLE_ROWS)
    if report.busy > 0:
        raise typer.Exit(ROTATION_INTERRUPTED)


# rotate-keys' exit codes when it could not re-encrypt every row: rows no key opens (an operator
# must look at them), or rows in use by a sync (run it again: sysexits' EX_TEMPFAIL).
ROTATION_LEFT_UNREADABLE_ROWS = 1
ROTATION_INTERRUPTED = 75
# Unreadable rows named one per line by rotate-keys; beyond that only counted.
_LISTED_UNREADABLE = 50


@contextlib.contextmanager
def _strava_client() -> Iterator[StravaClient]:
    """A Strava client for one command, whose errors become a message and an exit code."""
    from app.strava.client import (
        CallbackNotVerified,
        InvalidClient,
        StravaError,
        SubscriptionRefused,
        create_http_client,
    )
    from app.strava.runtime import build_strava_client
    from app.strava.subscriptions import AlreadySubscribed

    settings = get_settings()
    try:
        with create_http_client(timeout_s=settings.strava_timeout_seconds) as http:
            yield build_strava_client(settings, http)
    except AlreadySubscribed as exc:
        found = exc.existing
        where = f" (id {found.id}, callback {found.callback_url})" if found else ""
        console.print(
            f"[red]already subscribed{where}[/red]: Strava allows one subscription per "
            "application. Run `orchestrator strava-webhook unsubscribe` first."
        )
        raise typer.Exit(ExitCode.REFUSED) from None
    except CallbackNotVerified as exc:
        console.print(
            f"[red]validation failed[/red]: {exc.message}.\nStrava's validation GET must reach "
            "the callback URL and get a 200 JSON echo of hub.challenge within 2 s: is the API "
            "running and reachable at that URL, and is STRAVA_WEBHOOK_VERIFY_TOKEN the same there?"
        )
        raise typer.Exit(ExitCode.REFUSED) from None
    except InvalidClient as exc:
        console.print(
            f"[red]bad credentials[/red]: {exc.message}.\n"
            "Check STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET."
        )
        raise typer.Exit(ExitCode.BAD_CREDENTIALS) from None
    except SubscriptionRefused as exc:
        console.print(f"[red]refused by Strava[/red]: {exc.message}")
        raise typer.Exit(ExitCode.REFUSED) from None
    except StravaError as exc:
        console.print(f"[red]Strava unavailable[/red]: {exc.message}. Try again later.")
        raise typer.Exit(ExitCode.UNREACHABLE) from None


def _verify_token(settings: Settings) -> str:
    """The token Strava's validation GET must bring (sandbox: SANDBOX_WEBHOOK_VERIFY_TOKEN)."""
    token = settings.webhook_verify_token
    if token is None:
        console.print(
            "[red]STRAVA_WEBHOOK_VERIFY_TOKEN is not set[/red]: set it (the same value) for the "
            "API and for this command; the API refuses Strava's validation GET without it."
        )
        raise typer.Exit(2)
    return token


@strava_webhook.command("subscribe")
def webhook_subscribe(
    callback_url: Annotated[
        str,
        typer.Option(
            help="Public URL of the webhook route, e.g. "
            "https://api.example.com/api/v1/strava/webhook (at most 255 characters)."
        ),
    ],
) -> None:
    """Create the push subscription: Strava validates the callback, then sends events to it."""
    from app.db import get_sessionmaker
    from app.strava import subscriptions

    settings = get_settings()
    with _strava_client() as client:
        created = subscriptions.subscribe(
            get_sessionmaker(),
            client,
            callback_url=callback_url,
            verify_token=_verify_token(settings),
        )
    out.print(f"[green]subscribed[/green]: id {created.id}, callback {created.callback_url}")


@strava_webhook.command("status")
def webhook_status() -> None:
    """Our recorded subscription beside Strava's list; exit code 5 when they disagree."""
    from app.db import get_sessionmaker
    from app.strava import subscriptions

    with _strava_client() as client:
        found = subscriptions.status(get_sessionmaker(), client)
    for label, sub in (("recorded here", found.recorded), ("at Strava", found.at_strava)):
        shown = f"id {sub.id}, callback {sub.callback_url}" if sub else "none"
        out.print(f"{label:>14}: {shown}")
    if found.drift != subscriptions.Drift.NONE:
        out.print(
            f"[red]drift: {found.drift}[/red]: run `orchestrator strava-webhook unsubscribe`, "
            "then subscribe again."
        )
        raise typer.Exit(ExitCode.DRIFT)
    out.print("updates: [green]live[/green]" if found.live else "updates: polling")


@strava_webhook.command("unsubscribe")
def webhook_unsubscribe() -> None:
    """Delete the push subscription (links go back to hourly polling)."""
    from app.db import get_sessionmaker
    from app.strava import subscriptions

    with _strava_client() as client:
        deleted = subscriptions.unsubscribe(get_sessionmaker(), client)
    if deleted is None:
        out.print("no subscription: nothing to delete")
    else:
        out.print(f"[green]unsubscribed[/green]: id {deleted.id}")


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    emulator_port: Annotated[int, typer.Option(help="Strava emulator port.")] = 8001,
) -> None:
    """The whole sandbox in one command: migrations, emulator, API, worker and beat."""
    env = dict(os.environ)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    env.setdefault("SANDBOX_EMULATOR_URL", f"http://127.0.0.1:{emulator_port}")
    os.environ.update(env)
    _metrics_dir(wipe=True)  # the API's /metrics then shows the worker's metrics too
    env["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.sandbox:
        console.print("[red]dev runs sandbox mode only: unset STRAVA_CLIENT_ID[/red]")
        raise typer.Exit(2)

    from app.migrations import upgrade
    from app.worker import prepare_embedded_broker

    upgrade()
    prepare_embedded_broker(settings)
    exe = [sys.executable, "-m", "app.cli"]
    # The deep link's host is `oauth`: Strava matches it against the callback domain
    # (docs/strava.md §1.5), so that is the sandbox app's callback domain.
    commands = {
        "emulator": [
            sys.executable,
            "-m",
            "strava_emulator.cli",
            "serve",
            "--port",
            str(emulator_port),
            "--callback-domain",
            "oauth",
        ],
        "api": [*exe, "serve", "--port", str(port)],
        "worker": [*exe, "worker", "--concurrency", "2"],
        "beat": [*exe, "beat"],
    }
    # Each child leads its own process group, so stopping it also stops what it forked (the
    # worker's pool); `dev` itself turns SIGTERM into the same clean stop as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    processes = {
        name: subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603 - ours
        for name, command in commands.items()
    }
    url = settings.public_base_url
    console.print(
        f"\n[bold]Coach George sandbox[/bold] is starting: open [link]{url}/[/link]\n"
        f"  Strava emulator: {settings.sandbox_emulator_url}   API docs: {url}/docs\n"
        "  Ctrl-C stops everything.\n"
    )
    try:
        _subscribe_sandbox(settings, list(processes.values()))
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_groups(list(processes.values()))
    failed = [
        name for name, process in processes.items() if process.returncode not in (0, -15, None)
    ]
    if failed:
        console.print(f"[red]stopped: {', '.join(failed)} exited early[/red]")


SANDBOX_STARTUP_SECONDS = 60.0


def _subscribe_sandbox(settings: Settings, processes: list[subprocess.Popen[bytes]]) -> None:
    """Once the API and the emulator answer, subscribe the sandbox to the emulator's webhooks,
    so that a run "uploaded" in the emulator shows up within seconds. Without it (the validation
    GET failed) the sandbox keeps hourly polling, and says so."""
    import httpx2

    from app.db import get_sessionmaker
    from app.strava import subscriptions
    from app.strava.client import StravaError, create_http_client
    from app.strava.runtime import build_strava_client

    probes = (
        f"{settings.public_base_url}/healthz",
        f"{settings.sandbox_emulator_url}/_emulator/healthz",
    )
    deadline = time.monotonic() + SANDBOX_STARTUP_SECONDS
    for probe in probes:
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(probe, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                return  # the supervision loop reports what stopped
            time.sleep(0.2)  # polling a server that is starting up, with a deadline
    shown = callback_url = f"{settings.public_base_url.rstrip('/')}{WEBHOOK_PATH}"
    if settings.strava_webhook_path_secret is not None:
        callback_url += f"/{settings.strava_webhook_path_secret.get_secret_value()}"
        shown += "/<STRAVA_WEBHOOK_PATH_SECRET>"  # the segment is a secret: never printed
    sessions = get_sessionmaker()
    with create_http_client(timeout_s=settings.strava_timeout_seconds) as http:
        client = build_strava_client(settings, http)
        try:
            subscriptions.subscribe(
                sessions,
                client,
                callback_url=callback_url,
                verify_token=_verify_token(settings),
            )
        except (StravaError, subscriptions.AlreadySubscribed) as exc:
            # A record left by an earlier run must not claim that updates are live.
            with contextlib.suppress(StravaError):
                subscriptions.unsubscribe(sessions, client)
            console.print(f"[yellow]live updates off (hourly polling)[/yellow]: {exc}")
            return
    console.print(f"  Live updates: the emulator pushes events to {shown}\n")


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _stop_groups(processes: list[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """SIGTERM each child (a graceful stop: the worker shuts its own pool down), then SIGKILL
    whatever is left of its process group after a while."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers: pool children, hung servers


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
